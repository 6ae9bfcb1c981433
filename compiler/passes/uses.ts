// Who reads each value: what fusion passes check before folding a node into its consumer.
import type { Graph, Node } from "../ir/graph.ts";

export interface Uses {
  /** The nodes that read `id`, one entry per operand slot. */
  readers(id: number): Node[];
  /** Whether `id` is a graph output. */
  isOutput(id: number): boolean;
  /** The one node reading `id`, if that is its only use and it is no output. */
  soleReader(id: number): Node | undefined;
}

export function uses(graph: Graph): Uses {
  const readers: Node[][] = graph.nodes.map(() => []);
  for (const n of graph.nodes) for (const o of n.operands) readers[o].push(n);
  const outputs = new Set(graph.outputs.map((o) => o.node));
  return {
    readers: (id) => readers[id],
    isOutput: (id) => outputs.has(id),
    soleReader: (id) => (readers[id].length === 1 && !outputs.has(id) ? readers[id][0] : undefined),
  };
}
