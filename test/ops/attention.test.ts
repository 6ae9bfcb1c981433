import { apply, inferError } from "../support/ops.ts";
import { describe, expect, it } from "vitest";
import "../../compiler/ir/ops/attention.ts";
import { getOp, normalizeAttrs } from "../../compiler/ir/registry.ts";
import { type HostTensor, tensor } from "../../compiler/ir/tensor.ts";
import type { Dim, TensorType } from "../../compiler/ir/types.ts";

/** Deterministic uniform values in [-1, 1) (mulberry32). */
function randoms(seed: number, n: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  });
}

type Matrix = number[][];

function rows(t: HostTensor, batch: number): Matrix {
  const [r, c] = t.shape.slice(-2);
  return Array.from({ length: r }, (_, i) => [...t.data.slice((batch * r + i) * c, (batch * r + i + 1) * c)]);
}

/** Splits each row into `count` consecutive pieces of width `width`. */
function subheads(m: Matrix, count: number, width: number): number[][][] {
  return m.map((row) => Array.from({ length: count }, (_, s) => row.slice(s * width, (s + 1) * width)));
}

/** kv head of each q head, as repeat_interleave(kv, H / Hkv) lays them out. */
function repeatKv(heads: number, kvHeads: number): number[] {
  return Array.from({ length: kvHeads }, (_, g) => new Array<number>(heads / kvHeads).fill(g)).flat();
}

const dot = (a: number[], b: number[]) => a.reduce((s, x, i) => s + x * b[i], 0);

