// Neural-network building blocks that are one op each because every backend fuses them the
// same way: softmax, the two norms and rotary position embedding.
import type { Attrs } from "../graph.ts";
import { Lowering } from "./lowering.ts";
import { type NodeSink, OpError, registerOp } from "../registry.ts";
import { type Dim, formatType, isFloat, isInteger, normalizeAxis, numel, type TensorType } from "../types.ts";

/**
 * Softmax of row[0..len) in place, max-subtracted. A row that is entirely -inf (every key
 * masked) becomes all 0, as FlashAttention returns; NaN anywhere makes the row NaN.
 */
export function softmaxRow(row: Float64Array, len: number): void {
  let max = -Infinity;
  for (let i = 0; i < len; i++) {
    const v = row[i];
    if (v > max || Number.isNaN(v)) max = v;
    if (Number.isNaN(v)) break;
  }
  if (max === -Infinity) {
    row.fill(0, 0, len);
    return;
  }
  let sum = 0;
  for (let i = 0; i < len; i++) {
    const e = Math.exp(row[i] - max);
    row[i] = e;
    sum += e;
  }
  const inv = 1 / sum;
  for (let i = 0; i < len; i++) row[i] *= inv;
}

function floatOperand(op: string, role: string, t: TensorType): void {
  if (!isFloat(t.dtype)) throw new OpError(`${op}: ${role} must be a float tensor, got ${formatType(t)}`);
}

/** Checks a per-feature parameter (norm weight or bias): shape [C], x's dtype. */
function featureParam(op: string, role: string, x: TensorType, p: TensorType): void {
  const c = x.shape[x.shape.length - 1];
  if (p.shape.length !== 1 || p.shape[0] !== c)
    throw new OpError(`${op}: ${role} ${formatType(p)} must have shape [${c}], the last dim of x ${formatType(x)}`);
  if (p.dtype !== x.dtype) throw new OpError(`${op}: ${role} ${formatType(p)} and x ${formatType(x)} have different dtypes; insert a cast`);
}

registerOp({
  name: "softmax",
  doc: "exp(x - max) / sum(exp(x - max)) along `axis`; a slice that is entirely -inf gives all 0 (as FlashAttention does).",
  operands: ["x"],
  attrs: { axis: { type: "int", default: -1 } },
  pattern: "reduction",
  infer: ([x], a: Attrs) => {
    floatOperand("softmax", "x", x);
    if (normalizeAxis(a.axis as number, x.shape.length) < 0) throw new OpError(`softmax: axis ${a.axis} is out of range for ${formatType(x)}`);
    return { dtype: x.dtype, shape: x.shape };
  },
  interpret: ([x], a) => {
    const axis = normalizeAxis(a.axis as number, x.shape.length);
    const len = x.shape[axis];
    const inner = numel(x.shape.slice(axis + 1));
    const outer = numel(x.shape.slice(0, axis));
    const out = new Float64Array(x.data.length);
    const row = new Float64Array(len);
    for (let o = 0; o < outer; o++) {
      for (let r = 0; r < inner; r++) {
        const base = o * len * inner + r;
        for (let i = 0; i < len; i++) row[i] = x.data[base + i * inner];
        softmaxRow(row, len);
        for (let i = 0; i < len; i++) out[base + i * inner] = row[i];
      }
    }
    return out;
  },
});

function normInfer(op: string, [x, weight, bias]: TensorType[]): TensorType {
  floatOperand(op, "x", x);
  if (x.shape.length === 0) throw new OpError(`${op} normalises over the last axis and needs x of rank 1 or more, got ${formatType(x)}`);
  featureParam(op, "weight", x, weight);
  if (bias) featureParam(op, "bias", x, bias);
  return { dtype: x.dtype, shape: x.shape };
}

/**
 * Whether x's last axis is empty: each row then has nothing to normalise and the result is x
 * itself (empty), as the interpreter computes it; a mean over the empty axis would have no value.
 */
function emptyRows(b: NodeSink, x: number): boolean {
  return b.type(x).shape.at(-1) === 0;
}

