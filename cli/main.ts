// The difftc command line: check, ir, init and run.
import { parseArgs } from "node:util";
import { join } from "node:path";
import type { ModelDecl } from "../dsl/ast.ts";
import { Diagnostic } from "../common/diagnostic.ts";
import { refuseToOverwrite } from "../common/files.ts";
import { parseProgram, readSource } from "../dsl/parse.ts";
import { elaborate, type Elaborated, rootModel, standardLibrary } from "../compiler/elaborate/index.ts";
import { inputNodes, nodeName, paramNodes } from "../compiler/ir/graph.ts";
import { checkGraphSizes } from "../compiler/ir/limits.ts";
import type { HostTensor } from "../compiler/ir/tensor.ts";
import { formatShape, formatType, numel } from "../compiler/ir/types.ts";
import { initWeights, randomInputs } from "../runtime/init.ts";
import { bindDims, evaluate } from "../runtime/interpreter/index.ts";
import { ADAPTERS, backendNames, findAdapter } from "../runtime/adapters/index.ts";
import { findTarget, TARGETS, targetNames } from "../backends/registry.ts";
import { type Artifact, isArtifactDir, readArtifact, writeArtifact } from "../backends/common/artifact.ts";
import { parseGraph } from "../compiler/ir/parse.ts";
import { findPass, listPasses, orderWarnings, parsePipeline, runPipeline } from "../compiler/passes/pipeline.ts";
import type { GraphFormat } from "../compiler/ir/dot.ts";
import { formatProfile } from "../runtime/profile.ts";
import { irViews, newPass } from "./workbench.ts";
import type { Graph } from "../compiler/ir/graph.ts";
import { parseQuantFlag, quantizeAttentionPass } from "../compiler/passes/quantize-attention.ts";
import { readSafetensors, writeSafetensors } from "../runtime/safetensors.ts";
import { formatQuantReport, peakedInputs, quantReport } from "../runtime/quant-report.ts";

const COMMON = `Common options:
  --model NAME      the model to compile (default: the last model in the file that no other
                    model in it uses)
  --set KEY=VALUE   set a model parameter (--set D=1024) or a dim (--set N=64); repeatable
  -h, --help        this help`;

const PASS_OPTIONS = `Pass options (ir, compile, run):
  --passes LIST     the pipeline, read left to right (docs/passes.md): pass names, 'default'
                    (the optimising pipeline), '+P@before:Q' or '+P@after:Q' (insert P next
                    to the first Q so far; Q#2 the second), '-P' (remove P), or 'none' alone
                    (the unfused baseline). e.g. default,-cse or
                    default,+fold-matmul-transposes@before:fuse-elementwise
  --print-after P   print the IR after pass P (repeatable, or a comma list) to stderr
  --print-before P  print the IR before pass P
  --print-after-all print the IR after every pass
  --time-passes     print how long each pass took
  --stats           print each pass's statistics: how often each rule fired, what it fused
  --list-passes     list every pass with what it does and the order it needs, and exit
  --quant SPEC      quantize-attention's setting, e.g. target=logits,bits=4 (keys: target
                    logits|probs|none, bits 2-8, granularity row|block, threshold T,
                    v 0|2-8, block B: keys per block; default target=logits,bits=8,
                    granularity=row and the fused op's block)`;

