import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { elaborate } from "../../compiler/elaborate/index.ts";
import type { Graph } from "../../compiler/ir/graph.ts";
import { decompose } from "../../compiler/passes/decompose.ts";
import type { Pass } from "../../compiler/passes/pass.ts";
import { runPipeline } from "../../compiler/passes/pipeline.ts";
import { DEFAULT_PIPELINE } from "../../compiler/passes/registry.ts";
import { parseProgram } from "../../dsl/parse.ts";
import { initWeights, randomInputs } from "../../runtime/init.ts";
import { checkCleanup, expectSameOutputs } from "./equivalence.ts";

const EXAMPLES: [string, Record<string, number>][] = [
  ["examples/diff_lm.dt", { V: 40, D: 32, H: 2, L: 1 }],
  ["examples/transformer_lm.dt", { V: 40, D: 32, H: 2, L: 1 }],
  ["examples/diff_attention.dt", { D: 32, H: 2 }],
  ["examples/diff_attention_v2.dt", { D: 32, H: 4, Hkv: 2 }],
];

function compileExample(file: string, set: Record<string, number>): Graph {
  return elaborate(parseProgram(readFileSync(file, "utf8"), file), { set: new Map(Object.entries(set)) }).graph;
}

// The cleanups are exact; the fusions after them change rounding (tested in their own files).
const CLEANUPS = DEFAULT_PIPELINE.slice(0, 5);
const optimize = (g: Graph) => runPipeline(g, CLEANUPS, { log: () => {} });

/** The graph and its optimised form compute the same bits on seeded weights and inputs. */
function expectSameModel(before: Graph, after: Graph): void {
  const dims = new Map([["N", 5]]);
  expectSameOutputs(before, after, randomInputs(before, dims, 3), dims, initWeights(before, 1));
}

describe("the default pipeline", () => {
  it("starts with the cleanups, in order", () => {
    expect(CLEANUPS).toEqual(["canonicalize", "constant-fold", "fold-reshapes", "cse", "dce"]);
  });

  for (const [file, set] of EXAMPLES) {
    it(`cleans ${file} exactly, and shrinks its decomposition into primitives`, () => {
      const graph = compileExample(file, set);
      const optimized = optimize(graph);
      expect(optimized.nodes.length).toBeLessThanOrEqual(graph.nodes.length);
      expectSameModel(graph, optimized);

      const primitive = decompose(graph);
      const cleaned = optimize(primitive);
      expect(cleaned.nodes.length).toBeLessThan(primitive.nodes.length);
      expectSameModel(primitive, cleaned);
    });
  }

  it("keeps the interpreter's outputs bit for bit on random graphs", () => {
    const pipeline: Pass = { name: "default", description: "the default pipeline", run: optimize };
    // Not a fixpoint: a constant folded to 1 after canonicalize ran leaves an x * 1 for the next run.
    checkCleanup(pipeline, { numRuns: 100, fixpoint: false });
  });
});
