// The JS backend: a kernel plan becomes a self-contained ES module (model.js), its typings
// (model.d.ts) and manifest.json. Kernels come from the shared lowering, compiled to
// WebAssembly in f32 (wasm-kernel.ts) or printed by the JS language table, except those with
// a hand-tuned template: the packed matmul (with fused epilogues) and the streaming attention
// kernels.
import { readFileSync } from "node:fs";
import type { Graph, Node } from "../../compiler/ir/graph.ts";
import { fusedBody } from "../../compiler/ir/ops/fused.ts";
import { printGraph } from "../../compiler/ir/print.ts";
import type { TensorType } from "../../compiler/ir/types.ts";
import { decompose } from "../../compiler/passes/decompose.ts";
import { type KernelPlan, schedule } from "../../compiler/schedule/index.ts";
import { type CompileOptions, naturalStorage, type Precision, precisionOf, storageBytes, type Target } from "../common/target.ts";
import type { Artifact } from "../common/artifact.ts";
import { helperFunction } from "../common/kernel/helpers.ts";
import { dimParam, ERRORS_PARAM, type Kernel } from "../common/kernel/ir.ts";
import { renderHelpers, renderKernel } from "../common/kernel/render.ts";
import { fusedEpilogue } from "../common/lower/fused.ts";
import { loweredOps, lowerKernel, lowers } from "../common/lower/index.ts";
import { buildManifest, type KernelLaunch } from "../common/manifest.ts";
import { attentionHelperSource, flashAttention } from "./attention.ts";
import { JS_PRELUDE, jsLanguage } from "./language.ts";
import { matmulHelperSource, packedMatmul } from "./matmul.ts";
import { type WasmKernel, wasmKernel } from "./wasm-kernel.ts";
import { wasmModule } from "./wasm-encoder.ts";
import { templateSource, WASM_INSTANCE } from "./template/source.ts";
import { ARRAY_TYPE, emitTypings } from "../common/typings.ts";
import { KernelWriter } from "./writer.ts";
import { ARTIFACT_RUNTIME } from "../common/template/index.ts";

const RUNTIME = [
  ARTIFACT_RUNTIME,
  readFileSync(new URL("./template/runtime.js", import.meta.url), "utf8"),
].join("\n");

/** A template writes `node`'s kernel from its operands' types and nodes (a param is the same array on every run). */
type Template = (w: KernelWriter, node: Node, types: TensorType[], precision: Precision, operands: Node[]) => void;

/** Hand-tuned kernels, by op; `applies` says whether a node of that op takes the template. */
const TEMPLATES: Record<string, { applies(node: Node): boolean; write: Template }> = {
  matmul: { applies: () => true, write: (w, node, types, precision, operands) => packedMatmul(w, node, types, precision, { bIsParam: operands[1].op === "param" }) },
  fused: {
    applies: (node) => fusedBody(node.attrs).kind === "epilogue",
    write: (w, node, types, precision, operands) => {
      const { matmul, inputs, operands: [, b], operandTypes, epilogue } = fusedEpilogue(node, types);
      packedMatmul(w, matmul, operandTypes, precision, { inputs, epilogue, bIsParam: operands[b].op === "param" });
    },
  },
  flash_attention: { applies: () => true, write: flashAttention },
  flash_diffattn: { applies: () => true, write: flashAttention },
  qflash_attention: { applies: () => true, write: flashAttention },
  qflash_diffattn: { applies: () => true, write: flashAttention },
};

type JsOptions = Pick<CompileOptions, "sharedLowering" | "precision">;

/** The ops the JS backend runs directly: what the shared lowering handles, and the templates' ops. */
export function jsOps(): Set<string> {
  return new Set([...loweredOps(), ...Object.keys(TEMPLATES)]);
}

/** The loader of the compiled kernels' module, as the artifact carries it. */
const WASM_KERNEL_LOADER = templateSource("wasm-kernels.js");

/**
 * One kernel's function source, its launch facts, and the helpers it calls. In f32, a kernel
 * of the shared lowering that the wasm compiler translates joins `compiled` and its function
 * calls it there.
 */
