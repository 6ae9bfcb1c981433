// WebGPU in headless Chromium (Debian's `chromium`, driven by playwright-core): a page served from
// 127.0.0.1 (about:blank has no navigator.gpu) runs a tiny compute shader and hands back the result.
// On machines without a GPU, Chromium's WebGPU runs on its own SwiftShader. The same page runs a
// JS artifact with Web Worker threads (the page is cross-origin isolated).
import { SMOKE_N, SMOKE_SHADER, smokeExpected } from "../support/webgpu.ts";
import { existsSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Browser } from "playwright-core";
import { afterAll, describe, expect, it } from "vitest";
import { compileWgsl } from "../../backends/wgsl/index.ts";
import { compileJs } from "../../backends/js/index.ts";
import { runPipeline } from "../../compiler/passes/pipeline.ts";
import { DEFAULT_PIPELINE } from "../../compiler/passes/registry.ts";
import { parseQuantFlag } from "../../compiler/passes/quantize-attention.ts";
import { initWeights, randomInputs } from "../../runtime/init.ts";
import { evaluate } from "../../runtime/interpreter/index.ts";
import { serializeSafetensors } from "../../runtime/safetensors.ts";
import { compileSource } from "../support/dsl.ts";

/** The flags headless Chromium needs for WebGPU on Linux (it then finds SwiftShader by itself when there is no GPU). */
const CHROMIUM_WEBGPU_ARGS = ["--enable-unsafe-webgpu"];


const PAGE = `<!doctype html><meta charset="utf-8"><title>difftc webgpu</title>
<script>
// Runs a shader over x; returns { adapter, features, y } or { error }.
window.runShader = async (code, x) => {
  if (!navigator.gpu) return { error: "no navigator.gpu (not a secure context, or WebGPU disabled)" };
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) return { error: "navigator.gpu.requestAdapter() returned no adapter" };
  const i = adapter.info;
  const info = [i.vendor, i.architecture, i.device, i.description].filter((s) => s).join(" / ") + (i.isFallbackAdapter ? " (fallback adapter)" : "");
  const features = [...adapter.features].sort();
  const device = await adapter.requestDevice({
    requiredLimits: { maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize, maxBufferSize: adapter.limits.maxBufferSize },
  });
  const bytes = x.length * 4;
  const xBuf = device.createBuffer({ size: bytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
  const yBuf = device.createBuffer({ size: bytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const readBuf = device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  device.queue.writeBuffer(xBuf, 0, new Float32Array(x));
  device.pushErrorScope("validation");
  const module = device.createShaderModule({ code });
  const pipeline = await device.createComputePipelineAsync({ layout: "auto", compute: { module, entryPoint: "main" } });
  const bindGroup = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [{ binding: 0, resource: { buffer: xBuf } }, { binding: 1, resource: { buffer: yBuf } }],
  });
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bindGroup);
  pass.dispatchWorkgroups(Math.ceil(x.length / 64));
  pass.end();
  encoder.copyBufferToBuffer(yBuf, 0, readBuf, 0, bytes);
  device.queue.submit([encoder.finish()]);
  const error = await device.popErrorScope();
  if (error) return { error: "validation: " + error.message };
  await readBuf.mapAsync(GPUMapMode.READ);
  const y = Array.from(new Float32Array(readBuf.getMappedRange()));
  readBuf.unmap();
  device.destroy();
  return { adapter: info, features, y };
};
</script>`;

/** Debian's chromium, or CHROMIUM_PATH. */
const CHROMIUM = [process.env.CHROMIUM_PATH, "/usr/bin/chromium"].find((p) => p && existsSync(p));

let playwright: typeof import("playwright-core") | undefined;
let playwrightError = "";
try {
  playwright = await import("playwright-core");
} catch (e) {
  playwrightError = e instanceof Error ? e.message.split("\n")[0] : String(e);
}

// A missing component fails on CI and skips loudly elsewhere, as everywhere in the suite.
const onCi = process.env.CI === "true";
const missing = !CHROMIUM
  ? "Debian's chromium is not installed (apt-get install --no-install-recommends chromium)"
  : !playwright
    ? `playwright-core could not be loaded (${playwrightError}): run npm ci`
    : undefined;
function skipOrFail(why: string): void {
  if (onCi) throw new Error(`WebGPU in Chromium is missing on CI: ${why}`);
  console.warn(`\n*** SKIPPING the WebGPU (Chromium) test: ${why} ***\n`);
}
if (missing && !onCi) skipOrFail(missing);

