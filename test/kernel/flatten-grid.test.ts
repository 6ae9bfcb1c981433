// flattenGrid and explicitCasts change how a kernel is written, never what it computes: every
// kernel of several plans, lowered, rewritten and printed through the JS table, writes the
// same bits and the same error record as the kernel as lowered, on random data.
import { DTYPE_CHAINS, jsKernelFunction } from "../support/kernels.ts";
import { describe, expect, it } from "vitest";
import { explicitCasts } from "../../backends/common/kernel/explicit-casts.ts";
import { assertFlatGrid, flattenGrid } from "../../backends/common/kernel/flatten-grid.ts";
import type { Kernel, Stmt } from "../../backends/common/kernel/ir.ts";
import { Renderer, renderKernel } from "../../backends/common/kernel/render.ts";
import { lowerKernel } from "../../backends/common/lower/index.ts";
import { jsLanguage } from "../../backends/js/language.ts";
import type { Graph } from "../../compiler/ir/graph.ts";
import { parseGraph } from "../../compiler/ir/parse.ts";
import type { ScalarExpr } from "../../compiler/ir/scalar.ts";
import type { DType } from "../../compiler/ir/types.ts";
import { decompose } from "../../compiler/passes/decompose.ts";
import { fuseElementwise } from "../../compiler/passes/fuse-elementwise.ts";
import { schedule } from "../../compiler/schedule/index.ts";
import { evalMonomial, formatMonomial } from "../../common/size.ts";
import { compileSource } from "../support/dsl.ts";

type Buffer = Float32Array | Uint16Array | Int32Array | Int8Array | Uint8Array;
const ARRAYS: Record<DType, new (n: number) => Buffer> = { f32: Float32Array, f16: Uint16Array, bf16: Uint16Array, i32: Int32Array, i8: Int8Array, u8: Uint8Array, bool: Uint8Array };

