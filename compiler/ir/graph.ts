// The graph IR: nodes in topological order, each with one result of a known tensor type.
import type { SourceSpan } from "../../common/diagnostic.ts";
import { type Dim, type DType, resolveShape, type TensorType } from "./types.ts";

/**
 * A graph-valued attribute (a fused node's body) is a graph of its own, with its own dims and
 * inputs, and like every attribute value it is never changed once a node holds it: analyses of
 * it are cached by its identity.
 */
export type AttrValue = number | boolean | string | DType | Dim[] | number[] | Graph;
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

export function isGraph(v: AttrValue | undefined): v is Graph {
  return typeof v === "object" && v !== null && !Array.isArray(v) && Array.isArray(v.nodes);
}

const graphKeys = new WeakMap<Graph, string>();

/**
 * A key that tells apart every attribute value the IR can hold: -0 and 0, NaN and null, 1 and
 * "1"; a graph by its structure (what it prints as, spans aside), so that two equal bodies
 * made separately have one key.
 */
export function attrKey(v: AttrValue): string {
  if (Array.isArray(v)) return `[${v.map((x: Dim) => attrKey(x)).join(",")}]`;
  if (typeof v === "number") return Object.is(v, -0) ? "-0" : String(v);
  if (isGraph(v)) {
    let key = graphKeys.get(v);
    if (key === undefined) {
      const node = (n: Node) => {
        const attrs = Object.keys(n.attrs).sort().map((k) => `${k}=${attrKey(n.attrs[k])}`);
        return `${n.op}(${n.operands.join(",")}){${attrs.join(",")}}:${n.type.dtype}${attrKey(n.type.shape)}`;
      };
      const outputs = v.outputs.map((o) => `${JSON.stringify(o.name)}=${o.node}`);
      key = `graph ${JSON.stringify(v.name)} ${attrKey(v.dims)} {${v.nodes.map(node).join(";")};${outputs.join(";")}}`;
      graphKeys.set(v, key);
    }
    return key;
  }
  return JSON.stringify(v);
}

/** Whether two attribute values are the same: lists elementwise, -0 apart from 0, graphs by structure. */
export function sameAttr(a: AttrValue, b: AttrValue): boolean {
  if (Array.isArray(a) || Array.isArray(b))
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x: Dim, i) => Object.is(x, b[i]));
  if (isGraph(a) || isGraph(b)) return a === b || (isGraph(a) && isGraph(b) && attrKey(a) === attrKey(b));
  return Object.is(a, b);
}

/**
 * Attributes with the symbolic sizes inside shape-valued ones (reshape, broadcast, iota) bound.
 * A graph-valued attribute stays as it is: its dims are its own, bound from its inputs.
 */
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
