// Low-bit attention (DESIGN.md §4; Diff Transformer §3.8): the fused attention kernels
// flash_attention and flash_diffattn become qflash_attention and qflash_diffattn, which quantise
// the scaled logits or the probability maps (and optionally V) inside the kernel and may skip key
// blocks whose probabilities all fall under a threshold. What that computes is stated once, in
// compiler/ir/ops/attention-quant.ts; this pass only chooses it, from --quant.
import { Diagnostic } from "../../common/diagnostic.ts";
import type { Attrs } from "../ir/graph.ts";
import { checkQuant, QUANT_ATTRS } from "../ir/ops/attention-quant.ts";
import { type AttrSpec, OpError } from "../ir/registry.ts";
import { type Pass, type PassOptions, rebuild } from "./pass.ts";

/** The quantised op of each fused attention op. */
const QUANTISED_OP: Record<string, string> = { flash_attention: "qflash_attention", flash_diffattn: "qflash_diffattn", qflash_attention: "qflash_attention", qflash_diffattn: "qflash_diffattn" };

/** The flag's keys and the attribute each sets (v: V's bits; block: the kernel's keys per block, which the block granularity and the skip rule read). */
const KEYS: Record<string, string> = { target: "quant", bits: "bits", granularity: "granularity", threshold: "threshold", v: "v_bits", block: "block" };

/** What each attribute takes: the qflash ops' own, and the flash ops' block. */
const SPECS: Record<string, AttrSpec> = { ...QUANT_ATTRS, block: { type: "int" } };

/** The attributes the pass sets without --quant: the paper's experiment at 8 bits, one scale per row. */
export const DEFAULT_QUANT: Attrs = { ...Object.fromEntries(Object.entries(QUANT_ATTRS).map(([k, spec]) => [k, spec.default])), quant: "logits" };

/**
 * --quant's text, `target=logits|probs|none,bits=8|6|4,granularity=row|block,threshold=T,v=0|8,block=B`
 * (any subset, in any order; the rest as DEFAULT_QUANT, block as the fused op has it), as the
 * qflash ops' attributes.
 */
export function parseQuantFlag(text: string): Attrs {
  const attrs: Attrs = { ...DEFAULT_QUANT };
  for (const item of text.split(",").map((s) => s.trim()).filter(Boolean)) {
    const m = item.match(/^([a-z_]+)=(.+)$/);
    if (!m || !(m[1] in KEYS)) throw new Diagnostic(`--quant: expected KEY=VALUE with KEY one of ${Object.keys(KEYS).join(", ")}, got '${item}'`);
    const attr = KEYS[m[1]];
    const spec = SPECS[attr];
    if (spec.oneOf) {
      if (!spec.oneOf.includes(m[2])) throw new Diagnostic(`--quant: ${m[1]} must be one of ${spec.oneOf.join(", ")}, got '${m[2]}'`);
      attrs[attr] = m[2];
    } else {
      const value = Number(m[2]);
      if (!Number.isFinite(value) || (spec.type === "int" && !Number.isInteger(value))) throw new Diagnostic(`--quant: ${m[1]} must be ${spec.type === "int" ? "an integer" : "a number"}, got '${m[2]}'`);
      attrs[attr] = value;
    }
  }
  if (attrs.block !== undefined && !((attrs.block as number) >= 1)) throw new Diagnostic(`--quant: block must be a positive number of keys, got ${attrs.block}`);
  try {
    checkQuant("--quant", { block: 1, ...attrs });
  } catch (e) {
    if (e instanceof OpError) throw new Diagnostic(e.message.replace("v_bits", "v"));
    throw e;
  }
  return attrs;
}

export const quantizeAttentionPass: Pass = {
  name: "quantize-attention",
  description: "flash_attention/flash_diffattn -> qflash_*: logits or probability maps (and V) to low-bit integers inside the kernel, key blocks under a threshold skipped (--quant)",
  runsAfter: {
    "fuse-dual-softmax": "it quantises the flash_diffattn kernels that fuse-dual-softmax makes",
    "fuse-attention": "it quantises the flash_attention kernels that fuse-attention makes",
  },
  run: (graph, options: PassOptions = {}) => {
    const quant = options.quant ?? DEFAULT_QUANT;
    return rebuild(graph, (node, r) => {
      if (node.op === "attention" || node.op === "diffattn")
        throw new Diagnostic(`quantize-attention quantises fused attention kernels, and this ${node.op} is not fused: run fuse-dual-softmax and fuse-attention before it (as 'default' does)`, node.span);
      const op = QUANTISED_OP[node.op];
      if (!op) return r.copy(node);
      return r.add(op, node.operands.map((o) => r.value(o)), { ...node.attrs, ...quant });
    });
  },
};
