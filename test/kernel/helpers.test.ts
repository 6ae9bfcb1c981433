// The kernel-IR helpers, rendered to JS, compute bit for bit what the interpreter's
// definitions compute (numeric.ts for the 16-bit conversions, scalar.ts's MATH for the rest).
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { bf16Bits, bf16FromBits, f16Bits, f16FromBits } from "../../compiler/ir/numeric.ts";
import { MATH, roundHalfToEven } from "../../compiler/ir/scalar.ts";
import { renderHelpers } from "../../backends/common/kernel/render.ts";
import { JS_PRELUDE, jsLanguage } from "../../backends/js/language.ts";

/** The rendered JS helpers, as functions. */
function helpers(...names: string[]): Record<string, (...xs: number[]) => number> {
  const source = [JS_PRELUDE, ...renderHelpers(names, jsLanguage), `return { ${names.join(", ")} };`].join("\n");
  return new Function(source)() as Record<string, (...xs: number[]) => number>;
}

const same = (a: number, b: number) => Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b));
const SALTS = [0, -0, 1, -1, 0.5, -0.5, 1.5, 2.5, -2.5, 3.5, 65504, 65520, 1e-8, 6e-8, 2 ** -24, 2 ** -25, 3 * 2 ** -26, 1e30, -1e30, Infinity, -Infinity, NaN, 2147483647.5, -2147483648.7, 127.5, -128.5, 255.5];
const doubles = fc.oneof(fc.double(), fc.constantFrom(...SALTS), fc.double({ min: -70000, max: 70000 }), fc.integer({ min: -300, max: 300 }).map((i) => i / 2));

describe("kernel-IR helpers rendered to JS", () => {
  it("f16Bits and f16FromBits match numeric.ts on every half and on random doubles", () => {
    const h = helpers("f16Bits", "f16FromBits");
    for (let bits = 0; bits < 65536; bits++) {
      expect(same(h.f16FromBits(bits), f16FromBits(bits)), `f16FromBits(${bits})`).toBe(true);
      const x = f16FromBits(bits);
      if (!Number.isNaN(x)) expect(h.f16Bits(x)).toBe(f16Bits(x));
    }
    fc.assert(fc.property(doubles, (x) => h.f16Bits(x) === f16Bits(x)));
    for (const x of SALTS) expect(h.f16Bits(x), `f16Bits(${x})`).toBe(f16Bits(x));
  });

  it("bf16Bits and bf16FromBits match numeric.ts on every bfloat16 and on random doubles", () => {
    const h = helpers("bf16Bits", "bf16FromBits");
    for (let bits = 0; bits < 65536; bits++) expect(same(h.bf16FromBits(bits), bf16FromBits(bits))).toBe(true);
    fc.assert(fc.property(doubles, (x) => h.bf16Bits(x) === bf16Bits(x)));
    for (const x of SALTS) expect(h.bf16Bits(x), `bf16Bits(${x})`).toBe(bf16Bits(x));
  });

  it("erf, saturation and quantisation match the interpreter's MATH bit for bit", () => {
    const names = ["erf", "saturate_i32", "saturate_i8", "saturate_u8"] as const;
    const h = helpers(...names);
    // Integer results are compared as stored: -0 and 0 are the same integer.
    const stored = (name: string, v: number) => (name === "erf" ? v : v + 0);
    for (const name of names) {
      for (const x of SALTS) expect(same(h[name](x), stored(name, MATH[name](x))), `${name}(${Object.is(x, -0) ? "-0" : x})`).toBe(true);
      fc.assert(fc.property(doubles, (x) => same(h[name](x), stored(name, MATH[name](x)))));
    }
    const q = helpers("quantize_i8", "quantize_u8");
    const scales = fc.oneof(fc.constantFrom(1, 0.5, 0.1, 1 / 3, 0, -0.25, Infinity, NaN), fc.double({ min: 1e-3, max: 10 }));
    for (const name of ["quantize_i8", "quantize_u8"] as const) {
      for (const x of SALTS) for (const zp of [0, 3, -7]) expect(same(q[name](x, 0.5, zp), MATH[name](x, 0.5, zp) + 0), `${name}(${x}, 0.5, ${zp})`).toBe(true);
      fc.assert(fc.property(doubles, scales, fc.integer({ min: -128, max: 127 }), (x, s, zp) => same(q[name](x, s, zp), MATH[name](x, s, zp) + 0)));
    }
  });

  it("roundHalfEven rounds ties to even like the interpreter", () => {
    const h = helpers("roundHalfEven");
    for (const x of SALTS) expect(same(h.roundHalfEven(x) + 0, roundHalfToEven(x) + 0), `roundHalfEven(${x})`).toBe(true);
    fc.assert(fc.property(doubles, (x) => same(h.roundHalfEven(x) + 0, roundHalfToEven(x) + 0)));
  });

  it("ipow and idiv wrap and truncate like the interpreter", () => {
    const h = helpers("ipow", "idiv");
    const i32 = fc.oneof(fc.integer({ min: -2147483648, max: 2147483647 }), fc.integer({ min: -5, max: 40 }));
    fc.assert(fc.property(i32, i32, (a, b) => (h.ipow(a, b) | 0) === (MATH.ipow(a, b) | 0) && (h.idiv(a, b) | 0) === (MATH.idiv(a, b) | 0)));
    expect(h.idiv(-2147483648, -1) | 0).toBe(-2147483648);
    expect(h.idiv(7, 0)).toBe(0);
    expect(h.ipow(3, -1)).toBe(0);
  });
});

describe("the accurate sin and cos for languages whose own are not (WGSL)", () => {
  it("agree with Math.sin and Math.cos to within a few f32 ulps of 1 for |x| up to 10^4", () => {
    const h = helpers("sinAccurate", "cosAccurate");
    const xs = [0, -0, 1, -1, Math.PI, -Math.PI / 2, 3 * Math.PI / 4, 100, -1234.5, 9999, ...Array.from({ length: 2000 }, (_, i) => (i - 1000) * 9.7 + Math.sin(i))];
    for (const x of xs) {
      expect(Math.abs(h.sinAccurate(x) - Math.sin(x)), `sin(${x})`).toBeLessThan(3e-7);
      expect(Math.abs(h.cosAccurate(x) - Math.cos(x)), `cos(${x})`).toBeLessThan(3e-7);
    }
  });
});
