// Multi-head attention and the differential attention of the Diff Transformer (Ye et al.
// 2024, eq. 1), as single ops so that backends can lower them to fused kernels.
import type { Attrs } from "../graph.ts";
import { OpError, registerOp } from "../registry.ts";
import { broadcastIndex, type HostTensor } from "../tensor.ts";
import { broadcastShapes, type Dim, formatShape, formatType, isFloat, numel, sameShape } from "../types.ts";
import { type Arith, attentionGeometry, causalRule, visibleKeys } from "./attention-geometry.ts";
import { type AttentionQuant, nearTies, quantGroups, quantizeGroup, quantizeValues, type QuantStats, rowBound, sparsifyRow } from "./attention-quant.ts";
import { softmaxRow } from "./nn.ts";
import { Lowering } from "./lowering.ts";
import type { NodeSink } from "../registry.ts";

/**
 * Evaluates any attention op: per batch, head and query, one softmax per map over the keys the
 * query sees, combined as p1 - λ p2 (or p1 alone), then applied to the head's value vectors.
 * With `quant`, the quantised ops' meaning (attention-quant.ts): V's levels first, each map's
 * logit levels before its softmax, the skip rule and probability levels after it; `stats`
 * collects what that did.
 */
export function attend(op: string, args: HostTensor[], a: Attrs, out: { shape: number[] }, quant?: AttentionQuant, stats?: QuantStats): Float64Array {
  const [q, k, v, lambda] = args;
  const geo = attentionGeometry(op, args, a);
  const { maps, heads, d, dv, scale, qColumns, kColumns, vColumns, vSegment } = geo;
  const n = geo.n as number;
  const m = geo.m as number;
  const batch = out.shape.slice(0, -3);
  const batches = numel(batch);
  const [qW, kW, vW] = [q, k, v].map((t) => t.shape[t.shape.length - 1]);
  const [qBatch, kBatch, vBatch] = [q, k, v].map((t) => broadcastIndex(t.shape.slice(0, -2), batch));
  const lambdaIndex = lambda && broadcastIndex(lambda.shape, [...batch, n, heads]);
  const [qData, kData] = [q.data, k.data];
  const vBatches = numel(v.shape.slice(0, -2));
  if (quant) {
    nearTies.call++;
    nearTies.row = -1;
  }
  const vQuant = quant && quant.vBits > 0 ? quantizeValues(v.data, vBatches, m, vW, quant.vBits) : undefined;
  const vData = vQuant ? vQuant.data : v.data;
  const sparse = quant !== undefined && (quant.target === "probs" || quant.threshold > 0);

  const result = new Float64Array(numel(out.shape));
  const probs = Array.from({ length: maps }, () => new Float64Array(m));
  for (let b = 0; b < batches; b++) {
    const qBase = (qBatch ? qBatch[b] : b) * n * qW;
    const kBase = (kBatch ? kBatch[b] : b) * m * kW;
    const vBase = (vBatch ? vBatch[b] : b) * m * vW;
    for (let i = 0; i < n; i++) {
      const seen = geo.causal ? visibleKeys(i, n, m) : m;
      if (seen === 0) continue; // no visible key: the output row stays 0
      for (let h = 0; h < heads; h++) {
        const g = geo.kvGroupOf(h);
        const logitError = new Array<number>(maps).fill(0);
        if (quant) nearTies.row = (b * n + i) * heads + h;
        for (let p = 0; p < maps; p++) {
          const row = probs[p];
          const qOff = qBase + i * qW + qColumns[p][h];
          const kOff = kBase + kColumns[p][g];
          for (let j = 0; j < seen; j++) {
            const kRow = kOff + j * kW;
            let dot = 0;
            for (let t = 0; t < d; t++) dot += qData[qOff + t] * kData[kRow + t];
            row[j] = dot * scale;
          }
          if (quant?.target === "logits")
            for (const [start, end] of quantGroups(seen, quant.granularity, quant.block)) {
              const halfStep = quantizeGroup(row, start, end - start, 1, quant.bits, true) / 2;
              logitError[p] = Math.max(logitError[p], Math.expm1(2 * halfStep));
            }
          softmaxRow(row, seen);
        }
        const mapError = sparse ? sparsifyRow(probs, seen, quant!, stats).map((e, p) => e + logitError[p]) : logitError;
        const lambdas = [1];
        if (maps === 2) {
          const flat = (b * n + i) * heads + h;
          const l = lambda.data[lambdaIndex ? lambdaIndex[flat] : flat];
          lambdas.push(l);
          for (let j = 0; j < seen; j++) probs[0][j] -= l * probs[1][j];
        }
        if (stats) countRow(stats, quant!, { maps, seen, vData, vBase, vW, columns: vColumns.map((c) => c[g]), vSegment, vSteps: vQuant?.steps, vStepBase: (vBatch ? vBatch[b] : b) * vW, mapError, lambdas });
        const weights = probs[0];
        const oBase = ((b * n + i) * heads + h) * dv;
        for (let s = 0; s < vColumns.length; s++) {
          const o = oBase + s * vSegment;
          for (let j = 0; j < seen; j++) {
            const w = weights[j];
            const vRow = vBase + j * vW + vColumns[s][g];
            for (let c = 0; c < vSegment; c++) result[o + c] += w * vData[vRow + c];
          }
        }
      }
    }
  }
  return result;
}

