// tfjs spellings of difftc's primitive ops and of softmax, the norms and rope. Semantics are
// the registry's; where tfjs differs (int32 division floors, softmax only on the last axis,
// no bool arithmetic), the rule adds the fix.
import * as tf from "@tensorflow/tfjs-core";
import { reducedAxes } from "../../../compiler/ir/ops/reduce.ts";
import { sliceRange, transposePerm } from "../../../compiler/ir/ops/shape.ts";
import { normalizeAxis, numel, stridesOf } from "../../../compiler/ir/types.ts";
import { tfDType, type TfjsLowering, type TfjsRule } from "./kernel.ts";

/** tfjs arithmetic on bool is not defined: compute in int32 and cast back (bool is x != 0). */
function boolSafe(rule: TfjsRule): TfjsRule {
  return (cx) => {
    if (!cx.operands.some((o) => o.dtype === "bool")) return rule(cx);
    const operands = cx.operands.map((o) => (o.dtype === "bool" ? { ...o, dtype: "i32" as const } : o));
    const kernel = rule({ ...cx, operands, out: { ...cx.out, dtype: cx.out.dtype === "bool" ? "i32" : cx.out.dtype } });
    return (args) => {
      const result = kernel(args.map((a) => (a.dtype === "bool" ? tf.cast(a, "int32") : a)));
      return cx.out.dtype === "bool" ? tf.cast(result, "bool") : result;
    };
  };
}

const unary = (f: (x: tf.Tensor) => tf.Tensor): TfjsRule => boolSafe(() => ([x]) => f(x));
const binary = (f: (a: tf.Tensor, b: tf.Tensor) => tf.Tensor): TfjsRule => boolSafe(() => ([a, b]) => f(a, b));

/** difftc's integer division truncates and gives 0 for a zero divisor; tf.div floors. */
const divide: TfjsRule = boolSafe((cx) => {
  if (cx.out.dtype !== "i32") return ([a, b]) => tf.div(a, b);
  return ([a, b]) => {
    const isZero = tf.equal(b, 0);
    const safe = tf.where(isZero, tf.onesLike(b), b);
    const magnitude = tf.floorDiv(tf.abs(a), tf.abs(safe));
    return tf.where(isZero, tf.zerosLike(a), tf.mul(tf.mul(tf.sign(a), tf.sign(safe)), magnitude));
  };
});

const gelu = (x: tf.Tensor) => tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1));
const geluTanh = (x: tf.Tensor) => {
  const inner = tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), Math.sqrt(2 / Math.PI));
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1));
};

const compare = (f: (a: tf.Tensor, b: tf.Tensor) => tf.Tensor): TfjsRule => () => ([a, b]) =>
  a.dtype === "bool" ? f(tf.cast(a, "int32"), tf.cast(b, "int32")) : f(a, b);

const reduction = (f: (x: tf.Tensor, axes: number[], keepDims: boolean) => tf.Tensor): TfjsRule =>
  boolSafe((cx) => {
    const input = cx.operands[0];
    const axes = reducedAxes(cx.op, input, cx.attrs.axes as number[]);
    const keepDims = cx.attrs.keepdims as boolean;
    const dtype = tfDType(cx.out.dtype);
    if (axes.length === 0) return ([x]) => tf.clone(x);
    // tf.mean of int32 is float32; difftc's integer mean truncates.
    return ([x]) => {
      const r = f(x, axes, keepDims);
      return r.dtype === dtype ? r : tf.cast(r, dtype);
    };
  });

/** tf.softmax works on the last axis only; other axes go there and back. */
const softmax: TfjsRule = (cx) => {
  const rank = cx.out.shape.length;
  const axis = normalizeAxis(cx.attrs.axis as number, rank);
  if (axis === rank - 1) return ([x]) => tf.softmax(x);
  const perm = [...Array(rank).keys()];
  [perm[axis], perm[rank - 1]] = [perm[rank - 1], perm[axis]];
  return ([x]) => tf.transpose(tf.softmax(tf.transpose(x, perm)), perm);
};

const slice: TfjsRule = (cx) => {
  const shape = cx.operands[0].shape;
  const axis = normalizeAxis(cx.attrs.axis as number, shape.length);
  const step = cx.attrs.step as number;
  const { start, count } = sliceRange(shape[axis], cx.attrs.start as number, cx.attrs.end as number, step);
  if (step === 1) {
    const begin = shape.map((_, i) => (i === axis ? start : 0));
    const size = shape.map((d, i) => (i === axis ? count : d));
    return ([x]) => tf.slice(x, begin, size);
  }
  const indices = cx.keep(tf.tensor1d(Array.from({ length: count }, (_, i) => start + i * step), "int32"));
  return ([x]) => tf.gather(x, indices, axis);
};

/** (a @ b) with NumPy's 1-D rules: a 1-D a is a row, a 1-D b a column, and that axis drops; b stored transposed with transpose_b. */
const matmul: TfjsRule = boolSafe((cx) => {
  const [a, b] = cx.operands;
  return ([x, y]) => {
    const lhs = a.shape.length === 1 ? tf.reshape(x, [1, a.shape[0]]) : x;
    const rhs = b.shape.length === 1 ? tf.reshape(y, [b.shape[0], 1]) : y;
    const product = tf.matMul(lhs, rhs, false, cx.attrs.transpose_b === true);
    return a.shape.length === 1 || b.shape.length === 1 ? tf.reshape(product, cx.out.shape) : product;
  };
});

