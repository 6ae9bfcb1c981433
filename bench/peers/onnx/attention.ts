// attention and diffattn as the ONNX graph a user hands onnxruntime: per map (diffattn's q1 k1
// and q2 k2) one MatMul batched over heads, the heads split by Reshape/Transpose of q and k
// (a Gather of subheads on those small inputs for GQA, halves or the second map), the scale,
// an additive causal mask built for the concrete N and M, Softmax, then p1 - λ p2 and a
// MatMul with v. One MatMul over all 2H subheads and a Gather of each map from the [2H, N, M]
// result (a PyTorch export of the official code) measured 5-10% slower at N = 1024: two copies
// of N×N maps per head.
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
  return b.node("Transpose", [viewHeads(b, x, shape, subheads)], { perm: { ints: perm(shape.length + 1) } });
}

/** [..., R, S * w] viewed as [..., R, S, w]. */
function viewHeads(b: OnnxGraphBuilder, x: string, shape: number[], subheads: number): string {
  return b.node("Reshape", [x, b.int64s([...shape.slice(0, -1), subheads, shape[shape.length - 1] / subheads])]);
}

/** Subheads `index` of a [..., R, S, w] view, in that order (the view itself when that is all S of them). */
function selectSubheads(b: OnnxGraphBuilder, view: string, subheads: number, index: number[]): string {
  if (index.length === subheads && index.every((s, i) => s === i)) return view;
  return b.node("Gather", [view, b.int64s(index)], { axis: { i: -2 } });
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
  const qView = viewHeads(b, q, qType.shape, plan.maps * plan.heads); // [.., N, S, d]
  const kView = viewHeads(b, k, kType.shape, plan.maps * plan.kvHeads); // [.., M, Skv, d]
  const rank = qType.shape.length + 1;
  const causal = plan.causal ? causalMask(n, m) : undefined;
  const mask = causal && b.initializer(OnnxType.FLOAT, [n, m], causal.mask);
  // A query that sees no key gives 0, not softmax's NaN.
  const sees = causal && causal.blindRows.length > 0 ? b.initializer(OnnxType.BOOL, [n, 1], Array.from({ length: n }, (_, i) => (causal.blindRows.includes(i) ? 0 : 1))) : undefined;

  // Map p of every head: its q subheads (stripe: 2h + p; halves: pH + h) against their k subheads.
  const probabilities = (p: number): string => {
    const qIndex = [...Array(plan.heads).keys()].map((h) => (plan.maps === 1 ? h : plan.mapOrder === "stripe" ? 2 * h + p : p * plan.heads + h));
    const kIndex = qIndex.map((j) => plan.kSubhead?.[j] ?? j);
    const qHeads = b.node("Transpose", [selectSubheads(b, qView, plan.maps * plan.heads, qIndex)], { perm: { ints: swap(rank, -3, -2) } }); // [.., H, N, d]
    const kHeads = b.node("Transpose", [selectSubheads(b, kView, plan.maps * plan.kvHeads, kIndex)], { perm: { ints: [...Array(rank - 3).keys(), rank - 2, rank - 1, rank - 3] } }); // [.., H, d, M]
    let scores = b.node("Mul", [b.node("MatMul", [qHeads, kHeads]), b.scalar(plan.scale)]); // [.., H, N, M]
    if (mask) scores = b.node("Add", [scores, mask]);
    const probs = b.node("Softmax", [scores], { axis: { i: -1 } });
    return sees ? b.node("Where", [sees, probs, b.scalar(0)]) : probs;
  };
  const probs = plan.maps === 1 ? probabilities(0) : b.node("Sub", [probabilities(0), b.node("Mul", [lambdaPerHead(b, lambda, cx.operands[3].shape), probabilities(1)])]);

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
