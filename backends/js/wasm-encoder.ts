// A small WebAssembly binary encoder for the JS backend's generated SIMD kernels: LEB128,
// sections, function bodies with named locals, the opcodes they use, and the lane tables of
// each precision (f64x2, f32x4) with their exp. Only what the kernels need of the binary
// format is here: one memory (exported, grown by the caller), locals, loops, loads and stores
// with constant offsets.

import { BR_IF, END, I32_ADD, I32_LT_S, I32X4_ADD, I32X4_SHL, I64X2_ADD, I64X2_SHL, IF, LOOP, SIMD_PREFIX, V128_ANDNOT, V128_CONST, VOID } from "./wasm-opcodes.ts";

export * from "./wasm-opcodes.ts";

/** Unsigned LEB128. */
export function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n) byte |= 0x80;
    out.push(byte);
  } while (n);
  return out;
}

/** Signed LEB128, for i32.const. */
export function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && !(byte & 0x40)) || (n === -1 && byte & 0x40)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

export const I32 = 0x7f;
export const F32 = 0x7d;
export const F64 = 0x7c;
export const V128 = 0x7b;
export type ValType = typeof I32 | typeof F32 | typeof F64 | typeof V128;

export const vec = (items: number[][]) => [...uleb(items.length), ...items.flat()];
export const section = (id: number, body: number[]) => [id, ...uleb(body.length), ...body];
export const name = (s: string) => vec([...s].map((c) => [c.charCodeAt(0)]));

/** A function body under construction: locals by name, instructions as bytes. */
export class Body {
  readonly code: number[] = [];
  private readonly locals = new Map<string, number>();
  private readonly extra: ValType[] = [];

  constructor(readonly params: [string, ValType][]) {
    params.forEach(([n], i) => this.locals.set(n, i));
  }

  /** The index of local `n`, declared with type `t` on first use. */
  private local(n: string, t: ValType): number {
    let i = this.locals.get(n);
    if (i === undefined) {
      i = this.params.length + this.extra.length;
      this.locals.set(n, i);
      this.extra.push(t);
    }
    return i;
  }

  /** Declares local `n` of type `t` without code (a no-op if it exists). */
  declare(n: string, t: ValType): string {
    this.local(n, t);
    return n;
  }

  get(n: string, t: ValType = I32): this {
    this.code.push(0x20, ...uleb(this.local(n, t)));
    return this;
  }
  set(n: string, t: ValType = I32): this {
    this.code.push(0x21, ...uleb(this.local(n, t)));
    return this;
  }
  i32(value: number): this {
    this.code.push(0x41, ...sleb(value));
    return this;
  }
  op(...bytes: number[]): this {
    this.code.push(...bytes);
    return this;
  }
  /** A SIMD instruction: the 0xfd prefix and its LEB128 opcode, then any immediates. */
  simd(opcode: number, ...immediates: number[]): this {
    this.code.push(0xfd, ...uleb(opcode), ...immediates);
    return this;
  }
  /** acc += a * b for v128 locals, in `lanes`: fused where they have relaxed multiply-add. */
  mulAdd(lanes: Lanes, acc: string, a: string, b: string): this {
    if (lanes.relaxedMadd) return this.get(a, V128).get(b, V128).get(acc, V128).simd(lanes.relaxedMadd).set(acc, V128);
    return this.get(acc, V128).get(a, V128).get(b, V128).simd(lanes.mul).simd(lanes.add).set(acc, V128);
  }
  /** `n += step` for an i32 local. */
  bump(n: string, step: number): this {
    return this.get(n).i32(step).op(I32_ADD).set(n);
  }
  /** do { body } while (n < limit): limit is an i32 local; the caller guarantees one pass is due. */
  loopWhileBelow(n: string, limit: string, body: () => void): this {
    this.op(LOOP, VOID);
    body();
    this.get(n).get(limit).op(I32_LT_S, BR_IF, 0);
    return this.op(END);
  }
  /** if (a < b) { body }: a and b are i32 locals. */
  ifBelow(a: string, b: string, body: () => void): this {
    this.get(a).get(b).op(I32_LT_S, IF, VOID);
    body();
    return this.op(END);
  }

  encode(): number[] {
    // One local declaration per run of the same type.
    const runs: number[][] = [];
    for (const t of this.extra) {
      const last = runs[runs.length - 1];
      if (last && last[1] === t) last[0]++;
      else runs.push([1, t]);
    }
    const body = [...vec(runs.map(([count, t]) => [...uleb(count), t])), ...this.code, END];
    return [...uleb(body.length), ...body];
  }
}

/** Memory immediates: log2 of the alignment promised (8 bytes, at most an access's width), then the constant offset. */
export const mem = (offset: number, align = 3) => [align, ...uleb(offset)];

