// The CUDA C backend: a kernel plan becomes kernels.cu (the kernels, printed from the shared
// lowering by the CUDA language table, and the C API over the model's tables), the C header
// difftc_model.h, a standalone runner over safetensors files and a Makefile. The same source
// builds with nvcc for a GPU, and with g++ against the CPU emulation header (difftc_cuda.h
// picks one), so it runs and is tested on machines without a GPU.
import { readFileSync } from "node:fs";
import { Diagnostic } from "../../common/diagnostic.ts";
import type { Graph } from "../../compiler/ir/graph.ts";
import { printGraph } from "../../compiler/ir/print.ts";
import { decompose } from "../../compiler/passes/decompose.ts";
import { type KernelPlan, schedule } from "../../compiler/schedule/index.ts";
import type { Manifest, TensorSpec } from "../../common/manifest.ts";
import type { Monomial } from "../../common/size.ts";
import type { Artifact } from "../common/artifact.ts";
import { renderHelpers, renderKernel } from "../common/kernel/render.ts";
import { loweredOps, lowerGpuKernel } from "../common/lower/index.ts";
import type { Cooperation } from "../common/lower/cooperative.ts";
import { buildManifest } from "../common/manifest.ts";
import { type CompileOptions, naturalStorage, precisionOf, storageBytes, type Target } from "../common/target.ts";
import { CUDA_BLOCK, CUDA_PRELUDE, CUDA_STORAGE, cudaLanguage } from "./language.ts";
import type { BufferParam, KernelError } from "../common/kernel/ir.ts";
import { flashAttentionKernel } from "./attention.ts";

const template = (name: string) => readFileSync(new URL(`./template/${name}`, import.meta.url), "utf8");
const runtimeFile = (name: string) => readFileSync(new URL(`./runtime/${name}`, import.meta.url), "utf8");

/** DIFFTC_MAX_OUTPUTS of difftc_model.h: callers size their output arrays by it. */
const MAX_OUTPUTS = 64;

const DTYPE_ENUM = ["f32", "f16", "bf16", "i32", "i8", "u8", "bool"];

/** Ops with hand-written CUDA kernels (attention.ts), used instead of decomposing them. */
const TEMPLATES = ["flash_attention", "flash_diffattn", "qflash_attention", "qflash_diffattn"];

/** The ops the CUDA backend runs directly: the shared lowering's and the templates' (the rest are decomposed). */
export function cudaOps(): Set<string> {
  return new Set([...loweredOps(), ...TEMPLATES]);
}

/** One kernel of the artifact: its source, parameters and launch. */
interface CudaKernel {
  name: string;
  source: string;
  buffers: BufferParam[];
  dims: string[];
  grid: Monomial[];
  workgroup: number[];
  errors: KernelError[];
  /** Blocks to launch, as C over the session's dims; by default enough for a grid-stride loop over grid[0]. */
  blocks?(dim: (name: string) => string): string;
}

function emitKernel(plan: KernelPlan, index: number, helpers: Set<string>, cooperation: Cooperation): CudaKernel {
  const pk = plan.kernels[index];
  const node = pk.nodes[pk.nodes.length - 1];
  if (TEMPLATES.includes(node.op)) {
    const t = flashAttentionKernel(pk.name, node, node.operands.map((o) => plan.graph.nodes[o].type), (h) => helpers.add(h));
    return { name: pk.name, errors: [], ...t };
  }
  const k = lowerGpuKernel(plan, pk, cooperation);
  const r = renderKernel(k, cudaLanguage);
  r.helpers.forEach((h) => helpers.add(h));
  return { name: k.name, source: r.source, buffers: k.buffers, dims: k.dims, grid: k.grid, workgroup: [CUDA_BLOCK], errors: k.errors };
}

/** A C string literal (names come from model files). */
const cString = (s: string) => JSON.stringify(s).replace(/\?/g, "\\?");

function sizeExpr(m: Monomial, dims: readonly string[], at: string): string {
  return [`${m.coefficient}LL`, ...m.symbols.map((s) => `${at}[${dims.indexOf(s)}]`)].join(" * ");
}

function sizeInit(m: Monomial, dims: readonly string[]): string {
  if (m.symbols.length > 8) throw new Error(`a size with more than 8 dims: ${m.symbols.join("*")}`);
  return `{${m.coefficient}LL, ${m.symbols.length}, {${m.symbols.map((s) => dims.indexOf(s)).join(", ")}}}`;
}

