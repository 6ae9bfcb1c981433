// How JavaScript spells scalar expressions, and the helper functions an artifact carries.
// Helpers are emitted from the compiler's own definitions (numeric.ts, the erf of the
// elementwise ops), so the artifact computes exactly what the interpreter computes.
import { bf16Bits, bf16FromBits, f16Bits, f16FromBits, INT_RANGE } from "../../compiler/ir/numeric.ts";
import { erf, i32Pow } from "../../compiler/ir/ops/elementwise.ts";
import { quantizeValue, roundHalfToEven } from "../../compiler/ir/ops/quant.ts";
import type { DType } from "../../compiler/ir/types.ts";
import type { MathFn, Spelling } from "../common/expr.ts";

const CALLS: Partial<Record<MathFn, (a: string[]) => string>> = {
  exp: ([x]) => `Math.exp(${x})`,
  log: ([x]) => `Math.log(${x})`,
  sqrt: ([x]) => `Math.sqrt(${x})`,
  abs: ([x]) => `Math.abs(${x})`,
  tanh: ([x]) => `Math.tanh(${x})`,
  cos: ([x]) => `Math.cos(${x})`,
  sin: ([x]) => `Math.sin(${x})`,
  pow: ([x, y]) => `(${x} ** ${y})`,
  imul: ([x, y]) => `Math.imul(${x}, ${y})`,
  max: ([x, y]) => `Math.max(${x}, ${y})`,
  min: ([x, y]) => `Math.min(${x}, ${y})`,
  isnan: ([x]) => `(${x} !== ${x})`,
  trunc: ([x]) => `Math.trunc(${x})`,
  // Typed-array stores truncate and wrap, and store non-finite values as 0: integer
  // division needs nothing more than `/`.
  idiv: ([x, y]) => `(${x} / ${y})`,
};

export const jsSpelling: Spelling = {
  literal: (v) => (Number.isNaN(v) ? "NaN" : v === Infinity ? "Infinity" : v === -Infinity ? "(-Infinity)" : v < 0 || Object.is(v, -0) ? `(${String(v === 0 ? "-0" : v)})` : String(v)),
  call: (fn, args) => CALLS[fn]?.(args) ?? `${fn}(${args.join(", ")})`,
  select: (c, a, b) => `(${c} ? ${a} : ${b})`,
  unary: (op, a) => (op === "neg" ? `(-${a})` : `(!${a})`),
  binary: (op, a, b) => `(${a} ${op === "==" ? "===" : op === "!=" ? "!==" : op} ${b})`,
};

/** Source of the helpers a module needs, each emitted once. */
export function helperSource(name: string): string {
  const fromCompiler: Record<string, () => string> = {
    f16Bits: () => f16Bits.toString(),
    f16FromBits: () => f16FromBits.toString(),
    bf16Bits: () => bf16Bits.toString(),
    bf16FromBits: () => bf16FromBits.toString(),
    erf: () => erf.toString(),
    quantizeValue: () => quantizeValue.toString(),
    roundHalfToEven: () => roundHalfToEven.toString(),
    toBool: () => "function toBool(x) { return x !== 0 ? 1 : 0; }",
    ipow: () => i32Pow.toString().replace("function i32Pow", "function ipow"),
  };
  const quantizing = name.match(/^quantize_(i8|u8)$/);
  if (quantizing) {
    const [lo, hi] = INT_RANGE[quantizing[1] as DType]!;
    return `function ${name}(x, s, zp) { return quantizeValue(x, s, zp, ${lo}, ${hi}); }`;
  }
  const saturating = name.match(/^saturate_(i32|i8|u8)$/);
  if (saturating) {
    const [lo, hi] = INT_RANGE[saturating[1] as DType]!;
    return `function ${name}(x) { return x !== x ? 0 : Math.min(${hi}, Math.max(${lo}, Math.trunc(x))); }`;
  }
  const make = fromCompiler[name];
  if (!make) throw new Error(`no JS helper ${name}`);
  return make();
}

/** The helpers each helper calls. */
export function helperDependencies(name: string): string[] {
  if (name.startsWith("quantize_")) return ["quantizeValue"];
  if (name === "quantizeValue") return ["roundHalfToEven"];
  if (name.startsWith("attentionSimd_")) return ["attentionSimd"];
  return [];
}

/** Helpers that other helpers call, and the scratch arrays the 16-bit conversions use. */
export const HELPER_PRELUDE = "const f32 = new Float32Array(1);\nconst u32 = new Uint32Array(f32.buffer);";

export function loadExpr(dtype: DType, e: string, helpers: Set<string>): string {
  if (dtype === "f16" || dtype === "bf16") {
    helpers.add(`${dtype}FromBits`);
    return `${dtype}FromBits(${e})`;
  }
  return e;
}

export function storeExpr(dtype: DType, e: string, helpers: Set<string>): string {
  if (dtype === "f16" || dtype === "bf16") {
    helpers.add(`${dtype}Bits`);
    return `${dtype}Bits(${e})`;
  }
  if (dtype === "bool") {
    helpers.add("toBool");
    return `toBool(${e})`;
  }
  return e;
}

/** The typed array class that stores each dtype (16-bit floats as their bits). */
export const ARRAY_TYPE: Record<DType, string> = {
  f32: "Float32Array",
  f16: "Uint16Array",
  bf16: "Uint16Array",
  i32: "Int32Array",
  i8: "Int8Array",
  u8: "Uint8Array",
  bool: "Uint8Array",
};
