// One interface for every runtime: load an artifact with its weights, then run it.
import type { HostTensor } from "../../compiler/ir/tensor.ts";

export type TensorMap = ReadonlyMap<string, HostTensor>;

export interface Session {
  run(inputs: TensorMap): Promise<Map<string, HostTensor>>;
}
