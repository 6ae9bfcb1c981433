// The WGSL backend on WebGPU (Dawn in Node; SwiftShader or lavapipe without a GPU), against
// the interpreter: every op family once, the examples at every stage of the default pipeline,
// random graphs, and a kernel error. Pipelines compile per artifact, so this file runs one
// instance of each case rather than BACKENDS' random shapes.
import { describe, expect, it } from "vitest";
import { gpuDevice, webgpuUnavailable } from "../../runtime/adapters/webgpu/device.ts";
import { compileWgsl } from "../../backends/wgsl/index.ts";
import { importModule } from "../../runtime/adapters/module.ts";
import { serializeSafetensors } from "../../runtime/safetensors.ts";
import { backendUnderTest, runAndCompare } from "../harness/harness.ts";
import { compileSource } from "../support/dsl.ts";
import { agreementTests } from "../support/slow-backend.ts";
import { runPipeline } from "../../compiler/passes/pipeline.ts";
import { inputNodes, nodeName } from "../../compiler/ir/graph.ts";
import { DEFAULT_PIPELINE } from "../../compiler/passes/registry.ts";
import { randomInputs } from "../../runtime/init.ts";
import { QUANT_SETTINGS, quantModel } from "../support/quant.ts";
import { gpuInstance } from "../../runtime/adapters/webgpu/device.ts";
import { deviceWith, withFeatures } from "../support/webgpu.ts";

const missing = await webgpuUnavailable();
if (missing && process.env.CI === "true") throw new Error(`WebGPU cannot run in CI: ${missing}`);
if (missing) console.warn(`\n*** SKIPPING the webgpu tests: ${missing} ***\n`);

const gpu = backendUnderTest("webgpu");


describe.skipIf(missing !== undefined)("webgpu agrees with the interpreter", () => {
  agreementTests({ backend: gpu, compare: (graph, inputs, weights, dims) => runAndCompare(gpu, graph, inputs, weights, dims), errorsFrom: "read back from the GPU" });
});