/** What the server serves besides the page: the compiled artifact and its weights. */
const ROUTES = new Map<string, { type: string; body: string | Uint8Array }>();

let browser: Browser | undefined;
let server: Server | undefined;
afterAll(async () => {
  await browser?.close();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
});

/** The server on 127.0.0.1 and the browser, started once for every test of this file. */
let started: Promise<{ url: string; launchMs: number }> | undefined;
function start(): Promise<{ url: string; launchMs: number }> {
  started ??= (async () => {
    const t0 = performance.now();
    server = createServer((req, res) => {
      const file = ROUTES.get(req.url ?? "/") ?? { type: "text/html; charset=utf-8", body: PAGE };
      // Cross-origin isolated, so that pages have SharedArrayBuffer (a JS artifact's threads).
      res.writeHead(200, { "content-type": file.type, "cache-control": "no-store", "cross-origin-opener-policy": "same-origin", "cross-origin-embedder-policy": "require-corp" });
      res.end(file.body);
    });
    await new Promise<void>((resolve, reject) => {
      server!.once("error", reject);
      server!.listen(0, "127.0.0.1", () => resolve());
    });
    browser = await playwright!.chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_WEBGPU_ARGS, timeout: 20_000 });
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, launchMs: performance.now() - t0 };
  })();
  return started;
}

describe.skipIf(missing !== undefined && !onCi)("WebGPU in headless Chromium", () => {
  it("runs a compute shader in a page served from 127.0.0.1", { timeout: 30_000 }, async (ctx) => {
    if (missing) return skipOrFail(missing);
    const { url, launchMs } = await start();
    const tLaunch = performance.now();
    const page = await browser!.newPage();
    const pageErrors: string[] = [];
    page.on("pageerror", (e) => pageErrors.push(e.message));
    page.on("console", (m) => {
      if (m.type() === "error" || m.type() === "warning") pageErrors.push(m.text());
    });
    await page.goto(url);

    const x = Array.from({ length: SMOKE_N }, (_, i) => (i % 17) - 8 + 0.25);
    const result = await page.evaluate(
      ([code, xs]) => (window as unknown as { runShader(c: string, x: number[]): Promise<{ error?: string; adapter?: string; features?: string[]; y?: number[] }> }).runShader(code, xs),
      [SMOKE_SHADER, x] as const,
    );
    if (result.error) {
      // Chromium runs but its page has no WebGPU (no Vulkan driver it accepts): fails on CI, skips loudly elsewhere.
      const why = `${result.error} (Chromium ${browser!.version()}, flags ${CHROMIUM_WEBGPU_ARGS.join(" ")}; page said: ${pageErrors.join(" | ") || "nothing"})`;
      skipOrFail(why);
      return ctx.skip();
    }
    console.log(`WebGPU adapter (Chromium ${browser!.version()}): ${result.adapter}; features: ${result.features!.join(", ")}`);
    expect(result.y).toEqual(smokeExpected(x));
    console.log(
      `WebGPU (Chromium): launch ${launchMs.toFixed(0)} ms, page + shader ${(performance.now() - tLaunch).toFixed(0)} ms`,
    );
  });

  // As it is, and with its attention quantised (8-bit maps and V: the integer dots, packed where the page's GPU has the WGSL language feature).
  const pipelines: [string, string[], string | undefined][] = [
    ["", DEFAULT_PIPELINE, undefined],
    [", its attention quantised (probability maps and V at 8 bits)", [...DEFAULT_PIPELINE, "quantize-attention"], "target=probs,bits=8,v=8"],
  ];
  it.each(pipelines)("runs a compiled WGSL artifact's model.js in the page%s, as the interpreter computes the model", { timeout: 60_000 }, async (_, passes, quant) => {
    if (missing) return skipOrFail(missing);
    const { url } = await start();
    const graph = runPipeline(compileSource(readFileSync(new URL("../../examples/diff_attention.dt", import.meta.url), "utf8"), { set: new Map([["D", 64], ["H", 2]]) }, "diff_attention.dt"), passes, { log: () => {}, passOptions: quant ? { quant: parseQuantFlag(quant) } : {} });
    if (quant) expect(graph.nodes.some((n) => n.op === "qflash_diffattn")).toBe(true);
    const artifact = compileWgsl(graph);
    const weights = initWeights(graph, 3);
    const dims = new Map([["N", 11]]);
    const inputs = randomInputs(graph, dims, 3);
    ROUTES.set("/model.js", { type: "text/javascript", body: String(artifact.files.get("model.js")) });
    ROUTES.set("/weights.safetensors", { type: "application/octet-stream", body: serializeSafetensors(weights) });
    const page = await browser!.newPage();
    await page.goto(url);
    const x = inputs.get("x")!;
    // As a web page uses an artifact: import the module, fetch the weights, run. (A string, so
    // that the test runner's transform of import() does not reach the page.)
    const result = (await page.evaluate(`(async () => {
      const model = await import("/model.js");
      const session = await model.load(await (await fetch("/weights.safetensors")).arrayBuffer());
      const out = await session.run({ x: { data: Float32Array.from(${JSON.stringify(Array.from(x.data))}), shape: ${JSON.stringify(x.shape)} } });
      const features = navigator.gpu.wgslLanguageFeatures;
      return { y: Array.from(out.y), shape: session.outputShape("y"), packedDot: Boolean(features && features.has("packed_4x8_integer_dot_product")) };
    })()`)) as { y: number[]; shape: number[]; packedDot: boolean };
    if (quant) console.log(`the quantised kernel's integer dots in Chromium: ${result.packedDot ? "dot4I8Packed (the page's GPU has packed_4x8_integer_dot_product)" : "vec4<i32> (no packed_4x8_integer_dot_product)"}`);
    const expected = evaluate(graph, inputs, weights, { dims }).get("y")!;
    expect(result.shape).toEqual(expected.shape);
    // f32 end to end on the GPU against float64 rounded once: the WGSL target's model tolerance.
    let scale = 0;
    for (const v of expected.data) scale = Math.max(scale, Math.abs(v));
    result.y.forEach((v, i) => expect(Math.abs(v - expected.data[i]), `y[${i}]`).toBeLessThanOrEqual(1e-4 * scale));
  });
});