function emitKernel(plan: KernelPlan, index: number, options: JsOptions & { precision: Precision }, helpers: Set<string>, compiled: WasmKernel[]): { source: string; launch: KernelLaunch } {
  const kernel = plan.kernels[index];
  const node = kernel.nodes[kernel.nodes.length - 1];
  const template = options.sharedLowering && lowers(node.op) ? undefined : TEMPLATES[node.op];
  /** Kernel IR compiled into the artifact's wasm module (f32 only); undefined where it stays JS. */
  const compile = (k: Kernel) => {
    const wasm = options.precision === "f32" ? wasmKernel(k) : undefined;
    if (wasm) compiled.push(wasm);
    return wasm;
  };
  if (template?.applies(node)) {
    const w = new KernelWriter(helpers, kernel.name, options.precision === "f32" ? (k) => compile(k) !== undefined : undefined);
    const operands = node.operands.map((o) => plan.graph.nodes[o]);
    template.write(w, node, operands.map((o) => o.type), options.precision, operands);
    const source = w.finish(kernel.name, ["out", ...node.operands.map((_, i) => `in${i}`)]);
    return { source, launch: { dims: w.dims, grid: kernel.grid, errors: [], ...(w.splitWork ? { split: true, work: w.splitWork } : {}) } };
  }
  const lowered = lowerKernel(plan, kernel);
  const launch = { dims: lowered.dims, grid: lowered.grid, errors: lowered.errors };
  const wasm = compile(lowered);
  if (wasm) {
    const buffers = lowered.buffers.map((b) => b.name);
    const signature = [...buffers, ...lowered.dims.map((_, i) => dimParam(i)), ...(lowered.errors.length ? [ERRORS_PARAM] : [])];
    // The buffers that are params (in<i> is operand i): copied into wasm memory once per session.
    const params = node.operands.flatMap((o, i) => (plan.graph.nodes[o].op === "param" ? [i + 1] : []));
    const call = `wasmKernels.call(${JSON.stringify(lowered.name)}, ${wasm.readsOut}, [${buffers.join(", ")}], [${lowered.dims.map((_, i) => dimParam(i)).join(", ")}], ${lowered.errors.length ? ERRORS_PARAM : "null"}, [${params.join(", ")}]);`;
    return { source: `function ${lowered.name}(${signature.join(", ")}) {\n  ${call}\n}`, launch };
  }
  const { source, helpers: used } = renderKernel(lowered, jsLanguage);
  used.forEach((h) => helpers.add(h));
  return { source, launch };
}

export function compileJs(graph: Graph, passes: string[] = [], options: JsOptions = {}): Artifact {
  // Ops without a JS kernel run as their decomposition into primitives.
  const plan = schedule(decompose(graph, jsOps()), storageBytes(jsTarget));
  const helpers = new Set<string>();
  const precision = precisionOf(jsTarget, options);
  const compiled: WasmKernel[] = [];
  const kernels = plan.kernels.map((_, i) => emitKernel(plan, i, { ...options, precision }, helpers, compiled));
  const manifest = buildManifest(plan, "js", { passes, precision }, kernels.map((k) => k.launch));
  const library = [...helpers].filter((h) => helperFunction(h));
  // The attention modules (attentionSimd_<widths>) are instances of the attentionSimd loader.
  const templateHelpers = [...helpers].filter((h) => !helperFunction(h)).flatMap((h) => (h.startsWith("attentionSimd_") ? ["attentionSimd", h] : [h]));
  templateHelpers.splice(0, templateHelpers.length, ...[...new Set(templateHelpers)].sort());
  // The kernels and all they call are one function's body, so that worker threads can run its
  // source (Function.prototype.toString gives it back exactly) and hold kernels of their own.
  const loaders = [...templateHelpers.map((h) => attentionHelperSource(h) ?? matmulHelperSource(h) ?? failNoHelper(h)), ...wasmKernelsSource(compiled)];
  const program = [JS_PRELUDE, ...renderHelpers(library, jsLanguage), ...(loaders.length ? [WASM_INSTANCE] : []), ...loaders, ...kernels.map((k) => k.source)];
  const source = [
    `// Generated by ${manifest.compiler} for model ${JSON.stringify(manifest.model)}. Do not edit.`,
    "// Self-contained: this module imports nothing (but node:worker_threads, in Node, when a session runs threads).",
    `const MANIFEST = ${JSON.stringify(manifest)};`,
    "/** The kernels, in launch order, with what they call. */",
    `function kernelProgram() {\n${program.join("\n\n")}\n\nreturn [${plan.kernels.map((k) => k.name).join(", ")}];\n}`,
    "const KERNELS = kernelProgram();",
    RUNTIME,
  ].join("\n\n");
  return {
    target: "js",
    manifest,
    files: new Map([
      ["manifest.json", `${JSON.stringify(manifest, null, 2)}\n`],
      ["model.js", source],
      ["model.d.ts", emitTypings(manifest, { sync: true, threads: true })],
      // The graph the artifact was compiled from, for tools (random inputs, the interpreter).
      ["graph.ir", printGraph(graph)],
    ]),
  };
}

/** The loader and the module of the compiled kernels, if any. */
function wasmKernelsSource(compiled: WasmKernel[]): string[] {
  if (!compiled.length) return [];
  const bytes = wasmModule(compiled.map((k) => [k.name, k.body]));
  return [WASM_KERNEL_LOADER, `const wasmKernels = wasmKernelModule(new Uint8Array([${bytes.join(",")}]));`];
}

function failNoHelper(name: string): never {
  throw new Error(`the JS backend has no helper ${name}`);
}

export const jsTarget: Target = {
  name: "js",
  description: "a self-contained ES module (model.js) with typings (model.d.ts); runs in Node and browsers",
  ops: jsOps,
  storage: naturalStorage(ARRAY_TYPE),
  language: jsLanguage,
  templates: Object.keys(TEMPLATES),
  compile: (graph, options = {}) => compileJs(graph, options.passes, options),
  precisions: {
    // The wasm kernels (attention, matmul, and the shared lowering's kernels compiled by
    // wasm-kernel.ts) compute in float32 lanes, summing in their own order and with their own
    // exp, log, tanh... as the WebGPU and CUDA kernels do (their factor, 16); a kernel the
    // compiler cannot translate computes in float64, closer still.
    f32: { exactSingleOps: false, toleranceFactor: 16 },
    // Float64 arithmetic rounded where the interpreter rounds: single ops match bit for bit.
    f64: { exactSingleOps: true, toleranceFactor: 1 },
  },
};