describe.skipIf(missing !== undefined)("the WebGPU loader", () => {
  it("refuses, with the limit named, a buffer larger than the device binds", async () => {
    const { device } = await gpuDevice();
    // The device as it is, but binding at most 64 bytes.
    // The loader reads this one limit.
    const small = deviceWith(device, { limits: { maxStorageBufferBindingSize: 64 } });
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

describe.skipIf(missing !== undefined)("a WebGPU session", () => {
  it("recovers from a failed run, runs overlapping calls one after another, and leaves a failed load's device as it was", async () => {
    const { device } = await gpuDevice();
    const small = deviceWith(device, { limits: { maxStorageBufferBindingSize: 64, maxStorageBuffersPerShaderStage: 8 } });
    const graph = compileSource(`model M { dim N
      input x: f32[N]
      output y = x * 2 }`);
    const model = await importModule<{ load(w: Uint8Array, o: object): Promise<{ run(i: object): Promise<{ y: Float32Array }> }> }>(String(compileWgsl(graph).files.get("model.js")));
    const session = await model.load(serializeSafetensors(new Map()), { device: small });
    const x = (n: number) => Float32Array.from({ length: n }, (_, i) => i + 1);
    expect([...(await session.run({ x: x(3) })).y]).toEqual([2, 4, 6]);
    await expect(session.run({ x: x(100) })).rejects.toThrow(/maxStorageBufferBindingSize/);
    expect([...(await session.run({ x: x(3) })).y]).toEqual([2, 4, 6]);
    const overlapping = await Promise.all([session.run({ x: x(2) }), session.run({ x: x(4) }), session.run({ x: x(2) })]);
    expect(overlapping.map((o) => [...o.y])).toEqual([[2, 4], [2, 4, 6, 8], [2, 4]]);
    // A param past the binding limit fails the load, which pops the error scope it pushed.
    const withParam = compileSource(`model M { dim N
      input x: f32[N]
      param w: f32[64]
      output y = x * sum(w) }`);
    const big = await importModule<{ load(w: Uint8Array, o: object): Promise<unknown> }>(String(compileWgsl(withParam).files.get("model.js")));
    device.pushErrorScope("validation");
    await expect(big.load(serializeSafetensors(new Map([["w", { dtype: "f32" as const, shape: [64], data: new Float64Array(64) }]])), { device: small })).rejects.toThrow(/maxStorageBufferBindingSize/);
    expect(await device.popErrorScope()).toBeNull();
    await expect(device.popErrorScope()).rejects.toThrow();
  });
});

describe.skipIf(missing !== undefined)("a WebGPU session's profile", () => {
  it("gives each kernel's time, in launch order, and leaves the session running as before", async () => {
    const graph = compileSource(`model M { dim N
      input x: f32[N, 100]
      output y = softmax(x * 2) + 1 }`);
    const session = await gpu.load(graph, new Map());
    const inputs = new Map([["x", { dtype: "f32" as const, shape: [3, 100], data: Float64Array.from({ length: 300 }, (_, i) => Math.sin(i)) }]]);
    const times = await session.profile!(inputs, 2);
    expect(times.map((t) => [t.kernel, t.op])).toEqual([["k0_mul", "mul"], ["k1_softmax", "softmax"], ["k2_add", "add"]]);
    for (const t of times) expect(t.ms).toBeGreaterThan(0);
    await runAndCompare({ ...gpu, load: async () => session }, graph, inputs, new Map());
  });
});

describe.skipIf(missing !== undefined)("the kernels' variants for device features", () => {
  type Model = { load(w: Uint8Array, o: object): Promise<{ run(i: object): Promise<Record<string, Float32Array>> }> };
  // 77 queries (past one workgroup's 64 rows); with a second dim, 150 keys (past several key tiles).
  const cases: [string, string, string[]][] = [
    ["diffattn, causal, grouped kv heads, odd head width", `model M { dim N
      input q: f32[N, 20]
      input k: f32[N, 10]
      input v: f32[N, 10]
      output y = diffattn(q, k, v, 0.3, heads = 2, kv_heads = 1, causal = true) }`, ["k0_flash_diffattn.subgroups.subgroup-min-size-8.wgsl", "k0_flash_diffattn.subgroups.wgsl", "k0_flash_diffattn.wgsl"]],
    ["attention over more keys than queries", `model M { dim N
      dim M
      input q: f32[N, 24]
      input k: f32[M, 24]
      input v: f32[M, 24]
      output y = attention(q, k, v, heads = 3) }`, ["k0_flash_attention.subgroups.subgroup-min-size-8.wgsl", "k0_flash_attention.subgroups.wgsl", "k0_flash_attention.wgsl"]],
    ["f16 attention and an f16 elementwise kernel", `model M { dim N
      input q: f32[N, 16]
      input k: f32[N, 16]
      input v: f32[N, 16]
      output y = cast(attention(cast(q, f16), cast(k, f16), cast(v, f16), heads = 2) * 3, f32) }`, []],
  ];
  it.each(cases)("%s: every variant gives the same bits", async (_, source, files) => {
    const { device, features } = await gpuDevice();
    for (const needed of ["subgroups", "shader-f16"]) if (!features.includes(needed)) throw new Error(`the device has no ${needed}: not every variant can run here`);
    if (!(device.adapterInfo.subgroupMinSize >= 8)) throw new Error("the device's subgroups may have fewer than 8 lanes: not every variant can run here");
    const graph = runPipeline(compileSource(source), DEFAULT_PIPELINE, { log: () => {} });
    const artifact = compileWgsl(graph, { passes: DEFAULT_PIPELINE });
    const shaders = [...artifact.files.keys()].filter((f) => f.endsWith(".wgsl"));
    if (files.length > 0) expect(shaders).toEqual(files);
    const variants = [...new Set(shaders.map((f) => f.split(".").slice(1, -1).join(",")))];
    const model = await importModule<Model>(String(artifact.files.get("model.js")));
    const random = (length: number) => Float32Array.from({ length }, (_, i) => Math.sin(i * 12.9898) * 3);
    const inputs = Object.fromEntries(inputNodes(graph).map((node) => [nodeName(node), random((node.type.shape[0] === "M" ? 150 : 77) * (node.type.shape[1] as number))]));
    const outputs = [];
    for (const keep of variants) outputs.push((await (await model.load(serializeSafetensors(new Map()), { device: withFeatures(device, keep.split(",")) })).run(inputs)).y);
    expect(outputs[0].length).toBeGreaterThan(0);
    for (const y of outputs) expect(Buffer.from(y.buffer).equals(Buffer.from(outputs[0].buffer))).toBe(true);
    if (files.length === 0) expect(variants).toEqual(expect.arrayContaining(["subgroups,subgroup-min-size-8,shader-f16", "subgroups,shader-f16", "shader-f16", "subgroups", ""]));
  });
});

describe.skipIf(missing !== undefined)("webgpu's quantised attention kernels", () => {
  // Each kernel costs llvmpipe seconds to build: one op per setting, the three ops in turn.
  it("agree with the interpreter in every setting of test/support/quant.ts, past one workgroup of rows, causal with K < N, near ties let go either way", async () => {
    const graph = compileSource(quantModel(QUANT_SETTINGS, { rotate: true }));
    const dims = new Map([["N", 70], ["K", 23]]);
    await runAndCompare(gpu, graph, randomInputs(graph, dims, 7), new Map(), dims);
  }, 300_000);

  it("give the same bits with packed 4×8-bit dot products (dot4I8Packed) as with vec4<i32> dots, where the levels are integers: probs with V's levels, 8 and 4 bits", async () => {
    const { device } = await gpuDevice();
    const packed = "packed_4x8_integer_dot_product";
    if (!(await gpuInstance()).wgslLanguageFeatures.has(packed)) throw new Error(`the GPU has no WGSL language feature ${packed}: not every variant can run here`);
    // 8-bit maps (the packed form's offset) per block, 4-bit maps per row with skipping: diff attention, halves and stripe.
    const settings = ['quant = "probs", bits = 8, granularity = "block", v_bits = 8', 'quant = "probs", bits = 4, threshold = 0.01, v_bits = 6'];
    const graph = compileSource(quantModel(settings, { rotate: true }));
    const artifact = compileWgsl(graph);
    const shaders = [...artifact.files.keys()].filter((f) => f.includes("qflash"));
    // Each quantised kernel in two variants; the packed one needs the language feature.
    expect(shaders.filter((f) => f.includes(`.${packed}.`)).length).toBe(shaders.length / 2);
    expect(String(artifact.files.get(shaders.find((f) => f.includes(packed))!))).toMatch(/^requires packed_4x8_integer_dot_product;\n[^]*dot4I8Packed\(/);
    const model = await importModule<{ load(w: Uint8Array, o: object): Promise<{ run(i: object): Promise<Record<string, Float32Array>> }> }>(String(artifact.files.get("model.js")));
    const dims = new Map([["N", 37], ["K", 53]]);
    const inputs = Object.fromEntries([...randomInputs(graph, dims, 3)].map(([name, t]) => [name, Float32Array.from(t.data)]));
    const [withPacked, without] = await Promise.all(
      [new Set([packed]), new Set<string>()].map(async (wgslLanguageFeatures) => (await model.load(serializeSafetensors(new Map()), { device, wgslLanguageFeatures })).run(inputs)),
    );
    for (const name of graph.outputs.map((o) => o.name)) expect(Buffer.from(withPacked[name].buffer).equals(Buffer.from(without[name].buffer)), name).toBe(true);
  }, 300_000);
});