function specs(name: string, list: readonly TensorSpec[], dims: readonly string[]): string {
  const rows = list.map((t) => `  {${cString(t.name)}, ${DTYPE_ENUM.indexOf(t.dtype)}, ${t.shape.length}, {${t.shape.map((d) => (typeof d === "number" ? `${d}` : `${-1 - dims.indexOf(d)}`)).join(", ")}}, ${t.buffer}},`);
  return `static const dt_spec ${name}[] = {\n${rows.join("\n")}\n  {NULL, 0, 0, {0}, -1}};`;
}

/** A const's stored value as a C initialiser of its storage type. */
function constValue(encoded: number | string): string {
  const v = Number(encoded);
  if (Number.isNaN(v)) return "NAN";
  if (v === Infinity) return "INFINITY";
  if (v === -Infinity) return "-INFINITY";
  return Object.is(v, -0) ? "-0.0" : String(v);
}

/** The model's tables, the consts' upload and one launch function per kernel. */
function hostTables(m: Manifest, kernels: readonly CudaKernel[]): string {
  const dims = m.dims;
  if (dims.length > 16) throw new Diagnostic(`the CUDA target takes at most 16 dims, model ${m.model} has ${dims.length}`);
  if (m.outputs.length > MAX_OUTPUTS) throw new Diagnostic(`the CUDA C API returns at most ${MAX_OUTPUTS} outputs (DIFFTC_MAX_OUTPUTS), model ${m.model} has ${m.outputs.length}`);
  const lines: string[] = [
    `#define DT_MODEL_NAME ${cString(m.model)}`,
    `#define DT_NUM_DIMS ${dims.length}`,
    `#define DT_NUM_INPUTS ${m.inputs.length}`,
    `#define DT_NUM_OUTPUTS ${m.outputs.length}`,
    `#define DT_NUM_PARAMS ${m.params.length}`,
    `#define DT_NUM_BUFFERS ${m.buffers.length}`,
    `#define DT_NUM_SLOTS ${m.slots.length}`,
    `#define DT_NUM_KERNELS ${m.kernels.length}`,
    `static const char *const DT_DIM_NAMES[] = {${[...dims.map(cString), "NULL"].join(", ")}};`,
    specs("DT_INPUTS", m.inputs, dims),
    specs("DT_OUTPUTS", m.outputs, dims),
    specs("DT_PARAMS", m.params, dims),
    `static const dt_buffer DT_BUFFERS[] = {\n${m.buffers.map((b) => `  {DT_${b.kind.toUpperCase()}, ${DTYPE_ENUM.indexOf(b.dtype)}, ${sizeInit(b.size, dims)}, ${b.slot ?? -1}},`).join("\n")}\n  {0, 0, {0, 0, {0}}, -1}};`,
    `static const dt_size DT_SLOTS[] = {\n${m.slots.map((s) => `  ${sizeInit(s.bytes, dims)},`).join("\n")}\n  {0, 0, {0}}};`,
  ];
  // Consts: one element each, uploaded once.
  lines.push("static int dt_upload_consts(difftc_session *s) {");
  for (const b of m.buffers.filter((b) => b.kind === "const")) {
    const type = CUDA_STORAGE[b.dtype];
    lines.push(`  { const ${type} value = (${type})${constValue(b.encoded!)}; DT_CUDA(s, cudaMalloc(&s->device[${b.id}], sizeof value)); DT_CUDA(s, cudaMemcpy(s->device[${b.id}], &value, sizeof value, cudaMemcpyHostToDevice)); }`);
  }
  lines.push("  return DIFFTC_OK;", "}");
  m.kernels.forEach((spec, i) => {
    const k = kernels[i];
    const args = [
      ...spec.buffers.map((b, p) => `(${k.buffers[p].access === "read" ? "const " : ""}${CUDA_STORAGE[k.buffers[p].dtype]} *)s->device[${b}]`),
      ...spec.dims.map((d) => `(int)s->dims[${dims.indexOf(d)}]`),
      ...(spec.errors.length ? ["s->errors"] : []),
    ];
    lines.push(`static int dt_launch_${i}(difftc_session *s) {`);
    const blocks = k.blocks ? k.blocks((d) => `s->dims[${dims.indexOf(d)}]`) : `(${sizeExpr(spec.grid[0], dims, "s->dims")} + ${CUDA_BLOCK - 1}) / ${CUDA_BLOCK}`;
    lines.push(`  const long long blocks = ${blocks};`);
    lines.push("  if (blocks == 0) return DIFFTC_OK;");
    if (spec.errors.length) lines.push("  DT_CUDA(s, cudaMemset(s->errors, 0, 8 * sizeof(int)));");
    lines.push(`  DIFFTC_LAUNCH(${k.name}, dim3(blocks > 65535 ? 65535 : (unsigned)blocks), dim3(${k.workgroup[0]}), 0, ${args.join(", ")});`);
    lines.push("  int status = dt_checked(s);");
    if (spec.errors.length) {
      lines.push("  if (status) return status;", "  int record[8];", "  DT_CUDA(s, cudaMemcpy(record, s->errors, sizeof record, cudaMemcpyDeviceToHost));");
      for (const e of spec.errors) {
        // {0}, {1}: the recorded values, printed as integers.
        const format = e.message.replace(/%/g, "%%").replace(/\{(\d)\}/g, "%d");
        const values = [...e.message.matchAll(/\{(\d)\}/g)].map((x) => `record[${Number(x[1]) + 1}]`);
        lines.push(`  if (record[0] == ${e.code}) return dt_fail(s, DIFFTC_ERROR_KERNEL, ${cString(format)}${values.map((v) => `, ${v}`).join("")});`);
      }
    }
    lines.push("  return status;", "}");
  });
  lines.push(`static int (*const DT_LAUNCHES[])(difftc_session *) = {${[...m.kernels.map((_, i) => `dt_launch_${i}`), "NULL"].join(", ")}};`);
  return lines.join("\n");
}

