// The IR's math functions (compiler/ir/scalar.ts, MATH) in WebAssembly SIMD f32x4 lanes, for
// the JS backend's f32 kernels: plain SIMD128 (no relaxed SIMD), so every engine that runs the
// kernels validates them. Each is written as a reduction of its argument, a polynomial on the
// reduced interval, and the special values fixed up by lane masks (no branches: every lane
// runs every path, and a bitselect keeps the right one).
//
// Accuracy, against the interpreter's value (the float64 function of the float32 input,
// rounded to float32), measured by test/backends/wasm-math.test.ts over dense sweeps, every
// 8191st float32 bit pattern, special values and random floats: the largest errors seen are
// exp 2 ulps, log 1, tanh 1, erf 1, sin 1, cos 2 (sin and cos for |x| < 3.37e9) and pow 1;
// NaN, ±Infinity and signed zeros come out exactly as the interpreter's. The polynomial
// coefficients are near-minimax fits (Lawson's reweighted least squares against 40-digit
// values), rounded to float32 one term at a time from the lowest, the later terms refitted to
// absorb the earlier ones' rounding.

import { MATH, type MathFn } from "../../compiler/ir/scalar.ts";
import { type Body, exp, F32X4, F64X2, polynomial, V128 } from "./wasm-encoder.ts";
import {
  F32X4_CONVERT_I32X4_S, F32X4_DEMOTE_F64X2_ZERO, F32X4_EQ, F32X4_TRUNC, F64X2_PROMOTE_LOW_F32X4, I32X4_ADD, I32X4_EQ, I32X4_SHL, I32X4_SHR_S, I32X4_SUB,
  I64X2_EXTEND_HIGH_I32X4_S, I64X2_EXTEND_LOW_I32X4_S, I8X16_SHUFFLE, V128_AND, V128_ANDNOT, V128_BITSELECT, V128_OR, V128_XOR,
} from "./wasm-opcodes.ts";

const L = F32X4;

/** v128.const with the 32 bits `bits` in every lane. */
const lanesOf = (bits: number) => [0xfd, 0x0c, ...new Uint8Array(new Int32Array([bits, bits, bits, bits]).buffer)];
const SIGN = lanesOf(0x80000000 | 0);
const f32Bits = (x: number) => new Int32Array(new Float32Array([x]).buffer)[0];

/** The math functions this file computes in f32x4 lanes. */
export const F32X4_MATH: ReadonlySet<MathFn> = new Set<MathFn>(["exp", "log", "tanh", "erf", "sin", "cos", "pow"]);

/**
 * Emits code that sets the v128 local `out` to fn(args) lane by lane, args being v128 locals
 * of f32x4 values (two for pow). Scratch locals it uses are named with the prefix `math_`
 * (so they never clash with the caller's), all v128 or i32. `out` may equal an argument.
 */
export function f32x4Math(f: Body, fn: MathFn, args: string[], out: string): void {
  const emit = EMITTERS[fn];
  // The interpreter's function says how many arguments fn takes.
  if (!emit || args.length !== MATH[fn].length) throw new Error(`f32x4Math: ${fn} of ${args.length} arguments is not computed in f32x4 lanes`);
  emit(f, args, out);
}

const EMITTERS: Partial<Record<MathFn, (f: Body, args: string[], out: string) => void>> = {
  // Max error 2 ulps; subnormal results rounded once, 0 below them, Infinity past 88.72.
  exp: (f, [x], out) => exp(f, L, x, out, "full"),
  log: (f, [x], out) => log(f, x, out),
  tanh: (f, [x], out) => tanh(f, x, out),
  erf: (f, [x], out) => erf(f, x, out),
  sin: (f, [x], out) => sinCos(f, x, out, 0),
  cos: (f, [x], out) => sinCos(f, x, out, 1),
  pow: (f, [x, y], out) => pow(f, x, y, out),
};

// log (musl's logf, after fdlibm): x = 2^k m with m in [sqrt(2)/2, sqrt(2)), f = m - 1,
// s = f / (2 + f), log(1 + f) = f - f^2/2 + s (f^2/2 + R(s^2)), and k ln 2 added in two parts
// last, so that log x near 1 keeps f's relative accuracy. Subnormal x are scaled by 2^25 first.
const LOG_R = { Lg1: 0xaaaaaa * 2 ** -24, Lg2: 0xccce13 * 2 ** -25, Lg3: 0x91e9ee * 2 ** -25, Lg4: 0xf89e26 * 2 ** -26 };
const LN2_HI = 0.693138122558593750; // 0x3f317180: k ln2_hi is exact
const LN2_LO = 9.0580006144591607e-6; // 0x3717f7d1
const SQRT_HALF_BITS = 0x3f3504f3;

