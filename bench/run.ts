// Side-by-side benchmarks: the same graph, inputs and weights on difftc's interpreter and JS
// backend and on the peers (tfjs cpu and wasm, onnxruntime-node with one thread). Prints
// medians and ratios measured in this one run, and checks that every implementation agrees.
// A peer is timed on inputs already in its own tensors, its outputs awaited in its own form
// (the float64 conversions its adapter needs for the check are not timed: difftc has none).
//
//   npm run bench                 # everything
//   npm run bench -- --quick      # fewer repetitions, smaller sizes
//   npm run bench -- --case N=1024 --impl wasm --impl default   # only matching cases and implementations
//   npm run bench -- --case N=1024 --impl "difftc js"            # the quantised JS kernels against the plain fused one
//   npm run bench -- --case N=256 --impl "difftc webgpu (--passes default)" --impl "difftc webgpu quant"   # the same on WebGPU
//   npm run bench -- --models bench/rows/softmax.dt,bench/rows/layernorm.dt,bench/rows/rmsnorm.dt,bench/rows/mean.dt \
//     --set N=1024 --pipelines default --impl "difftc webgpu"   # reductions a workgroup per row against a thread per row
//
// Pass research: any pipelines side by side (on the JS backend), on any models and sizes, and
// where each forward's time goes:
//
//   npm run bench -- --pipelines 'none;default;default,-fold-matmul-transposes' \
//     --models examples/diff_lm.dt --set N=1,16,128 --impl 'difftc js' --profile
//
// --pipelines takes pipelines separated by ';' (each in --passes syntax); without ';', commas
// separate pipelines and an item starting with + or - continues the one before it, so
// `none,default,default,+my-pass` is three pipelines. --set K=V1,V2 sets a model parameter or
// dim, one case per value; --profile prints a per-kernel profile of each JS and WebGPU implementation.
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { compileJs } from "../backends/js/index.ts";
import { elaborate } from "../compiler/elaborate/index.ts";
import type { Graph } from "../compiler/ir/graph.ts";
import type { HostTensor } from "../compiler/ir/tensor.ts";
import { parseProgram } from "../dsl/parse.ts";
import type { TensorMap } from "../runtime/adapters/adapter.ts";
import { loadJsSession } from "../runtime/adapters/js/index.ts";
import { givenInputs, hostSession } from "../runtime/adapters/module.ts";
import type { Artifact } from "../backends/common/artifact.ts";
import { parsePipeline, runPipeline } from "../compiler/passes/pipeline.ts";
import { parseQuantFlag } from "../compiler/passes/quantize-attention.ts";
import { initWeights, randomInputs } from "../runtime/init.ts";
import { evaluate } from "../runtime/interpreter/index.ts";
import type { PeerRunner } from "./peers/graph.ts";
import { createOnnxRunner } from "./peers/onnx.ts";
import { createTfjsRunner } from "./peers/tfjs.ts";
import { compileWgsl } from "../backends/wgsl/index.ts";
import { gpuDevice } from "../runtime/adapters/webgpu/device.ts";
import { loadWebgpu } from "../runtime/adapters/webgpu/index.ts";
import type { KernelTime } from "../runtime/adapters/adapter.ts";
import { formatProfile } from "../runtime/profile.ts";

const quick = process.argv.includes("--quick");
/** The cores of this machine: the "all threads" runs of difftc js and onnxruntime-node. */
const CORES = availableParallelism();
/** The values of a repeatable `--flag VALUE`. */
const values = (flag: string) => process.argv.flatMap((a, i) => (a === flag && i + 1 < process.argv.length ? [process.argv[i + 1]] : []));
const onlyCases = values("--case");
const onlyImpls = values("--impl");
const profile = process.argv.includes("--profile");
const pipelines = values("--pipelines").flatMap(splitPipelines);
const models = values("--models").flatMap((m) => m.split(","));
const settings = values("--set");

/** `a;b` is two pipelines; without `;`, commas separate them and +/- items continue the one before. */
function splitPipelines(spec: string): string[] {
  if (spec.includes(";")) return spec.split(";").map((p) => p.trim());
  const out: string[] = [];
  for (const item of spec.split(",").map((i) => i.trim())) {
    if ((item.startsWith("+") || item.startsWith("-")) && out.length) out[out.length - 1] += `,${item}`;
    else out.push(item);
  }
  return out;
}
/** The pipelines compared: --pipelines, else the unfused baseline and the default. */
const PIPELINES = pipelines.length ? pipelines : ["none", "default"];
for (const p of PIPELINES) parsePipeline(p); // a bad spec fails before anything runs
/** What the ratio column divides by: the default pipeline if compared, else the first. */
const REFERENCE = `difftc js (--passes ${PIPELINES.includes("default") ? "default" : PIPELINES[0]})`;
const wanted = (name: string, filters: string[]) => filters.length === 0 || filters.some((f) => name.includes(f));

