// Every backend against the interpreter: random graphs and the example and standard-library models.
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseProgram } from "../../dsl/parse.ts";
import { elaborate, standardLibrary } from "../../compiler/elaborate/index.ts";
import { runPipeline } from "../../compiler/passes/pipeline.ts";
import { DEFAULT_PIPELINE } from "../../compiler/passes/registry.ts";
import { randomInputs } from "../../runtime/init.ts";
import { compileSource } from "../support/dsl.ts";
import { arbitraryGraphCase } from "../support/random-graph.ts";
import { testWeights } from "../support/weights.ts";
import { BACKENDS, runAndCompare, runAndCompareStages } from "../harness/harness.ts";

/** Small sizes so that every model runs in well under a second on the interpreter. */
const SMALL: Record<string, [string, number][]> = {
  DiffAttention: [["D", 64], ["H", 2]],
  Attention: [["D", 32], ["H", 2]],
  Block: [["D", 32], ["H", 2]],
  TransformerBlock: [["D", 32], ["H", 2]],
  DiffLM: [["V", 40], ["D", 32], ["H", 2], ["L", 2]],
  TransformerLM: [["V", 40], ["D", 32], ["H", 2], ["L", 2]],
  DiffAttentionV2: [["D", 32], ["H", 2], ["Hkv", 1]],
};

/** Library models whose input has leading `...` run inside a root model that fixes the rank. */
const RANK_GENERIC: Record<string, { args: string; width: number }> = {
  Linear: { args: "8, 5", width: 8 },
  RMSNorm: { args: "8", width: 8 },
  LayerNorm: { args: "8", width: 8 },
  SwiGLU: { args: "8, 12", width: 8 },
};

const EXAMPLES = ["diff_attention.dt", "diff_lm.dt", "transformer_lm.dt", "diff_attention_v2.dt"];

function modelCases(): { label: string; file: string; source: string; model?: string }[] {
  const cases: { label: string; file: string; source: string; model?: string }[] = EXAMPLES.map((f) => ({
    label: `examples/${f}`,
    file: f,
    source: readFileSync(new URL(`../../examples/${f}`, import.meta.url), "utf8"),
  }));
  for (const m of standardLibrary().models) {
    const name = m.name.name;
    const generic = RANK_GENERIC[name];
    const source = generic ? `model Wrap {\n  dim N\n  input x: f32[N, 3, ${generic.width}]\n  sub m = ${name}(${generic.args})\n  output y = m(x)\n}\n` : "";
    cases.push({ label: `std ${name}`, file: "std.dt", source, model: generic ? undefined : name });
  }
  return cases;
}

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

    it("on random graphs with attention, at every stage of the default pipeline", async () => {
      await fc.assert(
        fc.asyncProperty(arbitraryGraphCase({ dims: true, attention: true, continuous: true }), async ({ graph, dims, inputs }) => {
          await runAndCompareStages(backend, graph, inputs, new Map(), dims);
        }),
        { numRuns: 25 },
      );
    });

    for (const c of modelCases()) {
      it(`on ${c.label}, at every stage of the default pipeline`, async () => {
        const program = parseProgram(c.source, c.file);
        const name = c.model ?? elaborate(program).model.name.name;
        const { graph } = elaborate(program, { model: c.model, set: new Map(SMALL[name] ?? []) });
        const dims = new Map(graph.dims.map((d) => [d, 7]));
        const inputs = randomInputs(graph, dims, 3);
        // Norm weights drawn away from 1 (test/support/weights.ts): a dropped one fails.
        await runAndCompareStages(backend, graph, inputs, testWeights(graph, 3), dims);
      });
    }

    it("on examples/diff_attention.dt with RMSNorm eps = 0.003 and random norm weights, fused into the flash epilogue", async () => {
      const file = "diff_attention.dt";
      const source = readFileSync(new URL(`../../examples/${file}`, import.meta.url), "utf8");
      expect(source).toContain("RMSNorm(2 * d, eps = 1e-5)");
      const graph = compileSource(source.replace("RMSNorm(2 * d, eps = 1e-5)", "RMSNorm(2 * d, eps = 0.003)"), { set: new Map([["D", 64], ["H", 2]]) }, file);
      // The pipeline moves the norm, its eps and its weight into flash_diffattn's epilogue.
      const flash = runPipeline(graph, DEFAULT_PIPELINE, { log: () => {} }).nodes.filter((n) => n.op === "flash_diffattn");
      expect(flash.map((n) => [n.attrs.norm_eps, n.operands.length])).toEqual([[0.003, 5]]);
      const dims = new Map([["N", 19]]);
      const weights = testWeights(graph, 5);
      const norm = [...weights].filter(([name]) => name.startsWith("subln."));
      expect(norm.length).toBeGreaterThan(0);
      for (const [name, w] of norm) expect(w.data.some((x) => x !== 1), name).toBe(true);
      await runAndCompareStages(backend, graph, randomInputs(graph, dims, 5), weights, dims);
    });
  });
}
