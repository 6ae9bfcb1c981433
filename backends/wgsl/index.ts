// The WGSL backend: a kernel plan becomes one .wgsl file per kernel (printed from the shared
// lowering by the WGSL language table) and a self-contained ES module, model.js, that loads
// the weights onto a GPUDevice, creates every pipeline once and dispatches the kernels: in a
// browser, or in Node through the `webgpu` package (Dawn).
import { readFileSync } from "node:fs";
import type { Graph } from "../../compiler/ir/graph.ts";
import { printGraph } from "../../compiler/ir/print.ts";
import { decompose } from "../../compiler/passes/decompose.ts";
import { schedule } from "../../compiler/schedule/index.ts";
import type { Artifact } from "../common/artifact.ts";
import { renderHelpers, renderKernel } from "../common/kernel/render.ts";
import { loweredOps, lowerGpuKernel } from "../common/lower/index.ts";
import { buildManifest } from "../common/manifest.ts";
import { type CompileOptions, naturalStorage, precisionOf, storageBytes, type Target } from "../common/target.ts";
import { emitTypings } from "../common/typings.ts";
import { ARTIFACT_RUNTIME } from "../common/template/index.ts";
import { flashAttentionKernel } from "./attention.ts";
import { integerProducts } from "./attention-quant.ts";
import { attentionQuant } from "../../compiler/ir/ops/attention-quant.ts";
import { type Combining, WGSL_PRELUDE, WGSL_WORKGROUP_SIZE, wgslLanguage, wgslLanguageFor } from "./language.ts";

const LOADER = [
  ARTIFACT_RUNTIME,
  readFileSync(new URL("./template/loader.js", import.meta.url), "utf8"),
].join("\n");

/** Ops with hand-written WGSL kernels (attention.ts), used instead of decomposing them. */
const TEMPLATES = ["flash_attention", "flash_diffattn", "qflash_attention", "qflash_diffattn"];

/** The WGSL language feature the quantised kernels' packed integer dot products need (navigator.gpu.wgslLanguageFeatures). */
const PACKED_DOT = "packed_4x8_integer_dot_product";

/** The ops the WGSL backend runs directly: the shared lowering's and the templates' (the rest are decomposed). */
export function wgslOps(): Set<string> {
  return new Set([...loweredOps(), ...TEMPLATES]);
}

/** A whole WGSL module: the kernel's directives (`enable ...;`, `requires ...;`) first, then the prelude and helpers. */
function shader(source: string, helpers: Set<string>): string {
  const directives = source.match(/^((enable|requires) [^;]*;\n)*/)![0];
  return directives + [WGSL_PRELUDE, ...renderHelpers(helpers, wgslLanguage), source.slice(directives.length)].join("\n\n") + "\n";
}

/**
 * A cooperative kernel's variants by how it merges (language.ts), the most demanding first, with
 * what each requires: device features, and `subgroup-min-size-N` (the loader reads the adapter's
 * subgroupMinSize). A workgroup that is one subgroup suits a GPU with 32-wide subgroups and,
 * 8 wide, a CPU driver (lavapipe); the others merge across subgroups through workgroup memory.
 */
const COMBINING: [Combining, string[]][] = [
  [{ oneSubgroup: 32 }, ["subgroups", "subgroup-min-size-32"]],
  [{ oneSubgroup: 8 }, ["subgroups", "subgroup-min-size-8"]],
  ["subgroups", ["subgroups"]],
  ["tree", []],
];

