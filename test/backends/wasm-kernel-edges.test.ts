// The compiled f32 kernels (backends/js/wasm-kernel.ts) at the edges: against the interpreter
// on random graphs of elementwise ops, casts, reductions and softmax fed with special values
// (NaN, ±Infinity, ±0, huge, tiny and subnormal magnitudes; random-graph.ts, EDGE_VALUES), at
// every stage of the default pipeline (so fused chains too), with last axes of 1 to 13
// elements, so that the four-lane loops, their scalar remainders, and loops too short for
// lanes all run; every unary and binary op at every special value; kernel IR that looks
// vectorisable and is not, run both as the JS printing and compiled; and the loader's limits.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type Kernel, int, StmtBuilder } from "../../backends/common/kernel/ir.ts";
import { renderKernel } from "../../backends/common/kernel/render.ts";
import { jsLanguage } from "../../backends/js/language.ts";
import { wasmKernelModule } from "../../backends/js/template/wasm-kernels.js";
import { wasmModule } from "../../backends/js/wasm-encoder.ts";
import { wasmKernel } from "../../backends/js/wasm-kernel.ts";
import { bin, call, lit, type ScalarExpr, select } from "../../compiler/ir/scalar.ts";
import { printGraph } from "../../compiler/ir/print.ts";
import { BACKENDS, runAndCompare, runAndCompareStages } from "../harness/harness.ts";
import { parseGraph } from "../../compiler/ir/parse.ts";
import { tensor as hostTensor } from "../../compiler/ir/tensor.ts";
import { arbitraryGraphCase, EDGE_VALUES } from "../support/random-graph.ts";

const f32 = BACKENDS.find((b) => b.name === "js")!;

describe("compiled f32 kernels on special values", () => {
  it("agree with the interpreter on random elementwise, cast, reduction and softmax graphs", async () => {
    await fc.assert(
      fc.asyncProperty(arbitraryGraphCase({ edgeValues: true, maxInner: 13, maxNodes: 18, dims: true }), async ({ graph, dims, inputs, params }) => {
        try {
          await runAndCompareStages(f32, graph, inputs, params, dims);
        } catch (e) {
          if (e instanceof Error) e.message = `${e.message}\n${printGraph(graph)}\ninputs: ${JSON.stringify([...inputs].map(([n, t]) => [n, t.shape, [...t.data].map(String)]))}`;
          throw e;
        }
      }),
      { numRuns: Number(process.env.EDGE_RUNS ?? 300) },
    );
  });

  // Besides EDGE_VALUES: ±1 and small integers (pow's odd and even powers), f32's least normal
  // and largest finite values, exp's overflow and underflow thresholds.
  const values = [...EDGE_VALUES, -1, 1, 2, 3, -3, 0.5, -2, -0.5, 1.5, 2 ** -126, -(2 ** -126), 3.4028234663852886e38, 88.72, -87.3, -103.9, 9, 10, 0.1];
  const run = async (op: string, operands: Float32Array[]) => {
    const n = operands[0].length;
    const names = operands.map((_, i) => `x${i}`);
    const graph = parseGraph(`graph g {
      ${names.map((name, i) => `%${i} = input {name = "${name}"} : f32[${n}]`).join("\n")}
      %${names.length} = ${op}(${names.map((_, i) => `%${i}`).join(", ")}) : f32[${n}]
      output "y" = %${names.length}
    }`);
    await runAndCompare(f32, graph, new Map(names.map((name, i) => [name, hostTensor("f32", [n], operands[i])])), new Map());
  };

  it("every unary op at every special value", async () => {
    for (const op of ["exp", "log", "tanh", "sigmoid", "silu", "gelu", "gelu_tanh", "sqrt", "rsqrt", "relu", "abs", "neg"]) await run(op, [Float32Array.from(values)]);
    // Past 3.37e9, wasm-math.ts reduces sin's and cos's argument without the bits that needs.
    for (const op of ["sin", "cos"]) await run(op, [Float32Array.from(values.filter((x) => !(Math.abs(x) > 1e9)))]);
  });

  it("every binary op at every pair of special values", async () => {
    const x = Float32Array.from(values.flatMap((a) => values.map(() => a)));
    const y = Float32Array.from(values.flatMap(() => values));
    for (const op of ["pow", "div", "add", "sub", "mul", "maximum", "minimum"]) await run(op, [x, y]);
  });
});

