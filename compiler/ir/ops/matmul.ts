// Batched matrix product with NumPy's matmul rules.
import { OpError, registerOp } from "../registry.ts";
import { broadcastIndex } from "../tensor.ts";
import { broadcastShapes, type Dim, formatType, numel } from "../types.ts";

registerOp({
  name: "matmul",
  doc: "a @ b as NumPy defines it: [..., n, k] @ [..., k, m] -> [..., n, m] with broadcast batch dims; a 1-D a is a row, a 1-D b a column, and that axis is dropped from the result.",
  operands: ["a", "b"],
  attrs: {},
  pattern: "matmul",
  infer: ([a, b]) => {
    if (a.dtype !== b.dtype) throw new OpError(`matmul: operand dtypes differ (${formatType(a)} @ ${formatType(b)})`);
    if (a.shape.length === 0 || b.shape.length === 0) throw new OpError(`matmul needs operands of rank 1 or more, got ${formatType(a)} @ ${formatType(b)}`);
    const as = a.shape.length === 1 ? [1, a.shape[0]] : a.shape;
    const bs = b.shape.length === 1 ? [b.shape[0], 1] : b.shape;
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
  interpret: ([a, b], _, out) => {
    const as = a.shape.length === 1 ? [1, a.shape[0]] : a.shape;
    const bs = b.shape.length === 1 ? [b.shape[0], 1] : b.shape;
    const n = as[as.length - 2];
    const k = as[as.length - 1];
    const m = bs[bs.length - 1];
    const batch = broadcastShapes(as.slice(0, -2), bs.slice(0, -2)) as number[];
    const batches = numel(batch);
    // Per output batch, the batch index of each operand (broadcast).
    const aBatch = broadcastIndex(as.slice(0, -2), batch);
    const bBatch = broadcastIndex(bs.slice(0, -2), batch);
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
          const bRow = bOff + p * m;
          if (wraps) for (let j = 0; j < m; j++) row[j] = (row[j] + Math.imul(av, b.data[bRow + j])) | 0;
          else for (let j = 0; j < m; j++) row[j] += av * b.data[bRow + j];
        }
        data.set(row, oOff + i * m);
      }
    }
    return data;
  },
});
