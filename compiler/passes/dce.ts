// Dead code elimination: a node no output depends on is dropped. Inputs and params are the
// graph's signature (a caller binds them by name), so they stay even when nothing reads them.
import type { Graph } from "../ir/graph.ts";
import { type Pass, rebuild } from "./pass.ts";
import { count } from "./statistics.ts";

export function dce(graph: Graph): Graph {
  const live = new Uint8Array(graph.nodes.length);
  for (const o of graph.outputs) live[o.node] = 1;
  // Nodes are in topological order, so one backward walk marks every operand of a live node.
  for (let id = graph.nodes.length - 1; id >= 0; id--) {
    const node = graph.nodes[id];
    if (node.op === "input" || node.op === "param") live[id] = 1;
    if (live[id]) for (const o of node.operands) live[o] = 1;
  }
  if (live.every((l) => l === 1)) return graph;
  return rebuild(graph, (node, r) => (live[node.id] ? r.copy(node) : -1));
}

export const dcePass: Pass = {
  name: "dce",
  description: "remove nodes no output depends on (inputs and params stay: they are the signature)",
  run: (graph) => {
    const live = dce(graph);
    count("dead nodes removed", graph.nodes.length - live.nodes.length);
    return live;
  },
};
