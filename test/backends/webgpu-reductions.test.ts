// Cooperative reductions on WebGPU (lower/cooperative.ts): every reduction, softmax and norm
// lowered with a workgroup per row, against the interpreter, in both of its variants: combining
// through subgroup operations (the device's `subgroups`) and through a tree in workgroup memory
// (the same device with the feature hidden). Rows shorter than a workgroup, not a multiple of
// it, and of one element; NaN and infinite rows; f16; more rows than one launch has workgroups.
//
// Reassociation: a workgroup sums a row in another order than the interpreter (each thread
// every 64th element, then the threads' sums), in f32. The harness's tolerance for WebGPU is
// the "reduction" family (1e3 units, tolerance.ts) times the WGSL target's factor 16: about
// 1e-3 relative, against an order-change error of about sqrt(L)·2^-24 relative for rows of L.
import { describe, expect, it } from "vitest";
import { compileWgsl } from "../../backends/wgsl/index.ts";
import type { Graph } from "../../compiler/ir/graph.ts";
import { tensor } from "../../compiler/ir/tensor.ts";
import type { TensorMap } from "../../runtime/adapters/adapter.ts";
import { loadWebgpu } from "../../runtime/adapters/webgpu/index.ts";
import { gpuDevice, webgpuUnavailable } from "../../runtime/adapters/webgpu/device.ts";
import { randomInputs } from "../../runtime/init.ts";
import { backendUnderTest, type BackendUnderTest, runAndCompare } from "../harness/harness.ts";
import { compileSource } from "../support/dsl.ts";
import { reductionStages } from "../support/reductions.ts";
import { withFeatures } from "../support/webgpu.ts";
import { testWeights } from "../support/weights.ts";

const missing = await webgpuUnavailable();
if (missing && process.env.CI === "true") throw new Error(`WebGPU cannot run in CI: ${missing}`);
if (missing) console.warn(`\n*** SKIPPING the webgpu reduction tests: ${missing} ***\n`);

const gpu = backendUnderTest("webgpu");

/** WebGPU with every reduction cooperative, on the device with only the features in `keep`. */
function cooperative(keep: string[]): BackendUnderTest {
  return {
    ...gpu,
    name: `webgpu (cooperative, ${keep.length ? keep.join(", ") : "no subgroups"})`,
    load: async (graph, weights) => loadWebgpu(compileWgsl(graph, { reductions: "cooperative" }), weights, withFeatures((await gpuDevice()).device, keep)),
  };
}

/**
 * The cooperative kernels' variants that run here (lavapipe's subgroups have 8 invocations): a
 * workgroup of one 8-wide subgroup, subgroups merged through workgroup memory (the device's
 * subgroups said to be possibly 4 wide), and the tree (no subgroups); f16 buffers native where
 * the device has shader-f16. The 32-wide variant is compiled below, not run: it needs subgroups
 * of 32, and differs from the 8-wide one only in that number.
 */
const VARIANTS = [cooperative(["subgroups", "subgroup-min-size-8", "shader-f16"]), cooperative(["subgroups", "shader-f16"]), cooperative(["shader-f16"])];

async function compareVariants(graph: Graph, inputs: TensorMap, weights: TensorMap, dims: ReadonlyMap<string, number>): Promise<void> {
  for (const backend of VARIANTS) await runAndCompare(backend, graph, inputs, weights, dims);
}