/**
 * One forward on these inputs; with `profile`, each kernel's time (where the backend can say);
 * with `bindInputs`, the forward that is timed: a peer's, on inputs already in its own tensors.
 */
type Runner = ((inputs: TensorMap) => Promise<Map<string, HostTensor>>) & {
  profile?: (inputs: TensorMap, runs?: number) => Promise<KernelTime[]>;
  bindInputs?: PeerRunner["bindInputs"];
};

interface Implementation {
  name: string;
  /** Prepares a runner for these sizes (compiling, uploading weights); not timed. */
  prepare(graph: Graph, weights: TensorMap, dims: ReadonlyMap<string, number>): Promise<Runner>;
  /** Skip sizes where one run would take minutes. */
  maxWork?: number;
  /** Run only when asked for by --impl (it needs something not every machine has). */
  optIn?: boolean;
  /** The largest relative difference from the reference it may show: quantised attention differs on purpose. */
  tolerance?: number;
}

/**
 * A JS artifact as its users run it: `run` on host tensors (for the check), and the timed
 * forward on inputs already in typed arrays, outputs left in them, as the module takes them.
 */
async function jsRunner(artifact: Artifact, weights: TensorMap, threads = 1): Promise<Runner> {
  const { model, session: loaded } = await loadJsSession(artifact, weights, { threads });
  const session = hostSession(model.manifest, loaded, `model ${model.manifest.model}`);
  return Object.assign((inputs: TensorMap) => session.run(inputs), {
    profile: session.profile,
    bindInputs: async (inputs: TensorMap) => {
      const given = givenInputs(inputs);
      return { forward: async () => void (await loaded.run(given)), release: () => {} };
    },
  });
}

/** The quantised kernels timed against the plain fused one (--impl quant): 8 and 4 bits, each target, skipping, and maps and V both at 8 bits (integer products). */
const QUANT_SETTINGS = ["target=logits,bits=8", "target=logits,bits=4,granularity=block", "target=probs,bits=8", "target=probs,bits=4,granularity=block,threshold=1e-3", "target=probs,bits=8,v=8"];

const IMPLEMENTATIONS: Implementation[] = [
  { name: "difftc interp (float64)", maxWork: 2e9, prepare: async (g, w, dims) => async (inputs) => evaluate(g, inputs, w, { dims }) },
  // The default precision (f32), and the exact mode (f64) beside it: what exactness costs.
  ...(["f32", "f64"] as const).flatMap((precision) =>
    PIPELINES.map((pipeline) => ({
      name: `difftc js${precision === "f32" ? "" : " --precision f64"} (--passes ${pipeline})`,
      prepare: async (g: Graph, w: TensorMap) => {
        const passes = parsePipeline(pipeline);
        return jsRunner(compileJs(runPipeline(g, passes, { log: () => {} }), passes, { precision }), w);
      },
    })),
  ),
  // All cores: the attention and f32 matmul kernels split over worker threads (the default of load()).
  ...PIPELINES.filter((p) => p !== "none").map((pipeline) => ({
    name: `difftc js ${CORES} threads (--passes ${pipeline})`,
    prepare: async (g: Graph, w: TensorMap) => {
      const passes = parsePipeline(pipeline);
      return jsRunner(compileJs(runPipeline(g, passes, { log: () => {} }), passes), w, CORES);
    },
  })),
  // WebGPU on whatever adapter Dawn finds here (SwiftShader without a GPU): only with --impl webgpu.
  // Reductions as the heuristic maps them (a workgroup per long row), and all a thread per row.
  ...PIPELINES.flatMap((pipeline) =>
    [undefined, "per-row" as const].map((reductions) => ({
      name: `difftc webgpu${reductions ? ", reductions per row" : ""} (--passes ${pipeline})`,
      optIn: true,
      prepare: async (g: Graph, w: TensorMap) => {
        const { adapterInfo } = await gpuDevice();
        process.stderr.write(`  webgpu adapter: ${adapterInfo}\n`);
        const passes = parsePipeline(pipeline);
        const session = await loadWebgpu(compileWgsl(runPipeline(g, passes), { passes, reductions }), w);
        return Object.assign((inputs: TensorMap) => session.run(inputs), { profile: session.profile });
      },
    })),
  ),
  // The quantised kernels on JS and (on whatever adapter Dawn finds) WebGPU, each against its
  // plain fused kernel (listed after those: a plain kernel is the reference results are checked against).
  ...(["js", "webgpu"] as const).flatMap((backend) =>
    QUANT_SETTINGS.map((spec) => ({
      name: `difftc ${backend} quant ${spec}`,
      optIn: true,
      tolerance: 0.5,
      prepare: async (g: Graph, w: TensorMap) => {
        const passes = [...parsePipeline("default"), "quantize-attention"];
        const graph = runPipeline(g, passes, { log: () => {}, passOptions: { quant: parseQuantFlag(spec) } });
        if (backend === "js") return jsRunner(compileJs(graph, passes), w);
        const session = await loadWebgpu(compileWgsl(graph, { passes }), w);
        return (inputs: TensorMap) => session.run(inputs);
      },
    })),
  ),
  ...(["cpu", "wasm", "webgpu"] as const).map((backend) => ({
    name: `tfjs ${backend}`,
    optIn: backend === "webgpu",
    // tfjs's pure-JS backend needs about half a minute per forward at N = 1024.
    maxWork: backend === "cpu" ? 5e9 : undefined,
    prepare: async (g: Graph, w: TensorMap, dims: ReadonlyMap<string, number>) => {
      const runner = await createTfjsRunner(g, w, dims, backend);
      return Object.assign((inputs: TensorMap) => runner.run(inputs), { bindInputs: runner.bindInputs });
    },
  })),
  // onnxruntime-web's WebGPU execution provider on the same adapter as difftc webgpu (opt-in, as that is).
  {
    name: "onnxruntime-web webgpu",
    optIn: true,
    prepare: async (g, w, dims) => {
      const runner = await createOnnxRunner(g, w, dims, { provider: "webgpu" });
      return Object.assign((inputs: TensorMap) => runner.run(inputs), { bindInputs: runner.bindInputs });
    },
  },
  // onnxruntime-web's WebAssembly provider: what a page or a Node app without native modules runs.
  {
    name: "onnxruntime-web wasm (1 thread)",
    prepare: async (g, w, dims) => {
      const runner = await createOnnxRunner(g, w, dims, { provider: "wasm" });
      return Object.assign((inputs: TensorMap) => runner.run(inputs), { bindInputs: runner.bindInputs });
    },
  },
  {
    name: "onnxruntime-node (1 thread)",
    prepare: async (g, w, dims) => {
      const runner = await createOnnxRunner(g, w, dims, { threads: 1 });
      return Object.assign((inputs: TensorMap) => runner.run(inputs), { bindInputs: runner.bindInputs });
    },
  },
  {
    name: `onnxruntime-node (${CORES} threads)`,
    prepare: async (g, w, dims) => {
      const runner = await createOnnxRunner(g, w, dims, { threads: CORES });
      return Object.assign((inputs: TensorMap) => runner.run(inputs), { bindInputs: runner.bindInputs });
    },
  },
];

