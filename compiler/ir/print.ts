// The textual form of the graph IR, read back by parse.ts so that pass tests can be written
// as before/after IR:
//
//   graph DiffAttention [N, M] {
//     %0 = input {name = "x"} : f32[N, 512]
//     %1 = matmul(%0, %0) : f32[N, N]
//     output "y" = %1
//   }
//
// Attributes appear in the op schema's order, every one of them. A source op whose result
// type *is* its `dtype` and `shape` attributes (input, param, iota) states them once, as the
// type after the colon.
import { lineColOf } from "../../dsl/diagnostic.ts";
import type { AttrValue, Graph, Node } from "./graph.ts";
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

/** By the schema's type where the op is known, else by the value's own JS type. */
export function formatAttr(value: AttrValue, type?: AttrType): string {
  if (Array.isArray(value)) return formatDims(value);
  if (typeof value === "number") return formatNumber(value);
  if (typeof value === "boolean") return String(value);
  return type === "dtype" ? value : JSON.stringify(value);
}

function formatAttrs(node: Node, def: OpDef | undefined): string {
  // An unknown op prints what it has, so a broken graph can still be looked at.
  const keys = def ? Object.keys(def.attrs).filter((k) => !(typeCarriesAttrs(def) && (k === "dtype" || k === "shape"))) : Object.keys(node.attrs);
  const parts = keys.filter((k) => node.attrs[k] !== undefined).map((k) => `${k} = ${formatAttr(node.attrs[k], def?.attrs[k]?.type)}`);
  return parts.length ? ` {${parts.join(", ")}}` : "";
}

export function printNode(node: Node): string {
  const def = getOp(node.op);
  const operands = node.operands.length ? `(${node.operands.map((o) => `%${o}`).join(", ")})` : "";
  return `%${node.id} = ${node.op}${operands}${formatAttrs(node, def)} : ${formatIrType(node.type)}`;
}

export function printGraph(g: Graph, options: PrintOptions = {}): string {
  const dims = g.dims.length ? ` ${formatDims(g.dims)}` : "";
  const lines = [`graph ${formatName(g.name)}${dims} {`];
  for (const node of g.nodes) {
    let line = `  ${printNode(node)}`;
    if (options.locations && node.span) {
      const { line: l, col } = lineColOf(node.span.source, node.span.start);
      line += `  # ${node.span.file}:${l}:${col}`;
    }
    lines.push(line);
  }
  for (const o of g.outputs) lines.push(`  output ${JSON.stringify(o.name)} = %${o.node}`);
  lines.push("}");
  return lines.join("\n") + "\n";
}
