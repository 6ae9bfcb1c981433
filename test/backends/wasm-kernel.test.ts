// The kernel IR compiled to WebAssembly (backends/js/wasm-kernel.ts), the JS backend's f32
// kernels outside matmul and attention: which kernels it takes and which loops get four lanes,
// that what it cannot translate stays in JS, and that the edge cases of the IR's meaning (NaN in
// max and min, all -Infinity softmax rows, integer division by 0 and -1, bools in memory,
// lengths that are not a multiple of four, errors) hold in the compiled code. The harness runs
// every op, example and random graph through it besides (BACKENDS: js in f32).
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { compileJs, jsOps, jsTarget } from "../../backends/js/index.ts";
import { storageBytes } from "../../backends/common/target.ts";
import { lowerKernel, lowers } from "../../backends/common/lower/index.ts";
import { wasmKernel } from "../../backends/js/wasm-kernel.ts";
import { wasmModule } from "../../backends/js/wasm-encoder.ts";
import { wasmKernelModule } from "../../backends/js/template/wasm-kernels.js";
import type { Graph } from "../../compiler/ir/graph.ts";
import { parseGraph } from "../../compiler/ir/parse.ts";
import { decompose } from "../../compiler/passes/decompose.ts";
import { fuseElementwise } from "../../compiler/passes/fuse-elementwise.ts";
import { schedule } from "../../compiler/schedule/index.ts";
import { tensor as hostTensor } from "../../compiler/ir/tensor.ts";
import { BACKENDS, runAndCompare } from "../harness/harness.ts";
import { compileSource } from "../support/dsl.ts";
import { seededInputs } from "../support/random-graph.ts";

const f32 = BACKENDS.find((b) => b.name === "js")!;

const example = (file: string) => readFileSync(new URL(`../../examples/${file}`, import.meta.url), "utf8");

/** Each kernel of the shared lowering with what the wasm compiler made of it: undefined (JS) or its vector loops. */
function compiledKernels(graph: Graph): Map<string, number | undefined> {
  const plan = schedule(decompose(graph, jsOps()), storageBytes(jsTarget));
  const out = new Map<string, number | undefined>();
  for (const k of plan.kernels) {
    const node = k.nodes[k.nodes.length - 1];
    if (lowers(node.op)) out.set(`${k.name}`, wasmKernel(lowerKernel(plan, k))?.vectorLoops);
  }
  return out;
}

const ROWS = parseGraph(`graph g [N] {
  %0 = input {name = "x"} : f32[N, 6]
  %1 = softmax(%0) {axis = -1} : f32[N, 6]
  %2 = max(%0) {axes = [1]} : f32[N]
  %3 = sum(%0) {axes = [1]} : f32[N]
  %4 = exp(%0) : f32[N, 6]
  output "s" = %1
  output "m" = %2
  output "t" = %3
  output "e" = %4
}`);

