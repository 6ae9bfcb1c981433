// Properties of the core ops and of the 16-bit float encodings, checked with fast-check
// against independent references: naive loops for matmul and broadcasting, algebraic
// identities for sum, transpose and reshape, and a from-scratch round-to-nearest-even.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { GraphBuilder } from "../../compiler/ir/builder.ts";
import { bf16Bits, bf16FromBits, f16Bits, f16FromBits, roundTo } from "../../compiler/ir/numeric.ts";
import { type HostTensor, tensor } from "../../compiler/ir/tensor.ts";
import { numel, stridesOf } from "../../compiler/ir/types.ts";
import { evaluate } from "../../runtime/interpreter/index.ts";

/** Evaluates a graph whose inputs are `x0, x1, ...`; `build` returns the output node. */
function runGraph(inputs: HostTensor[], build: (b: GraphBuilder, ids: number[]) => number): HostTensor {
  const b = new GraphBuilder("property");
  const ids = inputs.map((t, i) => b.add("input", [], { name: `x${i}`, dtype: t.dtype, shape: t.shape }));
  b.output("out", build(b, ids));
  return evaluate(b.finish(), new Map(inputs.map((t, i) => [`x${i}`, t])), new Map()).get("out")!;
}

function unravel(shape: readonly number[], flat: number): number[] {
  return stridesOf(shape).map((s, i) => Math.floor(flat / s) % shape[i]);
}

/** The flat index NumPy broadcasting reads from an operand of `shape` at output index `idx`. */
function broadcastRead(shape: readonly number[], idx: readonly number[]): number {
  const strides = stridesOf(shape);
  const lead = idx.length - shape.length;
  return shape.reduce((flat, d, i) => flat + (d === 1 ? 0 : idx[lead + i] * strides[i]), 0);
}

/** The shape of an operand that broadcasts to `out`: some axes set to 1, some leading axes dropped. */
function shrink(out: number[], ones: boolean[], drop: number): number[] {
  return out.map((d, i) => (ones[i] ? 1 : d)).slice(Math.min(drop, out.length));
}

function broadcastShape(a: number[], b: number[]): number[] {
  const rank = Math.max(a.length, b.length);
  return [...Array(rank).keys()].map((i) => {
    const x = a[a.length - rank + i] ?? 1;
    const y = b[b.length - rank + i] ?? 1;
    return x === 1 ? y : x;
  });
}

const shapeArb = (maxRank: number, minSize = 0) => fc.array(fc.integer({ min: minSize, max: 4 }), { minLength: 1, maxLength: maxRank });
const smallInts = (n: number) => fc.array(fc.integer({ min: -8, max: 8 }), { minLength: n, maxLength: n });
const f32Values = (n: number) => fc.array(fc.float(), { minLength: n, maxLength: n });

