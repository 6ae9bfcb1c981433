// The JS backend's f32 matmul. The WebAssembly SIMD micro-kernel gives exactly what a scalar
// loop rounding each product and sum with Math.fround gives, for every number of row tiles,
// k and panels; the kernel around it (packing, chunks of rows, zero rows padding the last
// tile, columns past the last panel, a batch-broadcast b, a transposed b) gives the same bits
// end to end; and a param b is packed once per session, not on every run.
import { execFileSync } from "node:child_process";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { compileJs } from "../../backends/js/index.ts";
import { matmulModule, TILE_ROWS, TILE_VECTORS } from "../../backends/js/matmul-wasm.ts";
import { matmulSimd } from "../../backends/js/template/matmul-simd.js";
import { F32X4, F32X4_FMA } from "../../backends/js/wasm-encoder.ts";
import { parseGraph } from "../../compiler/ir/parse.ts";
import { tensor } from "../../compiler/ir/tensor.ts";
import { importJsModule } from "../../runtime/adapters/js/index.ts";
import { serializeSafetensors } from "../../runtime/safetensors.ts";
import { runPipeline } from "../../compiler/passes/pipeline.ts";
import { DEFAULT_PIPELINE } from "../../compiler/passes/registry.ts";
import { BACKENDS, runAndCompare } from "../harness/harness.ts";
import { compileSource } from "../support/dsl.ts";
import { seededInputs } from "../support/random-graph.ts";
import { testWeights } from "../support/weights.ts";

/** Columns per panel of packed b. */
const PANEL = TILE_VECTORS * F32X4.count;

/** A seeded generator of floats of varied magnitudes (2^-20 to 2^20), so that sums round. */
function floats(seed: number): () => number {
  let state = seed;
  const next = () => (state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  return () => (2 * next() - 1) * 2 ** Math.floor(40 * next() - 20);
}

/**
 * a @ b with each product and sum rounded to f32, summed over k in increasing order, and the
 * sum of the terms' magnitudes: a fused multiply-add rounds once per term instead of twice, and
 * either way a k-term sum is within (k + 1) u of that magnitude of the exact one.
 */
function scalarMatmul(a: (i: number, p: number) => number, b: (p: number, j: number) => number, n: number, k: number, m: number): { c: Float32Array; magnitude: Float64Array } {
  const c = new Float32Array(n * m);
  const magnitude = new Float64Array(n * m);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < m; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) {
        s = Math.fround(s + Math.fround(a(i, p) * b(p, j)));
        magnitude[i * m + j] += Math.abs(a(i, p) * b(p, j));
      }
      c[i * m + j] = s;
    }
  return { c, magnitude };
}

/** Whether the engine validates relaxed SIMD: then the artifacts' matmuls use fused multiply-adds. */
const FUSED = WebAssembly.validate(matmulModule(F32X4_FMA));

const same = (x: number, y: number) => Object.is(x, y) || (Number.isNaN(x) && Number.isNaN(y));

