// The JS backend's streaming attention kernels run as one kernel each and keep memory O(N·d):
// no N×N map, neither among the plan's buffers nor inside the kernel.
import { describe, expect, it } from "vitest";
import { randomInputs } from "../../runtime/init.ts";
import { BACKENDS, runAndCompare } from "../harness/harness.ts";
import { compileJs } from "../../backends/js/index.ts";
import { importJsModule } from "../../runtime/adapters/js/index.ts";
import { serializeSafetensors } from "../../runtime/safetensors.ts";
import { compileSource } from "../support/dsl.ts";
import { STREAMING_ATTENTION } from "../support/kernels.ts";

const N = 4096;
const SOURCE = `model M(H = 1, d = 16) { dim N
  input q: f32[N, 2 * H * d]
  input k: f32[N, 2 * H * d]
  input v: f32[N, 2 * H * d]
  input w: f32[2 * d]
  output y = flash_diffattn(q, k, v, 0.5, w, heads = H, causal = true, out_scale = 0.8) }`;

describe("flash_diffattn in the JS backend", () => {
  const artifact = compileJs(compileSource(SOURCE));

  it("is one kernel, not a decomposition", () => {
    expect(artifact.manifest.kernels.map((k) => k.op)).toEqual(["flash_diffattn"]);
  });

  it("plans no buffer that grows faster than N", () => {
    for (const slot of artifact.manifest.slots) expect(slot.bytes.symbols.length, JSON.stringify(slot)).toBeLessThanOrEqual(1);
  });

  it(`at N = ${N} (H = 1, d = 16) allocates far less than one N×N map of f32`, async () => {
    const model = (await importJsModule(String(artifact.files.get("model.js")))) as unknown as {
      load(weights: Uint8Array): Promise<{ runSync(inputs: Record<string, Float32Array>): Record<string, Float32Array> }>;
    };
    const session = await model.load(serializeSafetensors(new Map()));
    const input = () => Float32Array.from({ length: N * 32 }, (_, i) => Math.sin(i));
    const inputs = { q: input(), k: input(), v: input(), w: new Float32Array(32).fill(1) };
    // Every typed array the kernel allocates and every page its wasm scratch memory grows by,
    // counted as they are made (a GC during the run could hide a dead one from memoryUsage()).
    // The runtime's own buffers are the plan's slots above.
    const allocated: number[] = [];
    const grow = WebAssembly.Memory.prototype.grow;
    WebAssembly.Memory.prototype.grow = function (pages: number) {
      allocated.push(pages * 65536);
      return grow.call(this, pages);
    };
    const typedArrays = { Float64Array, Float32Array, Int32Array, Uint16Array, Uint8Array };
    const global = globalThis as unknown as Record<string, unknown>;
    for (const [name, Base] of Object.entries(typedArrays)) {
      global[name] = class extends (Base as new (...args: unknown[]) => ArrayBufferView) {
        constructor(...args: unknown[]) {
          super(...args);
          // A view over an existing buffer (the wasm memory) allocates nothing.
          if (!(args[0] instanceof ArrayBuffer)) allocated.push(this.byteLength);
        }
      };
    }
    let y: Float32Array;
    try {
      y = session.runSync(inputs).y;
    } finally {
      Object.assign(global, typedArrays);
      WebAssembly.Memory.prototype.grow = grow;
    }
    const bytes = allocated.reduce((a, b) => a + b, 0);
    // The packed K and V and the tile's buffers: (2 + 2) * d * N + 2 * 16 * N floats (f32, the
    // default precision), about 1.6 MB here; one N×N map is 64 MB.
    expect(bytes).toBeGreaterThan(N * 4 * 16 * 4);
    expect(bytes).toBeLessThan((4 * N * N) / 16);
    expect(y.length).toBe(N * 32);
    expect(y.every(Number.isFinite)).toBe(true);
  });
});

describe("the streaming kernels over several query tiles and key blocks", () => {
  // The op tests use N <= 6: one query tile. Here tiles of 16 rows repeat, the last one partial,
  // and keys span several blocks, the last one partial, causal with K > N and K < N.
  const source = STREAMING_ATTENTION;
  for (const [n, k] of [[40, 150], [37, 21], [16, 16]]) {
    it(`agree with the interpreter at N = ${n}, K = ${k}`, async () => {
      const graph = compileSource(source);
      const dims = new Map([["N", n], ["K", k]]);
      for (const backend of BACKENDS) await runAndCompare(backend, graph, randomInputs(graph, dims, n + k), new Map(), dims);
    });
  }
});

describe("flash_diffattn when one map sees no key", () => {
  it("gives -λ p2 v where map 1's scores are all -Infinity and map 2's are not, as the interpreter does", async () => {
    const graph = compileSource(`model M { dim N
  input q: f32[N, 8]
  input k: f32[N, 8]
  input v: f32[N, 8]
  output y = flash_diffattn(q, k, v, 0.5, heads = 1) }`);
    const dims = new Map([["N", 3]]);
    const inputs = randomInputs(graph, dims, 1);
    // Row 0 of q1 is -inf in its first column, and every key's first column is 1.
    inputs.get("q")!.data[0] = -Infinity;
    for (let j = 0; j < 3; j++) inputs.get("k")!.data[j * 8] = 1;
    for (const backend of BACKENDS) await runAndCompare(backend, graph, inputs, new Map(), dims);
  });
});

describe("flash_diffattn with halves, GQA and the whole epilogue over several query tiles", () => {
  // H = 4, Hkv = 2, d = 4: halves reads group g's values as subheads g and 2 + g of v, where
  // stripe would read them whole; norm weights are random (not ones), norm_eps and out_scale
  // not their defaults; causal with K != N, so the offset K - N decides every row's keys.
  const source = `model M { dim N, K
  input q: f32[N, 32]
  input k: f32[K, 16]
  input v: f32[K, 16]
  input lam: f32[N, 4]
  input w: f32[8]
  output y = flash_diffattn(q, k, v, lam, w, heads = 4, kv_heads = 2, pairing = "halves", causal = true, norm_eps = 0.3, out_scale = 0.7, block = 9) }`;

  it("is the streaming kernel, not a decomposition", () => {
    expect(compileJs(compileSource(source)).manifest.kernels.map((k) => k.op)).toEqual(["flash_diffattn"]);
  });

  for (const [n, k] of [[37, 53], [40, 21]]) {
    it(`agrees with the interpreter at N = ${n}, K = ${k}`, async () => {
      const graph = compileSource(source);
      const dims = new Map([["N", n], ["K", k]]);
      for (const backend of BACKENDS) await runAndCompare(backend, graph, randomInputs(graph, dims, 3 * n + k), new Map(), dims);
    });
  }
});
