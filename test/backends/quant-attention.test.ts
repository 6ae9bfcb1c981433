// The quantised attention kernels (qflash_attention, qflash_diffattn) agree with the
// interpreter's statement of them (compiler/ir/ops/attention-quant.ts), over several query
// tiles and key blocks, causal with K > N and K < N, GQA, both pairings, λ per row and head, and
// the whole epilogue. The kernels compute in float64 like the interpreter, so every level is
// the interpreter's unless a value lies within ~1e-13 of a rounding tie: the flash tolerance
// applies. The CUDA and WebGPU test files check their kernels with the same model.
import { describe, expect, it } from "vitest";
import { randomInputs } from "../../runtime/init.ts";
import { BACKENDS, runAndCompare } from "../harness/harness.ts";
import { compileJs } from "../../backends/js/index.ts";
import { evaluate } from "../../runtime/interpreter/index.ts";
import { compileSource } from "../support/dsl.ts";
import { QUANT_SETTINGS, quantModel } from "../support/quant.ts";

describe("the quantised attention kernels", () => {
  it("are one streaming kernel each, not a decomposition", () => {
    const ops = compileJs(compileSource(quantModel(QUANT_SETTINGS.slice(0, 1)))).manifest.kernels.map((k) => k.op);
    expect(ops.filter((op) => op.includes("flash"))).toEqual(["qflash_diffattn", "qflash_diffattn", "qflash_attention"]);
  });

  for (const [n, k] of [[37, 53], [40, 21]])
    it(`agree with the interpreter in every setting at N = ${n}, K = ${k}`, async () => {
      const graph = compileSource(quantModel(QUANT_SETTINGS));
      const dims = new Map([["N", n], ["K", k]]);
      for (const backend of BACKENDS) await runAndCompare(backend, graph, randomInputs(graph, dims, 5 * n + k), new Map(), dims);
    });

  it("differ from the unquantised kernels (the quantisation is not skipped)", () => {
    const dims = new Map([["N", 40], ["K", 21]]);
    const quantised = compileSource(quantModel(['quant = "logits", bits = 4']));
    const plain = compileSource(quantModel(['quant = "none"']));
    const inputs = randomInputs(quantised, dims, 1);
    const [y, y0] = [quantised, plain].map((g) => evaluate(g, inputs, new Map(), { dims }).get("a0")!.data);
    expect(y.some((x, i) => Math.abs(x - y0[i]) > 1e-3)).toBe(true);
  });
});
