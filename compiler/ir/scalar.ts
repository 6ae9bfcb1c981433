// Scalar expressions: the language in which the op registry states what an elementwise op
// computes at one element (tinygrad's ops_python idea: one living definition). The
// interpreter evaluates these trees (compiled to closures over float64), and every backend
// prints the same trees through its language table, so an op's meaning exists once.
// The kernel IR (backends/common/kernel) builds its statements from these expressions.
import { INT_RANGE, roundScalar, saturate } from "./numeric.ts";
import type { DType } from "./types.ts";

/** The type of a scalar value: a storage dtype, or a kernel-only type (f64 math, u32 bits, indices). */
export type ScalarType = DType | "f64" | "u32";

export type BinaryOp = "+" | "-" | "*" | "/" | "%" | "<" | "<=" | ">" | ">=" | "==" | "!=" | "&&" | "||" | "&" | "|" | "^" | "<<" | ">>";
export type UnaryOp = "neg" | "not";

export type ScalarExpr =
  | { kind: "literal"; value: number; type: ScalarType }
  /** A named value: an operand, a local or a loop variable. */
  | { kind: "ref"; name: string; type: ScalarType }
  | { kind: "unary"; op: UnaryOp; a: ScalarExpr }
  | { kind: "binary"; op: BinaryOp; a: ScalarExpr; b: ScalarExpr }
  | { kind: "call"; fn: MathFn; args: ScalarExpr[] }
  | { kind: "select"; cond: ScalarExpr; a: ScalarExpr; b: ScalarExpr }
  /** A value converted to another type: float to int truncates (wrapping), int to float is exact. */
  | { kind: "cast"; to: ScalarType; a: ScalarExpr }
  /** A float64 result rounded to a dtype exactly as the interpreter rounds every node (numeric.ts). */
  | { kind: "round"; dtype: DType; a: ScalarExpr }
  /** The same 32 bits read as another type (f32 <-> u32): the 16-bit float conversions need it. */
  | { kind: "bitcast"; to: "f32" | "u32"; a: ScalarExpr }
  /** Kernel IR only: element `index` of a kernel buffer, decoded from its storage to its dtype. */
  | { kind: "load"; buffer: string; dtype: DType; index: ScalarExpr }
  /** Kernel IR only: a call of a helper function written in the kernel IR (f16 conversion, rounding). */
  | { kind: "apply"; fn: string; args: ScalarExpr[]; type: ScalarType };

/**
 * Math functions. Each has one meaning, fixed by `MATH` below for the interpreter; a backend
 * spells it natively where its language has exactly that function, or calls a helper written
 * once in the kernel IR (backends/common/kernel/helpers.ts).
 */
export const MATH_FNS = [
  "exp", "log", "sqrt", "abs", "tanh", "cos", "sin", "pow", "trunc", "floor", "isnan",
  /** The larger / smaller of two; NaN if either is NaN (JS's Math.max; CUDA's fmaxf is not). */
  "max", "min",
  /** i32 product modulo 2^32. */
  "imul",
  /** i32 power by squaring with wrapping products; a negative exponent truncates 1/a^-b. */
  "ipow",
  /** Integer division truncating toward zero; by zero gives 0. */
  "idiv",
  "erf",
  /** Float to integer as `cast` defines it: NaN -> 0, truncate, clamp to the dtype's range. */
  "saturate_i32", "saturate_i8", "saturate_u8",
  /** clamp(roundHalfToEven(x / scale) + zero_point, range); NaN -> zero_point. */
  "quantize_i8", "quantize_u8",
] as const;
export type MathFn = (typeof MATH_FNS)[number];

export const lit = (value: number, type: ScalarType = "f32"): ScalarExpr => ({ kind: "literal", value, type });
export const ref = (name: string, type: ScalarType): ScalarExpr => ({ kind: "ref", name, type });
export const call = (fn: MathFn, ...args: ScalarExpr[]): ScalarExpr => ({ kind: "call", fn, args });
export const bin = (op: BinaryOp, a: ScalarExpr, b: ScalarExpr): ScalarExpr => ({ kind: "binary", op, a, b });
export const neg = (a: ScalarExpr): ScalarExpr => ({ kind: "unary", op: "neg", a });
export const not = (a: ScalarExpr): ScalarExpr => ({ kind: "unary", op: "not", a });
export const select = (cond: ScalarExpr, a: ScalarExpr, b: ScalarExpr): ScalarExpr => ({ kind: "select", cond, a, b });
export const cast = (to: ScalarType, a: ScalarExpr): ScalarExpr => ({ kind: "cast", to, a });
export const round = (dtype: DType, a: ScalarExpr): ScalarExpr => ({ kind: "round", dtype, a });

