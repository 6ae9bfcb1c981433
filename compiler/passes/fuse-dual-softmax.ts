// Dual-softmax fusion: differential attention becomes `flash_diffattn`, one kernel that streams
// over key blocks with two online-softmax states, reads each K and V tile once for both maps
// and never materialises an N×N map. A following per-head RMSNorm and scale (the official
// code's `subln(attn) * (1 - lambda_init)`) become its epilogue. Differential attention written
// by hand with primitives is recognised first (recognize-attention.ts); its heads are batch
// dims, so its result is reshaped from [..., N, 1, 2d] to [..., N, 2d], and the norm reads that
// view.
import type { Graph, Node } from "../ir/graph.ts";
import { roundScalar } from "../ir/numeric.ts";
import { sameShape } from "../ir/types.ts";
import { type Pass, rebuild } from "./pass.ts";
import { recognizeDiffattn } from "./recognize-attention.ts";
import { count } from "./statistics.ts";
import { uses } from "./uses.ts";

interface Fusion {
  attn: Node;
  /** A reshape that only drops the unit heads axis, between attn and the norm. */
  view?: Node;
  norm?: Node;
  scale?: { node: Node; value: number };
}

/** Whether `node` reshapes [..., N, 1, dv] to [..., N, dv]: the same rows, per head. */
function dropsUnitHeads(node: Node | undefined, attn: Node): node is Node {
  const from = attn.type.shape;
  const to = node?.type.shape;
  return node?.op === "reshape" && to !== undefined && from[from.length - 2] === 1 && sameShape(to, [...from.slice(0, -2), from[from.length - 1]]);
}

/** The last node a fusion absorbs: the value its result stands for. */
const lastOf = (f: Fusion) => f.scale?.node ?? f.norm ?? f.attn;

/** The epilogue nodes a diffattn can absorb: a sole-reader rmsnorm, then a sole-reader scale. */
function planFusions(graph: Graph): Map<number, Fusion> {
  const u = uses(graph);
  const byLast = new Map<number, Fusion>();
  for (const attn of graph.nodes) {
    if (attn.op !== "diffattn") continue;
    const fusion: Fusion = { attn };
    const reader = u.soleReader(attn.id);
    const view = dropsUnitHeads(reader, attn) ? reader : undefined;
    const input = view ?? attn;
    const norm = u.soleReader(input.id);
    if (norm?.op === "rmsnorm" && norm.operands[0] === input.id) {
      fusion.view = view;
      fusion.norm = norm;
      const mul = u.soleReader(norm.id);
      const other = mul?.op === "mul" ? graph.nodes[mul.operands[mul.operands[0] === norm.id ? 1 : 0]] : undefined;
      if (mul && other?.op === "const" && other.type.dtype === attn.type.dtype) fusion.scale = { node: mul, value: roundScalar(other.type.dtype, other.attrs.value as number) };
    }
    byLast.set(lastOf(fusion).id, fusion);
  }
  return byLast;
}

export function fuseDualSoftmax(input: Graph): Graph {
  const graph = recognizeDiffattn(input);
  const fusions = planFusions(graph);
  const absorbed = new Set<number>();
  for (const f of fusions.values()) for (const n of [f.attn, f.view, f.norm]) if (n && n.id !== lastOf(f).id) absorbed.add(n.id);
  return rebuild(graph, (node, r) => {
    // Absorbed nodes are emitted as part of the fused node at the last of them, where every
    // operand (the norm weight too) is defined.
    if (absorbed.has(node.id)) return -1;
    const f = fusions.get(node.id);
    if (!f) return r.copy(node);
    const operands = f.attn.operands.map((o) => r.value(o));
    count("diffattn -> flash_diffattn");
    if (f.norm) count("rmsnorm fused as its epilogue");
    if (f.scale) count("scale fused as its epilogue");
    const attrs = { ...f.attn.attrs, out_scale: f.scale?.value ?? 1 };
    if (!f.norm) return r.add("flash_diffattn", operands, attrs);
    const fused = r.add("flash_diffattn", [...operands, r.value(f.norm.operands[1])], { ...attrs, norm_eps: f.norm.attrs.eps });
    return f.view ? r.add("reshape", [fused], { shape: node.type.shape }) : fused;
  });
}

export const fuseDualSoftmaxPass: Pass = {
  name: "fuse-dual-softmax",
  description: "diffattn, or the same written by hand (+ per-head rmsnorm and scale) -> flash_diffattn: two online softmaxes, no N×N map",
  run: fuseDualSoftmax,
  runsBefore: {
    decompose: "decompose expands diffattn and the rmsnorm its kernel takes as an epilogue; recognised again by hand, the kernel has its heads as batch dims and no fused norm",
  },
};