describe("the wasm kernel compiler", () => {
  it("takes softmax's three walks, reductions and elementwise loops four lanes at a time", () => {
    expect([...compiledKernels(ROWS).values()]).toEqual([3, 1, 1, 1]);
  });

  it("takes every shared-lowering kernel of the example models, all but a few scalar ones vectorised", () => {
    for (const [file, set] of [["diff_lm.dt", { N: 8 }], ["transformer_lm.dt", { N: 8 }]] as const) {
      const graph = compileSource(example(file), { set: new Map(Object.entries(set)) }, file);
      const kernels = [...compiledKernels(graph).values()];
      expect(kernels.every((v) => v !== undefined), file).toBe(true);
      expect(kernels.filter((v) => v! > 0).length / kernels.length, file).toBeGreaterThan(0.75);
    }
  });

  it("leaves to JS what it cannot translate exactly (16-bit floats), and the artifact calls wasm only in f32", () => {
    const halves = parseGraph(`graph g [N] {
      %0 = input {name = "x"} : f16[N]
      %1 = exp(%0) : f16[N]
      output "y" = %1
    }`);
    expect([...compiledKernels(halves).values()]).toEqual([undefined]);
    expect(compileJs(ROWS).files.get("model.js")).toContain(`wasmKernels.call("k0_softmax"`);
    expect(compileJs(ROWS, [], { precision: "f64" }).files.get("model.js")).not.toContain("wasmKernels");
  });

  it("fuses a matmul's epilogue into a wasm kernel over each chunk of the product", () => {
    const graph = compileSource(`model M { dim N
      input x: f32[N, 16]
      input w1: f32[16, 24]
      input w3: f32[16, 24]
      output y = silu(x @ w1) * (x @ w3)
    }`, {});
    const js = compileJs(fuseElementwise(decompose(graph))).files.get("model.js")!;
    expect(js).toMatch(/wasmKernels\.call\("k\d+_fused_epilogue", true, \[F\.subarray\(cAt, cAt \+ rows \* width\), in\d\.subarray\(/);
  });
});

describe("the compiled kernels' loader", () => {
  it("copies a session's params into wasm memory once, and a new param array (a new session) again", () => {
    const graph = parseGraph(`graph g {
      %0 = input {name = "x"} : f32[8]
      %1 = param {name = "w"} : f32[8]
      %2 = mul(%0, %1) : f32[8]
      output "y" = %2
    }`);
    const plan = schedule(decompose(graph, jsOps()), storageBytes(jsTarget));
    const compiled = wasmKernel(lowerKernel(plan, plan.kernels[0]))!;
    const kernels = wasmKernelModule(wasmModule([[compiled.name, compiled.body]]));
    const x = Float32Array.from({ length: 8 }, (_, i) => i + 1);
    const run = (w: Float32Array) => {
      const y = new Float32Array(8);
      kernels.call(compiled.name, compiled.readsOut, [y, x, w], [], null, [2]);
      return [...y];
    };
    const w = new Float32Array(8).fill(2);
    expect(run(w)).toEqual([2, 4, 6, 8, 10, 12, 14, 16]);
    // A param never changes within a session: the second call reads the copy made by the first.
    w.fill(3);
    expect(run(w)).toEqual([2, 4, 6, 8, 10, 12, 14, 16]);
    expect(run(new Float32Array(8).fill(3))).toEqual([3, 6, 9, 12, 15, 18, 21, 24]);
  });
});

describe("compiled kernels keep the IR's meaning at its edges", () => {
  it("max, min and softmax over rows with NaN, ±Infinity, ±0 and all -Infinity, for every row length", async () => {
    const special = fc.constantFrom(NaN, Infinity, -Infinity, 0, -0, 1, -1, 3.5, -2.25, 1e30, -1e-30);
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 13 }), fc.integer({ min: 1, max: 3 }), fc.array(special, { minLength: 39, maxLength: 39 }), fc.boolean(), async (len, rows, values, allMinus) => {
        const graph = parseGraph(`graph g {
          %0 = input {name = "x"} : f32[${rows}, ${len}]
          %1 = softmax(%0) {axis = -1} : f32[${rows}, ${len}]
          %2 = max(%0) {axes = [1]} : f32[${rows}]
          %3 = min(%0) {axes = [1]} : f32[${rows}]
          output "s" = %1
          output "hi" = %2
          output "lo" = %3
        }`);
        const data = new Float32Array(rows * len).map((_, i) => (allMinus && i < len ? -Infinity : values[i % values.length]));
        await runAndCompare(f32, graph, new Map([["x", hostTensor("f32", [rows, len], data)]]), new Map());
      }),
      { numRuns: 60 },
    );
  });

  it("integer division and remainder by 0 and -1, as the interpreter's idiv and JS's %", async () => {
    const graph = parseGraph(`graph g [N] {
      %0 = input {name = "a"} : i32[N]
      %1 = input {name = "b"} : i32[N]
      %2 = div(%0, %1) : i32[N]
      output "q" = %2
    }`);
    const a = Int32Array.from([7, -7, 7, -2147483648, 5, 0, -9, 2147483647, 13]);
    const b = Int32Array.from([2, 2, 0, -1, -1, 0, 4, -1, -5]);
    await runAndCompare(f32, graph, new Map([["a", hostTensor("i32", [9], a)], ["b", hostTensor("i32", [9], b)]]), new Map(), new Map([["N", 9]]));
    expect([...compiledKernels(graph).values()]).toEqual([0]);
  });

  it("bools read and written four bytes at a time, masks in where, for lengths 1 to 13", async () => {
    for (let n = 1; n <= 13; n++) {
      const graph = parseGraph(`graph g [N] {
        %0 = input {name = "x"} : f32[N]
        %1 = input {name = "y"} : f32[N]
        %2 = le(%0, %1) : bool[N]
        %3 = where(%2, %0, %1) : f32[N]
        %4 = ne(%0, %1) : bool[N]
        output "c" = %2
        output "w" = %3
        output "n" = %4
      }`);
      const dims = new Map([["N", n]]);
      await runAndCompare(f32, graph, seededInputs(graph, dims, n), new Map(), dims);
      expect([...compiledKernels(graph).values()].every((v) => v === 1)).toBe(true);
    }
  });

  it("a gather out of range reports the index, as the JS kernel does", async () => {
    const graph = parseGraph(`graph g [N] {
      %0 = input {name = "table"} : f32[5, 3]
      %1 = input {name = "ids"} : i32[N]
      %2 = gather(%0, %1) : f32[N, 3]
      output "y" = %2
    }`);
    expect(compiledKernels(graph).size).toBe(1);
    const session = await f32.load(graph, new Map());
    const inputs = new Map([["table", hostTensor("f32", [5, 3], new Float32Array(15))], ["ids", hostTensor("i32", [3], Int32Array.from([1, 7, 2]))]]);
    await expect(session.run(inputs)).rejects.toThrow(/7/);
  });
});
