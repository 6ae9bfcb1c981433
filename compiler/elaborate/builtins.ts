// Function calls in the DSL: every op of the registry by name (operands first, then its
// attributes, positionally or by keyword), a few spellings for convenience (`max(a, b)`,
// `permute`, `split`, `axis =`), and compile-time arithmetic on numbers.
import { Diagnostic, type SourceSpan } from "../../common/diagnostic.ts";
import type { Attrs, AttrValue } from "../ir/graph.ts";
import { allOps, type AttrSpec, getOp, type OpDef } from "../ir/registry.ts";
import { tensor } from "../ir/tensor.ts";
import { type Dim, formatType, normalizeAxis } from "../ir/types.ts";
import type { Elaborator } from "./elaborator.ts";
import { closest, describe, type Value } from "./values.ts";

export interface CallArg {
  name?: string;
  value: Value;
  span: SourceSpan;
}

/** Ops a model may not call: they are declared by statements, or made from literals. */
const HIDDEN_OPS = new Set(["input", "param", "const", "fused"]);
/** Compile-time only: integer rounding of numbers. */
const ROUNDING: Record<string, (x: number) => number> = { floor: Math.floor, ceil: Math.ceil, round: Math.round };
const SUGAR = new Set(["split", "permute"]);
/** Ops that map integers to integers, so folding them keeps a compile-time integer. */
const INTEGER_CLOSED = new Set(["add", "sub", "mul", "neg", "abs", "maximum", "minimum", "relu", "pow"]);

export function isBuiltin(name: string): boolean {
  return Object.hasOwn(ROUNDING, name) || SUGAR.has(name) || (!!getOp(name) && !HIDDEN_OPS.has(name));
}
export function builtinNames(): string[] {
  return [...Object.keys(ROUNDING), ...SUGAR, ...allOps().map((d) => d.name).filter((n) => !HIDDEN_OPS.has(n))];
}

export function callBuiltin(el: Elaborator, name: string, args: CallArg[], span: SourceSpan): Value {
  if (Object.hasOwn(ROUNDING, name)) {
    if (args.length !== 1 || args[0].name) throw new Diagnostic(`${name} takes one number`, span);
    return { kind: "number", value: ROUNDING[name](el.number(args[0].value, args[0].span)), integer: true };
  }
  const positional = args.filter((a) => !a.name);
  // max(a, b) / min(a, b) of two tensors is elementwise; max(x), max(x, axis) reduce.
  if ((name === "max" || name === "min") && positional.length === 2 && positional[1].value.kind !== "list" && (positional[1].value.kind === "tensor" || positional[0].value.kind !== "tensor"))
    return callOp(el, name === "max" ? "maximum" : "minimum", args, span);
  if (name === "permute") return callOp(el, "transpose", args, span);
  if (name === "split") return split(el, args, span);
  return callOp(el, name, args, span);
}

function callOp(el: Elaborator, name: string, args: CallArg[], span: SourceSpan): Value {
  const def = getOp(name)!;
  const operandNames = def.operands.map((o) => o.replace(/[?.]+$/, ""));
  const variadic = def.operands.some((o) => o.endsWith("..."));
  const attrNames = Object.keys(def.attrs);
  const operands: CallArg[] = [];
  const attrs: Attrs = {};
  const setAttr = (key: string, a: CallArg) => {
    if (Object.hasOwn(attrs, key)) throw new Diagnostic(`${name}: ${key} is given twice`, a.span);
    attrs[key] = attrValue(el, def, key, def.attrs[key], a);
  };
  let positionalAttr = 0;
  for (const a of args) {
    if (a.name !== undefined) {
      const key = a.name === "axis" && Object.hasOwn(def.attrs, "axes") ? "axes" : a.name;
      const operandIndex = operandNames.indexOf(key);
      if (operandIndex >= 0) {
        if (operands[operandIndex]) throw new Diagnostic(`${name}: ${key} is given twice`, a.span);
        operands[operandIndex] = a;
      } else if (Object.hasOwn(def.attrs, key)) setAttr(key, a);
      else {
        const hint = closest(key, [...operandNames, ...attrNames]);
        throw new Diagnostic(`${name} has no argument ${a.name} (it takes ${[...operandNames, ...attrNames].join(", ") || "nothing"})`, a.span, hint ? [`did you mean ${hint}?`] : []);
      }
    } else if (variadic && a.value.kind === "list" && a.value.items.every((v) => v.kind === "tensor")) {
      for (const v of a.value.items) operands.push({ value: v, span: a.span });
    } else if (variadic ? a.value.kind === "tensor" : operands.length < operandNames.length) {
      operands.push(a);
    } else {
      const key = attrNames[positionalAttr++];
      if (key === undefined) throw new Diagnostic(`${name} takes at most ${operandNames.length + attrNames.length} arguments (${[...operandNames, ...attrNames].join(", ")})`, a.span);
      setAttr(key, a);
    }
  }
  if (operands.some((o) => o === undefined)) {
    const missing = operandNames[operands.findIndex((o) => o === undefined)];
    throw new Diagnostic(`${name} needs its ${missing} operand`, span);
  }
  // A call on compile-time numbers alone is folded: exp(-0.3 * layer) is a number.
  if (operands.length > 0 && operands.every((o) => o.value.kind === "number") && def.pattern === "elementwise" && Object.keys(attrs).length === 0) {
    const nums = operands.map((o) => o.value as { value: number; integer: boolean });
    const value = def.interpret(nums.map((n) => tensor("f32", [], [n.value])), {}, { dtype: "f32", shape: [] })[0];
    const integer = nums.every((n) => n.integer) && INTEGER_CLOSED.has(name) && Number.isInteger(value);
    return { kind: "number", value, integer };
  }
  const ids = el.tensorOperands(operands.map((o) => o.value), operands.map((o) => o.span));
  return { kind: "tensor", id: el.add(name, ids, attrs, span) };
}

