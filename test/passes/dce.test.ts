import { describe, expect, it } from "vitest";
import { parseGraph } from "../../compiler/ir/parse.ts";
import { dcePass } from "../../compiler/passes/dce.ts";
import { checkCleanup, expectRewrite } from "./equivalence.ts";

describe("dce", () => {
  it("removes nodes no output reads, and the nodes only they read", () => {
    expectRewrite(
      dcePass,
      `graph g [N] {
        %0 = input {name = "x"} : f32[N, 4]
        %1 = exp(%0) : f32[N, 4]
        %2 = const {value = 3} : f32[]
        %3 = mul(%1, %2) : f32[N, 4]
        %4 = neg(%0) : f32[N, 4]
        output "y" = %4
      }`,
      `graph g [N] {
        %0 = input {name = "x"} : f32[N, 4]
        %1 = neg(%0) : f32[N, 4]
        output "y" = %1
      }`,
    );
  });

  it("keeps every input and param, read or not: they are the graph's signature", () => {
    const body = `graph g [N] {
      %0 = input {name = "x"} : f32[N, 4]
      %1 = input {name = "unused"} : i32[N]
      %2 = param {name = "w"} : f32[4]
      %3 = param {name = "also_unused"} : f32[4, 4]
      %4 = mul(%0, %2) : f32[N, 4]
      output "y" = %4
    }`;
    expectRewrite(dcePass, body, body);
  });

  it("returns a graph with nothing dead as it is", () => {
    const g = parseGraph(`graph g {
      %0 = input {name = "x"} : f32[3]
      output "y" = %0
    }`);
    expect(dcePass.run(g)).toBe(g);
  });

  it("keeps the interpreter's outputs bit for bit on random graphs, and is a fixpoint", () => {
    checkCleanup(dcePass);
  });
});
