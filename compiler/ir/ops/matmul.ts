// Batched matrix product with NumPy's matmul rules.
import type { Attrs } from "../graph.ts";
import { OpError, registerOp } from "../registry.ts";
import { broadcastIndex } from "../tensor.ts";
import { broadcastShapes, type Dim, formatType, numel } from "../types.ts";

/** b's shape as the product reads it, [..., k, m]: a 1-D b is a column; with transpose_b its last two axes swap. */
export function logicalB<D extends Dim>(shape: readonly D[], attrs: Attrs): D[] {
  if (shape.length === 1) return [shape[0], 1 as D];
  return attrs.transpose_b ? [...shape.slice(0, -2), shape[shape.length - 1], shape[shape.length - 2]] : [...shape];
}

registerOp({
  name: "matmul",
  doc: "a @ b as NumPy defines it: [..., n, k] @ [..., k, m] -> [..., n, m] with broadcast batch dims; a 1-D a is a row, a 1-D b a column, and that axis is dropped from the result. With transpose_b, b is given as [..., m, k] and read transposed in place: a @ transpose(b) without the copy.",
  operands: ["a", "b"],
  attrs: { transpose_b: { type: "bool", default: false, doc: "b is [..., m, k]: the product is a @ b^T, each sum over k in the same order" } },
  pattern: "matmul",
  infer: ([a, b], attrs) => {
    if (a.dtype !== b.dtype) throw new OpError(`matmul: operand dtypes differ (${formatType(a)} @ ${formatType(b)})`);
    if (a.shape.length === 0 || b.shape.length === 0) throw new OpError(`matmul needs operands of rank 1 or more, got ${formatType(a)} @ ${formatType(b)}`);
    if (attrs.transpose_b && b.shape.length < 2) throw new OpError(`matmul with transpose_b needs b of rank 2 or more, got ${formatType(b)}`);
    const as = a.shape.length === 1 ? [1, a.shape[0]] : a.shape;
    const bs = logicalB(b.shape, attrs);
    const k1 = as[as.length - 1];
    const k2 = bs[bs.length - 2];
    if (k1 !== k2) throw new OpError(`matmul: inner sizes differ: ${formatType(a)} @ ${formatType(b)} (${k1} vs ${k2})`);
    const batch = broadcastShapes(as.slice(0, -2), bs.slice(0, -2));
    if (!batch) throw new OpError(`matmul: batch dims of ${formatType(a)} and ${formatType(b)} do not broadcast`);
    const shape: Dim[] = [...batch];
    if (a.shape.length > 1) shape.push(as[as.length - 2]);
    if (b.shape.length > 1) shape.push(bs[bs.length - 1]);
    return { dtype: a.dtype, shape };
  },
  interpret: ([a, b], attrs, out) => {
    const as = a.shape.length === 1 ? [1, a.shape[0]] : a.shape;
    const bs = logicalB(b.shape, attrs);
    const n = as[as.length - 2];
    const k = as[as.length - 1];
    const m = bs[bs.length - 1];
    const batch = broadcastShapes(as.slice(0, -2), bs.slice(0, -2)) as number[];
    const batches = numel(batch);
    // Per output batch, the batch index of each operand (broadcast).
    const aBatch = broadcastIndex(as.slice(0, -2), batch);
    const bBatch = broadcastIndex(bs.slice(0, -2), batch);
    // Where b[p][j] lies: row p and column j of [k, m], or of the transposed [m, k] in place.
    const [pStride, jStride] = attrs.transpose_b ? [1, k] : [m, 1];
    const data = new Float64Array(numel(out.shape));
    const row = new Float64Array(m);
    // i32 sums of products wrap modulo 2^32, as C, WGSL and CUDA integer math does.
    const wraps = out.dtype === "i32";
    for (let bi = 0; bi < batches; bi++) {
      const aOff = (aBatch ? aBatch[bi] : bi) * n * k;
      const bOff = (bBatch ? bBatch[bi] : bi) * k * m;
      const oOff = bi * n * m;
      // i-k-j order: the inner loop walks rows of b and of the output contiguously.
      for (let i = 0; i < n; i++) {
        row.fill(0);
        for (let p = 0; p < k; p++) {
          const av = a.data[aOff + i * k + p];
          const bRow = bOff + p * pStride;
          if (wraps) for (let j = 0; j < m; j++) row[j] = (row[j] + Math.imul(av, b.data[bRow + j * jStride])) | 0;
          else for (let j = 0; j < m; j++) row[j] += av * b.data[bRow + j * jStride];
        }
        data.set(row, oOff + i * m);
      }
    }
    return data;
  },
});
