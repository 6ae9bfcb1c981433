// Known answers, worked out by hand, for the core ops (source, elementwise, reduce, shape,
// matmul), each run through the reference interpreter as a one-op graph; and the messages
// their shape rules give when the operands do not fit.
import { describe, expect, it } from "vitest";
import { GraphBuilder } from "../../compiler/ir/builder.ts";
import type { Attrs } from "../../compiler/ir/graph.ts";
import { erf } from "../../compiler/ir/scalar.ts";
import { OpError } from "../../compiler/ir/registry.ts";
import { type HostTensor, tensor } from "../../compiler/ir/tensor.ts";
import type { DType, TensorType } from "../../compiler/ir/types.ts";
import { Diagnostic } from "../../common/diagnostic.ts";
import { evaluate } from "../../runtime/interpreter/index.ts";

/** Builds `inputs -> op -> output` and evaluates it with the interpreter. */
function run(op: string, args: HostTensor[], attrs: Attrs = {}): HostTensor {
  const b = new GraphBuilder(op);
  const ids = args.map((a, i) => b.add("input", [], { name: `x${i}`, dtype: a.dtype, shape: a.shape }));
  b.output("out", b.add(op, ids, attrs));
  return evaluate(b.finish(), new Map(args.map((a, i) => [`x${i}`, a])), new Map()).get("out")!;
}

/** The OpError message the builder gives for `op` applied to operands of these types. */
function shapeError(op: string, types: TensorType[], attrs: Attrs = {}): string {
  const b = new GraphBuilder(op);
  const ids = types.map((t, i) => b.add("input", [], { name: `x${i}`, dtype: t.dtype, shape: t.shape }));
  try {
    b.add(op, ids, attrs);
  } catch (e) {
    expect(e).toBeInstanceOf(OpError);
    return (e as Error).message;
  }
  throw new Error(`expected ${op} to reject ${types.map((t) => `${t.dtype}[${t.shape.join(", ")}]`).join(", ")}`);
}

function expectTensor(t: HostTensor, dtype: DType, shape: number[], data: number[]): void {
  expect(t.dtype, "dtype").toBe(dtype);
  expect(t.shape, "shape").toEqual(shape);
  expect([...t.data], "data").toEqual(data);
}

function expectClose(t: HostTensor, expected: number[], digits: number): void {
  expect(t.data.length).toBe(expected.length);
  expected.forEach((e, i) => expect(t.data[i], `element ${i}`).toBeCloseTo(e, digits));
}

const f32 = (shape: number[], data: number[]) => tensor("f32", shape, data);
const i32 = (shape: number[], data: number[]) => tensor("i32", shape, data);
const range = (n: number) => [...Array(n).keys()];
const ty = (dtype: DType, shape: (number | string)[]): TensorType => ({ dtype, shape });

describe("elementwise broadcasting", () => {
  it("add broadcasts [3, 1] against [1, 4] to [3, 4]", () => {
    const out = run("add", [f32([3, 1], [1, 2, 3]), f32([1, 4], [10, 20, 30, 40])]);
    expectTensor(out, "f32", [3, 4], [11, 21, 31, 41, 12, 22, 32, 42, 13, 23, 33, 43]);
  });

  it("sub broadcasts a scalar on the left against [2, 3]", () => {
    expectTensor(run("sub", [f32([], [10]), f32([2, 3], [1, 2, 3, 4, 5, 6])]), "f32", [2, 3], [9, 8, 7, 6, 5, 4]);
  });

  it("mul extends a [4] operand to rank 3 against [2, 3, 4], pairing it with the last axis", () => {
    const out = run("mul", [f32([2, 3, 4], range(24)), f32([4], [1, -1, 2, 0.5])]);
    // Each row of 4 is scaled by [1, -1, 2, 0.5].
    const rows = range(6).flatMap((r) => [4 * r, -(4 * r + 1), 2 * (4 * r + 2), (4 * r + 3) / 2]);
    expectTensor(out, "f32", [2, 3, 4], rows);
  });

  it("a [1] operand broadcasts against an odd size [5], and [1, 1] against [7] gives [1, 7]", () => {
    expectTensor(run("add", [f32([1], [100]), f32([5], [1, 2, 3, 4, 5])]), "f32", [5], [101, 102, 103, 104, 105]);
    expectTensor(run("add", [f32([1, 1], [1]), f32([7], range(7))]), "f32", [1, 7], range(7).map((x) => x + 1));
  });

  it("a size-1 axis broadcasts against a size-0 axis, giving an empty result", () => {
    expectTensor(run("add", [f32([2, 1], [1, 2]), f32([0], [])]), "f32", [2, 0], []);
  });
});

