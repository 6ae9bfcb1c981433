// Host tensors: the interpreter's values. Data is float64 whatever the dtype; the interpreter
// rounds each result to its node's dtype (see round.ts).
import { type DType, numel, stridesOf } from "./types.ts";

export interface HostTensor {
  dtype: DType;
  shape: number[];
  data: Float64Array;
}

export function tensor(dtype: DType, shape: number[], data?: ArrayLike<number>): HostTensor {
  const n = numel(shape);
  const d = new Float64Array(n);
  if (data) {
    if (data.length !== n) throw new Error(`tensor of shape [${shape}] needs ${n} values, got ${data.length}`);
    d.set(data);
  }
  return { dtype, shape: [...shape], data: d };
}

/**
 * For each flat index of `outShape`, the flat index into a tensor of `inShape` that NumPy
 * broadcasting reads. Computed once per operand so elementwise loops stay flat.
 */
export function broadcastIndex(inShape: readonly number[], outShape: readonly number[]): Int32Array | undefined {
  if (inShape.length === outShape.length && inShape.every((d, i) => d === outShape[i])) return undefined;
  const rank = outShape.length;
  const inStrides = stridesOf(inShape);
  // Stride 0 along broadcast axes and along leading axes the input lacks.
  const strides = outShape.map((d, i) => {
    const j = i - (rank - inShape.length);
    return j < 0 || inShape[j] === 1 ? 0 : inStrides[j];
  });
  const n = numel(outShape);
  const index = new Int32Array(n);
  const counter = new Array<number>(rank).fill(0);
  let offset = 0;
  for (let i = 0; i < n; i++) {
    index[i] = offset;
    for (let a = rank - 1; a >= 0; a--) {
      counter[a]++;
      offset += strides[a];
      if (counter[a] < outShape[a]) break;
      offset -= strides[a] * counter[a];
      counter[a] = 0;
    }
  }
  return index;
}
