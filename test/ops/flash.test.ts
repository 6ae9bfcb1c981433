// flash_attention and flash_diffattn in the interpreter: the same results as the ops they fuse
// (and flash_diffattn's epilogue, RMSNorm per head then a scale), their shape errors, and their
// decompositions.
import { describe, expect, it } from "vitest";
import { GraphBuilder } from "../../compiler/ir/builder.ts";
import type { Attrs } from "../../compiler/ir/graph.ts";
import { type HostTensor, tensor } from "../../compiler/ir/tensor.ts";
import type { TensorType } from "../../compiler/ir/types.ts";
import { decompose } from "../../compiler/passes/decompose.ts";

/** Keep the ops a flash op decomposes into, to see that one step. */
const ONE_LEVEL = new Set(["diffattn", "attention", "rmsnorm"]);
import { evaluate } from "../../runtime/interpreter/index.ts";
import { apply, inferError } from "../support/ops.ts";

/** Deterministic uniform values in [-1, 1) (mulberry32). */
function random(seed: number, shape: number[]): HostTensor {
  let s = seed >>> 0;
  const values = Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  });
  return tensor("f32", shape, values);
}

interface Case {
  heads: number;
  kvHeads: number;
  d: number;
  n: number;
  m: number;
  batch: number[];
  causal: boolean;
  pairing: "stripe" | "halves";
  lambda: number[]; // its shape
}

const CASES: Case[] = [
  { heads: 2, kvHeads: 2, d: 3, n: 5, m: 5, batch: [], causal: false, pairing: "stripe", lambda: [] },
  { heads: 4, kvHeads: 2, d: 2, n: 3, m: 6, batch: [], causal: true, pairing: "stripe", lambda: [4] },
  { heads: 4, kvHeads: 1, d: 2, n: 6, m: 4, batch: [], causal: true, pairing: "halves", lambda: [6, 4] },
  { heads: 2, kvHeads: 1, d: 4, n: 4, m: 4, batch: [3], causal: true, pairing: "halves", lambda: [3, 4, 2] },
];

function diffOperands(c: Case, seed: number): HostTensor[] {
  return [
    random(seed, [...c.batch, c.n, 2 * c.heads * c.d]),
    random(seed + 1, [...c.batch, c.m, 2 * c.kvHeads * c.d]),
    random(seed + 2, [...c.batch, c.m, c.kvHeads * 2 * c.d]),
    random(seed + 3, c.lambda),
  ];
}

const attrsOf = (c: Case): Attrs => ({ heads: c.heads, kv_heads: c.kvHeads, causal: c.causal, pairing: c.pairing });
const describeCase = (c: Case) => `H=${c.heads} Hkv=${c.kvHeads} d=${c.d} N=${c.n} M=${c.m}${c.causal ? " causal" : ""} ${c.pairing} λ[${c.lambda}]`;