/** A deterministic generator (mulberry32), so a failure reproduces. */
function generator(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random contents for a buffer of a dtype: floats with a few specials, 16-bit patterns, small integers (gather indices partly out of range). */
function fill(dtype: DType, n: number, next: () => number): Buffer {
  const b = new ARRAYS[dtype](n);
  const SPECIAL = [0, -0, NaN, Infinity, -Infinity, 1, -1];
  for (let i = 0; i < n; i++) {
    const r = next();
    if (dtype === "f32") b[i] = r < 0.05 ? SPECIAL[Math.floor(next() * SPECIAL.length)] : (next() - 0.5) * 8;
    else if (dtype === "f16" || dtype === "bf16") b[i] = Math.floor(r * 65536);
    else if (dtype === "bool") b[i] = r < 0.5 ? 1 : 0;
    else if (dtype === "i32") b[i] = r < 0.1 ? Math.floor(next() * 2 ** 32) - 2 ** 31 : Math.floor(r * 11) - 3;
    else b[i] = Math.floor(r * 256);
  }
  return b;
}

/** A rendered kernel as a JS function over (buffers..., dims..., errors). */
function compile(k: Kernel): (...args: unknown[]) => void {
  const { source, helpers } = renderKernel(k, jsLanguage);
  return jsKernelFunction(k);
}

/** The outputs and error records of a kernel as lowered and as rewritten agree on random data. */
function expectSameResults(graph: Graph, dims: Map<string, number>, rewrite: (k: Kernel) => Kernel, seeds = 3): { kernels: Kernel[]; failed: boolean } {
  const plan = schedule(graph);
  let failed = false;
  const kernels = plan.kernels.map((pk) => {
    const lowered = lowerKernel(plan, pk);
    const rewritten = rewrite(lowered);
    const [before, after] = [compile(lowered), compile(rewritten)];
    for (let seed = 0; seed < seeds; seed++) {
      const next = generator(seed * 7919 + pk.output);
      const size = (id: number) => evalMonomial(plan.buffers[id].size, dims);
      const inputs = pk.inputs.map((id) => fill(plan.buffers[id].dtype, size(id), next));
      const dimValues = lowered.dims.map((d) => dims.get(d)!);
      const run = (f: (...args: unknown[]) => void) => {
        const out = new ARRAYS[plan.buffers[pk.output].dtype](size(pk.output));
        const errors = new Float64Array(4);
        f(out, ...inputs, ...dimValues, errors);
        return { out: [...out], errors: [...errors] };
      };
      const [expected, actual] = [run(before), run(after)];
      failed ||= expected.errors[0] !== 0;
      expect(actual.errors, `${pk.name} error record, seed ${seed}`).toEqual(expected.errors);
      const i = expected.out.findIndex((x, k) => !Object.is(x, actual.out[k]));
      expect(i, `${pk.name}[${i}], seed ${seed}: ${actual.out[i]} instead of ${expected.out[i]}`).toBe(-1);
    }
    return rewritten;
  });
  return { kernels, failed };
}

/** An i32 expression over the dim parameters, evaluated. */
const evaluate = (e: ScalarExpr, dims: number[]): number => new Function(...dims.map((_, i) => `dim${i}`), `return ${new Renderer(jsLanguage).expr(e)};`)(...dims);

const gridLoops = (list: readonly Stmt[]): number =>
  list.reduce((n, s) => n + (s.kind === "loop" ? (s.scope === "grid" ? 1 : 0) + gridLoops(s.body) : s.kind === "if" ? gridLoops([...s.then, ...s.else]) : 0), 0);

const GRAPHS: [string, string, Map<string, number>][] = [
  [
    "an elementwise chain with a broadcast operand",
    `graph g [N] {
      %0 = input {name = "x"} : f32[N, 4, 3]
      %1 = input {name = "w"} : f32[4, 1]
      %2 = mul(%0, %1) : f32[N, 4, 3]
      %3 = silu(%2) : f32[N, 4, 3]
      output "y" = %3
    }`,
    new Map([["N", 3]]),
  ],
  [
    "a transpose",
    `graph g [N] {
      %0 = input {name = "x"} : f32[N, 5, 3]
      %1 = transpose(%0) {perm = [2, 0, 1]} : f32[3, N, 5]
      output "y" = %1
    }`,
    new Map([["N", 4]]),
  ],
  [
    "a reduction over a middle axis, and a max with its NaN rule",
    `graph g [N] {
      %0 = input {name = "x"} : f32[N, 4, 3]
      %1 = sum(%0) {axes = [1]} : f32[N, 3]
      %2 = max(%0) {axes = [0, 2]} : f32[4]
      output "s" = %1
      output "m" = %2
    }`,
    new Map([["N", 3]]),
  ],
  [
    "a softmax over a middle axis",
    `graph g [N] {
      %0 = input {name = "x"} : f32[N, 5, 3]
      %1 = softmax(%0) {axis = 1} : f32[N, 5, 3]
      output "y" = %1
    }`,
    new Map([["N", 2]]),
  ],
  [
    "a gather with indices out of range (the error record)",
    `graph g [N] {
      %0 = input {name = "table"} : f32[2, 6, 3]
      %1 = input {name = "ids"} : i32[N]
      %2 = gather(%0, %1) {axis = 1} : f32[2, N, 3]
      output "y" = %2
    }`,
    new Map([["N", 5]]),
  ],
  [
    "a batched matmul",
    `graph g [N] {
      %0 = input {name = "a"} : f32[2, N, 3]
      %1 = input {name = "b"} : f32[3, 4]
      %2 = matmul(%0, %1) : f32[2, N, 4]
      output "y" = %2
    }`,
    new Map([["N", 3]]),
  ],
  [
    "a concat, an iota and a numel",
    `graph g [N] {
      %0 = input {name = "a"} : f32[N, 2]
      %1 = input {name = "b"} : f32[N, 3]
      %2 = concat(%0, %1) {axis = 1} : f32[N, 5]
      %3 = iota() {shape = [N, 3], axis = 1} : i32[N, 3]
      %4 = numel() {shape = [N, 3]} : i32[]
      output "c" = %2
      output "i" = %3
      output "n" = %4
    }`,
    new Map([["N", 3]]),
  ],
];


describe("flattenGrid", () => {
  for (const [name, text, dims] of GRAPHS) {
    it(`keeps what ${name} computes, in one grid loop a launch of kernel.grid covers`, () => {
      const graph = parseGraph(text);
      const { kernels, failed } = expectSameResults(graph, dims, flattenGrid);
      expect(failed).toBe(name.includes("error record"));
      for (const k of kernels) {
        assertFlatGrid(k, "test");
        expect(k.grid).toHaveLength(1);
        const dimValues = k.dims.map((d) => dims.get(d)!);
        for (const s of k.body) if (s.kind === "loop") expect(evalMonomial(k.grid[0], dims)).toBeGreaterThanOrEqual(evaluate(s.end, dimValues));
      }
    });
  }

  it("recovers each index of a rank-3 nest by division and modulo, the statements between the loops moved inside", () => {
    const plan = schedule(parseGraph(GRAPHS[4][1]));
    const k = flattenGrid(lowerKernel(plan, plan.kernels[0]));
    expect(formatMonomial(k.grid[0])).toBe("6*N");
    expect(gridLoops(k.body)).toBe(1);
    expect(renderKernel(k, jsLanguage).source).toMatchInlineSnapshot(`
      "function k0_gather(out, in0, in1, dim0, errors) {
        for (let flat = 0; flat < ((2 * dim0) * 3); flat++) {
          const i = idiv(flat, (dim0 * 3));
          const j = (idiv(flat, 3) % dim0);
          let index = in1[j];
          if (((index < 0) || (index >= 6))) {
            if (errors[0] === 0) { errors[0] = 1; errors[1] = index; errors[2] = 6; }
            index = 0;
          }
          const src = (((i * 6) + index) * 3);
          const dst = (((i * dim0) + j) * 3);
          const e = (flat % 3);
          out[(dst + e)] = in0[(src + e)];
        }
      }"
    `);
  });

  it("runs a kernel without grid loops (numel) as one grid iteration", () => {
    const plan = schedule(parseGraph(GRAPHS[6][1]));
    const k = flattenGrid(lowerKernel(plan, plan.kernels[2]));
    expect(k.grid).toEqual([{ coefficient: 1, symbols: [] }]);
    expect(k.body).toHaveLength(1);
  });
});

describe("explicitCasts then flattenGrid", () => {
  for (const [name, text, dims] of GRAPHS) {
    it(`keep what ${name} computes`, () => {
      expectSameResults(parseGraph(text), dims, (k) => flattenGrid(explicitCasts(k)));
    });
  }

  it("keep what chains, prologues and epilogues over every dtype compute, fused and unfused", () => {
    for (const fuse of [false, true]) {
      const source = compileSource(DTYPE_CHAINS, { set: new Map([["A", 3], ["B", 2]]) });
      const graph = fuse ? fuseElementwise(decompose(source)) : decompose(source);
      expectSameResults(graph, new Map([["N", 4]]), (k) => flattenGrid(explicitCasts(k)), 4);
    }
  });
});