describe("binary arithmetic on floats", () => {
  it("f32 div follows IEEE: x/0 is ±inf, 0/0 is NaN, 1/3 rounds to f32", () => {
    const out = run("div", [f32([5], [1, -1, 0, 1, 7]), f32([5], [0, 0, 0, 3, 2])]);
    expectTensor(out, "f32", [5], [Infinity, -Infinity, NaN, Math.fround(1 / 3), 3.5]);
  });

  it("pow: 2^10 = 1024, 9^0.5 = 3, 4^-1 = 0.25, 0^0 = 1", () => {
    expectTensor(run("pow", [f32([4], [2, 9, 4, 0]), f32([4], [10, 0.5, -1, 0])]), "f32", [4], [1024, 3, 0.25, 1]);
  });

  it("maximum and minimum pick elementwise and propagate NaN from either side", () => {
    const a = f32([5], [1, 5, -3, NaN, 0]);
    const b = f32([5], [2, 4, -3, 0, NaN]);
    expectTensor(run("maximum", [a, b]), "f32", [5], [2, 5, -3, NaN, NaN]);
    expectTensor(run("minimum", [a, b]), "f32", [5], [1, 4, -3, NaN, NaN]);
  });

  it("f32 results round to nearest even: 1 + 2^-24 -> 1, (1 + 2^-23) + 2^-24 -> 1 + 2^-22", () => {
    const out = run("add", [f32([2], [1, 1 + 2 ** -23]), f32([2], [2 ** -24, 2 ** -24])]);
    expectTensor(out, "f32", [2], [1, 1 + 2 ** -22]);
  });
});

describe("unary ops", () => {
  it("neg, abs and relu on f32", () => {
    const x = f32([4], [1.5, -2, 3, -0.25]);
    expectTensor(run("neg", [x]), "f32", [4], [-1.5, 2, -3, 0.25]);
    expectTensor(run("abs", [x]), "f32", [4], [1.5, 2, 3, 0.25]);
    expectTensor(run("relu", [f32([4], [-1, 0, 2.5, -Infinity])]), "f32", [4], [0, 0, 2.5, 0]);
  });

  it("exp, log, sqrt and rsqrt at their exact points and special values", () => {
    expectTensor(run("exp", [f32([3], [0, -Infinity, Infinity])]), "f32", [3], [1, 0, Infinity]);
    expectTensor(run("log", [f32([4], [1, 0, -1, Infinity])]), "f32", [4], [0, -Infinity, NaN, Infinity]);
    expectTensor(run("sqrt", [f32([3], [4, 0.25, -1])]), "f32", [3], [2, 0.5, NaN]);
    expectTensor(run("rsqrt", [f32([3], [4, 0.25, 0])]), "f32", [3], [0.5, 2, Infinity]);
  });

  it("exp(1) and log(2) are e and ln 2 rounded to f32", () => {
    expectTensor(run("exp", [f32([1], [1])]), "f32", [1], [Math.fround(Math.E)]);
    expectTensor(run("log", [f32([1], [2])]), "f32", [1], [Math.fround(Math.LN2)]);
  });

  it("tanh, sigmoid and silu at known points", () => {
    expectTensor(run("tanh", [f32([3], [0, 20, -20])]), "f32", [3], [0, 1, -1]);
    expectClose(run("tanh", [f32([1], [0.5])]), [0.46211715726000974], 7);
    // sigmoid(0) = 1/2; sigmoid(-x) = 1 - sigmoid(x).
    expectTensor(run("sigmoid", [f32([3], [0, Infinity, -Infinity])]), "f32", [3], [0.5, 1, 0]);
    expectClose(run("sigmoid", [f32([2], [1, -1])]), [0.7310585786300049, 0.2689414213699951], 7);
    expectClose(run("silu", [f32([3], [0, 1, -1])]), [0, 0.7310585786300049, -0.2689414213699951], 7);
  });

  it("gelu is the exact erf form: gelu(1) = Φ(1) = 0.8413447460685429, gelu(-1) = -0.15865525393145707", () => {
    const out = run("gelu", [f32([5], [0, 1, -1, 2, 3])]);
    const exact = [0, 0.8413447460685429, -0.15865525393145707, 1.9544997361036416, 2.9959503059051097];
    expectTensor(out, "f32", [5], exact.map(Math.fround));
  });

  it("gelu_tanh is the tanh approximation, which differs from gelu in the fourth digit at 1", () => {
    const out = run("gelu_tanh", [f32([3], [0, 1, -1])]);
    expectTensor(out, "f32", [3], [0, Math.fround(0.8411919906082768), Math.fround(-0.15880800939172324)]);
    expect(out.data[1]).not.toBe(Math.fround(0.8413447460685429));
  });

  it("erf matches tabulated values to about 1e-15 on both sides of its series/continued-fraction switch at 2.5", () => {
    const table: [number, number][] = [
      [0.1, 0.1124629160182849],
      [0.5, 0.5204998778130465],
      [1, 0.8427007929497149],
      [2, 0.9953222650189527],
      [2.5, 0.999593047982555],
      [3, 0.9999779095030014],
      [4, 0.9999999845827421],
    ];
    for (const [x, v] of table) {
      expect(erf(x), `erf(${x})`).toBeCloseTo(v, 14);
      expect(erf(-x), `erf(${-x})`).toBeCloseTo(-v, 14);
    }
    expect(erf(0)).toBe(0);
    expect(erf(10)).toBe(1);
  });

  it("float-only unary ops of f16 round their result to f16: exp(1) = 2.71875", () => {
    // e = 2.71828...; f16 spacing at 2 is 2^-9, so the neighbours are 2.716796875 and 2.71875.
    expectTensor(run("exp", [tensor("f16", [1], [1])]), "f16", [1], [2.71875]);
  });
});

