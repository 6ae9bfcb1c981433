// Weights for differential tests. initWeights gives the paper's initialisation, where norm
// weights are all 1 (and biases all 0): a kernel that drops the norm weight, or reads it at the
// wrong index, computes the same result on those. Here every such constant parameter is drawn
// again, so that a dropped or misplaced weight changes the output.
import { type Graph, nodeName, paramNodes } from "../../compiler/ir/graph.ts";
import { roundScalar } from "../../compiler/ir/numeric.ts";
import { type HostTensor, tensor } from "../../compiler/ir/tensor.ts";
import { initWeights } from "../../runtime/init.ts";
import { Rng } from "../../runtime/random.ts";

/**
 * initWeights(graph, seed), with each parameter initialised to a constant redrawn elementwise
 * as ±U(0.5, 1.5): away from 0 and 1 and of both signs, the scale of a norm weight.
 */
export function testWeights(graph: Graph, seed: number): Map<string, HostTensor> {
  const weights = initWeights(graph, seed);
  for (const node of paramNodes(graph)) {
    if (node.attrs.init !== "constant") continue;
    const t = weights.get(nodeName(node))!;
    const rng = Rng.forKey(seed, `test-weight:${nodeName(node)}`);
    for (let i = 0; i < t.data.length; i++) t.data[i] = roundScalar(t.dtype, (rng.int(2) ? 1 : -1) * (0.5 + rng.uniform()));
  }
  return weights;
}

/** One tensor of every dtype with its edge values (signed zero, extremes, subnormals), an empty one and a scalar: what a safetensors reader and writer must round-trip. */
export const SAFETENSORS_SAMPLES: Record<string, HostTensor> = {
  f32: tensor("f32", [2, 3], [0, -0, 1.5, -3.25, Math.fround(0.1), 3.4028234663852886e38]),
  f16: tensor("f16", [6], [1, -2.5, 65504, 2 ** -24, -Infinity, 0.333251953125]),
  bf16: tensor("bf16", [2, 2], [1, -3.140625, 2 ** -133, 3.3895313892515355e38]),
  i32: tensor("i32", [3], [-2147483648, 2147483647, -1]),
  i8: tensor("i8", [4], [-128, 127, -1, 0]),
  u8: tensor("u8", [3], [0, 255, 7]),
  bool: tensor("bool", [2, 1], [1, 0]),
  empty: tensor("f32", [0, 3]),
  scalar: tensor("bf16", [], [-0.5]),
};
