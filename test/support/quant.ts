// The quantised attention ops in the settings every backend's kernels are checked with.

/** Each target and granularity, the skip rule, V's levels, at 4, 6 and 8 bits. */
export const QUANT_SETTINGS = [
  'quant = "logits", bits = 4',
  'quant = "logits", bits = 6, granularity = "block"',
  'quant = "probs", bits = 4',
  'quant = "probs", bits = 8, granularity = "block", v_bits = 8',
  'quant = "logits", bits = 8, threshold = 0.02',
  'quant = "probs", bits = 6, granularity = "block", threshold = 0.01, v_bits = 4',
  'quant = "none", threshold = 0.05',
];

/**
 * A model with, per setting s, three quantised ops: diff attention with halves, GQA, λ per row
 * and head, the whole epilogue and causal (as), diff attention with stripe and scalar λ on
 * larger logits (bs), and standard attention with GQA and causal (cs). `rotate`: one op per
 * setting instead, a, b, c in turn (for a backend whose kernels cost seconds each to build).
 */
export function quantModel(settings: readonly string[], { rotate = false } = {}): string {
  const ops = [
    (s: string, i: number) => `output a${i} = qflash_diffattn(q * 3, k, v, lam, w, heads = 4, kv_heads = 2, pairing = "halves", causal = true, norm_eps = 0.3, out_scale = 0.7, block = 9, ${s})`,
    (s: string, i: number) => `output b${i} = qflash_diffattn(q, k * 2, v, 0.4, heads = 2, kv_heads = 1, block = 16, ${s})`,
    (s: string, i: number) => `output c${i} = qflash_attention(q, k, v, heads = 4, kv_heads = 2, causal = true, block = 5, ${s})`,
  ];
  const outputs = settings.flatMap((s, i) => (rotate ? [ops[i % 3](s, i)] : ops.map((op) => op(s, i))));
  return `model M { dim N, K
  input q: f32[N, 32]
  input k: f32[K, 16]
  input v: f32[K, 16]
  input lam: f32[N, 4]
  input w: f32[8]
  ${outputs.join("\n  ")} }`;
}
