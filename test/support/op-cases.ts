// One case per op family, written in the DSL, for every backend's op tests
// (test/backends/ops.test.ts runs each on random shapes; slower backends run one instance).
import type { Graph } from "../../compiler/ir/graph.ts";
import type { TensorMap } from "../../runtime/adapters/adapter.ts";
import type { OpFamily } from "../harness/tolerance.ts";
import { compileSource } from "./dsl.ts";
import { seededInputs } from "./random-graph.ts";
import { testWeights } from "./weights.ts";

export interface OpCase {
  name: string;
  /**
   * Model parameters A, B, C are drawn from 1..5 by the property; N from 1..6 and K (when the
   * model has it) from N..N+3, unless `rows` and `keys` give other ranges.
   */
  source: string;
  ops: string[];
  /**
   * The family of every output on a backend with exactSingleOps (tolerance.ts): "exact", bit for
   * bit, unless the case is about streaming kernels ("flash") or ops that backends may run as
   * their decomposition ("decomposed").
   */
  family?: OpFamily;
  rows?: [number, number];
  keys?: [number, number];
}

export const CASES: OpCase[] = [
  { name: "binary elementwise with broadcasting", ops: ["add", "sub", "mul", "div", "pow", "maximum", "minimum"], source: `model M(A, B, C) { dim N
    input x: f32[N, A, 1]
    input y: f32[A, C]
    output s = x + y
    output d = x - y
    output p = x * y
    output q = x / (abs(y) + 1)
    output w = pow(abs(x) + 1, y)
    output mx = max(x, y)
    output mn = min(x, y) }` },
  { name: "unary elementwise", ops: ["neg", "exp", "log", "sqrt", "rsqrt", "abs", "tanh", "cos", "sin", "sigmoid", "relu", "gelu", "gelu_tanh", "silu"], source: `model M(A, B, C) { dim N
    input x: f32[N, A]
    output a = -x
    output b = exp(x) + log(abs(x) + 1) + sqrt(abs(x)) + rsqrt(abs(x) + 1)
    output c = tanh(x) * cos(x) * sin(x)
    output d = sigmoid(x) + relu(x) + gelu(x) + gelu_tanh(x) + silu(x) }` },
  { name: "comparisons, where and casts", ops: ["eq", "ne", "lt", "le", "gt", "ge", "where", "cast"], source: `model M(A, B, C) { dim N
    input x: f32[N, A]
    input y: f32[A]
    output lt = x < y
    output m = where(x >= y, x, y * 2)
    output e = cast(x == x, f32) + cast(x != y, f32) + cast(x <= y, f32) + cast(x > y, f32)
    output i = cast(x * 100, i32)
    output j = cast(x * 300, i8)
    output u = cast(x * 300, u8)
    output h = cast(x, f16)
    output bh = cast(x, bf16)
    output back = cast(cast(x, bf16), f32) }` },
  { name: "integer arithmetic wraps and truncates", ops: ["div", "mul"], source: `model M(A, B, C) { dim N
    input x: i32[N, A]
    input y: i32[A]
    output q = x / y
    output p = x * y * 1000000
    output big = (x + 3) * 2147483647 * 65537
    output pw = pow(x + 7, 23)
    output mm = cast(x, i32) @ reshape(y * 123456789, [A, 1])
    output s = x - y }` },
  { name: "16-bit float arithmetic", ops: ["add", "exp", "matmul", "softmax"], source: `model M(A, B, C) { dim N
    input x: f16[N, A]
    input y: bf16[A, B]
    output e = exp(x) + x
    output m = cast(x, bf16) @ y
    output s = softmax(y, axis = 0) }` },
  { name: "reductions over axes", ops: ["sum", "mean", "max", "min"], source: `model M(A, B, C) { dim N
    input x: f32[N, A, B]
    output s = sum(x)
    output m = mean(x, axis = -1)
    output mx = max(x, axes = [0, 2], keepdims = true)
    output mn = min(x, axis = 1) }` },
  { name: "softmax on every axis", ops: ["softmax"], source: `model M(A, B, C) { dim N
    input x: f32[N, A, B]
    output s0 = softmax(x, axis = 0)
    output s1 = softmax(x, axis = 1)
    output s2 = softmax(x) }` },
  { name: "shape ops", ops: ["reshape", "transpose", "slice", "concat", "broadcast", "iota"], source: `model M(A, B, C) { dim N
    input x: f32[N, A, B]
    output r = reshape(x, [N, A * B])
    output t = transpose(x, [2, 0, 1])
    output t2 = transpose(x)
    output s = slice(x, axis = 1, start = -1, end = -100, step = -1)
    output c = concat(x, x * 2, x, axis = 2)
    output b = broadcast(slice(x, axis = 1, start = 0, end = 1), [N, C, B])
    output i = iota([N, B], axis = 0) }` },
  { name: "gather", ops: ["gather"], source: `model M(A, B, C) { dim N
    input table: f32[A, B]
    input idx: i32[N]
    output g = table[idx] }` },
  { name: "matmul ranks and batch broadcasting", ops: ["matmul"], source: `model M(A, B, C) { dim N
    input a: f32[N, A, B]
    input b: f32[B, C]
    input c: f32[1, C, A]
    input v: f32[B]
    output m = a @ b
    output bb = (a @ b) @ c
    output mv = a @ v
    output vm = v @ b
    output vv = v @ v }` },
  { name: "norms and rope", ops: ["rmsnorm", "layernorm", "rope"], family: "decomposed", source: `model M(A, B, C) { dim N
    input x: f32[N, 4 * A]
    input w: f32[4 * A]
    input pos: i32[N]
    output r = rmsnorm(x, w, eps = 1e-5)
    output l = layernorm(x, w, w * 0.5)
    output ri = rope(x, pos, theta = 10000.0, head_dim = 4)
    output rh = rope(x, pos, head_dim = 2 * A, interleaved = false) }` },
  { name: "attention with GQA and causal masking", ops: ["attention"], family: "decomposed", source: `model M(A, B, C) { dim N, K
    input q: f32[N, 4 * B]
    input k: f32[K, 2 * B]
    input v: f32[K, 2 * C]
    output a = attention(q, k, v, heads = 4, kv_heads = 2, causal = true)
    output b = attention(q, k, v, heads = 4, kv_heads = 2, scale = 0.3) }` },
  { name: "diffattn, stripe and halves, GQA, λ of every shape", ops: ["diffattn"], family: "decomposed", source: `model M(A, B, C) { dim N, K
    input q: f32[N, 8 * B]
    input k: f32[K, 4 * B]
    input v: f32[K, 4 * B]
    input lam: f32[N, 4]
    input lh: f32[4]
    output s = diffattn(q, k, v, lam, heads = 4, kv_heads = 2, causal = true)
    output h = diffattn(q, k, v, lh, heads = 4, kv_heads = 2, pairing = "halves")
    output c = diffattn(q, k, v, 0.5, heads = 2, kv_heads = 1, causal = true, pairing = "halves") }` },
  { name: "batched diffattn", ops: ["diffattn"], family: "decomposed", source: `model M(A, B, C) { dim N
    input q: f32[A, N, 4 * B]
    input k: f32[A, N, 4 * B]
    input v: f32[A, N, 4 * B]
    output s = diffattn(q, k, v, 0.3, heads = 2, causal = true) }` },
  { name: "flash_attention: GQA, odd head widths, causal with K >= N and K < N, blocks of 1, 3 and 64", ops: ["flash_attention"], family: "flash", source: `model M(A, B, C) { dim N, K
    input q: f32[N, 4 * B]
    input k: f32[K, 2 * B]
    input v: f32[K, 2 * C]
    input vo: f32[K, C]
    input ks: f32[A, 2 * B]
    input vs: f32[A, 2 * C]
    input qb: f32[2, N, 4 * B]
    output a = flash_attention(q, k, v, heads = 4, kv_heads = 2, causal = true, block = 1)
    output b = flash_attention(q, k, v, heads = 4, kv_heads = 2, scale = 0.3, block = 3)
    output c = flash_attention(q, ks, vs, heads = 4, kv_heads = 2, causal = true, block = 3)
    output d = flash_attention(q, ks, vs, heads = 2, kv_heads = 1, causal = true)
    output e = flash_attention(q, k, vo, heads = 2, kv_heads = 1, block = 3)
    output f = flash_attention(qb, k, v, heads = 4, kv_heads = 2, causal = true, block = 64) }` },
  { name: "flash_diffattn: stripe and halves, GQA, λ scalar, [H] and [N, H], causal with K >= N and K < N, blocks of 1, 3 and 64", ops: ["flash_diffattn"], family: "flash", source: `model M(A, B, C) { dim N, K
    input q: f32[N, 8 * B]
    input k: f32[K, 4 * B]
    input v: f32[K, 4 * B]
    input ks: f32[A, 4 * B]
    input vs: f32[A, 4 * B]
    input lam: f32[N, 4]
    input lh: f32[4]
    output s = flash_diffattn(q, k, v, lam, heads = 4, kv_heads = 2, causal = true, block = 1)
    output h = flash_diffattn(q, k, v, lh, heads = 4, kv_heads = 2, pairing = "halves", block = 3)
    output c = flash_diffattn(q, ks, vs, 0.5, heads = 2, kv_heads = 1, causal = true, pairing = "halves", block = 3)
    output m = flash_diffattn(q, ks, vs, lam, heads = 4, kv_heads = 2, causal = true, scale = 0.4)
    output t = flash_diffattn(q, k, v, lh, heads = 4, kv_heads = 2, causal = true, pairing = "stripe", block = 64) }` },
  { name: "flash_diffattn epilogue: per-head RMSNorm and scale, batched, λ per batch entry, f16", ops: ["flash_diffattn"], family: "flash", source: `model M(A, B, C) { dim N, K
    input q: f32[A, N, 4 * B]
    input k: f32[A, K, 4 * B]
    input v: f32[1, K, 4 * B]
    input lam: f32[A, N, 2]
    input lb: f32[A, 1, 1]
    input w: f32[2 * B]
    output n = flash_diffattn(q, k, v, lam, w, heads = 2, causal = true, norm_eps = 0.001, out_scale = 0.8, block = 3)
    output o = flash_diffattn(q, k, v, 0.3, w, heads = 2, pairing = "halves", out_scale = 0.5)
    output p = flash_diffattn(q, k, v, lb, heads = 1, causal = true, out_scale = -2.0, block = 1)
    output f = flash_diffattn(cast(q, f16), cast(k, f16), cast(v, f16), lam, cast(w, f16), heads = 2, causal = true) }` },
  // The cases above keep N <= 6: one 16-row query tile of the streaming kernels. These span
  // several tiles, the last one partial, with K below, at and above N (causal offset K - N of
  // both signs) and key blocks that do not divide K.
  { name: "attention and diffattn over several 16-row query tiles: N 17..40, K 1..48", ops: ["attention", "diffattn"], family: "decomposed", rows: [17, 40], keys: [1, 48], source: `model M(A, B, C) { dim N, K
    input q: f32[N, 8 * B]
    input k: f32[K, 4 * B]
    input v: f32[K, 4 * B]
    input lam: f32[N, 4]
    output a = attention(q, k, v, heads = 8, kv_heads = 4, causal = true)
    output b = attention(q, k, v, heads = 2, kv_heads = 1, scale = 0.3)
    output s = diffattn(q, k, v, lam, heads = 4, kv_heads = 2, causal = true)
    output h = diffattn(q, k, v, 0.6, heads = 2, kv_heads = 1, causal = true, pairing = "halves") }` },
  { name: "flash_attention and flash_diffattn over several 16-row query tiles: N 17..40, K 1..48, blocks of 5, 16 and 64, with the epilogue", ops: ["flash_attention", "flash_diffattn"], family: "flash", rows: [17, 40], keys: [1, 48], source: `model M(A, B, C) { dim N, K
    input q: f32[N, 8 * B]
    input k: f32[K, 4 * B]
    input v: f32[K, 4 * B]
    input lam: f32[N, 4]
    input w: f32[2 * B]
    output a = flash_attention(q, k, v, heads = 8, kv_heads = 4, causal = true, block = 5)
    output b = flash_attention(q, k, v, heads = 2, kv_heads = 1, scale = 0.3, block = 16)
    output s = flash_diffattn(q, k, v, lam, heads = 4, kv_heads = 2, causal = true, block = 5)
    output h = flash_diffattn(q, k, v, 0.6, heads = 2, kv_heads = 1, causal = true, pairing = "halves")
    output n = flash_diffattn(q, k, v, lam, w, heads = 4, kv_heads = 2, causal = true, norm_eps = 0.01, out_scale = 0.7, block = 16) }` },
  // The quantised attention (compiler/ir/ops/attention-quant.ts): each target and granularity at
  // 2 to 8 bits, the skip rule, V's levels, batched, keys over several blocks, f16 operands.
  { name: "qflash_attention and qflash_diffattn: logits and probs, rows and blocks, skipping, V's levels", ops: ["qflash_attention", "qflash_diffattn"], family: "flash", keys: [1, 24], source: `model M(A, B, C) { dim N, K
    input q: f32[A, N, 4 * B]
    input k: f32[K, 4 * B]
    input v: f32[K, 4 * B]
    input kg: f32[K, 2 * B]
    input vg: f32[K, 2 * C]
    input lam: f32[A, N, 2]
    input w: f32[2 * B]
    output a = qflash_attention(q * 2, kg, vg, heads = 4, kv_heads = 2, causal = true, block = 3, quant = "logits", bits = 4)
    output b = qflash_attention(q, k, v, heads = 2, block = 4, quant = "probs", bits = 2, granularity = "block", threshold = 0.05, v_bits = 8)
    output c = qflash_diffattn(q * 3, k, v, lam, w, heads = 2, causal = true, block = 5, out_scale = 0.8, quant = "logits", bits = 6, granularity = "block", v_bits = 4)
    output d = qflash_diffattn(q, k, v, 0.4, heads = 1, pairing = "halves", block = 2, quant = "probs", bits = 8, threshold = 0.1)
    output e = qflash_diffattn(cast(q, f16), cast(k, f16), cast(v, f16), lam, heads = 2, block = 3, quant = "none", threshold = 0.08) }` },
  { name: "quantize and dequantize", ops: ["quantize", "dequantize"], source: `model M(A, B, C) { dim N
    input x: f32[N, A]
    input scale: f32[N, 1]
    output q = quantize(x * 50, abs(scale) + 0.1)
    output u = quantize(x * 50, 0.5, dtype = u8, zero_point = 128)
    output d = dequantize(quantize(x, 0.02), 0.02) }` },
];

/** The sizes of one instance of a case: model parameters A, B, C, rows N (keys K or N + extra), and a seed. */
export interface OpCaseSizes {
  A: number;
  B: number;
  C: number;
  N: number;
  extra: number;
  K: number;
  seed: number;
}

/** A case's graph at these sizes, with seeded inputs (index inputs inside their table) and weights. */
export function opCaseInstance(c: OpCase, { A, B, C, N, extra, K, seed }: OpCaseSizes): { graph: Graph; dims: Map<string, number>; inputs: TensorMap; weights: TensorMap } {
  const graph = compileSource(c.source, { set: new Map([["A", A], ["B", B], ["C", C]]) });
  const dims = new Map(graph.dims.map((d) => [d, d === "N" ? N : c.keys ? K : N + extra]));
  const inputs = seededInputs(graph, dims, seed);
  // Index inputs must stay inside the table they index.
  for (const [name, t] of inputs) if (t.dtype === "i32" && name === "idx") t.data.forEach((x, i) => (t.data[i] = Math.abs(Math.round(x * 100)) % A));
  return { graph, dims, inputs, weights: testWeights(graph, seed) };
}
