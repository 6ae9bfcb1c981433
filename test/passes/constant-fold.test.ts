import { describe, it } from "vitest";
import { constantFoldPass } from "../../compiler/passes/constant-fold.ts";
import { checkCleanup, expectRewrite } from "./equivalence.ts";

const f = Math.fround;

describe("constant-fold", () => {
  it("folds λ_init = 0.8 - 0.6 * exp(-0.3 * layer) into one const, rounded to f32 at every step as the interpreter does", () => {
    const lambdaInit = f(f(0.8) - f(f(0.6) * f(Math.exp(f(f(-0.3) * 2)))));
    expectRewrite(
      constantFoldPass,
      `graph g [N] {
        %0 = input {name = "x"} : f32[N, 4]
        %1 = const {value = 0.8} : f32[]
        %2 = const {value = 0.6} : f32[]
        %3 = const {value = -0.3} : f32[]
        %4 = const {value = 2} : f32[]
        %5 = mul(%3, %4) : f32[]
        %6 = exp(%5) : f32[]
        %7 = mul(%2, %6) : f32[]
        %8 = sub(%1, %7) : f32[]
        %9 = mul(%0, %8) : f32[N, 4]
        output "y" = %9
      }`,
      `graph g [N] {
        %0 = input {name = "x"} : f32[N, 4]
        %1 = const {value = ${lambdaInit}} : f32[]
        %2 = mul(%0, %1) : f32[N, 4]
        output "y" = %2
      }`,
    );
  });

  it("folds i32 arithmetic with wrapping, saturating casts, division by zero and comparisons", () => {
    expectRewrite(
      constantFoldPass,
      `graph g {
        %0 = const {value = 65536, dtype = i32} : i32[]
        %1 = mul(%0, %0) : i32[]
        %2 = const {value = 3e10} : f32[]
        %3 = cast(%2) {dtype = i32} : i32[]
        %4 = const {value = 0, dtype = i32} : i32[]
        %5 = div(%0, %4) : i32[]
        %6 = lt(%0, %3) : bool[]
        output "wrapped" = %1
        output "saturated" = %3
        output "by_zero" = %5
        output "less" = %6
      }`,
      `graph g {
        %0 = const {value = 0, dtype = i32} : i32[]
        %1 = const {value = 2147483647, dtype = i32} : i32[]
        %2 = const {value = 0, dtype = i32} : i32[]
        %3 = const {value = 1, dtype = bool} : bool[]
        output "wrapped" = %0
        output "saturated" = %1
        output "by_zero" = %2
        output "less" = %3
      }`,
    );
  });

  it("rounds to the result dtype: 1 + 0.0001 in f16 is 1", () => {
    expectRewrite(
      constantFoldPass,
      `graph g {
        %0 = const {value = 1, dtype = f16} : f16[]
        %1 = const {value = 0.0001, dtype = f16} : f16[]
        %2 = add(%0, %1) : f16[]
        output "y" = %2
      }`,
      `graph g {
        %0 = const {value = 1, dtype = f16} : f16[]
        output "y" = %0
      }`,
    );
  });

  it("folds scalar shape ops and static numel, but no tensor result, no input and no numel of a dim", () => {
    expectRewrite(
      constantFoldPass,
      `graph g [N] {
        %0 = input {name = "s"} : f32[]
        %1 = const {value = 2} : f32[]
        %2 = sum(%1) : f32[]
        %3 = broadcast(%2) {shape = [3]} : f32[3]
        %4 = add(%0, %2) : f32[]
        %5 = numel {shape = [2, 3]} : i32[]
        %6 = numel {shape = [N, 3]} : i32[]
        %7 = sub(%5, %6) : i32[]
        output "a" = %3
        output "b" = %4
        output "c" = %7
      }`,
      `graph g [N] {
        %0 = input {name = "s"} : f32[]
        %1 = const {value = 2} : f32[]
        %2 = broadcast(%1) {shape = [3]} : f32[3]
        %3 = add(%0, %1) : f32[]
        %4 = const {value = 6, dtype = i32} : i32[]
        %5 = numel {shape = [N, 3]} : i32[]
        %6 = sub(%4, %5) : i32[]
        output "a" = %2
        output "b" = %3
        output "c" = %6
      }`,
    );
  });

  it("keeps the interpreter's outputs bit for bit on random graphs, and is a fixpoint", () => {
    checkCleanup(constantFoldPass);
  });
});
