// How closely a backend must agree with the interpreter, per dtype and op family, in one place.
//
// The interpreter computes each op in float64 and rounds once to the node's dtype. Units here
// are u, the unit roundoff of the dtype: rounding a real x to the dtype moves it by at most
// u·|x|, and two neighbouring values differ by at most 2u relative. A tolerance of k units is
// |a - e| <= k·u + k·u·|e|: relative for results above 1, absolute below.
//
// Which family a graph's output gets is decided in harness.ts (outputFamily) from its ops and
// the backend's: a backend that is bit-exact on single ops (BackendUnderTest.exactSingleOps)
// introduces no error in the ops it computes by the interpreter's rule, so an output built only
// from those must match bit for bit; the error then comes only from the ops that no backend
// computes by that rule (the streaming attention kernels, high-level ops run as their
// decomposition). A backend's toleranceFactor multiplies every family's units.
import type { DType } from "../../compiler/ir/types.ts";

export interface Tolerance {
  /** |a - e| <= atol + rtol * |e| elementwise. */
  rtol: number;
  atol: number;
  /** Bit for bit: Object.is(a, e), any NaN equal to any NaN; -0 and +0 differ. */
  exact: boolean;
}

/**
 * The unit roundoff u of each dtype: f32 2^-24, f16 2^-11, bf16 2^-8 (their 24, 11 and 8
 * significand bits). Integers and bool have none: there is no rounding to excuse a difference.
 */
export const UNIT_ROUNDOFF: Record<DType, number> = { f32: 2 ** -24, f16: 2 ** -11, bf16: 2 ** -8, i32: 0, i8: 0, u8: 0, bool: 0 };

export type OpFamily =
  /**
   * Only ops the backend computes by the interpreter's rule (exactSingleOps): elementwise ops,
   * copies, reductions and matmul summed in the interpreter's order, softmax, and `fused` nodes,
   * which round every intermediate of their body as the unfused ops do. Same value, same bits.
   */
  | "exact"
  /**
   * One streaming attention kernel (flash_attention, flash_diffattn, their qflash forms) whose result goes straight
   * to the output. The JS kernel computes in float64, like the interpreter, and rounds once.
   */
  | "flash"
  /** Elementwise ops on a backend with its own exp, log, tanh...: one rounding per op. */
  | "elementwise"
  /**
   * One high-level op (attention, diffattn, rmsnorm, layernorm, rope) that a backend may run as
   * its decomposition into primitives, each rounded to the dtype (the JS backend does).
   */
  | "decomposed"
  /**
   * On a backend exact on single ops: the error of its flash and decomposed nodes, carried
   * through later ops that it computes exactly.
   */
  | "carried"
  /** One sum or product over many terms (matmul, reductions, softmax) in another order. */
  | "reduction"
  /** Whole models on a backend that rounds every op its own way. */
  | "model";

