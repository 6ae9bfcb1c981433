// Replaces high-level ops (attention, diffattn, rmsnorm, ...) by their decomposition into
// primitives, as the op registry defines it. A backend that implements some high-level ops
// directly asks to keep them. As a pass it keeps what the fusion passes made (the flash
// kernels, fused elementwise kernels): in a pipeline it runs after them, and undoing their
// work is never what it is there for.
import { Diagnostic } from "../../common/diagnostic.ts";
import type { Graph } from "../ir/graph.ts";
import { getOp } from "../ir/registry.ts";
import { type Pass, rebuild } from "./pass.ts";
import { count } from "./statistics.ts";

export function decompose(graph: Graph, keep: ReadonlySet<string> = new Set()): Graph {
  // A fused op with no decomposition (the quantised attention) runs only where a target keeps it.
  for (const node of graph.nodes)
    if (FUSED_OPS.has(node.op) && !getOp(node.op)!.decompose && !keep.has(node.op))
      throw new Diagnostic(`this target has no kernel for ${node.op}, and it has no decomposition into primitives: compile it for a target that has one, or without the pass that made it`, node.span);
  const pending = (g: Graph) => g.nodes.some((n) => getOp(n.op)!.decompose && !keep.has(n.op));
  // A decomposition may use other high-level ops (flash_diffattn -> diffattn): repeat.
  let g = graph;
  while (pending(g)) {
    g = rebuild(g, (node, r) => {
      const def = getOp(node.op)!;
      if (!def.decompose || keep.has(node.op)) return r.copy(node);
      count(`${node.op} decomposed`);
      return def.decompose(r, node.operands.map((o) => r.value(o)), node.attrs);
    });
  }
  return g;
}

/** The ops fusion passes produce. */
export const FUSED_OPS: ReadonlySet<string> = new Set(["flash_attention", "flash_diffattn", "qflash_attention", "qflash_diffattn", "fused"]);

export const decomposePass: Pass = {
  name: "decompose",
  description: "replace high-level ops (attention, diffattn, rmsnorm, layernorm, rope) by primitives; fused kernels (flash_*, fused) stay",
  run: (graph) => decompose(graph, FUSED_OPS),
};
