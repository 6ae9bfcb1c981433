// Rounding of float64 values to each dtype, and the 16-bit float encodings. The interpreter
// computes in float64 and rounds every result through `roundTo`, so this file fixes the
// exact numerics every backend is compared against.
import type { DType } from "./types.ts";

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE half bits of x, round to nearest even (x first rounded to f32, as hardware does). */
export function f16Bits(x: number): number {
  f32[0] = x;
  const bits = u32[0];
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // inf / nan
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow to inf
  if (e <= 0) {
    // Subnormal half (or zero): shift the implicit bit in and round.
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let m = mant >>> shift;
    if (rest > half || (rest === half && (m & 1))) m++;
    return sign | m;
  }
  const rest = mant & 0x1fff;
  let m = mant >>> 13;
  if (rest > 0x1000 || (rest === 0x1000 && (m & 1))) {
    m++;
    if (m === 0x400) {
      m = 0;
      e++;
      if (e >= 0x1f) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | m;
}

export function f16FromBits(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** bfloat16 bits of x: the top half of its f32 bits, round to nearest even. */
export function bf16Bits(x: number): number {
  f32[0] = x;
  const bits = u32[0];
  if ((bits & 0x7f800000) === 0x7f800000 && bits & 0x7fffff) return (bits >>> 16) | 0x40; // quiet nan
  const rounded = bits + 0x7fff + ((bits >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}

export function bf16FromBits(b: number): number {
  u32[0] = (b & 0xffff) << 16;
  return f32[0];
}

export const INT_RANGE: Partial<Record<DType, [number, number]>> = {
  i32: [-2147483648, 2147483647],
  i8: [-128, 127],
  u8: [0, 255],
};

/**
 * Rounds one value to a dtype. Floats round to nearest even. Integer results of arithmetic
 * truncate toward zero and wrap (two's complement), as C, WGSL and CUDA integer math does;
 * `cast` saturates first (see `saturate`). bool is x != 0 (NaN included), as 0 or 1.
 */
export function roundScalar(dtype: DType, x: number): number {
  switch (dtype) {
    case "f32":
      return Math.fround(x);
    case "f16":
      return f16FromBits(f16Bits(x));
    case "bf16":
      return bf16FromBits(bf16Bits(x));
    case "i32":
      return Number.isFinite(x) ? Math.trunc(x) | 0 : 0;
    case "i8":
      return Number.isFinite(x) ? (Math.trunc(x) << 24) >> 24 : 0;
    case "u8":
      return Number.isFinite(x) ? Math.trunc(x) & 0xff : 0;
    case "bool":
      return x !== 0 ? 1 : 0; // C, WGSL and CUDA: NaN is nonzero, so true
  }
}

export function roundTo(dtype: DType, data: Float64Array): Float64Array {
  if (dtype === "f32") {
    for (let i = 0; i < data.length; i++) data[i] = Math.fround(data[i]);
  } else {
    for (let i = 0; i < data.length; i++) data[i] = roundScalar(dtype, data[i]);
  }
  return data;
}

/** Float-to-integer conversion as `cast` defines it: NaN → 0, then clamp to the range. */
export function saturate(dtype: DType, x: number): number {
  const range = INT_RANGE[dtype];
  if (!range) return x;
  if (Number.isNaN(x)) return 0;
  return Math.min(range[1], Math.max(range[0], Math.trunc(x)));
}
