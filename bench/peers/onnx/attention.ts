// attention and diffattn as the ONNX graph a PyTorch export of the official code gives: heads
// split by Reshape/Transpose, one batched MatMul for all (sub)heads, the scale, an additive
// causal mask built for the concrete N and M, Softmax, then p1 - λ p2 and a MatMul with v.
import { broadcastShapes } from "../../../compiler/ir/types.ts";
import { causalMask, headPlan, vIsPerHead } from "../heads.ts";
import type { Lowering, OnnxGraphBuilder, OnnxRule } from "./builder.ts";
import { OnnxType } from "./model.ts";

/** The permutation of `rank` axes that swaps axes a and b (negative: from the end). */
function swap(rank: number, a: number, b: number): number[] {
  const perm = [...Array(rank).keys()];
  [perm[rank + a], perm[rank + b]] = [perm[rank + b], perm[rank + a]];
  return perm;
}

/** [..., R, S * w] viewed as S subheads, with `perm` applied to [..., R, S, w]. */
function splitHeads(b: OnnxGraphBuilder, x: string, shape: number[], subheads: number, perm: (rank: number) => number[]): string {
  const viewed = [...shape.slice(0, -1), subheads, shape[shape.length - 1] / subheads];
  return b.node("Transpose", [b.node("Reshape", [x, b.int64s(viewed)])], { perm: { ints: perm(viewed.length) } });
}

/** λ broadcasting to [..., N, H], rearranged to broadcast against maps [..., H, N, M]. */
function lambdaPerHead(b: OnnxGraphBuilder, lambda: string, shape: number[]): string {
  if (shape.length === 0) return lambda;
  const padded = shape.length === 1 ? [1, ...shape] : shape;
  const moved = [...padded.slice(0, -2), padded[padded.length - 1], padded[padded.length - 2], 1];
  const transposed = b.node("Transpose", [b.node("Reshape", [lambda, b.int64s(padded)])], { perm: { ints: swap(padded.length, -2, -1) } });
  return b.node("Reshape", [transposed, b.int64s(moved)]);
}

const attend = (op: "attention" | "diffattn"): OnnxRule => (cx: Lowering, [q, k, v, lambda]) => {
  const { b } = cx;
  const [qType, kType, vType] = cx.operands;
  const plan = headPlan(op, cx.attrs, qType.shape[qType.shape.length - 1], vType.shape[vType.shape.length - 1]);
  const n = qType.shape[qType.shape.length - 2];
  const m = kType.shape[kType.shape.length - 2];
  const subheads = plan.maps * plan.heads;

  const qHeads = splitHeads(b, q, qType.shape, subheads, (r) => swap(r, -3, -2)); // [.., S, N, d]
  // k straight to [.., Skv, d, M], ready for q k^T; then each q subhead's k subhead.
  const kAll = splitHeads(b, k, kType.shape, plan.maps * plan.kvHeads, (r) => [...Array(r - 3).keys(), r - 2, r - 1, r - 3]);
  const kHeads = plan.kSubhead ? b.node("Gather", [kAll, b.int64s(plan.kSubhead)], { axis: { i: -3 } }) : kAll;
  let scores = b.node("Mul", [b.node("MatMul", [qHeads, kHeads]), b.scalar(plan.scale)]); // [.., S, N, M]
  let blindRows: number[] = [];
  if (plan.causal) {
    const causal = causalMask(n, m);
    blindRows = causal.blindRows;
    scores = b.node("Add", [scores, b.initializer(OnnxType.FLOAT, [n, m], causal.mask)]);
  }
  let probs = b.node("Softmax", [scores], { axis: { i: -1 } });
  if (blindRows.length > 0) {
    // A query that sees no key gives 0, not softmax's NaN.
    const sees = Array.from({ length: n }, (_, i) => (blindRows.includes(i) ? 0 : 1));
    probs = b.node("Where", [b.initializer(OnnxType.BOOL, [n, 1], sees), probs, b.scalar(0)]);
  }

  if (plan.maps === 2) {
    const batch = broadcastShapes(qType.shape.slice(0, -2), kType.shape.slice(0, -2)) as number[];
    const [mapShape, mapAxis] = plan.mapOrder === "stripe" ? [[plan.heads, 2], -3] : [[2, plan.heads], -4];
    const maps = b.node("Reshape", [probs, b.int64s([...batch, ...mapShape, n, m])]);
    const map = (p: number) => b.node("Gather", [maps, b.scalar(p, OnnxType.INT64)], { axis: { i: mapAxis } });
    const lam = lambdaPerHead(b, lambda, cx.operands[3].shape);
    probs = b.node("Sub", [map(0), b.node("Mul", [lam, map(1)])]); // [.., H, N, M]
  }

  const vAll = splitHeads(b, v, vType.shape, plan.vSubheads, (r) => swap(r, -3, -2)); // [.., Sv, M, w]
  const vHeads = vIsPerHead(plan)
    ? vAll
    : plan.vParts.length === 1
      ? b.node("Gather", [vAll, b.int64s(plan.vParts[0])], { axis: { i: -3 } })
      : b.node("Concat", plan.vParts.map((part) => b.node("Gather", [vAll, b.int64s(part)], { axis: { i: -3 } })), { axis: { i: -1 } });
  const heads = b.node("MatMul", [probs, vHeads]); // [.., H, N, dv]
  return b.node("Transpose", [heads], { perm: { ints: swap(cx.out.shape.length, -3, -2) } });
};

export const attentionRules: Record<string, OnnxRule> = {
  attention: attend("attention"),
  diffattn: attend("diffattn"),
};
