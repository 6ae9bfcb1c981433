// The f32x4 math functions of the JS backend's WebAssembly kernels (backends/js/wasm-math.ts)
// against the interpreter's definition (compiler/ir/scalar.ts, MATH: the float64 function of
// the float32 input, rounded to float32): dense sweeps of each function's interesting range and
// of the float32 bit patterns (every binade, subnormals and specials), the special values, and
// random floats. Each function's bound is the error wasm-math.ts states for it; the largest
// error seen is printed.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MATH } from "../../compiler/ir/scalar.ts";
import { Body, exp, F64X2, I32, type Lanes, F32X4, mem, V128, V128_LOAD, V128_STORE, wasmModule } from "../../backends/js/wasm-encoder.ts";
import { f32x4Math, F32X4_MATH } from "../../backends/js/wasm-math.ts";

/** The largest float32 below a (positive) float32. */
const below = (x: number) => new Float32Array(new Uint32Array([new Uint32Array(new Float32Array([x]).buffer)[0] - 1]).buffer)[0];
const MAX_F32 = 3.4028234663852886e38;
const LEAST_SUBNORMAL = 2 ** -149;

/** sin and cos: the float32 values nearest multiples of pi/2, where the reduction must keep r's bits; the bound holds below 2^31 pi/2. */
const TRIGONOMETRIC = {
  ulps: 2,
  ranges: [[-10, 10], [-1e4, 1e4], [1e4, 1e6], [1e8, 3e9]] as [number, number][],
  special: [...[1, 2, 3, 4, 5, 100, 6366, 1e6].flatMap((k) => [Math.fround((k * Math.PI) / 2), -Math.fround((k * Math.PI) / 2)]), 3.37e9],
  accurateBelow: 3.37e9,
};

/** What each function is held to: its ulp bound, the ranges swept densely, and the |x| below which the bound holds (sin, cos). */
const SPECS: Record<string, { ulps: number; ranges: [number, number][]; special: number[]; accurateBelow?: number; anyZero?: boolean }> = {
  exp: {
    ulps: 2,
    ranges: [[-104, 89], [-1, 1], [-88, -86]],
    // The last finite result and the first Infinity; the last normal result; the last subnormal, and the first 0.
    special: [88.72283172607422, 88.72283935546875, -87.33654022216797, -103.97207641601562, -103.97208404541016, -104, -150],
  },
  log: { ulps: 1, ranges: [[0, 4], [0.5, 2], [1e3, 1e7]], special: [below(1), 1 + 2 ** -23, 2 ** -126, LEAST_SUBNORMAL, -LEAST_SUBNORMAL, -1] },
  tanh: { ulps: 1, ranges: [[-10, 10], [-1, 1], [-0.01, 0.01]], special: [0.625, below(0.625), -0.625, 9.010913848876953, 9.011, 1e-20, -1e-20] },
  // The interpreter's series sums erf(-0) to +0 (C's erf gives -0, as this one does).
  erf: { ulps: 1, ranges: [[-5, 5], [-1, 1], [-0.01, 0.01]], special: [0.927734375, below(0.927734375), 3.8325, 3.9, 4, -4, 1e-20, -1e-20], anyZero: true },
  sin: TRIGONOMETRIC,
  cos: TRIGONOMETRIC,
};
/** Every function's special values besides its own: zeros, infinities, NaN, subnormals, the extremes. */
const SPECIAL = [0, -0, Infinity, -Infinity, NaN, LEAST_SUBNORMAL, -LEAST_SUBNORMAL, 1e-40, -1e-40, 2 ** -126, -(2 ** -126), below(2 ** -126), MAX_F32, -MAX_F32, 1, -1, 0.5, -0.5];

/** The bytes computed per call: memory holds a chunk computed apart, then the same computed in place, then their second arguments. */
const CHUNK_BYTES = 1 << 18;

/**
 * A module whose `apply(from, to)` sets each float in [from, to) (byte offsets, whole v128s) to
 * the function `emit` computes, from v128 local x (and y, read 2 chunks on) into out, and
 * `inPlace` the same with out = x, `inSecond` with out = y.
 */