export function compileWgsl(graph: Graph, options: CompileOptions = {}): Artifact {
  const plan = schedule(decompose(graph, wgslOps()), storageBytes(wgslTarget));
  // Each .wgsl file is a whole module: its directives, the prelude, the helpers its kernel calls,
  // the kernel. A kernel may come in variants for device features, the most demanding first; the
  // loader runs the first one the device has every feature of (the last needs none).
  const cooperation = { workgroupSize: WGSL_WORKGROUP_SIZE, reductions: options.reductions };
  const emitted = plan.kernels.map((pk) => {
    const node = pk.nodes[pk.nodes.length - 1];
    const kernel = TEMPLATES.includes(node.op) ? undefined : lowerGpuKernel(plan, pk, cooperation);
    const f16Buffers = kernel ? kernel.buffers.some((b) => b.dtype === "f16") : [node, ...node.operands.map((o) => plan.graph.nodes[o])].some((n) => n.type.dtype === "f16");
    const variants = (f16Buffers ? [true, false] : [false]).flatMap((f16) => {
      const language = f16 ? wgslLanguageFor({ f16 }) : wgslLanguage;
      const requires = f16 ? ["shader-f16"] : [];
      if (kernel) {
        // A cooperative kernel merges through subgroup operations where the device has them (language.ts, Combining).
        return (kernel.workgroupSize ? COMBINING : COMBINING.slice(-1)).map(([combine, needs]) => {
          const { source, helpers } = renderKernel(kernel, combine === "tree" ? language : wgslLanguageFor({ f16, combine }));
          return { kernel, requires: [...needs, ...requires], code: shader(source, helpers) };
        });
      }
      // Requirements: device features, `subgroup-min-size-8`, which the loader reads from the
      // adapter's info, and WGSL language features. A quantised kernel reads no shared tiles; its
      // integer products, where it has them, come packed or as vec4<i32> dots.
      const quant = node.op.startsWith("qflash_") ? attentionQuant(node.attrs) : undefined;
      const ways: { sharing: 1 | 4 | 8; packedDot?: boolean; needs: string[] }[] = !quant
        ? [{ sharing: 8, needs: ["subgroups", "subgroup-min-size-8"] }, { sharing: 4, needs: ["subgroups"] }, { sharing: 1, needs: [] }]
        : integerProducts(quant)
          ? [{ sharing: 1, packedDot: true, needs: [PACKED_DOT] }, { sharing: 1, needs: [] }]
          : [{ sharing: 1, needs: [] }];
      return ways.map(({ sharing, packedDot, needs }) => {
        const helpers = new Set<string>();
        const types = node.operands.map((o) => plan.graph.nodes[o].type);
        const made = flashAttentionKernel(pk.name, node, types, (h) => helpers.add(h), { sharing, language, packedDot });
        return { kernel: made.kernel, requires: [...needs, ...requires], code: shader(made.source, helpers) };
      });
    });
    // The most demanding variant first: the loader takes the first one the device can run.
    variants.sort((a, b) => b.requires.length - a.requires.length);
    return { kernel: variants[0].kernel, variants: variants.map(({ requires, code }) => ({ requires, code })) };
  });
  const kernels = emitted.map((e) => e.kernel);
  const shaders = emitted.map((e) => e.variants);
  const manifest = buildManifest(plan, "wgsl", { passes: options.passes ?? [], precision: precisionOf(wgslTarget, options) }, kernels.map((k) => ({ dims: k.dims, grid: k.grid, workgroup: [WGSL_WORKGROUP_SIZE], errors: k.errors })));
  const module = [
    `// Generated by ${manifest.compiler} for model ${JSON.stringify(manifest.model)}. Do not edit.`,
    "// Self-contained: this module imports nothing. It needs a WebGPU device (navigator.gpu, or load(weights, { device })).",
    `const MANIFEST = ${JSON.stringify(manifest)};`,
    `const SHADERS = ${JSON.stringify(shaders)};`,
    `const WORKGROUP_SIZE = ${WGSL_WORKGROUP_SIZE};`,
    LOADER,
  ].join("\n\n");
  return {
    target: "wgsl",
    manifest,
    files: new Map<string, string>([
      ["manifest.json", `${JSON.stringify(manifest, null, 2)}\n`],
      ...emitted.flatMap(({ kernel, variants }) => variants.map((v): [string, string] => [[kernel.name, ...v.requires, "wgsl"].join("."), v.code])),
      ["model.js", module],
      ["model.d.ts", emitTypings(manifest, { sync: false, deviceOption: true })],
      ["graph.ir", printGraph(graph)],
    ]),
  };
}

export const wgslTarget: Target = {
  name: "wgsl",
  description: "WGSL compute shaders (one .wgsl per kernel) and a WebGPU loader module (model.js, model.d.ts); runs in browsers and in Node through Dawn",
  ops: wgslOps,
  // Natural byte widths: 8- and 16-bit types are packed into u32 words, a buffer rounded up to a word.
  storage: naturalStorage({ f32: "f32", f16: "u32 (2 packed)", bf16: "u32 (2 packed)", i32: "i32", i8: "u32 (4 packed)", u8: "u32 (4 packed)", bool: "u32 (4 packed)" }),
  language: wgslLanguage,
  templates: TEMPLATES,
  compile: compileWgsl,
  // WGSL has no f64: every op computes in f32 (the interpreter in float64, rounded once), sums
  // and softmax denominators accumulate in f32, erf is a series in f32.
  precisions: { f32: { exactSingleOps: false, toleranceFactor: 16 } },
};