interface CountedRow {
  maps: number;
  seen: number;
  vData: Float64Array;
  vBase: number;
  vW: number;
  /** The row's v columns, per segment. */
  columns: number[];
  vSegment: number;
  vSteps?: Float64Array;
  vStepBase: number;
  mapError: number[];
  lambdas: number[];
}

/** One row's share of the stats (sparsifyRow counted its skipped blocks): counts and its error bound. */
function countRow(stats: QuantStats, quant: AttentionQuant, r: CountedRow): void {
  stats.rows++;
  stats.keys += r.seen;
  stats.rowBlocks += quantGroups(r.seen, "block", quant.block).length;
  if (quant.target !== "none") stats.scales += r.maps * quantGroups(r.seen, quant.granularity, quant.block).length;
  let vMax = 0;
  let vHalfStep = 0;
  r.columns.forEach((column) => {
    for (let c = 0; c < r.vSegment; c++) {
      for (let j = 0; j < r.seen; j++) vMax = Math.max(vMax, Math.abs(r.vData[r.vBase + j * r.vW + column + c]));
      if (r.vSteps) vHalfStep = Math.max(vHalfStep, r.vSteps[r.vStepBase + column + c] / 2);
    }
  });
  stats.maxBound = Math.max(stats.maxBound, rowBound(r.mapError, r.lambdas, vMax + vHalfStep, vHalfStep));
}

registerOp({
  name: "attention",
  doc:
    "Multi-head attention: q [..., N, H*dk], k [..., M, Hkv*dk], v [..., M, Hkv*dv] -> [..., N, H, dv], head h = softmax(q_h k_g^T * scale) v_g with g = floor(h / (H/Hkv)) (scale 0 means dk^-0.5); " +
    "causal lets query i see keys j <= i + M - N, and a query that sees no key gives 0.",
  operands: ["q", "k", "v"],
  attrs: {
    heads: { type: "int" },
    kv_heads: { type: "int", default: 0, doc: "0: heads (no grouping)" },
    causal: { type: "bool", default: false },
    scale: { type: "float", default: 0, doc: "0: dk^-0.5" },
  },
  pattern: "opaque",
  infer: (types, a) => {
    const geo = attentionGeometry("attention", types, a);
    return { dtype: types[0].dtype, shape: [...geo.batch, geo.n, geo.heads, geo.dv] };
  },
  interpret: (args, a, out) => attend("attention", args, a, out),
  decompose: (b, operands, a) => decomposeAttention("attention", b, operands, a),
});