/** Plain softmax of the first `seen` scores; the rest (masked) get 0, and so does everything when none is seen. */
function maskedSoftmax(scores: number[], seen: number): number[] {
  if (seen <= 0) return scores.map(() => 0);
  const visible = scores.slice(0, seen);
  const max = Math.max(...visible);
  const e = visible.map((s) => Math.exp(s - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return scores.map((_, j) => (j < seen ? e[j] / sum : 0));
}

interface RefOptions {
  heads: number;
  kvHeads: number;
  causal: boolean;
  scale?: number;
}

/** Straightforward attention for one batch entry: out[i][h] = softmax(q_h k_g^T s) v_g. */
function referenceAttention(q: Matrix, k: Matrix, v: Matrix, o: RefOptions): number[][][] {
  const [n, m] = [q.length, k.length];
  const dk = q[0].length / o.heads;
  const dv = v[0].length / o.kvHeads;
  const scale = o.scale ?? 1 / Math.sqrt(dk);
  const qh = subheads(q, o.heads, dk);
  const kh = subheads(k, o.kvHeads, dk);
  const vh = subheads(v, o.kvHeads, dv);
  const kvOf = repeatKv(o.heads, o.kvHeads);
  return qh.map((qRow, i) =>
    qRow.map((qi, h) => {
      const g = kvOf[h];
      const seen = o.causal ? Math.min(m, i + m - n + 1) : m;
      const p = maskedSoftmax(kh.map((kj) => dot(qi, kj[g]) * scale), seen);
      return Array.from({ length: dv }, (_, c) => p.reduce((s, pj, j) => s + pj * vh[j][g][c], 0));
    }),
  );
}

/**
 * Straightforward differential attention (Diff Transformer eq. 1) for one batch entry, laid
 * out as the official code ("stripe") or Hugging Face DiffLlama ("halves") does.
 */
function referenceDiffAttn(q: Matrix, k: Matrix, v: Matrix, lambda: (i: number, h: number) => number, o: RefOptions & { pairing: "stripe" | "halves" }): number[][][] {
  const [n, m] = [q.length, k.length];
  const { heads, kvHeads } = o;
  const d = q[0].length / (2 * heads);
  const scale = o.scale ?? 1 / Math.sqrt(d);
  const qs = subheads(q, 2 * heads, d); // [N][2H][d]
  const ks = subheads(k, 2 * kvHeads, d); // [M][2Hkv][d]
  const kvOf = repeatKv(heads, kvHeads);
  // Value rows of kv head g: [M][2d].
  const values = (g: number): Matrix =>
    o.pairing === "stripe"
      ? subheads(v, kvHeads, 2 * d).map((r) => r[g]) // v as [M, Hkv, 2d]
      : subheads(v, 2 * kvHeads, d).map((r) => [...r[g], ...r[kvHeads + g]]); // chunk and cat
  return qs.map((qRow, i) =>
    Array.from({ length: heads }, (_, h) => {
      const g = kvOf[h];
      const [q1, q2] = o.pairing === "stripe" ? [qRow[2 * h], qRow[2 * h + 1]] : [qRow[h], qRow[heads + h]];
      const [k1, k2] = o.pairing === "stripe" ? [ks.map((r) => r[2 * g]), ks.map((r) => r[2 * g + 1])] : [ks.map((r) => r[g]), ks.map((r) => r[kvHeads + g])];
      const seen = o.causal ? Math.min(m, i + m - n + 1) : m;
      const p1 = maskedSoftmax(k1.map((kj) => dot(q1, kj) * scale), seen);
      const p2 = maskedSoftmax(k2.map((kj) => dot(q2, kj) * scale), seen);
      const l = lambda(i, h);
      const vg = values(g);
      return Array.from({ length: 2 * d }, (_, c) => vg.reduce((s, vj, j) => s + (p1[j] - l * p2[j]) * vj[c], 0));
    }),
  );
}

function expectClose(actual: Float64Array, expected: number[], tolerance = 1e-12): void {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
  expect(worst).toBeLessThan(tolerance);
}

const f32 = (shape: number[], data: number[]) => tensor("f32", shape, data);
const random = (seed: number, shape: number[]) => f32(shape, randoms(seed, shape.reduce((a, b) => a * b, 1)));

interface DiffCase {
  heads: number;
  kvHeads: number;
  d: number;
  n: number;
  m: number;
  batch?: number;
  causal?: boolean;
  scale?: number;
  pairing: "stripe" | "halves";
  /** λ's shape given the batch, N and H, and its values. */
  lambda: "scalar" | "heads" | "rows";
}

function checkDiffAttn(c: DiffCase, seed: number): void {
  const batch = c.batch ?? 1;
  const lead = c.batch === undefined ? [] : [batch];
  const q = random(seed, [...lead, c.n, 2 * c.heads * c.d]);
  const k = random(seed + 1, [...lead, c.m, 2 * c.kvHeads * c.d]);
  const v = random(seed + 2, [...lead, c.m, c.kvHeads * 2 * c.d]);
  const lambdaShape = c.lambda === "scalar" ? [] : c.lambda === "heads" ? [c.heads] : [...lead, c.n, c.heads];
  const lambda = random(seed + 3, lambdaShape);
  const lambdaAt = (b: number, i: number, h: number) =>
    c.lambda === "scalar" ? lambda.data[0] : c.lambda === "heads" ? lambda.data[h] : lambda.data[(b * c.n + i) * c.heads + h];
  const attrs = { heads: c.heads, kv_heads: c.kvHeads, causal: c.causal ?? false, scale: c.scale ?? 0, pairing: c.pairing };
  const out = apply("diffattn", [q, k, v, lambda], attrs);
  expect(out.shape).toEqual([...lead, c.n, c.heads, 2 * c.d]);
  const expected = Array.from({ length: batch }, (_, b) =>
    referenceDiffAttn(rows(q, b), rows(k, b), rows(v, b), (i, h) => lambdaAt(b, i, h), { ...c, causal: c.causal ?? false }),
  );
  expectClose(out.data, expected.flat(3));
}

describe("diffattn against a plain reference", () => {
  for (const pairing of ["stripe", "halves"] as const) {
    for (const [heads, kvHeads] of [[4, 4], [4, 2], [4, 1]]) {
      it(`${pairing}, GQA ${heads}:${kvHeads}: q1 meets k1 and q2 meets k2 of the head's kv group`, () => {
        checkDiffAttn({ heads, kvHeads, d: 3, n: 5, m: 5, pairing, lambda: "scalar" }, 11 * heads + kvHeads);
      });
    }

    it(`${pairing}: λ per head [H]`, () => checkDiffAttn({ heads: 2, kvHeads: 1, d: 4, n: 3, m: 6, pairing, lambda: "heads" }, 21));
    it(`${pairing}: λ per token and head [N, H]`, () => checkDiffAttn({ heads: 2, kvHeads: 2, d: 2, n: 4, m: 4, pairing, lambda: "rows" }, 31));
    it(`${pairing}: causal with M > N aligns the last query with the last key`, () =>
      checkDiffAttn({ heads: 4, kvHeads: 2, d: 2, n: 3, m: 7, causal: true, pairing, lambda: "heads" }, 41));
    it(`${pairing}: causal with M == N`, () => checkDiffAttn({ heads: 2, kvHeads: 1, d: 3, n: 6, m: 6, causal: true, pairing, lambda: "scalar" }, 51));
    it(`${pairing}: batch dims with λ [B, N, H]`, () => checkDiffAttn({ heads: 2, kvHeads: 1, d: 2, n: 3, m: 5, batch: 3, pairing, lambda: "rows" }, 61));
    it(`${pairing}: custom scale`, () => checkDiffAttn({ heads: 2, kvHeads: 2, d: 2, n: 3, m: 3, scale: 0.9, pairing, lambda: "scalar" }, 71));
  }

  it("broadcasts a k and v without batch dims over q's batch", () => {
    const q = random(1, [2, 3, 8]);
    const k = random(2, [4, 8]);
    const v = random(3, [4, 8]);
    const out = apply("diffattn", [q, k, v, f32([], [0.3])], { heads: 2 });
    const expected = [0, 1].map((b) => referenceDiffAttn(rows(q, b), rows(k, 0), rows(v, 0), () => 0.3, { heads: 2, kvHeads: 2, causal: false, pairing: "stripe" }));
    expectClose(out.data, expected.flat(3));
  });

  // At a model's size, not only a handful of rows. (How fast it runs is bench/'s business: a
  // wall-clock bound here fails on a loaded machine and proves nothing about the result.)
  it("N = M = 128, H = 4, d = 32, causal: the same as the reference", () =>
    checkDiffAttn({ heads: 4, kvHeads: 4, d: 32, n: 128, m: 128, causal: true, pairing: "stripe", lambda: "scalar" }, 81));
});

describe("attention against a plain reference", () => {
  for (const [heads, kvHeads] of [[2, 2], [4, 2], [4, 1]]) {
    it(`GQA ${heads}:${kvHeads}, non-causal, dv != dk`, () => {
      const q = random(heads, [5, heads * 3]);
      const k = random(kvHeads + 7, [6, kvHeads * 3]);
      const v = random(9, [6, kvHeads * 5]);
      const out = apply("attention", [q, k, v], { heads, kv_heads: kvHeads });
      expect(out.shape).toEqual([5, heads, 5]);
      expectClose(out.data, referenceAttention(rows(q, 0), rows(k, 0), rows(v, 0), { heads, kvHeads, causal: false }).flat(2));
    });
  }

  it("causal with M > N, batch dims and a custom scale", () => {
    const q = random(1, [2, 3, 8]);
    const k = random(2, [2, 7, 4]);
    const v = random(3, [2, 7, 4]);
    const out = apply("attention", [q, k, v], { heads: 4, kv_heads: 2, causal: true, scale: 0.7 });
    const expected = [0, 1].map((b) => referenceAttention(rows(q, b), rows(k, b), rows(v, b), { heads: 4, kvHeads: 2, causal: true, scale: 0.7 }));
    expectClose(out.data, expected.flat(3));
  });
});

describe("diffattn identities", () => {
  it("with λ = 0 equals attention over q1 and k1 with the 2d-wide v", () => {
    const [heads, kvHeads, d, n, m] = [4, 2, 3, 4, 5];
    const q = random(5, [n, 2 * heads * d]);
    const k = random(6, [m, 2 * kvHeads * d]);
    const v = random(7, [m, kvHeads * 2 * d]);
    // Stripe: q1 is subhead 2h, k1 subhead 2g.
    const pick = (t: HostTensor, count: number) => f32([t.shape[0], count * d], rows(t, 0).flatMap((r) => subheads([r], 2 * count, d)[0].filter((_, s) => s % 2 === 0).flat()));
    const diff = apply("diffattn", [q, k, v, f32([], [0])], { heads, kv_heads: kvHeads, causal: true });
    const plain = apply("attention", [pick(q, heads), pick(k, kvHeads), v], { heads, kv_heads: kvHeads, causal: true });
    expect(plain.shape).toEqual(diff.shape);
    expectClose(diff.data, [...plain.data]);
  });

  /** λ_init = 0.8 - 0.6 exp(-0.3 (layer - 1)) with 1-based layers in the paper; layer here is 0-based depth. */
  const lambdaInit = (layer: number) => 0.8 - 0.6 * Math.exp(-0.3 * layer);

  it("λ_init per layer takes its known values 0.2, 0.35550, 0.47072", () => {
    expect(lambdaInit(0)).toBeCloseTo(0.2, 12);
    expect(lambdaInit(1)).toBeCloseTo(0.3555090, 6);
    expect(lambdaInit(2)).toBeCloseTo(0.4707130, 6);
  });

  it("with all-ones values gives 1 - λ: both maps are distributions", () => {
    const [heads, d, n] = [2, 2, 3];
    const q = random(8, [n, 2 * heads * d]);
    const k = random(9, [n, 2 * heads * d]);
    const v = f32([n, heads * 2 * d], new Array<number>(n * heads * 2 * d).fill(1));
    for (const layer of [0, 1, 2]) {
      const out = apply("diffattn", [q, k, v, f32([], [lambdaInit(layer)])], { heads, causal: true });
      expectClose(out.data, new Array<number>(out.data.length).fill(1 - lambdaInit(layer)));
    }
  });

  it("with one-hot values exposes each softmax map: rows are non-negative and sum to 1", () => {
    // v row j is e_j in every head, so the output row is p1 - λ p2 itself.
    const [heads, d, m] = [2, 3, 6];
    const q = random(10, [2, 2 * heads * d]);
    const k = random(11, [m, 2 * heads * d]);
    const v = f32([m, heads * 2 * d], Array.from({ length: m * heads * 2 * d }, (_, i) => +(i % (2 * d) === Math.floor(i / (heads * 2 * d)))));
    const p1 = apply("diffattn", [q, k, v, f32([], [0])], { heads }).data;
    const p1MinusP2 = apply("diffattn", [q, k, v, f32([], [1])], { heads }).data;
    for (let r = 0; r < p1.length; r += 2 * d) {
      const one = p1.slice(r, r + 2 * d);
      const two = one.map((x, c) => x - p1MinusP2[r + c]);
      for (const map of [one, two]) {
        expect(Math.min(...map)).toBeGreaterThanOrEqual(0);
        expect(map.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
      }
    }
  });

  it("gives 0 for a query that sees no key (causal with N > M)", () => {
    // N = 4, M = 2: query i sees keys j <= i - 2, so queries 0 and 1 see none.
    const out = apply("diffattn", [random(1, [4, 8]), random(2, [2, 8]), random(3, [2, 8]), f32([], [0.5])], { heads: 2, causal: true });
    const width = 2 * 4; // H * 2d per query
    expect([...out.data.slice(0, 2 * width)]).toEqual(new Array<number>(2 * width).fill(0));
    expect(out.data.slice(2 * width).some((x) => x !== 0)).toBe(true);
    const plain = apply("attention", [random(1, [4, 8]), random(2, [2, 8]), random(3, [2, 8])], { heads: 2, causal: true });
    expect([...plain.data.slice(0, 2 * 2 * 4)]).toEqual(new Array<number>(16).fill(0));
  });
});

describe("diffattn and attention shape rules", () => {
  const t = (...shape: Dim[]): TensorType => ({ dtype: "f32", shape });

  it("infers [..., N, H, 2d] with symbolic N and M", () => {
    expect(getOp("diffattn")!.infer([t("B", "N", 64), t("B", "M", 32), t("B", "M", 32), t()], normalizeAttrs(getOp("diffattn")!, { heads: 4, kv_heads: 2 }))).toEqual(
      t("B", "N", 4, 16),
    );
    expect(getOp("attention")!.infer([t(2, "N", 64), t(1, "M", 16), t("M", 24)], normalizeAttrs(getOp("attention")!, { heads: 4, kv_heads: 1 }))).toEqual(
      t(2, "N", 4, 24),
    );
  });

  it("rejects a q width that is not a multiple of 2 * heads", () => {
    expect(inferError("diffattn", [t("N", 30), t("N", 32), t("N", 32), t()], { heads: 4 })).toBe(
      "diffattn: q f32[N, 30] has width 30, not a multiple of 2 * heads = 8",
    );
    expect(inferError("attention", [t("N", 30), t("N", 32), t("N", 32)], { heads: 4 })).toBe("attention: q f32[N, 30] has width 30, not a multiple of heads = 4");
  });

  it("rejects heads that are not a multiple of kv_heads", () => {
    expect(inferError("diffattn", [t(4, 48), t(4, 36), t(4, 36), t()], { heads: 4, kv_heads: 3 })).toBe(
      "diffattn: heads 4 is not a multiple of kv_heads 3 (q f32[4, 48], k f32[4, 36])",
    );
  });

  it("rejects a k or v width that does not fit the heads", () => {
    expect(inferError("diffattn", [t(4, 32), t(4, 24), t(4, 32), t()], { heads: 4, kv_heads: 2 })).toBe(
      "diffattn: k f32[4, 24] has width 24, but 2 * kv_heads 2 heads of width 4 (from q f32[4, 32]) need 16",
    );
    expect(inferError("diffattn", [t(4, 32), t(4, 16), t(4, 32), t()], { heads: 4, kv_heads: 2 })).toBe(
      "diffattn: v f32[4, 32] has width 32, but kv_heads 2 heads of width 2 * 4 need 16",
    );
  });

  it("rejects a λ that does not broadcast to [..., N, H]", () => {
    expect(inferError("diffattn", [t("N", 32), t("N", 32), t("N", 32), t(3)], { heads: 4 })).toBe(
      "diffattn: lambda f32[3] does not broadcast to [N, 4] ([..., N, heads] for q f32[N, 32])",
    );
    expect(inferError("diffattn", [t("N", 32), t("N", 32), t("N", 32), t(2, "N", 4)], { heads: 4 })).toMatch(/lambda f32\[2, N, 4\] does not broadcast to \[N, 4\]/);
    expect(inferError("diffattn", [t("N", 32), t("N", 32), t("N", 32), { dtype: "i32", shape: [] }], { heads: 4 })).toBe(
      "diffattn: lambda must be a float tensor, got i32[]",
    );
  });

  it("rejects k and v with different numbers of keys", () => {
    expect(inferError("diffattn", [t(4, 32), t(5, 32), t(6, 32), t()], { heads: 4 })).toBe(
      "diffattn: k f32[5, 32] and v f32[6, 32] have different numbers of keys (5 vs 6)",
    );
    expect(inferError("attention", [t(4, 32), t("M", 32), t("L", 32)], { heads: 4 })).toMatch(/k f32\[M, 32\] and v f32\[L, 32\]/);
  });

  it("rejects a symbolic head width and batch dims that do not broadcast", () => {
    expect(inferError("attention", [t(4, "C"), t(4, 32), t(4, 32)], { heads: 4 })).toBe(
      "attention: the last dim of q f32[4, C] must be a static size to split it into heads",
    );
    expect(inferError("attention", [t(2, 4, 32), t(3, 4, 32), t(4, 32)], { heads: 4 })).toBe(
      "attention: the batch dims of q f32[2, 4, 32], k f32[3, 4, 32], v f32[4, 32] do not broadcast",
    );
  });
});
