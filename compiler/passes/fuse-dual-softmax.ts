// Dual-softmax fusion: differential attention becomes `flash_diffattn`, one kernel that streams
// over key blocks with two online-softmax states, reads each K and V tile once for both maps
// and never materialises an N×N map. A following per-head RMSNorm and scale (the official
// code's `subln(attn) * (1 - lambda_init)`) become its epilogue. Differential attention written
// by hand with primitives is recognised first (recognize-attention.ts).
import type { Graph, Node } from "../ir/graph.ts";
import { roundScalar } from "../ir/numeric.ts";
import { type Pass, rebuild } from "./pass.ts";
import { recognizeDiffattn } from "./recognize-attention.ts";
import { uses } from "./uses.ts";

interface Fusion {
  attn: Node;
  norm?: Node;
  scale?: { node: Node; value: number };
}

/** The epilogue nodes a diffattn can absorb: a sole-reader rmsnorm, then a sole-reader scale. */
function planFusions(graph: Graph): Map<number, Fusion> {
  const u = uses(graph);
  const byLast = new Map<number, Fusion>();
  for (const attn of graph.nodes) {
    if (attn.op !== "diffattn") continue;
    const fusion: Fusion = { attn };
    const norm = u.soleReader(attn.id);
    if (norm?.op === "rmsnorm" && norm.operands[0] === attn.id) {
      fusion.norm = norm;
      const mul = u.soleReader(norm.id);
      const other = mul?.op === "mul" ? graph.nodes[mul.operands[mul.operands[0] === norm.id ? 1 : 0]] : undefined;
      if (mul && other?.op === "const" && other.type.dtype === attn.type.dtype) fusion.scale = { node: mul, value: roundScalar(other.type.dtype, other.attrs.value as number) };
    }
    byLast.set((fusion.scale?.node ?? fusion.norm ?? attn).id, fusion);
  }
  return byLast;
}

export function fuseDualSoftmax(input: Graph): Graph {
  const graph = recognizeDiffattn(input);
  const fusions = planFusions(graph);
  const absorbed = new Set<number>();
  for (const f of fusions.values()) for (const n of [f.attn, f.norm]) if (n && n.id !== (f.scale?.node ?? f.norm ?? f.attn).id) absorbed.add(n.id);
  return rebuild(graph, (node, r) => {
    // Absorbed nodes are emitted as part of the fused node at the last of them, where every
    // operand (the norm weight too) is defined.
    if (absorbed.has(node.id)) return -1;
    const f = fusions.get(node.id);
    if (!f) return r.copy(node);
    const operands = f.attn.operands.map((o) => r.value(o));
    const attrs = { ...f.attn.attrs, out_scale: f.scale?.value ?? 1 };
    if (!f.norm) return r.add("flash_diffattn", operands, attrs);
    return r.add("flash_diffattn", [...operands, r.value(f.norm.operands[1])], { ...attrs, norm_eps: f.norm.attrs.eps });
  });
}

export const fuseDualSoftmaxPass: Pass = {
  name: "fuse-dual-softmax",
  description: "diffattn, or the same written by hand (+ per-head rmsnorm and scale) -> flash_diffattn: two online softmaxes, no N×N map",
  run: fuseDualSoftmax,
};
