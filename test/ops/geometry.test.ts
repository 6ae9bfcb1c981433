// The attention geometry the IR exports (compiler/ir/ops/attention-geometry.ts) and the fused
// ops' epilogue (flash.ts), against expectations derived by hand from DESIGN.md §3: which
// columns of q, k and v each head reads, its GQA group, the default scale, the causal rule.
import { describe, expect, it } from "vitest";
import type { Attrs } from "../../compiler/ir/graph.ts";
import { attentionGeometry, causalOffset, causalRule, NUMBERS, visibleKeys } from "../../compiler/ir/ops/attention-geometry.ts";
import { epilogueOutput, flashEpilogue, normDenominator } from "../../compiler/ir/ops/flash.ts";
import { getOp, normalizeAttrs, OpError } from "../../compiler/ir/registry.ts";
import type { Dim, TensorType } from "../../compiler/ir/types.ts";
import "../../compiler/ir/ops/index.ts";

const f32 = (...shape: Dim[]): TensorType => ({ dtype: "f32", shape });
const geometry = (op: string, types: TensorType[], attrs: Attrs) => attentionGeometry(op, types, normalizeAttrs(getOp(op)!, attrs));
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

/** Every column of a v row that kv group g's value vector reads, in the order they form it. */
function valueColumns(geo: ReturnType<typeof attentionGeometry>, g: number): number[] {
  return geo.vColumns.flatMap((segment) => range(segment[g], segment[g] + geo.vSegment));
}

describe("attentionGeometry", () => {
  // H = 4, Hkv = 2, d = 2: q [N, 2·4·2 = 16], k [M, 2·2·2 = 8], v [M, 2·2d = 8].
  const diff = [f32("N", 16), f32("M", 8), f32("M", 8), f32()];

  it("stripe pairs q subheads 2h, 2h+1 and k subheads 2g, 2g+1; group g's values are columns 4g .. 4g+3", () => {
    const geo = geometry("diffattn", diff, { heads: 4, kv_heads: 2, pairing: "stripe" });
    expect(geo.pairing).toBe("stripe");
    // Subheads of q are 2 wide: q-head h's q1 is subhead 2h (column 4h), q2 subhead 2h+1.
    expect(geo.qColumns).toEqual([[0, 4, 8, 12], [2, 6, 10, 14]]);
    expect(geo.kColumns).toEqual([[0, 4], [2, 6]]);
    expect(valueColumns(geo, 0)).toEqual([0, 1, 2, 3]);
    expect(valueColumns(geo, 1)).toEqual([4, 5, 6, 7]);
  });

  it("halves pairs subhead h with H+h (k: g with Hkv+g); group g's values are subheads g and Hkv+g of v", () => {
    const geo = geometry("diffattn", diff, { heads: 4, kv_heads: 2, pairing: "halves" });
    expect(geo.qColumns).toEqual([[0, 2, 4, 6], [8, 10, 12, 14]]);
    expect(geo.kColumns).toEqual([[0, 2], [4, 6]]);
    // v viewed as [M, 2Hkv = 4, d = 2]: group 1 is subheads 1 and 3, where stripe reads 4 .. 7.
    expect(valueColumns(geo, 0)).toEqual([0, 1, 4, 5]);
    expect(valueColumns(geo, 1)).toEqual([2, 3, 6, 7]);
  });

  it("the fused ops have the layouts of the ops they fuse, and stripe is diffattn's default pairing", () => {
    const flash = geometry("flash_diffattn", [...diff, f32(4)], { heads: 4, kv_heads: 2, pairing: "halves" });
    const plain = geometry("diffattn", diff, { heads: 4, kv_heads: 2, pairing: "halves" });
    expect({ ...flash, kvGroupOf: 0, headsOfGroup: 0 }).toEqual({ ...plain, kvGroupOf: 0, headsOfGroup: 0 });
    expect(geometry("flash_diffattn", diff, { heads: 4, kv_heads: 2 }).pairing).toBe("stripe");
    expect(geometry("flash_attention", [f32("N", 12), f32("M", 6), f32("M", 10)], { heads: 4, kv_heads: 2 }).qColumns).toEqual([[0, 3, 6, 9]]);
  });

  it("attention with GQA 4:2: q-head h at column h·dk, k and v of group g at g·dk and g·dv", () => {
    const geo = geometry("attention", [f32(2, "N", 12), f32(2, "M", 6), f32("M", 10)], { heads: 4, kv_heads: 2 });
    expect(geo).toMatchObject({ maps: 1, heads: 4, kvHeads: 2, group: 2, d: 3, dv: 5, batch: [2], n: "N", m: "M", pairing: undefined });
    expect(geo.qColumns).toEqual([[0, 3, 6, 9]]);
    expect(geo.kColumns).toEqual([[0, 3]]);
    expect(valueColumns(geo, 1)).toEqual([5, 6, 7, 8, 9]);
  });

  it("q-head h uses kv group h / (H / Hkv): with H = 6, Hkv = 2 heads 0-2 share group 0 and 3-5 group 1", () => {
    const geo = geometry("diffattn", [f32("N", 24), f32("M", 8), f32("M", 8), f32()], { heads: 6, kv_heads: 2 });
    expect(geo.group).toBe(3);
    expect(range(0, 6).map(geo.kvGroupOf)).toEqual([0, 0, 0, 1, 1, 1]);
    expect([0, 1].map(geo.headsOfGroup)).toEqual([[0, 1, 2], [3, 4, 5]]);
  });

  it("resolves the defaults: kv_heads 0 is heads, scale 0 is d^-0.5 of the subhead width", () => {
    const geo = geometry("diffattn", [f32("N", 16), f32("M", 16), f32("M", 16), f32()], { heads: 2 });
    expect(geo).toMatchObject({ kvHeads: 2, group: 1, d: 4, dv: 8, scale: 0.5, causal: false });
    expect(range(0, 2).map(geo.kvGroupOf)).toEqual([0, 1]);
    expect(geometry("diffattn", [f32("N", 16), f32("M", 16), f32("M", 16), f32()], { heads: 2, scale: 0.3 }).scale).toBe(0.3);
    // attention's d is dk, not dv: dk = 9 gives 1/3.
    expect(geometry("attention", [f32("N", 9), f32("M", 9), f32("M", 4)], { heads: 1 }).scale).toBe(1 / 3);
  });

  it("rejects operands that do not fit, naming the op it was asked for", () => {
    expect(() => geometry("flash_diffattn", [f32("N", 12), f32("M", 8), f32("M", 8), f32()], { heads: 4, kv_heads: 2 })).toThrow(OpError);
    expect(() => geometry("flash_diffattn", [f32("N", 12), f32("M", 8), f32("M", 8), f32()], { heads: 4, kv_heads: 2 })).toThrow(/^flash_diffattn: q f32\[N, 12\]/);
    expect(() => geometry("attention", [f32("N", 12), f32("M", 6), f32("M", 10)], { heads: 4, kv_heads: 3 })).toThrow(/not a multiple of kv_heads 3/);
  });
});