registerOp({
  name: "rmsnorm",
  doc: "Over the last axis: x / sqrt(mean(x^2) + eps) * weight, with weight of shape [C].",
  operands: ["x", "weight"],
  attrs: { eps: { type: "float", default: 1e-5 } },
  pattern: "reduction",
  infer: (types) => normInfer("rmsnorm", types),
  interpret: ([x, w], a) => {
    const eps = a.eps as number;
    const c = x.shape[x.shape.length - 1];
    const rows = c === 0 ? 0 : x.data.length / c;
    const out = new Float64Array(x.data.length);
    for (let r = 0; r < rows; r++) {
      const base = r * c;
      let sq = 0;
      for (let i = 0; i < c; i++) sq += x.data[base + i] * x.data[base + i];
      const denom = Math.sqrt(sq / c + eps);
      for (let i = 0; i < c; i++) out[base + i] = (x.data[base + i] / denom) * w.data[i];
    }
    return out;
  },
  decompose: (b, [x, w], a) => {
    if (emptyRows(b, x)) return x;
    const L = new Lowering(b);
    const dtype = b.type(x).dtype;
    const meanSquare = b.add("mean", [L.op("mul", x, x)], { axes: [-1], keepdims: true });
    const denom = L.op("sqrt", L.op("add", meanSquare, L.scalar(a.eps as number, dtype)));
    return L.op("mul", L.op("div", x, denom), w);
  },
});

registerOp({
  name: "layernorm",
  doc: "Over the last axis: (x - mean) / sqrt(var + eps) * weight + bias, var the biased (divide-by-C) variance; no bias means 0.",
  operands: ["x", "weight", "bias?"],
  attrs: { eps: { type: "float", default: 1e-5 } },
  pattern: "reduction",
  infer: (types) => normInfer("layernorm", types),
  interpret: ([x, w, b], a) => {
    const eps = a.eps as number;
    const c = x.shape[x.shape.length - 1];
    const rows = c === 0 ? 0 : x.data.length / c;
    const out = new Float64Array(x.data.length);
    for (let r = 0; r < rows; r++) {
      const base = r * c;
      let sum = 0;
      for (let i = 0; i < c; i++) sum += x.data[base + i];
      const mean = sum / c;
      let sq = 0;
      for (let i = 0; i < c; i++) {
        const d = x.data[base + i] - mean;
        sq += d * d;
      }
      const denom = Math.sqrt(sq / c + eps);
      for (let i = 0; i < c; i++) out[base + i] = ((x.data[base + i] - mean) / denom) * w.data[i] + (b ? b.data[i] : 0);
    }
    return out;
  },
  decompose: (b, [x, w, bias], a) => {
    if (emptyRows(b, x)) return x;
    const L = new Lowering(b);
    const dtype = b.type(x).dtype;
    const centred = L.op("sub", x, b.add("mean", [x], { axes: [-1], keepdims: true }));
    const variance = b.add("mean", [L.op("mul", centred, centred)], { axes: [-1], keepdims: true });
    const y = L.op("mul", L.op("div", centred, L.op("sqrt", L.op("add", variance, L.scalar(a.eps as number, dtype)))), w);
    return bias === undefined ? y : L.op("add", y, bias);
  },
});

/** The rotary head size: the attribute, or the whole last dim when it is 0. */
function ropeHeadDim(x: TensorType, a: Attrs): number {
  const c = x.shape[x.shape.length - 1];
  const headDim = a.head_dim as number;
  if (typeof c !== "number") throw new OpError(`rope: the last dim of x ${formatType(x)} must be a static size to split it into heads`);
  if (headDim < 0) throw new OpError(`rope: head_dim must be positive (or 0 for the whole last dim), got ${headDim}`);
  const d = headDim === 0 ? c : headDim;
  if (d === 0 || d % 2 !== 0) throw new OpError(`rope: head_dim ${d} must be even and positive (x is ${formatType(x)})`);
  if (c % d !== 0) throw new OpError(`rope: the last dim ${c} of x ${formatType(x)} is not a multiple of head_dim ${d}`);
  return d;
}