const HELP: Record<string, string> = {
  check: `difftc check FILE [options]
Parses and type-checks a model and prints its signature: inputs, outputs and every param with
its hierarchical name, dtype, shape and initialiser.

${COMMON}`,
  ir: `difftc ir FILE [options]
Prints the model's graph IR as text.

${COMMON}
${PASS_OPTIONS}
  --locations       annotate each node with the source location it came from
  --dot             print Graphviz DOT instead of text (the final graph, and with
                    --print-after/--print-before each of those): fused kernels as clusters
  --svg             the same rendered to SVG by Graphviz's dot (apt-get install graphviz)
  -o, --output DIR  write final.{ir,dot,svg} and each printed stage (NN-after-PASS.dot ...)
                    to DIR instead of stdout and stderr`,
  init: `difftc init FILE --seed N -o WEIGHTS.safetensors [options]
Writes seeded weights, drawn as each param's initialiser says (the paper's code: lambda
vectors N(0, 0.1), norm weights 1, linear layers U(+-1/sqrt(fan_in))).

${COMMON}
  --seed N          random seed (default 0)
  -o, --output FILE where to write the weights (required)`,
  compile: `difftc compile FILE --target NAME -o DIR [options]
Compiles the model to an artifact directory: manifest.json, the kernels, and the graph it was
compiled from (graph.ir).

${COMMON}
${PASS_OPTIONS}
  --target NAME     the backend to compile for (default js):
${TARGETS.map((t) => `                      ${t.name}: ${t.description}`).join("\n")}
  -o, --output DIR  the artifact directory (required)`,
  run: `difftc run FILE|ARTIFACT_DIR [options]
Evaluates a model (compiling it in memory for a backend other than interp), or runs a
compiled artifact, and writes or prints its outputs.

${COMMON}
${PASS_OPTIONS}
  --backend NAME    ${backendNames().join(", ")}: interp is the reference interpreter (default
                    for a .dt file); an artifact directory runs on its own target's backend
  --weights FILE    weights as safetensors (default: seeded weights as 'init' draws them)
  --inputs FILE     inputs as safetensors (default: seeded random inputs; give dims with --set)
  --seed N          seed for default weights and inputs (default 0)
  --profile         time each kernel of one forward (JS backend): mean of --runs runs
  --runs N          forwards the profile averages (default 10)
  -o, --output FILE write the outputs as safetensors (default: print a summary of each)

An artifact is code: running one executes its model.js (or builds and runs its CUDA sources)
with your rights. Run only artifacts you compiled or trust. Before anything runs, every file is
checked against the SHA-256 that its manifest.json records, and a directory holding anything
else is refused.`,
  "quant-report": `difftc quant-report FILE [options]
Measures low-bit attention (the quantize-attention pass) on a model with one differential
attention layer: for the unquantised kernel (16 bits) and for 8, 6 and 4 bits of each target
(logits, probs) and granularity (row, block), the output error against the unquantised graph
(max abs, relative L2, cosine), the fraction of key blocks skipped, and the bytes of the
quantised maps and of V read; for the layer's diff attention and, side by side on the same q,
k and v, for standard attention. Runs on the reference interpreter.

${COMMON}
  --weights FILE    weights as safetensors (default: seeded weights as 'init' draws them)
  --inputs FILE     inputs as safetensors (default: seeded random inputs; give dims with --set)
  --seed N          seed for default weights and inputs (default 0)
  --peak F          scale every 16th row of each input by F: a few keys with large logits in
                    every row (peaked attention, activation outliers)
  --quant SPEC      threshold=T,v=B,block=K: the skip threshold, V's bits and the keys per
                    block of every row (the report sweeps target, granularity and bits)`,
  "new-pass": `difftc new-pass NAME
Writes compiler/passes/NAME.ts (a pass with one working example rule) and
test/passes/NAME.test.ts (its IR-text test and its equivalence property), and prints the line
that registers it. docs/passes.md walks through the rest.`,
};

const USAGE = `difftc — a compiler for differential-attention models

Usage: difftc <command> FILE [options]

Commands:
  check     type-check a model and print its signature
  ir        print the graph IR
  init      write seeded weights as safetensors
  compile   compile a model to an artifact (${targetNames().join(", ")})
  run       evaluate a model or run an artifact
  new-pass  start a new pass from the template (its file and its tests)
  quant-report  measure low-bit attention: error and bytes, diff vs standard attention

Run 'difftc <command> --help' for a command's options.`;

