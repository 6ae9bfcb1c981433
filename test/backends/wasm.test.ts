// The WebAssembly SIMD loops of the JS backend's attention kernels give exactly what scalar
// code summing in the interpreter's order gives, in each precision (float64, and float32 with
// every product and sum rounded by Math.fround), for every width and count, including the
// remainder paths (keys not a multiple of 4, value widths not a multiple of the lanes).
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ROWS } from "../../backends/js/attention.ts";
import { attentionSimd } from "../../backends/js/template/attention-simd.js";
import { execFileSync } from "node:child_process";
import { attentionModule, F32X4, F32X4_FMA, F64X2, type Lanes, paddedWidth } from "../../backends/js/attention-wasm.ts";
import { quantizeGroup, quantLevels } from "../../compiler/ir/ops/attention-quant.ts";

/** What a test needs of a precision: its module, its typed array, its rounding of one operation, its exp tolerance. */
const PRECISIONS = [F64X2, F32X4].map((lanes: Lanes) => ({
  lanes,
  name: lanes.precision,
  module: (d: number, dv: number, rows: number, maps: 1 | 2) => attentionSimd([attentionModule(d, dv, rows, maps, lanes)], lanes.bytes),
  Array: lanes.bytes === 8 ? Float64Array : Float32Array,
  round: lanes.bytes === 8 ? (x: number) => x : Math.fround,
  /** Tile heights the module accepts: multiples of two v128s of rows. */
  rows: [4, 8, ROWS].filter((r) => r % (2 * lanes.count) === 0),
  /** Bits of significand, for ulps; and the exp argument below which the module gives 0. */
  mantissa: lanes.bytes === 8 ? 52 : 23,
  underflow: lanes.exp.underflow,
}));