registerOp({
  name: "rope",
  doc:
    "Rotary embedding of x [..., N, C] (C = heads * head_dim) at positions pos [N]: within each head, pair i rotates by pos * theta^(-2i/head_dim), " +
    "(x0, x1) -> (x0 cos - x1 sin, x0 sin + x1 cos); the pair is (2i, 2i+1) when interleaved (the official Diff Transformer code), (i, i + head_dim/2) otherwise (GPT-NeoX, Llama-HF).",
  operands: ["x", "pos"],
  attrs: {
    theta: { type: "float", default: 10000 },
    head_dim: { type: "int", default: 0, doc: "0: the whole last dim is one head" },
    interleaved: { type: "bool", default: true },
  },
  pattern: "opaque",
  infer: ([x, pos], a) => {
    floatOperand("rope", "x", x);
    if (x.shape.length < 2) throw new OpError(`rope needs x of shape [..., N, C], got ${formatType(x)}`);
    ropeHeadDim(x, a);
    const n: Dim = x.shape[x.shape.length - 2];
    if (!isFloat(pos.dtype) && !isInteger(pos.dtype)) throw new OpError(`rope: pos must be numeric, got ${formatType(pos)}`);
    if (pos.shape.length !== 1 || pos.shape[0] !== n)
      throw new OpError(`rope: pos ${formatType(pos)} must have shape [${n}], one position per row of x ${formatType(x)}`);
    return { dtype: x.dtype, shape: x.shape };
  },
  interpret: ([x, pos], a) => {
    const headDim = ropeHeadDim(x, a);
    const half = headDim / 2;
    const theta = a.theta as number;
    const c = x.shape[x.shape.length - 1];
    const n = x.shape[x.shape.length - 2];
    // cos/sin per (row, pair), shared by every head and batch.
    const cos = new Float64Array(n * half);
    const sin = new Float64Array(n * half);
    for (let r = 0; r < n; r++) {
      for (let i = 0; i < half; i++) {
        const angle = pos.data[r] * theta ** ((-2 * i) / headDim);
        cos[r * half + i] = Math.cos(angle);
        sin[r * half + i] = Math.sin(angle);
      }
    }
    const [lo, hi] = a.interleaved ? [2, 1] : [1, half]; // pair i is (lo*i, lo*i + hi)
    const out = new Float64Array(x.data.length);
    const rows = c === 0 ? 0 : x.data.length / c;
    for (let row = 0; row < rows; row++) {
      const t = (row % n) * half;
      for (let head = row * c; head < (row + 1) * c; head += headDim) {
        for (let i = 0; i < half; i++) {
          const i0 = head + lo * i;
          const i1 = i0 + hi;
          const x0 = x.data[i0];
          const x1 = x.data[i1];
          out[i0] = x0 * cos[t + i] - x1 * sin[t + i];
          out[i1] = x0 * sin[t + i] + x1 * cos[t + i];
        }
      }
    }
    return out;
  },
  decompose: (b, [x, pos], a) => {
    const L = new Lowering(b);
    const t = b.type(x);
    const dtype = t.dtype;
    const headDim = ropeHeadDim(t, a);
    const half = headDim / 2;
    const c = t.shape[t.shape.length - 1] as number;
    const n = t.shape[t.shape.length - 2];
    const lead = t.shape.slice(0, -2);
    // angle[r, i] = pos[r] * theta^(-2i / head_dim), shaped to broadcast over heads.
    const i = b.add("iota", [], { shape: [half], axis: 0, dtype });
    const freq = L.op("pow", L.scalar(a.theta as number, dtype), L.op("mul", i, L.scalar(-2 / headDim, dtype)));
    const p = b.type(pos).dtype === dtype ? pos : b.add("cast", [pos], { dtype });
    const angle = L.op("mul", L.reshape(p, [n, 1]), L.reshape(freq, [1, half]));
    // Pairs (x0, x1): interleaved [..., N, heads, half, 2]; else [..., N, heads, 2, half].
    const interleaved = a.interleaved as boolean;
    const pairShape = interleaved ? [half, 2] : [2, half];
    const pairAxis = interleaved ? -1 : -2;
    const angleShape = interleaved ? [n, 1, half, 1] : [n, 1, 1, half];
    const cos = L.reshape(L.op("cos", angle), angleShape);
    const sin = L.reshape(L.op("sin", angle), angleShape);
    const pairs = L.reshape(x, [...lead, n, c / headDim, ...pairShape]);
    const x0 = L.slice(pairs, pairAxis, 0, 1);
    const x1 = L.slice(pairs, pairAxis, 1, 2);
    const y0 = L.op("sub", L.op("mul", x0, cos), L.op("mul", x1, sin));
    const y1 = L.op("add", L.op("mul", x0, sin), L.op("mul", x1, cos));
    return L.reshape(b.add("concat", [y0, y1], { axis: pairAxis }), t.shape);
  },
});
