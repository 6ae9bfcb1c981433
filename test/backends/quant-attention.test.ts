// The quantised attention kernels (qflash_attention, qflash_diffattn) agree with the
// interpreter's statement of them (compiler/ir/ops/attention-quant.ts), over several query
// tiles and key blocks, causal with K > N and K < N, GQA, both pairings, λ per row and head, and
// the whole epilogue. The kernels compute in float64 like the interpreter, so every level is
// the interpreter's unless a value lies within ~1e-13 of a rounding tie: the flash tolerance
// applies. The CUDA and WebGPU test files check their kernels with the same model.
import { describe, expect, it } from "vitest";
import { randomInputs } from "../../runtime/init.ts";
import { BACKENDS, type BackendUnderTest, runAndCompare } from "../harness/harness.ts";
import { nearTies } from "../../compiler/ir/ops/attention-quant.ts";
import { tensor } from "../../compiler/ir/tensor.ts";
import { LEVEL_TIE_WINDOW, MAX_LEVEL_FLIPS } from "../harness/tolerance.ts";
import type { Graph } from "../../compiler/ir/graph.ts";
import { compileJs } from "../../backends/js/index.ts";
import { compileCuda } from "../../backends/cuda/index.ts";
import { compileWgsl } from "../../backends/wgsl/index.ts";
import { evaluate } from "../../runtime/interpreter/index.ts";
import { compileSource } from "../support/dsl.ts";
import { QUANT_SETTINGS, quantModel } from "../support/quant.ts";

describe("the quantised attention kernels", () => {
  it("are one streaming kernel each, not a decomposition", () => {
    const ops = compileJs(compileSource(quantModel(QUANT_SETTINGS.slice(0, 1)))).manifest.kernels.map((k) => k.op);
    expect(ops.filter((op) => op.includes("flash"))).toEqual(["qflash_diffattn", "qflash_diffattn", "qflash_attention"]);
  });

  for (const [n, k] of [[37, 53], [40, 21]])
    it(`agree with the interpreter in every setting at N = ${n}, K = ${k}`, async () => {
      const graph = compileSource(quantModel(QUANT_SETTINGS));
      const dims = new Map([["N", n], ["K", k]]);
      for (const backend of BACKENDS) await runAndCompare(backend, graph, randomInputs(graph, dims, 5 * n + k), new Map(), dims);
    });

  it("multiply integers (CUDA __dp4a, WGSL dot4I8Packed in a variant) exactly where both factors are levels: probability maps with V's levels", () => {
    const graph = compileSource(quantModel(QUANT_SETTINGS));
    const integer = QUANT_SETTINGS.map((s) => /"probs"/.test(s) && /v_bits/.test(s));
    const cuda = String(compileCuda(graph).files.get("kernels.cu"));
    const cudaKernels = cuda.split(/extern "C" __global__ /).filter((k) => /qflash/.test(k.slice(0, 200)));
    const wgsl = [...compileWgsl(graph).files.keys()].filter((f) => f.includes("qflash"));
    // Kernels in launch order: per setting, its three ops.
    const wgslKernels = [...new Set(wgsl.map((f) => f.split(".")[0]))];
    expect([cudaKernels.length, wgslKernels.length]).toEqual([3 * QUANT_SETTINGS.length, 3 * QUANT_SETTINGS.length]);
    QUANT_SETTINGS.forEach((setting, i) => {
      for (let op = 3 * i; op < 3 * i + 3; op++) {
        expect(cudaKernels[op].includes("__dp4a("), `CUDA, ${setting}`).toBe(integer[i]);
        expect(wgsl.includes(`${wgslKernels[op]}.packed_4x8_integer_dot_product.wgsl`), `WGSL, ${setting}`).toBe(integer[i]);
      }
    });
  });

  it("differ from the unquantised kernels (the quantisation is not skipped)", () => {
    const dims = new Map([["N", 40], ["K", 21]]);
    const quantised = compileSource(quantModel(['quant = "logits", bits = 4']));
    const plain = compileSource(quantModel(['quant = "none"']));
    const inputs = randomInputs(quantised, dims, 1);
    const [y, y0] = [quantised, plain].map((g) => evaluate(g, inputs, new Map(), { dims }).get("a0")!.data);
    expect(y.some((x, i) => Math.abs(x - y0[i]) > 1e-3)).toBe(true);
  });
});

describe("the harness's level flips", () => {
  // Logits 1, 0.5, -0.5, 0.25 of every query at 2 bits (levels -1, 0, 1, step 1): keys 1 and 2 lie on ties.
  const graph = compileSource(`model M { dim N
    input q: f32[N, 1]
    input k: f32[4, 1]
    input v: f32[4, 2]
    output y = qflash_attention(q, k, v, heads = 1, scale = 1, quant = "logits", bits = 2) }`);
  const rows = 6;
  const inputs = new Map([
    ["q", tensor("f32", [rows, 1], new Array(rows).fill(1))],
    ["k", tensor("f32", [4, 1], [1, 0.5, -0.5, 0.25])],
    ["v", tensor("f32", [4, 2], [1, 2, -3, 0.5, 4, -1, 0.25, 2])],
  ]);
  const dims = new Map([["N", rows]]);
  /** A made-up kernel: the interpreter with the near ties in `flipped` on their other side, then `change` applied. */
  const kernel = (flipped: number[], change: (y: Float64Array) => void = () => {}): BackendUnderTest => ({
    ...BACKENDS[0],
    name: `a kernel flipping ties ${flipped.join(", ")}`,
    load: async (g: Graph) => ({
      run: async (x) => {
        nearTies.reset(LEVEL_TIE_WINDOW, new Set(flipped));
        try {
          const out = evaluate(g, x, new Map(), { dims });
          change(out.get("y")!.data);
          return out;
        } finally {
          nearTies.reset(0);
        }
      },
    }),
  });

  it("finds two ties per row on these inputs", () => {
    nearTies.reset(LEVEL_TIE_WINDOW);
    evaluate(graph, inputs, new Map(), { dims });
    expect(nearTies.found.map((t) => t.row)).toEqual([0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]);
    nearTies.reset(0);
  });

  it("accepts a kernel that breaks a few near ties the other way (one level each)", async () => {
    for (const flips of [[1], [0, 7], [2, 3, 10]]) await runAndCompare(kernel(flips), graph, inputs, new Map(), dims);
  });

  it(`refuses more than ${MAX_LEVEL_FLIPS} flipped levels`, async () => {
    await expect(runAndCompare(kernel([0, 2, 4, 6, 8]), graph, inputs, new Map(), dims)).rejects.toThrow(/MAX_LEVEL_FLIPS/);
  });

  it("refuses a difference no near tie explains: a level off by two steps' worth, or a wrong λ-sized change", async () => {
    // Row 0's key 1 at level 1 (logit 1) instead of 0: its weight e^1 instead of e^0; not a tie's other side.
    const twoSteps = kernel([], (y) => (y[0] += 0.05));
    await expect(runAndCompare(twoSteps, graph, inputs, new Map(), dims)).rejects.toThrow(/no near tie of the level rule explains it/);
    await expect(runAndCompare(kernel([1], (y) => (y[3] *= 1.001)), graph, inputs, new Map(), dims)).rejects.toThrow(/no near tie/);
  });
});