const COMPARISONS = new Set<BinaryOp>(["<", "<=", ">", ">=", "==", "!=", "&&", "||"]);
const INT_CALLS = new Set<MathFn>(["imul", "ipow", "idiv", "saturate_i32"]);

/** The type of an expression's value, so that typed languages can declare and convert it. */
export function typeOf(e: ScalarExpr): ScalarType {
  switch (e.kind) {
    case "literal":
    case "ref":
      return e.type;
    case "unary":
      return e.op === "not" ? "bool" : typeOf(e.a);
    case "binary":
      return COMPARISONS.has(e.op) ? "bool" : typeOf(e.a);
    case "call":
      if (e.fn === "isnan") return "bool";
      if (e.fn === "saturate_i8" || e.fn === "quantize_i8") return "i8";
      if (e.fn === "saturate_u8" || e.fn === "quantize_u8") return "u8";
      return INT_CALLS.has(e.fn) ? "i32" : typeOf(e.args[0]);
    case "select":
      return typeOf(e.a);
    case "cast":
    case "bitcast":
      return e.to;
    case "round":
    case "load":
      return e.dtype;
    case "apply":
      return e.type;
  }
}

/** The direct children of an expression. */
export function children(e: ScalarExpr): ScalarExpr[] {
  switch (e.kind) {
    case "unary":
    case "cast":
    case "round":
    case "bitcast":
      return [e.a];
    case "binary":
      return [e.a, e.b];
    case "call":
    case "apply":
      return e.args;
    case "select":
      return [e.cond, e.a, e.b];
    case "load":
      return [e.index];
    default:
      return [];
  }
}

/** The math functions an expression calls, so a backend emits only the helpers it needs. */
export function functionsUsed(e: ScalarExpr, into = new Set<MathFn>()): Set<MathFn> {
  if (e.kind === "call") into.add(e.fn);
  for (const c of children(e)) functionsUsed(c, into);
  return into;
}

/** i32 power by squaring with wrapping products; a negative exponent truncates 1/a^-b. */
export function i32Pow(a: number, b: number): number {
  if (b < 0) return Math.trunc(a ** b);
  let result = 1;
  let base = a | 0;
  for (let e = b; e > 0; e = Math.floor(e / 2)) {
    if (e % 2 === 1) result = Math.imul(result, base);
    base = Math.imul(base, base);
  }
  return result;
}