describe.each(PRECISIONS)("attention SIMD module, $name", (P) => {
  it("is valid WebAssembly that Node accepts", () => {
    expect(WebAssembly.validate(attentionModule(64, 128, ROWS, 2, P.lanes))).toBe(true);
  });

  it("scores and weighted sums are bit-identical to scalar loops in the precision", () => {
    const config = fc.record({
      d: fc.integer({ min: 1, max: 9 }),
      dv: fc.integer({ min: 1, max: 11 }),
      n: fc.integer({ min: 0, max: 11 }),
      extra: fc.integer({ min: 0, max: 3 }),
      scale: fc.double({ min: 0.01, max: 2, noNaN: true }),
      seed: fc.nat(),
      rows: fc.constantFrom(...P.rows),
    });
    const { round } = P;
    const L = P.lanes.count;
    const bytes = P.lanes.bytes;
    fc.assert(
      fc.property(config, ({ d, dv, n, extra, scale, seed, rows }) => {
        const keys = n + extra;
        const dvp = paddedWidth(P.lanes, dv);
        const simd = P.module(d, dv, rows, 2);
        // qt [d][rows], k [keys][d], out [keys][rows], v [dvp / L][keys][L], acc [rows][dvp]
        const qt = 0;
        const k = qt + rows * d;
        const out = k + keys * d;
        const v = out + rows * keys;
        const acc = v + dvp * keys;
        // A guard region after acc: no call may write past its outputs.
        const floats = acc + rows * dvp + 64;
        const exports = simd(floats);
        const F = new P.Array(exports.memory.buffer, 0, floats);
        let state = seed;
        for (let i = 0; i < floats; i++) {
          state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
          F[i] = state / 2 ** 31 - 1;
        }
        const untouched = (from: number, to: number, before: ArrayLike<number>) => {
          for (let i = 0; i < floats; i++) if (i < from || i >= to) expect(F[i], `F[${i}] outside [${from}, ${to})`).toBe(before[i]);
        };
        if (n > 0) {
          const before = Array.from(F);
          exports.scores(qt * bytes, k * bytes, out * bytes, n, scale);
          untouched(out, out + rows * n, before);
          for (let j = 0; j < n; j++)
            for (let r = 0; r < rows; r++) {
              let s = 0;
              for (let t = 0; t < d; t++) s = round(s + round(F[qt + t * rows + r] * F[k + j * d + t]));
              expect(F[out + j * rows + r]).toBe(round(s * round(scale)));
            }
        }
        const before = Array.from(F);
        exports.weighted(out * bytes, v * bytes, acc * bytes, n, keys);
        untouched(acc, acc + rows * dvp, before);
        for (let r = 0; r < rows; r++)
          for (let c = 0; c < dv; c++) {
            // Added to what acc held, in key order.
            let s = before[acc + r * dvp + c];
            for (let j = 0; j < n; j++) s = round(s + round(F[out + j * rows + r] * F[v + (c - (c % L)) * keys + L * j + (c % L)]));
            // With no keys the call leaves acc alone; the kernel never reads it then.
            if (n > 0) expect(F[acc + r * dvp + c]).toBe(s);
          }
      }),
      { numRuns: 300 },
    );
  });

  /** One unit in the last place of x, in the precision. */
  const ulp = (x: number) => (x === 0 || !Number.isFinite(x) ? 0 : 2 ** (Math.floor(Math.log2(Math.abs(x))) - P.mantissa));
  /** Within 4 ulps, or both NaN; values below e^underflow count as 0 (wasm's exp flushes them). */
  const near = (actual: number, expected: number) =>
    (Number.isNaN(actual) && Number.isNaN(expected)) || actual === expected || Math.abs(actual - expected) <= 4 * ulp(expected) + Math.exp(P.underflow);

  it("takes the online-softmax step of a key block as the scalar definition does, exp within a few ulps", () => {
    const special = fc.constantFrom(-Infinity, Number.NaN, 0, -800, -709, -88, -86);
    const score = fc.oneof({ weight: 12, arbitrary: fc.double({ min: -40, max: 40, noNaN: true }).map(P.round) }, { weight: 1, arbitrary: special });
    const config = fc.record({
      rows: fc.constantFrom(...P.rows),
      n: fc.integer({ min: 1, max: 9 }),
      seed: fc.nat(),
      scores: fc.array(score, { minLength: ROWS * 9, maxLength: ROWS * 9 }),
      maxes: fc.array(fc.oneof(fc.double({ min: -40, max: 40, noNaN: true }).map(P.round), fc.constant(-Infinity)), { minLength: ROWS, maxLength: ROWS }),
      sums: fc.array(fc.double({ min: 0, max: 50, noNaN: true }).map(P.round), { minLength: ROWS, maxLength: ROWS }),
    });
    fc.assert(
      fc.property(config, ({ rows, n, scores, maxes, sums }) => {
        const pr = 0;
        const blockMax = pr + rows * n;
        const rowMax = blockMax + rows;
        const rowSum = rowMax + rows;
        const exports = P.module(4, 8, rows, 2)(rowSum + rows);
        const F = new P.Array(exports.memory.buffer, 0, rowSum + rows);
        for (let i = 0; i < rows * n; i++) F[pr + i] = scores[i];
        // A row that has seen only masked keys has l = 0.
        for (let r = 0; r < rows; r++) [F[rowMax + r], F[rowSum + r]] = [maxes[r], maxes[r] === -Infinity ? 0 : sums[r]];
        const before = Array.from(F);
        const b = P.lanes.bytes;
        exports.softmax(pr * b, n, blockMax * b, rowMax * b, rowSum * b);
        for (let r = 0; r < rows; r++) {
          // The scalar definition: NaN sticks in the max; -Infinity rows give 0 and keep l.
          let top = -Infinity;
          for (let j = 0; j < n; j++) if (before[pr + j * rows + r] > top || Number.isNaN(before[pr + j * rows + r])) top = before[pr + j * rows + r];
          const old = before[rowMax + r];
          const next = top > old || Number.isNaN(top) ? top : old;
          // The max of -0 and 0 may be either zero: exp(s - m) is the same.
          const same = (a: number) => a === next || (Number.isNaN(a) && Number.isNaN(next));
          expect(same(F[blockMax + r]) && same(F[rowMax + r]), `row ${r} max: ${F[rowMax + r]} vs ${next}`).toBe(true);
          let sum = 0;
          for (let j = 0; j < n; j++) {
            // exp of the difference as the precision rounds it.
            const e = next === -Infinity ? 0 : Math.exp(P.round(before[pr + j * rows + r] - next));
            sum += e;
            expect(near(F[pr + j * rows + r], e), `row ${r} key ${j}: ${F[pr + j * rows + r]} vs ${e}`).toBe(true);
          }
          const l = next === old ? before[rowSum + r] + sum : before[rowSum + r] * Math.exp(P.round(old - next)) + sum;
          // Each sum term within 4 ulps of the precision: the sum within about 4 n ulps of l.
          const sumUlp = 2 ** -P.mantissa;
          expect(near(F[rowSum + r], l) || Math.abs(F[rowSum + r] - l) <= 8 * (n + 1) * sumUlp * l, `row ${r} sum: ${F[rowSum + r]} vs ${l}`).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("combines the maps' probabilities with per-block weights exactly as p1 w1 - p2 w2", () => {
    const config = fc.record({ maps: fc.constantFrom(1, 2), n: fc.integer({ min: 1, max: 20 }), block: fc.integer({ min: 1, max: 7 }), seed: fc.nat() });
    fc.assert(
      fc.property(config, ({ maps, n, block, seed }) => {
        const rows = ROWS;
        const blocks = Math.ceil(n / block);
        const pr0 = 0;
        const pr1 = pr0 + rows * n;
        const weights = pr1 + rows * n;
        const floats = weights + maps * rows * blocks;
        const exports = P.module(4, 8, rows, maps as 1 | 2)(floats);
        const F = new P.Array(exports.memory.buffer, 0, floats);
        let state = seed;
        for (let i = 0; i < floats; i++) {
          state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
          F[i] = state / 2 ** 31 - 1;
        }
        const before = Array.from(F);
        const b = P.lanes.bytes;
        exports.combine(pr0 * b, (maps === 2 ? pr1 : pr0) * b, n, weights * b, block);
        const { round } = P;
        for (let j = 0; j < n; j++)
          for (let r = 0; r < rows; r++) {
            const w = weights + Math.floor(j / block) * maps * rows + r;
            const p = round(before[pr0 + j * rows + r] * before[w]);
            expect(F[pr0 + j * rows + r]).toBe(maps === 2 ? round(p - round(before[pr1 + j * rows + r] * before[w + rows])) : p);
          }
      }),
      { numRuns: 200 },
    );
  });

  it("grows its memory to what the caller asks, and keeps it", () => {
    const simd = P.module(4, 8, ROWS, 1);
    const b = P.lanes.bytes;
    expect(simd(1).memory.buffer.byteLength).toBe(65536);
    expect(simd(100_000).memory.buffer.byteLength).toBeGreaterThanOrEqual(100_000 * b);
    expect(simd(1).memory.buffer.byteLength).toBeGreaterThanOrEqual(100_000 * b);
    // Past what i32 byte offsets address: a clear error, not wrapped offsets.
    expect(() => simd(2 ** 31 / b)).toThrow(/more than the 2 GiB/);
  });
});

describe("attention SIMD module, f64 only", () => {
  it("has quantize in f64 only: the quantised kernels compute their levels in float64", () => {
    const exports = (lanes: Lanes) => WebAssembly.Module.exports(new WebAssembly.Module(attentionModule(4, 4, ROWS, 2, lanes))).map((e) => e.name);
    expect(exports(F64X2)).toContain("quantize");
    expect(exports(F32X4)).not.toContain("quantize");
  });

  it("quantize gives each row's group the interpreter's levels bit for bit, its maximum, and touches nothing else", () => {
    const config = fc.record({
      n: fc.integer({ min: 0, max: 9 }),
      bits: fc.constantFrom(2, 4, 6, 8),
      signed: fc.boolean(),
      apply: fc.boolean(),
      scale: fc.constantFrom(1e-3, 1, 50),
      seed: fc.nat(),
      rows: fc.constantFrom(4, ROWS),
      special: fc.constantFrom("none", "nan", "inf", "zero"),
    });
    fc.assert(
      fc.property(config, ({ n, bits, signed, apply, scale, seed, rows, special }) => {
        const simd = attentionSimd([attentionModule(4, 4, rows, 2)], 8);
        // pr [n][rows], stops [rows], maxes [rows], then a guard region.
        const pr = 0;
        const stops = pr + n * rows;
        const maxes = stops + rows;
        const floats = maxes + rows + 16;
        const F = new Float64Array(simd(floats).memory.buffer, 0, floats);
        let state = seed;
        const next = () => (state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32;
        for (let i = 0; i < floats; i++) F[i] = (signed ? 2 * next() - 1 : next()) * scale;
        for (let r = 0; r < rows; r++) F[stops + r] = Math.floor(next() * (n + 1));
        // A special value in row 1's group, if it has one.
        if (n > 0 && F[stops + 1] > 0) F[pr + 1] = { none: F[pr + 1], nan: NaN, inf: -Infinity, zero: 0 }[special];
        if (special === "zero") for (let j = 0; j < n; j++) F[pr + j * rows + 2] = 0;
        const before = Float64Array.from(F);
        const levels = quantLevels(bits, signed);
        simd(floats).quantize!(pr * 8, n, stops * 8, maxes * 8, levels, signed ? -levels : 0, apply ? 1 : 0);
        const expected = Float64Array.from(before);
        for (let r = 0; r < rows; r++) {
          const stop = before[stops + r];
          let amax = 0;
          for (let j = 0; j < stop; j++) {
            const a = Math.abs(before[pr + j * rows + r]);
            if (a > amax || Number.isNaN(a)) amax = a;
          }
          if (n > 0) expected[maxes + r] = amax;
          if (apply) quantizeGroup(expected, pr + r, stop, rows, bits, signed);
        }
        for (let i = 0; i < floats; i++) expect(Object.is(F[i], expected[i]) || (Number.isNaN(F[i]) && Number.isNaN(expected[i])), `F[${i}] = ${F[i]}, expected ${expected[i]}`).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});

describe("attention SIMD module, f32 with relaxed SIMD's fused multiply-add", () => {
  const fused = attentionModule(8, 8, ROWS, 2, F32X4_FMA);
  const plain = attentionModule(8, 8, ROWS, 2, F32X4);

  it("is refused by this Node without --experimental-wasm-relaxed-simd, so the loader takes the plain module", () => {
    expect(WebAssembly.validate(plain)).toBe(true);
    // Node 20 keeps relaxed SIMD behind a flag; later engines (Node 22, Chrome 114) have it.
    if (!WebAssembly.validate(fused)) {
      const exports = attentionSimd([fused, plain], 4)(1);
      expect(WebAssembly.Module.exports(new WebAssembly.Module(plain)).map((e) => e.name)).toEqual(Object.keys(exports));
    }
  });

  it("validates with relaxed SIMD and gives the plain module's scores and weighted sums within the rounding of one product per term", () => {
    // In a child Node with the flag: both modules on the same memory contents, the differences printed.
    const script = `
const fused = new Uint8Array(${JSON.stringify([...fused])}), plain = new Uint8Array(${JSON.stringify([...plain])});
if (!WebAssembly.validate(fused)) { console.log("refused"); process.exit(0); }
const rows = ${ROWS}, d = 8, keys = 37, floats = rows * d + keys * d + rows * keys + 8 * keys + rows * 8;
const run = (bytes) => {
  const e = new WebAssembly.Instance(new WebAssembly.Module(bytes)).exports;
  e.memory.grow(Math.ceil((floats * 4) / 65536));
  const F = new Float32Array(e.memory.buffer, 0, floats);
  let state = 7;
  for (let i = 0; i < floats; i++) F[i] = (state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 31 - 1;
  const k = rows * d, out = k + keys * d, v = out + rows * keys, acc = v + 8 * keys;
  e.scores(0, k * 4, out * 4, keys, 0.5);
  e.weighted(out * 4, v * 4, acc * 4, keys, keys);
  return Array.from(F.subarray(out));
};
const a = run(fused), b = run(plain);
console.log(Math.max(...a.map((x, i) => Math.abs(x - b[i]) / (1 + Math.abs(b[i])))));`;
    const out = execFileSync(process.execPath, ["--experimental-wasm-relaxed-simd", "-e", script], { encoding: "utf8" }).trim();
    expect(out).not.toBe("refused");
    // Terms of magnitude <= 1: each fused product skips one rounding (2^-24 relative), at most keys + d of them per sum.
    expect(Number(out)).toBeLessThan(45 * 2 ** -24 * 8);
    expect(Number(out)).toBeGreaterThanOrEqual(0);
  });
});