describe("flash_diffattn", () => {
  for (const [i, c] of CASES.entries()) {
    it(`without norm weight and with out_scale 1 is diffattn, bit for bit (${describeCase(c)})`, () => {
      const operands = diffOperands(c, 10 * i);
      const fused = apply("flash_diffattn", operands, { ...attrsOf(c), block: 3 });
      const plain = apply("diffattn", operands, attrsOf(c));
      expect(fused.shape).toEqual(plain.shape);
      expect(fused.data).toEqual(plain.data);
    });
  }

  it("with a norm weight is rmsnorm over each head's 2d outputs, times out_scale", () => {
    for (const [i, c] of CASES.entries()) {
      const operands = diffOperands(c, 100 + 10 * i);
      const weight = random(7 + i, [2 * c.d]);
      const eps = 1e-3;
      const outScale = 0.8;
      const fused = apply("flash_diffattn", [...operands, weight], { ...attrsOf(c), norm_eps: eps, out_scale: outScale });
      const y = apply("diffattn", operands, attrsOf(c)).data;
      // Written out here, independently of the op: y / sqrt(mean(y^2) + eps) * w * out_scale per head.
      const width = 2 * c.d;
      const expected = new Float64Array(y.length);
      for (let head = 0; head < y.length / width; head++) {
        const row = Array.from(y.subarray(head * width, (head + 1) * width));
        const rms = Math.sqrt(row.reduce((s, x) => s + x * x, 0) / width + eps);
        row.forEach((x, j) => (expected[head * width + j] = (x / rms) * weight.data[j] * outScale));
      }
      for (let j = 0; j < expected.length; j++) expect(fused.data[j]).toBeCloseTo(expected[j], 12);
    }
  });

  it("scales by out_scale alone when there is no norm weight", () => {
    const c = CASES[1];
    const operands = diffOperands(c, 3);
    const fused = apply("flash_diffattn", operands, { ...attrsOf(c), out_scale: -0.5 });
    const plain = apply("diffattn", operands, attrsOf(c));
    expect(Array.from(fused.data)).toEqual(Array.from(plain.data, (x) => x * -0.5));
  });

  it("gives 0 for a query that sees no key, norm or not (causal, N > M)", () => {
    const c = CASES[2]; // N = 6 queries, M = 4 keys: queries 0 and 1 see nothing
    const weight = random(5, [2 * c.d]);
    const fused = apply("flash_diffattn", [...diffOperands(c, 20), weight], { ...attrsOf(c), out_scale: 0.7 });
    const rowWidth = c.heads * 2 * c.d;
    expect(Array.from(fused.data.subarray(0, 2 * rowWidth)).every((x) => x === 0)).toBe(true);
    expect(Array.from(fused.data.subarray(2 * rowWidth)).some((x) => x !== 0)).toBe(true);
  });

  it("decomposes into diffattn, rmsnorm and a scale that compute the same values", () => {
    const c = CASES[1];
    const b = new GraphBuilder("fused");
    const [q, k, v, lambda] = ["q", "k", "v", "lambda"].map((name, i) => {
      const t = diffOperands(c, 0)[i];
      return b.add("input", [], { name, shape: t.shape, dtype: "f32" });
    });
    const w = b.add("input", [], { name: "w", shape: [2 * c.d], dtype: "f32" });
    b.output("y", b.add("flash_diffattn", [q, k, v, lambda, w], { ...attrsOf(c), out_scale: 0.5, norm_eps: 1e-4 }));
    const graph = b.finish();
    const lowered = decompose(graph, ONE_LEVEL);
    const ops = lowered.nodes.map((n) => n.op).filter((op) => op !== "input");
    expect(ops).toEqual(["diffattn", "rmsnorm", "const", "mul"]);
    expect(lowered.nodes.find((n) => n.op === "rmsnorm")!.attrs.eps).toBe(1e-4);
    expect(lowered.nodes.find((n) => n.op === "const")!.attrs.value).toBe(0.5);
    const inputs = new Map([...["q", "k", "v", "lambda"].map((name, i): [string, HostTensor] => [name, diffOperands(c, 40)[i]]), ["w", random(9, [2 * c.d])]]);
    const fused = evaluate(graph, inputs, new Map()).get("y")!;
    const unfused = evaluate(lowered, inputs, new Map()).get("y")!;
    // The unfused graph rounds diffattn and the norm to f32 on the way: agreement to f32 precision.
    for (let j = 0; j < fused.data.length; j++) expect(unfused.data[j]).toBeCloseTo(fused.data[j], 5);
  });

  it("decomposes without norm weight and out_scale 1 into diffattn alone", () => {
    const b = new GraphBuilder("fused");
    const q = b.add("input", [], { name: "q", shape: [3, 8], dtype: "f32" });
    const k = b.add("input", [], { name: "k", shape: [3, 8], dtype: "f32" });
    const lambda = b.add("const", [], { value: 0.5, dtype: "f32" });
    b.output("y", b.add("flash_diffattn", [q, k, k, lambda], { heads: 2, causal: true, block: 16 }));
    const lowered = decompose(b.finish(), ONE_LEVEL);
    const attn = lowered.nodes.find((n) => n.op === "diffattn")!;
    expect(lowered.nodes.map((n) => n.op)).toEqual(["input", "input", "const", "diffattn"]);
    expect(attn.attrs).toEqual({ heads: 2, kv_heads: 0, causal: true, scale: 0, pairing: "stripe" });
  });
});