/**
 * x = 2^k m with m in [sqrt(2)/2, sqrt(2)) for the positive finite lanes of x (the others are
 * the caller's to fix): k (as a float) into math_e2, m into math_m.
 */
function splitExponent(f: Body, x: string): void {
  // Subnormal (and 0, negative) x: times 2^25, and k less 25.
  f.get(x, V128).op(...L.constant(2 ** -126)).simd(L.lt).set("math_tiny", V128);
  f.get(x, V128).op(...L.constant(2 ** 25)).simd(L.mul).get(x, V128).get("math_tiny", V128).simd(V128_BITSELECT);
  // ix = bits + (1 - sqrt(1/2))'s bit offset: its exponent field is k + 127.
  f.op(...lanesOf(f32Bits(1) - SQRT_HALF_BITS)).simd(I32X4_ADD).set("math_ix", V128);
  f.get("math_ix", V128).i32(23).simd(I32X4_SHR_S).op(...lanesOf(127)).simd(I32X4_SUB);
  f.get("math_tiny", V128).op(...lanesOf(25)).simd(V128_AND).simd(I32X4_SUB).simd(F32X4_CONVERT_I32X4_S).set("math_e2", V128);
  f.get("math_ix", V128).op(...lanesOf(0x7fffff)).simd(V128_AND).op(...lanesOf(SQRT_HALF_BITS)).simd(I32X4_ADD).set("math_m", V128);
}

/** Max error 1 ulp. */
function log(f: Body, x: string, out: string): void {
  const { Lg1, Lg2, Lg3, Lg4 } = LOG_R;
  splitExponent(f, x);
  f.get("math_m", V128).op(...L.constant(1)).simd(L.sub).set("math_f", V128);
  f.get("math_f", V128).get("math_f", V128).op(...L.constant(2)).simd(L.add).simd(L.div).set("math_s", V128);
  f.get("math_s", V128).get("math_s", V128).simd(L.mul).set("math_z", V128);
  f.get("math_z", V128).get("math_z", V128).simd(L.mul).set("math_w", V128);
  // R = z (Lg1 + w Lg3) + w (Lg2 + w Lg4)
  f.get("math_w", V128).op(...L.constant(Lg3)).simd(L.mul).op(...L.constant(Lg1)).simd(L.add).get("math_z", V128).simd(L.mul);
  f.get("math_w", V128).op(...L.constant(Lg4)).simd(L.mul).op(...L.constant(Lg2)).simd(L.add).get("math_w", V128).simd(L.mul);
  f.simd(L.add).set("math_r", V128);
  f.get("math_f", V128).get("math_f", V128).simd(L.mul).op(...L.constant(0.5)).simd(L.mul).set("math_hfsq", V128);
  // s (hfsq + R) + k ln2_lo - hfsq + f + k ln2_hi
  f.get("math_s", V128).get("math_hfsq", V128).get("math_r", V128).simd(L.add).simd(L.mul);
  f.get("math_e2", V128).op(...L.constant(LN2_LO)).simd(L.mul).simd(L.add);
  f.get("math_hfsq", V128).simd(L.sub).get("math_f", V128).simd(L.add);
  f.get("math_e2", V128).op(...L.constant(LN2_HI)).simd(L.mul).simd(L.add);
  // Where x is not positive and finite: log(±0) = -Infinity, log(x < 0) = NaN (all bits set),
  // log(Infinity) = Infinity and log(NaN) = NaN are x itself.
  f.op(...L.constant(-Infinity)).get(x, V128).get(x, V128).op(...L.constant(0)).simd(L.lt).simd(V128_OR);
  f.get(x, V128).op(...L.constant(0)).simd(F32X4_EQ).simd(V128_BITSELECT);
  f.get(x, V128).op(...L.constant(0)).simd(L.gt).get(x, V128).op(...L.constant(Infinity)).simd(L.lt).simd(V128_AND);
  f.simd(V128_BITSELECT).set(out, V128);
}

/** out = |result| with the sign of x, for the v128 locals: tanh, erf and sin are odd. */
function withSignOf(f: Body, x: string, result: string, out: string): void {
  f.get(x, V128).get(result, V128).op(...SIGN).simd(V128_BITSELECT).set(out, V128);
}

