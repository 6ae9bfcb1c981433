// ONNX spellings of difftc's primitive ops: elementwise, reductions, shape ops, matmul and
// sources. Semantics are the registry's (compiler/ir/ops/*.ts); where ONNX differs on an
// edge that matters (integer division by zero, bool arithmetic), the rule adds the fix.
import { reducedAxes } from "../../../compiler/ir/ops/reduce.ts";
import { sliceRange, transposePerm } from "../../../compiler/ir/ops/shape.ts";
import { normalizeAxis, numel, stridesOf } from "../../../compiler/ir/types.ts";
import { type Lowering, onnxType, type OnnxRule } from "./builder.ts";
import { OnnxType } from "./model.ts";

/** ONNX arithmetic does not take bool: compute in int32 and cast back (bool is x != 0). */
function boolSafe(rule: OnnxRule): OnnxRule {
  return (cx, args) => {
    if (!cx.operands.some((o) => o.dtype === "bool")) return rule(cx, args);
    const ints = args.map((a, i) => (cx.operands[i].dtype === "bool" ? cx.b.node("Cast", [a], { to: { i: OnnxType.INT32 } }) : a));
    const operands = cx.operands.map((o) => (o.dtype === "bool" ? { ...o, dtype: "i32" as const } : o));
    const result = rule({ ...cx, operands, out: { ...cx.out, dtype: cx.out.dtype === "bool" ? "i32" : cx.out.dtype } }, ints);
    return cx.out.dtype === "bool" ? cx.b.node("Cast", [result], { to: { i: OnnxType.BOOL } }) : result;
  };
}

const simple = (opType: string): OnnxRule => boolSafe((cx, args) => cx.b.node(opType, args));

/** Integer division truncates like C, but dividing by zero must give 0, not a crash. */
const divide: OnnxRule = boolSafe((cx, [a, b]) => {
  if (cx.out.dtype !== "i32") return cx.b.node("Div", [a, b]);
  const zero = cx.b.scalar(0, OnnxType.INT32);
  const isZero = cx.b.node("Equal", [b, zero]);
  const safe = cx.b.node("Where", [isZero, cx.b.scalar(1, OnnxType.INT32), b]);
  return cx.b.node("Where", [isZero, zero, cx.b.node("Div", [a, safe])]);
});

/** gelu(x) = 0.5 x (1 + erf(x / sqrt 2)), as torch.onnx exports the erf form before opset 20. */
const gelu: OnnxRule = ({ b }, [x]) => {
  const erf = b.node("Erf", [b.node("Mul", [x, b.scalar(Math.SQRT1_2)])]);
  return b.node("Mul", [b.node("Mul", [x, b.scalar(0.5)]), b.node("Add", [erf, b.scalar(1)])]);
};

/** 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
const geluTanh: OnnxRule = ({ b }, [x]) => {
  const cube = b.node("Mul", [b.node("Mul", [x, x]), x]);
  const inner = b.node("Mul", [b.node("Add", [x, b.node("Mul", [cube, b.scalar(0.044715)])]), b.scalar(Math.sqrt(2 / Math.PI))]);
  return b.node("Mul", [b.node("Mul", [x, b.scalar(0.5)]), b.node("Add", [b.node("Tanh", [inner]), b.scalar(1)])]);
};

/** Comparisons return bool natively; only their bool operands need int32. */
const compare = (opType: string, negate = false): OnnxRule => (cx, args) => {
  const ints = args.map((a, i) => (cx.operands[i].dtype === "bool" ? cx.b.node("Cast", [a], { to: { i: OnnxType.INT32 } }) : a));
  const result = cx.b.node(opType, ints);
  return negate ? cx.b.node("Not", [result]) : result;
};

const reduction = (opType: string): OnnxRule =>
  boolSafe((cx, [x]) => {
    const input = cx.operands[0];
    const axes = reducedAxes(cx.op, { dtype: input.dtype, shape: input.shape }, cx.attrs.axes as number[]);
    if (axes.length === 0) return cx.b.node("Identity", [x]);
    return cx.b.node(opType, [x, cx.b.int64s(axes)], { keepdims: { i: cx.attrs.keepdims ? 1 : 0 } });
  });

