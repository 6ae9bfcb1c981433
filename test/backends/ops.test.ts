// Every op through every backend, on random shapes (broadcasting, size-1 and odd sizes) and
// on the edge cases of its semantics, against the interpreter.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { allOps } from "../../compiler/ir/registry.ts";
import { BACKENDS, outputFamily, runAndCompare } from "../harness/harness.ts";
import { CASES, opCaseInstance } from "../support/op-cases.ts";
import { tensor } from "../../compiler/ir/tensor.ts";
import { compileSource } from "../support/dsl.ts";

it("every op of the registry has a backend case", () => {
  const covered = new Set(CASES.flatMap((c) => c.ops));
  // fused bodies cannot be written in the DSL; test/backends/fused.test.ts covers them.
  const exempt = new Set(["input", "param", "const", "numel", "fused"]);
  const missing = allOps().map((d) => d.name).filter((n) => !covered.has(n) && !exempt.has(n));
  expect(missing).toEqual([]);
});

for (const backend of BACKENDS) {
  describe(`${backend.name}: every op agrees with the interpreter`, () => {
    for (const c of CASES) {
      it(c.name, async () => {
        await fc.assert(
          fc.asyncProperty(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 5 }), fc.integer({ min: c.rows?.[0] ?? 1, max: c.rows?.[1] ?? 6 }), fc.integer({ min: 0, max: 3 }), fc.integer({ min: c.keys?.[0] ?? 1, max: c.keys?.[1] ?? 1 }), fc.nat(1000), async (A, B, C, N, extra, K, seed) => {
            const { graph, dims, inputs, weights } = opCaseInstance(c, { A, B, C, N, extra, K, seed });
            // On a backend exact on single ops, every output of a case of single ops must match
            // the interpreter bit for bit (tolerance.ts, family "exact").
            if (backend.exactSingleOps && c.ops.every((op) => backend.ops.has(op))) for (const o of graph.outputs) expect(outputFamily(graph, o.node, backend), o.name).toBe(c.family ?? "exact");
            await runAndCompare(backend, graph, inputs, weights, dims);
          }),
          { numRuns: 12 },
        );
      });
    }
  });
}

describe("max and min on signed zeros", () => {
  // The interpreter's step is acc > x ? acc : x: of -0 and +0 the later one wins, in either order.
  const graph = compileSource("model M {\n  input x: f32[4, 2]\n  output hi = max(x, axes = [1])\n  output lo = min(x, axes = [1])\n}");
  const x = tensor("f32", [4, 2], [-0, 0, 0, -0, -0, -0, 0, 0]);
  for (const backend of BACKENDS) it(`${backend.name}: give the interpreter's zero`, () => runAndCompare(backend, graph, new Map([["x", x]]), new Map()));
});