/** erf to float64 accuracy (Abramowitz–Stegun 7.1.26 is too coarse for a reference). */
export function erf(x: number): number {
  // Series for small |x|, continued fraction (Lentz) for the tail of erfc.
  const ax = Math.abs(x);
  if (ax < 2.5) {
    let term = x;
    let sum = x;
    const x2 = x * x;
    for (let n = 1; n < 200; n++) {
      term *= -x2 / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  if (ax > 6) return Math.sign(x);
  // erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + 1/2/(x + 1/(x + 3/2/(x + ...))))
  let f = ax;
  for (let n = 60; n >= 1; n--) f = ax + n / 2 / f;
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return Math.sign(x) * (1 - erfc);
}


/** Rounds to the nearest integer, ties to the even one (2.5 -> 2, 3.5 -> 4, -2.5 -> -2). */
export function roundHalfToEven(x: number): number {
  const r = Math.round(x); // ties go up, so a tie is exactly r - x === 0.5
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

const saturating = (dtype: "i32" | "i8" | "u8") => (x: number) => saturate(dtype, x);
const quantizing = (dtype: "i8" | "u8") => (x: number, scale: number, zeroPoint: number) => {
  const [lo, hi] = INT_RANGE[dtype]!;
  const v = roundHalfToEven(x / scale) + zeroPoint;
  return Number.isNaN(v) ? zeroPoint : v < lo ? lo : v > hi ? hi : v;
};

/** What each math function computes, in float64: the interpreter's definition of it. */
export const MATH: Record<MathFn, (...xs: number[]) => number> = {
  exp: Math.exp,
  log: Math.log,
  sqrt: Math.sqrt,
  abs: Math.abs,
  tanh: Math.tanh,
  cos: Math.cos,
  sin: Math.sin,
  pow: (a, b) => a ** b,
  trunc: Math.trunc,
  floor: Math.floor,
  isnan: (x) => +Number.isNaN(x),
  max: Math.max,
  min: Math.min,
  imul: Math.imul,
  ipow: i32Pow,
  idiv: (a, b) => (b === 0 ? 0 : Math.trunc(a / b)),
  erf,
  saturate_i32: saturating("i32"),
  saturate_i8: saturating("i8"),
  saturate_u8: saturating("u8"),
  quantize_i8: quantizing("i8"),
  quantize_u8: quantizing("u8"),
};

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

const BINARY: Record<BinaryOp, (a: number, b: number) => number> = {
  "+": (a, b) => a + b,
  "-": (a, b) => a - b,
  "*": (a, b) => a * b,
  "/": (a, b) => a / b,
  "%": (a, b) => a % b,
  "<": (a, b) => +(a < b),
  "<=": (a, b) => +(a <= b),
  ">": (a, b) => +(a > b),
  ">=": (a, b) => +(a >= b),
  "==": (a, b) => +(a === b),
  "!=": (a, b) => +(a !== b),
  "&&": (a, b) => +(a !== 0 && b !== 0),
  "||": (a, b) => +(a !== 0 || b !== 0),
  "&": (a, b) => a & b,
  "|": (a, b) => a | b,
  "^": (a, b) => a ^ b,
  "<<": (a, b) => a << b,
  ">>": (a, b) => a >> b,
};

/**
 * Compiles an expression over the named operands into a float64 function (closures, no code
 * generation): how the interpreter evaluates an op's registered meaning.
 */
export function compileScalar(e: ScalarExpr, operands: readonly string[]): (...xs: number[]) => number {
  const compile = (x: ScalarExpr): ((env: number[]) => number) => {
    switch (x.kind) {
      case "literal": {
        const v = x.value;
        return () => v;
      }
      case "ref": {
        const i = operands.indexOf(x.name);
        if (i < 0) throw new Error(`scalar expression refers to ${x.name}, which is not an operand`);
        return (env) => env[i];
      }
      case "unary": {
        const a = compile(x.a);
        return x.op === "neg" ? (env) => -a(env) : (env) => +(a(env) === 0);
      }
      case "binary": {
        const [a, b, f] = [compile(x.a), compile(x.b), BINARY[x.op]];
        return (env) => f(a(env), b(env));
      }
      case "call": {
        const args = x.args.map(compile);
        const f = MATH[x.fn];
        if (args.length === 1) {
          const [a] = args;
          return (env) => f(a(env));
        }
        return (env) => f(...args.map((g) => g(env)));
      }
      case "select": {
        const [c, a, b] = [compile(x.cond), compile(x.a), compile(x.b)];
        return (env) => (c(env) !== 0 ? a(env) : b(env));
      }
      case "cast": {
        const a = compile(x.a);
        const to = x.to;
        if (to === "f64") return a;
        return to === "u32" ? (env) => a(env) >>> 0 : (env) => roundScalar(to, a(env));
      }
      case "round": {
        const a = compile(x.a);
        const dtype = x.dtype;
        return (env) => roundScalar(dtype, a(env));
      }
      case "bitcast": {
        const a = compile(x.a);
        return x.to === "u32"
          ? (env) => ((f32[0] = a(env)), u32[0])
          : (env) => ((u32[0] = a(env)), f32[0]);
      }
      case "load":
      case "apply":
        throw new Error(`a kernel IR ${x.kind} has no meaning outside a kernel`);
    }
  };
  const body = compile(e);
  // One operand array, reused: the interpreter calls this once per element, and never re-entrantly.
  const env = new Array<number>(operands.length);
  if (operands.length === 1) return (a) => ((env[0] = a), body(env));
  if (operands.length === 2) return (a, b) => ((env[0] = a), (env[1] = b), body(env));
  return (...xs) => {
    for (let i = 0; i < xs.length; i++) env[i] = xs[i];
    return body(env);
  };
}