const slice: OnnxRule = (cx, [x]) => {
  const shape = cx.operands[0].shape;
  const axis = normalizeAxis(cx.attrs.axis as number, shape.length);
  const step = cx.attrs.step as number;
  const { start, count } = sliceRange(shape[axis], cx.attrs.start as number, cx.attrs.end as number, step);
  // Explicit bounds, so ONNX's own clamping never comes into play; a negative step that
  // runs to the front needs an end before index 0, which only a very negative end says.
  let end = start + count * step;
  if (end < 0) end = Number.MIN_SAFE_INTEGER;
  return cx.b.node("Slice", [x, cx.b.int64s([start]), cx.b.int64s([end]), cx.b.int64s([axis]), cx.b.int64s([step])]);
};

/** iota is known at export time: a constant, as a traced PyTorch arange would be. */
const iota: OnnxRule = (cx) => {
  const shape = cx.out.shape;
  const axis = normalizeAxis(cx.attrs.axis as number, shape.length);
  const stride = stridesOf(shape)[axis];
  const data = new Float64Array(numel(shape));
  for (let i = 0; i < data.length; i++) data[i] = Math.floor(i / stride) % shape[axis];
  return cx.b.initializer(onnxType(cx.out.dtype), shape, data);
};

const castTo = (cx: Lowering, x: string) => cx.b.node("Cast", [x], { to: { i: onnxType(cx.out.dtype) } });

export const primitiveRules: Record<string, OnnxRule> = {
  add: simple("Add"),
  sub: simple("Sub"),
  mul: simple("Mul"),
  div: divide,
  pow: simple("Pow"),
  maximum: simple("Max"),
  minimum: simple("Min"),
  neg: simple("Neg"),
  abs: simple("Abs"),
  relu: simple("Relu"),
  exp: simple("Exp"),
  log: simple("Log"),
  sqrt: simple("Sqrt"),
  rsqrt: ({ b }, [x]) => b.node("Reciprocal", [b.node("Sqrt", [x])]),
  tanh: simple("Tanh"),
  cos: simple("Cos"),
  sin: simple("Sin"),
  sigmoid: simple("Sigmoid"),
  silu: ({ b }, [x]) => b.node("Mul", [x, b.node("Sigmoid", [x])]),
  gelu,
  gelu_tanh: geluTanh,
  eq: compare("Equal"),
  ne: compare("Equal", true),
  lt: compare("Less"),
  le: compare("LessOrEqual"),
  gt: compare("Greater"),
  ge: compare("GreaterOrEqual"),
  where: ({ b }, args) => b.node("Where", args),
  cast: (cx, [x]) => castTo(cx, x),

  sum: reduction("ReduceSum"),
  mean: reduction("ReduceMean"),
  max: reduction("ReduceMax"),
  min: reduction("ReduceMin"),

  reshape: (cx, [x]) => cx.b.node("Reshape", [x, cx.b.int64s(cx.out.shape)], { allowzero: { i: 1 } }),
  transpose: (cx, [x]) => cx.b.node("Transpose", [x], { perm: { ints: transposePerm(cx.operands[0].shape.length, cx.attrs.perm as number[]) } }),
  slice,
  concat: (cx, args) => cx.b.node("Concat", args, { axis: { i: normalizeAxis(cx.attrs.axis as number, cx.out.shape.length) } }),
  gather: (cx, args) => cx.b.node("Gather", args, { axis: { i: normalizeAxis(cx.attrs.axis as number, cx.operands[0].shape.length) } }),
  broadcast: (cx, [x]) => cx.b.node("Expand", [x, cx.b.int64s(cx.out.shape)]),
  // transpose_b (b stored [..., m, k]) swaps b's last two axes first: MatMul has no such flag.
  matmul: boolSafe((cx, [x, y]) => {
    const rank = cx.operands[1].shape.length;
    const perm = [...Array(rank).keys()].map((i) => (i < rank - 2 ? i : 2 * rank - 3 - i));
    return cx.b.node("MatMul", [x, cx.attrs.transpose_b ? cx.b.node("Transpose", [y], { perm: { ints: perm } }) : y]);
  }),

  const: (cx) => cx.b.initializer(onnxType(cx.out.dtype), [], [cx.attrs.value as number]),
  iota,
  numel: (cx) => cx.b.initializer(OnnxType.INT32, [], [numel(cx.attrs.shape as number[])]),
};
