// The quantised attention kernels (qflash_attention, qflash_diffattn) agree with the
// interpreter's statement of them (compiler/ir/ops/attention-quant.ts) in every target, over
// several query tiles and key blocks, causal with K > N and K < N, GQA, both pairings, λ per
// row and head, and the whole epilogue. The kernels compute in float64 like the interpreter, so
// every level is the interpreter's unless a value lies within ~1e-13 of a rounding tie; the
// flash tolerance applies.
import { describe, expect, it } from "vitest";
import { randomInputs } from "../../runtime/init.ts";
import { BACKENDS, runAndCompare } from "../harness/harness.ts";
import { compileJs } from "../../backends/js/index.ts";
import { evaluate } from "../../runtime/interpreter/index.ts";
import { compileSource } from "../support/dsl.ts";

/** The settings every kernel is checked with: each target and granularity, the skip rule, V's levels. */
export const QUANT_SETTINGS = [
  'quant = "logits", bits = 4',
  'quant = "logits", bits = 6, granularity = "block"',
  'quant = "probs", bits = 4',
  'quant = "probs", bits = 8, granularity = "block", v_bits = 8',
  'quant = "logits", bits = 8, threshold = 0.02',
  'quant = "probs", bits = 6, granularity = "block", threshold = 0.01, v_bits = 4',
  'quant = "none", threshold = 0.05',
];

/** Diff and standard attention with one quantisation setting, on inputs scaled so that some rows are peaked. */
export const quantSource = (setting: string) => `model M { dim N, K
  input q: f32[N, 32]
  input k: f32[K, 16]
  input v: f32[K, 16]
  input lam: f32[N, 4]
  input w: f32[8]
  output a = qflash_diffattn(q * 3, k, v, lam, w, heads = 4, kv_heads = 2, pairing = "halves", causal = true, norm_eps = 0.3, out_scale = 0.7, block = 9, ${setting})
  output b = qflash_diffattn(q, k * 2, v, 0.4, heads = 2, kv_heads = 1, block = 16, ${setting})
  output c = qflash_attention(q, k, v, heads = 4, kv_heads = 2, causal = true, block = 5, ${setting}) }`;

describe("the quantised attention kernels", () => {
  it("are one streaming kernel each, not a decomposition", () => {
    expect(compileJs(compileSource(quantSource(QUANT_SETTINGS[0]))).manifest.kernels.map((k) => k.op).filter((op) => op.includes("flash"))).toEqual(["qflash_diffattn", "qflash_diffattn", "qflash_attention"]);
  });

  for (const setting of QUANT_SETTINGS)
    for (const [n, k] of [[37, 53], [40, 21]])
      it(`agree with the interpreter with ${setting} at N = ${n}, K = ${k}`, async () => {
        const graph = compileSource(quantSource(setting));
        const dims = new Map([["N", n], ["K", k]]);
        for (const backend of BACKENDS) await runAndCompare(backend, graph, randomInputs(graph, dims, 5 * n + k), new Map(), dims);
      });

  it("differ from the unquantised kernels (the quantisation is not skipped)", () => {
    const dims = new Map([["N", 40], ["K", 21]]);
    const quantised = compileSource(quantSource('quant = "logits", bits = 4'));
    const plain = compileSource(quantSource('quant = "none"'));
    const inputs = randomInputs(quantised, dims, 1);
    const [y, y0] = [quantised, plain].map((g) => evaluate(g, inputs, new Map(), { dims }).get("a")!.data);
    expect(y.some((x, i) => Math.abs(x - y0[i]) > 1e-3)).toBe(true);
  });
});
