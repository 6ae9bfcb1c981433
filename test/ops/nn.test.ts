import { apply, inferError } from "../support/ops.ts";
import { describe, expect, it } from "vitest";
import "../../compiler/ir/ops/nn.ts";
import { getOp } from "../../compiler/ir/registry.ts";
import { tensor } from "../../compiler/ir/tensor.ts";

function expectClose(actual: Float64Array, expected: number[], digits = 12): void {
  expect(actual.length).toBe(expected.length);
  expected.forEach((e, i) => expect(actual[i], `element ${i}`).toBeCloseTo(e, digits));
}

const f32 = (shape: number[], data?: number[]) => tensor("f32", shape, data);

describe("softmax", () => {
  it("exponentiates and normalises the last axis: [0, ln 3] -> [1/4, 3/4]", () => {
    expectClose(apply("softmax", [f32([2, 2], [0, Math.log(3), Math.log(1), Math.log(7)])]).data, [0.25, 0.75, 0.125, 0.875]);
  });

  it("subtracts the max, so huge logits do not overflow", () => {
    expectClose(apply("softmax", [f32([3], [1000, 1000 + Math.log(2), 1000 + Math.log(5)])]).data, [1 / 8, 2 / 8, 5 / 8]);
  });

  it("gives all 0 for a row that is entirely -inf, and 0 for -inf entries of other rows", () => {
    const out = apply("softmax", [f32([2, 3], [-Infinity, -Infinity, -Infinity, -Infinity, 0, Math.log(3)])]).data;
    expect([...out.slice(0, 4)]).toEqual([0, 0, 0, 0]);
    expectClose(out.slice(4), [0.25, 0.75]);
  });

  it("normalises along axis 0 when asked", () => {
    // [[0, ln 3], [ln 3, 0]]: each column is normalised.
    const out = apply("softmax", [f32([2, 2], [0, Math.log(3), Math.log(3), 0])], { axis: 0 });
    expectClose(out.data, [0.25, 0.75, 0.75, 0.25]);
  });

  it("over a size-1 axis gives 1 (and 0 for -inf)", () => {
    expect([...apply("softmax", [f32([3, 1], [5, -2, -Infinity])]).data]).toEqual([1, 1, 0]);
  });

  it("propagates NaN through its row only", () => {
    const out = apply("softmax", [f32([2, 2], [NaN, 1, 0, 0])]).data;
    expect(Number.isNaN(out[0]) && Number.isNaN(out[1])).toBe(true);
    expectClose(out.slice(2), [0.5, 0.5]);
  });

  it("rejects an axis out of range and an integer operand", () => {
    expect(inferError("softmax", [{ dtype: "f32", shape: [2, 3] }], { axis: 2 })).toBe("softmax: axis 2 is out of range for f32[2, 3]");
    expect(inferError("softmax", [{ dtype: "i32", shape: [2, 3] }])).toBe("softmax: x must be a float tensor, got i32[2, 3]");
  });
});

describe("rmsnorm", () => {
  it("divides by sqrt(mean(x^2) + eps) and scales by weight", () => {
    // mean([3^2, 4^2]) = 12.5; + eps 3.5 = 16; sqrt = 4.
    const out = apply("rmsnorm", [f32([2, 2], [3, 4, 2, -2]), f32([2], [1, 10])], { eps: 3.5 });
    // Second row: mean(4, 4) = 4; + 3.5 = 7.5.
    expectClose(out.data, [0.75, 10, 2 / Math.sqrt(7.5), -20 / Math.sqrt(7.5)]);
  });

  it("uses eps = 1e-5 by default", () => {
    const out = apply("rmsnorm", [f32([4], [2, -2, 2, -2]), f32([4], [1, 2, 3, 4])]);
    const r = Math.sqrt(4 + 1e-5);
    expectClose(out.data, [2 / r, -4 / r, 6 / r, -8 / r]);
  });

  it("needs weight of shape [C] and x's dtype", () => {
    expect(inferError("rmsnorm", [{ dtype: "f32", shape: ["N", 4] }, { dtype: "f32", shape: [3] }])).toBe(
      "rmsnorm: weight f32[3] must have shape [4], the last dim of x f32[N, 4]",
    );
    expect(inferError("rmsnorm", [{ dtype: "f16", shape: [4] }, { dtype: "f32", shape: [4] }])).toMatch(/weight f32\[4\] and x f16\[4\] have different dtypes/);
    expect(inferError("rmsnorm", [{ dtype: "f32", shape: [] }, { dtype: "f32", shape: [] }])).toMatch(/rank 1 or more, got f32\[\]/);
  });

  it("accepts a symbolic feature size matched by name", () => {
    expect(getOp("rmsnorm")!.infer([{ dtype: "f32", shape: ["N", "C"] }, { dtype: "f32", shape: ["C"] }], { eps: 1e-5 })).toEqual({ dtype: "f32", shape: ["N", "C"] });
  });
});

