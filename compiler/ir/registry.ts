// The op registry: one entry per op, the living definition of what the op means — its
// operands, attributes, shape rule, interpreter rule (float64) and fusion pattern.
import { type Attrs, type AttrValue, isGraph } from "./graph.ts";
import type { ScalarExpr } from "./scalar.ts";
import type { HostTensor } from "./tensor.ts";
import { type DType, type Dim, isDType, type TensorType } from "./types.ts";

/** How an op may fuse with its neighbours (TVM's op patterns). */
export type FusionPattern =
  | "elementwise" // out[i] depends on in[i] of each operand (after broadcasting)
  | "injective" // each output element reads one input element (reshape, transpose, gather)
  | "reduction"
  | "matmul"
  | "opaque"
  | "source"; // no operands: input, param, const, iota

/** `graph`: a graph of its own (a fused node's body), printed as a nested block after the node. */
export type AttrType = "int" | "float" | "bool" | "string" | "ints" | "floats" | "shape" | "dtype" | "graph";

export interface AttrSpec {
  type: AttrType;
  /** Absent means the attribute is required. */
  default?: AttrValue;
  oneOf?: readonly string[];
  doc?: string;
}

/** A concrete result type, symbols resolved, as the interpreter sees it. */
export interface ConcreteType {
  dtype: DType;
  shape: number[];
}

export interface OpDef {
  name: string;
  doc: string;
  /** Operand names in order; a trailing `?` marks an optional operand, `...` a variadic one. */
  operands: readonly string[];
  attrs: Readonly<Record<string, AttrSpec>>;
  pattern: FusionPattern;
  /** The shape rule. Throws OpError naming the shapes involved when the operands do not fit. */
  infer(operands: TensorType[], attrs: Attrs): TensorType;
  /** The interpreter rule: float64 in, float64 out; the caller rounds to `out.dtype`. */
  interpret(args: HostTensor[], attrs: Attrs, out: ConcreteType): Float64Array;
  /**
   * Elementwise ops: what the op computes at one element, as an expression over its operands
   * (of dtypes `dtypes`), before the result is rounded to its dtype. The interpreter evaluates
   * it and every backend prints it: the op's one meaning.
   */
  scalar?(operands: ScalarExpr[], dtypes: DType[], attrs: Attrs): ScalarExpr;
  /** Elementwise ops: whether the result is already in `dtype` when the operands are, so no rounding is needed. */
  exact?(dtype: DType): boolean;
  /**
   * For a high-level op: the same computation in primitive ops (those without `decompose`),
   * added through `b`. Backends implement the primitives and may implement the op directly.
   */
  decompose?(b: NodeSink, operands: number[], attrs: Attrs): number;
}

/** Where a decomposition adds its nodes (a GraphBuilder). */
export interface NodeSink {
  add(op: string, operands: number[], attrs?: Attrs): number;
  type(id: number): TensorType;
}

/** A user-facing mistake in how an op is applied; the elaborator attaches the source span. */
export class OpError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "OpError";
  }
}

const registry = new Map<string, OpDef>();

export function registerOp(def: OpDef): OpDef {
  if (registry.has(def.name)) throw new Error(`op ${def.name} registered twice`);
  registry.set(def.name, def);
  return def;
}
export function getOp(name: string): OpDef | undefined {
  return registry.get(name);
}
export function allOps(): OpDef[] {
  return [...registry.values()];
}

export function operandArity(def: OpDef): { min: number; max: number } {
  let min = 0;
  let max = 0;
  for (const o of def.operands) {
    if (o.endsWith("...")) return { min: min + 1, max: Infinity };
    max++;
    if (!o.endsWith("?")) min++;
  }
  return { min, max };
}

function checkAttr(op: string, key: string, spec: AttrSpec, v: AttrValue): AttrValue {
  const bad = (what: string) => new OpError(`${op}: attribute ${key} must be ${what}, got ${isGraph(v) ? `graph ${JSON.stringify(v.name)}` : JSON.stringify(v)}`);
  switch (spec.type) {
    case "int":
      if (typeof v !== "number" || !Number.isInteger(v)) throw bad("an integer");
      return v;
    case "float":
      if (typeof v !== "number") throw bad("a number");
      return v;
    case "bool":
      if (typeof v !== "boolean") throw bad("true or false");
      return v;
    case "string":
      if (typeof v !== "string") throw bad("a string");
      if (spec.oneOf && !spec.oneOf.includes(v)) throw bad(`one of ${spec.oneOf.map((s) => `"${s}"`).join(", ")}`);
      return v;
    case "dtype":
      if (typeof v !== "string" || !isDType(v)) throw bad("a dtype");
      return v;
    case "ints":
      if (!Array.isArray(v) || !v.every((x) => typeof x === "number" && Number.isInteger(x))) throw bad("a list of integers");
      return v;
    case "floats":
      if (!Array.isArray(v) || !v.every((x) => typeof x === "number")) throw bad("a list of numbers");
      return v;
    case "shape":
      if (!Array.isArray(v) || !v.every((x: Dim) => typeof x === "string" || (Number.isInteger(x) && x >= 0)))
        throw bad("a shape (sizes and dim names)");
      return v;
    case "graph":
      if (!isGraph(v)) throw bad("a graph");
      return v;
  }
}

/** Validates attributes against the op's schema and fills in defaults. */
export function normalizeAttrs(def: OpDef, attrs: Attrs): Attrs {
  const out: Attrs = {};
  for (const key of Object.keys(attrs)) {
    if (!Object.hasOwn(def.attrs, key)) {
      const known = Object.keys(def.attrs);
      throw new OpError(`${def.name} has no attribute ${key}${known.length ? ` (it takes ${known.join(", ")})` : ""}`);
    }
  }
  for (const [key, spec] of Object.entries(def.attrs)) {
    const v = attrs[key] ?? spec.default;
    if (v === undefined) throw new OpError(`${def.name} needs attribute ${key}`);
    out[key] = checkAttr(def.name, key, spec, v);
  }
  return out;
}
