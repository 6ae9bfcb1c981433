// The WebGPU device in Node (Dawn through the npm package `webgpu`; on machines without a GPU,
// SwiftShader's or lavapipe's CPU Vulkan driver): get it, run a tiny compute shader, read it back.
import { SMOKE_N, SMOKE_SHADER, smokeExpected } from "../support/webgpu.ts";
import { describe, expect, it } from "vitest";
import { gpuDevice, webgpuUnavailable } from "../../runtime/adapters/webgpu/device.ts";


// GPUBufferUsage / GPUMapMode values from the WebGPU spec: no globals needed.
const MAP_READ = 0x0001, COPY_SRC = 0x0004, COPY_DST = 0x0008, STORAGE = 0x0080;

// A missing adapter fails on CI and skips loudly elsewhere, as everywhere in the suite.
const missing = await webgpuUnavailable();
const onCi = process.env.CI === "true";
if (missing && !onCi) console.warn(`\n*** SKIPPING the WebGPU (Node/Dawn) tests: ${missing} ***\n`);

describe.skipIf(missing !== undefined && !onCi)("WebGPU in Node (Dawn)", () => {
  it("runs a compute shader on the shared device", async () => {
    if (missing) throw new Error(`WebGPU is missing on CI: ${missing}`);
    const t0 = performance.now();
    const { device, adapterInfo, features } = await gpuDevice();
    console.log(`WebGPU adapter (Node): ${adapterInfo}; features: ${features.join(", ")}`);
    // One device per process.
    expect((await gpuDevice()).device).toBe(device);
    expect(device.limits.maxStorageBuffersPerShaderStage).toBeGreaterThanOrEqual(8);
    expect(device.limits.maxStorageBufferBindingSize).toBeGreaterThanOrEqual(128 << 20);

    const x = Float32Array.from({ length: SMOKE_N }, (_, i) => (i % 17) - 8 + 0.25);
    const bytes = SMOKE_N * 4;
    const xBuf = device.createBuffer({ size: bytes, usage: STORAGE | COPY_DST });
    const yBuf = device.createBuffer({ size: bytes, usage: STORAGE | COPY_SRC });
    const readBuf = device.createBuffer({ size: bytes, usage: MAP_READ | COPY_DST });
    try {
      device.queue.writeBuffer(xBuf, 0, x);
      device.pushErrorScope("validation");
      const module = device.createShaderModule({ code: SMOKE_SHADER });
      const pipeline = await device.createComputePipelineAsync({ layout: "auto", compute: { module, entryPoint: "main" } });
      const bindGroup = device.createBindGroup({
        layout: pipeline.getBindGroupLayout(0),
        entries: [
          { binding: 0, resource: { buffer: xBuf } },
          { binding: 1, resource: { buffer: yBuf } },
        ],
      });
      const encoder = device.createCommandEncoder();
      const pass = encoder.beginComputePass();
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bindGroup);
      pass.dispatchWorkgroups(Math.ceil(SMOKE_N / 64));
      pass.end();
      encoder.copyBufferToBuffer(yBuf, 0, readBuf, 0, bytes);
      device.queue.submit([encoder.finish()]);
      const error = await device.popErrorScope();
      expect(error?.message).toBeUndefined();
      await readBuf.mapAsync(1 /* GPUMapMode.READ */);
      const y = new Float32Array(readBuf.getMappedRange().slice(0));
      readBuf.unmap();
      expect(Array.from(y)).toEqual(smokeExpected(x));
    } finally {
      xBuf.destroy();
      yBuf.destroy();
      readBuf.destroy();
    }
    console.log(`WebGPU (Node) device + shader: ${(performance.now() - t0).toFixed(0)} ms`);
  });
});