describe("layernorm", () => {
  // [1, 2, 3, 4]: mean 2.5, biased variance (2.25 + 0.25 + 0.25 + 2.25) / 4 = 1.25; + eps 2.75 = 4.
  const x = f32([4], [1, 2, 3, 4]);
  const w = f32([4], [1, 2, 3, 4]);

  it("normalises with the biased variance, without bias", () => {
    expectClose(apply("layernorm", [x, w], { eps: 2.75 }).data, [-0.75, -0.5, 0.75, 3]);
  });

  it("adds the bias when given", () => {
    expectClose(apply("layernorm", [x, w, f32([4], [1, 1, -1, 0])], { eps: 2.75 }).data, [0.25, 0.5, -0.25, 3]);
  });

  it("normalises each row separately", () => {
    const out = apply("layernorm", [f32([2, 2], [0, 2, 5, 5]), f32([2], [1, 1])], { eps: 0 });
    // Row 1 has zero variance and eps 0: 0/0.
    expectClose(out.data.slice(0, 2), [-1, 1]);
    expect(Number.isNaN(out.data[2])).toBe(true);
  });

  it("needs bias of shape [C]", () => {
    expect(inferError("layernorm", [{ dtype: "f32", shape: [2, 4] }, { dtype: "f32", shape: [4] }, { dtype: "f32", shape: [2, 4] }])).toBe(
      "layernorm: bias f32[2, 4] must have shape [4], the last dim of x f32[2, 4]",
    );
  });
});

describe("rope", () => {
  // theta = 4, head_dim = 4: pair 0 turns at 4^0 = 1 rad per position, pair 1 at 4^(-1/2) = 1/2.
  const attrs = { theta: 4 };

  it("interleaved: pairs (2i, 2i+1); position pi turns pair 0 by pi and pair 1 by pi/2", () => {
    const x = f32([2, 4], [1, 2, 3, 4, 1, 2, 3, 4]);
    const out = apply("rope", [x, f32([2], [0, Math.PI])], attrs);
    // Position 0 is the identity; (1, 2) by pi -> (-1, -2); (3, 4) by pi/2 -> (-4, 3).
    expectClose(out.data, [1, 2, 3, 4, -1, -2, -4, 3]);
  });

  it("non-interleaved: pairs (i, i + head_dim/2)", () => {
    const x = f32([2, 4], [1, 2, 3, 4, 1, 2, 3, 4]);
    const out = apply("rope", [x, f32([2], [0, Math.PI])], { ...attrs, interleaved: false });
    // Pair 0 is (x0, x2) = (1, 3) by pi -> (-1, -3); pair 1 is (x1, x3) = (2, 4) by pi/2 -> (-4, 2).
    expectClose(out.data, [1, 2, 3, 4, -1, -4, -3, 2]);
  });

  it("at integer position 1 rotates (x0, x1) to (x0 cos - x1 sin, x0 sin + x1 cos)", () => {
    const out = apply("rope", [f32([1, 4], [1, 2, 3, 4]), tensor("i32", [1], [1])], attrs);
    const [c0, s0, c1, s1] = [Math.cos(1), Math.sin(1), Math.cos(0.5), Math.sin(0.5)];
    expectClose(out.data, [1 * c0 - 2 * s0, 1 * s0 + 2 * c0, 3 * c1 - 4 * s1, 3 * s1 + 4 * c1]);
  });

  it("uses theta = 10000 by default: pair 1 of a 4-wide head turns at 1/100 rad per position", () => {
    const out = apply("rope", [f32([1, 4], [0, 0, 1, 0]), f32([1], [3])]);
    expectClose(out.data, [0, 0, Math.cos(0.03), Math.sin(0.03)]);
  });

  it("rotates every head of a row alike and every batch entry by the row's position", () => {
    const row = [1, 2, 3, 4];
    const x = f32([2, 2, 8], [...row, ...row, ...row, ...row, ...row, ...row, ...row, ...row]);
    const out = apply("rope", [x, f32([2], [0, Math.PI])], { ...attrs, head_dim: 4 });
    const turned = [-1, -2, -4, 3];
    expectClose(out.data, [...row, ...row, ...turned, ...turned, ...row, ...row, ...turned, ...turned]);
  });

  it("checks head_dim, the width and pos", () => {
    const x = (shape: (number | string)[]) => ({ dtype: "f32" as const, shape });
    const pos = (shape: (number | string)[]) => ({ dtype: "i32" as const, shape });
    expect(inferError("rope", [x(["N", 12]), pos(["N"])], { head_dim: 8 })).toBe("rope: the last dim 12 of x f32[N, 12] is not a multiple of head_dim 8");
    expect(inferError("rope", [x(["N", 6]), pos(["N"])], { head_dim: 3 })).toBe("rope: head_dim 3 must be even and positive (x is f32[N, 6])");
    expect(inferError("rope", [x(["N", "C"]), pos(["N"])])).toBe("rope: the last dim of x f32[N, C] must be a static size to split it into heads");
    expect(inferError("rope", [x(["N", 8]), pos(["M"])])).toBe("rope: pos i32[M] must have shape [N], one position per row of x f32[N, 8]");
    expect(inferError("rope", [x([8]), pos([8])])).toBe("rope needs x of shape [..., N, C], got f32[8]");
    expect(inferError("rope", [x([2, 8]), { dtype: "bool", shape: [2] }])).toBe("rope: pos must be numeric, got bool[2]");
    expect(getOp("rope")!.infer([x(["B", "N", 8]), pos(["N"])], { theta: 1e4, head_dim: 4, interleaved: true })).toEqual(x(["B", "N", 8]));
  });
});