// tanh(a) = a + a^3 P(a^2) for a = |x| <= 0.625 (relative error of the fit 4.5e-9), where
// 1 - 2 / (e^2a + 1) would cancel; above, 1 - 2 / (e^2a + 1), whose quotient is below 0.45 so
// that its error stays under the result's ulp; e^2a = Infinity gives 1. The sign is x's.
const TANH_SPLIT = 0.625;
const TANH_P = [-0.3333328068256378, 0.13331405818462372, -0.05373651534318924, 0.02062816731631756, -0.0056922961957752705];

/** Max error 1 ulp. */
function tanh(f: Body, x: string, out: string): void {
  f.get(x, V128).simd(L.abs).set("math_a", V128);
  f.get("math_a", V128).get("math_a", V128).simd(L.mul).set("math_z", V128);
  f.get("math_a", V128).get("math_a", V128).simd(L.add).set("math_2a", V128);
  exp(f, L, "math_2a", "math_e", "full");
  f.op(...L.constant(1)).op(...L.constant(2)).get("math_e", V128).op(...L.constant(1)).simd(L.add).simd(L.div).simd(L.sub);
  polynomial(f, L, "math_z", TANH_P);
  f.get("math_z", V128);
  f.simd(L.mul).get("math_a", V128).simd(L.mul).get("math_a", V128).simd(L.add);
  f.get("math_a", V128).op(...L.constant(TANH_SPLIT)).simd(L.gt).simd(V128_BITSELECT).set("math_y", V128);
  withSignOf(f, x, "math_y", out);
}

// erf(a) for a = |x| (Juffa's split at 475/512): below it a + a Q(a^2) (the 1.128... written as
// 1 + 0.128... so that its float32 rounding costs nothing; relative error of the fit 9e-10);
// above, 1 - e^P(a) with P a polynomial fit to log erfc on [475/512, 4] (weighted by erfc / erf,
// the error it makes in erf: 8e-11). erf(4) rounds to 1 in float32, so a is clamped to 4
// (Infinity included). The sign is x's.
const ERF_SPLIT = 0.927734375;
const ERF_Q = [0.12837916612625122, -0.3761262893676758, 0.11283625662326813, -0.026855729520320892, 0.005192393437027931, -0.0008049544994719326, 7.995286432560533e-5];
const LOG_ERFC_P = [1.6202169354073703e-4, -1.129453182220459, -0.6334733366966248, -0.10813930630683899, 0.02502742037177086, -0.004135794937610626, 4.271246143616736e-4, -2.045602013822645e-5];

/** Max error 1 ulp. */
function erf(f: Body, x: string, out: string): void {
  f.get(x, V128).simd(L.abs).set("math_a", V128);
  f.get("math_a", V128).op(...L.constant(4)).simd(L.min).set("math_c", V128);
  polynomial(f, L, "math_c", LOG_ERFC_P);
  f.set("math_p", V128);
  exp(f, L, "math_p", "math_e");
  f.op(...L.constant(1)).get("math_e", V128).simd(L.sub);
  f.get("math_a", V128).get("math_a", V128).simd(L.mul).set("math_z", V128);
  polynomial(f, L, "math_z", ERF_Q);
  f.get("math_a", V128).simd(L.mul).get("math_a", V128).simd(L.add);
  f.get("math_a", V128).op(...L.constant(ERF_SPLIT)).simd(L.gt).simd(V128_BITSELECT).set("math_y", V128);
  withSignOf(f, x, "math_y", out);
}

// sin and cos of a = |x| (cos is even, sin odd: sin x takes x's sign, so sin(-0) = -0):
// a = j pi/2 + r with j = nearest(a 2/pi) and |r| <= pi/4, reduced in float64 (two f64x2
// halves) by Cody–Waite with pi/2 in three parts, the first two of 22 bits so that j·part is
// exact for j < 2^31, the third the rest rounded to float64 (what they leave out is 8e-32 per
// unit of j). float32 cannot hold r accurately enough near a multiple of pi/2; float64 holds
// it to the last bit for every |x| below 2^31 pi/2 (3.37e9). Quadrant j + q (q = 0 for sin,
// 1 for cos) picks sin r or cos r and the sign: j's low bits are read from its round-constant
// sum. Past 3.37e9 j·part is rounded, and the error grows as |x| 2^-53; past 2^51 the quadrant
// means nothing, and the result is only held to [-1, 1]. Infinity and NaN give NaN.
const PIO2 = [1.570796012878418, 3.139164164167596e-7, 6.223372171896613e-14];
// sin r = r + r^3 S(r^2), cos r = 1 - r^2/2 + r^4 C(r^2), fitted on |r| <= pi/4 + 0.01:
// relative errors 4.2e-9 and 1.5e-10.
const SIN_S = [-0.16666653752326965, 0.008332104422152042, -1.9507446268107742e-4];
const COS_C = [0.04166664555668831, -0.001388729433529079, 2.4429415134363808e-5];
/** i8x16.shuffle's lanes for the low 8 bytes of each operand: two demoted f64x2 halves as one f32x4. */
const LOW_HALVES = [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23];