/** One precision's SIMD lanes: element width, lanes per v128, and the opcodes of its arithmetic. */
export interface Lanes {
  precision: "f32" | "f64";
  /** Bytes per element. */
  bytes: 4 | 8;
  /** Elements per v128. */
  count: 4 | 2;
  scalar: ValType;
  loadSplat: number;
  /** log2 of the alignment a splat load may promise: its element's width. */
  splatAlign: number;
  splat: number;
  ne: number;
  lt: number;
  gt: number;
  abs: number;
  nearest: number;
  add: number;
  sub: number;
  mul: number;
  div: number;
  /** IEEE min and max: NaN if either operand is, -0 below +0 (several x86 instructions each in V8). */
  min: number;
  max: number;
  /**
   * The pseudo-max (b if a < b, else a: one x86 instruction): a running maximum whose chain is
   * one instruction long, which ignores NaN (NaN < a and a < NaN are false).
   */
  pmax: number;
  /** v128.const with `value` in every lane. */
  constant(value: number): number[];
  /**
   * exp's arguments: ln 2 split so that k·hi is exact for every k it meets, the Taylor terms
   * that reach the precision, and the round-to-integer constant 1.5 · 2^mantissa (added and
   * subtracted, it rounds half to even; the sum's low bits hold the integer). `range` bounds
   * the full-range exp's argument: below it the result rounds to 0, above it overflows.
   */
  exp: { ln2Hi: number; ln2Lo: number; terms: number; underflow: number; round: number; range: [number, number] };
  /** 2^k as a v128 from the round constant's sum t = x log2e + round on the stack: t's bits - round's bits + bias, shifted to the exponent. */
  powerOfTwo(f: Body): void;
  /**
   * relaxed SIMD's multiply-add (a · b + c, fused or not as the engine chooses: deterministic
   * on one engine), for lanes whose sums need not be the interpreter's bit for bit.
   */
  relaxedMadd?: number;
}

export const taylor = (n: number) => 1 / Array.from({ length: n }, (_, i) => i + 1).reduce((a, b) => a * b, 1);

/** f64x2: two float64 lanes. */
export const F64X2: Lanes = {
  precision: "f64",
  bytes: 8,
  count: 2,
  scalar: F64,
  loadSplat: 0x0a,
  splatAlign: 3,
  splat: 0x14,
  ne: 0x48,
  lt: 0x49,
  gt: 0x4a,
  abs: 0xec,
  nearest: 0x94,
  add: 0xf0,
  sub: 0xf1,
  mul: 0xf2,
  div: 0xf3,
  min: 0xf4,
  max: 0xf5,
  pmax: 0xf7,
  constant: (value) => [SIMD_PREFIX, V128_CONST, ...new Uint8Array(new Float64Array([value, value]).buffer)],
  // Taylor to r^13: truncation below 1e-17. Below -708, 2^k would be subnormal. e^-746 is
  // below half the least subnormal (e^-745.13), e^710 above the largest float64.
  exp: { ln2Hi: 0.6931471803691238, ln2Lo: 1.9082149292705877e-10, terms: 14, underflow: -708, round: 2 ** 52 * 1.5, range: [-746, 710] },
  powerOfTwo: (f) => {
    const shift = BigInt.asUintN(64, 1023n - new BigInt64Array(new Float64Array([2 ** 52 * 1.5]).buffer)[0]);
    f.op(SIMD_PREFIX, V128_CONST, ...new Uint8Array(new BigUint64Array([shift, shift]).buffer)).simd(I64X2_ADD).i32(52).simd(I64X2_SHL);
  },
};

/** f32x4: four float32 lanes. */
export const F32X4: Lanes = {
  precision: "f32",
  bytes: 4,
  count: 4,
  scalar: F32,
  loadSplat: 0x09,
  splatAlign: 2,
  splat: 0x13,
  ne: 0x42,
  lt: 0x43,
  gt: 0x44,
  abs: 0xe0,
  nearest: 0x6a,
  add: 0xe4,
  sub: 0xe5,
  mul: 0xe6,
  div: 0xe7,
  min: 0xe8,
  max: 0xe9,
  pmax: 0xeb,
  constant: (value) => [SIMD_PREFIX, V128_CONST, ...new Uint8Array(new Float32Array([value, value, value, value]).buffer)],
  // ln 2 as 0.693359375 (9 bits: k·hi is exact for |k| < 2^15) and the rest; Taylor to r^7:
  // truncation below 1.3e-8 for |r| <= ln 2 / 2, a fifth of float32's unit roundoff. Below
  // -87, 2^k would be subnormal. e^-104 is below half the least subnormal (e^-103.97), e^89
  // above the largest float32 (e^88.72).
  exp: { ln2Hi: 0.693359375, ln2Lo: -2.1219444005469058e-4, terms: 8, underflow: -87, round: 2 ** 23 * 1.5, range: [-104, 89] },
  powerOfTwo: (f) => {
    const shift = 127 - new Int32Array(new Float32Array([2 ** 23 * 1.5]).buffer)[0];
    f.op(SIMD_PREFIX, V128_CONST, ...new Uint8Array(new Int32Array([shift, shift, shift, shift]).buffer)).simd(I32X4_ADD).i32(23).simd(I32X4_SHL);
  },
};

/**
 * f32x4 with relaxed SIMD's f32x4.relaxed_madd: half the instructions in the products' inner
 * loops. Engines without relaxed SIMD (Node 20 without --experimental-wasm-relaxed-simd) refuse
 * such a module, and the loader takes the plain one.
 */