/** Kernel IR `body` over buffers `out` (f32) and `in0` (`input`'s dtype), no dims. */
function kernelOf(name: string, body: (b: StmtBuilder) => void, input: "f32" | "i32" = "f32"): Kernel {
  const b = new StmtBuilder();
  body(b);
  return { name, buffers: [{ name: "out", dtype: "f32", access: "write" }, { name: "in0", dtype: input, access: "read" }], dims: [], body: b.statements, grid: [], errors: [] };
}

const load = (buffer: string, index: ScalarExpr, dtype: "f32" | "i32" = "f32"): ScalarExpr => ({ kind: "load", buffer, dtype, index });

/** `out` after the kernel, run as the JS language table prints it (the IR's meaning) and as compiled wasm. */
function runBoth(kernel: Kernel, out: Float32Array, input: Float32Array | Int32Array): { js: Float32Array; wasm: Float32Array } {
  const js = out.slice();
  new Function(`${renderKernel(kernel, jsLanguage).source}\nreturn ${kernel.name};`)()(js, input);
  const compiled = wasmKernel(kernel);
  expect(compiled, "the kernel compiles").toBeDefined();
  const wasm = out.slice();
  wasmKernelModule(wasmModule([[kernel.name, compiled!.body]])).call(kernel.name, compiled!.readsOut, [wasm, input], []);
  return { js, wasm };
}

describe("the vectoriser keeps the IR's meaning on loops it must not take as they look", () => {
  it("a max step whose NaN test also tests something else is not a plain max", () => {
    const kernel = kernelOf("k_max_or_big", (b) => {
      const acc = b.var("acc", "f32", lit(-Infinity));
      b.loop("i", int(8), "serial", (i) => {
        const v = b.let("v", "f32", load("in0", i));
        b.assign("acc", select(bin("||", call("isnan", acc), bin(">", v, lit(100))), lit(NaN), select(bin(">", acc, v), acc, v)));
      });
      b.store("out", "f32", int(0), acc);
    });
    const { js, wasm } = runBoth(kernel, new Float32Array(1), Float32Array.from([1, 2, 3, 200, 4, 5, 6, 7]));
    expect(js[0]).toBeNaN();
    expect(wasm[0]).toBeNaN();
  });

  it("a buffer read and written at lane offsets that can coincide (i >> 1) runs one iteration at a time", () => {
    const kernel = kernelOf("k_pairs", (b) =>
      b.loop("i", int(8), "serial", (i) => {
        const at = bin(">>", i, int(1));
        b.store("out", "f32", at, bin("+", load("out", at), load("in0", i)));
      }),
    );
    const { js, wasm } = runBoth(kernel, new Float32Array(4), Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]));
    expect([...js]).toEqual([3, 7, 11, 15]);
    expect([...wasm]).toEqual([...js]);
  });

  it("a float accumulator summing integers gives a valid module with the sum, or stays JS", () => {
    const kernel = kernelOf(
      "k_int_sum",
      (b) => {
        const acc = b.var("acc", "f64", lit(0, "f64"));
        b.loop("i", int(8), "serial", (i) => b.assign("acc", bin("+", acc, load("in0", i, "i32"))));
        b.store("out", "f32", int(0), acc);
      },
      "i32",
    );
    const compiled = wasmKernel(kernel);
    if (compiled) expect(WebAssembly.validate(wasmModule([[kernel.name, compiled.body]]))).toBe(true);
  });
});

describe("the loader of the compiled kernels", () => {
  it("refuses buffers past the 2 GiB its i32 offsets address, whatever their sizes' low bits", () => {
    const kernel = kernelOf("k_copy", (b) => b.loop("i", int(4), "serial", (i) => b.store("out", "f32", i, load("in0", i))));
    const module = wasmKernelModule(wasmModule([[kernel.name, wasmKernel(kernel)!.body]]));
    // A view's size is all the loader reads before it reserves memory: no 2 GiB array is made.
    const huge = { byteLength: 2 ** 31, byteOffset: 0, buffer: new ArrayBuffer(0) } as unknown as Float32Array;
    expect(() => module.call(kernel.name, false, [huge, new Float32Array(4)], [])).toThrow(/2 GiB/);
  });
});
