// What the kernel tests share: small graphs whose kernels are snapshotted in every language,
// the dtype chains that exercise every rounding and conversion, and a kernel rendered to JS
// as a function to run.
import type { Kernel } from "../../backends/common/kernel/ir.ts";
import { renderHelpers, renderKernel } from "../../backends/common/kernel/render.ts";
import { JS_PRELUDE, jsLanguage } from "../../backends/js/language.ts";
import type { Graph } from "../../compiler/ir/graph.ts";
import { parseGraph } from "../../compiler/ir/parse.ts";
import { fuseElementwise } from "../../compiler/passes/fuse-elementwise.ts";

/**
 * Four streaming attention kernels over dims N (queries) and K (keys): diff and standard,
 * causal and not, GQA (kv groups: 1 for a and b, 2 for c and d), the norm epilogue, key blocks
 * of 5, 7 and 64, so that at N > 16 query tiles repeat and keys span several blocks.
 */
export const STREAMING_ATTENTION = `model M { dim N, K
  input q: f32[N, 16]
  input k: f32[K, 8]
  input v: f32[K, 8]
  input lam: f32[N, 2]
  input w: f32[8]
  output a = flash_diffattn(q, k, v, lam, heads = 2, kv_heads = 1, causal = true)
  output b = flash_diffattn(q, k, v, 0.4, w, heads = 2, kv_heads = 1, pairing = "halves", block = 7)
  output c = flash_attention(q, k, v, heads = 4, kv_heads = 2, causal = true, block = 5)
  output d = flash_attention(q, k, v, heads = 4, kv_heads = 2, block = 64) }`;

/** y = silu(x * w), w broadcast along the rows: one fused elementwise kernel. */
export const siluGraph = (): Graph =>
  fuseElementwise(
    parseGraph(`graph g [N] {
      %0 = input {name = "x"} : f32[N, 4]
      %1 = input {name = "w"} : f32[4]
      %2 = mul(%0, %1) : f32[N, 4]
      %3 = silu(%2) : f32[N, 4]
      output "y" = %3
    }`),
  );

/** y = mean(x * x) over each row: one reduction with a fused prologue. */
export const meanSquareGraph = (): Graph =>
  fuseElementwise(
    parseGraph(`graph g [N] {
      %0 = input {name = "x"} : f32[N, 8]
      %1 = mul(%0, %0) : f32[N, 8]
      %2 = mean(%1) {axes = [-1], keepdims = true} : f32[N, 1]
      output "y" = %2
    }`),
  );

/** Chains, prologues and epilogues over every dtype: every rounding and conversion a backend makes. */
export const DTYPE_CHAINS = `model M(A, B) { dim N
  input x: f32[N, A]
  input y: f32[A]
  input w: f32[A, B]
  output h = cast(exp(cast(x, f16) * cast(y, f16)) + cast(x, f16), f32) * 3
  output b = cast(cast(x, bf16) * cast(y, bf16) - cast(y, bf16), f32)
  output i = cast(cast(x * 100, i32) * 65537 * 32769, f32) + cast(cast(y * 7, i32) / 2, f32)
  output j = cast(cast(x * 300, i8) * cast(y * 5, i8), f32) + cast(cast(x * 100, i8) / cast(y * 5, i8), f32)
  output u = cast(cast(x * 300, u8) * cast(y * 50, u8) - cast(x * 10, u8), f32)
  output k = cast(x * 300, u8) * 3 > cast(y * 300, u8) * 5
  output q = cast((x < 0) + (y < 0), f32) + cast((x < 0) - (y < 0), f32) * 2
  output c = where(x > y, x * y, -x) + cast((x < 0) == (y < 0), f32)
  output s = sum(cast(x, f16) * cast(y, f16), axis = -1)
  output m = max(cast(x * 100, i32) * 65537, axis = 0)
  output e = (cast(x * 100, i32) @ cast(w * 100, i32)) * 65537 + 3
  output f = cast(exp(cast(x, bf16) @ cast(w, bf16)), f32) * 3
}`;

/** A kernel rendered through the JS language table, as a function of its buffers, dims and error record. */
export function jsKernelFunction(k: Kernel): (...args: unknown[]) => void {
  const { source, helpers } = renderKernel(k, jsLanguage);
  return new Function([JS_PRELUDE, ...renderHelpers(helpers, jsLanguage), source, `return ${k.name};`].join("\n"))() as (...args: unknown[]) => void;
}