describe("comparisons", () => {
  const a = f32([3], [1, 2, 3]);
  const two = f32([], [2]);
  const cases: [string, number[]][] = [
    ["eq", [0, 1, 0]],
    ["ne", [1, 0, 1]],
    ["lt", [1, 0, 0]],
    ["le", [1, 1, 0]],
    ["gt", [0, 0, 1]],
    ["ge", [0, 1, 1]],
  ];
  for (const [op, expected] of cases) {
    it(`${op} of [1, 2, 3] against a broadcast scalar 2 is a bool tensor ${JSON.stringify(expected)}`, () => {
      expectTensor(run(op, [a, two]), "bool", [3], expected);
    });
  }

  it("every comparison with NaN is false except ne", () => {
    const nan = f32([2], [NaN, NaN]);
    const other = f32([2], [NaN, 1]);
    for (const [op] of cases) expectTensor(run(op, [nan, other]), "bool", [2], op === "ne" ? [1, 1] : [0, 0]);
  });

  it("comparisons of integers give bool too", () => {
    expectTensor(run("lt", [i32([3], [-5, 0, 7]), i32([3], [0, 0, 0])]), "bool", [3], [1, 0, 0]);
  });
});

describe("where", () => {
  it("broadcasts a [2, 1] condition, a [1, 3] branch and a scalar branch to [2, 3]", () => {
    const cond = tensor("bool", [2, 1], [1, 0]);
    const out = run("where", [cond, f32([1, 3], [1, 2, 3]), f32([], [-1])]);
    expectTensor(out, "f32", [2, 3], [1, 2, 3, -1, -1, -1]);
  });

  it("takes its result dtype from the branches, not the bool condition", () => {
    const out = run("where", [tensor("bool", [2], [0, 1]), i32([2], [7, 8]), i32([2], [-7, -8])]);
    expectTensor(out, "i32", [2], [-7, 8]);
  });
});

describe("cast", () => {
  it("float to i32 truncates toward zero and saturates at the range; NaN gives 0; ±inf saturate", () => {
    const x = f32([8], [2.7, -2.7, 0.5, 3e9, -3e9, NaN, Infinity, -Infinity]);
    expectTensor(run("cast", [x], { dtype: "i32" }), "i32", [8], [2, -2, 0, 2147483647, -2147483648, 0, 2147483647, -2147483648]);
  });

  it("float to u8 and i8 saturate at their own ranges", () => {
    const x = f32([5], [-5, 300, 255.9, 0.5, NaN]);
    expectTensor(run("cast", [x], { dtype: "u8" }), "u8", [5], [0, 255, 255, 0, 0]);
    const y = f32([4], [-200, 127.9, -128.9, -0.9]);
    expectTensor(run("cast", [y], { dtype: "i8" }), "i8", [4], [-128, 127, -128, 0]);
  });

  it("to bool is x != 0: 1 for every nonzero number and NaN, 0 for ±0 (as in C)", () => {
    const x = f32([7], [0, -0, 2, -0.5, Infinity, 1e-30, NaN]);
    expectTensor(run("cast", [x], { dtype: "bool" }), "bool", [7], [0, 0, 1, 1, 1, 1, 1]);
  });

  it("i32 to f32 rounds to nearest even: 2^24 + 1 -> 2^24, 2^24 + 3 -> 2^24 + 4", () => {
    const out = run("cast", [i32([2], [16777217, 16777219])], { dtype: "f32" });
    expectTensor(out, "f32", [2], [16777216, 16777220]);
  });

  it("f32 to f16 rounds to nearest even and overflows to inf from 65520 up", () => {
    const x = f32([5], [1 + 2 ** -11, 1 + 3 * 2 ** -11, 65504, 65519, 65520]);
    expectTensor(run("cast", [x], { dtype: "f16" }), "f16", [5], [1, 1 + 2 ** -9, 65504, 65504, Infinity]);
  });

  it("f32 to bf16 keeps 8 significant bits: 1/3 -> 0.333984375", () => {
    expectTensor(run("cast", [f32([2], [1 / 3, 1 + 2 ** -8])], { dtype: "bf16" }), "bf16", [2], [0.333984375, 1]);
  });

  it("bool to f32 gives 0 and 1", () => {
    expectTensor(run("cast", [tensor("bool", [2], [1, 0])], { dtype: "f32" }), "f32", [2], [1, 0]);
  });
});

