// The WebAssembly SIMD loops of the JS backend's attention kernels give exactly what scalar
// float64 code summing in the interpreter's order gives, for every width and count, including
// the remainder paths (keys not a multiple of 4, value widths not a multiple of 4, odd ones).
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { attentionSimd } from "../../backends/js/attention.ts";
import { attentionModule } from "../../backends/js/wasm.ts";

describe("attention SIMD module", () => {
  it("is valid WebAssembly that Node accepts", () => {
    expect(WebAssembly.validate(attentionModule(64, 128))).toBe(true);
  });

  it("scores and weighted sums are bit-identical to scalar float64 loops", () => {
    const config = fc.record({
      d: fc.integer({ min: 1, max: 9 }),
      dv: fc.integer({ min: 1, max: 11 }),
      n: fc.integer({ min: 0, max: 11 }),
      extra: fc.integer({ min: 0, max: 3 }),
      scale: fc.double({ min: 0.01, max: 2, noNaN: true }),
      seed: fc.nat(),
    });
    fc.assert(
      fc.property(config, ({ d, dv, n, extra, scale, seed }) => {
        const keys = n + extra;
        const dvp = dv + (dv % 2);
        const simd = attentionSimd(attentionModule(d, dv));
        // qt [d][4], k [keys][d], out [keys][4], v [dvp / 2][keys][2], acc [4][dvp]
        const qt = 0;
        const k = qt + 4 * d;
        const out = k + keys * d;
        const v = out + 4 * keys;
        const acc = v + dvp * keys;
        const floats = acc + 4 * dvp;
        const exports = simd(floats);
        const F = new Float64Array(exports.memory.buffer, 0, floats);
        let state = seed;
        for (let i = 0; i < floats; i++) {
          state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
          F[i] = state / 2 ** 31 - 1;
        }
        if (n > 0) {
          exports.scores(qt * 8, k * 8, out * 8, n, scale);
          for (let j = 0; j < n; j++)
            for (let r = 0; r < 4; r++) {
              let s = 0;
              for (let t = 0; t < d; t++) s += F[qt + t * 4 + r] * F[k + j * d + t];
              expect(F[out + j * 4 + r]).toBe(s * scale);
            }
        }
        exports.weighted(out * 8, v * 8, acc * 8, n, keys);
        for (let r = 0; r < 4; r++)
          for (let c = 0; c < dv; c++) {
            let s = 0;
            for (let j = 0; j < n; j++) s += F[out + j * 4 + r] * F[v + (c - (c % 2)) * keys + 2 * j + (c % 2)];
            // With no keys the call leaves acc alone; the kernel never reads it then.
            if (n > 0) expect(F[acc + r * dvp + c]).toBe(s);
          }
      }),
      { numRuns: 300 },
    );
  });

  it("grows its memory to what the caller asks, and keeps it", () => {
    const simd = attentionSimd(attentionModule(4, 8));
    expect(simd(1).memory.buffer.byteLength).toBe(65536);
    expect(simd(100_000).memory.buffer.byteLength).toBeGreaterThanOrEqual(800_000);
    expect(simd(1).memory.buffer.byteLength).toBeGreaterThanOrEqual(800_000);
  });
});
