// The agreement tests of a backend whose every artifact costs seconds to build (cuda-emu
// compiles C++, WebGPU compiles pipelines): one instance of each op case rather than the random
// shapes of test/backends/ops.test.ts, the examples at every stage of the default pipeline,
// a few random graphs, and a gather out of range reported as the kernel's error.
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { expect, it } from "vitest";
import { Diagnostic } from "../../common/diagnostic.ts";
import type { Graph } from "../../compiler/ir/graph.ts";
import type { TensorMap } from "../../runtime/adapters/adapter.ts";
import { randomInputs } from "../../runtime/init.ts";
import { type BackendUnderTest, runAndCompareStages } from "../harness/harness.ts";
import { compileSource } from "./dsl.ts";
import { getOp } from "../../compiler/ir/registry.ts";
import { FUSED_OPS } from "../../compiler/passes/decompose.ts";
import { CASES, opCaseInstance } from "./op-cases.ts";
import { arbitraryGraphCase } from "./random-graph.ts";
import { testWeights } from "./weights.ts";

export interface SlowBackend {
  /** The backend the examples' pipeline stages run on. */
  backend: BackendUnderTest;
  /** Compares one graph with the interpreter (once, or in several configurations of the backend). */
  compare(graph: Graph, inputs: TensorMap, weights: TensorMap, dims: ReadonlyMap<string, number>): Promise<void>;
  /** Where the gather test's error comes from, for its name. */
  errorsFrom: string;
}

const EXAMPLES: [string, [string, number][]][] = [
  ["diff_attention.dt", [["D", 64], ["H", 2]]],
  ["diff_lm.dt", [["V", 40], ["D", 32], ["H", 2], ["L", 2]]],
  ["transformer_lm.dt", [["V", 40], ["D", 32], ["H", 2], ["L", 2]]],
  ["diff_attention_v2.dt", [["D", 32], ["H", 2], ["Hkv", 1]]],
];

/** Registers the agreement tests (call inside a describe). */
export function agreementTests({ backend, compare, errorsFrom }: SlowBackend): void {
  for (const c of CASES) {
    // A fused op with no decomposition (the quantised attention) that the backend has no kernel for is refused, with a diagnostic.
    const refused = c.ops.filter((op) => FUSED_OPS.has(op) && !backend.ops.has(op) && !getOp(op)?.decompose);
    if (refused.length > 0) {
      it(`refuses ${refused.join(" and ")} (no kernel here, no decomposition) with a diagnostic`, async () => {
        const { graph, weights } = opCaseInstance(c, { A: 3, B: 2, C: 4, N: 5, extra: 2, K: 7, seed: 11 });
        const error = await Promise.resolve().then(() => backend.load(graph, weights)).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(Diagnostic);
        expect((error as Error).message).toMatch(/this target has no kernel for /);
      });
      continue;
    }
    it(`on ${c.name}`, async () => {
      const { graph, dims, inputs, weights } = opCaseInstance(c, { A: 3, B: 2, C: 4, N: c.rows?.[0] ?? 5, extra: 2, K: c.keys?.[1] ?? 7, seed: 11 });
      await compare(graph, inputs, weights, dims);
    }, 60_000);
  }

  for (const [file, set] of EXAMPLES) {
    it(`on examples/${file}, at every stage of the default pipeline`, async () => {
      const graph = compileSource(readFileSync(new URL(`../../examples/${file}`, import.meta.url), "utf8"), { set: new Map(set) }, file);
      const dims = new Map(graph.dims.map((d) => [d, 19]));
      await runAndCompareStages(backend, graph, randomInputs(graph, dims, 3), testWeights(graph, 3), dims);
    }, 120_000);
  }

  it("on random graphs", async () => {
    await fc.assert(
      fc.asyncProperty(arbitraryGraphCase({ dims: true, attention: true, continuous: true }), async ({ graph, dims, inputs }) => {
        await compare(graph, inputs, new Map(), dims);
      }),
      { numRuns: 6 },
    );
  }, 120_000);

  it(`reports a gather index out of range as the kernel's error, ${errorsFrom}`, async () => {
    const graph = compileSource(`model M { dim N
      input table: f32[4, 3]
      input idx: i32[N]
      output y = table[idx] }`);
    const session = await backend.load(graph, new Map());
    const inputs = new Map([
      ["table", { dtype: "f32" as const, shape: [4, 3], data: new Float64Array(12) }],
      ["idx", { dtype: "i32" as const, shape: [3], data: Float64Array.of(1, 7, 2) }],
    ]);
    const error = await session.run(inputs).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Diagnostic);
    expect((error as Diagnostic).message).toMatch(/gather: index 7 is out of range for an axis of size 4/);
  }, 60_000);
}
