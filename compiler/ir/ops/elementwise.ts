// Elementwise ops with NumPy broadcasting. Each op states its meaning at one element as a
// scalar expression (scalar.ts); the interpreter evaluates that expression over broadcast
// operands and every backend prints it, so the meaning is written once, here.
import { type Attrs } from "../graph.ts";
import { OpError, type OpDef, registerOp } from "../registry.ts";
import { bin, call, compileScalar, lit, neg, ref, type ScalarExpr, select } from "../scalar.ts";
import { broadcastIndex, type HostTensor } from "../tensor.ts";
import { broadcastShapes, type DType, type Dim, formatType, isFloat, isInteger, numel, type TensorType } from "../types.ts";

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

/** The interpreter rule of an op with a scalar meaning: that expression at every element. */
export function interpretScalar(def: Pick<OpDef, "scalar">, args: HostTensor[], attrs: Attrs, outShape: number[]): Float64Array {
  const names = args.map((_, i) => `x${i}`);
  const expr = def.scalar!(names.map((n, i) => ref(n, args[i].dtype)), args.map((a) => a.dtype), attrs);
  return mapBroadcast(args, outShape, compileScalar(expr, names));
}

type Meaning = (xs: ScalarExpr[], dtype: DType, attrs: Attrs) => ScalarExpr;

interface ElementwiseOptions {
  floatOnly?: boolean;
  result?: DType;
  /** Exact in every dtype (true), in float dtypes only ("floats"), or needs rounding (absent). */
  exact?: true | "floats";
}

function elementwise(name: string, operands: string[], doc: string, meaning: Meaning, opts: ElementwiseOptions = {}): OpDef {
  const def: OpDef = registerOp({
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
    scalar: (xs, dtypes, attrs) => meaning(xs, dtypes[0], attrs),
    exact: (dtype) => opts.exact === true || (opts.exact === "floats" && isFloat(dtype)),
    interpret: (args, attrs, out) => interpretScalar(def, args, attrs, out.shape),
  });
  return def;
}

const one = (dtype: DType) => lit(1, dtype);

const binary: [string, string, Meaning, ElementwiseOptions?][] = [
  ["add", "a + b", ([a, b]) => bin("+", a, b)],
  ["sub", "a - b", ([a, b]) => bin("-", a, b)],
  // i32 products wrap modulo 2^32 as in C, WGSL and CUDA; float64 products lose those bits above 2^53.
  ["mul", "a * b (i32 wraps modulo 2^32)", ([a, b], d) => (d === "i32" ? call("imul", a, b) : bin("*", a, b))],
  ["div", "a / b (integer division truncates toward zero; by zero gives 0)", ([a, b], d) => (isInteger(d) ? call("idiv", a, b) : bin("/", a, b))],
  ["pow", "a ** b (i32 wraps modulo 2^32)", ([a, b], d) => call(d === "i32" ? "ipow" : "pow", a, b)],
  ["maximum", "the larger of a and b (NaN if either is NaN)", ([a, b]) => call("max", a, b), { exact: true }],
  ["minimum", "the smaller of a and b (NaN if either is NaN)", ([a, b]) => call("min", a, b), { exact: true }],
];
for (const [name, doc, meaning, opts] of binary) elementwise(name, ["a", "b"], `Elementwise ${doc}, with broadcasting.`, meaning, opts);

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const sigmoidOf = (a: ScalarExpr, d: DType) => bin("/", one(d), bin("+", one(d), call("exp", neg(a))));

