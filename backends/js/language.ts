// How JavaScript spells the kernel IR. Every number is a float64, so float math is exact to
// float64 and rounding happens where the IR says (Math.fround for f32, the 16-bit helpers);
// typed-array stores convert to the storage type (f32 rounds, integers truncate and wrap).
import type { ScalarType } from "../../compiler/ir/scalar.ts";
import type { DType } from "../../compiler/ir/types.ts";
import { dimParam, ERRORS_PARAM } from "../common/kernel/ir.ts";
import type { Language } from "../common/kernel/render.ts";

const NATIVE: Partial<Record<string, (a: string[]) => string>> = {
  exp: ([x]) => `Math.exp(${x})`,
  log: ([x]) => `Math.log(${x})`,
  sqrt: ([x]) => `Math.sqrt(${x})`,
  abs: ([x]) => `Math.abs(${x})`,
  tanh: ([x]) => `Math.tanh(${x})`,
  cos: ([x]) => `Math.cos(${x})`,
  sin: ([x]) => `Math.sin(${x})`,
  pow: ([x, y]) => `(${x} ** ${y})`,
  trunc: ([x]) => `Math.trunc(${x})`,
  floor: ([x]) => `Math.floor(${x})`,
  isnan: ([x]) => `(${x} !== ${x})`,
  // Math.max and Math.min return NaN when either operand is NaN: the IR's meaning.
  max: ([x, y]) => `Math.max(${x}, ${y})`,
  min: ([x, y]) => `Math.min(${x}, ${y})`,
  imul: ([x, y]) => `Math.imul(${x}, ${y})`,
};

/** Conversion of a float64 value to an integer dtype, as a typed-array store would do it. */
const INTEGER: Partial<Record<ScalarType, (a: string) => string>> = {
  i32: (a) => `(${a} | 0)`,
  u32: (a) => `(${a} >>> 0)`,
  i8: (a) => `((${a} << 24) >> 24)`,
  u8: (a) => `(${a} & 255)`,
  bool: (a) => `(${a} !== 0 ? 1 : 0)`,
};

const U32_WRAPPED = new Set(["+", "-", "*", "&", "|", "^", "<<"]);

function literal(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "Infinity";
  if (v === -Infinity) return "(-Infinity)";
  if (Object.is(v, -0)) return "(-0)";
  return v < 0 ? `(${v})` : String(v);
}

const is16 = (d: DType): d is "f16" | "bf16" => d === "f16" || d === "bf16";

/** A value as the storage of `dtype` holds it: 16-bit floats as their bits, a bool as 0 or 1 (Uint8Array would keep a 2). */
export function jsEncode(dtype: DType, value: string, use: (helper: string) => void): string {
  if (is16(dtype)) {
    use(`${dtype}Bits`);
    return `${dtype}Bits(${value})`;
  }
  return dtype === "bool" ? INTEGER.bool!(value) : value;
}

export const jsLanguage: Language = {
  name: "js",
  literal,
  unary: (op, a) => (op === "neg" ? `(-${a})` : `(!${a})`),
  binary: (op, a, b, type) => {
    if (type === "u32") {
      if (op === ">>") return `(${a} >>> ${b})`;
      if (U32_WRAPPED.has(op)) return `((${a} ${op} ${b}) >>> 0)`;
    }
    return `(${a} ${op === "==" ? "===" : op === "!=" ? "!==" : op} ${b})`;
  },
  math: (fn, args) => NATIVE[fn]?.(args),
  select: (c, a, b) => `(${c} ? ${a} : ${b})`,
  cast: (to, _from, a) => (to === "f32" ? `Math.fround(${a})` : (INTEGER[to]?.(a) ?? a)),
  round: (dtype, a, use) => {
    if (dtype === "f32") return `Math.fround(${a})`;
    if (is16(dtype)) {
      use(`${dtype}Bits`);
      use(`${dtype}FromBits`);
      return `${dtype}FromBits(${dtype}Bits(${a}))`;
    }
    return INTEGER[dtype]!(a);
  },
  // One scratch word seen as both types (the module's prelude declares F32 and U32).
  bitcast: (to, a) => (to === "u32" ? `(F32[0] = ${a}, U32[0])` : `(U32[0] = ${a}, F32[0])`),
  load: (buffer, dtype, index, use) => {
    if (!is16(dtype)) return `${buffer}[${index}]`;
    use(`${dtype}FromBits`);
    return `${dtype}FromBits(${buffer}[${index}])`;
  },
  store: (buffer, dtype, index, value, use) => `${buffer}[${index}] = ${jsEncode(dtype, value, use)};`,
  declare: (name, _type, mutable, value) => `${mutable ? "let" : "const"} ${name}${value === undefined ? "" : ` = ${value}`};`,
  loop: (index, start, end, step) => `for (let ${index} = ${start}; ${index} < ${end}; ${step === 1 ? `${index}++` : `${index} += ${step}`}) {`,
  shared: (name, _type, size) => `const ${name} = new Float64Array(${size});`,
  // A JS kernel runs its workgroup loops one thread after another, which a barrier cannot
  // order; the JS target's lowering never asks for one.
  barrier: "/* barrier: unreachable in JS kernels */",
  combine: () => {
    throw new Error("JS: a combine needs a cooperative kernel (a workgroup of threads per row); the JS target's lowering never asks for one");
  },
  fail: (code, values) => [`if (${ERRORS_PARAM}[0] === 0) { ${[`${ERRORS_PARAM}[0] = ${code};`, ...values.map((v, i) => `${ERRORS_PARAM}[${i + 1}] = ${v};`)].join(" ")} }`],
  kernel: (k, body) => {
    const params = [...k.buffers.map((b) => b.name), ...k.dims.map((_, i) => dimParam(i)), ...(k.errors.length ? [ERRORS_PARAM] : [])];
    return [`function ${k.name}(${params.join(", ")}) {`, ...body, "}"].join("\n");
  },
  helper: (fn, body) => [`function ${fn.name}(${fn.params.map((p) => p.name).join(", ")}) {`, ...body, "}"].join("\n"),
};

/** What the module declares once for the spellings above. */
export const JS_PRELUDE = "const F32 = new Float32Array(1);\nconst U32 = new Uint32Array(F32.buffer);";
