// difftc's programmatic API, the package's entry point (`import { ... } from "difftc"`): every
// step the CLI takes, as functions over values. The CLI (cli/) is a thin layer over it.
// Tensors are HostTensor values: a dtype, a shape and float64 data (16-bit floats as values).
// Every user mistake is thrown as a Diagnostic: `format()` gives file:line:col and a caret.
import { join } from "node:path";
import { type Artifact, readArtifact as readArtifactFiles } from "../backends/common/artifact.ts";
import { COMPILER_VERSION } from "../backends/common/manifest.ts";
import { findTarget, type Precision, targetNames } from "../backends/registry.ts";
import { Diagnostic } from "../common/diagnostic.ts";
import type { Manifest } from "../common/manifest.ts";
import { elaborate, type ParamValue } from "../compiler/elaborate/index.ts";
import type { Graph } from "../compiler/ir/graph.ts";
import { parseGraph } from "../compiler/ir/parse.ts";
import type { HostTensor } from "../compiler/ir/tensor.ts";
import { findPass, parsePipeline, type PipelineOptions, runPipeline } from "../compiler/passes/pipeline.ts";
import type { Program } from "../dsl/ast.ts";
import { parseProgram, readSource } from "../dsl/parse.ts";
import { checkGraphSizes } from "../compiler/ir/limits.ts";
import type { Session, TensorMap } from "../runtime/adapters/adapter.ts";
import { ADAPTERS, findAdapter } from "../runtime/adapters/index.ts";
import { bindDims, evaluate } from "../runtime/interpreter/index.ts";
import { bindParams, type BindOptions } from "../runtime/weights.ts";

export { Diagnostic, InternalError, type SourceSpan } from "../common/diagnostic.ts";
export type { Manifest, TensorSpec } from "../common/manifest.ts";
export type { Program } from "../dsl/ast.ts";
export { type Graph, inputNodes, type Node, nodeName, paramNodes } from "../compiler/ir/graph.ts";
export { type HostTensor, tensor } from "../compiler/ir/tensor.ts";
export { type Dim, type DType, DTYPES, formatType, type TensorType } from "../compiler/ir/types.ts";
export type { ParamValue } from "../compiler/elaborate/index.ts";
export { printGraph, type PrintOptions } from "../compiler/ir/print.ts";
export { parseGraph } from "../compiler/ir/parse.ts";
export { verifyGraph } from "../compiler/ir/verify.ts";
export { listPasses, orderWarnings, parsePipeline, type PassReport, type PipelineOptions } from "../compiler/passes/pipeline.ts";
export { formatProfile } from "../runtime/profile.ts";
export { DEFAULT_PIPELINE, PASSES } from "../compiler/passes/registry.ts";
export { type Artifact, isArtifactDir, writeArtifact } from "../backends/common/artifact.ts";
export { type CompileOptions, type Precision, TARGETS, type Target, targetNames } from "../backends/registry.ts";
export { backendNames } from "../runtime/adapters/index.ts";
export type { KernelTime, Session, TensorMap } from "../runtime/adapters/adapter.ts";
export { bindDims, evaluate, type EvaluateOptions } from "../runtime/interpreter/index.ts";
export { initWeights, randomInputs } from "../runtime/init.ts";
export { bindParams, type BindOptions, graphParams, type ParamSpec, readWeights, type WeightsBindingOptions } from "../runtime/weights.ts";
export { parseSafetensors, readSafetensors, type SafetensorsFile, serializeSafetensors, writeSafetensors } from "../runtime/safetensors.ts";

/** difftc's version, as its package.json says and artifacts' manifests record. */
export const VERSION = COMPILER_VERSION;

/** A model elaborated into a graph. */
export interface Model {
  /** The typed graph IR, shapes checked; params named hierarchically, as a PyTorch state_dict names them. */
  graph: Graph;
  /** The model's name in its file. */
  name: string;
  /** The value of each compile-time parameter, given or defaulted. */
  parameters: Record<string, ParamValue>;
  /** The sizes given for the model's dims (`set: { N: 64 }`); the others bind from the inputs at run time. */
  dims: Map<string, number>;
}

export interface ModelOptions {
  /** The model to elaborate (default: the last model in the file that no other model in it uses). */
  model?: string;
  /** Compile-time parameters (`{ D: 1024, causal: false }`) and sizes of the model's dims (`{ N: 64 }`). */
  set?: Readonly<Record<string, ParamValue>> | ReadonlyMap<string, ParamValue>;
}

/** Parses DSL source (a `.dt` file's text); `file` names it in diagnostics. */
export function parseModel(source: string, file = "<input>"): Program {
  return parseProgram(source, file);
}

/** Reads and parses a `.dt` file (a regular file, within the size limit for sources). */
export function readModel(file: string): Program {
  return parseProgram(readSource(file), file);
}

/** Elaborates a parsed program (or a `.dt` file, by path) into a model's graph. */
export function elaborateModel(program: Program | string, options: ModelOptions = {}): Model {
  const parsed = typeof program === "string" ? readModel(program) : program;
  const set = options.set instanceof Map ? options.set : new Map(Object.entries(options.set ?? {}));
  const { graph, model, params, dims } = elaborate(parsed, { model: options.model, set });
  // Every tensor within what a typed array holds, for the dims given (the rest when bound).
  checkGraphSizes(graph, dims);
  const parameters: Record<string, ParamValue> = {};
  for (const [k, v] of params) if (v.kind === "number" || v.kind === "bool" || v.kind === "string") parameters[k] = v.value;
  return { graph, name: model.name.name, parameters, dims };
}

