// What a tfjs rule sees of one difftc node, and what it returns: a function over tensors,
// prepared once per runner so that constants (iota, masks, index lists) are uploaded once.
import type * as tf from "@tensorflow/tfjs-core";
import type { Attrs } from "../../../compiler/ir/graph.ts";
import type { DType } from "../../../compiler/ir/types.ts";

export interface TfjsLowering {
  op: string;
  attrs: Attrs;
  operands: { dtype: DType; shape: number[] }[];
  out: { dtype: DType; shape: number[] };
  /** Registers a tensor that lives as long as the runner (a constant of this node). */
  keep<T extends tf.Tensor>(t: T): T;
}

export type TfjsKernel = (args: tf.Tensor[]) => tf.Tensor;
export type TfjsRule = (cx: TfjsLowering) => TfjsKernel;

export function tfDType(dtype: DType): "float32" | "int32" | "bool" {
  switch (dtype) {
    case "f32":
      return "float32";
    case "i32":
      return "int32";
    case "bool":
      return "bool";
    default:
      throw new Error(`tfjs peer: dtype ${dtype} is not supported (the peers run f32, i32 and bool)`);
  }
}