describe("matmul", () => {
  const matmulCase = fc
    .record({
      n: fc.integer({ min: 1, max: 4 }),
      k: fc.integer({ min: 0, max: 4 }),
      m: fc.integer({ min: 1, max: 4 }),
      batch: fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 2 }),
      aOnes: fc.array(fc.boolean(), { minLength: 2, maxLength: 2 }),
      bOnes: fc.array(fc.boolean(), { minLength: 2, maxLength: 2 }),
      aDrop: fc.integer({ min: 0, max: 2 }),
      bDrop: fc.integer({ min: 0, max: 2 }),
      aVector: fc.boolean(),
      bVector: fc.boolean(),
    })
    .chain((c) => {
      const aBatch = c.aVector ? [] : shrink(c.batch, c.aOnes, c.aDrop);
      const bBatch = c.bVector ? [] : shrink(c.batch, c.bOnes, c.bDrop);
      const aShape = c.aVector ? [c.k] : [...aBatch, c.n, c.k];
      const bShape = c.bVector ? [c.k] : [...bBatch, c.k, c.m];
      return fc.record({ c: fc.constant(c), aBatch: fc.constant(aBatch), bBatch: fc.constant(bBatch), a: smallInts(numel(aShape)).map((d) => tensor("f32", aShape, d)), b: smallInts(numel(bShape)).map((d) => tensor("f32", bShape, d)) });
    });

  it("agrees with a naive triple loop on random shapes, batch broadcasting and 1-D operands", () => {
    fc.assert(
      fc.property(matmulCase, ({ c, aBatch, bBatch, a, b }) => {
        const n = c.aVector ? 1 : c.n;
        const m = c.bVector ? 1 : c.m;
        const batch = broadcastShape(aBatch, bBatch);
        const expected: number[] = [];
        for (let bi = 0; bi < numel(batch); bi++) {
          const idx = unravel(batch, bi);
          const aOff = broadcastRead(aBatch, idx) * n * c.k;
          const bOff = broadcastRead(bBatch, idx) * c.k * m;
          for (let i = 0; i < n; i++)
            for (let j = 0; j < m; j++) {
              let s = 0;
              for (let p = 0; p < c.k; p++) s += a.data[aOff + i * c.k + p] * b.data[bOff + p * m + j];
              expected.push(s);
            }
        }
        const out = runGraph([a, b], (g, [x, y]) => g.add("matmul", [x, y]));
        expect(out.shape).toEqual([...batch, ...(c.aVector ? [] : [n]), ...(c.bVector ? [] : [m])]);
        // Small integers: every sum is exact, whatever the order of accumulation.
        expect([...out.data]).toEqual(expected);
      }),
    );
  });
});

describe("sum", () => {
  const sumCase = shapeArb(4).chain((shape) =>
    fc.record({
      x: smallInts(numel(shape)).map((d) => tensor("f32", shape, d)),
      order: fc.shuffledSubarray([...shape.keys()], { minLength: 1 }),
    }),
  );

  /** Sums `axes` one at a time, keeping dims so the remaining axis numbers stay valid. */
  function sumOneAtATime(g: GraphBuilder, x: number, axes: number[]): number {
    let v = x;
    for (const axis of axes) v = g.add("sum", [v], { axes: [axis], keepdims: true });
    return v;
  }

  it("over all axes (axes = []) equals summing each axis in turn, in any order", () => {
    fc.assert(
      fc.property(sumCase, ({ x }) => {
        const whole = runGraph([x], (g, [id]) => g.add("sum", [id]));
        const stepwise = runGraph([x], (g, [id]) => g.add("reshape", [sumOneAtATime(g, id, [...x.shape.keys()].reverse())], { shape: [] }));
        expect(whole.shape).toEqual([]);
        expect([...whole.data]).toEqual([...stepwise.data]);
      }),
    );
  });

  it("over any set of axes equals summing those axes one at a time", () => {
    fc.assert(
      fc.property(sumCase, ({ x, order }) => {
        const together = runGraph([x], (g, [id]) => g.add("sum", [id], { axes: order, keepdims: true }));
        const stepwise = runGraph([x], (g, [id]) => sumOneAtATime(g, id, order));
        expect(together.shape).toEqual(stepwise.shape);
        expect([...together.data]).toEqual([...stepwise.data]);
      }),
    );
  });
});

describe("transpose", () => {
  const transposeCase = shapeArb(4).chain((shape) =>
    fc.record({
      x: f32Values(numel(shape)).map((d) => tensor("f32", shape, d)),
      perm: fc.shuffledSubarray([...shape.keys()], { minLength: shape.length, maxLength: shape.length }),
    }),
  );

  it("by perm then by its inverse is the identity, and the first moves element idx to perm-permuted idx", () => {
    fc.assert(
      fc.property(transposeCase, ({ x, perm }) => {
        const inverse = perm.map((_, i) => perm.indexOf(i));
        const once = runGraph([x], (g, [id]) => g.add("transpose", [id], { perm }));
        expect(once.shape).toEqual(perm.map((p) => x.shape[p]));
        for (let o = 0; o < once.data.length; o++) {
          const idx = unravel(once.shape, o);
          const src = new Array<number>(idx.length);
          perm.forEach((p, i) => (src[p] = idx[i]));
          expect(once.data[o]).toBe(x.data[src.reduce((f, v, i) => f + v * stridesOf(x.shape)[i], 0)]);
        }
        const back = runGraph([x], (g, [id]) => g.add("transpose", [g.add("transpose", [id], { perm })], { perm: inverse }));
        expect(back.shape).toEqual(x.shape);
        expect([...back.data]).toEqual([...x.data]);
      }),
    );
  });
});

