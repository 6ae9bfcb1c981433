// Ops that move data without arithmetic: each output element reads one input element.
import { OpError, registerOp } from "../registry.ts";
import { broadcastIndex } from "../tensor.ts";
import { broadcastShapes, type Dim, formatShape, formatType, isInteger, normalizeAxis, numel, sameSize, sameShape, stridesOf, type TensorType } from "../types.ts";

function axisOf(op: string, t: TensorType, axis: number): number {
  const a = normalizeAxis(axis, t.shape.length);
  if (a < 0) throw new OpError(`${op}: axis ${axis} is out of range for ${formatType(t)}`);
  return a;
}

registerOp({
  name: "reshape",
  doc: "Reinterprets the row-major data under a new shape of the same size.",
  operands: ["x"],
  attrs: { shape: { type: "shape" } },
  pattern: "injective",
  infer: ([t], a) => {
    const shape = a.shape as Dim[];
    if (!sameSize(t.shape, shape)) throw new OpError(`reshape: cannot reshape ${formatType(t)} to ${formatShape(shape)}: the sizes differ`);
    return { dtype: t.dtype, shape };
  },
  interpret: ([x]) => x.data.slice(),
});

/** The permutation a transpose applies; [] swaps the last two axes. */
export function transposePerm(rank: number, perm: number[]): number[] {
  if (perm.length > 0) return perm;
  const p = [...Array(rank).keys()];
  if (rank >= 2) [p[rank - 2], p[rank - 1]] = [p[rank - 1], p[rank - 2]];
  return p;
}

registerOp({
  name: "transpose",
  doc: "Permutes axes: out.shape[i] = x.shape[perm[i]]. An empty perm swaps the last two axes.",
  operands: ["x"],
  attrs: { perm: { type: "ints", default: [] } },
  pattern: "injective",
  infer: ([t], a) => {
    const rank = t.shape.length;
    const perm = transposePerm(rank, a.perm as number[]);
    if ((a.perm as number[]).length === 0 && rank < 2) throw new OpError(`transpose needs at least 2 axes, got ${formatType(t)}`);
    const sorted = [...perm].sort((x, y) => x - y);
    if (perm.length !== rank || sorted.some((p, i) => p !== i))
      throw new OpError(`transpose: [${perm.join(", ")}] is not a permutation of the ${rank} axes of ${formatType(t)}`);
    return { dtype: t.dtype, shape: perm.map((p) => t.shape[p]) };
  },
  interpret: ([x], a, out) => {
    const perm = transposePerm(x.shape.length, a.perm as number[]);
    const inStrides = stridesOf(x.shape);
    const strides = perm.map((p) => inStrides[p]);
    return gatherStrided(x.data, out.shape, strides, 0);
  },
});

/** out[i...] = data[offset + sum(i_k * strides_k)], walked in row-major order. */
function gatherStrided(data: Float64Array, shape: number[], strides: number[], offset: number): Float64Array {
  const n = numel(shape);
  const out = new Float64Array(n);
  const rank = shape.length;
  const counter = new Array<number>(rank).fill(0);
  let src = offset;
  for (let i = 0; i < n; i++) {
    out[i] = data[src];
    for (let ax = rank - 1; ax >= 0; ax--) {
      counter[ax]++;
      src += strides[ax];
      if (counter[ax] < shape[ax]) break;
      src -= strides[ax] * counter[ax];
      counter[ax] = 0;
    }
  }
  return out;
}

/** Python slice bounds for a static size: negative indices count from the end, then clamp. */
export function sliceRange(size: number, start: number, end: number, step: number): { start: number; count: number } {
  const clamp = (i: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, i < 0 ? i + size : i));
  if (step > 0) {
    const s = clamp(start, 0, size);
    const e = clamp(end, 0, size);
    return { start: s, count: Math.max(0, Math.ceil((e - s) / step)) };
  }
  const s = clamp(start, -1, size - 1);
  const e = clamp(end, -1, size - 1);
  return { start: s, count: Math.max(0, Math.ceil((e - s) / step)) };
}

