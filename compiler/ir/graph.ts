// The graph IR: nodes in topological order, each with one result of a known tensor type.
import type { SourceSpan } from "../../dsl/diagnostic.ts";
import { type Dim, type DType, resolveShape, type TensorType } from "./types.ts";

export type AttrValue = number | boolean | string | DType | Dim[] | number[];
export type Attrs = Record<string, AttrValue>;

export interface Node {
  /** Position in `graph.nodes`; printed as `%id`. */
  id: number;
  op: string;
  operands: number[];
  attrs: Attrs;
  type: TensorType;
  /** Where in the source the node came from, for diagnostics. */
  span?: SourceSpan;
}

export interface GraphOutput {
  name: string;
  node: number;
}

export interface Graph {
  name: string;
  /** Symbolic sizes, bound from the inputs at run time. */
  dims: string[];
  nodes: Node[];
  outputs: GraphOutput[];
}

export function inputNodes(g: Graph): Node[] {
  return g.nodes.filter((n) => n.op === "input");
}
export function paramNodes(g: Graph): Node[] {
  return g.nodes.filter((n) => n.op === "param");
}
export function nodeName(n: Node): string {
  return String(n.attrs.name);
}

/** Attributes with the symbolic sizes inside shape-valued ones (reshape, broadcast, iota) bound. */
export function resolveAttrs(attrs: Attrs, dims: ReadonlyMap<string, number>): Attrs {
  let out: Attrs | undefined;
  for (const [k, v] of Object.entries(attrs)) {
    if (Array.isArray(v) && v.some((x: Dim) => typeof x === "string")) {
      out ??= { ...attrs };
      out[k] = resolveShape(v as Dim[], dims);
    }
  }
  return out ?? attrs;
}