describe("reshape", () => {
  /** Groups consecutive factors into sizes, cutting where `cuts` says. */
  const group = (factors: number[], cuts: boolean[]) => {
    const out: number[] = [];
    let acc = 1;
    factors.forEach((f, i) => {
      acc *= f;
      if (cuts[i] || i === factors.length - 1) {
        out.push(acc);
        acc = 1;
      }
    });
    return out;
  };
  const reshapeCase = fc
    .record({
      factors: fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 6 }),
      cutsIn: fc.array(fc.boolean(), { minLength: 6, maxLength: 6 }),
      cutsOut: fc.array(fc.boolean(), { minLength: 6, maxLength: 6 }),
      shuffle: fc.array(fc.nat(), { minLength: 6, maxLength: 6 }),
    })
    .chain(({ factors, cutsIn, cutsOut, shuffle }) => {
      const inShape = group(factors, cutsIn);
      // The output regroups the same factors in another order, so only the total size agrees.
      const shuffled = factors.map((f, i) => [shuffle[i], f]).sort((p, q) => p[0] - q[0]).map(([, f]) => f);
      const outShape = group(shuffled, cutsOut);
      return fc.record({ x: f32Values(numel(inShape)).map((d) => tensor("f32", inShape, d)), outShape: fc.constant(outShape) });
    });

  it("to any shape of the same size keeps the row-major data unchanged", () => {
    fc.assert(
      fc.property(reshapeCase, ({ x, outShape }) => {
        const out = runGraph([x], (g, [id]) => g.add("reshape", [id], { shape: outShape }));
        expect(out.shape).toEqual(outShape);
        expect([...out.data]).toEqual([...x.data]);
      }),
    );
  });
});

describe("broadcasting add", () => {
  const addCase = fc
    .record({
      out: fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 4 }),
      aOnes: fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
      bOnes: fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
      aDrop: fc.integer({ min: 0, max: 4 }),
      bDrop: fc.integer({ min: 0, max: 4 }),
    })
    .chain((c) => {
      const aShape = shrink(c.out, c.aOnes, c.aDrop);
      const bShape = shrink(c.out, c.bOnes, c.bDrop);
      return fc.record({ a: f32Values(numel(aShape)).map((d) => tensor("f32", aShape, d)), b: f32Values(numel(bShape)).map((d) => tensor("f32", bShape, d)) });
    });

  it("agrees with an explicit loop over the broadcast shape, rounding each sum to f32", () => {
    fc.assert(
      fc.property(addCase, ({ a, b }) => {
        const shape = broadcastShape(a.shape, b.shape);
        const expected = [...Array(numel(shape)).keys()].map((o) => {
          const idx = unravel(shape, o);
          return Math.fround(a.data[broadcastRead(a.shape, idx)] + b.data[broadcastRead(b.shape, idx)]);
        });
        const out = runGraph([a, b], (g, [x, y]) => g.add("add", [x, y]));
        expect(out.shape).toEqual(shape);
        expect([...out.data]).toEqual(expected);
      }),
    );
  });
});

/**
 * Round to nearest, ties to even, written from the definition: `mantissaBits` stored bits,
 * normal exponents down to `minExp` (subnormals below it keep the spacing of 2^minExp), and
 * overflow to infinity past `maxFinite`. Exact for every f32 input.
 */
function nearestEven(x: number, mantissaBits: number, minExp: number, maxFinite: number): number {
  if (!Number.isFinite(x)) return x;
  const ax = Math.abs(x);
  let e = minExp;
  while (2 ** (e + 1) <= ax) e++;
  const spacing = 2 ** (e - mantissaBits);
  const q = ax / spacing;
  let r = Math.floor(q);
  const frac = q - r;
  if (frac > 0.5 || (frac === 0.5 && r % 2 === 1)) r++;
  const v = r * spacing;
  return (x < 0 || Object.is(x, -0) ? -1 : 1) * (v > maxFinite ? Infinity : v);
}
const nearestF16 = (x: number) => nearestEven(x, 10, -14, 65504);
const nearestBf16 = (x: number) => nearestEven(x, 7, -126, (2 - 2 ** -7) * 2 ** 127);

