// Makes every conversion in a kernel explicit, for typed languages. The kernel IR, like the
// interpreter that computes in float64, lets an f64 accumulator add an f32 load or an i32
// element, compares an i32 with an f64, tests an i32 as a condition and adds bools; C converts
// silently, WGSL rejects all of it. After this pass each binary operator and select sees
// operands of one type, conditions are bool, arithmetic never sees a bool, float functions
// get floats, helpers their parameter types, and lets, assignments and stores get the type
// they declare. Each conversion inserted is exact (an integer or a float widened to f64, a
// bool to 0 or 1), or is the one an assignment in C or a typed-array store in JS makes anyway,
// so the kernel computes the same values; the kernel tests run it through JS to check.
import { bin, cast, lit, round, type ScalarExpr, type ScalarType, select, typeOf } from "../../../compiler/ir/scalar.ts";
import { roundScalar } from "../../../compiler/ir/numeric.ts";
import type { DType } from "../../../compiler/ir/types.ts";
import { helperFunction } from "./helpers.ts";
import { dimParam, type Kernel, type Stmt } from "./ir.ts";

const FLOAT_RANK: Partial<Record<ScalarType, number>> = { f16: 1, bf16: 1, f32: 2, f64: 3 };
const isFloat = (t: ScalarType) => FLOAT_RANK[t] !== undefined;
const INT_RANGE: Partial<Record<ScalarType, [number, number]>> = { i32: [-(2 ** 31), 2 ** 31 - 1], u32: [0, 2 ** 32 - 1], i8: [-128, 127], u8: [0, 255], bool: [0, 1] };

/** The common type of two operands: floats win (an integer with a float is f64, exact), integers widen to i32. */
function join(a: ScalarType, b: ScalarType): ScalarType {
  if (a === b) return a;
  if (isFloat(a) && isFloat(b)) return FLOAT_RANK[a] === FLOAT_RANK[b] ? "f32" : FLOAT_RANK[a]! > FLOAT_RANK[b]! ? a : b;
  if (isFloat(a) || isFloat(b)) return "f64";
  if (a === "u32" || b === "u32") throw new Error(`explicitCasts: ${a} meets ${b}; a signed/unsigned mix must be a cast in the lowering`);
  return "i32";
}

/** Whether a literal keeps its value in type t (then it is retyped, not converted). */
function fits(v: number, t: ScalarType): boolean {
  if (t === "f64" || Number.isNaN(v)) return isFloat(t);
  const range = INT_RANGE[t];
  if (range) return Number.isInteger(v) && v >= range[0] && v <= range[1];
  return roundScalar(t as DType, v) === v;
}

const asBool = (cond: ScalarExpr) => select(cond, lit(1, "bool"), lit(0, "bool"));

/** e as a value of type t, converted as a C assignment or a JS typed-array store converts. */
function to(t: ScalarType, e: ScalarExpr): ScalarExpr {
  const from = typeOf(e);
  if (from === t) return e;
  if (e.kind === "literal" && fits(e.value, t)) return lit(e.value, t);
  if (t === "bool") return asBool(condition(e));
  // cast is roundScalar for dtypes, the identity for f64 and ToUint32 for u32; round spells
  // the dtypes' rounding in every language, so it carries the conversions to dtypes.
  if (t === "f64" || t === "u32") return cast(t, e);
  return round(t, isFloat(t) && !isFloat(from) ? cast("f64", e) : e);
}

/** e as a condition: a bool, or e != 0 (NaN is true, as in C). */
function condition(e: ScalarExpr): ScalarExpr {
  const t = typeOf(e);
  return t === "bool" ? e : bin("!=", e, lit(0, t));
}

/** Operands of arithmetic: a bool counts as the integer 0 or 1. */
const numeric = (e: ScalarExpr) => (typeOf(e) === "bool" ? to("i32", e) : e);
const float = (e: ScalarExpr) => (isFloat(typeOf(e)) ? e : to("f64", e));

/** Two operands of one type; a literal takes the other operand's type where it keeps its value. */
function unify(a: ScalarExpr, b: ScalarExpr): [ScalarExpr, ScalarExpr] {
  const [ta, tb] = [typeOf(a), typeOf(b)];
  if (ta === tb) return [a, b];
  if (a.kind === "literal" && b.kind !== "literal" && fits(a.value, tb)) return [lit(a.value, tb), b];
  if (b.kind === "literal" && a.kind !== "literal" && fits(b.value, ta)) return [a, lit(b.value, ta)];
  const t = join(ta, tb);
  return [to(t, a), to(t, b)];
}