describe("the causal rule", () => {
  it("aligns the last query with the last key: offset M - N, and the last query sees all M keys", () => {
    expect(causalOffset(3, 5)).toBe(2);
    expect(causalOffset(5, 3)).toBe(-2);
    // N = 3 queries after a cache of 2 keys: query i sees keys 0 .. i + 2.
    expect(range(0, 3).map((i) => visibleKeys(i, 3, 5))).toEqual([3, 4, 5]);
    // N = 5, M = 3: the first two queries see none (their rows are 0), the last sees all 3.
    expect(range(0, 5).map((i) => visibleKeys(i, 5, 3))).toEqual([0, 0, 1, 2, 3]);
    expect(range(0, 4).map((i) => visibleKeys(i, 4, 4))).toEqual([1, 2, 3, 4]);
  });

  it("is one rule over any arithmetic: evaluated on numbers it matches j <= i + (M - N) key by key", () => {
    for (const [n, m] of [[3, 5], [5, 3], [17, 40], [40, 17]]) {
      for (let i = 0; i < n; i++) {
        const seen = range(0, m).filter((j) => j <= i + m - n).length;
        expect(causalRule.visibleKeys(NUMBERS, i, n, m)).toBe(seen);
        expect(causalRule.lastKey(NUMBERS, i, n, m)).toBe(i + m - n);
      }
    }
  });
});

describe("the fused ops' epilogue", () => {
  const types = [f32("N", 8), f32("M", 8), f32("M", 8), f32()];

  it("flash_diffattn normalises only with a norm weight and scales by out_scale; flash_attention does neither", () => {
    const attrs = normalizeAttrs(getOp("flash_diffattn")!, { heads: 1, norm_eps: 0.3, out_scale: 0.8 });
    expect(flashEpilogue("flash_diffattn", [...types, f32(4)], attrs)).toEqual({ normWeight: true, normEps: 0.3, outScale: 0.8 });
    expect(flashEpilogue("flash_diffattn", types, attrs)).toMatchObject({ normWeight: false, outScale: 0.8 });
    const defaults = normalizeAttrs(getOp("flash_diffattn")!, { heads: 1 });
    expect(flashEpilogue("flash_diffattn", [...types, f32(4)], defaults)).toEqual({ normWeight: true, normEps: 1e-5, outScale: 1 });
    expect(flashEpilogue("flash_attention", types.slice(0, 3), normalizeAttrs(getOp("flash_attention")!, { heads: 1 }))).toEqual({ normWeight: false, normEps: 0, outScale: 1 });
  });

  it("computes y / sqrt(mean(y^2) + eps) * w * out_scale: y = (3, 4), eps = 0.5 gives the divisor sqrt(13)", () => {
    const e = { normWeight: true, normEps: 0.5, outScale: 2 };
    const denom = normDenominator(NUMBERS, e, 3 * 3 + 4 * 4, 2);
    expect(denom).toBe(Math.sqrt(13));
    expect(epilogueOutput(NUMBERS, e, 4, { denom, weight: 0.25 })).toBe((4 / Math.sqrt(13)) * 0.25 * 2);
    // Without a norm weight only the scale applies.
    expect(epilogueOutput(NUMBERS, { normWeight: false, normEps: 0.5, outScale: 2 }, 4)).toBe(8);
  });
});
