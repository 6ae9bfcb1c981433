// decompose: high-level ops become their primitives; what fusion passes made stays.
import { describe, expect, it } from "vitest";
import { decomposePass } from "../../compiler/passes/decompose.ts";
import { parseGraph } from "../../compiler/ir/parse.ts";
import { printGraph } from "../../compiler/ir/print.ts";
import { checkWithinTolerance, expectCloseOutputs } from "./equivalence.ts";
import { seededInputs } from "../support/random-graph.ts";

describe("decompose", () => {
  it("writes rmsnorm as its primitives (IR before and after)", () => {
    const before = parseGraph(`graph G [N] {
  %0 = input {name = "x"} : f32[N, 4]
  %1 = input {name = "w"} : f32[4]
  %2 = rmsnorm(%0, %1) {eps = 0.001} : f32[N, 4]
  output "y" = %2
}`);
    const after = `graph G [N] {
  %0 = input {name = "x"} : f32[N, 4]
  %1 = input {name = "w"} : f32[4]
  %2 = mul(%0, %0) : f32[N, 4]
  %3 = mean(%2) {axes = [-1], keepdims = true} : f32[N, 1]
  %4 = const {value = 0.001} : f32[]
  %5 = add(%3, %4) : f32[N, 1]
  %6 = sqrt(%5) : f32[N, 1]
  %7 = div(%0, %6) : f32[N, 4]
  %8 = mul(%7, %1) : f32[N, 4]
  output "y" = %8
}`;
    const out = decomposePass.run(before);
    expect(printGraph(out)).toBe(printGraph(parseGraph(after)));
    const dims = new Map([["N", 3]]);
    expectCloseOutputs(before, out, seededInputs(before, dims, 1), dims);
  });

  it("keeps the fused kernels the fusion passes made, and decomposes what they were made of otherwise", () => {
    const g = parseGraph(`graph G [N] {
  %0 = input {name = "q"} : f32[N, 8]
  %1 = const {value = 0.5} : f32[]
  %2 = flash_diffattn(%0, %0, %0, %1) {heads = 2, causal = true} : f32[N, 2, 4]
  %3 = diffattn(%0, %0, %0, %1) {heads = 2, causal = true} : f32[N, 2, 4]
  %4 = add(%2, %3) : f32[N, 2, 4]
  output "y" = %4
}`);
    const ops = decomposePass.run(g).nodes.map((n) => n.op);
    expect(ops).toContain("flash_diffattn");
    expect(ops).not.toContain("diffattn");
    expect(ops).toContain("softmax");
  });

  it("keeps the outputs of random graphs with attention, within rounding", () => checkWithinTolerance(decomposePass, { numRuns: 150 }));
});
