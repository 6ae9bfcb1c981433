// The WGSL backend on WebGPU (Dawn in Node; SwiftShader or lavapipe without a GPU), against
// the interpreter: every op family once, the examples at every stage of the default pipeline,
// random graphs, and a kernel error. Pipelines compile per artifact, so this file runs one
// instance of each case rather than BACKENDS' random shapes.
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Diagnostic } from "../../common/diagnostic.ts";
import { gpuDevice, webgpuUnavailable } from "../../runtime/adapters/webgpu/device.ts";
import { compileWgsl } from "../../backends/wgsl/index.ts";
import { importModule } from "../../runtime/adapters/module.ts";
import { serializeSafetensors } from "../../runtime/safetensors.ts";
import { randomInputs } from "../../runtime/init.ts";
import { backendUnderTest, runAndCompare, runAndCompareStages } from "../harness/harness.ts";
import { compileSource } from "../support/dsl.ts";
import { CASES, opCaseInstance } from "../support/op-cases.ts";
import { arbitraryGraphCase } from "../support/random-graph.ts";
import { testWeights } from "../support/weights.ts";

const missing = await webgpuUnavailable();
if (missing && process.env.CI === "true") throw new Error(`WebGPU cannot run in CI: ${missing}`);
if (missing) console.warn(`\n*** SKIPPING the webgpu tests: ${missing} ***\n`);

const gpu = backendUnderTest("webgpu");

describe.skipIf(missing !== undefined)("webgpu agrees with the interpreter", () => {
  for (const c of CASES) {
    it(`on ${c.name}`, async () => {
      const { graph, dims, inputs, weights } = opCaseInstance(c, { A: 3, B: 2, C: 4, N: c.rows?.[0] ?? 5, extra: 2, K: c.keys?.[1] ?? 7, seed: 11 });
      await runAndCompare(gpu, graph, inputs, weights, dims);
    }, 60_000);
  }

  for (const [file, set] of [
    ["diff_attention.dt", [["D", 64], ["H", 2]]],
    ["diff_lm.dt", [["V", 40], ["D", 32], ["H", 2], ["L", 2]]],
    ["transformer_lm.dt", [["V", 40], ["D", 32], ["H", 2], ["L", 2]]],
    ["diff_attention_v2.dt", [["D", 32], ["H", 2], ["Hkv", 1]]],
  ] as [string, [string, number][]][]) {
    it(`on examples/${file}, at every stage of the default pipeline`, async () => {
      const graph = compileSource(readFileSync(new URL(`../../examples/${file}`, import.meta.url), "utf8"), { set: new Map(set) }, file);
      const dims = new Map(graph.dims.map((d) => [d, 19]));
      await runAndCompareStages(gpu, graph, randomInputs(graph, dims, 3), testWeights(graph, 3), dims);
    }, 120_000);
  }

  it("on random graphs", async () => {
    await fc.assert(
      fc.asyncProperty(arbitraryGraphCase({ dims: true, attention: true, continuous: true }), async ({ graph, dims, inputs }) => {
        await runAndCompare(gpu, graph, inputs, new Map(), dims);
      }),
      { numRuns: 6 },
    );
  }, 120_000);

  it("reports a gather index out of range as the kernel's error, read back from the GPU", async () => {
    const graph = compileSource(`model M { dim N
      input table: f32[4, 3]
      input idx: i32[N]
      output y = table[idx] }`);
    const session = await gpu.load(graph, new Map());
    const inputs = new Map([
      ["table", { dtype: "f32" as const, shape: [4, 3], data: new Float64Array(12) }],
      ["idx", { dtype: "i32" as const, shape: [3], data: Float64Array.of(1, 7, 2) }],
    ]);
    const error = await session.run(inputs).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Diagnostic);
    expect((error as Diagnostic).message).toMatch(/gather: index 7 is out of range for an axis of size 4/);
  }, 60_000);
});

describe.skipIf(missing !== undefined)("the WebGPU loader", () => {
  it("refuses, with the limit named, a buffer larger than the device binds", async () => {
    const { device } = await gpuDevice();
    // The device as it is, but binding at most 64 bytes.
    const small = new Proxy(device, {
      get: (target, key) => {
        // The loader reads this one limit.
        if (key === "limits") return { maxStorageBufferBindingSize: 64 };
        const value = Reflect.get(target, key, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const graph = compileSource(`model M { dim N
      input x: f32[N]
      output y = x * 2 }`);
    const model = await importModule<{ load(w: Uint8Array, o: object): Promise<{ run(i: object): Promise<unknown> }> }>(String(compileWgsl(graph).files.get("model.js")));
    const session = await model.load(serializeSafetensors(new Map()), { device: small });
    await expect(session.run({ x: new Float32Array(8) })).resolves.toBeDefined();
    await expect(session.run({ x: new Float32Array(100) })).rejects.toThrow(/maxStorageBufferBindingSize 64/);
  });
});

describe.skipIf(missing !== undefined)("the WebGPU loader's errors", () => {
  it("names the kernel, line and column of a shader the device cannot compile", async () => {
    const { device } = await gpuDevice();
    const graph = compileSource(`model M { dim N
      input x: f32[N]
      output y = x * 2 }`);
    const artifact = compileWgsl(graph);
    const broken = String(artifact.files.get("model.js")).replace(/fn k0_mul\(/, "fn k0_mul(oops ");
    const model = await importModule<{ load(w: Uint8Array, o: object): Promise<unknown> }>(broken);
    await expect(model.load(serializeSafetensors(new Map()), { device })).rejects.toThrow(/cannot compile kernel k0_mul: \d+:\d+: /);
  });
});