const iota: TfjsRule = (cx) => {
  const shape = cx.out.shape;
  const axis = normalizeAxis(cx.attrs.axis as number, shape.length);
  const stride = stridesOf(shape)[axis];
  const data = Array.from({ length: numel(shape) }, (_, i) => Math.floor(i / stride) % shape[axis]);
  const t = cx.keep(tf.tensor(data, shape, tfDType(cx.out.dtype)));
  return () => t;
};

const rmsnorm: TfjsRule = (cx) => ([x, w]) => tf.mul(tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), cx.attrs.eps as number))), w);

const layernorm: TfjsRule = (cx) => ([x, w, b]) => {
  const { mean, variance } = tf.moments(x, -1, true);
  const normalized = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, cx.attrs.eps as number)));
  return b ? tf.add(tf.mul(normalized, w), b) : tf.mul(normalized, w);
};

/** Rotary embedding: the pairs exposed by a reshape ([.., half, 2] interleaved, [.., 2, half] NeoX-style) and rotated. */
const rope: TfjsRule = (cx) => {
  const shape = cx.out.shape;
  const c = shape[shape.length - 1];
  const n = shape[shape.length - 2];
  const headDim = (cx.attrs.head_dim as number) || c;
  const half = headDim / 2;
  const theta = cx.attrs.theta as number;
  const inverseFrequency = cx.keep(tf.tensor1d(Array.from({ length: half }, (_, i) => theta ** ((-2 * i) / headDim))));
  const interleaved = cx.attrs.interleaved as boolean;
  const pairShape = interleaved ? [half, 2] : [2, half];
  const pairAxis = interleaved ? -1 : -2;
  const tableShape = interleaved ? [n, 1, half, 1] : [n, 1, 1, half];
  return ([x, pos]) => {
    const angles = tf.mul(tf.reshape(tf.cast(pos, "float32"), [n, 1]), inverseFrequency);
    const cos = tf.reshape(tf.cos(angles), tableShape);
    const sin = tf.reshape(tf.sin(angles), tableShape);
    const pairs = tf.reshape(x, [...shape.slice(0, -1), c / headDim, ...pairShape]);
    const [x0, x1] = tf.split(pairs, 2, pairAxis);
    const y0 = tf.sub(tf.mul(x0, cos), tf.mul(x1, sin));
    const y1 = tf.add(tf.mul(x0, sin), tf.mul(x1, cos));
    return tf.reshape(tf.concat([y0, y1], pairAxis), shape);
  };
};

const constant: TfjsRule = (cx) => {
  const t = cx.keep(tf.scalar(cx.attrs.value as number, tfDType(cx.out.dtype)));
  return () => t;
};

const withAxis = (cx: TfjsLowering, rank: number) => normalizeAxis(cx.attrs.axis as number, rank);

export const primitiveRules: Record<string, TfjsRule> = {
  add: binary(tf.add),
  sub: binary(tf.sub),
  mul: binary(tf.mul),
  div: divide,
  pow: binary(tf.pow),
  maximum: binary(tf.maximum),
  minimum: binary(tf.minimum),
  neg: unary(tf.neg),
  abs: unary(tf.abs),
  relu: unary(tf.relu),
  exp: unary(tf.exp),
  log: unary(tf.log),
  sqrt: unary(tf.sqrt),
  rsqrt: unary(tf.rsqrt),
  tanh: unary(tf.tanh),
  cos: unary(tf.cos),
  sin: unary(tf.sin),
  sigmoid: unary(tf.sigmoid),
  silu: unary((x) => tf.mul(x, tf.sigmoid(x))),
  gelu: unary(gelu),
  gelu_tanh: unary(geluTanh),
  eq: compare(tf.equal),
  ne: compare(tf.notEqual),
  lt: compare(tf.less),
  le: compare(tf.lessEqual),
  gt: compare(tf.greater),
  ge: compare(tf.greaterEqual),
  where: () => ([c, a, b]) => tf.where(c, a, b),
  cast: (cx) => ([x]) => tf.cast(x, tfDType(cx.out.dtype)),

  sum: reduction(tf.sum),
  mean: reduction(tf.mean),
  max: reduction(tf.max),
  min: reduction(tf.min),
  softmax,

  reshape: (cx) => ([x]) => tf.reshape(x, cx.out.shape),
  transpose: (cx) => ([x]) => tf.transpose(x, transposePerm(cx.operands[0].shape.length, cx.attrs.perm as number[])),
  slice,
  concat: (cx) => (args) => tf.concat(args, withAxis(cx, cx.out.shape.length)),
  gather: (cx) => ([table, indices]) => tf.gather(table, indices, withAxis(cx, cx.operands[0].shape.length)),
  broadcast: (cx) => ([x]) => tf.broadcastTo(x, cx.out.shape),
  matmul,

  const: constant,
  iota,
  numel: (cx) => {
    const t = cx.keep(tf.scalar(numel(cx.attrs.shape as number[]), "int32"));
    return () => t;
  },
  rmsnorm,
  layernorm,
  rope,
};
