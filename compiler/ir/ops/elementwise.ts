// Elementwise ops with NumPy broadcasting. Each op is a scalar function; one loop serves all.
import { saturate } from "../numeric.ts";
import { OpError, type OpDef, registerOp } from "../registry.ts";
import { broadcastIndex, type HostTensor } from "../tensor.ts";
import { broadcastShapes, type DType, type Dim, formatType, isFloat, numel, type TensorType } from "../types.ts";

function broadcastAll(op: string, types: TensorType[]): Dim[] {
  let shape: Dim[] = [];
  for (const t of types) {
    const next = broadcastShapes(shape, t.shape);
    if (!next) throw new OpError(`${op}: shapes ${types.map(formatType).join(" and ")} do not broadcast`);
    shape = next;
  }
  return shape;
}

function sameDType(op: string, types: TensorType[]): DType {
  const d = types[0].dtype;
  if (types.some((t) => t.dtype !== d)) throw new OpError(`${op}: operand dtypes differ (${types.map(formatType).join(", ")}); insert a cast`);
  return d;
}

/** Applies f elementwise over broadcast operands. */
function mapBroadcast(args: HostTensor[], outShape: number[], f: (...xs: number[]) => number): Float64Array {
  const n = numel(outShape);
  const out = new Float64Array(n);
  const idx = args.map((a) => broadcastIndex(a.shape, outShape));
  const data = args.map((a) => a.data);
  if (args.length === 1) {
    const [x] = data;
    const [ix] = idx;
    for (let i = 0; i < n; i++) out[i] = f(x[ix ? ix[i] : i]);
  } else if (args.length === 2) {
    const [x, y] = data;
    const [ix, iy] = idx;
    for (let i = 0; i < n; i++) out[i] = f(x[ix ? ix[i] : i], y[iy ? iy[i] : i]);
  } else {
    const xs = new Array<number>(args.length);
    for (let i = 0; i < n; i++) {
      for (let k = 0; k < args.length; k++) xs[k] = data[k][idx[k] ? idx[k]![i] : i];
      out[i] = f(...xs);
    }
  }
  return out;
}

function elementwise(name: string, operands: string[], doc: string, f: (...xs: number[]) => number, opts: { floatOnly?: boolean; result?: DType; i32?: (...xs: number[]) => number } = {}): OpDef {
  return registerOp({
    name,
    doc,
    operands,
    attrs: {},
    pattern: "elementwise",
    infer: (types) => {
      const dtype = sameDType(name, types);
      if (opts.floatOnly && !isFloat(dtype)) throw new OpError(`${name} needs a float operand, got ${formatType(types[0])}`);
      return { dtype: opts.result ?? dtype, shape: broadcastAll(name, types) };
    },
    interpret: (args, _, out) => mapBroadcast(args, out.shape, out.dtype === "i32" && opts.i32 ? opts.i32 : f),
  });
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

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

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

const binary: [string, string, (a: number, b: number) => number][] = [
  ["add", "a + b", (a, b) => a + b],
  ["sub", "a - b", (a, b) => a - b],
  ["mul", "a * b", (a, b) => a * b],
  ["div", "a / b (integer division truncates toward zero; by zero gives 0)", (a, b) => a / b],
  ["pow", "a ** b", (a, b) => a ** b],
  ["maximum", "the larger of a and b (NaN if either is NaN)", (a, b) => Math.max(a, b)],
  ["minimum", "the smaller of a and b (NaN if either is NaN)", (a, b) => Math.min(a, b)],
];
// i32 products wrap modulo 2^32 as in C, WGSL and CUDA; float64 products lose those bits above 2^53.
const I32: Record<string, (a: number, b: number) => number> = { mul: Math.imul, pow: i32Pow };
for (const [name, doc, f] of binary) elementwise(name, ["a", "b"], `Elementwise ${doc}, with broadcasting${I32[name] ? " (i32 wraps modulo 2^32)" : ""}.`, f, { i32: I32[name] });

const unary: [string, string, (x: number) => number][] = [
  ["neg", "-x", (x) => -x],
  ["exp", "e^x", Math.exp],
  ["log", "natural logarithm", Math.log],
  ["sqrt", "square root", Math.sqrt],
  ["rsqrt", "1 / sqrt(x)", (x) => 1 / Math.sqrt(x)],
  ["abs", "|x|", Math.abs],
  ["tanh", "hyperbolic tangent", Math.tanh],
  ["cos", "cosine (radians)", Math.cos],
  ["sin", "sine (radians)", Math.sin],
  ["sigmoid", "1 / (1 + e^-x)", (x) => 1 / (1 + Math.exp(-x))],
  ["relu", "max(x, 0)", (x) => (x > 0 ? x : 0)],
  ["gelu", "x * Φ(x), the exact (erf) form", (x) => 0.5 * x * (1 + erf(x / Math.SQRT2))],
  ["gelu_tanh", "the tanh approximation of gelu", (x) => 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)))],
  ["silu", "x * sigmoid(x)", (x) => x / (1 + Math.exp(-x))],
];
const FLOAT_ONLY = new Set(["exp", "log", "sqrt", "rsqrt", "tanh", "cos", "sin", "sigmoid", "gelu", "gelu_tanh", "silu"]);
for (const [name, doc, f] of unary) elementwise(name, ["x"], `Elementwise ${doc}.`, f, { floatOnly: FLOAT_ONLY.has(name) });

const comparisons: [string, string, (a: number, b: number) => number][] = [
  ["eq", "a == b", (a, b) => +(a === b)],
  ["ne", "a != b", (a, b) => +(a !== b)],
  ["lt", "a < b", (a, b) => +(a < b)],
  ["le", "a <= b", (a, b) => +(a <= b)],
  ["gt", "a > b", (a, b) => +(a > b)],
  ["ge", "a >= b", (a, b) => +(a >= b)],
];
for (const [name, doc, f] of comparisons) elementwise(name, ["a", "b"], `Elementwise ${doc}, a bool.`, f, { result: "bool" });

registerOp({
  name: "where",
  doc: "Elementwise `cond ? a : b` with broadcasting; cond is bool.",
  operands: ["cond", "a", "b"],
  attrs: {},
  pattern: "elementwise",
  infer: (types) => {
    if (types[0].dtype !== "bool") throw new OpError(`where: the condition must be bool, got ${formatType(types[0])}`);
    return { dtype: sameDType("where", types.slice(1)), shape: broadcastAll("where", types) };
  },
  interpret: (args, _, out) => mapBroadcast(args, out.shape, (c, a, b) => (c ? a : b)),
});

registerOp({
  name: "cast",
  doc: "Converts to another dtype. Float to integer truncates toward zero and saturates at the range (NaN gives 0); to bool is x != 0 (so NaN is true, as in C); floats round to nearest even.",
  operands: ["x"],
  attrs: { dtype: { type: "dtype" } },
  pattern: "elementwise",
  infer: (types, a) => ({ dtype: a.dtype as DType, shape: types[0].shape }),
  interpret: (args, a, out) => {
    const dtype = a.dtype as DType;
    return mapBroadcast(args, out.shape, (x) => saturate(dtype, x));
  },
});