const OPTIONS = {
  model: { type: "string" },
  set: { type: "string", multiple: true },
  help: { type: "boolean", short: "h" },
  seed: { type: "string" },
  output: { type: "string", short: "o" },
  backend: { type: "string" },
  target: { type: "string" },
  weights: { type: "string" },
  inputs: { type: "string" },
  locations: { type: "boolean" },
  passes: { type: "string" },
  "print-after": { type: "string", multiple: true },
  "print-before": { type: "string", multiple: true },
  stats: { type: "boolean" },
  dot: { type: "boolean" },
  svg: { type: "boolean" },
  profile: { type: "boolean" },
  runs: { type: "string" },
  "print-after-all": { type: "boolean" },
  "time-passes": { type: "boolean" },
  "list-passes": { type: "boolean" },
  quant: { type: "string" },
  peak: { type: "string" },
} as const;

type Options = { [K in keyof typeof OPTIONS]?: (typeof OPTIONS)[K] extends { multiple: true } ? string[] : (typeof OPTIONS)[K]["type"] extends "boolean" ? boolean : string };

function dimsOf(model: ModelDecl): string[] {
  return model.body.flatMap((s) => (s.kind === "dim" ? s.names.map((n) => n.name) : []));
}

interface Loaded {
  graph: Graph;
  dims: Map<string, number>;
  /** The elaborated model, when loaded from a .dt file. */
  elaborated?: Elaborated;
  /** The artifact directory, when loaded from one, and the target its manifest names. */
  artifact?: string;
  artifactFiles?: Artifact;
  artifactTarget?: string;
}

/** The backend that runs a target's artifacts by default: the first adapter of that target that can run here. */
function defaultBackend(target: string): string {
  const adapters = ADAPTERS.filter((a) => a.target === target);
  return (adapters.find((a) => !a.unavailable()) ?? adapters[0]).name;
}

/** A compiled artifact: its graph (graph.ir) for inputs and weights, the directory to run. */
function loadArtifactDir(dir: string, opts: Options): Loaded {
  // Checked against the hashes in its manifest: what runs below is what difftc wrote.
  const files = readArtifact(dir);
  const artifactTarget: unknown = files.target;
  if (typeof artifactTarget !== "string" || !targetNames().includes(artifactTarget))
    throw new Diagnostic(`${dir}/manifest.json names target ${JSON.stringify(artifactTarget)}, which this difftc does not have (targets: ${targetNames().join(", ")})`);
  const graphText = files.files.get("graph.ir");
  if (graphText === undefined) throw new Diagnostic(`${dir} is not a complete artifact: graph.ir is missing (recompile with difftc compile)`);
  const graph = parseGraph(String(graphText), join(dir, "graph.ir"));
  const set = parseSet(opts.set);
  for (const k of set.keys()) if (!graph.dims.includes(k)) throw new Diagnostic(`${dir} is compiled: only its dims (${graph.dims.join(", ") || "none"}) can be set, not ${k}`);
  return { graph, dims: set, artifact: dir, artifactFiles: files, artifactTarget };
}

function parseSet(values: string[] = []): Map<string, number> {
  const set = new Map<string, number>();
  for (const v of values) {
    const m = v.match(/^([A-Za-z_][A-Za-z0-9_]*)=(.+)$/);
    const n = m ? Number(m[2]) : NaN;
    if (!m || !Number.isFinite(n)) throw new Diagnostic(`--set expects KEY=NUMBER, got '${v}'`);
    set.set(m[1], n);
  }
  return set;
}

function load(file: string, opts: Options): Loaded {
  const program = parseProgram(readSource(file), file);
  const set = parseSet(opts.set);
  // Keys naming a dim of the chosen model bind run-time sizes; the rest are model parameters.
  const probe = opts.model ? [...program.models, ...standardLibrary().models].find((d) => d.name.name === opts.model) : rootModel(program);
  const dimNames = probe ? dimsOf(probe) : [];
  const dims = new Map([...set].filter(([k]) => dimNames.includes(k)));
  for (const [k, v] of dims) if (!Number.isInteger(v) || v < 0) throw new Diagnostic(`dim ${k} must be a non-negative integer, got ${v}`);
  const params = new Map([...set].filter(([k]) => !dimNames.includes(k)));
  const elaborated = elaborate(program, { model: opts.model, set: params });
  checkGraphSizes(elaborated.graph, dims);
  return { graph: elaborated.graph, elaborated, dims };
}