function mathModule(emit: (f: Body, args: string[], out: string) => void) {
  const body = (out: string) => {
    const f = new Body([["p", I32], ["end", I32]]);
    f.ifBelow("p", "end", () =>
      f.loopWhileBelow("p", "end", () => {
        f.get("p").simd(V128_LOAD, ...mem(0, 4)).set("x", V128);
        f.get("p").simd(V128_LOAD, ...mem(2 * CHUNK_BYTES, 4)).set("y", V128);
        emit(f, ["x", "y"], out);
        f.get("p").get(out, V128).simd(V128_STORE, ...mem(0, 4));
        f.bump("p", 16);
      }),
    );
    return f;
  };
  const bytes = wasmModule([["apply", body("out")], ["inPlace", body("x")], ["inSecond", body("y")]]);
  expect(WebAssembly.validate(bytes)).toBe(true);
  type Apply = (from: number, to: number) => void;
  return new WebAssembly.Instance(new WebAssembly.Module(bytes)).exports as { apply: Apply; inPlace: Apply; inSecond: Apply; memory: WebAssembly.Memory };
}

/** The module's function of each of xs (and ys) (in the lanes' float type): computed apart and in place, which must agree bit for bit. */
function run<A extends Float32Array | Float64Array>(m: ReturnType<typeof mathModule>, xs: A, ys?: A): A {
  if (m.memory.buffer.byteLength < 4 * CHUNK_BYTES) m.memory.grow(Math.ceil((4 * CHUNK_BYTES - m.memory.buffer.byteLength) / 65536));
  const Typed = xs.constructor as { new (buffer: ArrayBuffer, offset: number, length: number): A; new (length: number): A };
  const chunk = CHUNK_BYTES / xs.BYTES_PER_ELEMENT;
  const out = new Typed(xs.length);
  for (let at = 0; at < xs.length; at += chunk) {
    const n = Math.min(chunk, xs.length - at);
    const apart = new Typed(m.memory.buffer, 0, n);
    const inPlace = new Typed(m.memory.buffer, CHUNK_BYTES, n);
    apart.set(xs.subarray(at, at + n));
    inPlace.set(xs.subarray(at, at + n));
    if (ys) for (const chunk of [2, 3]) new Typed(m.memory.buffer, chunk * CHUNK_BYTES, n).set(ys.subarray(at, at + n));
    const bytes = Math.ceil((n * xs.BYTES_PER_ELEMENT) / 16) * 16;
    m.apply(0, bytes);
    m.inPlace(CHUNK_BYTES, CHUNK_BYTES + bytes);
    // The lanes past n hold whatever was there: only the first n are compared.
    const a = new Uint8Array(m.memory.buffer, 0, n * xs.BYTES_PER_ELEMENT);
    const differs = (b: Uint8Array, how: string) => {
      const i = a.findIndex((v, k) => v !== b[k]);
      const e = at + Math.floor(i / xs.BYTES_PER_ELEMENT);
      if (i >= 0) expect.fail(`${how} and apart differ at x = ${xs[e]}, y = ${ys?.[e]}`);
    };
    differs(new Uint8Array(m.memory.buffer, CHUNK_BYTES, a.length), "in place");
    out.set(apart, at);
    if (ys) {
      // The in-place chunk again, its results now held in the local y before they are stored.
      inPlace.set(xs.subarray(at, at + n));
      m.inSecond(CHUNK_BYTES, CHUNK_BYTES + bytes);
      differs(new Uint8Array(m.memory.buffer, CHUNK_BYTES, a.length), "into y");
    }
  }
  return out;
}

/**
 * The error of got against want in units of the last place of want (`mantissa` bits; the
 * subnormals' spacing at least, which is also a zero's); NaN and ±Infinity must match exactly,
 * and a zero for a zero must have its sign (unless `anyZero`).
 */
function ulpError(got: number, want: number, mantissa: number, leastExponent: number, anyZero = false): number {
  if (Number.isNaN(want)) return Number.isNaN(got) ? 0 : Infinity;
  if (!Number.isFinite(want)) return got === want ? 0 : Infinity;
  if (want === 0 && got === 0) return anyZero || Object.is(got, want) ? 0 : Infinity;
  if (!Number.isFinite(got)) return Infinity;
  return Math.abs(got - want) / 2 ** (Math.max(Math.floor(Math.log2(Math.abs(want))), leastExponent) - mantissa);
}

interface Worst {
  ulps: number;
  x: number;
  y?: number;
  got: number;
  want: number;
}

