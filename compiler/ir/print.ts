// The textual form of the graph IR, read back by parse.ts so that pass tests can be written
// as before/after IR:
//
//   graph DiffAttention [N, M] {
//     %0 = input {name = "x"} : f32[N, 512]
//     %1 = matmul(%0, %0) : f32[N, N]
//     output "y" = %1
//   }
//
// Attributes appear in the op schema's order, except those equal to their default: the parser
// fills those in, so adding an attribute with a default to an op changes no printed graph. A
// source op whose result type *is* its `dtype` and `shape` attributes (input, param, iota)
// states them once, as the type after the colon. A graph-valued attribute (a fused node's body) follows the node, one
// level deeper, as `name = ` and the graph in this same syntax:
//
//     %2 = fused(%0, %1) {kind = "elementwise"} : f32[N, 4]
//       body = graph fused [N] {
//         %0 = input {name = "0"} : f32[N, 4]
//         %1 = input {name = "1"} : f32[4]
//         %2 = mul(%0, %1) : f32[N, 4]
//         output "out" = %2
//       }
import { lineColOf } from "../../common/diagnostic.ts";
import { type AttrValue, type Graph, isGraph, type Node, sameAttr } from "./graph.ts";
import { type AttrType, getOp, type OpDef } from "./registry.ts";
import type { Dim, TensorType } from "./types.ts";
import "./ops/index.ts";

export interface PrintOptions {
  /** Appends `# file:line:col` to each node that carries a source span. */
  locations?: boolean;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function isIdentifier(s: string): boolean {
  return IDENTIFIER.test(s);
}

/** Whether the op's `dtype` and `shape` attributes are written as its result type. */
export function typeCarriesAttrs(def: OpDef): boolean {
  return def.operands.length === 0 && def.attrs.dtype?.type === "dtype" && def.attrs.shape?.type === "shape";
}

/** `String(x)` except for the values it does not round-trip or that are not tokens. */
export function formatNumber(x: number): string {
  if (Object.is(x, -0)) return "-0";
  if (x === Infinity) return "inf";
  if (x === -Infinity) return "-inf";
  if (Number.isNaN(x)) return "nan";
  return String(x);
}

function formatName(s: string): string {
  return isIdentifier(s) ? s : JSON.stringify(s);
}

export function formatDim(d: Dim): string {
  return typeof d === "number" ? formatNumber(d) : formatName(d);
}

function formatDims(dims: readonly Dim[]): string {
  return `[${dims.map(formatDim).join(", ")}]`;
}

export function formatIrType(t: TensorType): string {
  return `${t.dtype}${formatDims(t.shape)}`;
}

/** By the schema's type where the op is known, else by the value's own JS type; a graph on several lines. */
export function formatAttr(value: AttrValue, type?: AttrType): string {
  if (isGraph(value)) return printGraph(value).trimEnd();
  if (Array.isArray(value)) return formatDims(value);
  if (typeof value === "number") return formatNumber(value);
  if (typeof value === "boolean") return String(value);
  return type === "dtype" ? value : JSON.stringify(value);
}

function isDefault(value: AttrValue, fallback: AttrValue | undefined): boolean {
  return fallback !== undefined && sameAttr(value, fallback);
}

/** The keys of the node's attributes in print order, split into those written inline and graphs. */
function attrKeys(node: Node, def: OpDef | undefined): { inline: string[]; graphs: string[] } {
  // An unknown op prints what it has, so a broken graph can still be looked at.
  const keys = def ? Object.keys(def.attrs).filter((k) => !(typeCarriesAttrs(def) && (k === "dtype" || k === "shape"))) : Object.keys(node.attrs);
  const present = keys.filter((k) => node.attrs[k] !== undefined && !isDefault(node.attrs[k], def?.attrs[k]?.default));
  const isGraphAttr = (k: string) => (def ? def.attrs[k]?.type === "graph" : isGraph(node.attrs[k]));
  return { inline: present.filter((k) => !isGraphAttr(k)), graphs: present.filter(isGraphAttr) };
}

/** The node's lines: itself, then each graph-valued attribute as a nested block, `indent` deep. */
function nodeLines(node: Node, options: PrintOptions, indent: string): string[] {
  const def = getOp(node.op);
  const { inline, graphs } = attrKeys(node, def);
  const operands = node.operands.length ? `(${node.operands.map((o) => `%${o}`).join(", ")})` : "";
  const attrs = inline.map((k) => `${k} = ${formatAttr(node.attrs[k], def?.attrs[k]?.type)}`);
  let line = `${indent}%${node.id} = ${node.op}${operands}${attrs.length ? ` {${attrs.join(", ")}}` : ""} : ${formatIrType(node.type)}`;
  if (options.locations && node.span) {
    const { line: l, col } = lineColOf(node.span.source, node.span.start);
    line += `  # ${node.span.file}:${l}:${col}`;
  }
  const lines = [line];
  for (const k of graphs) {
    const body = graphLines(node.attrs[k] as Graph, options, `${indent}  `);
    lines.push(`${indent}  ${k} = ${body[0].trimStart()}`, ...body.slice(1));
  }
  return lines;
}

function graphLines(g: Graph, options: PrintOptions, indent: string): string[] {
  const dims = g.dims.length ? ` ${formatDims(g.dims)}` : "";
  const lines = [`${indent}graph ${formatName(g.name)}${dims} {`];
  for (const node of g.nodes) lines.push(...nodeLines(node, options, `${indent}  `));
  for (const o of g.outputs) lines.push(`${indent}  output ${JSON.stringify(o.name)} = %${o.node}`);
  lines.push(`${indent}}`);
  return lines;
}

/** One node, with the nested blocks of its graph-valued attributes on the lines after it. */
export function printNode(node: Node, options: PrintOptions = {}): string {
  return nodeLines(node, options, "").join("\n");
}

export function printGraph(g: Graph, options: PrintOptions = {}): string {
  return graphLines(g, options, "").join("\n") + "\n";
}