const MAKEFILE = `# Builds the runner: 'make' with nvcc for sm_80 and sm_90, 'make emu' with g++ and the CPU
# emulation header (no GPU needed). The C API (difftc_model.h) is kernels.cu alone.
NVCC ?= nvcc
CXX ?= g++
ARCH ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90
SOURCES = runner.cu kernels.cu
HEADERS = difftc_model.h difftc_cuda.h difftc_cuda_emu.h difftc_safetensors.h

runner: $(SOURCES) $(HEADERS)
\t$(NVCC) -O3 $(ARCH) -o $@ $(SOURCES)

emu: runner-emu
runner-emu: $(SOURCES) $(HEADERS)
\t$(CXX) -O2 -std=c++17 -pthread -x c++ -o $@ $(SOURCES)

.PHONY: emu
`;

export function compileCuda(graph: Graph, options: CompileOptions = {}): Artifact {
  const plan: KernelPlan = schedule(decompose(graph, cudaOps()), storageBytes(cudaTarget));
  const helpers = new Set<string>();
  const cooperation = { workgroupSize: CUDA_BLOCK, reductions: options.reductions };
  const kernels = plan.kernels.map((_, i) => emitKernel(plan, i, helpers, cooperation));
  const sources = kernels.map((k) => k.source);
  const manifest = buildManifest(plan, "cuda", { passes: options.passes ?? [], precision: precisionOf(cudaTarget, options) }, kernels.map((k) => ({ dims: k.dims, grid: k.grid, workgroup: k.workgroup, errors: k.errors })));
  const kernelsCu = [
    `// Generated by ${manifest.compiler} for model ${JSON.stringify(manifest.model)}. Do not edit.`,
    '#include "difftc_cuda.h"',
    CUDA_PRELUDE,
    ...renderHelpers(helpers, cudaLanguage),
    ...sources,
    template("session-state.cu"),
    hostTables(manifest, kernels),
    template("session-api.cu"),
  ].join("\n\n");
  return {
    target: "cuda",
    manifest,
    files: new Map<string, string>([
      ["manifest.json", `${JSON.stringify(manifest, null, 2)}\n`],
      ["kernels.cu", `${kernelsCu}\n`],
      ["difftc_model.h", template("difftc_model.h")],
      ["runner.cu", template("runner.cu")],
      ["difftc_cuda.h", runtimeFile("difftc_cuda.h")],
      ["difftc_cuda_emu.h", runtimeFile("difftc_cuda_emu.h")],
      ["difftc_safetensors.h", runtimeFile("difftc_safetensors.h")],
      ["Makefile", MAKEFILE],
      ["graph.ir", printGraph(graph)],
    ]),
  };
}

export const cudaTarget: Target = {
  name: "cuda",
  description: "CUDA C (kernels.cu, a C API in difftc_model.h, a safetensors runner, a Makefile); builds with nvcc, or with g++ on the CPU emulation header",
  ops: cudaOps,
  storage: naturalStorage(CUDA_STORAGE),
  language: cudaLanguage,
  templates: TEMPLATES,
  compile: compileCuda,
  // f32 math runs in float where the interpreter computes in float64 and rounds once; the
  // streaming attention kernels sum scores and values in float in another order (warp
  // shuffles, online rescaling), measured at up to 9 times the JS backend's flash tolerance on
  // the op tests (N up to 40, K up to 48): 16 leaves a margin of two.
  precisions: { f32: { exactSingleOps: false, toleranceFactor: 16 } },
};
