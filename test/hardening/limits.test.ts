// Inputs that used to overflow the stack, exhaust memory or crash the default pipeline end
// with a result or a diagnostic: long elementwise chains, empty axes, tensors too large for a
// typed array, and models whose elaboration multiplies without bound.
import { describe, expect, it } from "vitest";
import { compileJs } from "../../backends/js/index.ts";
import { TARGETS } from "../../backends/registry.ts";
import { Diagnostic } from "../../common/diagnostic.ts";
import { runPipeline } from "../../compiler/passes/pipeline.ts";
import { DEFAULT_PIPELINE } from "../../compiler/passes/registry.ts";
import { loadJs } from "../../runtime/adapters/js/index.ts";
import { initWeights, randomInputs } from "../../runtime/init.ts";
import { bindDims, evaluate } from "../../runtime/interpreter/index.ts";
import { compileSource, diagnose } from "../support/dsl.ts";

describe("long chains and empty axes", () => {
  it("a 2000-op elementwise chain fuses into one kernel and lowers for every target without recursion", async () => {
    const graph = compileSource("model M { input x: f32[4] let y = x\n for i in 0..2000 { y = tanh(y) * x }\n output z = y }");
    const optimized = runPipeline(graph, DEFAULT_PIPELINE);
    for (const target of TARGETS) expect(target.compile(optimized, { passes: DEFAULT_PIPELINE }).manifest.kernels.length).toBe(1);
    const inputs = randomInputs(graph, new Map(), 1);
    const session = await loadJs(compileJs(optimized, DEFAULT_PIPELINE), new Map());
    expect((await session.run(inputs)).get("z")!.data).toEqual(evaluate(graph, inputs, new Map()).get("z")!.data);
  });

  it("D = 0 (an empty normalised axis) compiles through the default pipeline and runs to an empty result", async () => {
    const graph = compileSource("model M(D = 0) { dim N input x: f32[N, D] sub n = RMSNorm(D) sub l = LayerNorm(D) output y = n(x) + l(x) }");
    const optimized = runPipeline(graph, DEFAULT_PIPELINE);
    for (const target of TARGETS) target.compile(optimized, { passes: DEFAULT_PIPELINE });
    const dims = new Map([["N", 3]]);
    const inputs = randomInputs(graph, dims, 0);
    const out = await (await loadJs(compileJs(optimized, DEFAULT_PIPELINE), initWeights(graph, 0))).run(inputs);
    expect(out.get("y")!.shape).toEqual([3, 0]);
  });
});

describe("tensor sizes", () => {
  it("a param past the typed-array limit is a diagnostic at check time that names its shape", () => {
    const d = diagnose("model M { input x: f32[4] param w: f32[100000, 100000] output y = x + sum(w) }");
    expect(d.message).toBe(`param w: f32[100000, 100000] has 10,000,000,000 elements, more than the 4,294,967,296 a tensor may hold`);
    expect([d.line, d.col]).toEqual([1, 27]);
  });

  it("a size past 2^53 is a diagnostic, not an inexact count", () => {
    expect(diagnose("model M { input x: f32[2 ** 40, 2 ** 40] output y = x }").message).toMatch(/has about 1\.21e\+24 elements/);
  });

  it("a dim bound past the limit is a diagnostic before any tensor is allocated", () => {
    const graph = compileSource("model M { dim N input x: f32[N, 8] output y = x + 1 }");
    const dims = new Map([["N", 1_000_000_000]]);
    expect(() => randomInputs(graph, dims, 0)).toThrow(/input x: f32\[N, 8\] \(\[1000000000, 8\]\) with N = 1000000000 has 8,000,000,000 elements/);
    // An input small enough whose run makes a tensor too large: refused before the input is drawn.
    const lm = compileSource("model M { dim N input tokens: i32[N] param embed: f32[256, 64] output y = embed[tokens] }");
    expect(() => randomInputs(lm, dims, 0)).toThrow(/^this gather: f32\[N, 64\] \(\[1000000000, 64\]\) with N = 1000000000 has 64,000,000,000 elements/);
    expect(() => bindDims(graph, new Map([["x", { dtype: "f32", shape: [1_000_000_000, 8], data: new Float64Array(0) }]]))).toThrow(Diagnostic);
  });
});

describe("elaboration budget", () => {
  const doubling = (levels: number) =>
    Array.from({ length: levels }, (_, i) =>
      i < levels - 1 ? `model M${i} { input x: f32[4] sub a = M${i + 1}() sub b = M${i + 1}() output y = a(b(x)) }` : `model M${i} { input x: f32[4] output y = x + 1 }`,
    ).join("\n");

  it("a model that instantiates the next twice, 26 levels deep, stops at the node budget naming the model", () => {
    const d = diagnose(doubling(26), { model: "M0" });
    expect(d.message).toBe(`elaborating model M0 exceeds the limit of 200,000 graph nodes, in model M25`);
    expect(d.text).toContain("instantiated as M0 -> M1 -> M2 -> ... -> M23 -> M24 -> M25");
  });

  it("nested 100000-step loops stop at the step budget", () => {
    const d = diagnose("model M { input x: f32[4]\n for i in 0..100000 { for j in 0..100000 { let z = 1 } }\n output o = x }");
    expect(d.message).toMatch(/^elaborating model M exceeds the limit of 1,000,000 steps/);
    expect(d.line).toBe(2);
  });

  it("sub-modules nested deeper than the depth budget are a diagnostic, not a stack overflow", () => {
    const source = Array.from({ length: 200 }, (_, i) => (i < 199 ? `model D${i} { input x: f32[4] sub a = D${i + 1}() output y = a(x) }` : `model D${i} { input x: f32[4] output y = x }`)).join("\n");
    expect(diagnose(source, { model: "D0" }).message).toBe(`elaborating model D0 exceeds the limit of 64 nested sub-module instances, in model D64`);
  });
});