describe.skipIf(missing !== undefined && !onCi)("a JS artifact in headless Chromium", () => {
  it("splits its attention kernels over Web Workers, the one-thread result bit for bit", { timeout: 60_000 }, async () => {
    if (missing) return skipOrFail(missing);
    const { url } = await start();
    const graph = runPipeline(compileSource(readFileSync(new URL("../../examples/diff_attention.dt", import.meta.url), "utf8"), { set: new Map([["D", 64], ["H", 2]]) }, "diff_attention.dt"), DEFAULT_PIPELINE, { log: () => {} });
    const artifact = compileJs(graph);
    expect(artifact.manifest.kernels.some((k) => k.split)).toBe(true);
    const weights = initWeights(graph, 4);
    const dims = new Map([["N", 40]]);
    const x = randomInputs(graph, dims, 4).get("x")!;
    ROUTES.set("/js/model.js", { type: "text/javascript", body: String(artifact.files.get("model.js")) });
    ROUTES.set("/js/weights.safetensors", { type: "application/octet-stream", body: serializeSafetensors(weights) });
    const page = await browser!.newPage();
    await page.goto(url);
    const result = (await page.evaluate(`(async () => {
      const model = await import("/js/model.js");
      const bytes = await (await fetch("/js/weights.safetensors")).arrayBuffer();
      const input = { x: { data: Float32Array.from(${JSON.stringify(Array.from(x.data))}), shape: ${JSON.stringify(x.shape)} } };
      const one = await model.load(bytes, { threads: 1 });
      const two = await model.load(bytes, { threads: 2, minSplitWork: 0 });
      const a = (await one.run(input)).y, b = (await two.run(input)).y;
      return { isolated: crossOriginIsolated, threads: two.threads, same: a.length === b.length && a.every((v, i) => Object.is(v, b[i])), y: Array.from(b) };
    })()`)) as { isolated: boolean; threads: number; same: boolean; y: number[] };
    expect(result.isolated).toBe(true);
    expect(result.threads).toBe(2);
    expect(result.same).toBe(true);
    const expected = evaluate(graph, new Map([["x", x]]), weights, { dims }).get("y")!;
    let scale = 0;
    for (const v of expected.data) scale = Math.max(scale, Math.abs(v));
    result.y.forEach((v, i) => expect(Math.abs(v - expected.data[i]), `y[${i}]`).toBeLessThanOrEqual(1e-4 * scale));
  });
});
