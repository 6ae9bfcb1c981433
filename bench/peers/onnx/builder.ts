// Builds an ONNX graph node by node, naming every value and keeping constants as
// initializers (small index constants are shared: one `[-1]` serves every ReduceMean).
import type { Attrs } from "../../../compiler/ir/graph.ts";
import type { DType } from "../../../compiler/ir/types.ts";
import { type OnnxAttr, type OnnxElemType, type OnnxModel, type OnnxNode, type OnnxTensor, OnnxType, type OnnxValueInfo } from "./model.ts";

export const OPSET = 18;

export function onnxType(dtype: DType): OnnxElemType {
  switch (dtype) {
    case "f32":
      return OnnxType.FLOAT;
    case "i32":
      return OnnxType.INT32;
    case "bool":
      return OnnxType.BOOL;
    default:
      throw new Error(`onnx peer: dtype ${dtype} is not supported (the peers run f32, i32 and bool)`);
  }
}

/** Little-endian bytes of `values` as the element type. */
export function elementBytes(elemType: OnnxElemType, values: ArrayLike<number>): Uint8Array {
  switch (elemType) {
    case OnnxType.FLOAT:
      return new Uint8Array(Float32Array.from(values).buffer);
    case OnnxType.INT32:
      return new Uint8Array(Int32Array.from(values).buffer);
    case OnnxType.INT64:
      return new Uint8Array(BigInt64Array.from(Array.from(values, (v) => BigInt(v))).buffer);
    case OnnxType.BOOL:
      return Uint8Array.from(values, (v) => (v ? 1 : 0));
  }
}

export class OnnxGraphBuilder {
  private readonly nodes: OnnxNode[] = [];
  private readonly initializers: OnnxTensor[] = [];
  private readonly inputs: OnnxValueInfo[] = [];
  private readonly outputs: OnnxValueInfo[] = [];
  private readonly shared = new Map<string, string>();
  private counter = 0;

  constructor(private readonly graphName: string) {}

  /** A fresh value name; `hint` makes the exported model readable in Netron. */
  fresh(hint: string): string {
    return `${hint}_${this.counter++}`;
  }

  /** Adds a node with one output and returns the output's name. */
  node(opType: string, inputs: string[], attrs?: Record<string, OnnxAttr>, output?: string): string {
    const out = output ?? this.fresh(opType.toLowerCase());
    this.nodes.push({ opType, inputs, outputs: [out], name: `${opType}_${this.nodes.length}`, attrs });
    return out;
  }

  initializer(elemType: OnnxElemType, dims: number[], values: ArrayLike<number>, name?: string): string {
    const n = name ?? this.fresh("const");
    this.initializers.push({ name: n, elemType, dims: [...dims], raw: elementBytes(elemType, values) });
    return n;
  }

  /** A 1-D int64 constant (shapes, axes, slice bounds), shared between its uses. */
  int64s(values: readonly number[]): string {
    const key = `i64:${values.join(",")}`;
    let name = this.shared.get(key);
    if (!name) {
      name = this.initializer(OnnxType.INT64, [values.length], values);
      this.shared.set(key, name);
    }
    return name;
  }

  /** A scalar constant, shared between its uses. */
  scalar(value: number, elemType: OnnxElemType = OnnxType.FLOAT): string {
    const key = `s${elemType}:${Object.is(value, -0) ? "-0" : value}`;
    let name = this.shared.get(key);
    if (!name) {
      name = this.initializer(elemType, [], [value]);
      this.shared.set(key, name);
    }
    return name;
  }

  input(name: string, elemType: OnnxElemType, shape: number[]): void {
    this.inputs.push({ name, elemType, shape });
  }

  output(name: string, elemType: OnnxElemType, shape: number[]): void {
    this.outputs.push({ name, elemType, shape });
  }

  finish(): OnnxModel {
    return { graphName: this.graphName, opset: OPSET, nodes: this.nodes, initializers: this.initializers, inputs: this.inputs, outputs: this.outputs };
  }
}

/** What an op's rule sees: the builder, the node (attributes resolved) and concrete types. */
export interface Lowering {
  b: OnnxGraphBuilder;
  op: string;
  attrs: Attrs;
  operands: { dtype: DType; shape: number[] }[];
  out: { dtype: DType; shape: number[] };
}

/** Adds the ONNX nodes for one difftc node, given its operands' value names; returns its value. */
export type OnnxRule = (cx: Lowering, args: string[]) => string;