describe("the f32 matmul micro-kernel", () => {
  it("is valid WebAssembly that Node accepts", () => {
    expect(WebAssembly.validate(matmulModule())).toBe(true);
  });

  it("is bit-identical to a scalar loop rounding each product and sum to f32, and writes nothing but its product", () => {
    const config = fc.record({
      tiles: fc.integer({ min: 0, max: 5 }),
      k: fc.integer({ min: 0, max: 13 }),
      panels: fc.integer({ min: 0, max: 4 }),
      seed: fc.nat(),
      special: fc.constantFrom(Number.NaN, Infinity, -Infinity, -0, 3e38, 1e-40),
      specialAt: fc.nat(),
    });
    const kernel = matmulSimd([matmulModule()]).scratch();
    fc.assert(
      fc.property(config, ({ tiles, k, panels, seed, special, specialAt }) => {
        const rows = tiles * TILE_ROWS;
        const width = panels * PANEL;
        // a [rows][k], b packed [panels][k][PANEL], c [rows][width], then a guard region.
        const a = 0;
        const b = a + rows * k;
        const c = b + panels * k * PANEL;
        const total = c + rows * width + 64;
        const F = kernel.memory(total);
        const next = floats(seed);
        for (let i = 0; i < total; i++) F[i] = next();
        // One special value (NaN, ±Infinity, -0, an overflowing product, a subnormal) in a or b.
        if (c > 0) F[specialAt % c] = special;
        const before = Float32Array.from(F);
        kernel.matmul(4 * a, 4 * b, 4 * c, rows, k, panels);
        const expected = scalarMatmul(
          (i, p) => before[a + i * k + p],
          (p, j) => before[b + Math.floor(j / PANEL) * k * PANEL + p * PANEL + (j % PANEL)],
          rows,
          k,
          width,
        ).c;
        for (let i = 0; i < total; i++) {
          const want = i >= c && i < c + rows * width ? expected[i - c] : before[i];
          expect(same(F[i], want), `F[${i}] = ${F[i]}, expected ${want}`).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("with relaxed SIMD (Node 20: --experimental-wasm-relaxed-simd) runs the multiply-add module, within the error bound of a k-term f32 sum", () => {
    const [rows, k, panels] = [8, 37, 3];
    const width = panels * PANEL;
    const next = floats(5);
    const a = Float32Array.from({ length: rows * k }, next);
    const b = Float32Array.from({ length: panels * k * PANEL }, next);
    // The loader in a Node that validates relaxed SIMD, on the same a and packed b.
    const loader = new URL("../../backends/js/template/matmul-simd.js", import.meta.url).href;
    const script = `import { matmulSimd } from ${JSON.stringify(loader)};
      const input = JSON.parse((await import("node:fs")).readFileSync(0, "utf8"));
      const simd = matmulSimd([new Uint8Array(input.fma), new Uint8Array(input.plain)]);
      const kernel = simd.scratch();
      const F = kernel.memory(input.a.length + input.b.length + ${rows * width});
      F.set(input.a, 0);
      F.set(input.b, input.a.length);
      kernel.matmul(0, 4 * input.a.length, 4 * (input.a.length + input.b.length), ${rows}, ${k}, ${panels});
      console.log(JSON.stringify({ variant: simd.variant, c: Array.from(F.subarray(input.a.length + input.b.length)) }));`;
    const input = JSON.stringify({ plain: [...matmulModule()], fma: [...matmulModule(F32X4_FMA)], a: [...a], b: [...b] });
    const { variant, c } = JSON.parse(execFileSync(process.execPath, ["--experimental-wasm-relaxed-simd", "--input-type=module", "-e", script], { input, encoding: "utf8" })) as { variant: number; c: number[] };
    // The relaxed-SIMD module, the first variant.
    expect(variant).toBe(0);
    for (let i = 0; i < rows; i++)
      for (let j = 0; j < width; j++) {
        // Each of the k steps rounds once (fused) or twice: within (k + 1) u of the sum of |terms|.
        let exact = 0;
        let magnitude = 0;
        for (let p = 0; p < k; p++) {
          const term = a[i * k + p] * b[Math.floor(j / PANEL) * k * PANEL + p * PANEL + (j % PANEL)];
          exact += term;
          magnitude += Math.abs(term);
        }
        expect(Math.abs(c[i * width + j] - exact), `c[${i}][${j}]`).toBeLessThanOrEqual(1.01 * (k + 1) * 2 ** -24 * magnitude);
      }
    // In this engine, the loader takes the module it validates.
    expect(matmulSimd([matmulModule(F32X4_FMA), matmulModule()]).variant).toBe(FUSED ? 0 : 1);
  });

  it("grows its memory to what the caller asks, and refuses more than i32 offsets address", () => {
    const kernel = matmulSimd([matmulModule()]).scratch();
    expect(kernel.memory(1).length).toBe(1);
    expect(kernel.memory(100_000).buffer.byteLength).toBeGreaterThanOrEqual(400_000);
    expect(() => kernel.memory(2 ** 29)).toThrow(/more than the 2 GiB/);
  });
});

describe("the f32 matmul kernel of the JS backend", () => {
  // a: [B, N, K] against b: [K, M] broadcast over the batch, and against bt: [B, M, K] read transposed.
  const graph = parseGraph(`graph g [B, N, K, M] {
    %0 = input {name = "a"} : f32[B, N, K]
    %1 = input {name = "b"} : f32[K, M]
    %2 = input {name = "bt"} : f32[B, M, K]
    %3 = matmul(%0, %1) : f32[B, N, M]
    %4 = matmul(%0, %2) {transpose_b = true} : f32[B, N, M]
    output "y" = %3
    output "yt" = %4
  }`);
  const artifact = compileJs(graph);

  it(`gives the scalar f32 loop's ${FUSED ? "sums within their rounding bound (this engine has fused multiply-adds)" : "bits"} over chunks of rows, partial tiles and panels, a broadcast b and a transposed b`, async () => {
    const model = await importJsModule(String(artifact.files.get("model.js")));
    const session = await model.load(serializeSafetensors(new Map()));
    const config = fc.record({ batch: fc.integer({ min: 1, max: 3 }), n: fc.integer({ min: 0, max: 70 }), k: fc.integer({ min: 0, max: 9 }), m: fc.integer({ min: 1, max: 19 }), seed: fc.nat() });
    await fc.assert(
      fc.asyncProperty(config, async ({ batch, n, k, m, seed }) => {
        const next = floats(seed);
        const fill = (length: number) => Float32Array.from({ length }, next);
        const [a, b, bt] = [fill(batch * n * k), fill(k * m), fill(batch * m * k)];
        const outputs = (await session.run({ a: { data: a, shape: [batch, n, k] }, b: { data: b, shape: [k, m] }, bt: { data: bt, shape: [batch, m, k] } })) as Record<string, Float32Array>;
        const agrees = (actual: number, expected: { c: Float32Array; magnitude: Float64Array }, i: number) =>
          FUSED ? Math.abs(actual - expected.c[i]) <= 2.02 * (k + 1) * 2 ** -24 * expected.magnitude[i] : same(actual, expected.c[i]);
        for (let e = 0; e < batch; e++) {
          const at = (i: number, p: number) => a[e * n * k + i * k + p];
          const y = scalarMatmul(at, (p, j) => b[p * m + j], n, k, m);
          const yt = scalarMatmul(at, (p, j) => bt[e * m * k + j * k + p], n, k, m);
          for (let i = 0; i < n * m; i++) {
            expect(agrees(outputs.y[e * n * m + i], y, i), `y[${e}][${i}]`).toBe(true);
            expect(agrees(outputs.yt[e * n * m + i], yt, i), `yt[${e}][${i}]`).toBe(true);
          }
        }
      }),
      { numRuns: 60 },
    );
  });
});

/** Linear layers as models write them: a param b of every layout, after the default pipeline (transposes folded into transpose_b, epilogues fused). */
const PARAMS = `model M(A, B, C) { dim N
  input a: f32[A, N, B]
  param w: f32[B, C]
  param wb: f32[A, B, C]
  param wt: f32[1, C, B]
  param wh: f16[C, B]
  param we: f32[B, C]
  param bias: f32[C]
  output p = a @ w
  output q = a @ wb
  output t = a @ transpose(wt, [0, 2, 1])
  output e = silu(a @ we) * 0.5 + bias
  output h = cast(a, f16) @ transpose(wh)
}`;

describe("matmuls of params, in every backend of the harness", () => {
  for (const backend of BACKENDS)
    it(`${backend.name}: a 2-D b broadcast over the batch, a batched b, a transposed b, an epilogue, f16: as the interpreter`, async () => {
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 11 }), fc.integer({ min: 1, max: 19 }), fc.integer({ min: 0, max: 70 }), fc.nat(1000), async (A, B, C, N, seed) => {
          const graph = runPipeline(compileSource(PARAMS, { set: new Map([["A", A], ["B", B], ["C", C]]) }), DEFAULT_PIPELINE, { log: () => {} });
          const dims = new Map([["N", N]]);
          await runAndCompare(backend, graph, seededInputs(graph, dims, seed), testWeights(graph, seed), dims);
        }),
        { numRuns: 12 },
      );
    });

  it("packs every b once per session in f32: each is a param", () => {
    const graph = runPipeline(compileSource(PARAMS, { set: new Map([["A", 2], ["B", 3], ["C", 4]]) }), DEFAULT_PIPELINE, { log: () => {} });
    const source = String(compileJs(graph).files.get("model.js"));
    expect(source.match(/matmulF32\.packed\(/g)).toHaveLength(5);
    // Four matmuls and the epilogue's fused kernel.
    expect(compileJs(graph).manifest.kernels.filter((k) => k.op === "matmul" || k.op === "fused")).toHaveLength(5);
    expect(source).not.toContain("matmulF32.scratch()");
  });
});

describe("the f32 matmul with threads", () => {
  it("splits its panels over threads, and gives the one-thread result bit for bit with 2 and 3 threads", async () => {
    // PARAMS and a b that is an input (packed per call): every output, every share.
    const graph = runPipeline(compileSource(PARAMS.replace("output p = a @ w", "input x: f32[B, C]\n  output p = a @ w\n  output px = a @ x"), { set: new Map([["A", 2], ["B", 11], ["C", 37]]) }), DEFAULT_PIPELINE, { log: () => {} });
    const artifact = compileJs(graph);
    expect(artifact.manifest.kernels.filter((k) => k.op === "matmul" || k.op === "fused").every((k) => k.split)).toBe(true);
    // The float64 kernel of the exact mode runs whole.
    expect(compileJs(graph, [], { precision: "f64" }).manifest.kernels.some((k) => k.split)).toBe(false);
    const model = await importJsModule(String(artifact.files.get("model.js")));
    const weights = serializeSafetensors(testWeights(graph, 4));
    const dims = new Map([["N", 67]]);
    const inputs = Object.fromEntries([...seededInputs(graph, dims, 4)].map(([name, t]) => [name, { data: Float32Array.from(t.data), shape: t.shape }]));
    type Threaded = { run(inputs: unknown): Promise<Record<string, Float32Array>>; close(): void };
    // minSplitWork 0: these small products split too.
    const load = async (threads: number) => (await model.load(weights, { threads, minSplitWork: 0 } as never)) as unknown as Threaded;
    const alone = await load(1);
    const expected = await alone.run(inputs);
    for (const threads of [2, 3]) {
      const session = await load(threads);
      // Twice: the second run reuses every thread's packed shares.
      for (let run = 0; run < 2; run++) {
        const outputs = await session.run(inputs);
        for (const [name, y] of Object.entries(expected)) expect(outputs[name].every((v, i) => Object.is(v, y[i])), `${name} with ${threads} threads`).toBe(true);
      }
      session.close();
    }
    alone.close();
  });
});

describe("packing a param b", () => {
  it("happens once per param array and layout in the loader", () => {
    const loader = matmulSimd([matmulModule()]);
    let packs = 0;
    const pack = (F: Float32Array) => {
      packs++;
      F[0] = 7;
    };
    const b = new Float32Array(4);
    const first = loader.packed(b, "t2x2", 16, pack);
    expect(loader.packed(b, "t2x2", 16, pack)).toBe(first);
    expect(packs).toBe(1);
    expect(first.memory(16)[0]).toBe(7);
    // The same array in another layout, and another array in the same layout: packed anew.
    expect(loader.packed(b, "2x2", 16, pack)).not.toBe(first);
    expect(loader.packed(new Float32Array(4), "t2x2", 16, pack)).not.toBe(first);
    expect(packs).toBe(3);
  });

  it("happens on a session's first run only: later runs, at any size, make no instance and pack nothing (one thread)", async () => {
    const graph = parseGraph(`graph g [N] {
      %0 = input {name = "x"} : f32[N, 5]
      %1 = param {name = "w"} : f32[7, 5]
      %2 = matmul(%0, %1) {transpose_b = true} : f32[N, 7]
      %3 = param {name = "u"} : f32[7, 3]
      %4 = matmul(%2, %3) : f32[N, 3]
      output "y" = %4
    }`);
    const model = await importJsModule(String(compileJs(graph).files.get("model.js")));
    const next = floats(1);
    const weights = serializeSafetensors(new Map([["w", tensor("f32", [7, 5], Array.from({ length: 35 }, next))], ["u", tensor("f32", [7, 3], Array.from({ length: 21 }, next))]]));
    const input = (n: number) => ({ x: Float32Array.from({ length: n * 5 }, next) });
    // Every instance made, counted as it is made: each packed b lives in one of its own.
    const Instance = WebAssembly.Instance;
    let instances = 0;
    WebAssembly.Instance = class extends Instance {
      constructor(module: WebAssembly.Module, imports?: WebAssembly.Imports) {
        super(module, imports);
        instances++;
      }
    };
    try {
      const session = await model.load(weights, { threads: 1 } as never);
      const x = input(9);
      const y = (await session.run(x)).y;
      // w and u, each packed into an instance of its own.
      expect(instances).toBe(2);
      expect((await session.run(x)).y).toEqual(y);
      await session.run(input(130));
      expect(instances).toBe(2);
      // Another session holds its own params: packed again, once.
      const other = await model.load(weights, { threads: 1 } as never);
      expect((await other.run(x)).y).toEqual(y);
      await other.run(x);
      expect(instances).toBe(4);
    } finally {
      WebAssembly.Instance = Instance;
    }
  });
});