interface Case {
  name: string;
  graph: Graph;
  dims: Map<string, number>;
  /** Floating-point operations of one forward pass, for GFLOP/s; undefined to skip. */
  flops?: number;
}

function compile(source: string, file: string, set: [string, number][] = []): Graph {
  return elaborate(parseProgram(source, file), { set: new Map(set) }).graph;
}

// The defaults of bench/diffattn.dt, for the flop count.
const H = 8;
const d = 64;
const DIFFATTN = readFileSync(new URL("./diffattn.dt", import.meta.url), "utf8");

/** --set K=V1,V2,...: every combination, as [key, value] lists. */
function combinations(): [string, number][][] {
  let out: [string, number][][] = [[]];
  for (const s of settings) {
    const [key, list] = s.split("=");
    const vs = (list ?? "").split(",").map(Number);
    if (!key || vs.some((v) => !Number.isFinite(v))) throw new Error(`--set expects KEY=V1,V2,..., got '${s}'`);
    out = out.flatMap((c) => vs.map((v) => [...c, [key, v] as [string, number]]));
  }
  return out;
}

/** The --models files at each --set combination: a dim binds a size, anything else is a model parameter. */
function modelCases(): Case[] {
  return models.flatMap((file) => {
    const source = readFileSync(file, "utf8");
    return combinations().map((set) => {
      const dimNames = compile(source, file, []).dims;
      const graph = compile(source, file, set.filter(([k]) => !dimNames.includes(k)));
      const dims = new Map(graph.dims.map((d) => [d, set.find(([k]) => k === d)?.[1] ?? 128]));
      return { name: `${file} ${set.map(([k, v]) => `${k}=${v}`).join(" ") || "(defaults)"}`, graph, dims };
    });
  });
}