/** The largest ulp error of the module against `reference` over xs (and ys). */
function worst<A extends Float32Array | Float64Array>(m: ReturnType<typeof mathModule>, xs: A, reference: (x: number, y: number) => number, anyZero = false, ys?: A): Worst {
  const got = run(m, xs, ys);
  const [mantissa, least] = xs instanceof Float32Array ? [23, -126] : [52, -1022];
  let max: Worst = { ulps: 0, x: NaN, got: NaN, want: NaN };
  for (let i = 0; i < xs.length; i++) {
    const want = reference(xs[i], ys?.[i] ?? NaN);
    const ulps = ulpError(got[i], want, mantissa, least, anyZero);
    if (!(ulps <= max.ulps)) max = { ulps, x: xs[i], y: ys?.[i], got: got[i], want };
  }
  return max;
}

const describeWorst = (w: Worst) => `${w.ulps} ulps at x = ${w.x}${w.y === undefined ? "" : `, y = ${w.y}`} (got ${w.got}, want ${w.want})`;
/** count evenly spaced float32 values in [from, to]. */
const sweep = (from: number, to: number, count: number) => Float32Array.from({ length: count }, (_, i) => from + ((to - from) * i) / (count - 1));
/** Every `stride`-th float32 bit pattern: both signs, every binade, subnormals, infinities and NaNs. */
const bitPatterns = (stride: number) => new Float32Array(Uint32Array.from({ length: Math.floor(2 ** 32 / stride) }, (_, i) => i * stride).buffer);

describe.each([...F32X4_MATH].filter((fn) => fn !== "pow"))("f32x4 %s in WebAssembly SIMD", (fn) => {
  const spec = SPECS[fn];
  const m = mathModule((f, [x], out) => f32x4Math(f, fn, [x], out));
  const reference = (x: number) => Math.fround(MATH[fn](x));
  /** Past the bound of sin and cos, only the range [-1, 1] is promised (Infinity and NaN still give NaN). */
  const beyond = (x: number) => Number.isFinite(x) && Math.abs(x) >= (spec.accurateBelow ?? Infinity);
  const held = (xs: Float32Array) => xs.filter((x) => !beyond(x));
  /** Checks the module's values of xs (x, got): the bound, or [-1, 1] beyond sin's and cos's bound. */
  const check = (xs: Float32Array, got: Float32Array) =>
    xs.forEach((x, i) => {
      if (beyond(x)) expect(Math.abs(got[i]), `${fn}(${x})`).toBeLessThanOrEqual(1);
      else expect(ulpError(got[i], reference(x), 23, -126, spec.anyZero), `${fn}(${x}) = ${got[i]}, want ${reference(x)}`).toBeLessThanOrEqual(spec.ulps);
    });

  it(`is within ${spec.ulps} ulps of the interpreter over its ranges and every binade`, () => {
    const cases = [...spec.ranges.map(([from, to]) => sweep(from, to, 1 << 18)), held(bitPatterns(8191))];
    const errors = cases.map((xs) => worst(m, xs, reference, spec.anyZero));
    const max = errors.reduce((a, b) => (b.ulps > a.ulps ? b : a));
    console.info(`${fn}: largest error ${describeWorst(max)}`);
    for (const e of errors) expect(e.ulps, describeWorst(e)).toBeLessThanOrEqual(spec.ulps);
  });

  it("gives the special values: NaN, infinities and signed zeros exactly, the rest within the bound", () => {
    const xs = Float32Array.from([...SPECIAL, ...spec.special]);
    check(xs, run(m, xs));
  });

  it("holds its bound on random float32 values", () => {
    fc.assert(
      fc.property(fc.array(fc.float(), { minLength: 1, maxLength: 64 }), (values) => {
        const xs = Float32Array.from(values);
        check(xs, run(m, xs));
      }),
    );
  });
});

