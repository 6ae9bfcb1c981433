// The CUDA backend through the CPU emulation header (g++), against the interpreter: every op
// family once, the examples at every stage of the default pipeline, random graphs, and a
// kernel error. Every build compiles C++ (a few seconds), so this file runs one instance of
// each case rather than BACKENDS' random shapes; each artifact runs in both of the
// emulator's scheduling orders, which shakes out races between threads.
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Diagnostic } from "../../common/diagnostic.ts";
import { cudaUnavailable } from "../../runtime/adapters/cuda/index.ts";
import { randomInputs } from "../../runtime/init.ts";
import { backendUnderTest, type BackendUnderTest, runAndCompare, runAndCompareStages } from "../harness/harness.ts";
import { compileSource } from "../support/dsl.ts";
import { CASES, opCaseInstance } from "../support/op-cases.ts";
import { arbitraryGraphCase } from "../support/random-graph.ts";
import { testWeights } from "../support/weights.ts";
import type { Graph } from "../../compiler/ir/graph.ts";
import type { TensorMap } from "../../runtime/adapters/adapter.ts";

const missing = cudaUnavailable("cuda-emu");
if (missing && process.env.CI === "true") throw new Error(`cuda-emu cannot run in CI: ${missing}`);
if (missing) console.warn(`\n*** SKIPPING the cuda-emu tests: ${missing} ***\n`);

const emu = backendUnderTest("cuda-emu");

/** The backend, with the emulator's threads of each block and its blocks run in `order`. */
function inOrder(order: "forward" | "reverse"): BackendUnderTest {
  return {
    ...emu,
    name: `cuda-emu (${order})`,
    async load(graph, weights) {
      const session = await emu.load(graph, weights);
      return {
        async run(inputs) {
          const before = process.env.DIFFTC_EMU_ORDER;
          process.env.DIFFTC_EMU_ORDER = order;
          try {
            return await session.run(inputs);
          } finally {
            if (before === undefined) delete process.env.DIFFTC_EMU_ORDER;
            else process.env.DIFFTC_EMU_ORDER = before;
          }
        },
      };
    },
  };
}

/** One build, run in both scheduling orders. */
async function bothOrders(graph: Graph, inputs: TensorMap, weights: TensorMap, dims: ReadonlyMap<string, number>): Promise<void> {
  for (const order of ["forward", "reverse"] as const) await runAndCompare(inOrder(order), graph, inputs, weights, dims);
}

describe.skipIf(missing !== undefined)("cuda-emu agrees with the interpreter", () => {
  for (const c of CASES) {
    it(`on ${c.name}`, async () => {
      const { graph, dims, inputs, weights } = opCaseInstance(c, { A: 3, B: 2, C: 4, N: c.rows?.[0] ?? 5, extra: 2, K: c.keys?.[1] ?? 7, seed: 11 });
      await bothOrders(graph, inputs, weights, dims);
    }, 60_000);
  }

  for (const [file, set] of [
    ["diff_attention.dt", [["D", 64], ["H", 2]]],
    ["diff_lm.dt", [["V", 40], ["D", 32], ["H", 2], ["L", 2]]],
    ["transformer_lm.dt", [["V", 40], ["D", 32], ["H", 2], ["L", 2]]],
    ["diff_attention_v2.dt", [["D", 32], ["H", 2], ["Hkv", 1]]],
  ] as [string, [string, number][]][]) {
    it(`on examples/${file}, at every stage of the default pipeline`, async () => {
      const graph = compileSource(readFileSync(new URL(`../../examples/${file}`, import.meta.url), "utf8"), { set: new Map(set) }, file);
      const dims = new Map(graph.dims.map((d) => [d, 19]));
      await runAndCompareStages(inOrder("reverse"), graph, randomInputs(graph, dims, 3), testWeights(graph, 3), dims);
    }, 120_000);
  }

  it("on random graphs", async () => {
    await fc.assert(
      fc.asyncProperty(arbitraryGraphCase({ dims: true, attention: true, continuous: true }), async ({ graph, dims, inputs }) => {
        await bothOrders(graph, inputs, new Map(), dims);
      }),
      { numRuns: 6 },
    );
  }, 120_000);

  it("reports a gather index out of range as the kernel's error, through the runner", async () => {
    const graph = compileSource(`model M { dim N
      input table: f32[4, 3]
      input idx: i32[N]
      output y = table[idx] }`);
    const session = await emu.load(graph, new Map());
    const inputs = new Map([
      ["table", { dtype: "f32" as const, shape: [4, 3], data: new Float64Array(12) }],
      ["idx", { dtype: "i32" as const, shape: [3], data: Float64Array.of(1, 7, 2) }],
    ]);
    const error = await session.run(inputs).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Diagnostic);
    expect((error as Diagnostic).message).toMatch(/gather: index 7 is out of range for an axis of size 4/);
  }, 60_000);
});