describe("integer dtype semantics", () => {
  it("i32 div truncates toward zero, and division by zero gives 0", () => {
    const a = i32([7], [7, -7, 7, -7, 1, 0, -1]);
    const b = i32([7], [2, 2, -2, -2, 0, 0, 0]);
    expectTensor(run("div", [a, b]), "i32", [7], [3, -3, -3, 3, 0, 0, 0]);
  });

  it("i32 add, sub and mul wrap around in two's complement", () => {
    expectTensor(run("add", [i32([2], [2147483647, -2147483648]), i32([2], [1, -1])]), "i32", [2], [-2147483648, 2147483647]);
    expectTensor(run("sub", [i32([1], [-2147483648]), i32([1], [1])]), "i32", [1], [2147483647]);
    // 65536^2 = 2^32 -> 0; 65537^2 = 2^32 + 2^17 + 1 -> 131073.
    expectTensor(run("mul", [i32([2], [65536, 65537]), i32([2], [65536, 65537])]), "i32", [2], [0, 131073]);
    // -2^31 / -1 = 2^31 wraps to -2^31.
    expectTensor(run("div", [i32([1], [-2147483648]), i32([1], [-1])]), "i32", [1], [-2147483648]);
  });

  it("i32 mul wraps modulo 2^32 even when the exact product exceeds 2^53", () => {
    // (2^31 - 1)^2 = 2^62 - 2^32 + 1, which is 1 modulo 2^32 (Math.imul, C, WGSL, CUDA).
    const out = run("mul", [i32([2], [2147483647, 123456789]), i32([2], [2147483647, 987654321])]);
    expectTensor(out, "i32", [2], [Math.imul(2147483647, 2147483647), Math.imul(123456789, 987654321)]);
    expect([...out.data]).toEqual([1, -67153019]);
  });

  it("i8 and u8 arithmetic wraps at 8 bits", () => {
    expectTensor(run("add", [tensor("i8", [2], [100, -100]), tensor("i8", [2], [100, -100])]), "i8", [2], [-56, 56]);
    expectTensor(run("sub", [tensor("u8", [1], [3]), tensor("u8", [1], [5])]), "u8", [1], [254]);
    expectTensor(run("mul", [tensor("u8", [1], [16]), tensor("u8", [1], [16])]), "u8", [1], [0]);
  });

  it("i8 div truncates and divides by zero to 0; -128 / -1 wraps to -128", () => {
    const out = run("div", [tensor("i8", [3], [-7, 5, -128]), tensor("i8", [3], [2, 0, -1])]);
    expectTensor(out, "i8", [3], [-3, 0, -128]);
  });

  it("neg and abs of the most negative i32 wrap to itself", () => {
    expectTensor(run("neg", [i32([2], [-2147483648, 5])]), "i32", [2], [-2147483648, -5]);
    expectTensor(run("abs", [i32([2], [-2147483648, -5])]), "i32", [2], [-2147483648, 5]);
  });
});

describe("f16 and bf16 rounding of results", () => {
  it("f16 add ties to even: 1 + 2^-11 -> 1, 1 + 3·2^-11 -> 1 + 2^-9", () => {
    const out = run("add", [tensor("f16", [2], [1, 1]), tensor("f16", [2], [2 ** -11, 3 * 2 ** -11])]);
    expectTensor(out, "f16", [2], [1, 1 + 2 ** -9]);
  });

  it("f16 add overflows to inf at the 65520 tie, but 65504 + 8 stays 65504", () => {
    const out = run("add", [tensor("f16", [2], [65504, 65504]), tensor("f16", [2], [16, 8])]);
    expectTensor(out, "f16", [2], [Infinity, 65504]);
  });

  it("f16 mul rounds into the subnormals with ties to even: 2^-25 -> 0, 1.5·2^-24 -> 2^-23", () => {
    const out = run("mul", [tensor("f16", [2], [2 ** -24, 3 * 2 ** -24]), tensor("f16", [2], [0.5, 0.5])]);
    expectTensor(out, "f16", [2], [0, 2 ** -23]);
  });

  it("f16 div 1/3 gives 0.333251953125 (0x3555)", () => {
    expectTensor(run("div", [tensor("f16", [1], [1]), tensor("f16", [1], [3])]), "f16", [1], [0.333251953125]);
  });

  it("bf16 add ties to even: 1 + 2^-8 -> 1, 1 + 3·2^-8 -> 1 + 2^-6, and just above the tie rounds up", () => {
    const out = run("add", [tensor("bf16", [3], [1, 1, 1]), tensor("bf16", [3], [2 ** -8, 3 * 2 ** -8, 2 ** -8 + 2 ** -15])]);
    expectTensor(out, "bf16", [3], [1, 1 + 2 ** -6, 1 + 2 ** -7]);
  });

  it("bf16 keeps f32's exponent range: 2^100 * 2^27 is finite, 2^127 * 2 overflows to inf", () => {
    const out = run("mul", [tensor("bf16", [2], [2 ** 100, 2 ** 127]), tensor("bf16", [2], [2 ** 27, 2])]);
    expectTensor(out, "bf16", [2], [2 ** 127, Infinity]);
  });
});

describe("const and iota", () => {
  it("const is a scalar of its dtype, rounded to it", () => {
    expectTensor(run("const", [], { value: 2.5 }), "f32", [], [2.5]);
    expectTensor(run("const", [], { value: 0.1, dtype: "f16" }), "f16", [], [0.0999755859375]);
    expectTensor(run("const", [], { value: -2.7, dtype: "i32" }), "i32", [], [-2]);
  });

  it("iota counts along axis 0 and repeats along the others", () => {
    expectTensor(run("iota", [], { shape: [2, 3], axis: 0 }), "i32", [2, 3], [0, 0, 0, 1, 1, 1]);
  });

  it("iota along the last axis (given as 1 or -1) counts within each row", () => {
    expectTensor(run("iota", [], { shape: [2, 3], axis: 1 }), "i32", [2, 3], [0, 1, 2, 0, 1, 2]);
    expectTensor(run("iota", [], { shape: [2, 3], axis: -1, dtype: "f32" }), "f32", [2, 3], [0, 1, 2, 0, 1, 2]);
  });

  it("iota over a size-1 axis is all zeros, and a middle axis of [2, 3, 2] counts in blocks of 2", () => {
    expectTensor(run("iota", [], { shape: [3, 1], axis: 1 }), "i32", [3, 1], [0, 0, 0]);
    expectTensor(run("iota", [], { shape: [2, 3, 2], axis: 1 }), "i32", [2, 3, 2], [0, 0, 1, 1, 2, 2, 0, 0, 1, 1, 2, 2]);
  });

  it("iota with a symbolic size takes the size bound at run time", () => {
    const b = new GraphBuilder("iota");
    b.dim("N");
    b.output("out", b.add("iota", [], { shape: ["N", 2], axis: 0 }));
    const out = evaluate(b.finish(), new Map(), new Map(), { dims: new Map([["N", 3]]) }).get("out")!;
    expectTensor(out, "i32", [3, 2], [0, 0, 1, 1, 2, 2]);
  });
});

