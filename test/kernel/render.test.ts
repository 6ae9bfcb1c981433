// One renderer, one language table: kernels lowered from the plan to kernel IR, printed
// through the JS table (snapshotted, so a change to the emitted code is reviewed as code), and
// run against the interpreter.
import { jsKernelFunction, siluGraph } from "../support/kernels.ts";
import { readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { StmtBuilder } from "../../backends/common/kernel/ir.ts";
import { renderKernel } from "../../backends/common/kernel/render.ts";
import { lowerKernel } from "../../backends/common/lower/index.ts";
import { jsLanguage } from "../../backends/js/language.ts";
import type { Kernel } from "../../backends/common/kernel/ir.ts";
import { parseGraph } from "../../compiler/ir/parse.ts";
import { schedule } from "../../compiler/schedule/index.ts";
import { evaluate } from "../../runtime/interpreter/index.ts";
import type { Graph } from "../../compiler/ir/graph.ts";

/** The one kernel of a graph, lowered, and its JS source. */
function lowered(graph: Graph): { kernel: Kernel; source: string; helpers: Set<string> } {
  const plan = schedule(graph);
  expect(plan.kernels).toHaveLength(1);
  const kernel = lowerKernel(plan, plan.kernels[0]);
  return { kernel, ...renderKernel(kernel, jsLanguage) };
}

/** Runs a rendered kernel on typed arrays (out first), with its dims. */
const run = (k: ReturnType<typeof lowered>, buffers: Float32Array[], dims: number[]) => jsKernelFunction(k.kernel)(...buffers, ...dims);

const random = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 97 + i * 1.7) * 3);

describe("the kernel IR through the JS language table", () => {
  it("an elementwise chain with a broadcast operand is one loop nest, each intermediate rounded to f32", () => {
    const graph = siluGraph();
    const k = lowered(graph);
    expect(k.kernel.dims).toEqual(["N"]);
    expect(k.source).toMatchInlineSnapshot(`
      "function k0_fused(out, in0, in1, dim0) {
        for (let i0 = 0; i0 < dim0; i0++) {
          const o0_1 = (i0 * 4);
          for (let i2 = 0; i2 < 4; i2++) {
            const v0 = in0[(o0_1 + i2)];
            const v1 = in1[i2];
            const t2 = Math.fround((v0 * v1));
            out[(o0_1 + i2)] = (t2 / (1 + Math.exp((-t2))));
          }
        }
      }"
    `);
    const n = 5;
    const x = random(n * 4, 1);
    const w = random(4, 2);
    const out = new Float32Array(n * 4);
    run(k, [out, x, w], [n]);
    const expected = evaluate(graph, new Map([["x", { dtype: "f32", shape: [n, 4], data: Float64Array.from(x) }], ["w", { dtype: "f32", shape: [4], data: Float64Array.from(w) }]]), new Map());
    expect([...out]).toEqual([...expected.get("y")!.data]);
  });

  it("a row reduction keeps the rows on the grid and sums each row serially, in the interpreter's order", () => {
    const graph = parseGraph(`graph g [N] {
      %0 = input {name = "x"} : f32[N, 8]
      %1 = mean(%0) {axes = [-1], keepdims = true} : f32[N, 1]
      output "y" = %1
    }`);
    const k = lowered(graph);
    expect(k.kernel.grid).toEqual([{ coefficient: 1, symbols: ["N"] }]);
    expect(k.source).toMatchInlineSnapshot(`
      "function k0_mean(out, in0, dim0) {
        for (let i0 = 0; i0 < dim0; i0++) {
          let acc = 0;
          for (let r1 = 0; r1 < 8; r1++) {
            const v0 = in0[((i0 * 8) + r1)];
            acc = (acc + v0);
          }
          out[i0] = (acc / 8);
        }
      }"
    `);
    const n = 3;
    const x = random(n * 8, 3);
    const out = new Float32Array(n);
    run(k, [out, x], [n]);
    const expected = evaluate(graph, new Map([["x", { dtype: "f32", shape: [n, 8], data: Float64Array.from(x) }]]), new Map());
    expect([...out]).toEqual([...expected.get("y")!.data]);
  });
});

describe("generated code", () => {
  it("is never made from Function.prototype.toString of compiler code", () => {
    // Helpers are kernel IR rendered per language; runtime code ships as template files.
    const sources = readdirSync(new URL("../../backends", import.meta.url), { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".ts"));
    expect(sources.length).toBeGreaterThan(10);
    for (const f of sources) expect(readFileSync(new URL(`../../backends/${f}`, import.meta.url), "utf8"), f).not.toMatch(/\.toString\(\)/);
  });
});

describe("fresh local names", () => {
  it("never shadow a type name of a target language (a 32nd loop index is not i32)", () => {
    const b = new StmtBuilder();
    const names = Array.from({ length: 70 }, () => b.fresh("i"));
    expect(names).not.toContain("i32");
    expect(names).not.toContain("i64");
    expect(new Set(names).size).toBe(70);
  });
});
