// ONNX models as plain objects, and their encoding as an onnx.proto ModelProto. Only the
// fields a converted difftc graph uses are written; field numbers are onnx.proto's.
import { ProtoWriter } from "./protobuf.ts";

/** TensorProto.DataType values for the element types the peers use. */
export const OnnxType = { FLOAT: 1, INT32: 6, INT64: 7, BOOL: 9 } as const;
export type OnnxElemType = (typeof OnnxType)[keyof typeof OnnxType];

export interface OnnxTensor {
  name: string;
  elemType: OnnxElemType;
  dims: number[];
  /** Little-endian element bytes (TensorProto.raw_data). */
  raw: Uint8Array;
}

export type OnnxAttr = { i: number } | { f: number } | { s: string } | { ints: readonly number[] } | { floats: readonly number[] } | { t: OnnxTensor };

export interface OnnxNode {
  opType: string;
  inputs: string[];
  outputs: string[];
  name?: string;
  attrs?: Record<string, OnnxAttr>;
}

export interface OnnxValueInfo {
  name: string;
  elemType: OnnxElemType;
  shape: number[];
}

export interface OnnxModel {
  graphName: string;
  opset: number;
  nodes: OnnxNode[];
  initializers: OnnxTensor[];
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
}

export const IR_VERSION = 8;

// AttributeProto.AttributeType
const ATTR_FLOAT = 1;
const ATTR_INT = 2;
const ATTR_STRING = 3;
const ATTR_TENSOR = 4;
const ATTR_FLOATS = 6;
const ATTR_INTS = 7;

export function encodeModel(model: OnnxModel): Uint8Array {
  const w = new ProtoWriter();
  w.varint(1, IR_VERSION); // ir_version
  w.string(2, "difftc"); // producer_name
  w.message(7, (g) => writeGraph(g, model)); // graph
  w.message(8, (o) => o.string(1, "").varint(2, model.opset)); // opset_import: the default domain
  return w.finish();
}

function writeGraph(w: ProtoWriter, model: OnnxModel): void {
  for (const n of model.nodes) w.message(1, (m) => writeNode(m, n));
  w.string(2, model.graphName);
  for (const t of model.initializers) w.message(5, (m) => writeTensor(m, t));
  for (const v of model.inputs) w.message(11, (m) => writeValueInfo(m, v));
  for (const v of model.outputs) w.message(12, (m) => writeValueInfo(m, v));
}

function writeNode(w: ProtoWriter, n: OnnxNode): void {
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  if (n.name) w.string(3, n.name);
  w.string(4, n.opType);
  for (const [name, a] of Object.entries(n.attrs ?? {})) w.message(5, (m) => writeAttr(m, name, a));
}

function writeAttr(w: ProtoWriter, name: string, a: OnnxAttr): void {
  w.string(1, name);
  if ("i" in a) w.varint(20, ATTR_INT).varint(3, a.i);
  else if ("f" in a) w.varint(20, ATTR_FLOAT).float(2, a.f);
  else if ("s" in a) w.varint(20, ATTR_STRING).string(4, a.s);
  else if ("ints" in a) w.varint(20, ATTR_INTS).packedVarints(8, a.ints);
  else if ("floats" in a) w.varint(20, ATTR_FLOATS).packedFloats(7, a.floats);
  else w.varint(20, ATTR_TENSOR).message(5, (m) => writeTensor(m, a.t));
}

function writeTensor(w: ProtoWriter, t: OnnxTensor): void {
  w.packedVarints(1, t.dims);
  w.varint(2, t.elemType);
  w.string(8, t.name);
  w.bytesField(9, t.raw);
}

function writeValueInfo(w: ProtoWriter, v: OnnxValueInfo): void {
  w.string(1, v.name);
  // TypeProto.tensor_type { elem_type, shape { dim { dim_value } } }
  w.message(2, (type) =>
    type.message(1, (tensor) => {
      tensor.varint(1, v.elemType);
      tensor.message(2, (shape) => {
        for (const d of v.shape) shape.message(1, (dim) => dim.varint(1, d));
      });
    }),
  );
}
