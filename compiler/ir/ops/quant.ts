// Affine quantisation to 8-bit integers and back. The rounding is fixed exactly here so that
// every backend can reproduce the interpreter bit for bit.
import { INT_RANGE } from "../numeric.ts";
import { type OpDef, OpError, registerOp } from "../registry.ts";
import { bin, call, cast, lit } from "../scalar.ts";
import { interpretScalar } from "./elementwise.ts";
import { broadcastShapes, type DType, formatType, isFloat, isInteger, sameShape, type TensorType } from "../types.ts";

/** The dtypes quantize produces. */
const QUANTIZED: Partial<Record<DType, [number, number]>> = { i8: INT_RANGE.i8, u8: INT_RANGE.u8 };

/** Checks that scale broadcasts to x's shape without growing it. */
function checkScale(op: string, x: TensorType, scale: TensorType): void {
  if (!isFloat(scale.dtype)) throw new OpError(`${op}: scale must be a float tensor, got ${formatType(scale)}`);
  const b = broadcastShapes(x.shape, scale.shape);
  if (!b || !sameShape(b, x.shape)) throw new OpError(`${op}: scale ${formatType(scale)} does not broadcast to the shape of ${formatType(x)}`);
}

function checkZeroPoint(op: string, dtype: DType, zeroPoint: number): void {
  const range = INT_RANGE[dtype];
  if (range && (zeroPoint < range[0] || zeroPoint > range[1]))
    throw new OpError(`${op}: zero_point ${zeroPoint} is outside the ${dtype} range [${range[0]}, ${range[1]}]`);
}

const quantize: OpDef = registerOp({
  name: "quantize",
  doc:
    "q = clamp(roundHalfToEven(x / scale) + zero_point, dtype range) with x / scale computed in float64 and ties rounded to the even integer; " +
    "scale broadcasts against x, ±inf saturates at the range ends and NaN gives zero_point; dtype is i8 [-128, 127] or u8 [0, 255].",
  operands: ["x", "scale"],
  attrs: { dtype: { type: "dtype", default: "i8" }, zero_point: { type: "int", default: 0 } },
  pattern: "elementwise",
  infer: ([x, scale], a) => {
    const dtype = a.dtype as DType;
    if (!QUANTIZED[dtype]) throw new OpError(`quantize: dtype must be i8 or u8, got ${dtype}`);
    if (!isFloat(x.dtype)) throw new OpError(`quantize: x must be a float tensor, got ${formatType(x)}`);
    checkScale("quantize", x, scale);
    checkZeroPoint("quantize", dtype, a.zero_point as number);
    return { dtype, shape: x.shape };
  },
  scalar: ([x, scale], _, a) => call(`quantize_${a.dtype as "i8" | "u8"}`, x, scale, lit(a.zero_point as number, "i32")),
  interpret: (args, attrs, out) => interpretScalar(quantize, args, attrs, out.shape),
});

const dequantize: OpDef = registerOp({
  name: "dequantize",
  doc: "x = (q - zero_point) * scale, computed in float64 and rounded to the float dtype; scale broadcasts against q.",
  operands: ["q", "scale"],
  attrs: { dtype: { type: "dtype", default: "f32" }, zero_point: { type: "int", default: 0 } },
  pattern: "elementwise",
  infer: ([q, scale], a) => {
    const dtype = a.dtype as DType;
    if (!isFloat(dtype)) throw new OpError(`dequantize: dtype must be a float dtype, got ${dtype}`);
    if (!isInteger(q.dtype)) throw new OpError(`dequantize: q must be an integer tensor, got ${formatType(q)}`);
    checkScale("dequantize", q, scale);
    checkZeroPoint("dequantize", q.dtype, a.zero_point as number);
    return { dtype, shape: q.shape };
  },
  // q - zero_point is exact in float64 (and in f32 for 8-bit q).
  scalar: ([q, scale], [qType], a) => bin("*", cast("f64", bin("-", q, lit(a.zero_point as number, qType))), scale),
  interpret: (args, attrs, out) => interpretScalar(dequantize, args, attrs, out.shape),
});
