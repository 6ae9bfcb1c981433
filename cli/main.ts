// The difftc command line: check, ir, init, inputs, compile and run, a thin layer over the API
// (api/index.ts): it parses options, calls the API and prints what it returns.
import { parseArgs } from "node:util";
import * as difftc from "../api/index.ts";
import { Diagnostic, type Graph, type HostTensor, type Model } from "../api/index.ts";
import { refuseToOverwrite } from "../common/files.ts";
import { Progress } from "./progress.ts";
import { irViews, newPass } from "./workbench.ts";
import { parseQuantFlag, quantizeAttentionPass } from "../compiler/passes/quantize-attention.ts";
import { formatQuantReport, peakedInputs, quantReport } from "../runtime/quant-report.ts";

const COMMON = `Common options:
  --model NAME      the model to compile (default: the last model in the file that no other
                    model in it uses)
  --set KEY=VALUE   set a model parameter (--set D=1024, --set causal=false,
                    --set pairing=halves) or a dim (--set N=64); repeatable
  --time            print how long each step took, on stderr (on a terminal, steps longer
                    than two seconds show their progress anyway)
  -h, --help        this help`;

const PASS_OPTIONS = `Pass options:
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

const PRECISION_OPTION = `  --precision P     the arithmetic of the kernels: f32 (default), or f64 on the js target:
                    float64 accumulation, bit for bit with the interpreter on single ops`;

const WEIGHTS_OPTIONS = `Weights options (a checkpoint binds strictly, as PyTorch's load_state_dict does: a param
missing, a tensor unused or a shape that differs is an error; float dtypes convert to the
param's, said once on stderr):
  --weights FILE    weights as safetensors (default: seeded weights as 'init' draws them)
  --weights-prefix P strip P from the names that start with it (model. for a Hugging Face
                    checkpoint: model.layers.0.self_attn.q_proj.weight -> layers.0....)
  --rename OLD=NEW  bind the file's tensor OLD to param NEW (repeatable)
  --allow-unused    ignore tensors the model does not use`;

const HELP: Record<string, string> = {
  check: `difftc check FILE [options]
Parses and type-checks a model and prints its signature: dims, inputs, outputs and every param
with its hierarchical name, dtype, shape and initialiser.

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
  init: `difftc init FILE -o WEIGHTS.safetensors [options]
Writes seeded weights, drawn as each param's initialiser says (the paper's code: lambda
vectors N(0, 0.1), norm weights 1, linear layers U(+-1/sqrt(fan_in))).

${COMMON}
  --seed N          random seed (default 0)
  -o, --output FILE where to write the weights (required)`,
  inputs: `difftc inputs FILE|ARTIFACT_DIR -o INPUTS.safetensors --set N=SIZE [options]
Writes seeded random inputs for a model, as 'run' draws them: floats N(0, 1), token ids below
the size of the table they index. Give each dim's size with --set.

${COMMON}
  --seed N          random seed (default 0)
  -o, --output FILE where to write the inputs (required)`,
  compile: `difftc compile FILE -o DIR [options]
Compiles the model to an artifact directory: manifest.json, the kernels, and the graph it was
compiled from (graph.ir).

${COMMON}
${PASS_OPTIONS}
  --target NAME     the backend to compile for (default js):
${difftc.TARGETS.map((t) => `                      ${t.name}: ${t.description}`).join("\n")}
${PRECISION_OPTION}
  -o, --output DIR  the artifact directory (required)`,
  run: `difftc run FILE|ARTIFACT_DIR [options]
Evaluates a model (compiling it in memory for a backend other than interp), or runs a
compiled artifact, and writes or prints its outputs. On an artifact directory only --set of
its dims applies, not --model or the pass options: it was compiled already.

${COMMON}
${PASS_OPTIONS}
${WEIGHTS_OPTIONS}
  --backend NAME    ${difftc.backendNames().join(", ")}: interp is the reference interpreter (default
                    for a .dt file); an artifact directory runs on its own target's backend
  --inputs FILE     inputs as safetensors (default: seeded random inputs; give dims with --set);
                    integer inputs may be int64, as PyTorch saves token ids, within i32's range
  --seed N          seed for default weights and inputs (default 0)
${PRECISION_OPTION}
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
${WEIGHTS_OPTIONS}
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

const USAGE = `difftc ${difftc.VERSION} — a compiler for differential-attention models

Usage: difftc <command> FILE [options]

Commands:
  check     type-check a model and print its signature
  ir        print the graph IR
  init      write seeded weights as safetensors
  inputs    write seeded random inputs as safetensors
  compile   compile a model to an artifact (${difftc.targetNames().join(", ")})
  run       evaluate a model or run an artifact
  new-pass  start a new pass from the template (its file and its tests)
  quant-report  measure low-bit attention: error and bytes, diff vs standard attention

Run 'difftc <command> --help' for a command's options, 'difftc --version' for the version.`;

const OPTIONS = {
  model: { type: "string" },
  set: { type: "string", multiple: true },
  help: { type: "boolean", short: "h" },
  time: { type: "boolean" },
  seed: { type: "string" },
  output: { type: "string", short: "o" },
  backend: { type: "string" },
  target: { type: "string" },
  precision: { type: "string" },
  weights: { type: "string" },
  "weights-prefix": { type: "string" },
  rename: { type: "string", multiple: true },
  "allow-unused": { type: "boolean" },
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

type OptionName = keyof typeof OPTIONS;
type Options = { [K in OptionName]?: (typeof OPTIONS)[K] extends { multiple: true } ? string[] : (typeof OPTIONS)[K]["type"] extends "boolean" ? boolean : string };

const COMMON_NAMES: OptionName[] = ["model", "set", "help", "time"];
const PASS_NAMES: OptionName[] = ["passes", "print-after", "print-before", "print-after-all", "time-passes", "stats", "list-passes", "quant"];
const WEIGHTS_NAMES: OptionName[] = ["weights", "weights-prefix", "rename", "allow-unused"];

/** The options each command takes; any other is an error, not silently ignored. */
const APPLIES: Record<string, OptionName[]> = {
  check: COMMON_NAMES,
  ir: [...COMMON_NAMES, ...PASS_NAMES, "locations", "dot", "svg", "output"],
  init: [...COMMON_NAMES, "seed", "output"],
  inputs: [...COMMON_NAMES, "seed", "output"],
  compile: [...COMMON_NAMES, ...PASS_NAMES, "target", "precision", "output"],
  run: [...COMMON_NAMES, ...PASS_NAMES, ...WEIGHTS_NAMES, "backend", "precision", "inputs", "seed", "output", "profile", "runs"],
  "new-pass": ["help"],
  "quant-report": [...COMMON_NAMES, ...WEIGHTS_NAMES, "inputs", "seed", "peak", "quant"],
};

/** Options that mean nothing for a compiled artifact: it was elaborated and optimised already. */
const NOT_FOR_ARTIFACTS: OptionName[] = ["model", "precision", ...PASS_NAMES];

/** A model or a compiled artifact, with the dims --set gave. */
interface Loaded {
  graph: Graph;
  dims: Map<string, number>;
  /** The elaborated model, when loaded from a .dt file. */
  model?: Model;
  /** The artifact directory, when loaded from one. */
  artifact?: difftc.ArtifactDir;
}

/** An identifier as the DSL spells one (ohm's letter: any Unicode letter), then `=`. */
const SET_KEY = /^([\p{L}_][\p{L}0-9_]*)=(.*)$/su;
const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** `--set KEY=VALUE`: a number, true or false, or a string (quoted, or any other text). */
export function parseSet(values: string[] = []): Map<string, difftc.ParamValue> {
  const set = new Map<string, difftc.ParamValue>();
  for (const v of values) {
    const m = v.match(SET_KEY);
    const text = m?.[2].trim();
    if (!m || !text) throw new Diagnostic(`--set expects KEY=VALUE (a number, true, false or a string), got '${v}'`);
    if (set.has(m[1])) throw new Diagnostic(`--set gives ${m[1]} twice`);
    const quoted = text.match(/^"(.*)"$/s);
    set.set(m[1], NUMBER.test(text) ? Number(text) : text === "true" ? true : text === "false" ? false : quoted ? quoted[1] : text);
  }
  return set;
}

function loadArtifact(dir: string, opts: Options): Loaded {
  const artifact = difftc.readArtifact(dir);
  const dims = new Map<string, number>();
  for (const [k, v] of parseSet(opts.set)) {
    if (!artifact.graph.dims.includes(k)) throw new Diagnostic(`${dir} is compiled: only its dims (${artifact.graph.dims.join(", ") || "none"}) can be set, not ${k}`);
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) throw new Diagnostic(`dim ${k} is a size: it takes a non-negative integer, got ${JSON.stringify(v)}`);
    dims.set(k, v);
  }
  return { graph: artifact.graph, dims, artifact };
}

function loadModel(file: string, opts: Options): Loaded {
  const model = difftc.elaborateModel(difftc.readModel(file), { model: opts.model, set: parseSet(opts.set) });
  return { graph: model.graph, dims: model.dims, model };
}

function seedOf(opts: Options): number {
  const seed = Number(opts.seed ?? 0);
  if (opts.seed?.trim() === "" || !Number.isSafeInteger(seed) || seed < 0) throw new Diagnostic(`--seed expects a non-negative integer, got '${opts.seed}'`);
  return seed;
}

function describeInit(attrs: Record<string, unknown>): string {
  const args = (attrs.init_args as number[]).map((x) => Number(x.toPrecision(4)));
  return `${attrs.init}(${args.join(", ")})`;
}

function check({ graph, name, parameters }: Model): string {
  const lines: string[] = [];
  const ps = Object.entries(parameters).map(([k, v]) => `${k} = ${typeof v === "string" ? JSON.stringify(v) : v}`);
  lines.push(`model ${name}(${ps.join(", ")})`);
  if (graph.dims.length) lines.push(`dims: ${graph.dims.join(", ")}`);
  lines.push("inputs:");
  for (const n of difftc.inputNodes(graph)) lines.push(`  ${difftc.nodeName(n)}: ${difftc.formatType(n.type)}`);
  lines.push("outputs:");
  for (const o of graph.outputs) lines.push(`  ${o.name}: ${difftc.formatType(graph.nodes[o.node].type)}`);
  const pnodes = difftc.paramNodes(graph);
  const total = pnodes.reduce((s, n) => s + (n.type.shape as number[]).reduce((a, b) => a * b, 1), 0);
  lines.push(`params: ${pnodes.length} tensors, ${total.toLocaleString("en-US")} values`);
  const width = Math.max(0, ...pnodes.map((n) => difftc.nodeName(n).length));
  const typeWidth = Math.max(0, ...pnodes.map((n) => difftc.formatType(n.type).length));
  for (const n of pnodes) lines.push(`  ${difftc.nodeName(n).padEnd(width)}  ${difftc.formatType(n.type).padEnd(typeWidth)}  ${describeInit(n.attrs)}`);
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
  return `${name}: ${t.dtype}[${t.shape.join(", ")}]  ${stats}\n  [${first}${n > 8 ? ", ..." : ""}]`;
}

function renames(values: string[] = []): Record<string, string> {
  const map: Record<string, string> = {};
  for (const v of values) {
    const at = v.lastIndexOf("=");
    if (at <= 0 || at === v.length - 1) throw new Diagnostic(`--rename expects FILE_NAME=PARAM_NAME, got '${v}'`);
    map[v.slice(0, at)] = v.slice(at + 1);
  }
  return map;
}

function weightsFor(m: Loaded, opts: Options, progress: Progress): Promise<Map<string, HostTensor>> {
  const file = opts.weights;
  if (!file) {
    for (const o of ["weights-prefix", "rename", "allow-unused"] as const) if (opts[o] !== undefined) throw new Diagnostic(`--${o} applies to --weights FILE, which is not given`);
    return progress.step("init weights", (tick) => difftc.initWeights(m.graph, seedOf(opts), tick));
  }
  return progress.step("read weights", () => difftc.readWeights(file, m.graph, { prefix: opts["weights-prefix"], rename: renames(opts.rename), allowUnused: opts["allow-unused"] }));
}

function inputsFor(m: Loaded, opts: Options): Map<string, HostTensor> {
  if (opts.inputs) return difftc.readSafetensors(opts.inputs).tensors;
  const unbound = m.graph.dims.filter((d) => !m.dims.has(d));
  if (unbound.length) throw new Diagnostic(`random inputs need a size for ${unbound.join(", ")}: pass ${unbound.map((d) => `--set ${d}=SIZE`).join(" ")}${opts.inputs === undefined ? " (or --inputs FILE)" : ""}`);
  return difftc.randomInputs(m.graph, m.dims, seedOf(opts));
}

function parse(command: string, rest: string[]) {
  let parsed;
  try {
    parsed = parseArgs({ args: rest, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (e) {
    throw new Diagnostic(`${(e as Error).message.replace(/\. To specify.*$/s, "")}; see difftc ${command} --help`);
  }
  const opts = parsed.values as Options;
  for (const name of Object.keys(opts) as OptionName[])
    if (!APPLIES[command].includes(name)) throw new Diagnostic(`--${name} does not apply to difftc ${command}; see difftc ${command} --help`);
  return { opts, positionals: parsed.positionals };
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === "--version" || command === "-v" || command === "version") {
    console.log(`difftc ${difftc.VERSION}`);
    return 0;
  }
  if (!command || command === "--help" || command === "-h" || command === "help") {
    console.log(USAGE);
    return command ? 0 : 1;
  }
  if (!Object.hasOwn(HELP, command)) throw new Diagnostic(`unknown command '${command}' (${Object.keys(HELP).join(", ")}); see difftc --help`);
  const { opts, positionals } = parse(command, rest);
  if (opts.help) {
    console.log(HELP[command]);
    return 0;
  }
  if (opts["list-passes"]) {
    console.log(difftc.listPasses());
    return 0;
  }
  if (command === "new-pass") return newPass(positionals);
  if (positionals.length !== 1) throw new Diagnostic(`difftc ${command} takes one model file${command === "run" || command === "inputs" ? " or artifact directory" : ""}, got ${positionals.length}; see difftc ${command} --help`);
  const path = positionals[0];
  const isArtifact = difftc.isArtifactDir(path);
  if (isArtifact && command !== "run" && command !== "inputs") throw new Diagnostic(`${path} is a compiled artifact; 'difftc ${command}' takes a .dt file (an artifact runs with 'difftc run ${path}')`);
  if (isArtifact) for (const name of NOT_FOR_ARTIFACTS) if (opts[name] !== undefined) throw new Diagnostic(`--${name} does not apply to a compiled artifact (${path} was compiled with its model and passes); compile again to change them`);
  const progress = Progress.forProcess(!!opts.time);
  const m = await progress.step(isArtifact ? "read artifact" : "elaborate", () => (isArtifact ? loadArtifact(path, opts) : loadModel(path, opts)));
  const passes = opts.passes ?? "default";
  if (!isArtifact) for (const w of difftc.orderWarnings(difftc.parsePipeline(passes))) process.stderr.write(`warning: ${w}\n`);
  const passSet = (values: string[] = []) => new Set(values.flatMap((p) => p.split(",")).map((p) => p.trim()));
  const printAfter = passSet(opts["print-after"]);
  if (opts["print-after-all"]) printAfter.add("*");
  const views = irViews(opts.svg ? "svg" : opts.dot ? "dot" : "text", command === "ir" ? opts.output : undefined, !!opts.locations);
  if (opts.quant !== undefined && command !== "quant-report" && !difftc.parsePipeline(passes).includes(quantizeAttentionPass.name))
    throw new Diagnostic("--quant sets the quantize-attention pass, which the pipeline lacks: add it, e.g. --passes default,quantize-attention");
  const passOptions = { quant: opts.quant === undefined ? undefined : parseQuantFlag(opts.quant) };
  const pipelineOptions = { printAfter, printBefore: passSet(opts["print-before"]), timePasses: opts["time-passes"], statistics: opts.stats, show: views.stage, passOptions };
  const status = await runCommand(command, path, m, opts, passes, pipelineOptions, progress, views);
  progress.finish();
  return status;
}

async function runCommand(command: string, path: string, m: Loaded, opts: Options, passes: string, pipelineOptions: difftc.PipelineOptions, progress: Progress, views: ReturnType<typeof irViews>): Promise<number> {
  switch (command) {
    case "check":
      console.log(check(m.model!));
      return 0;
    case "ir": {
      views.final(await progress.step("passes", () => difftc.optimize(m.graph, passes, pipelineOptions)));
      return 0;
    }
    case "init": {
      if (!opts.output) throw new Diagnostic("difftc init needs -o FILE");
      refuseToOverwrite(opts.output, [{ path, what: "the model source" }]);
      const weights = await progress.step("init weights", (tick) => difftc.initWeights(m.graph, seedOf(opts), tick));
      difftc.writeSafetensors(opts.output, weights, { model: m.graph.name, seed: String(seedOf(opts)) });
      console.log(`wrote ${weights.size} params to ${opts.output}`);
      return 0;
    }
    case "inputs": {
      if (!opts.output) throw new Diagnostic("difftc inputs needs -o FILE");
      refuseToOverwrite(opts.output, [{ path, what: "the model source" }]);
      const inputs = inputsFor(m, opts);
      difftc.writeSafetensors(opts.output, inputs, { model: m.graph.name, seed: String(seedOf(opts)) });
      console.log(`wrote ${[...inputs].map(([name, t]) => `${name} ${t.dtype}[${t.shape.join(", ")}]`).join(", ")} to ${opts.output}`);
      return 0;
    }
    case "compile": {
      if (!opts.output) throw new Diagnostic("difftc compile needs -o DIR");
      const artifact = await progress.step("compile", () => difftc.compile(m.graph, { ...pipelineOptions, target: opts.target ?? "js", passes, precision: opts.precision as difftc.Precision | undefined }));
      difftc.writeArtifact(artifact, opts.output);
      console.log(`wrote ${[...artifact.files.keys()].join(", ")} to ${opts.output} (${artifact.manifest.kernels.length} kernels)`);
      return 0;
    }
    case "quant-report": {
      const peak = opts.peak === undefined ? 1 : Number(opts.peak);
      if (!(peak > 0)) throw new Diagnostic(`--peak expects a positive factor, got '${opts.peak}'`);
      const inputs = inputsFor(m, opts);
      const quant = pipelineOptions.passOptions?.quant;
      const rows = quantReport(m.graph, await weightsFor(m, opts, progress), peak === 1 ? inputs : peakedInputs(inputs, peak), {
        bits: [8, 6, 4],
        targets: ["logits", "probs"],
        granularities: ["row", "block"],
        threshold: (quant?.threshold as number) ?? 0,
        vBits: (quant?.v_bits as number) ?? 0,
        block: quant?.block as number | undefined,
        dims: m.dims,
      });
      const source = `${opts.weights ?? `seeded weights (seed ${seedOf(opts)})`}, ${opts.inputs ?? `random inputs (seed ${seedOf(opts)})`}${peak === 1 ? "" : `, every 16th row x ${peak}`}`;
      process.stdout.write(formatQuantReport(rows, `quant report: ${m.graph.name}, ${[...m.dims].map(([k, v]) => `${k} = ${v}`).join(", ")}; ${source}`));
      return 0;
    }
    case "run": {
      const backend = opts.backend ?? (m.artifact ? difftc.defaultBackend(m.artifact.target) : "interp");
      // A backend that does not exist, or runs other artifacts, is said before any work.
      const target = backend === "interp" ? undefined : difftc.findAdapterTarget(backend);
      if (m.artifact && target && target !== m.artifact.target) throw new Diagnostic(`${m.artifact.dir} is a ${m.artifact.target} artifact; --backend ${backend} runs ${target} artifacts`);
      if (opts.profile && !target) throw new Diagnostic("--profile times the kernels of a compiled artifact: give --backend js");
      if (opts.precision !== undefined && !target) throw new Diagnostic("--precision is the arithmetic of compiled kernels; the interpreter always computes in float64: give --backend js");
      if (opts.runs !== undefined && !opts.profile) throw new Diagnostic("--runs is the number of forwards --profile averages: give --profile");
      const weights = await weightsFor(m, opts, progress);
      const inputs = inputsFor(m, opts);
      // The interpreter's checks of the inputs, with their clear messages, before any backend's.
      difftc.bindDims(m.graph, inputs, m.dims);
      let outputs: Map<string, HostTensor>;
      if (!target) {
        const graph = m.artifact ? m.graph : await progress.step("passes", () => difftc.optimize(m.graph, passes, pipelineOptions));
        outputs = await progress.step("run", (tick) => difftc.evaluate(graph, inputs, weights, { dims: m.dims, onValue: (id) => tick(id + 1, graph.nodes.length) }));
      } else {
        const artifact = m.artifact?.artifact ?? (await progress.step("compile", () => difftc.compile(m.graph, { ...pipelineOptions, target, passes, precision: opts.precision as difftc.Precision | undefined })));
        // The weights were bound strictly to the model already; its compiled graph may have dropped a param nothing uses.
        const session = await progress.step("load", () => difftc.loadSession(artifact, weights, { backend, allowUnused: true }));
        outputs = await progress.step("run", () => session.run(inputs));
        if (opts.profile) {
          if (!session.profile) throw new Diagnostic(`--profile: the ${backend} backend's kernels run asynchronously and cannot be timed one by one here; use --backend js`);
          const runs = Number(opts.runs ?? 10);
          if (!Number.isInteger(runs) || runs < 1) throw new Diagnostic(`--runs expects a positive integer, got '${opts.runs}'`);
          console.log(difftc.formatProfile(await progress.step("profile", () => session.profile!(inputs, runs)), runs));
        }
      }
      if (opts.output) {
        refuseToOverwrite(opts.output, [{ path, what: "the model being run" }, { path: opts.weights, what: "the weights" }, { path: opts.inputs, what: "the inputs" }]);
        difftc.writeSafetensors(opts.output, outputs);
        console.log(`wrote ${outputs.size} output${outputs.size === 1 ? "" : "s"} to ${opts.output}`);
      } else {
        for (const [name, t] of outputs) console.log(summarize(name, t));
      }
      return 0;
    }
  }
  return 1;
}