function cases(): Case[] {
  if (models.length) return modelCases();
  const core = compile(DIFFATTN, "bench/diffattn.dt");
  const lm = compile(readFileSync(new URL("../examples/diff_lm.dt", import.meta.url), "utf8"), "examples/diff_lm.dt");
  const sizes = quick ? [256] : [256, 1024, 2048];
  return [
    // 8·N²·d per head: two q k^T (2·N²·d each) and p @ v with 2d-wide values (4·N²·d).
    ...sizes.map((n) => ({ name: `diffattn H=8 d=64 N=${n}`, graph: core, dims: new Map([["N", n]]), flops: 8 * n * n * d * H })),
    { name: `diff_lm.dt (L=4 D=256) N=${quick ? 64 : 128}`, graph: lm, dims: new Map([["N", quick ? 64 : 128]]) },
  ];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Largest relative difference against the reference, over all outputs. */
function maxRelativeError(actual: Map<string, HostTensor>, expected: Map<string, HostTensor>): number {
  let worst = 0;
  for (const [name, e] of expected) {
    const a = actual.get(name)!;
    let scale = 0;
    for (const x of e.data) scale = Math.max(scale, Math.abs(x));
    for (let i = 0; i < e.data.length; i++) worst = Math.max(worst, Math.abs(a.data[i] - e.data[i]) / (scale || 1));
  }
  return worst;
}

async function time(run: () => Promise<unknown>): Promise<number> {
  await run(); // warm-up: JIT, allocation
  const times: number[] = [];
  const budget = quick ? 1500 : 4000;
  const start = performance.now();
  while (times.length < 3 || (times.length < 15 && performance.now() - start < budget)) {
    const t = performance.now();
    await run();
    times.push(performance.now() - t);
  }
  return median(times);
}

async function main(): Promise<void> {
  const rows: { case: string; impl: string; ms?: number; note: string }[] = [];
  for (const c of cases().filter((c) => wanted(c.name, onlyCases))) {
    const weights = initWeights(c.graph, 1);
    const inputs = randomInputs(c.graph, c.dims, 1);
    let reference: Map<string, HostTensor> | undefined;
    for (const impl of IMPLEMENTATIONS.filter((i) => wanted(i.name, onlyImpls) && (!i.optIn || onlyImpls.length > 0))) {
      if (impl.maxWork !== undefined && (c.flops ?? 0) > impl.maxWork) {
        rows.push({ case: c.name, impl: impl.name, note: "skipped (minutes per run)" });
        continue;
      }
      const run = await impl.prepare(c.graph, weights, c.dims);
      const outputs = await run(inputs);
      // The first implementation to run is the reference the others are checked against.
      reference ??= outputs;
      const err = maxRelativeError(outputs, reference);
      // A peer that computes something else is reported, not timed (tfjs-webgpu past its default binding limit, for one).
      if (!(err < (impl.tolerance ?? 1e-3))) {
        if (impl.name.startsWith("difftc")) throw new Error(`${impl.name} disagrees on ${c.name}: max relative error ${err}`);
        rows.push({ case: c.name, impl: impl.name, note: `wrong result (max relative error ${err.toExponential(1)}): not timed` });
        process.stderr.write(`  ${c.name}: ${impl.name} gives a wrong result (max relative error ${err.toExponential(1)})\n`);
        continue;
      }
      // A peer is timed as its users run it: inputs already in its tensors, outputs left in them.
      const bound = await run.bindInputs?.(inputs);
      let ms: number;
      try {
        ms = await time(bound ? bound.forward : () => run(inputs));
      } finally {
        bound?.release();
      }
      const gflops = c.flops ? ` ${(c.flops / ms / 1e6).toFixed(2)} GFLOP/s` : "";
      rows.push({ case: c.name, impl: impl.name, ms, note: `err ${err.toExponential(1)}${gflops}` });
      process.stderr.write(`  ${c.name}: ${impl.name} ${ms.toFixed(1)} ms\n`);
      if (profile && run.profile) console.log(`\n${c.name}, ${impl.name}:\n${formatProfile(await run.profile(inputs, quick ? 5 : 20), quick ? 5 : 20)}`);
    }
  }
  printTable(rows);
}

function printTable(rows: { case: string; impl: string; ms?: number; note: string }[]): void {
  // Per case, difftc js's time; where only WebGPU implementations ran, difftc webgpu's with the same passes.
  const references = [REFERENCE, REFERENCE.replace("difftc js", "difftc webgpu")];
  const ours = new Map<string, number>();
  for (const reference of [...references].reverse()) for (const r of rows) if (r.impl === reference && r.ms !== undefined) ours.set(r.case, r.ms);
  console.log(`\ndifftc benchmarks (${quick ? "quick" : "full"}), median ms per forward pass; ratio = time / ${REFERENCE} time, or ${references[1]} where only WebGPU ran (>1: slower than it)\n`);
  const header = ["case", "implementation", "median ms", "ratio", "notes"];
  const ratio = (r: { case: string; ms?: number }) => (r.ms === undefined || !ours.has(r.case) ? "-" : `${(r.ms / ours.get(r.case)!).toFixed(2)}x`);
  const table = rows.map((r) => [r.case, r.impl, r.ms === undefined ? "-" : r.ms.toFixed(1), ratio(r), r.note]);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((t) => t[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  console.log(line(header));
  console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
  for (const t of table) console.log(line(t));
}

await main();
