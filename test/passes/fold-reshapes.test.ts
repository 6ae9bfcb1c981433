import { describe, it } from "vitest";
import { foldReshapesPass } from "../../compiler/passes/fold-reshapes.ts";
import { checkCleanup, expectRewrite } from "./equivalence.ts";

describe("fold-reshapes", () => {
  it("a chain of reshapes is one reshape to the last shape", () => {
    expectRewrite(
      foldReshapesPass,
      `graph g [N] {
        %0 = input {name = "x"} : f32[N, 8]
        %1 = reshape(%0) {shape = [N, 4, 2]} : f32[N, 4, 2]
        %2 = reshape(%1) {shape = [N, 2, 2, 2]} : f32[N, 2, 2, 2]
        %3 = reshape(%2) {shape = [2, N, 4]} : f32[2, N, 4]
        output "y" = %3
      }`,
      `graph g [N] {
        %0 = input {name = "x"} : f32[N, 8]
        %1 = reshape(%0) {shape = [2, N, 4]} : f32[2, N, 4]
        output "y" = %1
      }`,
    );
  });

  it("reshapes that come back to x's shape are x; a reshape read elsewhere stays for that reader", () => {
    expectRewrite(
      foldReshapesPass,
      `graph g [N] {
        %0 = input {name = "x"} : f32[N, 8]
        %1 = reshape(%0) {shape = [8, N]} : f32[8, N]
        %2 = reshape(%1) {shape = [N, 8]} : f32[N, 8]
        %3 = exp(%1) : f32[8, N]
        output "y" = %2
        output "z" = %3
      }`,
      `graph g [N] {
        %0 = input {name = "x"} : f32[N, 8]
        %1 = reshape(%0) {shape = [8, N]} : f32[8, N]
        %2 = exp(%1) : f32[8, N]
        output "y" = %0
        output "z" = %2
      }`,
    );
  });

  it("two transposes compose into one: out[i] = x[inner[outer[i]]]", () => {
    expectRewrite(
      foldReshapesPass,
      `graph g {
        %0 = input {name = "x"} : f32[2, 3, 4]
        %1 = transpose(%0) {perm = [1, 0, 2]} : f32[3, 2, 4]
        %2 = transpose(%1) {perm = [0, 2, 1]} : f32[3, 4, 2]
        output "y" = %2
      }`,
      `graph g {
        %0 = input {name = "x"} : f32[2, 3, 4]
        %1 = transpose(%0) {perm = [1, 2, 0]} : f32[3, 4, 2]
        output "y" = %1
      }`,
    );
  });

  it("transposes that undo each other are x, the default last-two swap included", () => {
    expectRewrite(
      foldReshapesPass,
      `graph g [N] {
        %0 = input {name = "x"} : f32[2, N, 4]
        %1 = transpose(%0) {perm = [1, 2, 0]} : f32[N, 4, 2]
        %2 = transpose(%1) {perm = [2, 0, 1]} : f32[2, N, 4]
        %3 = transpose(%2) : f32[2, 4, N]
        %4 = transpose(%3) : f32[2, N, 4]
        output "y" = %4
      }`,
      `graph g [N] {
        %0 = input {name = "x"} : f32[2, N, 4]
        output "y" = %0
      }`,
    );
  });

  it("leaves a transpose between reshapes, and a reshape of a transpose, alone", () => {
    const body = `graph g {
      %0 = input {name = "x"} : f32[2, 6]
      %1 = reshape(%0) {shape = [4, 3]} : f32[4, 3]
      %2 = transpose(%1) : f32[3, 4]
      %3 = reshape(%2) {shape = [12]} : f32[12]
      output "y" = %3
    }`;
    expectRewrite(foldReshapesPass, body, body);
  });

  it("keeps the interpreter's outputs bit for bit on random graphs, and is a fixpoint", () => {
    checkCleanup(foldReshapesPass);
  });
});
