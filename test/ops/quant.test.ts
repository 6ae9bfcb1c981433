import fc from "fast-check";
import { apply, inferError } from "../support/ops.ts";
import { describe, expect, it } from "vitest";
import type { Attrs } from "../../compiler/ir/graph.ts";
import "../../compiler/ir/ops/quant.ts";
import { getOp } from "../../compiler/ir/registry.ts";
import { tensor } from "../../compiler/ir/tensor.ts";
import type { TensorType } from "../../compiler/ir/types.ts";

const f32 = (shape: number[], data: number[]) => tensor("f32", shape, data);
const quantize = (xs: number[], scale: number, attrs: Attrs = {}) => [...apply("quantize", [f32([xs.length], xs), f32([], [scale])], attrs).data];

describe("quantize", () => {
  it("rounds half to even: 2.5 -> 2, 3.5 -> 4, -2.5 -> -2", () => {
    expect(quantize([2.5, 3.5, -2.5, -3.5, 0.5, 1.5, -0.5, 2.49, 2.51], 1)).toEqual([2, 4, -2, -4, 0, 2, 0, 2, 3]);
  });

  it("divides by the scale before rounding", () => {
    // 5 / 2 = 2.5 -> 2; 7 / 2 = 3.5 -> 4; -5 / 2 = -2.5 -> -2; 3 / 2 = 1.5 -> 2.
    expect(quantize([5, 7, -5, 3], 2)).toEqual([2, 4, -2, 2]);
    expect(quantize([-1, 0.3], 0.25)).toEqual([-4, 1]);
  });

  it("clamps to [-128, 127] for i8", () => {
    expect(quantize([127.4, 127.5, 1000, -128.5, -128.6, -1000, Infinity, -Infinity], 1)).toEqual([127, 127, 127, -128, -128, -128, 127, -128]);
  });

  it("clamps to [0, 255] for u8", () => {
    expect(quantize([-0.6, -5, 254.5, 255.6, 1e9], 1, { dtype: "u8" })).toEqual([0, 0, 254, 255, 255]);
  });

  it("adds the zero point after rounding, then clamps", () => {
    expect(quantize([0, -1, 1.5, 2.5, -200, 200], 1, { dtype: "u8", zero_point: 128 })).toEqual([128, 127, 130, 130, 0, 255]);
    expect(quantize([0, 0.5, 130], 1, { zero_point: -5 })).toEqual([-5, -5, 125]);
  });

  it("maps NaN to the zero point", () => {
    expect(quantize([NaN], 1, { dtype: "u8", zero_point: 7 })).toEqual([7]);
  });

  it("broadcasts a per-row scale [R, 1] and a per-block scale [R, B, 1]", () => {
    const x = f32([2, 4], [2, 4, 6, 8, 2, 4, 6, 8]);
    expect([...apply("quantize", [x, f32([2, 1], [2, 0.5])]).data]).toEqual([1, 2, 3, 4, 4, 8, 12, 16]);
    const blocks = f32([1, 2, 2], [2, 4, 6, 8]);
    expect([...apply("quantize", [blocks, f32([1, 2, 1], [4, 2])]).data]).toEqual([0, 1, 3, 4]);
  });

  it("rejects a non-8-bit dtype, a scale that would grow x and a zero point out of range", () => {
    const x: TensorType = { dtype: "f32", shape: ["N", 4] };
    expect(inferError("quantize", [x, { dtype: "f32", shape: [] }], { dtype: "i32" })).toBe("quantize: dtype must be i8 or u8, got i32");
    expect(inferError("quantize", [x, { dtype: "f32", shape: [2, "N", 1] }])).toBe("quantize: scale f32[2, N, 1] does not broadcast to the shape of f32[N, 4]");
    expect(inferError("quantize", [x, { dtype: "f32", shape: [] }], { dtype: "u8", zero_point: 256 })).toBe("quantize: zero_point 256 is outside the u8 range [0, 255]");
    expect(inferError("quantize", [{ dtype: "i32", shape: [4] }, { dtype: "f32", shape: [] }])).toBe("quantize: x must be a float tensor, got i32[4]");
    expect(getOp("quantize")!.infer([x, { dtype: "f32", shape: ["N", 1] }], { dtype: "u8", zero_point: 0 })).toEqual({ dtype: "u8", shape: ["N", 4] });
  });
});

describe("dequantize", () => {
  it("computes (q - zero_point) * scale with a broadcast scale", () => {
    const q = tensor("u8", [2, 2], [128, 130, 0, 255]);
    expect([...apply("dequantize", [q, f32([2, 1], [0.5, 2])], { zero_point: 128 }).data]).toEqual([0, 1, -256, 254]);
  });

  it("needs an integer q and a float result dtype", () => {
    expect(inferError("dequantize", [{ dtype: "f32", shape: [4] }, { dtype: "f32", shape: [] }])).toBe("dequantize: q must be an integer tensor, got f32[4]");
    expect(inferError("dequantize", [{ dtype: "i8", shape: [4] }, { dtype: "f32", shape: [] }], { dtype: "i32" })).toBe("dequantize: dtype must be a float dtype, got i32");
  });
});

describe("dequantize after quantize", () => {
  it("is within scale / 2 of x for every x inside the representable range", () => {
    const setting = fc.record({
      dtype: fc.constantFrom("i8" as const, "u8" as const),
      zeroPoint: fc.integer({ min: 0, max: 127 }),
      scale: fc.double({ min: 1e-3, max: 100, noNaN: true }),
      // Position inside the representable range, as a fraction of it.
      fractions: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 1, maxLength: 16 }),
    });
    fc.assert(
      fc.property(setting, ({ dtype, zeroPoint, scale, fractions }) => {
        const [lo, hi] = dtype === "i8" ? [-128, 127] : [0, 255];
        const zp = dtype === "i8" ? zeroPoint - 64 : zeroPoint;
        const xs = fractions.map((f) => (lo - zp + f * (hi - lo)) * scale);
        const attrs = { dtype, zero_point: zp };
        const q = apply("quantize", [f32([xs.length], xs), f32([], [scale])], attrs);
        const back = apply("dequantize", [q, f32([], [scale])], { zero_point: zp }).data;
        xs.forEach((x, i) => {
          expect(Number.isInteger(q.data[i]) && q.data[i] >= lo && q.data[i] <= hi).toBe(true);
          expect(Math.abs(back[i] - x)).toBeLessThanOrEqual((scale / 2) * (1 + 1e-12));
        });
      }),
    );
  });
});