registerOp({
  name: "slice",
  doc: "x[start:end:step] along one axis, with Python's rules (negative indices count from the end; bounds clamp).",
  operands: ["x"],
  attrs: { axis: { type: "int", default: 0 }, start: { type: "int", default: 0 }, end: { type: "int" }, step: { type: "int", default: 1 } },
  pattern: "injective",
  infer: ([t], a) => {
    const axis = axisOf("slice", t, a.axis as number);
    const size = t.shape[axis];
    if (typeof size !== "number") throw new OpError(`slice: axis ${a.axis} of ${formatType(t)} has symbolic size ${size}; slicing needs a static size`);
    if (a.step === 0) throw new OpError("slice: step must not be 0");
    const { count } = sliceRange(size, a.start as number, a.end as number, a.step as number);
    const shape = [...t.shape];
    shape[axis] = count;
    return { dtype: t.dtype, shape };
  },
  interpret: ([x], a, out) => {
    const axis = normalizeAxis(a.axis as number, x.shape.length);
    const { start } = sliceRange(x.shape[axis], a.start as number, a.end as number, a.step as number);
    const strides = stridesOf(x.shape);
    const offset = start * strides[axis];
    const outStrides = [...strides];
    outStrides[axis] *= a.step as number;
    return gatherStrided(x.data, out.shape, outStrides, offset);
  },
});

registerOp({
  name: "concat",
  doc: "Joins tensors along an axis; every other size must match.",
  operands: ["xs..."],
  attrs: { axis: { type: "int", default: 0 } },
  pattern: "injective",
  infer: (types, a) => {
    const first = types[0];
    const axis = axisOf("concat", first, a.axis as number);
    let total = 0;
    for (const t of types) {
      if (t.dtype !== first.dtype || t.shape.length !== first.shape.length || t.shape.some((d, i) => i !== axis && d !== first.shape[i]))
        throw new OpError(`concat along axis ${a.axis}: ${types.map(formatType).join(", ")} differ off that axis`);
      const d = t.shape[axis];
      if (typeof d !== "number") throw new OpError(`concat along axis ${a.axis}: ${formatType(t)} has symbolic size ${d} there`);
      total += d;
    }
    const shape = [...first.shape];
    shape[axis] = total;
    return { dtype: first.dtype, shape };
  },
  interpret: (args, a, out) => {
    const axis = normalizeAxis(a.axis as number, out.shape.length);
    const outer = numel(out.shape.slice(0, axis));
    const inner = numel(out.shape.slice(axis + 1));
    const data = new Float64Array(numel(out.shape));
    let o = 0;
    for (let i = 0; i < outer; i++) {
      for (const x of args) {
        const chunk = x.shape[axis] * inner;
        data.set(x.data.subarray(i * chunk, (i + 1) * chunk), o);
        o += chunk;
      }
    }
    return data;
  },
});

registerOp({
  name: "gather",
  doc: "Indexes `table` along `axis` with an integer tensor: out.shape = table.shape[:axis] + indices.shape + table.shape[axis+1:]. An index outside [0, size) is a run-time error.",
  operands: ["table", "indices"],
  attrs: { axis: { type: "int", default: 0 } },
  pattern: "injective",
  infer: ([table, indices], a) => {
    const axis = axisOf("gather", table, a.axis as number);
    if (!isInteger(indices.dtype)) throw new OpError(`gather: indices must be an integer tensor, got ${formatType(indices)}`);
    return { dtype: table.dtype, shape: [...table.shape.slice(0, axis), ...indices.shape, ...table.shape.slice(axis + 1)] };
  },
  interpret: ([table, indices], a, out) => {
    const axis = normalizeAxis(a.axis as number, table.shape.length);
    const outer = numel(table.shape.slice(0, axis));
    const size = table.shape[axis];
    const inner = numel(table.shape.slice(axis + 1));
    const data = new Float64Array(numel(out.shape));
    let o = 0;
    for (let i = 0; i < outer; i++) {
      for (let j = 0; j < indices.data.length; j++) {
        const k = indices.data[j];
        if (!(k >= 0 && k < size)) throw new RangeError(`gather: index ${k} is out of range for an axis of size ${size}`);
        data.set(table.data.subarray((i * size + k) * inner, (i * size + k + 1) * inner), o);
        o += inner;
      }
    }
    return data;
  },
});

registerOp({
  name: "broadcast",
  doc: "Expands x to `shape` by NumPy broadcasting.",
  operands: ["x"],
  attrs: { shape: { type: "shape" } },
  pattern: "injective",
  infer: ([t], a) => {
    const shape = a.shape as Dim[];
    const b = broadcastShapes(t.shape, shape);
    if (!b || !sameShape(b, shape)) throw new OpError(`broadcast: ${formatType(t)} does not broadcast to ${formatShape(shape)}`);
    return { dtype: t.dtype, shape };
  },
  interpret: ([x], _, out) => {
    const idx = broadcastIndex(x.shape, out.shape);
    if (!idx) return x.data.slice();
    const data = new Float64Array(idx.length);
    for (let i = 0; i < idx.length; i++) data[i] = x.data[idx[i]];
    return data;
  },
});