function seedOf(opts: Options): number {
  const seed = Number(opts.seed ?? 0);
  if (!Number.isInteger(seed) || seed < 0) throw new Diagnostic(`--seed expects a non-negative integer, got '${opts.seed}'`);
  return seed;
}

function describeInit(attrs: Record<string, unknown>): string {
  const args = (attrs.init_args as number[]).map((x) => Number(x.toPrecision(4)));
  return `${attrs.init}(${args.join(", ")})`;
}

function check({ graph, model, params }: Elaborated): string {
  const lines: string[] = [];
  const ps = [...params].map(([k, v]) => `${k} = ${v.kind === "number" || v.kind === "bool" ? v.value : v.kind === "string" ? JSON.stringify(v.value) : v.kind}`);
  lines.push(`model ${model.name.name}(${ps.join(", ")})`);
  if (graph.dims.length) lines.push(`dims: ${graph.dims.join(", ")}`);
  lines.push("inputs:");
  for (const n of inputNodes(graph)) lines.push(`  ${nodeName(n)}: ${formatType(n.type)}`);
  lines.push("outputs:");
  for (const o of graph.outputs) lines.push(`  ${o.name}: ${formatType(graph.nodes[o.node].type)}`);
  const pnodes = paramNodes(graph);
  const total = pnodes.reduce((s, n) => s + numel(n.type.shape as number[]), 0);
  lines.push(`params: ${pnodes.length} tensors, ${total.toLocaleString("en-US")} values`);
  const width = Math.max(0, ...pnodes.map((n) => nodeName(n).length));
  const typeWidth = Math.max(0, ...pnodes.map((n) => formatType(n.type).length));
  for (const n of pnodes) lines.push(`  ${nodeName(n).padEnd(width)}  ${formatType(n.type).padEnd(typeWidth)}  ${describeInit(n.attrs)}`);
  return lines.join("\n");
}

function summarize(name: string, t: HostTensor): string {
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  let nans = 0;
  for (const x of t.data) {
    if (Number.isNaN(x)) nans++;
    if (x < min) min = x;
    if (x > max) max = x;
    sum += x;
  }
  if (nans === t.data.length) [min, max] = [NaN, NaN];
  const n = t.data.length;
  const fmt = (x: number) => (Number.isInteger(x) ? String(x) : x.toPrecision(5));
  const first = Array.from(t.data.subarray(0, 8), fmt).join(", ");
  const stats = n ? `min ${fmt(min)}  max ${fmt(max)}  mean ${fmt(sum / n)}${nans ? `  (${nans} NaN)` : ""}` : "empty";
  return `${name}: ${t.dtype}${formatShape(t.shape)}  ${stats}\n  [${first}${n > 8 ? ", ..." : ""}]`;
}

function loadWeights(m: Loaded, opts: Options): Map<string, HostTensor> {
  if (!opts.weights) return initWeights(m.graph, seedOf(opts));
  const { tensors } = readSafetensors(opts.weights);
  const missing = paramNodes(m.graph).map(nodeName).filter((n) => !tensors.has(n));
  if (missing.length) throw new Diagnostic(`${opts.weights} lacks ${missing.length} param${missing.length === 1 ? "" : "s"} of ${m.graph.name}: ${missing.slice(0, 5).join(", ")}${missing.length > 5 ? ", ..." : ""}`);
  for (const n of paramNodes(m.graph)) {
    const t = tensors.get(nodeName(n))!;
    if (t.dtype !== n.type.dtype || formatShape(t.shape) !== formatShape(n.type.shape))
      throw new Diagnostic(`${opts.weights}: ${nodeName(n)} is ${t.dtype}${formatShape(t.shape)}, but the model declares ${formatType(n.type)}`);
  }
  return tensors;
}

