// The CUDA backend through the CPU emulation header (g++), against the interpreter: every op
// family once, the examples at every stage of the default pipeline, random graphs, and a
// kernel error. Every build compiles C++ (a few seconds), so this file runs one instance of
// each case rather than BACKENDS' random shapes; each artifact runs in both of the
// emulator's scheduling orders, which shakes out races between threads.
import { describe, it } from "vitest";
import { cudaUnavailable } from "../../runtime/adapters/cuda/index.ts";
import { backendUnderTest, type BackendUnderTest, runAndCompare } from "../harness/harness.ts";
import { agreementTests } from "../support/slow-backend.ts";
import type { Graph } from "../../compiler/ir/graph.ts";
import type { TensorMap } from "../../runtime/adapters/adapter.ts";
import { randomInputs } from "../../runtime/init.ts";
import { compileSource } from "../support/dsl.ts";
import { QUANT_SETTINGS, quantModel } from "../support/quant.ts";

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
  agreementTests({ backend: inOrder("reverse"), compare: bothOrders, errorsFrom: "through the runner" });
});

describe.skipIf(missing !== undefined)("cuda-emu's quantised attention kernels agree with the interpreter", () => {
  it("in every setting of test/support/quant.ts, over several key blocks, causal with K > N", async () => {
    const graph = compileSource(quantModel(QUANT_SETTINGS));
    const dims = new Map([["N", 11], ["K", 23]]);
    await bothOrders(graph, randomInputs(graph, dims, 7), new Map(), dims);
  }, 300_000);
});