describe("reductions", () => {
  // x[i, j, k] = 12i + 4j + k over [2, 3, 4].
  const x = f32([2, 3, 4], range(24));

  it("sum over the middle axis of [2, 3, 4] gives [2, 4]", () => {
    // sum_j (12i + 4j + k) = 36i + 12 + 3k
    expectTensor(run("sum", [x], { axes: [1] }), "f32", [2, 4], [12, 15, 18, 21, 48, 51, 54, 57]);
  });

  it("sum over axes [0, 2] of [2, 3, 4] gives [3]", () => {
    // sum_{i,k} (12i + 4j + k) = 32j + 60
    expectTensor(run("sum", [x], { axes: [0, 2] }), "f32", [3], [60, 92, 124]);
  });

  it("sum over axis -1 reduces the last axis", () => {
    // sum_k (12i + 4j + k) = 48i + 16j + 6
    expectTensor(run("sum", [x], { axes: [-1] }), "f32", [2, 3], [6, 22, 38, 54, 70, 86]);
  });

  it("axes given in any order and with negative indices mean the same set: [2, -3] = [0, 2]", () => {
    expectTensor(run("sum", [x], { axes: [2, -3] }), "f32", [3], [60, 92, 124]);
  });

  it("keepdims leaves the reduced axes as size 1", () => {
    expectTensor(run("sum", [x], { axes: [1], keepdims: true }), "f32", [2, 1, 4], [12, 15, 18, 21, 48, 51, 54, 57]);
    expectTensor(run("min", [x], { axes: [0, 1], keepdims: true }), "f32", [1, 1, 4], [0, 1, 2, 3]);
  });

  it("axes = [] reduces every axis to a scalar (or [1, 1, 1] with keepdims)", () => {
    expectTensor(run("sum", [x]), "f32", [], [276]);
    expectTensor(run("mean", [x]), "f32", [], [11.5]);
    expectTensor(run("max", [x], { keepdims: true }), "f32", [1, 1, 1], [23]);
    expectTensor(run("min", [x]), "f32", [], [0]);
  });

  it("mean over the last axis of [2, 3, 4] divides each row sum by 4", () => {
    expectTensor(run("mean", [x], { axes: [-1] }), "f32", [2, 3], [1.5, 5.5, 9.5, 13.5, 17.5, 21.5]);
  });

  it("max over axis 0 picks the second block; max of all-negative rows is not 0", () => {
    expectTensor(run("max", [x], { axes: [0] }), "f32", [3, 4], range(12).map((v) => v + 12));
    expectTensor(run("max", [f32([2, 3], [-5, -3, -9, -1, -2, -Infinity])], { axes: [1] }), "f32", [2], [-3, -1]);
  });

  it("max and min propagate NaN within its row only", () => {
    const y = f32([2, 3], [1, NaN, 3, 4, 5, 6]);
    expectTensor(run("max", [y], { axes: [1] }), "f32", [2], [NaN, 6]);
    expectTensor(run("min", [y], { axes: [1] }), "f32", [2], [NaN, 4]);
  });

  it("reducing a size-1 axis and an odd-sized axis", () => {
    expectTensor(run("sum", [f32([1, 5], [1, 2, 3, 4, 5])], { axes: [0] }), "f32", [5], [1, 2, 3, 4, 5]);
    expectTensor(run("mean", [f32([1, 5], [1, 2, 3, 4, 5])], { axes: [1] }), "f32", [1], [3]);
  });

  it("sum over an empty axis is 0", () => {
    expectTensor(run("sum", [f32([2, 0], [])], { axes: [1] }), "f32", [2], [0, 0]);
    expectTensor(run("sum", [f32([0, 3], [])]), "f32", [], [0]);
  });

  it("mean, max and min over an empty axis are rejected by the shape rule", () => {
    for (const op of ["mean", "max", "min"]) {
      expect(shapeError(op, [ty("f32", [2, 0])], { axes: [1] })).toBe(`${op} over an empty axis of f32[2, 0] has no value`);
    }
  });

  it("f16 sum accumulates in float64 and rounds once: 2048 + 1 + 1 = 2050", () => {
    // Rounding after each step would give 2048, as 2049 ties to even at f16's spacing of 2.
    expectTensor(run("sum", [tensor("f16", [3], [2048, 1, 1])]), "f16", [], [2050]);
  });

  it("i32 sum wraps, and i32 mean truncates toward zero", () => {
    expectTensor(run("sum", [i32([2], [2147483647, 1])]), "i32", [], [-2147483648]);
    expectTensor(run("mean", [i32([2, 2], [1, 2, -1, -2])], { axes: [1] }), "i32", [2], [1, -1]);
  });
});