function attrValue(el: Elaborator, def: OpDef, key: string, spec: AttrSpec, a: CallArg): AttrValue {
  const v = a.value;
  const fail = (what: string) => new Diagnostic(`${def.name}: ${key} must be ${what}, got ${describe(v)}`, a.span);
  const list = (x: Value) => (x.kind === "list" ? x.items : [x]);
  switch (spec.type) {
    case "int":
      if (v.kind === "number" && v.integer) return v.value;
      throw fail("an integer");
    case "float":
      if (v.kind === "number") return v.value;
      throw fail("a number");
    case "bool":
      if (v.kind === "bool") return v.value;
      throw fail("true or false");
    case "string":
    case "dtype":
      if (v.kind === "string") return v.value;
      throw fail(spec.type === "dtype" ? "a dtype such as f32" : `a string${spec.oneOf ? ` (${spec.oneOf.map((s) => `"${s}"`).join(" or ")})` : ""}`);
    case "ints":
      return list(v).map((x) => el.integer(x, a.span));
    case "floats":
      return list(v).map((x) => el.number(x, a.span));
    case "shape":
      if (v.kind !== "list") throw fail("a shape such as [N, 64]");
      return v.items.map((x): Dim => {
        if (x.kind === "dim") {
          if (x.dim.bound === undefined) throw new Diagnostic(`dim ${x.dim.name} is not bound yet`, a.span);
          return x.dim.bound;
        }
        const n = el.integer(x, a.span);
        if (n < 0) throw new Diagnostic(`a size must not be negative, got ${n}`, a.span);
        return n;
      });
    case "graph":
      // Only `fused` takes a graph, and a model cannot call it (HIDDEN_OPS).
      throw fail("a graph");
  }
}

/** split(x, parts or [sizes], axis = -1): a tuple of slices. */
function split(el: Elaborator, args: CallArg[], span: SourceSpan): Value {
  const positional = args.filter((a) => !a.name);
  const axisArg = args.find((a) => a.name === "axis");
  const bad = args.find((a) => a.name !== undefined && a.name !== "axis");
  if (bad) throw new Diagnostic(`split has no argument ${bad.name} (it takes x, parts, axis)`, bad.span);
  if (positional.length !== 2) throw new Diagnostic("split takes a tensor and a number of parts or a list of sizes: split(x, 2, axis = -1)", span);
  const x = el.tensorId(positional[0].value, positional[0].span);
  const type = el.builder.type(x);
  const axisValue = axisArg ? el.integer(axisArg.value, axisArg.span) : -1;
  const axis = normalizeAxis(axisValue, type.shape.length);
  if (axis < 0) throw new Diagnostic(`split: axis ${axisValue} is out of range for ${formatType(type)}`, axisArg?.span ?? span);
  const size = type.shape[axis];
  if (typeof size !== "number") throw new Diagnostic(`split: axis ${axisValue} of ${formatType(type)} has symbolic size ${size}`, span);
  const spec = positional[1].value;
  let sizes: number[];
  if (spec.kind === "list") {
    sizes = spec.items.map((i) => el.integer(i, positional[1].span));
    const negative = sizes.find((n) => n < 0);
    if (negative !== undefined) throw new Diagnostic(`split: sizes [${sizes.join(", ")}] include ${negative}; a size must not be negative`, positional[1].span);
  }
  else {
    const parts = el.integer(spec, positional[1].span);
    if (parts <= 0 || size % parts !== 0) throw new Diagnostic(`split: ${formatType(type)} does not split into ${parts} equal parts along axis ${axisValue}`, positional[1].span);
    sizes = Array(parts).fill(size / parts);
  }
  if (sizes.reduce((s, n) => s + n, 0) !== size) throw new Diagnostic(`split: sizes [${sizes.join(", ")}] do not add up to ${size}`, positional[1].span);
  let start = 0;
  const items = sizes.map((n): Value => {
    const id = el.add("slice", [x], { axis, start, end: start + n, step: 1 }, span);
    start += n;
    return { kind: "tensor", id };
  });
  return { kind: "tuple", items };
}