const FLOAT_ARGS = new Set(["exp", "log", "sqrt", "tanh", "cos", "sin", "pow", "trunc", "floor", "isnan"]);

/** A call's arguments as its function takes them. */
function callArgs(fn: string, args: ScalarExpr[]): ScalarExpr[] {
  if (fn === "max" || fn === "min" || fn === "pow") {
    const [a, b] = unify(...((fn === "pow" ? args.map(float) : args.map(numeric)) as [ScalarExpr, ScalarExpr]));
    return [a, b];
  }
  if (fn === "imul") return args.map((a) => to("i32", a));
  if (FLOAT_ARGS.has(fn)) return args.map(float);
  const helper = helperFunction(fn);
  if (!helper) return args.map(numeric);
  // A helper's f64 parameter takes any float: each language converts floats implicitly there.
  return args.map((a, i) => (helper.params[i].type === "f64" ? float(a) : to(helper.params[i].type, a)));
}

function expr(e: ScalarExpr): ScalarExpr {
  switch (e.kind) {
    case "literal":
    case "ref":
      return e;
    case "load":
      return { ...e, index: to("i32", expr(e.index)) };
    case "unary":
      return e.op === "not" ? { ...e, a: condition(expr(e.a)) } : { ...e, a: numeric(expr(e.a)) };
    case "binary": {
      const [a, b] = [expr(e.a), expr(e.b)];
      if (e.op === "&&" || e.op === "||") return bin(e.op, condition(a), condition(b));
      if (e.op === "<<" || e.op === ">>") return bin(e.op, numeric(a), numeric(b));
      if ((e.op === "==" || e.op === "!=") && typeOf(a) === "bool" && typeOf(b) === "bool") return bin(e.op, a, b);
      return bin(e.op, ...unify(numeric(a), numeric(b)));
    }
    case "call":
      return { ...e, args: callArgs(e.fn, e.args.map(expr)) };
    case "apply":
      return { ...e, args: callArgs(e.fn, e.args.map(expr)) };
    case "select":
      return select(condition(expr(e.cond)), ...unify(expr(e.a), expr(e.b)));
    case "cast": {
      const a = expr(e.a);
      if (a.kind === "literal" && fits(a.value, e.to)) return lit(a.value, e.to);
      return typeOf(a) === e.to ? a : { ...e, a };
    }
    case "round": {
      const a = expr(e.a);
      if (e.dtype === "bool") return asBool(condition(a));
      return round(e.dtype, isFloat(e.dtype) ? float(a) : numeric(a));
    }
    case "bitcast":
      return { ...e, a: to(e.to === "u32" ? "f32" : "u32", expr(e.a)) };
  }
}

function stmts(list: readonly Stmt[], outer: ReadonlyMap<string, ScalarType>): Stmt[] {
  const types = new Map(outer);
  return list.map((s): Stmt => {
    switch (s.kind) {
      case "let":
        types.set(s.name, s.type);
        return s.value ? { ...s, value: to(s.type, expr(s.value)) } : s;
      case "assign": {
        const t = types.get(s.name);
        if (!t) throw new Error(`explicitCasts: ${s.name} is assigned but not declared`);
        return { ...s, value: to(t, expr(s.value)) };
      }
      case "store": {
        const value = expr(s.value);
        // A 16-bit float store rounds any float itself (its encoding helper takes f64).
        const keep = (s.dtype === "f16" || s.dtype === "bf16") && isFloat(typeOf(value));
        return { ...s, index: to("i32", expr(s.index)), value: keep ? value : to(s.dtype, value) };
      }
      case "loop":
        return { ...s, start: to("i32", expr(s.start)), end: to("i32", expr(s.end)), body: stmts(s.body, new Map([...types, [s.index, "i32"]])) };
      case "while":
        return { ...s, cond: condition(expr(s.cond)), body: stmts(s.body, types) };
      case "if":
        return { ...s, cond: condition(expr(s.cond)), then: stmts(s.then, types), else: stmts(s.else, types) };
      case "return":
        return { ...s, value: expr(s.value) };
      case "fail":
        return { ...s, values: s.values.map((v) => to("i32", expr(v))) };
      case "shared":
        types.set(s.name, s.type);
        return s;
      case "combine":
        types.set(s.name, s.type);
        return { ...s, value: to(s.type, expr(s.value)) };
      default:
        return s;
    }
  });
}

/** The kernel with every conversion explicit (see the top of this file). */
export function explicitCasts(kernel: Kernel): Kernel {
  const dims = kernel.dims.map((_, i): [string, ScalarType] => [dimParam(i), "i32"]);
  return { ...kernel, body: stmts(kernel.body, new Map(dims)) };
}
