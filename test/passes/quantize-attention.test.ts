// The quantize-attention pass: fused attention becomes its quantised form with --quant's
// attributes; the flag's mistakes are diagnostics; unfused attention is refused.
import { describe, expect, it } from "vitest";
import { Diagnostic } from "../../common/diagnostic.ts";
import { parseGraph } from "../../compiler/ir/parse.ts";
import { printGraph } from "../../compiler/ir/print.ts";
import { parsePipeline, runPipeline } from "../../compiler/passes/pipeline.ts";
import { DEFAULT_PIPELINE } from "../../compiler/passes/registry.ts";
import { parseQuantFlag, quantizeAttentionPass } from "../../compiler/passes/quantize-attention.ts";

const canonical = (text: string) => printGraph(parseGraph(text));

const FUSED = `graph G [N] {
  %0 = input {name = "q"} : f32[N, 8]
  %1 = input {name = "k"} : f32[N, 8]
  %2 = input {name = "v"} : f32[N, 8]
  %3 = const {value = 0.5, dtype = f32} : f32[]
  %4 = flash_diffattn(%0, %1, %2, %3) {heads = 2, kv_heads = 2, causal = true, scale = 0, pairing = "stripe", norm_eps = 0.00001, out_scale = 1, block = 64} : f32[N, 2, 4]
  %5 = flash_attention(%0, %1, %2) {heads = 2, kv_heads = 2, causal = false, scale = 0, block = 32} : f32[N, 2, 4]
  output "y" = %4
  output "z" = %5
}`;

describe("quantize-attention", () => {
  it("turns flash_diffattn and flash_attention into qflash_* with the flag's attributes, the rest as they were", () => {
    const after = quantizeAttentionPass.run(parseGraph(FUSED), { quant: parseQuantFlag("target=probs,bits=4,granularity=block,threshold=1e-3,v=8") });
    expect(printGraph(after)).toBe(
      canonical(`graph G [N] {
  %0 = input {name = "q"} : f32[N, 8]
  %1 = input {name = "k"} : f32[N, 8]
  %2 = input {name = "v"} : f32[N, 8]
  %3 = const {value = 0.5, dtype = f32} : f32[]
  %4 = qflash_diffattn(%0, %1, %2, %3) {heads = 2, kv_heads = 2, causal = true, scale = 0, pairing = "stripe", norm_eps = 0.00001, out_scale = 1, block = 64, quant = "probs", bits = 4, granularity = "block", threshold = 0.001, v_bits = 8} : f32[N, 2, 4]
  %5 = qflash_attention(%0, %1, %2) {heads = 2, kv_heads = 2, causal = false, scale = 0, block = 32, quant = "probs", bits = 4, granularity = "block", threshold = 0.001, v_bits = 8} : f32[N, 2, 4]
  output "y" = %4
  output "z" = %5
}`),
    );
  });

  it("without --quant quantises the logits to 8 bits per row, the paper's experiment; run again it takes the new setting", () => {
    const once = quantizeAttentionPass.run(parseGraph(FUSED));
    // The printer leaves attributes at their defaults out: bits 8, granularity row, no threshold, V as it is.
    expect(printGraph(once)).toContain('block = 32, quant = "logits"} : f32[N, 2, 4]');
    expect(printGraph(quantizeAttentionPass.run(once, { quant: parseQuantFlag("bits=6") }))).toContain('block = 32, quant = "logits", bits = 6} : f32[N, 2, 4]');
  });

  it("runs after the default pipeline as `default,quantize-attention`", () => {
    expect(parsePipeline("default,quantize-attention")).toEqual([...DEFAULT_PIPELINE, "quantize-attention"]);
  });

  it("refuses attention that is not fused, pointing at it", () => {
    const graph = parseGraph(`graph G [N] {
  %0 = input {name = "q"} : f32[N, 8]
  %1 = attention(%0, %0, %0) {heads = 2, kv_heads = 0, causal = false, scale = 0} : f32[N, 2, 4]
  output "y" = %1
}`);
    expect(() => runPipeline(graph, ["quantize-attention"], { log: () => {} })).toThrow(/this attention is not fused: run fuse-dual-softmax and fuse-attention before it/);
  });

  it.each([
    ["target=int4", "--quant: target must be one of none, logits, probs, got 'int4'"],
    ["bits=9", "--quant: bits must be 2 to 8, got 9"],
    ["bits=4.5", "--quant: bits must be an integer, got '4.5'"],
    ["v=1", "--quant: v must be 0 (V as it is) or 2 to 8, got 1"],
    ["threshold=2", "--quant: threshold must be in [0, 1), got 2"],
    ["granularity=col", "--quant: granularity must be one of row, block, got 'col'"],
    ["block=0", "--quant: block must be a positive number of keys, got 0"],
    ["scale=3", "--quant: expected KEY=VALUE with KEY one of target, bits, granularity, threshold, v, block, got 'scale=3'"],
  ])("rejects --quant %s with a diagnostic", (flag, message) => {
    let error: unknown;
    try {
      parseQuantFlag(flag);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(Diagnostic);
    expect((error as Error).message).toBe(message);
  });
});
