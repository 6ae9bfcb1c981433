// attention and diffattn the way a tfjs user writes them: per batch entry and head, 2-D column
// slices of q, k and v, q k^T with k transposed, the scale and a causal mask built for the
// concrete N and M, tf.softmax, then p1 - λ p2 and its product with v; heads concatenated.
// Nothing [.., S, N, M]-sized is stacked, split or transposed: on tfjs-wasm 4.22 the layer
// written with reshape/transpose to [S, N, d], unstack and stack measured 1.4x slower at
// N = 256 and 3x at N = 1024 (those copies of the score maps), a batched matMul 4-5x slower
// than 2-D ones, and transposeB = true 10x slower than a transposed operand.
import * as tf from "@tensorflow/tfjs-core";
import { broadcastShapes, numel } from "../../../compiler/ir/types.ts";
import { causalMask, headPlan } from "../heads.ts";
import type { TfjsRule } from "./kernel.ts";

/** x [..., R, W] broadcast to [...batch, R, W], as one 2-D [R, W] tensor per batch entry. */
function perBatch(x: tf.Tensor, batch: number[]): tf.Tensor2D[] {
  const [rows, width] = x.shape.slice(-2);
  const full = x.shape.slice(0, -2).join() === batch.join() ? x : tf.broadcastTo(x, [...batch, rows, width]);
  const entries = numel(batch);
  return entries === 1 ? [tf.reshape(full, [rows, width])] : tf.unstack(tf.reshape(full, [entries, rows, width])).map((t) => t as tf.Tensor2D);
}

/** Columns [index * width, (index + 1) * width) of a 2-D tensor. */
function columns(x: tf.Tensor2D, index: number, width: number): tf.Tensor2D {
  return tf.slice(x, [0, index * width], [x.shape[0], width]);
}

const attend = (op: "attention" | "diffattn"): TfjsRule => (cx) => {
  const [qType, kType, vType, lambdaType] = cx.operands;
  const plan = headPlan(op, cx.attrs, qType.shape[qType.shape.length - 1], vType.shape[vType.shape.length - 1]);
  const n = qType.shape[qType.shape.length - 2];
  const m = kType.shape[kType.shape.length - 2];
  const batch = broadcastShapes(broadcastShapes(qType.shape.slice(0, -2), kType.shape.slice(0, -2))!, vType.shape.slice(0, -2)) as number[];
  const causal = plan.causal ? causalMask(n, m) : undefined;
  const mask = causal && cx.keep(tf.tensor2d(causal.mask, [n, m]));
  const sees = causal && causal.blindRows.length > 0 ? cx.keep(tf.tensor2d(Array.from({ length: n }, (_, i) => !causal.blindRows.includes(i)), [n, 1], "bool")) : undefined;
  const zero = sees && cx.keep(tf.scalar(0));
  // q subhead of map p of head h (stripe: 2h + p; halves: pH + h) and the k subhead it meets.
  const qSubhead = (h: number, p: number) => (plan.maps === 1 ? h : plan.mapOrder === "stripe" ? 2 * h + p : p * plan.heads + h);
  const kSubhead = (j: number) => plan.kSubhead?.[j] ?? j;
  const lambdaIsScalar = plan.maps === 2 && numel(lambdaType.shape) === 1;

  return ([q, k, v, lambda]) => {
    const [qs, ks, vs] = [perBatch(q, batch), perBatch(k, batch), perBatch(v, batch)];
    // λ as a scalar, or per batch entry [N, H] whose column h is head h's [N, 1].
    const lambdaScalar = lambdaIsScalar ? tf.reshape(lambda, []) : undefined;
    const lambdas = plan.maps === 2 && !lambdaIsScalar ? perBatch(tf.broadcastTo(lambda, [...batch, n, plan.heads]), batch) : undefined;
    const outputs = qs.map((qb, b) => {
      const kTransposed = new Map<number, tf.Tensor2D>(); // GQA: a k subhead serves several q subheads
      const probabilities = (h: number, p: number) => {
        const j = qSubhead(h, p);
        const kj = kSubhead(j);
        if (!kTransposed.has(kj)) kTransposed.set(kj, tf.transpose(columns(ks[b], kj, plan.d)));
        let scores = tf.mul(tf.matMul(columns(qb, j, plan.d), kTransposed.get(kj)!), plan.scale);
        if (mask) scores = tf.add(scores, mask);
        const probs = tf.softmax(scores);
        // A query that sees no key gives 0, not softmax's NaN.
        return sees ? tf.where(sees, probs, zero!) : probs;
      };
      const heads = Array.from({ length: plan.heads }, (_, h) => {
        const probs =
          plan.maps === 1 ? probabilities(h, 0) : tf.sub(probabilities(h, 0), tf.mul(lambdaScalar ?? columns(lambdas![b], h, 1), probabilities(h, 1)));
        const parts = plan.vParts.map((part) => columns(vs[b], part[h], plan.vWidth));
        return tf.matMul(probs, parts.length === 1 ? parts[0] : tf.concat(parts, 1));
      });
      return tf.concat(heads, 1); // [N, H * dv]
    });
    return tf.reshape(outputs.length === 1 ? outputs[0] : tf.stack(outputs), cx.out.shape);
  };
};

export const attentionRules: Record<string, TfjsRule> = {
  attention: attend("attention"),
  diffattn: attend("diffattn"),
};