const FAMILY_UNITS: Record<Exclude<OpFamily, "exact">, number> = {
  // The JS kernel and the interpreter both compute in float64; they differ in the order of the
  // sums over keys and head columns and in exp (the wasm exp is within 4 float64 ulps of
  // Math.exp): together about (M + d + 8)·2^-53 of the terms' magnitudes, 1e-13 for M = 1000
  // keys, and the epilogue divides by the head's rms, at least sqrt(norm_eps). That is far below
  // one u of f32 (6e-8) or f16 (5e-4), so the single rounding gives the interpreter's value or
  // its neighbour: 2 units relative, and 2 units absolute for results near 0, where
  // cancellation (p1 - λ p2) can leave rounded neighbours closer together than the float64
  // noise. In fact every flash output has been bit-identical, over 150 to 200 runs of each flash
  // case of the op tests (thousands of outputs, N up to 40); a doubled norm_eps moves a result
  // by about norm_eps / (2·mean(y^2)), hundreds of units.
  flash: 2,
  // One rounding (u) after the backend's own transcendental function, itself within 1-3 ulps.
  elementwise: 4,
  // Attention run as its primitives rounds about 7 times in a chain: q k^T, the scale, exp, the
  // row sum and the division, p1 - λ p2, the product with v. Softmax turns a logit's absolute
  // rounding error (2u·|s|; the logits q k^T d^-0.5 are about N(0, 1) for the suite's inputs,
  // so |s| <= ~4) into a relative error of its probability, and the product with v sums these
  // with weights that add up to 1: at most about (2·4 + 7)·max|v| units with every error
  // aligned, 45 units for |v| <= 3. rmsnorm, layernorm and rope round 3 to 6 times with no such
  // amplification. The JS backend, which runs all five as their decompositions, stayed at or
  // under 6.2 units over 150 to 200 runs of each op test case (thousands of outputs, N up to
  // 40). 64 units still fails a doubled rmsnorm eps on rows of mean square <= 1 (eps / 2 = 84
  // units) and anything like a wrong mask, head or λ (thousands of units and more).
  decomposed: 64,
  // A backend exact on single ops adds error only in its flash and decomposed nodes (measured
  // <= 6.2 units, above); the ops after them are the interpreter's own, so they multiply that
  // error by their condition number instead of adding roundings: ~1 for RMSNorm, softmax and
  // Linear layers on rms-normalised rows with 1/sqrt(IN) init, |x| for exp. The JS backend
  // stayed at or under 2.4 units on every example model and on 800 random graphs with
  // attention; 128 units is 20 times the largest source error and still fails a doubled
  // RMSNorm eps in the flash epilogue, which moves the example models by 300 to 3400 units.
  carried: 128,
  // Reordered or blocked sums differ by up to ~sqrt(K) units in practice and K units in the
  // worst case; 1e3 units covers K up to 1e6 in practice.
  reduction: 1e3,
  // Softmax over long rows after a rounded q k^T, then @ v, in layer after layer, every op
  // rounded on its own: relative error compounds across layers; 2e4 f32 units (~1.2e-3) is
  // still far below any real bug (a wrong mask, a wrong head, a dropped norm weight).
  model: 2e4,
};

/** The tolerance for results of `dtype` in `family`, scaled by the backend's factor. */
export function tolerance(dtype: DType, family: OpFamily, factor = 1): Tolerance {
  const u = UNIT_ROUNDOFF[dtype];
  // Integers and bools must match exactly in every family: there is no rounding to excuse a
  // difference (and no -0 to tell apart).
  if (u === 0) return { rtol: 0, atol: 0, exact: false };
  if (family === "exact") return { rtol: 0, atol: 0, exact: true };
  const k = FAMILY_UNITS[family] * factor;
  return { rtol: k * u, atol: k * u, exact: false };
}

/**
 * Level flips of the quantised attention (qflash_*; attention-quant.ts states the level rule).
 * A kernel that computes the rule in f32 (WGSL) finds level = rhe(x / step) from an x and a
 * step that carry f32 rounding, so where x / step lies close to a rounding tie it may take the
 * other level: that value moves by one step, an output row by that step's effect (through the
 * softmax, λ, V and the epilogue), far past the flash tolerance, and the kernel is as right as
 * the interpreter (x is on the tie: both levels are within step/2 of it). So the tolerance is
 * stated in levels, not in units: the harness asks the interpreter itself for the neighbouring
 * level of the ties the kernel may have broken the other way, and the outputs must then match
 * within the flash tolerance.
 *
 * - LEVEL_TIE_WINDOW, in levels: how close x / step must be to a tie for the kernel to be let
 *   break it the other way (and, relative to the threshold, how close a probability must be to
 *   the skip threshold). In f32, a logit is a dot product of d <= 64 terms times a scale,
 *   relative error <= (d + 2)·2^-24 for the suite's inputs, and a probability exp(s - m) / l adds
 *   |s - m|·2^-24 and WGSL's exp (3 + 2|x| ulp) for |s - m| <= ~20: about 70·2^-24 relative in
 *   all, 1.1e-3 levels at the largest level, 255 (8-bit maps); the step's own error (the group's
 *   max, one division) adds as much again on the largest. 2^-9 (2.0e-3) covers it: about 0.4% of
 *   quantised values are that close to a tie, a few per output row at most.
 * - MAX_LEVEL_FLIPS: how many of those ties one comparison may flip. A value within δ of a tie
 *   flips with probability about δ / window for the kernel's error δ (typically 2^-24·sqrt(d)·|x/step|,
 *   1e-6 levels), so the suite's few hundred thousand quantised values flip none or one in a run;
 *   4 is a few times that, and any other difference (a wrong step, mask, group or λ) moves far
 *   more values than 4, or values nowhere near a tie, and fails.
 */
export const LEVEL_TIE_WINDOW = 2 ** -9;
export const MAX_LEVEL_FLIPS = 4;
