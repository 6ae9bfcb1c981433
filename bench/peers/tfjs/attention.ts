// attention and diffattn the way a tfjs user writes them: heads split by reshape/transpose to
// [.., S, N, d], one batched tf.matMul(q, k, false, true) for all (sub)heads, the scale and a
// causal mask built for the concrete N and M, tf.softmax, then p1 - λ p2 and a matMul with v.
import * as tf from "@tensorflow/tfjs-core";
import { broadcastShapes } from "../../../compiler/ir/types.ts";
import { causalMask, headPlan, vIsPerHead } from "../heads.ts";
import type { TfjsRule } from "./kernel.ts";

function swap(rank: number, a: number, b: number): number[] {
  const perm = [...Array(rank).keys()];
  [perm[rank + a], perm[rank + b]] = [perm[rank + b], perm[rank + a]];
  return perm;
}

/** [..., R, S * w] as [..., S, R, w]. */
function splitHeads(x: tf.Tensor, shape: number[], subheads: number): tf.Tensor {
  const viewed = [...shape.slice(0, -1), subheads, shape[shape.length - 1] / subheads];
  return tf.transpose(tf.reshape(x, viewed), swap(viewed.length, -3, -2));
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
    const qHeads = splitHeads(q, qType.shape, plan.maps * plan.heads); // [.., S, N, d]
    const kAll = splitHeads(k, kType.shape, plan.maps * plan.kvHeads); // [.., Skv, M, d]
    const kHeads = kSubhead ? tf.gather(kAll, kSubhead, kAll.rank - 3) : kAll;
    let scores = tf.mul(tf.matMul(qHeads, kHeads, false, true), plan.scale); // [.., S, N, M]
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
    const vAll = splitHeads(v, vType.shape, plan.vSubheads); // [.., Sv, M, w]
    const vHeads = vParts ? tf.concat(vParts.map((part) => tf.gather(vAll, part, vAll.rank - 3)), -1) : vAll;
    const heads = tf.matMul(probs, vHeads); // [.., H, N, dv]
    return tf.transpose(heads, swap(heads.rank, -3, -2));
  };
};

export const attentionRules: Record<string, TfjsRule> = {
  attention: attend("attention"),
  diffattn: attend("diffattn"),
};
