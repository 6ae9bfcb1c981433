// Common subexpression elimination: two nodes with the same op, the same operands and the
// same attributes compute the same value, so the second becomes the first (every op is a pure
// function of its operands). Inputs and params are never merged: each is its own name in the
// signature. Two fused nodes whose bodies are equal graphs, made apart, are the same node.
import { attrKey, type Graph } from "../ir/graph.ts";
import { type Pass, rebuild } from "./pass.ts";
import { count } from "./statistics.ts";

export function cse(graph: Graph): Graph {
  const seen = new Map<string, number>();
  return rebuild(graph, (node, r) => {
    if (node.op === "input" || node.op === "param") return r.copy(node);
    const operands = node.operands.map((o) => r.value(o));
    const attrs = Object.keys(node.attrs)
      .sort()
      .map((k) => `${k}=${attrKey(node.attrs[k])}`);
    const key = `${node.op}(${operands.join(",")}){${attrs.join(",")}}`;
    const prior = seen.get(key);
    if (prior !== undefined) {
      count(`${node.op} merged with an equal one`);
      return prior;
    }
    const id = r.copy(node);
    seen.set(key, id);
    return id;
  });
}

export const csePass: Pass = {
  name: "cse",
  description: "merge nodes with the same op, operands and attributes (never two inputs or params)",
  run: cse,
};
