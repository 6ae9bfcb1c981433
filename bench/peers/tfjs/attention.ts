// attention and diffattn the way a tfjs user writes them: heads split by reshape/transpose to
// [.., S, N, d] and [.., S, d, M], q k^T per (sub)head, the scale and a causal mask built for
// the concrete N and M, tf.softmax, then p1 - λ p2 and its product with v per head.
import * as tf from "@tensorflow/tfjs-core";
import { broadcastShapes, numel } from "../../../compiler/ir/types.ts";
import { causalMask, headPlan, vIsPerHead } from "../heads.ts";
import type { TfjsRule } from "./kernel.ts";

function swap(rank: number, a: number, b: number): number[] {
  const perm = [...Array(rank).keys()];
  [perm[rank + a], perm[rank + b]] = [perm[rank + b], perm[rank + a]];
  return perm;
}

/** [..., R, S * w] viewed as S subheads, with `perm` applied to [..., R, S, w]. */
function splitHeads(x: tf.Tensor, shape: number[], subheads: number, perm: (rank: number) => number[]): tf.Tensor {
  const viewed = [...shape.slice(0, -1), subheads, shape[shape.length - 1] / subheads];
  return tf.transpose(tf.reshape(x, viewed), perm(viewed.length));
}

/**
 * a @ b for [..., n, k] @ [..., k, m], one 2-D matMul per head. On tfjs-wasm 4.22 a batched
 * matMul of 16 heads of 1024x64 @ 64x1024 measured 4-5x slower than 16 2-D ones, and
 * transposeB = true 10x slower than a transposed operand; the cpu backend does not care.
 * Operands whose batch dims differ (broadcasting) take tf.matMul's batched path.
 */
function matMulPerHead(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  const batch = a.shape.slice(0, -2);
  if (batch.join() !== b.shape.slice(0, -2).join()) return tf.matMul(a, b);
  const [n, k] = a.shape.slice(-2);
  const m = b.shape[b.rank - 1];
  const heads = numel(batch);
  const lhs = tf.unstack(tf.reshape(a, [heads, n, k]));
  const rhs = tf.unstack(tf.reshape(b, [heads, k, m]));
  return tf.reshape(tf.stack(lhs.map((x, h) => tf.matMul(x, rhs[h]))), [...batch, n, m]);
}

/** λ broadcasting to [..., N, H], rearranged to broadcast against maps [..., H, N, M]. */
function lambdaPerHead(lambda: tf.Tensor, shape: number[]): tf.Tensor {
  if (shape.length === 0) return lambda;
  const padded = shape.length === 1 ? [1, ...shape] : shape;
  const transposed = tf.transpose(tf.reshape(lambda, padded), swap(padded.length, -2, -1));
  return tf.expandDims(transposed, -1);
}

const attend = (op: "attention" | "diffattn"): TfjsRule => (cx) => {
  const [qType, kType, vType, lambdaType] = cx.operands;
  const plan = headPlan(op, cx.attrs, qType.shape[qType.shape.length - 1], vType.shape[vType.shape.length - 1]);
  const n = qType.shape[qType.shape.length - 2];
  const m = kType.shape[kType.shape.length - 2];
  const kSubhead = plan.kSubhead && cx.keep(tf.tensor1d(plan.kSubhead, "int32"));
  const causal = plan.causal ? causalMask(n, m) : undefined;
  const mask = causal && cx.keep(tf.tensor2d(causal.mask, [n, m]));
  const sees = causal && causal.blindRows.length > 0 ? cx.keep(tf.tensor2d(Array.from({ length: n }, (_, i) => !causal.blindRows.includes(i)), [n, 1], "bool")) : undefined;
  const vParts = vIsPerHead(plan) ? undefined : plan.vParts.map((part) => cx.keep(tf.tensor1d(part, "int32")));
  const batch = broadcastShapes(qType.shape.slice(0, -2), kType.shape.slice(0, -2)) as number[];
  const [mapShape, mapAxis] = plan.mapOrder === "stripe" ? [[plan.heads, 2], -3] : [[2, plan.heads], -4];

  return ([q, k, v, lambda]) => {
    const qHeads = splitHeads(q, qType.shape, plan.maps * plan.heads, (r) => swap(r, -3, -2)); // [.., S, N, d]
    const kAll = splitHeads(k, kType.shape, plan.maps * plan.kvHeads, (r) => [...Array(r - 3).keys(), r - 2, r - 1, r - 3]); // [.., Skv, d, M]
    const kHeads = kSubhead ? tf.gather(kAll, kSubhead, kAll.rank - 3) : kAll;
    let scores = tf.mul(matMulPerHead(qHeads, kHeads), plan.scale); // [.., S, N, M]
    if (mask) scores = tf.add(scores, mask);
    let probs = tf.softmax(scores);
    // A query that sees no key gives 0, not softmax's NaN.
    if (sees) probs = tf.where(sees, probs, tf.zerosLike(probs));
    if (plan.maps === 2) {
      const maps = tf.reshape(probs, [...batch, ...mapShape, n, m]);
      const axis = maps.rank + mapAxis;
      const [p1, p2] = tf.unstack(maps, axis);
      probs = tf.sub(p1, tf.mul(lambdaPerHead(lambda, lambdaType.shape), p2)); // [.., H, N, M]
    }
    const vAll = splitHeads(v, vType.shape, plan.vSubheads, (r) => swap(r, -3, -2)); // [.., Sv, M, w]
    const vHeads = vParts ? tf.concat(vParts.map((part) => tf.gather(vAll, part, vAll.rank - 3)), -1) : vAll;
    const heads = matMulPerHead(probs, vHeads); // [.., H, N, dv]
    return tf.transpose(heads, swap(heads.rank, -3, -2));
  };
};

export const attentionRules: Record<string, TfjsRule> = {
  attention: attend("attention"),
  diffattn: attend("diffattn"),
};
