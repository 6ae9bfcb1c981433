// ONNX subgraphs for softmax, the norms and rotary embedding, written as torch.onnx exports
// them (ONNX Runtime's optimiser recognises these shapes and fuses them).
import { type OnnxRule } from "./builder.ts";
import { OnnxType } from "./model.ts";

/** x / sqrt(mean(x^2) + eps) * w: the pattern ORT fuses into SimplifiedLayerNormalization. */
const rmsnorm: OnnxRule = (cx, [x, w]) => {
  const { b } = cx;
  const meanSquare = b.node("ReduceMean", [b.node("Mul", [x, x]), b.int64s([-1])], { keepdims: { i: 1 } });
  const rms = b.node("Sqrt", [b.node("Add", [meanSquare, b.scalar(cx.attrs.eps as number)])]);
  return b.node("Mul", [b.node("Div", [x, rms]), w]);
};

const layernorm: OnnxRule = (cx, args) =>
  cx.b.node("LayerNormalization", args, { axis: { i: -1 }, epsilon: { f: cx.attrs.eps as number } });

/**
 * Rotary embedding: angles pos * theta^(-2i/d) computed at run time from pos, the rotation
 * pairs exposed by a reshape ([..., 2] interleaved, [2, ...] NeoX-style) and rotated.
 */
const rope: OnnxRule = (cx, [x, pos]) => {
  const { b } = cx;
  const shape = cx.out.shape;
  const c = shape[shape.length - 1];
  const n = shape[shape.length - 2];
  const headDim = (cx.attrs.head_dim as number) || c;
  const half = headDim / 2;
  const theta = cx.attrs.theta as number;
  const inverseFrequency = Array.from({ length: half }, (_, i) => theta ** ((-2 * i) / headDim));
  const positions = cx.operands[1].dtype === "f32" ? pos : b.node("Cast", [pos], { to: { i: OnnxType.FLOAT } });
  const angles = b.node("Mul", [b.node("Reshape", [positions, b.int64s([n, 1])]), b.initializer(OnnxType.FLOAT, [half], inverseFrequency)]);
  const interleaved = cx.attrs.interleaved as boolean;
  // Pairs: interleaved (2i, 2i+1) are [.., half, 2]; otherwise (i, i+half) are [.., 2, half].
  const pairShape = interleaved ? [half, 2] : [2, half];
  const pairAxis = interleaved ? -1 : -2;
  const tableShape = interleaved ? [n, 1, half, 1] : [n, 1, 1, half];
  const cos = b.node("Reshape", [b.node("Cos", [angles]), b.int64s(tableShape)]);
  const sin = b.node("Reshape", [b.node("Sin", [angles]), b.int64s(tableShape)]);
  const pairs = b.node("Reshape", [x, b.int64s([...shape.slice(0, -1), c / headDim, ...pairShape])]);
  const part = (i: number) => b.node("Slice", [pairs, b.int64s([i]), b.int64s([i + 1]), b.int64s([pairAxis])]);
  const [x0, x1] = [part(0), part(1)];
  const y0 = b.node("Sub", [b.node("Mul", [x0, cos]), b.node("Mul", [x1, sin])]);
  const y1 = b.node("Add", [b.node("Mul", [x0, sin]), b.node("Mul", [x1, cos])]);
  return b.node("Reshape", [b.node("Concat", [y0, y1], { axis: { i: pairAxis } }), b.int64s(shape)]);
};

export const nnRules: Record<string, OnnxRule> = {
  softmax: (cx, [x]) => cx.b.node("Softmax", [x], { axis: { i: cx.attrs.axis as number } }),
  rmsnorm,
  layernorm,
  rope,
};
