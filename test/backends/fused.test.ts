// Fused kernels against the interpreter, and against the unfused kernels: a fused kernel rounds
// every intermediate as the interpreter does, so fusing changes no bit of any output.
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DTYPE_CHAINS, meanSquareGraph } from "../support/kernels.ts";
import { compileJs } from "../../backends/js/index.ts";
import type { Graph } from "../../compiler/ir/graph.ts";
import { parseGraph } from "../../compiler/ir/parse.ts";
import type { HostTensor } from "../../compiler/ir/tensor.ts";
import { decompose } from "../../compiler/passes/decompose.ts";
import { fuseElementwise } from "../../compiler/passes/fuse-elementwise.ts";
import { foldMatmulTransposesPass } from "../../compiler/passes/fold-matmul-transposes.ts";
import type { TensorMap } from "../../runtime/adapters/adapter.ts";
import { randomInputs } from "../../runtime/init.ts";
import { compileSource } from "../support/dsl.ts";
import { arbitraryGraphCase, seededInputs } from "../support/random-graph.ts";
import { testWeights } from "../support/weights.ts";
import { BACKENDS, type BackendUnderTest, runAndCompare } from "../harness/harness.ts";

const fuse = (g: Graph) => fuseElementwise(decompose(g));

/** Bit for bit, the sign of zero included (any NaN equals any NaN). */
function expectSameBits(actual: Map<string, HostTensor>, expected: Map<string, HostTensor>): void {
  for (const [name, e] of expected) {
    const a = actual.get(name)!;
    const i = e.data.findIndex((x, k) => !Object.is(x, a.data[k]) && !(Number.isNaN(x) && Number.isNaN(a.data[k])));
    expect(i, `${name}[${i}]: fused ${a.data[i]}, unfused ${e.data[i]}`).toBe(-1);
  }
}

/**
 * The backend on the fused graph agrees with the interpreter and, where it is exact on single
 * ops, bit for bit with the unfused graph. (In f32 a kernel the wasm compiler cannot translate
 * runs in JS's float64 instead, so a fused kernel and the unfused ones may each sum their own
 * way: both within the tolerance, not the same bits.)
 */
async function checkFused(backend: BackendUnderTest, graph: Graph, inputs: TensorMap, weights: TensorMap, dims: ReadonlyMap<string, number>): Promise<Graph> {
  const fused = fuse(graph);
  // A fused node rounds like the ops it fuses: each output's family is theirs (on the JS
  // backend, exact on single ops: bit for bit).
  await runAndCompare(backend, fused, inputs, weights, dims);
  if (!backend.exactSingleOps) return fused;
  const unfused = await (await backend.load(graph, weights)).run(inputs);
  expectSameBits(await (await backend.load(fused, weights)).run(inputs), unfused);
  return fused;
}

/** The generated JS source of the first fused kernel of a graph (in f64: f32 compiles it to wasm). */
function fusedKernelSource(graph: Graph): string {
  const js = String(compileJs(graph, [], { precision: "f64" }).files.get("model.js"));
  return js.match(/^function k\d+_fused\(.*\) \{$[\s\S]*?^\}$/m)![0];
}

const EXAMPLES: [string, [string, number][]][] = [
  ["diff_attention.dt", [["D", 64], ["H", 2]]],
  ["diff_lm.dt", [["V", 40], ["D", 32], ["H", 2], ["L", 2]]],
  ["transformer_lm.dt", [["V", 40], ["D", 32], ["H", 2], ["L", 2]]],
  ["diff_attention_v2.dt", [["D", 32], ["H", 2], ["Hkv", 1]]],
];
const example = (file: string, set: [string, number][] = []) => compileSource(readFileSync(new URL(`../../examples/${file}`, import.meta.url), "utf8"), { set: new Map(set) }, file);


/** Matmul epilogues over every result layout: batched, broadcast batch, 1-D operands, residuals and per-column vectors. */
const EPILOGUES = `model M(A, B, C) { dim N
  input a: f32[N, A, B]
  input b: f32[B, C]
  input c: f32[1, C, A]
  input v: f32[B]
  input r: f32[N, A, C]
  input bias: f32[C]
  input col: f32[A, 1]
  output m = (a @ b) * 0.5 + r
  output g = silu(a @ b) * (a @ b + bias)
  output k = (((a @ b) @ c) - col) * 2
  output mv = tanh(a @ v) + 1
  output vm = relu(v @ b) - bias
  output vv = exp(v @ v) * 0.25
}`;

/** Products of a transposed b, for fold-matmul-transposes' transpose_b: plain, batched, with an epilogue, 1-D a, i32, f16. */
const TRANSPOSED = `model M(A, B, C) { dim N
  input a: f32[N, A, B]
  input w: f32[C, B]
  input wb: f32[N, C, B]
  input v: f32[B]
  input bias: f32[C]
  input ai: i32[A, B]
  input wi: i32[C, B]
  input ah: f16[A, B]
  input wh: f16[C, B]
  output p = a @ transpose(w)
  output e = silu(a @ transpose(w)) * 0.5 + bias
  output q = a @ transpose(wb)
  output vp = v @ transpose(w)
  output i = ai @ transpose(wi)
  output h = ah @ transpose(wh)
}`;

