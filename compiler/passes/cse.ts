// Common subexpression elimination: two nodes with the same op, the same operands and the
// same attributes compute the same value, so the second becomes the first (every op is a pure
// function of its operands). Inputs and params are never merged: each is its own name in the
// signature.
import type { AttrValue, Graph } from "../ir/graph.ts";
import { type Pass, rebuild } from "./pass.ts";

/** A key that tells apart every attribute value the IR can hold: -0 and 0, NaN and null, 1 and "1". */
function attrKey(v: AttrValue): string {
  if (Array.isArray(v)) return `[${v.map((x) => attrKey(x)).join(",")}]`;
  if (typeof v === "number") return Object.is(v, -0) ? "-0" : String(v);
  return JSON.stringify(v);
}

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
    if (prior !== undefined) return prior;
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