describe("f32x4 pow in WebAssembly SIMD", () => {
  const m = mathModule((f, args, out) => f32x4Math(f, "pow", args, out));
  const reference = (x: number, y: number) => Math.fround(MATH.pow(x, y));
  const ULPS = 1;
  /** The pairs (xs[i], ys[i]) of a grid over [x0, x1] × [y0, y1]. */
  const grid = ([x0, x1]: [number, number], [y0, y1]: [number, number], side: number) => {
    const xs = sweep(x0, x1, side);
    const ys = sweep(y0, y1, side);
    return [Float32Array.from({ length: side * side }, (_, i) => xs[Math.floor(i / side)]), Float32Array.from({ length: side * side }, (_, i) => ys[i % side])];
  };
  /** Bases and exponents where ** has its special cases: zeros, infinities, NaN, ±1, negatives to integers odd and even and not. */
  const SPECIAL_POW = [...SPECIAL, 2, -2, 3, -3, 1.5, -1.5, 0.25, 1e30, -1e30, 2 ** 24, 2 ** 24 + 2, 16777215, 127, 128, -149, -150, 88.7, 1e-30];

  it(`is within ${ULPS} ulp of the interpreter over grids of bases and exponents, and bit patterns paired with exponents`, () => {
    const cases = [
      grid([0, 4], [-40, 40], 512),
      grid([0.5, 2], [-200, 200], 512),
      grid([-4, 0], [-30, 30], 512),
      grid([1e-3, 1e3], [-14, 14], 512),
      // every binade of the base, to exponents that keep the result in range or not
      ...[0.5, -1, 3, -7, 1 / 3, 20].map((y) => {
        const xs = bitPatterns(8191);
        return [xs, new Float32Array(xs.length).fill(y)];
      }),
    ];
    const errors = cases.map(([xs, ys]) => worst(m, xs, reference, false, ys));
    const max = errors.reduce((a, b) => (b.ulps > a.ulps ? b : a));
    console.info(`pow: largest error ${describeWorst(max)}`);
    for (const e of errors) expect(e.ulps, describeWorst(e)).toBeLessThanOrEqual(ULPS);
  });

  it("gives **'s special cases: every pair of special bases and exponents", () => {
    const xs = Float32Array.from(SPECIAL_POW.flatMap((x) => SPECIAL_POW.map(() => x)));
    const ys = Float32Array.from(SPECIAL_POW.flatMap(() => SPECIAL_POW));
    const got = run(m, xs, ys);
    xs.forEach((x, i) => expect(ulpError(got[i], reference(x, ys[i]), 23, -126), `${x} ** ${ys[i]} = ${got[i]}, want ${reference(x, ys[i])}`).toBeLessThanOrEqual(ULPS));
  });

  it("holds its bound on random float32 pairs", () => {
    const exponent = fc.oneof(fc.float(), fc.integer({ min: -300, max: 300 }), fc.integer({ min: -600, max: 600 }).map((n) => n / 2), fc.float({ min: -30, max: 30 }));
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.float(), exponent), { minLength: 1, maxLength: 64 }), (pairs) => {
        const xs = Float32Array.from(pairs, ([x]) => x);
        const ys = Float32Array.from(pairs, ([, y]) => y);
        const got = run(m, xs, ys);
        xs.forEach((x, i) => expect(ulpError(got[i], reference(x, ys[i]), 23, -126), `${x} ** ${ys[i]} = ${got[i]}, want ${reference(x, ys[i])}`).toBeLessThanOrEqual(ULPS));
      }),
    );
  });
});

describe("the shared exp over the full range", () => {
  const precisions: [Lanes, (x: number) => number, [number, number]][] = [
    [F32X4, Math.fround, [-104, 89]],
    [F64X2, (x) => x, [-746, 710]],
  ];
  for (const [lanes, round, [from, to]] of precisions)
    it(`in ${lanes.precision} is within 2 ulps of Math.exp, 0 below the least subnormal and Infinity above the largest float`, () => {
      const m = mathModule((f, [x], out) => exp(f, lanes, x, out, "full"));
      const typed = (values: number[]) => (lanes === F32X4 ? Float32Array.from(values) : Float64Array.from(values));
      const xs = typed(Array.from({ length: 1 << 18 }, (_, i) => from + ((to - from) * i) / ((1 << 18) - 1)));
      const specials = typed([0, -0, Infinity, -Infinity, NaN, from - 1, to + 1, 1, -1, 1e-300]);
      for (const values of [xs, specials]) {
        const w = worst(m, values, (x) => round(Math.exp(x)));
        expect(w.ulps, `${lanes.precision}: ${describeWorst(w)}`).toBeLessThanOrEqual(2);
      }
    });

  it("f32x4Math refuses a function it does not compute", () => {
    expect(() => f32x4Math(new Body([]), "sqrt", ["x"], "y")).toThrow(/sqrt/);
    expect(() => f32x4Math(new Body([]), "exp", ["x", "z"], "y")).toThrow(/2 arguments/);
    expect(() => f32x4Math(new Body([]), "pow", ["x"], "y")).toThrow(/1 arguments/);
  });
});