for (const backend of BACKENDS) {
  describe(`${backend.name}: fused kernels`, () => {
    it("agree with the interpreter and the unfused kernels on random graphs after fusion", async () => {
      await fc.assert(
        fc.asyncProperty(arbitraryGraphCase({ dims: true }), async ({ graph, dims, inputs }) => {
          await checkFused(backend, graph, inputs, new Map(), dims);
        }),
        { numRuns: 60 },
      );
    });

    for (const [file, set] of EXAMPLES) {
      it(`agree on examples/${file}, in fewer kernels`, async () => {
        const graph = example(file, set);
        const dims = new Map(graph.dims.map((d) => [d, 7]));
        const fused = await checkFused(backend, graph, randomInputs(graph, dims, 3), testWeights(graph, 3), dims);
        expect(compileJs(fused).manifest.kernels.length).toBeLessThan(compileJs(graph).manifest.kernels.length);
      });
    }

    it("read b transposed in place (transpose_b), plain and under an epilogue, bit for bit what the copied transpose gives", async () => {
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 3 }), fc.nat(1000), async (A, B, C, N, seed) => {
          const graph = compileSource(TRANSPOSED, { set: new Map([["A", A], ["B", B], ["C", C]]) });
          const folded = foldMatmulTransposesPass.run(graph);
          expect(folded.nodes.filter((n) => n.attrs.transpose_b === true)).toHaveLength(6);
          const dims = new Map([["N", N]]);
          const inputs = seededInputs(graph, dims, seed);
          const fused = await checkFused(backend, folded, inputs, new Map(), dims);
          expectSameBits(await (await backend.load(fused, new Map())).run(inputs), await (await backend.load(graph, new Map())).run(inputs));
        }),
        { numRuns: 15 },
      );
    });

    it("round every intermediate to its dtype: f16, bf16, i32, i8, u8 and bool chains, prologues and epilogues", async () => {
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 9 }), fc.nat(1000), async (A, B, N, seed) => {
          const graph = compileSource(DTYPE_CHAINS, { set: new Map([["A", A], ["B", B]]) });
          const dims = new Map([["N", N]]);
          const fused = await checkFused(backend, graph, seededInputs(graph, dims, seed), new Map(), dims);
          expect(new Set(fused.nodes.filter((n) => n.op === "fused").map((n) => n.attrs.kind))).toEqual(new Set(["elementwise", "prologue", "epilogue"]));
        }),
        { numRuns: 15 },
      );
    });

    it("apply epilogues at every matmul result: 4x2 tiles, odd last columns and rows, batches and 1-D operands", async () => {
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 3 }), fc.nat(1000), async (A, B, C, N, seed) => {
          const graph = compileSource(EPILOGUES, { set: new Map([["A", A], ["B", B], ["C", C]]) });
          const dims = new Map([["N", N]]);
          const fused = await checkFused(backend, graph, seededInputs(graph, dims, seed), new Map(), dims);
          expect(fused.nodes.filter((n) => n.attrs.kind === "epilogue").length).toBe(6);
        }),
        { numRuns: 20 },
      );
    });
  });
}

describe("the JS kernel of a fused node", () => {
  it("is one loop that reads each operand at its broadcast stride and rounds each intermediate to f32", () => {
    const graph = fuseElementwise(
      parseGraph(`graph g [N] {
        %0 = input {name = "x"} : f32[N, 4]
        %1 = input {name = "w"} : f32[4]
        %2 = mul(%0, %1) : f32[N, 4]
        %3 = exp(%2) : f32[N, 4]
        %4 = const {value = 0.5} : f32[]
        %5 = maximum(%3, %4) : f32[N, 4]
        %6 = silu(%5) : f32[N, 4]
        output "y" = %6
      }`),
    );
    expect(fusedKernelSource(graph)).toMatchInlineSnapshot(`
      "function k0_fused(out, in0, in1, dim0) {
        for (let i0 = 0; i0 < dim0; i0++) {
          const o0_1 = (i0 * 4);
          for (let i2 = 0; i2 < 4; i2++) {
            const v0 = in0[(o0_1 + i2)];
            const v1 = in1[i2];
            const t2 = Math.fround((v0 * v1));
            const t3 = Math.fround(Math.exp(t2));
            const t5 = Math.max(t3, 0.5);
            out[(o0_1 + i2)] = (t5 / (1 + Math.exp((-t5))));
          }
        }
      }"
    `);
  });

  it("as a prologue, computes the reduced value in the reduction loop", () => {
    expect(fusedKernelSource(meanSquareGraph())).toMatchInlineSnapshot(`
      "function k0_fused(out, in0, dim0) {
        for (let i0 = 0; i0 < dim0; i0++) {
          let acc = 0;
          for (let r1 = 0; r1 < 8; r1++) {
            const v0 = in0[((i0 * 8) + r1)];
            const v = Math.fround((v0 * v0));
            acc = (acc + v);
          }
          out[i0] = (acc / 8);
        }
      }"
    `);
  });

  it("cuts diff_lm (L = 4) from one kernel per op to about six in ten", () => {
    const graph = decompose(example("diff_lm.dt"));
    const before = compileJs(graph).manifest.kernels.length;
    const after = compileJs(fuseElementwise(graph)).manifest.kernels.length;
    expect(after / before).toBeLessThan(0.65);
  });
});
