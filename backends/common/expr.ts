// The expression renderer every backend shares: elementwise ops become small scalar
// expression trees (once, here), and each backend prints the trees with its own table of
// spellings — tinygrad's renderer idea. Index arithmetic is written by the kernel templates.
import type { DType } from "../../compiler/ir/types.ts";

export type ScalarExpr =
  | { kind: "literal"; value: number; dtype: DType }
  | { kind: "ref"; name: string } // an already-loaded operand or a loop variable
  | { kind: "unary"; op: "neg" | "not"; a: ScalarExpr }
  | { kind: "binary"; op: "+" | "-" | "*" | "/" | "<" | "<=" | ">" | ">=" | "==" | "!=" | "&&" | "||"; a: ScalarExpr; b: ScalarExpr }
  | { kind: "call"; fn: MathFn; args: ScalarExpr[] }
  | { kind: "select"; cond: ScalarExpr; a: ScalarExpr; b: ScalarExpr };

/** Math functions a backend must spell (directly or with a helper it emits). */
export type MathFn = "imul" | "ipow" | "quantize_i8" | "quantize_u8" | "exp" | "log" | "sqrt" | "abs" | "tanh" | "cos" | "sin" | "pow" | "max" | "min" | "erf" | "isnan" | "idiv" | "saturate_i32" | "saturate_i8" | "saturate_u8" | "trunc";

export const lit = (value: number, dtype: DType = "f32"): ScalarExpr => ({ kind: "literal", value, dtype });
export const ref = (name: string): ScalarExpr => ({ kind: "ref", name });
const call = (fn: MathFn, ...args: ScalarExpr[]): ScalarExpr => ({ kind: "call", fn, args });
const bin = (op: Extract<ScalarExpr, { kind: "binary" }>["op"], a: ScalarExpr, b: ScalarExpr): ScalarExpr => ({ kind: "binary", op, a, b });
const select = (cond: ScalarExpr, a: ScalarExpr, b: ScalarExpr): ScalarExpr => ({ kind: "select", cond, a, b });
const isInt = (d: DType) => d === "i32" || d === "i8" || d === "u8";

/**
 * The scalar meaning of each elementwise op, as the interpreter defines it. `dtype` is the
 * operands' dtype; `attrs` the op's attributes (cast's target dtype).
 */
export function scalarOp(op: string, args: ScalarExpr[], dtype: DType, attrs: Record<string, unknown> = {}): ScalarExpr {
  const [a, b, c] = args;
  const one = lit(1, dtype);
  const bool = (cond: ScalarExpr) => select(cond, lit(1, "bool"), lit(0, "bool"));
  switch (op) {
    case "add":
      return bin("+", a, b);
    case "sub":
      return bin("-", a, b);
    case "mul":
      return dtype === "i32" ? call("imul", a, b) : bin("*", a, b);
    case "div":
      return isInt(dtype) ? call("idiv", a, b) : bin("/", a, b);
    case "pow":
      return call(dtype === "i32" ? "ipow" : "pow", a, b);
    case "maximum":
      return call("max", a, b);
    case "minimum":
      return call("min", a, b);
    case "neg":
      return { kind: "unary", op: "neg", a };
    case "exp":
    case "log":
    case "sqrt":
    case "abs":
    case "tanh":
    case "cos":
    case "sin":
      return call(op, a);
    case "rsqrt":
      return bin("/", one, call("sqrt", a));
    case "sigmoid":
      return bin("/", one, bin("+", one, call("exp", { kind: "unary", op: "neg", a })));
    case "relu":
      return select(bin(">", a, lit(0, dtype)), a, lit(0, dtype));
    case "silu":
      return bin("/", a, bin("+", one, call("exp", { kind: "unary", op: "neg", a })));
    case "gelu":
      return bin("*", bin("*", lit(0.5), a), bin("+", one, call("erf", bin("/", a, lit(Math.SQRT2)))));
    case "gelu_tanh": {
      const inner = bin("*", lit(Math.sqrt(2 / Math.PI)), bin("+", a, bin("*", bin("*", bin("*", lit(0.044715), a), a), a)));
      return bin("*", bin("*", lit(0.5), a), bin("+", one, call("tanh", inner)));
    }
    case "eq":
      return bool(bin("==", a, b));
    case "ne":
      return bool(bin("!=", a, b));
    case "lt":
      return bool(bin("<", a, b));
    case "le":
      return bool(bin("<=", a, b));
    case "gt":
      return bool(bin(">", a, b));
    case "ge":
      return bool(bin(">=", a, b));
    case "where":
      return select(bin("!=", a, lit(0, "bool")), b, c);
    case "cast": {
      const to = attrs.dtype as DType;
      if (to === "bool") return bool(bin("!=", a, lit(0, dtype)));
      if (isInt(to)) return call(`saturate_${to}` as MathFn, a);
      return a;
    }
    case "quantize":
      return call(`quantize_${attrs.dtype}` as MathFn, a, b, lit(attrs.zero_point as number, "i32"));
    case "dequantize":
      return bin("*", bin("-", a, lit(attrs.zero_point as number, "i32")), b);
    default:
      throw new Error(`no scalar form for op ${op}`);
  }
}

/** A backend's spellings: how to print literals, operators, selects and math calls. */
export interface Spelling {
  literal(value: number, dtype: DType): string;
  call(fn: MathFn, args: string[]): string;
  select(cond: string, a: string, b: string): string;
  unary(op: "neg" | "not", a: string): string;
  binary(op: string, a: string, b: string): string;
}

export function render(e: ScalarExpr, s: Spelling): string {
  switch (e.kind) {
    case "literal":
      return s.literal(e.value, e.dtype);
    case "ref":
      return e.name;
    case "unary":
      return s.unary(e.op, render(e.a, s));
    case "binary":
      return s.binary(e.op, render(e.a, s), render(e.b, s));
    case "call":
      return s.call(e.fn, e.args.map((x) => render(x, s)));
    case "select":
      return s.select(render(e.cond, s), render(e.a, s), render(e.b, s));
  }
}

/** The math functions an expression uses, so a backend emits only the helpers it needs. */
export function functionsUsed(e: ScalarExpr, into = new Set<MathFn>()): Set<MathFn> {
  if (e.kind === "call") into.add(e.fn);
  for (const child of e.kind === "unary" ? [e.a] : e.kind === "binary" ? [e.a, e.b] : e.kind === "call" ? e.args : e.kind === "select" ? [e.cond, e.a, e.b] : []) functionsUsed(child, into);
  return into;
}