/** A pass pipeline: pass names, or "default" (the optimising pipeline), "none", or a comma-separated list. */
export type Passes = string | readonly string[];

/** The pass names of a pipeline; the passes named in `printAfter` must exist too. */
function pipeline(passes: Passes, options: PipelineOptions): string[] {
  for (const p of [...(options.printAfter ?? []), ...(options.printBefore ?? [])]) if (p !== "*") findPass(p);
  return typeof passes === "string" ? parsePipeline(passes) : parsePipeline(passes.join(","));
}

/** Runs a pass pipeline over a graph (verifying after each pass). */
export function optimize(graph: Graph, passes: Passes = "default", options: PipelineOptions = {}): Graph {
  return runPipeline(graph, pipeline(passes, options), options);
}

export interface CompileModelOptions extends PipelineOptions {
  /** A target of the registry: js (default), wgsl, cuda. */
  target?: string;
  /** The pipeline run before the target compiles (default: "default"). */
  passes?: Passes;
  /** The arithmetic the kernels compute in: "f32" (the default) or, on the JS target, "f64", which matches the interpreter bit for bit on single ops. */
  precision?: Precision;
}

/** Optimises a graph and compiles it for a target: an artifact, written with writeArtifact or loaded with loadSession. */
export function compile(graph: Graph, options: CompileModelOptions = {}): Artifact {
  const target = findTarget(options.target ?? "js");
  const passes = pipeline(options.passes ?? "default", options);
  return target.compile(runPipeline(graph, passes, options), { passes, precision: options.precision });
}

/** A compiled artifact directory, checked against the hashes its manifest records: its files, the graph it was compiled from (graph.ir) and its target. */
export interface ArtifactDir {
  dir: string;
  graph: Graph;
  target: string;
  manifest: Manifest;
  /** The files as checked: what runs is exactly what was verified. */
  artifact: Artifact;
}

/** Reads a compiled artifact directory, verifying every file's hash, and checks that this difftc can run it. */
export function readArtifact(dir: string): ArtifactDir {
  const artifact = readArtifactFiles(dir);
  const target: unknown = artifact.target;
  if (typeof target !== "string" || !targetNames().includes(target))
    throw new Diagnostic(`${dir}/manifest.json names target ${JSON.stringify(target)}, which this difftc does not have (targets: ${targetNames().join(", ")})`);
  const graphText = artifact.files.get("graph.ir");
  if (graphText === undefined) throw new Diagnostic(`${dir} is not a complete artifact: graph.ir is missing (recompile with difftc compile)`);
  return { dir, graph: parseGraph(String(graphText), join(dir, "graph.ir")), target, manifest: artifact.manifest, artifact };
}

/** The backend that runs a target's artifacts by default: the first adapter of that target that can run here. */
export function defaultBackend(target: string): string {
  const adapters = ADAPTERS.filter((a) => a.target === target);
  return (adapters.find((a) => !a.unavailable()) ?? adapters[0]).name;
}

/** The target whose artifacts a backend (an adapter's name) runs. */
export function findAdapterTarget(backend: string): string {
  return findAdapter(backend).target;
}

export interface LoadOptions extends BindOptions {
  /** The adapter to run on (js, webgpu, cuda, cuda-emu); default: the artifact target's first that runs here. */
  backend?: string;
}

/**
 * Loads an artifact (compiled in memory, or a directory) with its weights on a backend;
 * `session.run(inputs)` runs it. The weights bind to the artifact's params by the rules of
 * readWeights (strict; prefix, rename and allowUnused as options; float dtypes converted).
 */
export async function loadSession(artifact: Artifact | string, weights: TensorMap, options: LoadOptions = {}): Promise<Session> {
  // A directory is verified and its checked bytes are what runs.
  const files = typeof artifact === "string" ? readArtifact(artifact).artifact : artifact;
  const { target, manifest } = files;
  const adapter = findAdapter(options.backend ?? defaultBackend(target));
  if (adapter.target !== target) throw new Diagnostic(`${typeof artifact === "string" ? artifact : "the artifact"} is a ${target} artifact; backend ${adapter.name} runs ${adapter.target} artifacts`);
  return adapter.load(files, bindParams({ name: manifest.model, params: manifest.params }, weights, options));
}

export interface RunOptions extends CompileModelOptions {
  /** interp (the reference interpreter, default) or an adapter's name: the graph is compiled in memory for its target. */
  backend?: string;
  /** Sizes of dims the inputs do not bind. */
  dims?: ReadonlyMap<string, number>;
}

/** Runs a graph on a backend: the interpreter, or compiled in memory (after the passes) for an adapter. */
export async function runModel(graph: Graph, inputs: TensorMap, weights: TensorMap, options: RunOptions = {}): Promise<Map<string, HostTensor>> {
  const backend = options.backend ?? "interp";
  if (backend === "interp") return evaluate(options.passes === undefined ? graph : optimize(graph, options.passes, options), inputs, weights, { dims: options.dims });
  const adapter = findAdapter(backend);
  // The interpreter's input checks, with their clear messages, before the artifact's own.
  bindDims(graph, inputs, options.dims);
  const session = await adapter.load(compile(graph, { ...options, target: adapter.target }), weights);
  return session.run(inputs);
}
