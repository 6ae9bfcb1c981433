// Affine quantisation to 8-bit integers and back. The rounding is fixed exactly here so that
// every backend can reproduce the interpreter bit for bit.
import { INT_RANGE } from "../numeric.ts";
import { OpError, registerOp } from "../registry.ts";
import { broadcastIndex } from "../tensor.ts";
import { broadcastShapes, type DType, formatType, isFloat, isInteger, sameShape, type TensorType } from "../types.ts";

/** The dtypes quantize produces. */
const QUANTIZED: Partial<Record<DType, [number, number]>> = { i8: INT_RANGE.i8, u8: INT_RANGE.u8 };

/** Rounds to the nearest integer, ties to the even one (2.5 -> 2, 3.5 -> 4, -2.5 -> -2). */
export function roundHalfToEven(x: number): number {
  const r = Math.round(x); // ties go up, so a tie is exactly r - x === 0.5
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** One quantised value; backends emit this function itself, so they round exactly alike. */
export function quantizeValue(x: number, scale: number, zeroPoint: number, lo: number, hi: number): number {
  const v = roundHalfToEven(x / scale) + zeroPoint;
  return Number.isNaN(v) ? zeroPoint : v < lo ? lo : v > hi ? hi : v;
}

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

registerOp({
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
  interpret: ([x, scale], a) => {
    const [lo, hi] = QUANTIZED[a.dtype as DType]!;
    const zeroPoint = a.zero_point as number;
    const si = broadcastIndex(scale.shape, x.shape);
    const out = new Float64Array(x.data.length);
    for (let i = 0; i < out.length; i++) out[i] = quantizeValue(x.data[i], scale.data[si ? si[i] : i], zeroPoint, lo, hi);
    return out;
  },
});

registerOp({
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
  interpret: ([q, scale], a) => {
    const zeroPoint = a.zero_point as number;
    const si = broadcastIndex(scale.shape, q.shape);
    const out = new Float64Array(q.data.length);
    for (let i = 0; i < out.length; i++) out[i] = (q.data[i] - zeroPoint) * scale.data[si ? si[i] : i];
    return out;
  },
});