registerOp({
  name: "diffattn",
  doc:
    "Differential attention (Diff Transformer eq. 1): q [..., N, 2H*d], k [..., M, 2Hkv*d], v [..., M, Hkv*2d], lambda broadcasting to [..., N, H] -> [..., N, H, 2d], head h = " +
    "(softmax(q1 k1^T * s) - λ softmax(q2 k2^T * s)) v_g with g = floor(h / (H/Hkv)), s = d^-0.5 when scale is 0; pairing \"stripe\" takes q1, q2 = subheads 2h, 2h+1 (k: 2g, 2g+1; v head g of [M, Hkv, 2d]), " +
    "\"halves\" takes subheads h, H+h (k: g, Hkv+g; v = concat of subheads g, Hkv+g of [M, 2Hkv, d]); causal as in attention.",
  operands: ["q", "k", "v", "lambda"],
  attrs: {
    heads: { type: "int" },
    kv_heads: { type: "int", default: 0, doc: "0: heads (no grouping)" },
    causal: { type: "bool", default: false },
    scale: { type: "float", default: 0, doc: "0: d^-0.5, d the width of one subhead" },
    pairing: { type: "string", default: "stripe", oneOf: ["stripe", "halves"] },
  },
  pattern: "opaque",
  infer: (types, a) => {
    const geo = attentionGeometry("diffattn", types, a);
    const lambda = types[3];
    const target = [...geo.batch, geo.n, geo.heads];
    if (!isFloat(lambda.dtype)) throw new OpError(`diffattn: lambda must be a float tensor, got ${formatType(lambda)}`);
    const b = broadcastShapes(lambda.shape, target);
    if (!b || !sameShape(b, target))
      throw new OpError(`diffattn: lambda ${formatType(lambda)} does not broadcast to ${formatShape(target)} ([..., N, heads] for q ${formatType(types[0])})`);
    return { dtype: types[0].dtype, shape: [...geo.batch, geo.n, geo.heads, geo.dv] };
  },
  interpret: (args, a, out) => attend("diffattn", args, a, out),
  decompose: (b, operands, a) => decomposeAttention("diffattn", b, operands, a),
});

/** Arith over i32 scalar nodes, for the causal rule's offset read at run time when N or M is symbolic. */
function sizeArith(L: Lowering): Arith<number> {
  const bin = (op: string) => (x: number, y: number) => L.op(op, x, y);
  return { num: (c) => L.scalar(c, "i32"), add: bin("add"), sub: bin("sub"), mul: bin("mul"), div: bin("div"), min: bin("min"), max: bin("max"), sqrt: (x) => L.op("sqrt", x) };
}

/** The allowed (query, key) pairs of the causal rule, key j <= lastKey(query i), as an [N, M] mask. */
function causalMask(L: Lowering, n: Dim, m: Dim): number {
  const rows = L.b.add("iota", [], { shape: [n, m], axis: 0, dtype: "i32" });
  const cols = L.b.add("iota", [], { shape: [n, m], axis: 1, dtype: "i32" });
  const size = (dim: Dim) => L.b.add("numel", [], { shape: [dim] });
  // N = M: the offset is 0 and the mask the plain j <= i.
  const last = n === m ? rows : causalRule.lastKey(sizeArith(L), rows, size(n), size(m));
  return L.op("le", cols, last);
}

/**
 * The (sub)heads of x that start at `columns`, `width` wide, as [..., rows, heads, width]. Every
 * layout of the geometry spaces them evenly: consecutive subheads are a slice of x's row viewed
 * as subheads, every step-th one a slice of that view regrouped as [heads, step].
 */
