// The artifact contract: manifest.json, which every backend writes and every runtime adapter
// reads. A neutral module, so that runtime/ need not import a backend to read an artifact.
import type { Dim, DType } from "../compiler/ir/types.ts";
import type { Monomial } from "./size.ts";

export const MANIFEST_FORMAT = "difftc-artifact";

export interface TensorSpec {
  name: string;
  dtype: DType;
  shape: Dim[];
  /** Elements, as `coefficient * symbols`. */
  size: Monomial;
  buffer: number;
}

export interface BufferSpec {
  id: number;
  kind: "input" | "param" | "const" | "temp";
  dtype: DType;
  /** Elements. */
  size: Monomial;
  /** Bytes in the target's storage, formatted (`4*N`). */
  bytes: string;
  slot?: number;
  /** A temporary computed from params and consts alone, in a slot of its own: a runtime may compute it once, at load. */
  fromParams?: boolean;
  name?: string;
  /** A const's value as stored: 16-bit floats as their bits; non-finite values and -0 as strings. */
  encoded?: number | string;
}

export interface KernelSpec {
  name: string;
  /** The ops it computes, `fused` or `matmul+add`. */
  op: string;
  /** Buffer ids of its parameters in order: the output, then the inputs. */
  buffers: number[];
  inputs: number[];
  output: number;
  /** The dims it takes after its buffers, in order. */
  dims: string[];
  /** Launch geometry: sizes of the independent iterations, outermost first. */
  grid: Monomial[];
  /** Threads per workgroup, for targets that launch workgroups. */
  workgroup?: number[];
  /** Run-time errors it reports through its error record: code and message with {0}, {1}, ... */
  errors: { code: number; message: string }[];
  /**
   * The JS kernels that split their work over threads take two more parameters after their
   * dims, `part` and `parts`, and compute only their share: every output element by the same
   * code in any split, so the result is the same bit for bit.
   */
  split?: boolean;
  /** A split kernel's multiply-adds: the runtime splits it only where that is enough to pay for the threads' messages. */
  work?: Monomial;
}

/**
 * Arithmetic precisions: "f32" computes in float32 (SIMD lanes twice as wide as float64's),
 * "f64" accumulates in float64 and rounds where the interpreter rounds.
 */
export const PRECISIONS = ["f32", "f64"] as const;
export type Precision = (typeof PRECISIONS)[number];

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  compiler: string;
  target: string;
  model: string;
  passes: string[];
  /** The arithmetic its kernels compute in. */
  precision: Precision;
  dims: string[];
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  params: TensorSpec[];
  buffers: BufferSpec[];
  slots: { id: number; bytes: Monomial }[];
  kernels: KernelSpec[];
}
