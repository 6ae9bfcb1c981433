// The CUDA backend through the CPU emulation header (g++), against the interpreter: every op
// family once, the examples at every stage of the default pipeline, random graphs, and a
// kernel error. Every build compiles C++ (a few seconds), so this file runs one instance of
// each case rather than BACKENDS' random shapes; each artifact runs in both of the
// emulator's scheduling orders, which shakes out races between threads.
import { describe, expect, it } from "vitest";
import { cudaUnavailable, loadCuda } from "../../runtime/adapters/cuda/index.ts";
import { compileCuda } from "../../backends/cuda/index.ts";
import { reductionStages } from "../support/reductions.ts";
import { testWeights } from "../support/weights.ts";
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
function inOrder(order: "forward" | "reverse", backend = emu): BackendUnderTest {
  return {
    ...backend,
    name: `${backend.name} (${order})`,
    async load(graph, weights) {
      const session = await backend.load(graph, weights);
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

describe.skipIf(missing !== undefined)("cuda-emu's cooperative reductions (a block per row) agree with the interpreter", () => {
  const cooperative: BackendUnderTest = { ...emu, name: "cuda-emu (cooperative)", load: (graph, weights) => loadCuda(compileCuda(graph, { reductions: "cooperative" }), weights, "cuda-emu") };
  // 1 and 300: rows shorter than a block's 256 threads, and not a multiple of it.
  it.each([1, 300])("every reduction, softmax and norm over rows of %i, in both scheduling orders", async (length) => {
    for (const graph of reductionStages(length)) {
      // Every reduction kernel merges through warp shuffles: a block per row, not a thread.
      const source = String(compileCuda(graph, { reductions: "cooperative" }).files.get("kernels.cu"));
      expect(source.match(/__shfl_xor_sync/g)?.length).toBeGreaterThanOrEqual(10);
      const dims = new Map([["N", 3]]);
      const inputs = randomInputs(graph, dims, length);
      const weights = testWeights(graph, 3);
      for (const order of ["forward", "reverse"] as const) await runAndCompare(inOrder(order, cooperative), graph, inputs, weights, dims);
    }
  }, 300_000);
});