const round1 = (dtype: "f16" | "bf16", x: number) => roundTo(dtype, Float64Array.of(x))[0];

describe("16-bit float rounding", () => {
  it('roundTo("f16") agrees with f16FromBits(f16Bits(x)) and is idempotent', () => {
    fc.assert(
      fc.property(fc.double(), (x) => {
        const r = round1("f16", x);
        expect(r).toBe(f16FromBits(f16Bits(x)));
        expect(round1("f16", r)).toBe(r);
      }),
    );
  });

  it('roundTo("f16") of an f32 value is the nearest half, ties to even, overflowing to ±inf', () => {
    const halfway = fc.integer({ min: 0, max: 0x7bfe }).map((h) => (f16FromBits(h) + f16FromBits(h + 1)) / 2);
    fc.assert(
      fc.property(fc.oneof(fc.float(), halfway, halfway.map((v) => -v)), (x) => {
        expect(round1("f16", x)).toBe(nearestF16(x));
      }),
    );
  });

  it('roundTo("bf16") is idempotent', () => {
    fc.assert(
      fc.property(fc.double(), (x) => {
        const r = round1("bf16", x);
        expect(round1("bf16", r)).toBe(r);
      }),
    );
  });

  it('roundTo("bf16") of an f32 value is the nearest bfloat16, ties to even, overflowing to ±inf', () => {
    const halfway = fc.integer({ min: 0, max: 0x7f7e }).map((h) => (bf16FromBits(h) + bf16FromBits(h + 1)) / 2);
    fc.assert(
      fc.property(fc.oneof(fc.float(), halfway, halfway.map((v) => -v)), (x) => {
        expect(round1("bf16", x)).toBe(nearestBf16(x));
      }),
    );
  });

  it("16-bit rounding of a float64 goes through f32 first, as converting an f32 accumulator does", () => {
    // 1 + 2^-11 + 2^-30 is just above the f16 tie 1 + 2^-11, but f32 rounds it onto the tie,
    // which then goes to even: 1. Rounding the float64 directly would give 1 + 2^-10.
    expect(round1("f16", 1 + 2 ** -11 + 2 ** -30)).toBe(1);
    expect(round1("bf16", 1 + 2 ** -8 + 2 ** -30)).toBe(1);
  });

  it("f16Bits round-trips every one of the 65536 half bit patterns (NaNs stay NaN, payloads aside)", () => {
    for (let h = 0; h < 0x10000; h++) {
      const v = f16FromBits(h);
      const back = f16Bits(v);
      if (Number.isNaN(v)) {
        expect((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0, `0x${h.toString(16)} decodes to NaN`).toBe(true);
        expect((back & 0x7c00) === 0x7c00 && (back & 0x3ff) !== 0, `NaN from 0x${h.toString(16)} encodes as a NaN`).toBe(true);
      } else if (back !== h) {
        expect.fail(`half 0x${h.toString(16)} = ${v} encodes back as 0x${back.toString(16)}`);
      }
    }
  });

  it("bf16Bits round-trips every one of the 65536 bfloat16 bit patterns (NaNs stay NaN, payloads aside)", () => {
    for (let h = 0; h < 0x10000; h++) {
      const v = bf16FromBits(h);
      const back = bf16Bits(v);
      if (Number.isNaN(v)) {
        expect((back & 0x7f80) === 0x7f80 && (back & 0x7f) !== 0, `NaN from 0x${h.toString(16)} encodes as a NaN`).toBe(true);
      } else if (back !== h) {
        expect.fail(`bfloat16 0x${h.toString(16)} = ${v} encodes back as 0x${back.toString(16)}`);
      }
    }
  });
});
