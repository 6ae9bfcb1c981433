// Multi-head attention and the differential attention of the Diff Transformer (Ye et al.
// 2024, eq. 1), as single ops so that backends can lower them to fused kernels.
import type { Attrs } from "../graph.ts";
import { OpError, registerOp } from "../registry.ts";
import { broadcastIndex, type HostTensor } from "../tensor.ts";
import { broadcastShapes, type Dim, formatShape, formatType, isFloat, numel, sameShape, type TensorType } from "../types.ts";
import { softmaxRow } from "./nn.ts";
import { Lowering } from "./lowering.ts";
import type { NodeSink } from "../registry.ts";

/** Sizes shared by both ops; `maps` is 1 for attention, 2 for diffattn (its two softmax maps). */
interface Geometry {
  heads: number;
  kvHeads: number;
  /** Width of one q/k (sub)head. */
  d: number;
  /** Width of one output head. */
  dv: number;
  batch: Dim[];
  n: Dim;
  m: Dim;
}

function staticWidth(op: string, role: string, t: TensorType): number {
  const w = t.shape[t.shape.length - 1];
  if (typeof w !== "number") throw new OpError(`${op}: the last dim of ${role} ${formatType(t)} must be a static size to split it into heads`);
  return w;
}

function geometry(op: string, [q, k, v]: TensorType[], a: Attrs, maps: 1 | 2): Geometry {
  const all = `q ${formatType(q)}, k ${formatType(k)}, v ${formatType(v)}`;
  if (q.shape.length < 2 || k.shape.length < 2 || v.shape.length < 2) throw new OpError(`${op}: q, k and v must each be [..., rows, width], got ${all}`);
  if (!isFloat(q.dtype) || k.dtype !== q.dtype || v.dtype !== q.dtype) throw new OpError(`${op}: q, k and v must be float tensors of one dtype, got ${all}`);
  const heads = a.heads as number;
  const kvHeads = (a.kv_heads as number) === 0 ? heads : (a.kv_heads as number);
  if (heads < 1) throw new OpError(`${op}: heads must be positive, got ${heads}`);
  if (kvHeads < 1) throw new OpError(`${op}: kv_heads must be positive (or 0 for heads), got ${a.kv_heads}`);
  if (heads % kvHeads !== 0) throw new OpError(`${op}: heads ${heads} is not a multiple of kv_heads ${kvHeads} (q ${formatType(q)}, k ${formatType(k)})`);

  const qWidth = staticWidth(op, "q", q);
  const kWidth = staticWidth(op, "k", k);
  const vWidth = staticWidth(op, "v", v);
  const qSplit = maps * heads;
  if (qWidth % qSplit !== 0)
    throw new OpError(`${op}: q ${formatType(q)} has width ${qWidth}, not a multiple of ${maps === 2 ? `2 * heads = ${qSplit}` : `heads = ${qSplit}`}`);
  const d = qWidth / qSplit;
  const kNeed = maps * kvHeads * d;
  if (kWidth !== kNeed)
    throw new OpError(`${op}: k ${formatType(k)} has width ${kWidth}, but ${maps === 2 ? "2 * " : ""}kv_heads ${kvHeads} heads of width ${d} (from q ${formatType(q)}) need ${kNeed}`);
  let dv: number;
  if (maps === 2) {
    dv = 2 * d;
    if (vWidth !== kvHeads * dv) throw new OpError(`${op}: v ${formatType(v)} has width ${vWidth}, but kv_heads ${kvHeads} heads of width 2 * ${d} need ${kvHeads * dv}`);
  } else {
    if (vWidth % kvHeads !== 0) throw new OpError(`${op}: v ${formatType(v)} has width ${vWidth}, not a multiple of kv_heads ${kvHeads}`);
    dv = vWidth / kvHeads;
  }

  const m = k.shape[k.shape.length - 2];
  const mv = v.shape[v.shape.length - 2];
  if (m !== mv) throw new OpError(`${op}: k ${formatType(k)} and v ${formatType(v)} have different numbers of keys (${m} vs ${mv})`);
  const batch = [q, k, v].reduce<Dim[] | undefined>((acc, t) => acc && broadcastShapes(acc, t.shape.slice(0, -2)), []);
  if (!batch) throw new OpError(`${op}: the batch dims of ${all} do not broadcast`);
  return { heads, kvHeads, d, dv, batch, n: q.shape[q.shape.length - 2], m };
}

/**
 * Where one q head finds its data inside a row: the column where each of its q (sub)heads and
 * k (sub)heads starts, and the v columns that, concatenated in order, form its value vectors.
 */
interface HeadLayout {
  q: number[];
  k: number[];
  v: number[];
  /** Width of each v segment. */
  vSegment: number;
}

