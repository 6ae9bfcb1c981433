// The compiled f32 kernels (backends/js/wasm-kernel.ts) against the interpreter on random graphs
// of elementwise ops, casts, reductions and softmax fed with special values (NaN, ±Infinity,
// ±0, huge, tiny and subnormal magnitudes; random-graph.ts, EDGE_VALUES), at every stage of the
// default pipeline (so fused chains too), with last axes of 1 to 13 elements: the four-lane
// loops, their scalar remainders, and loops too short for lanes all run.
import fc from "fast-check";
import { describe, it } from "vitest";
import { printGraph } from "../../compiler/ir/print.ts";
import { BACKENDS, runAndCompareStages } from "../harness/harness.ts";
import { arbitraryGraphCase } from "../support/random-graph.ts";

const f32 = BACKENDS.find((b) => b.name === "js")!;

describe("compiled f32 kernels on special values", () => {
  it("agree with the interpreter on random elementwise, cast, reduction and softmax graphs", async () => {
    await fc.assert(
      fc.asyncProperty(arbitraryGraphCase({ edgeValues: true, maxInner: 13, maxNodes: 18 }), async ({ graph, dims, inputs, params }) => {
        try {
          await runAndCompareStages(f32, graph, inputs, params, dims);
        } catch (e) {
          if (e instanceof Error) e.message = `${e.message}\n${printGraph(graph)}\ninputs: ${JSON.stringify([...inputs].map(([n, t]) => [n, t.shape, [...t.data].map(String)]))}`;
          throw e;
        }
      }),
      { numRuns: Number(process.env.EDGE_RUNS ?? 400) },
    );
  });
});