export const F32X4_FMA: Lanes = { ...F32X4, relaxedMadd: 0x105 };

/**
 * Pushes c_0 + c_1 x + ... + c_n x^n for the v128 local x by Estrin's scheme: pairs
 * c_i + c_{i+1} x, combined with x^2, x^4, x^8 (locals named x2, x4, x8 after x); a chain of
 * about log2(n) multiply-adds instead of Horner's n, so that independent evaluations overlap in
 * the pipeline.
 */
export function polynomial(f: Body, L: Lanes, x: string, coefficients: readonly number[]): void {
  const power = (p: number) => (p === 1 ? x : `${x}${p}`);
  for (let p = 2; p < coefficients.length; p *= 2) f.get(power(p / 2), V128).get(power(p / 2), V128).simd(L.mul).set(power(p), V128);
  const estrin = (from: number, count: number) => {
    if (count === 1) return void f.op(...L.constant(coefficients[from]));
    const half = 2 ** Math.ceil(Math.log2(count) - 1);
    estrin(from, half);
    estrin(from + half, count - half);
    f.get(power(half), V128).simd(L.mul).simd(L.add);
  };
  estrin(0, coefficients.length);
}

/**
 * out = exp(x) for the v128 locals x and out (which may be the same), with scratch locals
 * named math_*: x = k ln 2 + r with k an integer and |r| <= ln 2 / 2 (ln 2 in two parts, so
 * that k ln2_hi is exact), e^r by its Taylor series, times 2^k built in the exponent bits.
 * Within about 2 ulps of the precision's exp.
 *
 * "nonpositive" serves x <= 0 (and NaN), the arguments softmax has: below the underflow bound
 * (and at -Infinity) the result is 0, which next to the row maximum's e^0 = 1 changes no sum.
 * "full" serves every x: x is first clamped to the precision's range (NaN stays NaN), and 2^k
 * is applied as 2^k1 · 2^k2 with k1 = nearest(k / 2), both normal, so that the one rounding
 * of the last product gives the subnormal results, 0 below them, and Infinity above the
 * largest float.
 */
export function exp(f: Body, L: Lanes, x: string, out: string, range: "nonpositive" | "full" = "nonpositive"): void {
  const { ln2Hi, ln2Lo, terms, underflow, round, range: [lowest, highest] } = L.exp;
  const arg = range === "full" ? "math_x" : x;
  if (range === "full") f.get(x, V128).op(...L.constant(lowest)).simd(L.max).op(...L.constant(highest)).simd(L.min).set(arg, V128);
  // k = nearest(x log2e) by the round constant, which keeps the integer in t's low bits for 2^k.
  f.get(arg, V128).op(...L.constant(Math.LOG2E)).simd(L.mul).op(...L.constant(round)).simd(L.add).set("math_t", V128);
  f.get("math_t", V128).op(...L.constant(round)).simd(L.sub).set("math_k", V128);
  f.get(arg, V128).get("math_k", V128).op(...L.constant(ln2Hi)).simd(L.mul).simd(L.sub);
  f.get("math_k", V128).op(...L.constant(ln2Lo)).simd(L.mul).simd(L.sub).set("math_r", V128);
  polynomial(f, L, "math_r", Array.from({ length: terms }, (_, i) => taylor(i)));
  if (range === "full") {
    // k1 = nearest(k / 2) and k2 = k - k1, each as a round-constant sum.
    f.get("math_k", V128).op(...L.constant(0.5)).simd(L.mul).op(...L.constant(round)).simd(L.add).set("math_t", V128);
    f.get("math_t", V128);
    L.powerOfTwo(f);
    f.simd(L.mul);
    f.get("math_k", V128).get("math_t", V128).simd(L.sub).op(...L.constant(2 * round)).simd(L.add);
    L.powerOfTwo(f);
    f.simd(L.mul).set(out, V128);
    return;
  }
  f.get("math_t", V128);
  L.powerOfTwo(f);
  f.simd(L.mul);
  // Below the bound (and -Infinity): 0. NaN compares false and stays NaN.
  f.get(x, V128).op(...L.constant(underflow)).simd(L.lt).simd(V128_ANDNOT).set(out, V128);
}

/** A module of `functions` (name, body), exported by name with its one memory `memory` (at least one page, grown by the caller). */
export function wasmModule(functions: [string, Body][]): Uint8Array<ArrayBuffer> {
  const bodies = functions.map(([, f]) => f);
  const types = bodies.map((f) => [0x60, ...vec(f.params.map(([, t]) => [t])), 0]);
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00], // \0asm, version 1
    ...section(1, vec(types)),
    ...section(3, vec(bodies.map((_, i) => uleb(i)))),
    ...section(5, vec([[0x00, 1]])),
    ...section(7, vec([[...name("memory"), 0x02, 0], ...functions.map(([n], i) => [...name(n), 0x00, ...uleb(i)])])),
    ...section(10, vec(bodies.map((f) => f.encode()))),
  ]);
}
