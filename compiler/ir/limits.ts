// How large a tensor may be. Every runtime holds a tensor in one typed array (the interpreter
// in a Float64Array), and V8 allocates none longer than 2^32 elements (Node's
// buffer.constants.MAX_LENGTH); sizes are also multiplied and summed as doubles, exact only up
// to 2^53. A shape past the limit is a diagnostic when the model is checked or compiled (its
// static sizes) and when the dims are bound (its symbolic ones), never a crash in init or run.
import { Diagnostic } from "../../common/diagnostic.ts";
import type { Graph, Node } from "./graph.ts";
import { type Dim, formatShape, formatType } from "./types.ts";

export const MAX_ELEMENTS = 2 ** 32;

/**
 * The number of elements of `shape`, with each symbol bound in `dims` or, when unbound,
 * counted as 1 (so the result is what the static sizes alone already demand).
 */
function elementsAtLeast(shape: readonly Dim[], dims: ReadonlyMap<string, number>): number {
  let n = 1;
  for (const d of shape) n *= typeof d === "number" ? d : (dims.get(d) ?? 1);
  return n;
}

function describeSize(n: number): string {
  return Number.isSafeInteger(n) ? n.toLocaleString("en-US") : `about ${n.toPrecision(3)}`;
}

/** Rejects a node whose type holds more elements than a typed array can. */
export function checkNodeSize(node: Node, dims: ReadonlyMap<string, number> = new Map()): void {
  const n = elementsAtLeast(node.type.shape, dims);
  if (n <= MAX_ELEMENTS) return;
  const symbols = node.type.shape.filter((d): d is string => typeof d === "string");
  const bound = symbols.filter((s) => dims.has(s));
  const at = bound.length ? ` with ${bound.map((s) => `${s} = ${dims.get(s)}`).join(", ")}` : "";
  const what = node.op === "input" || node.op === "param" || node.op === "output" ? `${node.op} ${String(node.attrs.name)}` : `this ${node.op}`;
  const resolved = bound.length ? ` (${formatShape(node.type.shape.map((d) => (typeof d === "string" && dims.has(d) ? dims.get(d)! : d)))})` : "";
  throw new Diagnostic(
    `${what}: ${formatType(node.type)}${resolved}${at} has ${symbols.length > bound.length ? "at least " : ""}${describeSize(n)} elements, more than the ${describeSize(MAX_ELEMENTS)} a tensor may hold`,
    node.span,
  );
}

/** Rejects the first node of `graph` that is too large for the given dims. */
export function checkGraphSizes(graph: Graph, dims: ReadonlyMap<string, number>): void {
  for (const node of graph.nodes) checkNodeSize(node, dims);
}