/** Pushes lanes 2 half and 2 half + 1 of the f32x4 local `name` as an f64x2. */
function promoteHalf(f: Body, name: string, half: number): void {
  f.get(name, V128);
  if (half) f.get(name, V128).simd(I8X16_SHUFFLE, ...Array.from({ length: 16 }, (_, i) => 8 + (i % 8)));
  f.simd(F64X2_PROMOTE_LOW_F32X4);
}

/**
 * Max error 1 ulp (sin) and 2 ulps (cos) for |x| < 3.37e9 (2^31 pi/2); past it, measured: 12
 * ulps to 1e10, then absolute errors of 5e-5 at 1e12 and 0.05 at 1e15.
 */
function sinCos(f: Body, x: string, out: string, quadrant: 0 | 1): void {
  const { round } = F64X2.exp;
  f.get(x, V128).simd(L.abs).set("math_a", V128);
  for (const half of [0, 1]) {
    promoteHalf(f, "math_a", half);
    f.set("math_ad", V128);
    f.get("math_ad", V128).op(...F64X2.constant(2 / Math.PI)).simd(F64X2.mul).op(...F64X2.constant(round)).simd(F64X2.add).set(`math_jt${half}`, V128);
    f.get(`math_jt${half}`, V128).op(...F64X2.constant(round)).simd(F64X2.sub).set("math_j", V128);
    f.get("math_ad", V128);
    for (const part of PIO2) f.get("math_j", V128).op(...F64X2.constant(part)).simd(F64X2.mul).simd(F64X2.sub);
    f.simd(F32X4_DEMOTE_F64X2_ZERO).set(`math_r${half}`, V128);
  }
  // r as f32x4: the two halves' low lanes (held to [-1, 1], which changes no r of the accurate
  // range and keeps the polynomials in [-1, 1] past it); the quadrant: the low 32 bits of each
  // j + round.
  f.get("math_r0", V128).get("math_r1", V128).simd(I8X16_SHUFFLE, ...LOW_HALVES);
  f.op(...L.constant(-1)).simd(L.max).op(...L.constant(1)).simd(L.min).set("math_r", V128);
  f.get("math_jt0", V128).get("math_jt1", V128).simd(I8X16_SHUFFLE, ...[0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27]);
  if (quadrant) f.op(...lanesOf(quadrant)).simd(I32X4_ADD);
  f.set("math_q", V128);
  f.get("math_r", V128).get("math_r", V128).simd(L.mul).set("math_z", V128);
  // cos r, sin r, and the odd quadrants' choice of cos r.
  polynomial(f, L, "math_z", COS_C);
  f.get("math_z2", V128).simd(L.mul).get("math_z", V128).op(...L.constant(0.5)).simd(L.mul).simd(L.sub).op(...L.constant(1)).simd(L.add);
  polynomial(f, L, "math_z", SIN_S);
  f.get("math_z", V128).simd(L.mul).get("math_r", V128).simd(L.mul).get("math_r", V128).simd(L.add);
  f.get("math_q", V128).op(...lanesOf(1)).simd(V128_AND).op(...lanesOf(1)).simd(I32X4_EQ).simd(V128_BITSELECT);
  // Quadrants 2 and 3 negate (bit 1 of the quadrant moved to the sign bit), and sin takes x's sign.
  f.get("math_q", V128).i32(30).simd(I32X4_SHL);
  if (quadrant === 0) f.get(x, V128).simd(V128_XOR);
  f.op(...SIGN).simd(V128_AND).simd(V128_XOR).set(out, V128);
}