type Layout = (h: number, g: number, geo: Geometry) => HeadLayout;

const attentionLayout: Layout = (h, g, { d, dv }) => ({ q: [h * d], k: [g * d], v: [g * dv], vSegment: dv });

// The official Diff Transformer code: subheads 2h and 2h+1 of q (and 2g, 2g+1 of k) form the
// pair; v is [M, Hkv, 2d], head g taken whole.
const stripeLayout: Layout = (h, g, { d }) => ({ q: [2 * h * d, (2 * h + 1) * d], k: [2 * g * d, (2 * g + 1) * d], v: [2 * g * d, (2 * g + 1) * d], vSegment: d });

// Hugging Face DiffLlama: the first half of the subheads against the second; v is [M, 2Hkv, d]
// and head g's values are subheads g and Hkv+g concatenated (its chunk-and-cat of value_states).
const halvesLayout: Layout = (h, g, { d, heads, kvHeads }) => ({
  q: [h * d, (heads + h) * d],
  k: [g * d, (kvHeads + g) * d],
  v: [g * d, (kvHeads + g) * d],
  vSegment: d,
});

/**
 * Evaluates either op: per batch, head and query, one softmax per map over the keys the query
 * sees, combined as p1 - λ p2 (or p1 alone), then applied to the head's value vectors.
 */
function attend(args: HostTensor[], a: Attrs, out: { shape: number[] }, maps: 1 | 2, layout: Layout): Float64Array {
  const [q, k, v, lambda] = args;
  const geo = geometry(maps === 2 ? "diffattn" : "attention", args, a, maps);
  const { heads, kvHeads, d, dv } = geo;
  const n = geo.n as number;
  const m = geo.m as number;
  const batch = out.shape.slice(0, -3);
  const batches = numel(batch);
  const scale = (a.scale as number) === 0 ? d ** -0.5 : (a.scale as number);
  const causal = a.causal as boolean;
  const group = heads / kvHeads;
  const [qW, kW, vW] = [q, k, v].map((t) => t.shape[t.shape.length - 1]);
  const [qBatch, kBatch, vBatch] = [q, k, v].map((t) => broadcastIndex(t.shape.slice(0, -2), batch));
  const lambdaIndex = lambda && broadcastIndex(lambda.shape, [...batch, n, heads]);
  const [qData, kData, vData] = [q.data, k.data, v.data];

  const result = new Float64Array(numel(out.shape));
  const probs = Array.from({ length: maps }, () => new Float64Array(m));
  const layouts = Array.from({ length: heads }, (_, h) => layout(h, Math.floor(h / group), geo));
  for (let b = 0; b < batches; b++) {
    const qBase = (qBatch ? qBatch[b] : b) * n * qW;
    const kBase = (kBatch ? kBatch[b] : b) * m * kW;
    const vBase = (vBatch ? vBatch[b] : b) * m * vW;
    for (let i = 0; i < n; i++) {
      // Causal: the last query is aligned with the last key (a KV cache holds M - N earlier keys).
      const seen = causal ? Math.max(0, Math.min(m, i + m - n + 1)) : m;
      if (seen === 0) continue; // no visible key: the output row stays 0
      for (let h = 0; h < heads; h++) {
        const lay = layouts[h];
        for (let p = 0; p < maps; p++) {
          const row = probs[p];
          const qOff = qBase + i * qW + lay.q[p];
          const kOff = kBase + lay.k[p];
          for (let j = 0; j < seen; j++) {
            const kRow = kOff + j * kW;
            let dot = 0;
            for (let t = 0; t < d; t++) dot += qData[qOff + t] * kData[kRow + t];
            row[j] = dot * scale;
          }
          softmaxRow(row, seen);
        }
        if (maps === 2) {
          const flat = (b * n + i) * heads + h;
          const l = lambda.data[lambdaIndex ? lambdaIndex[flat] : flat];
          for (let j = 0; j < seen; j++) probs[0][j] -= l * probs[1][j];
        }
        const weights = probs[0];
        const oBase = ((b * n + i) * heads + h) * dv;
        const seg = lay.vSegment;
        for (let s = 0; s < lay.v.length; s++) {
          const o = oBase + s * seg;
          for (let j = 0; j < seen; j++) {
            const w = weights[j];
            const vRow = vBase + j * vW + lay.v[s];
            for (let c = 0; c < seg; c++) result[o + c] += w * vData[vRow + c];
          }
        }
      }
    }
  }
  return result;
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
    const geo = geometry("attention", types, a, 1);
    return { dtype: types[0].dtype, shape: [...geo.batch, geo.n, geo.heads, geo.dv] };
  },
  interpret: (args, a, out) => attend(args, a, out, 1, attentionLayout),
  decompose: (b, operands, a) => decomposeAttention(b, operands, a, 1),
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
    const geo = geometry("diffattn", types, a, 2);
    const lambda = types[3];
    const target = [...geo.batch, geo.n, geo.heads];
    if (!isFloat(lambda.dtype)) throw new OpError(`diffattn: lambda must be a float tensor, got ${formatType(lambda)}`);
    const b = broadcastShapes(lambda.shape, target);
    if (!b || !sameShape(b, target))
      throw new OpError(`diffattn: lambda ${formatType(lambda)} does not broadcast to ${formatShape(target)} ([..., N, heads] for q ${formatType(types[0])})`);
    return { dtype: types[0].dtype, shape: [...geo.batch, geo.n, geo.heads, geo.dv] };
  },
  interpret: (args, a, out) => attend(args, a, out, 2, a.pairing === "halves" ? halvesLayout : stripeLayout),
  decompose: (b, operands, a) => decomposeAttention(b, operands, a, 2),
});

