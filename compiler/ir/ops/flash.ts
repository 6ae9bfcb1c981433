// The fused attention ops that the attention and dual-softmax fusion passes produce. Each has
// exactly the math of the op it replaces (flash_diffattn also takes diffattn's usual epilogue),
// as one node that backends lower to a streaming kernel (FlashAttention, Dao et al. 2022):
// key blocks of `block` keys, online-softmax states, memory O(N·d) instead of O(N·M).
// `block` is a schedule choice only; no result depends on it.
import type { Attrs } from "../graph.ts";
import { type AttrSpec, getOp, type OpDef, OpError, registerOp } from "../registry.ts";
import { formatType, type TensorType } from "../types.ts";
import type { HostTensor } from "../tensor.ts";
import { type Arith, NUMBERS } from "./attention-geometry.ts";
import { attentionQuant, checkQuant, QUANT_ATTRS } from "./attention-quant.ts";
import { attend } from "./attention.ts";
import { Lowering } from "./lowering.ts";
import "./nn.ts";

const attention = getOp("attention")!;
const diffattn = getOp("diffattn")!;

const block: AttrSpec = { type: "int", default: 64, doc: "keys per block of the streaming kernel; the result does not depend on it" };

/** Runs `base`'s shape rule; its errors name the op the user (or the pass) wrote. */
function asOp<T>(op: string, base: OpDef, rule: () => T): T {
  try {
    return rule();
  } catch (e) {
    if (e instanceof OpError && e.message.startsWith(`${base.name}:`)) throw new OpError(op + e.message.slice(base.name.length));
    throw e;
  }
}

function checkBlock(op: string, a: Attrs): void {
  if ((a.block as number) < 1) throw new OpError(`${op}: block must be a positive number of keys, got ${a.block}`);
}

/** The attributes of the unfused op: everything but the kernel's block and the epilogue. */
function baseAttrs(base: OpDef, a: Attrs): Attrs {
  return Object.fromEntries(Object.keys(base.attrs).map((key) => [key, a[key]]));
}

registerOp({
  name: "flash_attention",
  doc:
    "attention computed by a streaming kernel: the same operands, attributes and result (q [..., N, H*dk], k [..., M, Hkv*dk], v [..., M, Hkv*dv] -> [..., N, H, dv]), " +
    "with key blocks of `block` keys and an online softmax instead of an N×M map; block does not change the result.",
  operands: ["q", "k", "v"],
  attrs: { ...attention.attrs, block },
  pattern: "opaque",
  infer: (types, a) => {
    checkBlock("flash_attention", a);
    return asOp("flash_attention", attention, () => attention.infer(types, a));
  },
  interpret: (args, a, out) => attention.interpret(args, a, out),
  decompose: (b, operands, a) => b.add("attention", operands, baseAttrs(attention, a)),
});

registerOp({
  name: "flash_diffattn",
  doc:
    "diffattn computed by a streaming kernel with two online softmaxes, then its epilogue. y = diffattn(q, k, v, lambda) [..., N, H, 2d] (same operands, " +
    "attributes, layouts and λ broadcasting; a query that sees no key gives 0); with norm_weight [2d], y = y / sqrt(mean(y^2) + norm_eps) * norm_weight " +
    "over each head's 2d outputs (the official code's subln); the result is y * out_scale (its 1 - lambda_init), computed in float64 and rounded once. " +
    "block is the kernel's key-block size and does not change the result.",
  operands: ["q", "k", "v", "lambda", "norm_weight?"],
  attrs: {
    ...diffattn.attrs,
    norm_eps: { type: "float", default: 1e-5, doc: "the RMSNorm epsilon; unused without norm_weight" },
    out_scale: { type: "float", default: 1 },
    block,
  },
  pattern: "opaque",
  infer: (types, a) => {
    checkBlock("flash_diffattn", a);
    const [q, k, v, lambda, weight] = types;
    const out = asOp("flash_diffattn", diffattn, () => diffattn.infer([q, k, v, lambda], a));
    if (weight) checkNormWeight(q, out, weight);
    return out;
  },
  // diffattn's float64 result, then the epilogue in float64: one rounding, by the caller.
  interpret: (args, a, out) => withEpilogue("flash_diffattn", diffattn.interpret(args.slice(0, 4), a, out), args, a, out),
  decompose: (b, [q, k, v, lambda, weight], a) => {
    const L = new Lowering(b);
    const e = flashEpilogue("flash_diffattn", [q, k, v, lambda, weight], a);
    let y = b.add("diffattn", [q, k, v, lambda], baseAttrs(diffattn, a));
    if (e.normWeight) y = b.add("rmsnorm", [y, weight], { eps: e.normEps });
    if (e.outScale !== 1) y = L.op("mul", y, L.scalar(e.outScale, b.type(q).dtype));
    return y;
  },
});

/** The epilogue applied to a fused op's float64 attention result y, in place. */
function withEpilogue(op: string, y: Float64Array, args: HostTensor[], a: Attrs, out: { shape: number[] }): Float64Array {
  const e = flashEpilogue(op, args, a);
  if (!e.normWeight && e.outScale === 1) return y;
  const weight = args[4]?.data;
  const width = out.shape[out.shape.length - 1];
  for (let base = 0; base < y.length; base += width) {
    let sq = 0;
    if (e.normWeight) for (let c = 0; c < width; c++) sq += y[base + c] * y[base + c];
    const denom = normDenominator(NUMBERS, e, sq, width);
    for (let c = 0; c < width; c++) y[base + c] = epilogueOutput(NUMBERS, e, y[base + c], e.normWeight ? { denom, weight: weight![c] } : undefined);
  }
  return y;
}