describe.skipIf(missing !== undefined)("cooperative reductions on WebGPU agree with the interpreter, in every variant", () => {
  // 1: one element per row; 3: fewer than a workgroup's threads; 64: exactly one per thread;
  // 65 and 1000: not a multiple of the workgroup.
  it.each([1, 3, 64, 65, 1000])("every reduction, softmax and norm over rows of %i", async (length) => {
    for (const graph of reductionStages(length)) {
      const dims = new Map([["N", 5]]);
      await compareVariants(graph, randomInputs(graph, dims, length), testWeights(graph, 3), dims);
    }
  }, 120_000);

  it("softmax, max and min of rows holding NaN, -inf and +inf: NaN wins, an all -inf row gives 0", async () => {
    const graph = compileSource(`model M {
      dim N
      input x: f32[N, 100]
      output p = softmax(x)
      output mx = max(x, axis = -1)
      output mn = min(x, axis = -1)
      output s = sum(x, axis = -1) }`);
    const rows = [
      (i: number) => (i === 77 ? NaN : i), // one NaN, late in the row (in another thread's elements than the max)
      () => -Infinity,
      (i: number) => (i === 5 ? Infinity : -i),
      (i: number) => (i === 99 ? -Infinity : Math.sin(i)),
    ];
    const x = tensor("f32", [rows.length, 100], rows.flatMap((row) => Array.from({ length: 100 }, (_, i) => row(i))));
    await compareVariants(graph, new Map([["x", x]]), new Map(), new Map([["N", rows.length]]));
  }, 60_000);

  it("f16 rows: softmax and a sum, on native f16 buffers and on packed ones", async () => {
    const graph = compileSource(`model M {
      dim N
      input x: f16[N, 300]
      output p = softmax(x)
      output s = sum(x, axis = -1) }`);
    const dims = new Map([["N", 3]]);
    const inputs = randomInputs(graph, dims, 5);
    for (const backend of [...VARIANTS, cooperative(["subgroups", "subgroup-min-size-8"]), cooperative(["subgroups"]), cooperative([])]) await runAndCompare(backend, graph, inputs, new Map(), dims);
  }, 60_000);

  it("more rows than one launch has workgroups (65535): each workgroup takes every 65535th row", async () => {
    const graph = compileSource(`model M {
      dim N
      input x: f32[N, 2]
      output s = sum(x, axis = -1) }`);
    const dims = new Map([["N", 65_540]]);
    await compareVariants(graph, randomInputs(graph, dims, 9), new Map(), dims);
  }, 60_000);
});

describe.skipIf(missing !== undefined)("the cooperative kernels' variants", () => {
  const VARIANT_FILES = (kernel: string) => [`${kernel}.subgroups.subgroup-min-size-32.wgsl`, `${kernel}.subgroups.subgroup-min-size-8.wgsl`, `${kernel}.subgroups.wgsl`, `${kernel}.wgsl`];

  it("come as one .wgsl each per cooperative kernel, and the heuristic keeps many short rows a thread per row", () => {
    const graph = compileSource(`model M {
      dim N
      input x: f32[N, 4096]
      input z: f32[N, 8]
      output p = softmax(x)
      output s = sum(z, axis = -1) }`);
    const files = [...compileWgsl(graph).files.keys()].filter((f) => f.endsWith(".wgsl"));
    expect(files).toEqual([...VARIANT_FILES("k0_softmax"), "k1_sum.wgsl"]);
  });

  it("are what the tests above run: with reductions forced cooperative, every kernel that reduces is cooperative, in every variant", () => {
    for (const graph of reductionStages(3)) {
      const files = compileWgsl(graph, { reductions: "cooperative" }).files;
      const reducing = [...files].filter(([f, code]) => /^k\d+_\w+\.wgsl$/.test(f) && /var (acc|partMax): /.test(String(code))).map(([f]) => f.replace(/\.wgsl$/, ""));
      expect(reducing.length).toBeGreaterThanOrEqual(10);
      for (const kernel of reducing) {
        for (const file of VARIANT_FILES(kernel)) expect(String(files.get(file)), file).toMatch(/@builtin\(workgroup_id\)[^]*for \(var \w+: i32 = i32\(local\.x\)/);
        expect(String(files.get(`${kernel}.subgroups.subgroup-min-size-8.wgsl`))).not.toMatch(/workgroupBarrier|var<workgroup>/);
      }
    }
  });

  it("compile on the device, the 32-wide one too", async () => {
    const { device } = await gpuDevice();
    const shaders = [...compileWgsl(reductionStages(1000)[1]).files].filter(([f]) => f.includes(".subgroups."));
    expect(shaders.length).toBeGreaterThanOrEqual(12);
    for (const [file, code] of shaders) {
      const messages = (await device.createShaderModule({ code: String(code) }).getCompilationInfo()).messages.filter((m) => m.type === "error");
      expect(messages.map((m) => m.message), file).toEqual([]);
    }
  });
});