const unary: [string, string, Meaning, ElementwiseOptions?][] = [
  // The i32 negation of -2^31 wraps, so neg and abs are exact for floats only.
  ["neg", "-x", ([a]) => neg(a), { exact: "floats" }],
  ["exp", "e^x", ([a]) => call("exp", a)],
  ["log", "natural logarithm", ([a]) => call("log", a)],
  ["sqrt", "square root", ([a]) => call("sqrt", a)],
  ["rsqrt", "1 / sqrt(x)", ([a], d) => bin("/", one(d), call("sqrt", a))],
  ["abs", "|x|", ([a]) => call("abs", a), { exact: "floats" }],
  ["tanh", "hyperbolic tangent", ([a]) => call("tanh", a)],
  ["cos", "cosine (radians)", ([a]) => call("cos", a)],
  ["sin", "sine (radians)", ([a]) => call("sin", a)],
  ["sigmoid", "1 / (1 + e^-x)", ([a], d) => sigmoidOf(a, d)],
  ["relu", "max(x, 0)", ([a], d) => select(bin(">", a, lit(0, d)), a, lit(0, d)), { exact: true }],
  ["gelu", "x * Φ(x), the exact (erf) form", ([a], d) => bin("*", bin("*", lit(0.5, d), a), bin("+", one(d), call("erf", bin("/", a, lit(Math.SQRT2, d)))))],
  [
    "gelu_tanh",
    "the tanh approximation of gelu",
    ([a], d) => {
      const inner = bin("*", lit(SQRT_2_OVER_PI, d), bin("+", a, bin("*", bin("*", bin("*", lit(0.044715, d), a), a), a)));
      return bin("*", bin("*", lit(0.5, d), a), bin("+", one(d), call("tanh", inner)));
    },
  ],
  ["silu", "x * sigmoid(x)", ([a], d) => bin("/", a, bin("+", one(d), call("exp", neg(a))))],
];
const FLOAT_ONLY = new Set(["exp", "log", "sqrt", "rsqrt", "tanh", "cos", "sin", "sigmoid", "gelu", "gelu_tanh", "silu"]);
for (const [name, doc, meaning, opts] of unary) elementwise(name, ["x"], `Elementwise ${doc}.`, meaning, { floatOnly: FLOAT_ONLY.has(name), ...opts });

/** A bool as the 0 or 1 every dtype stores it as. */
const asBool = (cond: ScalarExpr) => select(cond, lit(1, "bool"), lit(0, "bool"));

const comparisons: [string, "==" | "!=" | "<" | "<=" | ">" | ">="][] = [
  ["eq", "=="],
  ["ne", "!="],
  ["lt", "<"],
  ["le", "<="],
  ["gt", ">"],
  ["ge", ">="],
];
for (const [name, op] of comparisons)
  elementwise(name, ["a", "b"], `Elementwise a ${op} b, a bool.`, ([a, b]) => asBool(bin(op, a, b)), { result: "bool", exact: true });

const where: OpDef = registerOp({
  name: "where",
  doc: "Elementwise `cond ? a : b` with broadcasting; cond is bool.",
  operands: ["cond", "a", "b"],
  attrs: {},
  pattern: "elementwise",
  infer: (types) => {
    if (types[0].dtype !== "bool") throw new OpError(`where: the condition must be bool, got ${formatType(types[0])}`);
    return { dtype: sameDType("where", types.slice(1)), shape: broadcastAll("where", types) };
  },
  scalar: ([c, a, b]) => select(bin("!=", c, lit(0, "bool")), a, b),
  exact: () => true,
  interpret: (args, attrs, out) => interpretScalar(where, args, attrs, out.shape),
});

const castOp: OpDef = registerOp({
  name: "cast",
  doc: "Converts to another dtype. Float to integer truncates toward zero and saturates at the range (NaN gives 0); to bool is x != 0 (so NaN is true, as in C); floats round to nearest even.",
  operands: ["x"],
  attrs: { dtype: { type: "dtype" } },
  pattern: "elementwise",
  infer: (types, a) => ({ dtype: a.dtype as DType, shape: types[0].shape }),
  scalar: ([x], [from], attrs) => {
    const to = attrs.dtype as DType;
    if (to === "bool") return asBool(bin("!=", x, lit(0, from)));
    if (isInteger(to)) return call(`saturate_${to as "i32" | "i8" | "u8"}`, x);
    return x;
  },
  interpret: (args, attrs, out) => interpretScalar(castOp, args, attrs, out.shape),
});