describe("transpose", () => {
  it("with no perm swaps the last two axes of [2, 3]", () => {
    expectTensor(run("transpose", [f32([2, 3], range(6))]), "f32", [3, 2], [0, 3, 1, 4, 2, 5]);
  });

  it("with no perm swaps only the last two axes of [2, 2, 3]", () => {
    expectTensor(run("transpose", [f32([2, 2, 3], range(12))]), "f32", [2, 3, 2], [0, 3, 1, 4, 2, 5, 6, 9, 7, 10, 8, 11]);
  });

  it("with perm [2, 0, 1] gives out[a, b, c] = x[b, c, a]", () => {
    // x is [2, 1, 3] with x[b, 0, a] = 3b + a; out is [3, 2, 1].
    expectTensor(run("transpose", [f32([2, 1, 3], range(6))], { perm: [2, 0, 1] }), "f32", [3, 2, 1], [0, 3, 1, 4, 2, 5]);
  });

  it("with the identity perm copies the data", () => {
    expectTensor(run("transpose", [f32([2, 3], range(6))], { perm: [0, 1] }), "f32", [2, 3], range(6));
  });
});

describe("reshape", () => {
  it("keeps the row-major data under the new shape", () => {
    expectTensor(run("reshape", [f32([2, 3], range(6))], { shape: [3, 1, 2] }), "f32", [3, 1, 2], range(6));
    expectTensor(run("reshape", [f32([1], [7])], { shape: [] }), "f32", [], [7]);
  });

  it("with a symbolic dim N takes N from the bound dims at run time", () => {
    const b = new GraphBuilder("reshape");
    b.dim("N");
    const x = b.add("input", [], { name: "x", dtype: "f32", shape: ["N", 6] });
    const y = b.add("reshape", [x], { shape: [2, "N", 3] });
    expect(b.type(y).shape).toEqual([2, "N", 3]);
    b.output("y", y);
    const out = evaluate(b.finish(), new Map([["x", f32([3, 6], range(18))]]), new Map()).get("y")!;
    expectTensor(out, "f32", [2, 3, 3], range(18));
  });
});

describe("slice", () => {
  const x = f32([10], range(10));
  const cases: { what: string; attrs: Attrs; expected: number[] }[] = [
    { what: "a negative start counts from the end: [-3:10]", attrs: { start: -3, end: 10 }, expected: [7, 8, 9] },
    { what: "a step of 3: [1:9:3]", attrs: { start: 1, end: 9, step: 3 }, expected: [1, 4, 7] },
    { what: "a negative step walks backwards: [-1:-11:-2]", attrs: { start: -1, end: -11, step: -2 }, expected: [9, 7, 5, 3, 1] },
    { what: "a negative step with positive bounds: [8:2:-3]", attrs: { start: 8, end: 2, step: -3 }, expected: [8, 5] },
    { what: "bounds past either end clamp: [-100:100]", attrs: { start: -100, end: 100 }, expected: range(10) },
    { what: "clamped bounds with a negative step reverse everything: [100:-100:-1]", attrs: { start: 100, end: -100, step: -1 }, expected: range(10).reverse() },
    { what: "start after end gives an empty slice: [5:2]", attrs: { start: 5, end: 2 }, expected: [] },
    { what: "a start past the end gives an empty slice: [20:30]", attrs: { start: 20, end: 30 }, expected: [] },
  ];
  for (const c of cases) {
    it(`of a [10] with ${c.what}`, () => {
      expectTensor(run("slice", [x], c.attrs), "f32", [c.expected.length], c.expected);
    });
  }

  it("along the last axis (-1) of [2, 5] with step 2 takes columns 0, 2, 4", () => {
    expectTensor(run("slice", [f32([2, 5], range(10))], { axis: -1, end: 5, step: 2 }), "f32", [2, 3], [0, 2, 4, 5, 7, 9]);
  });

  it("along axis 0 of [3, 2] with step -1 reverses the rows", () => {
    expectTensor(run("slice", [f32([3, 2], range(6))], { axis: 0, start: -1, end: -4, step: -1 }), "f32", [3, 2], [4, 5, 2, 3, 0, 1]);
  });
});

describe("concat", () => {
  it("joins three tensors along the middle axis", () => {
    const a = f32([2, 1, 2], [0, 1, 2, 3]);
    const b = f32([2, 2, 2], [10, 11, 12, 13, 14, 15, 16, 17]);
    const c = f32([2, 1, 2], [20, 21, 22, 23]);
    expectTensor(run("concat", [a, b, c], { axis: 1 }), "f32", [2, 4, 2], [0, 1, 10, 11, 12, 13, 20, 21, 2, 3, 14, 15, 16, 17, 22, 23]);
  });

  it("along axis 0 appends, and an empty operand contributes nothing", () => {
    expectTensor(run("concat", [f32([1, 2], [1, 2]), f32([0, 2], []), f32([2, 2], [3, 4, 5, 6])]), "f32", [3, 2], [1, 2, 3, 4, 5, 6]);
  });

  it("along axis -1 interleaves rows", () => {
    expectTensor(run("concat", [f32([2, 1], [1, 2]), f32([2, 2], [3, 4, 5, 6])], { axis: -1 }), "f32", [2, 3], [1, 3, 4, 2, 5, 6]);
  });
});

