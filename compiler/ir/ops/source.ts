// Ops with no operands: graph inputs, weights, scalar constants and index ranges.
import { OpError, registerOp } from "../registry.ts";
import { type Dim, type DType, normalizeAxis, numel, stridesOf } from "../types.ts";

const noInterpret = (op: string) => (): Float64Array => {
  throw new Error(`${op} nodes are bound by the interpreter, not computed`);
};

registerOp({
  name: "input",
  doc: "A model input, bound by name at run time; its symbolic sizes bind the graph's dims.",
  operands: [],
  attrs: { name: { type: "string" }, dtype: { type: "dtype" }, shape: { type: "shape" } },
  pattern: "source",
  infer: (_, a) => ({ dtype: a.dtype as DType, shape: a.shape as Dim[] }),
  interpret: noInterpret("input"),
});

registerOp({
  name: "param",
  doc: "A weight, loaded by its hierarchical name (`layers.2.attn.q_proj.weight`). `init` and `init_args` say how seeded weights are drawn: normal(mean, std), uniform(lo, hi) or constant(value).",
  operands: [],
  attrs: {
    name: { type: "string" },
    dtype: { type: "dtype" },
    shape: { type: "shape" },
    init: { type: "string", oneOf: ["normal", "uniform", "constant"], default: "normal" },
    init_args: { type: "floats", default: [0, 0.02] },
  },
  pattern: "source",
  infer: (_, a) => {
    const shape = a.shape as Dim[];
    if (shape.some((d) => typeof d !== "number")) throw new OpError(`a param's shape must be static, got [${shape.join(", ")}]`);
    return { dtype: a.dtype as DType, shape };
  },
  interpret: noInterpret("param"),
});

registerOp({
  name: "const",
  doc: "A scalar constant of the given dtype (rounded to it). Shape [].",
  operands: [],
  attrs: { value: { type: "float" }, dtype: { type: "dtype", default: "f32" } },
  pattern: "source",
  infer: (_, a) => ({ dtype: a.dtype as DType, shape: [] }),
  interpret: (_, a) => Float64Array.of(a.value as number),
});

registerOp({
  name: "iota",
  doc: "out[i...] = i[axis]: the index along one axis, broadcast over the others.",
  operands: [],
  attrs: { shape: { type: "shape" }, axis: { type: "int", default: 0 }, dtype: { type: "dtype", default: "i32" } },
  pattern: "source",
  infer: (_, a) => {
    const shape = a.shape as Dim[];
    if (normalizeAxis(a.axis as number, shape.length) < 0) throw new OpError(`iota: axis ${a.axis} is out of range for shape [${shape.join(", ")}]`);
    return { dtype: a.dtype as DType, shape };
  },
  interpret: (_, a, out) => {
    const axis = normalizeAxis(a.axis as number, out.shape.length);
    const stride = stridesOf(out.shape)[axis];
    const size = out.shape[axis];
    const data = new Float64Array(numel(out.shape));
    for (let i = 0; i < data.length; i++) data[i] = Math.floor(i / stride) % size;
    return data;
  },
});

registerOp({
  name: "numel",
  doc: "The number of elements of `shape` (a product of sizes and dims) as an i32 scalar: how decompositions read run-time sizes, such as the causal offset M - N.",
  operands: [],
  attrs: { shape: { type: "shape" } },
  pattern: "source",
  infer: () => ({ dtype: "i32", shape: [] }),
  interpret: (_, a) => Float64Array.of(numel(a.shape as number[])),
});