/** Allowed (query, key) pairs of causal attention: key j <= query i + (M - N). */
function causalMask(L: Lowering, n: Dim, m: Dim): number {
  const rows = L.b.add("iota", [], { shape: [n, m], axis: 0, dtype: "i32" });
  const cols = L.b.add("iota", [], { shape: [n, m], axis: 1, dtype: "i32" });
  // The offset aligns the last query with the last key; it is read at run time when N or M is symbolic.
  const last = n === m ? rows : L.op("add", rows, L.op("sub", L.b.add("numel", [], { shape: [m] }), L.b.add("numel", [], { shape: [n] })));
  return L.op("le", cols, last);
}

/**
 * attention and diffattn in primitives: per-head batched matmuls that materialise the N×M
 * maps, a softmax per map, `p1 - λ p2`, and `@ v`. This is the unfused baseline that fusion
 * passes are measured against. Heads are laid out [..., Hkv, G, N, d] so that the G query
 * heads of a kv group broadcast against that group's keys and values (flash semantics).
 */
function decomposeAttention(b: NodeSink, [q, k, v, lambda]: number[], a: Attrs, maps: 1 | 2): number {
  const L = new Lowering(b);
  const dtype = b.type(q).dtype;
  const geo = geometry(maps === 2 ? "diffattn" : "attention", [q, k, v].map((x) => b.type(x)), a, maps);
  const { heads, kvHeads, d, dv, n, m } = geo;
  const group = heads / kvHeads;
  const halves = a.pairing === "halves";
  const [qb, kb, vb] = [q, k, v].map((x) => L.batch(x, 2));
  // Subhead `map` (0: q1/k1, 1: q2/k2) of x viewed as [..., rows, maps * count, d].
  const pick = (x: number, batch: Dim[], rows: Dim, count: number, map: number): number => {
    const sub = L.reshape(x, [...batch, rows, maps * count, d]);
    if (maps === 1) return sub;
    if (halves) return L.slice(sub, -2, map * count, (map + 1) * count);
    const pairs = L.reshape(sub, [...batch, rows, count, 2, d]);
    return L.reshape(L.slice(pairs, -2, map, map + 1), [...batch, rows, count, d]);
  };
  const scale = L.scalar((a.scale as number) || d ** -0.5, dtype);
  const mask = a.causal ? causalMask(L, n, m) : undefined;
  const probs: number[] = [];
  for (let map = 0; map < maps; map++) {
    const qm = L.permuteLast(L.reshape(pick(q, qb, n, heads, map), [...qb, n, kvHeads, group, d]), [1, 2, 0, 3]); // [..., Hkv, G, N, d]
    const km = L.reshape(L.permuteLast(pick(k, kb, m, kvHeads, map), [1, 2, 0]), [...kb, kvHeads, 1, d, m]); // [..., Hkv, 1, d, M]
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
  let vh: number; // [..., M, Hkv, dv]
  if (maps === 2 && halves) {
    const vs = L.reshape(v, [...vb, m, 2 * kvHeads, d]);
    vh = b.add("concat", [L.slice(vs, -2, 0, kvHeads), L.slice(vs, -2, kvHeads, 2 * kvHeads)], { axis: -1 });
  } else {
    vh = L.reshape(v, [...vb, m, kvHeads, dv]);
  }
  const vt = L.reshape(L.permuteLast(vh, [1, 0, 2]), [...vb, kvHeads, 1, m, dv]);
  const out = L.op("matmul", p, vt); // [..., Hkv, G, N, dv]
  return L.reshape(L.permuteLast(out, [2, 0, 1, 3]), [...geo.batch, n, heads, dv]);
}
