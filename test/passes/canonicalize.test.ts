import { describe, expect, it } from "vitest";
import { parseGraph } from "../../compiler/ir/parse.ts";
import { tensor } from "../../compiler/ir/tensor.ts";
import { canonicalizePass } from "../../compiler/passes/canonicalize.ts";
import { evaluate } from "../../runtime/interpreter/index.ts";
import { checkCleanup, expectRewrite, outputDifference } from "./equivalence.ts";

const same = (body: string) => expectRewrite(canonicalizePass, body, body);

describe("canonicalize", () => {
  it("x * 1, 1 * x and x / 1 are x", () => {
    expectRewrite(
      canonicalizePass,
      `graph g [N] {
        %0 = input {name = "x"} : f32[N, 4]
        %1 = const {value = 1} : f32[]
        %2 = mul(%0, %1) : f32[N, 4]
        %3 = mul(%1, %2) : f32[N, 4]
        %4 = div(%3, %1) : f32[N, 4]
        output "y" = %4
      }`,
      `graph g [N] {
        %0 = input {name = "x"} : f32[N, 4]
        output "y" = %0
      }`,
    );
  });

  it("x + (-0) and x - 0 are x; x + 0 and x - (-0) are not (they turn -0 into +0)", () => {
    expectRewrite(
      canonicalizePass,
      `graph g {
        %0 = input {name = "x"} : f32[4]
        %1 = const {value = -0} : f32[]
        %2 = const {value = 0} : f32[]
        %3 = add(%0, %1) : f32[4]
        %4 = sub(%3, %2) : f32[4]
        %5 = add(%4, %2) : f32[4]
        %6 = sub(%5, %1) : f32[4]
        output "y" = %6
      }`,
      `graph g {
        %0 = input {name = "x"} : f32[4]
        %1 = const {value = -0} : f32[]
        %2 = const {value = 0} : f32[]
        %3 = add(%0, %2) : f32[4]
        %4 = sub(%3, %1) : f32[4]
        output "y" = %4
      }`,
    );
  });

  it("keeps x + 0 because the interpreter gives +0 for x = -0", () => {
    const g = parseGraph(`graph g {
      %0 = input {name = "x"} : f32[2]
      %1 = relu(%0) : f32[2]
      %2 = neg(%1) : f32[2]
      %3 = const {value = 0} : f32[]
      %4 = add(%2, %3) : f32[2]
      output "y" = %4
      output "z" = %2
    }`);
    const after = canonicalizePass.run(g);
    const inputs = new Map([["x", tensor("f32", [2], [-1, 1])]]);
    const y = evaluate(after, inputs, new Map()).get("y")!.data;
    expect(Object.is(y[0], 0)).toBe(true);
    expect(Object.is(evaluate(after, inputs, new Map()).get("z")!.data[0], -0)).toBe(true);
  });

  it("integers have no -0: i32 x + 0 is x, whichever zero the const was written with", () => {
    expectRewrite(
      canonicalizePass,
      `graph g {
        %0 = input {name = "i"} : i32[3]
        %1 = const {value = 0, dtype = i32} : i32[]
        %2 = const {value = -0, dtype = i32} : i32[]
        %3 = add(%1, %0) : i32[3]
        %4 = add(%3, %2) : i32[3]
        %5 = sub(%4, %2) : i32[3]
        output "y" = %5
      }`,
      `graph g {
        %0 = input {name = "i"} : i32[3]
        output "y" = %0
      }`,
    );
  });

  it("a const is compared after rounding to its dtype: 1.0001 is 1 in f16 but not in f32", () => {
    expectRewrite(
      canonicalizePass,
      `graph g {
        %0 = input {name = "h"} : f16[3]
        %1 = const {value = 1.0001, dtype = f16} : f16[]
        %2 = mul(%0, %1) : f16[3]
        %3 = input {name = "x"} : f32[3]
        %4 = const {value = 1.0001} : f32[]
        %5 = mul(%3, %4) : f32[3]
        output "h" = %2
        output "x" = %5
      }`,
      `graph g {
        %0 = input {name = "h"} : f16[3]
        %1 = input {name = "x"} : f32[3]
        %2 = const {value = 1.0001} : f32[]
        %3 = mul(%1, %2) : f32[3]
        output "h" = %0
        output "x" = %3
      }`,
    );
  });

  it("keeps x * 0, 0 * x and x * -0: NaN for x = NaN and ±inf, -0 for negative x (fixed inputs, not drawn ones)", () => {
    const g = parseGraph(`graph g {
      %0 = input {name = "x"} : f32[8]
      %1 = const {value = 0} : f32[]
      %2 = const {value = -0} : f32[]
      %3 = mul(%0, %1) : f32[8]
      %4 = mul(%1, %0) : f32[8]
      %5 = mul(%0, %2) : f32[8]
      output "a" = %3
      output "b" = %4
      output "c" = %5
    }`);
    const after = canonicalizePass.run(g);
    expect(after.nodes.filter((n) => n.op === "mul")).toHaveLength(3);
    const inputs = new Map([["x", tensor("f32", [8], [NaN, Infinity, -Infinity, -0, 0, -1.5, 2, -3e38])]]);
    const outputs = evaluate(after, inputs, new Map());
    const show = (name: string) => [...outputs.get(name)!.data].map((v) => (Object.is(v, -0) ? "-0" : String(v)));
    expect(show("a")).toEqual(["NaN", "NaN", "NaN", "-0", "0", "-0", "0", "-0"]);
    expect(show("b")).toEqual(show("a"));
    expect(show("c")).toEqual(["NaN", "NaN", "NaN", "0", "-0", "0", "-0", "0"]);
    expect(outputDifference(evaluate(g, inputs, new Map()), outputs)).toBeUndefined();
  });

  it("neg(neg x) is x; one neg stays", () => {
    expectRewrite(
      canonicalizePass,
      `graph g {
        %0 = input {name = "x"} : f32[3]
        %1 = neg(%0) : f32[3]
        %2 = neg(%1) : f32[3]
        %3 = neg(%2) : f32[3]
        output "y" = %3
      }`,
      `graph g {
        %0 = input {name = "x"} : f32[3]
        %1 = neg(%0) : f32[3]
        output "y" = %1
      }`,
    );
  });

  it("casts, transposes, reshapes and broadcasts that change nothing are removed", () => {
    expectRewrite(
      canonicalizePass,
      `graph g [N] {
        %0 = input {name = "x"} : f32[N, 4]
        %1 = cast(%0) {dtype = f32} : f32[N, 4]
        %2 = transpose(%1) {perm = [0, 1]} : f32[N, 4]
        %3 = reshape(%2) {shape = [N, 4]} : f32[N, 4]
        %4 = broadcast(%3) {shape = [N, 4]} : f32[N, 4]
        output "y" = %4
      }`,
      `graph g [N] {
        %0 = input {name = "x"} : f32[N, 4]
        output "y" = %0
      }`,
    );
  });

  it("keeps casts to another dtype, swaps, reshapes and broadcasts that change the shape", () => {
    same(`graph g [N] {
      %0 = input {name = "x"} : f32[N, 4]
      %1 = cast(%0) {dtype = f16} : f16[N, 4]
      %2 = transpose(%0) : f32[4, N]
      %3 = reshape(%0) {shape = [4, N]} : f32[4, N]
      %4 = broadcast(%0) {shape = [2, N, 4]} : f32[2, N, 4]
      %5 = transpose(%0) {perm = [1, 0]} : f32[4, N]
      output "a" = %1
      output "b" = %2
      output "c" = %3
      output "d" = %4
      output "e" = %5
    }`);
  });

  it("moves constants to the right of commutative ops, and only those", () => {
    expectRewrite(
      canonicalizePass,
      `graph g {
        %0 = input {name = "x"} : f32[3]
        %1 = const {value = 2} : f32[]
        %2 = add(%1, %0) : f32[3]
        %3 = maximum(%1, %2) : f32[3]
        %4 = sub(%1, %3) : f32[3]
        %5 = mul(%1, %1) : f32[]
        %6 = eq(%5, %4) : bool[3]
        output "y" = %6
      }`,
      `graph g {
        %0 = input {name = "x"} : f32[3]
        %1 = const {value = 2} : f32[]
        %2 = add(%0, %1) : f32[3]
        %3 = maximum(%2, %1) : f32[3]
        %4 = sub(%1, %3) : f32[3]
        %5 = mul(%1, %1) : f32[]
        %6 = eq(%5, %4) : bool[3]
        output "y" = %6
      }`,
    );
  });

  it("rewrites inside fused bodies, and a fused node whose body is left returning its input is that input", () => {
    const fused = (body: string) => `graph g [N] {
        %0 = input {name = "x"} : f32[N, 4]
        %1 = fused(%0) {kind = "elementwise"} : f32[N, 4]
          body = graph fused [N] {
            %0 = input {name = "0"} : f32[N, 4]
            %1 = const {value = 1} : f32[]
            ${body}
          }
        output "y" = %1
      }`;
    expectRewrite(canonicalizePass, fused(`%2 = mul(%0, %1) : f32[N, 4]\n %3 = exp(%2) : f32[N, 4]\n output "out" = %3`), fused(`%2 = exp(%0) : f32[N, 4]\n output "out" = %2`).replace(/ *%1 = const.*\n/, ""));
    expectRewrite(canonicalizePass, fused(`%2 = mul(%1, %0) : f32[N, 4]\n output "out" = %2`), `graph g [N] {\n %0 = input {name = "x"} : f32[N, 4]\n output "y" = %0\n }`);
  });

  it("keeps the interpreter's outputs bit for bit on random graphs, is a fixpoint, and fires on at least 30% of them", () => {
    checkCleanup(canonicalizePass, { fires: { atLeast: 0.3 } });
  });
});