/** The unfused op and the flash op of each quantised one. */
const QUANTISED: Record<string, { base: OpDef; flash: string }> = {
  qflash_attention: { base: attention, flash: "flash_attention" },
  qflash_diffattn: { base: diffattn, flash: "flash_diffattn" },
};

/** The flash op a fused attention op computes with (itself, or the one a qflash op quantises). */
function flashOpOf(op: string): string {
  return QUANTISED[op]?.flash ?? op;
}

/**
 * The quantised fused attention ops (the quantize-attention pass makes them): their flash op's
 * operands, attributes, result and epilogue, with logits or probability maps (and optionally V)
 * quantised inside the kernel as attention-quant.ts states. They have no decomposition: a
 * backend runs them with a kernel of its own or not at all.
 */
for (const [name, { base, flash }] of Object.entries(QUANTISED)) {
  const flashDef = getOp(flash)!;
  registerOp({
    name,
    doc:
      `${flash} with low-bit attention inside its kernel (Diff Transformer §3.8). Per (batch, query, head) row and map: quant = "logits" replaces each scaled logit s of the keys the query sees ` +
      `by clamp(rhe(s / step), -L, L) * step, L = 2^(bits-1) - 1, step = max|s| / L over the group (granularity "row": the row; "block": the row's keys in [b*block, (b+1)*block)), before the softmax; ` +
      "threshold t > 0 then skips a row's key block when every map's probability of every key in it is < t (it contributes 0, no renormalisation); " +
      `quant = "probs" replaces each map's probabilities p (p1 and p2 separately) by clamp(rhe(p / step), 0, U) * step, U = 2^bits - 1, step = max p / U over the group; ` +
      "v_bits b > 0 first replaces v by its levels per column over all keys (step = max|v| / (2^(b-1) - 1)). rhe rounds half to even; a group whose max is 0 or not finite is left as it is; " +
      "all in float64, then the epilogue as in " + flash + `. With granularity "block" or a threshold, block is part of the result.`,
    operands: flashDef.operands,
    attrs: { ...flashDef.attrs, ...QUANT_ATTRS },
    pattern: "opaque",
    infer: (types, a) => {
      checkQuant(name, a);
      return asOp(name, flashDef, () => flashDef.infer(types, a));
    },
    interpret: (args, a, out) => withEpilogue(flash, attend(base.name, args, a, out, attentionQuant(a)), args, a, out),
  });
}

/**
 * What follows the attention in a fused op, per head's dv outputs y: flash_diffattn's RMSNorm
 * (the official code's subln) when it has a norm weight, then its out_scale (1 - lambda_init).
 * flash_attention has none: no norm, scale 1.
 */
export interface FlashEpilogue {
  /** Whether the op has a norm weight [dv]: without one there is no RMSNorm at all. */
  normWeight: boolean;
  /** The RMSNorm's epsilon, added to mean(y^2); read only with a norm weight. */
  normEps: number;
  /** The final factor of every output; 1 leaves the outputs as they are. */
  outScale: number;
}

/** The epilogue of a fused attention node with these operands (types or tensors) and attributes. */
export function flashEpilogue(op: string, operands: unknown[], a: Attrs): FlashEpilogue {
  if (flashOpOf(op) !== "flash_diffattn") return { normWeight: false, normEps: 0, outScale: 1 };
  return { normWeight: operands[4] !== undefined, normEps: a.norm_eps as number, outScale: a.out_scale as number };
}

/** The RMSNorm's divisor from the sum of squares of a head's `width` outputs, in rmsnorm's order: mean, + eps, sqrt. */
export function normDenominator<T>(A: Arith<T>, e: FlashEpilogue, sumSquares: T, width: number): T {
  return A.sqrt(A.add(A.div(sumSquares, A.num(width)), A.num(e.normEps)));
}

/**
 * One output of the epilogue from the attention's y: y / denom * weight with the norm (`norm`
 * holds this row's divisor and the column's weight), then * out_scale, in this order so that a
 * backend rounds as the interpreter does.
 */
export function epilogueOutput<T>(A: Arith<T>, e: FlashEpilogue, y: T, norm?: { denom: T; weight: T }): T {
  const normed = e.normWeight ? A.mul(A.div(y, norm!.denom), norm!.weight) : y;
  return e.outScale === 1 ? normed : A.mul(normed, A.num(e.outScale));
}

/** The norm weight scales one head's outputs: shape [2d], q's dtype. */
function checkNormWeight(q: TensorType, out: TensorType, weight: TensorType): void {
  const width = out.shape[out.shape.length - 1];
  if (weight.shape.length !== 1 || weight.shape[0] !== width)
    throw new OpError(`flash_diffattn: norm_weight ${formatType(weight)} must have shape [${width}], the width 2d of one head's output (q ${formatType(q)})`);
  if (weight.dtype !== q.dtype) throw new OpError(`flash_diffattn: norm_weight ${formatType(weight)} and q ${formatType(q)} have different dtypes; insert a cast`);
}
