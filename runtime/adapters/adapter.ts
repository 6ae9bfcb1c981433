// One interface for every runtime: load an artifact with its weights, then run it.
import type { HostTensor } from "../../compiler/ir/tensor.ts";

export type TensorMap = ReadonlyMap<string, HostTensor>;

export interface Session {
  run(inputs: TensorMap): Promise<Map<string, HostTensor>>;
  /**
   * Each kernel's mean time over `runs` forwards (after a warm-up), in launch order. Only
   * where kernels run synchronously on the host (the JS backend): a GPU queue's dispatch times
   * say nothing about its kernels.
   */
  profile?(inputs: TensorMap, runs?: number): Promise<KernelTime[]>;
}

export interface KernelTime {
  kernel: string;
  /** The ops it computes, `fused` or `matmul`. */
  op: string;
  ms: number;
}
