// A JS artifact splits its streaming attention kernels over worker threads that share its
// buffers (SharedArrayBuffer): `load(weights, { threads })`. The split changes who computes a
// row, never how: every thread count gives the single-threaded result bit for bit. The module
// stays self-contained: the workers run its own kernels' source, and in Node it loads only
// node:worker_threads (and node:os, for the default count), when a session starts threads.
import { execFileSync, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { compileJs } from "../../backends/js/index.ts";
import type { Precision } from "../../backends/common/target.ts";
import { importJsModule } from "../../runtime/adapters/js/index.ts";
import { givenInputs } from "../../runtime/adapters/module.ts";
import { initWeights, randomInputs } from "../../runtime/init.ts";
import { runPipeline } from "../../compiler/passes/pipeline.ts";
import { DEFAULT_PIPELINE } from "../../compiler/passes/registry.ts";
import { serializeSafetensors } from "../../runtime/safetensors.ts";
import { evalMonomial } from "../../common/size.ts";
import { compileSource } from "../support/dsl.ts";
import { STREAMING_ATTENTION } from "../support/kernels.ts";

// Batch entries × kv groups: 1 (a, b) and 2 (c, d) — so that two threads split whole groups
// of c and d and query tiles of a and b, and three split query tiles of all.
const graph = compileSource(STREAMING_ATTENTION);

interface Session {
  readonly threads: number;
  run(inputs: unknown): Promise<Record<string, Float32Array>>;
  runSync(inputs: unknown): Record<string, Float32Array>;
  close(): void;
}

async function load(precision: Precision, threads?: number): Promise<Session> {
  const model = await importJsModule(String(compileJs(graph, [], { precision }).files.get("model.js")));
  // Every split kernel splits here, however small (minSplitWork 0).
  return (await model.load(serializeSafetensors(new Map()), threads === undefined ? undefined : ({ threads, minSplitWork: 0 } as never))) as unknown as Session;
}

const sameBits = (x: Float32Array, y: Float32Array) => x.length === y.length && x.every((v, i) => Object.is(v, y[i]));

describe("a JS artifact with threads", () => {
  it("marks its attention kernels as split, and only them", () => {
    const kernels = compileJs(graph).manifest.kernels;
    expect(kernels.filter((k) => k.split).map((k) => k.op)).toEqual(["flash_diffattn", "flash_diffattn", "flash_attention", "flash_attention"]);
  });

  for (const precision of ["f32", "f64"] as const)
    it(`gives the one-thread result bit for bit with 2 and 3 threads (${precision})`, async () => {
      const inputs = givenInputs(randomInputs(graph, new Map([["N", 40], ["K", 150]]), 3));
      const alone = await load(precision, 1);
      const expected = await alone.run(inputs);
      // runSync runs on the calling thread alone, whatever the session's threads.
      for (const threads of [2, 3]) {
        const session = await load(precision, threads);
        expect(session.threads).toBe(threads);
        const outputs = await session.run(inputs);
        for (const name of ["a", "b", "c", "d"]) expect(sameBits(outputs[name], expected[name]), `${name} with ${threads} threads`).toBe(true);
        const again = session.runSync(inputs);
        for (const name of ["a", "b", "c", "d"]) expect(sameBits(again[name], expected[name]), `${name} by runSync`).toBe(true);
        session.close();
        expect(session.threads).toBe(1);
        // After close(), runs go on on this thread.
        expect(sameBits((await session.run(inputs)).a, expected.a)).toBe(true);
      }
      alone.close();
    });

  it("sends each session's params to the workers once: the diff attention example, whose kernel reads its norm weight, agrees bit for bit", async () => {
    const example = runPipeline(compileSource(readFileSync(new URL("../../examples/diff_attention.dt", import.meta.url), "utf8"), { set: new Map([["D", 64], ["H", 2]]) }), DEFAULT_PIPELINE, { log: () => {} });
    const artifact = compileJs(example);
    const attention = artifact.manifest.kernels.find((k) => k.split)!;
    expect(attention.inputs.some((b) => artifact.manifest.buffers[b].kind === "param")).toBe(true);
    const model = await importJsModule(String(artifact.files.get("model.js")));
    const weights = serializeSafetensors(initWeights(example, 2));
    const inputs = givenInputs(randomInputs(example, new Map([["N", 37]]), 2));
    const [one, two] = await Promise.all([1, 2].map(async (threads) => (await model.load(weights, { threads, minSplitWork: 0 } as never)) as unknown as Session));
    for (let run = 0; run < 2; run++) expect(sameBits((await two.run(inputs)).y, (await one.run(inputs)).y)).toBe(true);
  });

  it("refuses a thread count that is not a positive integer, and a negative minSplitWork", async () => {
    for (const threads of [0, -1, 1.5, Number.NaN]) await expect(load("f32", threads)).rejects.toThrow(/threads must be a positive integer/);
    const model = await importJsModule(String(compileJs(graph).files.get("model.js")));
    await expect(model.load(serializeSafetensors(new Map()), { threads: 2, minSplitWork: -1 } as never)).rejects.toThrow(/minSplitWork must be a number >= 0/);
  });

  it("sends a kernel's shares to the workers only when its multiply-adds reach minSplitWork", async () => {
    const artifact = compileJs(graph);
    // Each kernel's work for these sizes, as the runtime evaluates its manifest entry.
    const dims = new Map([["N", 40], ["K", 150]]);
    const works = artifact.manifest.kernels.map((k) => evalMonomial(k.work!, dims));
    const model = await importJsModule(String(artifact.files.get("model.js")));
    const inputs = givenInputs(randomInputs(graph, dims, 3));
    // The shares posted to worker threads, counted as they leave.
    const { Worker } = await import("node:worker_threads");
    const post = Worker.prototype.postMessage;
    let shares = 0;
    Worker.prototype.postMessage = function (message: unknown, ...rest: never[]) {
      if (message !== null && typeof message === "object" && "kernel" in message) shares++;
      return post.call(this, message, ...rest);
    };
    try {
      const counted = async (minSplitWork: number) => {
        const session = (await model.load(serializeSafetensors(new Map()), { threads: 2, minSplitWork } as never)) as unknown as Session;
        shares = 0;
        await session.run(inputs);
        session.close();
        return shares;
      };
      expect(await counted(0)).toBe(4);
      expect(await counted(Math.max(...works) + 1)).toBe(0);
      // Between: only the kernels at or above it.
      const middle = [...works].sort((a, b) => a - b)[2];
      expect(await counted(middle)).toBe(works.filter((w) => w >= middle).length);
    } finally {
      Worker.prototype.postMessage = post;
    }
  });

  it("imports nothing statically; in Node it loads node:worker_threads and node:os only, and only when it starts threads", () => {
    const module = String(compileJs(graph).files.get("model.js"));
    expect(module).not.toMatch(/^\s*import\s/m);
    expect(new Set([...module.matchAll(/\b(?:import|require)\((?:\s*\/\*[^*]*\*\/)*\s*"([^"]+)"\s*\)/g)].map((m) => m[1]))).toEqual(new Set(["node:worker_threads", "node:os"]));
  });

  it("lets `difftc run` end as soon as it is done, on a model too small to split", () => {
    // Its workers got a session's params and no share; one that held the process would keep
    // it until a garbage collection ended the session (it took 40 s to 2 min).
    const started = performance.now();
    const r = spawnSync(process.execPath, [fileURLToPath(new URL("../../bin/difftc.mjs", import.meta.url)), "run", "examples/diff_lm.dt", "--set", "L=1", "--set", "N=3", "--backend", "js"], { encoding: "utf8", timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^logits: f32\[3, /);
    expect(performance.now() - started).toBeLessThan(20_000);
  });

  it("leaves no worker holding the process open: a script that runs with threads and never closes them exits at once", () => {
    const module = String(compileJs(graph).files.get("model.js"));
    const inputs = JSON.stringify(Object.fromEntries([...randomInputs(graph, new Map([["N", 20], ["K", 30]]), 1)].map(([n, t]) => [n, Array.from(t.data)])));
    // Workers that computed shares (minSplitWork 0), and workers that never got one (these sizes
    // are below the default): either way the process ends when the script does.
    for (const minSplitWork of [0, undefined]) {
      // The module from a data: URL (no file, as a bundler or a browser might hold it), 2 threads.
      const script = `const m = await import("data:text/javascript;base64,${Buffer.from(module).toString("base64")}");
const s = await m.load(new Uint8Array(${JSON.stringify([...serializeSafetensors(new Map())])}), { threads: 2, minSplitWork: ${minSplitWork} });
const given = Object.fromEntries(Object.entries(${inputs}).map(([n, v]) => [n, Float32Array.from(v)]));
const y = await s.run(given);
console.log(s.threads, y.a.length, y.d.every(Number.isFinite));`;
      // The script on stdin: the module in it is past what a command line may hold. A worker
      // that held the process would keep it until a garbage collection ended it (tens of seconds).
      const started = performance.now();
      const out = execFileSync(process.execPath, ["--input-type=module", "-"], { input: script, encoding: "utf8", timeout: 30_000 });
      expect(out.trim()).toBe("2 320 true");
      expect(performance.now() - started, `minSplitWork ${minSplitWork}`).toBeLessThan(15_000);
    }
  });
});