describe("flash_attention", () => {
  it("is attention, bit for bit, whatever its block size", () => {
    const shapes = [
      { heads: 2, kvHeads: 1, dk: 3, dv: 5, n: 4, m: 7, batch: [] as number[], causal: true },
      { heads: 4, kvHeads: 2, dk: 2, dv: 2, n: 6, m: 3, batch: [2], causal: true },
      { heads: 3, kvHeads: 3, dk: 4, dv: 1, n: 5, m: 5, batch: [], causal: false },
    ];
    for (const [i, s] of shapes.entries()) {
      const operands = [
        random(i, [...s.batch, s.n, s.heads * s.dk]),
        random(i + 1, [...s.batch, s.m, s.kvHeads * s.dk]),
        random(i + 2, [...s.batch, s.m, s.kvHeads * s.dv]),
      ];
      const attrs = { heads: s.heads, kv_heads: s.kvHeads, causal: s.causal, scale: 0.7 };
      const plain = apply("attention", operands, attrs);
      for (const block of [1, 3, 64]) {
        const fused = apply("flash_attention", operands, { ...attrs, block });
        expect(fused.shape).toEqual(plain.shape);
        expect(fused.data).toEqual(plain.data);
      }
    }
  });

  it("decomposes into an attention node with its attributes", () => {
    const b = new GraphBuilder("fused");
    const q = b.add("input", [], { name: "q", shape: [3, 8], dtype: "f32" });
    b.output("y", b.add("flash_attention", [q, q, q], { heads: 2, causal: true, block: 8 }));
    const lowered = decompose(b.finish(), ONE_LEVEL);
    expect(lowered.nodes.map((n) => n.op)).toEqual(["input", "attention"]);
    expect(lowered.nodes[1].attrs).toEqual({ heads: 2, kv_heads: 0, causal: true, scale: 0 });
  });
});

describe("shape errors", () => {
  const f32 = (...shape: number[]): TensorType => ({ dtype: "f32", shape });
  const diffTypes = [f32(5, 16), f32(7, 8), f32(7, 8), f32()]; // H = 4, Hkv = 2, d = 2

  it("name the fused op, with diffattn's and attention's own explanations", () => {
    expect(inferError("flash_diffattn", [f32(5, 16), f32(7, 4), f32(7, 8), f32()], { heads: 4, kv_heads: 2 })).toBe(
      "flash_diffattn: k f32[7, 4] has width 4, but 2 * kv_heads 2 heads of width 2 (from q f32[5, 16]) need 8",
    );
    expect(inferError("flash_diffattn", [f32(5, 16), f32(7, 8), f32(7, 8), f32(5, 3)], { heads: 4, kv_heads: 2 })).toMatch(/^flash_diffattn: lambda f32\[5, 3\] does not broadcast to \[5, 4\]/);
    expect(inferError("flash_attention", [f32(5, 6), f32(7, 4), f32(7, 4)], { heads: 3, kv_heads: 2 })).toBe("flash_attention: heads 3 is not a multiple of kv_heads 2 (q f32[5, 6], k f32[7, 4])");
  });

  it("reject a norm weight that is not one head's 2d outputs, or of another dtype", () => {
    expect(inferError("flash_diffattn", [...diffTypes, f32(8)], { heads: 4, kv_heads: 2 })).toBe(
      "flash_diffattn: norm_weight f32[8] must have shape [4], the width 2d of one head's output (q f32[5, 16])",
    );
    expect(inferError("flash_diffattn", [...diffTypes, f32(1, 4)], { heads: 4, kv_heads: 2 })).toMatch(/norm_weight f32\[1, 4\] must have shape \[4\]/);
    expect(inferError("flash_diffattn", [...diffTypes, { dtype: "f16", shape: [4] }], { heads: 4, kv_heads: 2 })).toBe(
      "flash_diffattn: norm_weight f16[4] and q f32[5, 16] have different dtypes; insert a cast",
    );
  });

  it("reject a block of no keys", () => {
    expect(inferError("flash_diffattn", diffTypes, { heads: 4, kv_heads: 2, block: 0 })).toBe("flash_diffattn: block must be a positive number of keys, got 0");
    expect(inferError("flash_attention", [f32(5, 4), f32(7, 4), f32(7, 4)], { heads: 2, block: -1 })).toBe("flash_attention: block must be a positive number of keys, got -1");
  });
});