// pow (JS's x ** y) as e^(y ln|x|) in float64, where y ln|x| keeps the bits that a float32
// result needs for every y (|y ln|x|| reaches 104 before the result is 0 or Infinity):
// |x| = 2^k m as for log, ln m = 2 atanh(s), s = (m - 1) / (m + 1), by its series to s^15
// (truncation 2e-14 relative), then the float64 exp over its full range, demoted to float32
// (one rounding, to a subnormal, 0 or Infinity where it falls; an exact result halfway
// between two floats, such as 2 ** -150, may round to either). ln 0 = -Infinity and
// ln Infinity = Infinity give the limits of 0 and Infinity to the powers; then the sign and
// the special cases of ** in float32 lanes: x < 0 (finite) to a non-integer y is NaN, a sign
// bit on x to an odd integer y is kept, y = ±0 gives 1 (even for NaN x), and |x| = 1 to
// y = ±Infinity is NaN (JS, not C) because ±Infinity · 0 is.
const ATANH_SERIES = Array.from({ length: 8 }, (_, i) => 2 / (2 * i + 1));

/** Max error 1 ulp. */
function pow(f: Body, x: string, y: string, out: string): void {
  f.get(x, V128).simd(L.abs).set("math_ax", V128);
  splitExponent(f, "math_ax");
  // ln|x| where |x| is 0, Infinity or NaN: -Infinity, Infinity, NaN.
  f.op(...L.constant(-Infinity)).get("math_ax", V128).get("math_ax", V128).op(...L.constant(0)).simd(F32X4_EQ).simd(V128_BITSELECT).set("math_special", V128);
  f.get("math_ax", V128).op(...L.constant(0)).simd(L.gt).get("math_ax", V128).op(...L.constant(Infinity)).simd(L.lt).simd(V128_AND).set("math_valid", V128);
  for (const half of [0, 1]) {
    promoteHalf(f, "math_m", half);
    f.op(...F64X2.constant(1)).simd(F64X2.sub).set("math_f", V128);
    f.get("math_f", V128).get("math_f", V128).op(...F64X2.constant(2)).simd(F64X2.add).simd(F64X2.div).set("math_s", V128);
    f.get("math_s", V128).get("math_s", V128).simd(F64X2.mul).set("math_z", V128);
    // ln|x| = k ln 2 + s (2 + 2 z / 3 + ...), or the special value; times y.
    promoteHalf(f, "math_e2", half);
    f.op(...F64X2.constant(Math.LN2)).simd(F64X2.mul);
    polynomial(f, F64X2, "math_z", ATANH_SERIES);
    f.get("math_s", V128).simd(F64X2.mul).simd(F64X2.add);
    promoteHalf(f, "math_special", half);
    f.get("math_valid", V128).simd(half ? I64X2_EXTEND_HIGH_I32X4_S : I64X2_EXTEND_LOW_I32X4_S).simd(V128_BITSELECT);
    promoteHalf(f, y, half);
    f.simd(F64X2.mul).set("math_u", V128);
    exp(f, F64X2, "math_u", "math_u", "full");
    f.get("math_u", V128).simd(F32X4_DEMOTE_F64X2_ZERO).set(`math_p${half}`, V128);
  }
  f.get("math_p0", V128).get("math_p1", V128).simd(I8X16_SHUFFLE, ...LOW_HALVES);
  // y an integer (NaN is not; ±Infinity is, and even), and odd.
  f.get(y, V128).simd(F32X4_TRUNC).get(y, V128).simd(F32X4_EQ).set("math_integer", V128);
  f.get(y, V128).op(...L.constant(0.5)).simd(L.mul).set("math_half", V128);
  f.get("math_half", V128).simd(F32X4_TRUNC).get("math_half", V128).simd(L.ne).get("math_integer", V128).simd(V128_AND);
  // x's sign bit where y is odd; all bits (NaN) where x is negative and finite and y is not an integer.
  f.get(x, V128).simd(V128_AND).op(...SIGN).simd(V128_AND).simd(V128_XOR);
  f.get(x, V128).op(...L.constant(0)).simd(L.lt).get(x, V128).op(...L.constant(-Infinity)).simd(L.gt).simd(V128_AND);
  f.get("math_integer", V128).simd(V128_ANDNOT).simd(V128_OR).set("math_y", V128);
  f.op(...L.constant(1)).get("math_y", V128).get(y, V128).op(...L.constant(0)).simd(F32X4_EQ).simd(V128_BITSELECT).set(out, V128);
}
