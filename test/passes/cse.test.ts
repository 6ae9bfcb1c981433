import { describe, it } from "vitest";
import { csePass } from "../../compiler/passes/cse.ts";
import { checkCleanup, expectRewrite } from "./equivalence.ts";

describe("cse", () => {
  it("merges repeated computations, chains of them included", () => {
    expectRewrite(
      csePass,
      `graph g [N] {
        %0 = input {name = "x"} : f32[N, 4]
        %1 = const {value = 2} : f32[]
        %2 = mul(%0, %1) : f32[N, 4]
        %3 = exp(%2) : f32[N, 4]
        %4 = const {value = 2} : f32[]
        %5 = mul(%0, %4) : f32[N, 4]
        %6 = exp(%5) : f32[N, 4]
        %7 = sub(%3, %6) : f32[N, 4]
        output "y" = %7
        output "e" = %6
      }`,
      `graph g [N] {
        %0 = input {name = "x"} : f32[N, 4]
        %1 = const {value = 2} : f32[]
        %2 = mul(%0, %1) : f32[N, 4]
        %3 = exp(%2) : f32[N, 4]
        %4 = sub(%3, %3) : f32[N, 4]
        output "y" = %4
        output "e" = %3
      }`,
    );
  });

  it("keeps apart different attributes, 0 and -0, and inputs and params of the same type", () => {
    const body = `graph g {
      %0 = input {name = "x"} : f32[2, 3]
      %1 = input {name = "y"} : f32[2, 3]
      %2 = param {name = "w"} : f32[2, 3]
      %3 = param {name = "v"} : f32[2, 3]
      %4 = const {value = 0} : f32[]
      %5 = const {value = -0} : f32[]
      %6 = const {value = 0, dtype = f16} : f16[]
      %7 = sum(%0) {axes = [0]} : f32[3]
      %8 = sum(%0) {axes = [0], keepdims = true} : f32[1, 3]
      %9 = sum(%0) {axes = [-2]} : f32[3]
      %10 = add(%0, %4) : f32[2, 3]
      %11 = add(%0, %5) : f32[2, 3]
      %12 = add(%1, %2) : f32[2, 3]
      %13 = add(%1, %3) : f32[2, 3]
      output "a" = %7
      output "b" = %8
      output "c" = %9
      output "d" = %10
      output "e" = %11
      output "f" = %12
      output "g" = %13
      output "h" = %6
    }`;
    expectRewrite(csePass, body, body);
  });

  it("merges constants that print alike, nan and -inf included", () => {
    expectRewrite(
      csePass,
      `graph g {
        %0 = const {value = nan} : f32[]
        %1 = const {value = nan} : f32[]
        %2 = const {value = -inf} : f32[]
        %3 = const {value = -inf} : f32[]
        %4 = add(%0, %2) : f32[]
        %5 = add(%1, %3) : f32[]
        output "a" = %4
        output "b" = %5
      }`,
      `graph g {
        %0 = const {value = nan} : f32[]
        %1 = const {value = -inf} : f32[]
        %2 = add(%0, %1) : f32[]
        output "a" = %2
        output "b" = %2
      }`,
    );
  });

  it("merges two fused nodes whose bodies are equal graphs, and keeps apart those whose bodies differ", () => {
    const node = (id: number, value: string) => `%${id} = fused(%0) {kind = "elementwise"} : f32[N, 4]
        body = graph fused [N] {
          %0 = input {name = "0"} : f32[N, 4]
          %1 = const {value = ${value}} : f32[]
          %2 = mul(%0, %1) : f32[N, 4]
          output "out" = %2
        }`;
    expectRewrite(
      csePass,
      `graph g [N] {
        %0 = input {name = "x"} : f32[N, 4]
        ${node(1, "2")}
        ${node(2, "2")}
        ${node(3, "-0")}
        ${node(4, "0")}
        output "a" = %1
        output "b" = %2
        output "c" = %3
        output "d" = %4
      }`,
      `graph g [N] {
        %0 = input {name = "x"} : f32[N, 4]
        ${node(1, "2")}
        ${node(2, "-0")}
        ${node(3, "0")}
        output "a" = %1
        output "b" = %1
        output "c" = %2
        output "d" = %3
      }`,
    );
  });

  it("keeps the interpreter's outputs bit for bit on random graphs, and is a fixpoint", () => {
    checkCleanup(csePass);
  });
});