function headsAt(L: Lowering, x: number, rows: Dim, columns: number[], width: number): number {
  const batch = L.batch(x, 2);
  const subheads = (L.shape(x).at(-1) as number) / width;
  const count = columns.length;
  const first = columns[0] / width;
  const step = count > 1 ? (columns[1] - columns[0]) / width : 1;
  const regular = columns.every((c, h) => c === (first + h * step) * width) && (step === 1 ? first + count <= subheads : count * step === subheads && first < step);
  if (!regular) throw new Error(`attention decomposition: head columns [${columns}] of width ${width} are not evenly spaced in a row of ${subheads} subheads`);
  const sub = L.reshape(x, [...batch, rows, subheads, width]);
  if (step === 1) return first === 0 && count === subheads ? sub : L.slice(sub, -2, first, first + count);
  const strided = L.reshape(sub, [...batch, rows, count, step, width]);
  return L.reshape(L.slice(strided, -2, first, first + 1), [...batch, rows, count, width]);
}

/**
 * attention and diffattn in primitives: per-head batched matmuls that materialise the N×M
 * maps, a softmax per map, `p1 - λ p2`, and `@ v`. This is the unfused baseline that fusion
 * passes are measured against. Heads are laid out [..., Hkv, G, N, d] so that the G query
 * heads of a kv group broadcast against that group's keys and values: the view [Hkv, G] of the
 * heads is the geometry's kvGroupOf(h) = h / G in tensor form.
 */
function decomposeAttention(op: string, b: NodeSink, [q, k, v, lambda]: number[], a: Attrs): number {
  const L = new Lowering(b);
  const dtype = b.type(q).dtype;
  const geo = attentionGeometry(op, [q, k, v].map((x) => b.type(x)), a);
  const { maps, heads, kvHeads, group, d, dv, n, m } = geo;
  const [qb, kb, vb] = [q, k, v].map((x) => L.batch(x, 2));
  const scale = L.scalar(geo.scale, dtype);
  const mask = geo.causal ? causalMask(L, n, m) : undefined;
  const probs: number[] = [];
  for (let map = 0; map < maps; map++) {
    const qm = L.permuteLast(L.reshape(headsAt(L, q, n, geo.qColumns[map], d), [...qb, n, kvHeads, group, d]), [1, 2, 0, 3]); // [..., Hkv, G, N, d]
    const km = L.reshape(L.permuteLast(headsAt(L, k, m, geo.kColumns[map], d), [1, 2, 0]), [...kb, kvHeads, 1, d, m]); // [..., Hkv, 1, d, M]
    let scores = L.op("mul", L.op("matmul", qm, km), scale);
    if (mask !== undefined) scores = L.op("where", mask, scores, L.scalar(-Infinity, dtype));
    probs.push(b.add("softmax", [scores], { axis: -1 }));
  }
  let p = probs[0];
  if (maps === 2) {
    // λ broadcast to [..., N, H], then laid out like the maps: [..., Hkv, G, N, 1].
    const lam = b.type(lambda).dtype === dtype ? lambda : b.add("cast", [lambda], { dtype });
    const full = b.add("broadcast", [lam], { shape: [...geo.batch, n, heads] });
    const perHead = L.permuteLast(L.reshape(full, [...geo.batch, n, kvHeads, group]), [1, 2, 0]);
    p = L.op("sub", probs[0], L.op("mul", L.reshape(perHead, [...geo.batch, kvHeads, group, n, 1]), probs[1]));
  }
  // [..., M, Hkv, dv]: each group's value segments, concatenated.
  const segments = geo.vColumns.map((columns) => headsAt(L, v, m, columns, geo.vSegment));
  const vh = segments.length === 1 ? segments[0] : b.add("concat", segments, { axis: -1 });
  const vt = L.reshape(L.permuteLast(vh, [1, 0, 2]), [...vb, kvHeads, 1, m, dv]);
  const out = L.op("matmul", p, vt); // [..., Hkv, G, N, dv]
  return L.reshape(L.permuteLast(out, [2, 0, 1, 3]), [...geo.batch, n, heads, dv]);
}
