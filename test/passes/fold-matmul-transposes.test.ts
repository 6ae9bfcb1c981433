import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { FOLD_MATMUL_TRANSPOSE_RULES, foldMatmulTransposesPass } from "../../compiler/passes/fold-matmul-transposes.ts";
import { orderWarnings, parsePipeline, runPipeline } from "../../compiler/passes/pipeline.ts";
import { ruleName } from "../../compiler/passes/pattern.ts";
import { collectStatistics } from "../../compiler/passes/statistics.ts";
import { compileSource } from "../support/dsl.ts";
import { checkCleanup, expectRewrite } from "./equivalence.ts";

const [FOLD, UNFOLD] = FOLD_MATMUL_TRANSPOSE_RULES.map(ruleName);

describe("fold-matmul-transposes", () => {
  it("x @ transpose(W), a Linear layer, reads W transposed in place", () => {
    expectRewrite(
      foldMatmulTransposesPass,
      `graph g [N] {
        %0 = input {name = "x"} : f32[N, 4]
        %1 = param {name = "w"} : f32[3, 4]
        %2 = transpose(%1) : f32[4, 3]
        %3 = matmul(%0, %2) : f32[N, 3]
        output "y" = %3
      }`,
      `graph g [N] {
        %0 = input {name = "x"} : f32[N, 4]
        %1 = param {name = "w"} : f32[3, 4]
        %2 = matmul(%0, %1) {transpose_b = true} : f32[N, 3]
        output "y" = %2
      }`,
    );
  });

  it("batched: a transpose that swaps only the last two axes folds; one that moves a batch axis stays", () => {
    expectRewrite(
      foldMatmulTransposesPass,
      `graph g {
        %0 = input {name = "q"} : f32[2, 5, 4]
        %1 = input {name = "k"} : f32[2, 6, 4]
        %2 = transpose(%1) {perm = [0, 2, 1]} : f32[2, 4, 6]
        %3 = matmul(%0, %2) : f32[2, 5, 6]
        %4 = input {name = "v"} : f32[4, 2, 6]
        %5 = transpose(%4) {perm = [1, 0, 2]} : f32[2, 4, 6]
        %6 = matmul(%0, %5) : f32[2, 5, 6]
        output "s" = %3
        output "t" = %6
      }`,
      `graph g {
        %0 = input {name = "q"} : f32[2, 5, 4]
        %1 = input {name = "k"} : f32[2, 6, 4]
        %2 = matmul(%0, %1) {transpose_b = true} : f32[2, 5, 6]
        %3 = input {name = "v"} : f32[4, 2, 6]
        %4 = transpose(%3) {perm = [1, 0, 2]} : f32[2, 4, 6]
        %5 = matmul(%0, %4) : f32[2, 5, 6]
        output "s" = %2
        output "t" = %5
      }`,
    );
  });

  it("a transpose read elsewhere stays for that reader; a transposed read of a transpose is a plain product", () => {
    expectRewrite(
      foldMatmulTransposesPass,
      `graph g {
        %0 = input {name = "x"} : f32[2, 4]
        %1 = input {name = "w"} : f32[3, 4]
        %2 = transpose(%1) : f32[4, 3]
        %3 = matmul(%0, %2) : f32[2, 3]
        %4 = exp(%2) : f32[4, 3]
        %5 = input {name = "u"} : f32[4, 3]
        %6 = transpose(%5) : f32[3, 4]
        %7 = matmul(%0, %6) {transpose_b = true} : f32[2, 3]
        output "y" = %3
        output "z" = %4
        output "v" = %7
      }`,
      `graph g {
        %0 = input {name = "x"} : f32[2, 4]
        %1 = input {name = "w"} : f32[3, 4]
        %2 = transpose(%1) : f32[4, 3]
        %3 = matmul(%0, %1) {transpose_b = true} : f32[2, 3]
        %4 = exp(%2) : f32[4, 3]
        %5 = input {name = "u"} : f32[4, 3]
        %6 = matmul(%0, %5) : f32[2, 3]
        output "y" = %3
        output "z" = %4
        output "v" = %6
      }`,
    );
  });

  it("keeps every output bit on random graphs with Linear, SwiGLU and attention layers, and folds on at least a tenth of them", () => {
    checkCleanup(foldMatmulTransposesPass, { fires: { rule: FOLD, atLeast: 0.1 } });
  });

  it("counts each fold under its rule's name", () => {
    const g = compileSource(`model M { dim N\n input x: f32[N, 4]\n sub a = Linear(4, 4)\n sub b = Linear(4, 2)\n output y = b(a(x)) }`);
    const { statistics } = collectStatistics(() => foldMatmulTransposesPass.run(g));
    expect(Object.fromEntries(statistics)).toEqual({ [FOLD]: 2 });
    expect(UNFOLD).toBe("matmul(x, transpose(w)) {transpose_b} -> x @ w");
  });

  it("runs in the default pipeline after the attention fusions and before elementwise fusion, which it must", () => {
    const names = parsePipeline("default");
    expect(names.indexOf("fold-matmul-transposes")).toBeGreaterThan(names.lastIndexOf("fuse-dual-softmax"));
    expect(names.indexOf("fold-matmul-transposes")).toBeLessThan(names.indexOf("fuse-elementwise"));
    expect(orderWarnings(names)).toEqual([]);
  });

  it("run before fuse-dual-softmax it stops hand-written differential attention from fusing, and the pipeline warns", () => {
    const g = compileSource(readFileSync(new URL("../../examples/diff_attention_by_hand.dt", import.meta.url), "utf8"), {}, "diff_attention_by_hand.dt");
    const ops = (names: string[]) => runPipeline(g, names, { log: () => {} }).nodes.map((n) => n.op);
    const broken = parsePipeline("fold-matmul-transposes,fuse-dual-softmax");
    expect(orderWarnings(broken)).toEqual([
      "fold-matmul-transposes runs before fuse-dual-softmax, but must run after it: it rewrites q @ transpose(k), so hand-written differential attention is no longer found and fused",
    ]);
    expect(ops(broken)).not.toContain("flash_diffattn");
    expect(ops(parsePipeline("fuse-dual-softmax,fold-matmul-transposes"))).toContain("flash_diffattn");
  });
});