function loadInputs(m: Loaded, opts: Options): Map<string, HostTensor> {
  if (opts.inputs) return readSafetensors(opts.inputs).tensors;
  const unbound = m.graph.dims.filter((d) => !m.dims.has(d));
  if (unbound.length) throw new Diagnostic(`random inputs need a size for ${unbound.join(", ")}: pass ${unbound.map((d) => `--set ${d}=SIZE`).join(" ")} (or --inputs FILE)`);
  return randomInputs(m.graph, m.dims, seedOf(opts));
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === "--help" || command === "-h" || command === "help") {
    console.log(USAGE);
    return command ? 0 : 1;
  }
  if (!Object.hasOwn(HELP, command)) throw new Diagnostic(`unknown command '${command}' (check, ir, init, compile, run, new-pass, quant-report); see difftc --help`);
  let parsed;
  try {
    parsed = parseArgs({ args: rest, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (e) {
    throw new Diagnostic(`${(e as Error).message.replace(/\. To specify.*$/s, "")}; see difftc ${command} --help`);
  }
  const opts = parsed.values as Options;
  if (opts.help) {
    console.log(HELP[command]);
    return 0;
  }
  if (opts["list-passes"]) {
    console.log(listPasses());
    return 0;
  }
  if (command === "new-pass") return newPass(parsed.positionals);
  if (parsed.positionals.length !== 1) throw new Diagnostic(`difftc ${command} takes one model file; see difftc ${command} --help`);
  const path = parsed.positionals[0];
  if (isArtifactDir(path) && command !== "run") throw new Diagnostic(`${path} is a compiled artifact; 'difftc ${command}' takes a .dt file (an artifact runs with 'difftc run ${path}')`);
  const m = isArtifactDir(path) ? loadArtifactDir(path, opts) : load(path, opts);
  // The pass pipeline applies to what is compiled or printed; an artifact was compiled already.
  const passes = parsePipeline(opts.passes);
  if (!m.artifact) for (const w of orderWarnings(passes)) process.stderr.write(`warning: ${w}\n`);
  const passSet = (values: string[] = []) => new Set(values.flatMap((p) => p.split(",")).map((p) => p.trim()));
  const printAfter = passSet(opts["print-after"]);
  const printBefore = passSet(opts["print-before"]);
  for (const p of [...printAfter, ...printBefore]) findPass(p);
  if (opts["print-after-all"]) printAfter.add("*");
  if (opts.quant !== undefined && command !== "quant-report" && !passes.includes(quantizeAttentionPass.name)) throw new Diagnostic("--quant sets the quantize-attention pass, which the pipeline lacks: add it, e.g. --passes default,quantize-attention");
  const passOptions = { quant: opts.quant === undefined ? undefined : parseQuantFlag(opts.quant) };
  const format: GraphFormat = opts.svg ? "svg" : opts.dot ? "dot" : "text";
  if (format !== "text" && command !== "ir") throw new Diagnostic(`--${format} draws the IR: it goes with 'difftc ir'`);
  const views = irViews(format, command === "ir" ? opts.output : undefined, !!opts.locations);
  const optimized = () =>
    m.artifact ? m.graph : runPipeline(m.graph, passes, { printAfter, printBefore, timePasses: opts["time-passes"], statistics: opts.stats, show: views.stage, passOptions });
  switch (command) {
    case "check":
      console.log(check(m.elaborated!));
      return 0;
    case "ir":
      views.final(optimized());
      return 0;
    case "init": {
      if (!opts.output) throw new Diagnostic("difftc init needs -o FILE");
      refuseToOverwrite(opts.output, [{ path, what: "the model source" }]);
      const weights = initWeights(m.graph, seedOf(opts));
      writeSafetensors(opts.output, weights, { model: m.graph.name, seed: String(seedOf(opts)) });
      console.log(`wrote ${weights.size} params to ${opts.output}`);
      return 0;
    }
    case "compile": {
      const target = findTarget(opts.target ?? "js");
      if (!opts.output) throw new Diagnostic("difftc compile needs -o DIR");
      const artifact = target.compile(optimized(), { passes });
      writeArtifact(artifact, opts.output);
      console.log(`wrote ${[...artifact.files.keys()].join(", ")} to ${opts.output} (${artifact.manifest.kernels.length} kernels)`);
      return 0;
    }
    case "quant-report": {
      const peak = opts.peak === undefined ? 1 : Number(opts.peak);
      if (!(peak > 0)) throw new Diagnostic(`--peak expects a positive factor, got '${opts.peak}'`);
      const inputs = loadInputs(m, opts);
      const rows = quantReport(m.graph, loadWeights(m, opts), peak === 1 ? inputs : peakedInputs(inputs, peak), {
        bits: [8, 6, 4],
        targets: ["logits", "probs"],
        granularities: ["row", "block"],
        threshold: passOptions.quant?.threshold as number ?? 0,
        vBits: passOptions.quant?.v_bits as number ?? 0,
        block: passOptions.quant?.block as number | undefined,
        dims: m.dims,
      });
      const source = `${opts.weights ?? `seeded weights (seed ${seedOf(opts)})`}, ${opts.inputs ?? `random inputs (seed ${seedOf(opts)})`}${peak === 1 ? "" : `, every 16th row x ${peak}`}`;
      process.stdout.write(formatQuantReport(rows, `quant report: ${m.graph.name}, ${[...m.dims].map(([k, v]) => `${k} = ${v}`).join(", ")}; ${source}`));
      return 0;
    }
    case "run": {
      const backend = opts.backend ?? (m.artifact ? defaultBackend(m.artifactTarget!) : "interp");
      const adapter = backend === "interp" ? undefined : findAdapter(backend);
      if (m.artifact && adapter && adapter.target !== m.artifactTarget) throw new Diagnostic(`${m.artifact} is a ${m.artifactTarget} artifact; --backend ${backend} runs ${adapter.target} artifacts`);
      const weights = loadWeights(m, opts);
      const inputs = loadInputs(m, opts);
      let outputs: Map<string, HostTensor>;
      const graph = optimized();
      if (opts.profile && !adapter) throw new Diagnostic("--profile times the kernels of a compiled artifact: give --backend js");
      if (!adapter) outputs = evaluate(graph, inputs, weights, { dims: m.dims });
      else {
        // The interpreter checks inputs against the graph with clear messages; so does this.
        bindDims(graph, inputs, m.dims);
        const session = await adapter.load(m.artifactFiles ?? findTarget(adapter.target).compile(graph, { passes }), weights);
        outputs = await session.run(inputs);
        if (opts.profile) {
          if (!session.profile) throw new Diagnostic(`--profile: the ${backend} backend's kernels run asynchronously and cannot be timed one by one here; use --backend js`);
          const runs = Number(opts.runs ?? 10);
          if (!Number.isInteger(runs) || runs < 1) throw new Diagnostic(`--runs expects a positive integer, got '${opts.runs}'`);
          console.log(formatProfile(await session.profile(inputs, runs), runs));
        }
      }
      if (opts.output) {
        refuseToOverwrite(opts.output, [{ path, what: "the model being run" }, { path: opts.weights, what: "the weights" }, { path: opts.inputs, what: "the inputs" }]);
        writeSafetensors(opts.output, outputs);
        console.log(`wrote ${outputs.size} output${outputs.size === 1 ? "" : "s"} to ${opts.output}`);
      } else {
        for (const [name, t] of outputs) console.log(summarize(name, t));
      }
      return 0;
    }
  }
  return 1;
}
