import * as ort from "onnxruntime-node";
import { encodeModel, OnnxType } from "../onnx/model.ts";
const w = new Float32Array([1, 2, 3, 4, 5, 6]);
const bytes = encodeModel({
  graphName: "g", opset: 18,
  nodes: [{ opType: "MatMul", inputs: ["x", "w"], outputs: ["y0"] }, { opType: "ReduceSum", inputs: ["y0", "ax"], outputs: ["y"], attrs: { keepdims: { i: 0 } } }],
  initializers: [{ name: "w", elemType: OnnxType.FLOAT, dims: [3, 2], raw: new Uint8Array(w.buffer) },
   { name: "ax", elemType: OnnxType.INT64, dims: [1], raw: new Uint8Array(new BigInt64Array([-1n]).buffer) }],
  inputs: [{ name: "x", elemType: OnnxType.FLOAT, shape: [2, 3] }],
  outputs: [{ name: "y", elemType: OnnxType.FLOAT, shape: [2] }],
});
const s = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: "sequential", graphOptimizationLevel: "all" });
const r = await s.run({ x: new ort.Tensor("float32", new Float32Array([1, 0, 0, 0, 1, 1]), [2, 3]) });
console.log(r.y.data, r.y.dims);
await s.release();
