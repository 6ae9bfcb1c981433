// Weights for differential tests. initWeights gives the paper's initialisation, where norm
// weights are all 1 (and biases all 0): a kernel that drops the norm weight, or reads it at the
// wrong index, computes the same result on those. Here every such constant parameter is drawn
// again, so that a dropped or misplaced weight changes the output.
import { type Graph, nodeName, paramNodes } from "../../compiler/ir/graph.ts";
import { roundScalar } from "../../compiler/ir/numeric.ts";
import type { HostTensor } from "../../compiler/ir/tensor.ts";
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
