// How closely a backend must agree with the interpreter, per dtype and op family, in one place.
//
// The interpreter computes each op in float64 and rounds once to the node's dtype. A backend
// that rounds intermediates to the node dtype (every op's result) drifts by a few ulps of that
// dtype per op; sums over K terms add error growing like sqrt(K) ulps at worst in practice.
import type { DType } from "../../compiler/ir/types.ts";

export interface Tolerance {
  /** |a - b| <= atol + rtol * |b| elementwise. */
  rtol: number;
  atol: number;
}

/** Per dtype: a few units in the last place of that dtype (f32: 2^-24 ≈ 6e-8). */
const ULP: Record<DType, number> = { f32: 6e-8, f16: 4.9e-4, bf16: 3.9e-3, i32: 0, i8: 0, u8: 0, bool: 0 };

export type OpFamily =
  /** One op, one rounding: results equal the interpreter's up to the last bit or two. */
  | "elementwise"
  /** Sums and products over many terms (matmul, reductions, norms, softmax). */
  | "reduction"
  /** Whole models and decomposed attention: dozens of rounded intermediates in a chain. */
  | "model";

const FAMILY_ULPS: Record<OpFamily, { rtol: number; atol: number }> = {
  elementwise: { rtol: 4, atol: 4 },
  // Reordered or blocked sums differ by up to ~sqrt(K) ulps; 1e3 ulps covers K up to 1e6.
  reduction: { rtol: 1e3, atol: 1e3 },
  // Softmax over long rows after a rounded q k^T, then @ v: relative error compounds across
  // layers; 2e4 f32 ulps (~1e-3) is still far below any real bug (a wrong mask, a wrong head).
  model: { rtol: 2e4, atol: 2e4 },
};

export function tolerance(dtype: DType, family: OpFamily): Tolerance {
  // Integers and bools must match exactly: there is no rounding to excuse a difference.
  if (ULP[dtype] === 0) return { rtol: 0, atol: 0 };
  const f = FAMILY_ULPS[family];
  return { rtol: f.rtol * ULP[dtype], atol: f.atol * ULP[dtype] };
}