describe("gather", () => {
  // An embedding table of 5 rows of 2: row r is [10r, 10r + 1].
  const table = f32([5, 2], [0, 1, 10, 11, 20, 21, 30, 31, 40, 41]);

  it("looks up rows of an embedding table with [2, 3] indices, giving [2, 3, 2]", () => {
    const out = run("gather", [table, i32([2, 3], [4, 0, 2, 1, 1, 3])]);
    expectTensor(out, "f32", [2, 3, 2], [40, 41, 0, 1, 20, 21, 10, 11, 10, 11, 30, 31]);
  });

  it("along axis 1 picks columns of each row", () => {
    expectTensor(run("gather", [f32([2, 3], range(6)), i32([2], [2, 0])], { axis: 1 }), "f32", [2, 2], [2, 0, 5, 3]);
  });

  it("with a scalar index drops the gathered axis", () => {
    expectTensor(run("gather", [table, i32([], [3])]), "f32", [2], [30, 31]);
  });

  for (const bad of [5, -1]) {
    it(`an index of ${bad} for a table of 5 rows is a run-time Diagnostic naming the index and the size`, () => {
      let error: unknown;
      try {
        run("gather", [table, i32([2], [0, bad])]);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(Diagnostic);
      expect((error as Diagnostic).message).toBe(`gather: index ${bad} is out of range for an axis of size 5`);
    });
  }
});

describe("broadcast", () => {
  it("expands [3, 1] to [2, 3, 2]", () => {
    expectTensor(run("broadcast", [f32([3, 1], [1, 2, 3])], { shape: [2, 3, 2] }), "f32", [2, 3, 2], [1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3]);
  });

  it("expands a scalar, and to its own shape is a copy", () => {
    expectTensor(run("broadcast", [f32([], [7])], { shape: [2, 2] }), "f32", [2, 2], [7, 7, 7, 7]);
    expectTensor(run("broadcast", [f32([2], [1, 2])], { shape: [2] }), "f32", [2], [1, 2]);
  });
});

describe("matmul", () => {
  const a23 = f32([2, 3], [1, 2, 3, 4, 5, 6]);

  it("2-D: [2, 3] @ [3, 2]", () => {
    expectTensor(run("matmul", [a23, f32([3, 2], [7, 8, 9, 10, 11, 12])]), "f32", [2, 2], [58, 64, 139, 154]);
  });

  it("batched: [2, 1, 2, 2] @ [3, 2, 2] broadcasts the batch dims to [2, 3]", () => {
    // a is [I, 2I]; b is [B0, B1, B2]; out[i, j] = (i + 1) * Bj.
    const a = f32([2, 1, 2, 2], [1, 0, 0, 1, 2, 0, 0, 2]);
    const B = [
      [1, 2, 3, 4],
      [0, 1, 1, 0],
      [5, 6, 7, 8],
    ];
    const out = run("matmul", [a, f32([3, 2, 2], B.flat())]);
    expectTensor(out, "f32", [2, 3, 2, 2], [...B.flat(), ...B.flat().map((v) => 2 * v)]);
  });

  it("1-D @ 2-D treats the vector as a row and drops that axis: [2] @ [2, 3] -> [3]", () => {
    expectTensor(run("matmul", [f32([2], [1, 2]), f32([2, 3], [1, 2, 3, 4, 5, 6])]), "f32", [3], [9, 12, 15]);
  });

  it("2-D @ 1-D treats the vector as a column and drops that axis: [2, 3] @ [3] -> [2]", () => {
    expectTensor(run("matmul", [a23, f32([3], [1, 0, -1])]), "f32", [2], [-2, -2]);
  });

  it("1-D @ 1-D is the dot product, a scalar", () => {
    expectTensor(run("matmul", [f32([3], [1, 2, 3]), f32([3], [4, 5, 6])]), "f32", [], [32]);
  });

  it("1-D @ 3-D multiplies the row into every batch: [2] @ [2, 2, 3] -> [2, 3]", () => {
    const b = f32([2, 2, 3], range(12));
    // Row [1, 1] sums the two rows of each batch.
    expectTensor(run("matmul", [f32([2], [1, 1]), b]), "f32", [2, 3], [3, 5, 7, 15, 17, 19]);
  });

  it("a k = 0 product is all zeros", () => {
    expectTensor(run("matmul", [f32([2, 0], []), f32([0, 3], [])]), "f32", [2, 3], [0, 0, 0, 0, 0, 0]);
  });

  it("i32 matmul wraps its products and sums modulo 2^32", () => {
    // (2^31 - 1)^2 = 1 modulo 2^32; 65536 * 65536 = 0 modulo 2^32.
    const out = run("matmul", [i32([1, 2], [2147483647, 65536]), i32([2, 1], [2147483647, 65536])]);
    expectTensor(out, "i32", [1, 1], [1]);
  });
});

describe("shape rules name the shapes they reject", () => {
  const cases: { op: string; types: TensorType[]; attrs?: Attrs; message: string }[] = [
    // elementwise
    { op: "add", types: [ty("f32", [3, 2]), ty("f32", [4])], message: "add: shapes f32[3, 2] and f32[4] do not broadcast" },
    { op: "mul", types: [ty("f32", [2]), ty("i32", [2])], message: "mul: operand dtypes differ (f32[2], i32[2]); insert a cast" },
    { op: "lt", types: [ty("f32", [2]), ty("f16", [2])], message: "lt: operand dtypes differ (f32[2], f16[2]); insert a cast" },
    { op: "exp", types: [ty("i32", [2])], message: "exp needs a float operand, got i32[2]" },
    { op: "gelu", types: [ty("bool", [2])], message: "gelu needs a float operand, got bool[2]" },
    { op: "where", types: [ty("f32", [2]), ty("f32", [2]), ty("f32", [2])], message: "where: the condition must be bool, got f32[2]" },
    { op: "where", types: [ty("bool", [2]), ty("f32", [3]), ty("f32", [3])], message: "where: shapes bool[2] and f32[3] and f32[3] do not broadcast" },
    { op: "where", types: [ty("bool", [2]), ty("f32", [2]), ty("i32", [2])], message: "where: operand dtypes differ (f32[2], i32[2]); insert a cast" },
    // reductions
    { op: "sum", types: [ty("f32", [2, 3, 4])], attrs: { axes: [3] }, message: "sum: axis 3 is out of range for f32[2, 3, 4]" },
    { op: "max", types: [ty("f32", [2, 3, 4])], attrs: { axes: [1, -2] }, message: "max: axes [1, -2] repeat an axis" },
    { op: "mean", types: [ty("f32", ["N", 0])], attrs: { axes: [-1] }, message: "mean over an empty axis of f32[N, 0] has no value" },
    // shape ops
    { op: "reshape", types: [ty("f32", [2, 3])], attrs: { shape: [4, 2] }, message: "reshape: cannot reshape f32[2, 3] to [4, 2]: the sizes differ" },
    { op: "reshape", types: [ty("f32", ["N", 4])], attrs: { shape: [8] }, message: "reshape: cannot reshape f32[N, 4] to [8]: the sizes differ" },
    { op: "transpose", types: [ty("f32", [3])], message: "transpose needs at least 2 axes, got f32[3]" },
    { op: "transpose", types: [ty("f32", [2, 3])], attrs: { perm: [0, 0] }, message: "transpose: [0, 0] is not a permutation of the 2 axes of f32[2, 3]" },
    { op: "transpose", types: [ty("f32", [2, 3])], attrs: { perm: [1, 0, 2] }, message: "transpose: [1, 0, 2] is not a permutation of the 2 axes of f32[2, 3]" },
    { op: "slice", types: [ty("f32", [2, 5])], attrs: { axis: 1, end: 3, step: 0 }, message: "slice: step must not be 0" },
    { op: "slice", types: [ty("f32", [2, 5])], attrs: { axis: 2, end: 1 }, message: "slice: axis 2 is out of range for f32[2, 5]" },
    { op: "slice", types: [ty("f32", ["N", 4])], attrs: { axis: 0, end: 1 }, message: "slice: axis 0 of f32[N, 4] has symbolic size N; slicing needs a static size" },
    { op: "concat", types: [ty("f32", [2, 1, 2]), ty("f32", [3, 2, 2])], attrs: { axis: 1 }, message: "concat along axis 1: f32[2, 1, 2], f32[3, 2, 2] differ off that axis" },
    { op: "concat", types: [ty("f32", [2]), ty("f16", [2])], message: "concat along axis 0: f32[2], f16[2] differ off that axis" },
    { op: "concat", types: [ty("f32", ["N", 2]), ty("f32", [1, 2])], message: "concat along axis 0: f32[N, 2] has symbolic size N there" },
    { op: "gather", types: [ty("f32", [5, 2]), ty("f32", [3])], message: "gather: indices must be an integer tensor, got f32[3]" },
    { op: "gather", types: [ty("f32", [5, 2]), ty("i32", [3])], attrs: { axis: 2 }, message: "gather: axis 2 is out of range for f32[5, 2]" },
    { op: "broadcast", types: [ty("f32", [3])], attrs: { shape: [2, 4] }, message: "broadcast: f32[3] does not broadcast to [2, 4]" },
    { op: "broadcast", types: [ty("f32", [2, 3])], attrs: { shape: [3] }, message: "broadcast: f32[2, 3] does not broadcast to [3]" },
    // matmul
    { op: "matmul", types: [ty("f32", [2, 3]), ty("f32", [4, 5])], message: "matmul: inner sizes differ: f32[2, 3] @ f32[4, 5] (3 vs 4)" },
    { op: "matmul", types: [ty("f32", [3]), ty("f32", [2])], message: "matmul: inner sizes differ: f32[3] @ f32[2] (3 vs 2)" },
    { op: "matmul", types: [ty("f32", [2, 2, 3]), ty("f32", [3, 3, 4])], message: "matmul: batch dims of f32[2, 2, 3] and f32[3, 3, 4] do not broadcast" },
    { op: "matmul", types: [ty("f32", [2, 3]), ty("f16", [3, 4])], message: "matmul: operand dtypes differ (f32[2, 3] @ f16[3, 4])" },
    { op: "matmul", types: [ty("f32", []), ty("f32", [3])], message: "matmul needs operands of rank 1 or more, got f32[] @ f32[3]" },
    // sources
    { op: "iota", types: [], attrs: { shape: [2, 3], axis: 2 }, message: "iota: axis 2 is out of range for shape [2, 3]" },
  ];
  for (const c of cases) {
    it(`${c.op}: "${c.message}"`, () => {
      expect(shapeError(c.op, c.types, c.attrs)).toBe(c.message);
    });
  }

  it("an attribute an op does not take is rejected, listing the ones it does", () => {
    expect(shapeError("sum", [ty("f32", [2])], { axis: 0 })).toBe("sum has no attribute axis (it takes axes, keepdims)");
  });
});
