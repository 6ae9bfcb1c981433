// The verifier: the invariants every graph holds between passes. A graph from the elaborator,
// the parser or a pass that fails here was built wrong, so failures are InternalErrors.
import { InternalError } from "../../common/diagnostic.ts";
import { type Graph, type Node, sameAttr } from "./graph.ts";
import { formatAttr, formatIrType } from "./print.ts";
import { getOp, type OpDef, OpError, operandArity, normalizeAttrs } from "./registry.ts";
import { type Dim, isDType, sameType, type TensorType } from "./types.ts";
import "./ops/index.ts";

/** "matmul takes 2 operands (a, b), got 3" — shared with the parser. */
export function arityMismatch(def: OpDef, got: number): string {
  const { min, max } = operandArity(def);
  const want = min === max ? `${min}` : max === Infinity ? `at least ${min}` : `${min} to ${max}`;
  return `${def.name} takes ${want} operand${max === 1 ? "" : "s"} (${def.operands.join(", ")}), got ${got}`;
}

function checkShape(shape: readonly Dim[], g: Graph, what: string): string | undefined {
  for (const d of shape) {
    if (typeof d === "string") {
      if (!g.dims.includes(d)) return `${what} uses symbolic size ${d}, which is not in the graph's dims [${g.dims.join(", ")}]`;
    } else if (!Number.isInteger(d) || d < 0) return `${what} has size ${d}, not a non-negative integer`;
  }
  return undefined;
}

/** The first thing wrong with one node, or undefined. */
function checkNode(g: Graph, node: Node, index: number): string | undefined {
  if (node.id !== index) return `its id is ${node.id} but it is node ${index}`;
  const def = getOp(node.op);
  if (!def) return `unknown op`;
  for (const o of node.operands) {
    if (!Number.isInteger(o) || o < 0 || o >= index) return `operand %${o} is not an earlier node`;
  }
  const { min, max } = operandArity(def);
  if (node.operands.length < min || node.operands.length > max) return arityMismatch(def, node.operands.length);

  let normalized;
  try {
    normalized = normalizeAttrs(def, node.attrs);
  } catch (e) {
    if (e instanceof OpError) return e.message;
    throw e;
  }
  for (const [key, value] of Object.entries(normalized)) {
    if (!(key in node.attrs)) return `attribute ${key} is missing (its default is ${formatAttr(value, def.attrs[key].type)}); graphs carry normalized attributes`;
    if (!sameAttr(node.attrs[key], value)) return `attribute ${key} = ${formatAttr(node.attrs[key])} is not in normalized form`;
  }
  const { dtype, shape } = node.type;
  if (!isDType(dtype)) return `result dtype ${dtype} is not a dtype`;
  const badShape = checkShape(shape, g, `its type ${formatIrType(node.type)}`);
  if (badShape) return badShape;
  for (const [key, spec] of Object.entries(def.attrs)) {
    if (spec.type === "shape") {
      const bad = checkShape(normalized[key] as Dim[], g, `attribute ${key}`);
      if (bad) return bad;
    }
    // A body holds the same invariants as any graph; its dims are its own.
    if (spec.type === "graph") {
      const bad = firstProblem(normalized[key] as Graph);
      if (bad) return `attribute ${key}: ${bad}`;
    }
  }

  let inferred: TensorType;
  try {
    inferred = def.infer(
      node.operands.map((o) => g.nodes[o].type),
      normalized,
    );
  } catch (e) {
    if (e instanceof OpError) return `its shape rule rejects it: ${e.message}`;
    throw e;
  }
  if (!sameType(inferred, node.type)) return `its type is ${formatIrType(node.type)}, but the shape rule gives ${formatIrType(inferred)}`;
  return undefined;
}

/** "graph NAME: WHERE: WHAT" for the first node or output that breaks an invariant of the IR, or undefined. */
function firstProblem(g: Graph): string | undefined {
  const at = (what: string, message: string) => `graph ${g.name}: ${what}: ${message}`;
  if (new Set(g.dims).size !== g.dims.length) return at("dims", `[${g.dims.join(", ")}] repeats a name`);
  const sourceNames = new Map<string, number>();
  for (const [index, node] of g.nodes.entries()) {
    const problem = checkNode(g, node, index);
    const label = `%${index} = ${node.op}`;
    if (problem) return at(label, problem);
    if (node.op === "input" || node.op === "param") {
      const key = `${node.op} ${JSON.stringify(node.attrs.name)}`;
      const first = sourceNames.get(key);
      if (first !== undefined) return at(label, `${key} is also defined by %${first}`);
      sourceNames.set(key, index);
    }
  }
  const outputNames = new Set<string>();
  for (const o of g.outputs) {
    const label = `output ${JSON.stringify(o.name)}`;
    if (!Number.isInteger(o.node) || o.node < 0 || o.node >= g.nodes.length) return at(label, `%${o.node} is not a node`);
    if (outputNames.has(o.name)) return at(label, "the name is used twice");
    outputNames.add(o.name);
  }
  return undefined;
}

/** Throws InternalError naming the first node that breaks an invariant of the IR (in a nested body too). */
export function verifyGraph(g: Graph): void {
  const problem = firstProblem(g);
  if (problem) throw new InternalError(problem);
}
