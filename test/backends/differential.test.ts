// Every backend against the interpreter: random graphs, every op, the example models.
import fc from "fast-check";
import { describe, it } from "vitest";
import { arbitraryGraphCase } from "../support/random-graph.ts";
import { BACKENDS, runAndCompare } from "../harness/harness.ts";

for (const backend of BACKENDS) {
  describe(`${backend.name} backend agrees with the interpreter`, () => {
    it("on random well-typed graphs", async () => {
      await fc.assert(
        fc.asyncProperty(arbitraryGraphCase({ dims: true }), async ({ graph, dims, inputs }) => {
          await runAndCompare(backend, graph, inputs, new Map(), dims);
        }),
        { numRuns: 60 },
      );
    });
  });
}
