// Attention written by hand with primitives becomes the attention op that says what it is, so
// that the fusion passes (and every backend's streaming kernel) apply to it:
//
//   softmax(q k^T * s) @ v                        -> attention(q, k, v, heads = 1, scale = s)
//   (and softmax((q * s) k^T) @ v, the scale on q)
//   (softmax(q1 k1^T * s) - λ softmax(q2 k2^T * s)) @ v
//                                                 -> diffattn(q1|q2, k1|k2, v, λ, heads = 1, scale = s)
//
// Heads, if any, are batch dims of the hand-written form ([..., H, N, d]); they stay batch dims
// of the op, with heads = 1, and the op's [..., N, 1, dv] result is reshaped back. The scale may
// be a multiplication or a division by a constant, or absent; the scores may be masked causally
// (where(j <= i + M - N, scores, -inf), as the decompositions write it). Only what means exactly
// this matches: both maps over the same keys (k1, k2 of one type) with one scale, one mask and
// the softmax over the keys; λ constant along the keys; each intermediate read only here (else
// fusing would compute it twice); for diffattn, values 2d wide.
import type { Graph, Node } from "../ir/graph.ts";
import { roundScalar } from "../ir/numeric.ts";
import { transposePerm } from "../ir/ops/shape.ts";
import { type Dim, isFloat, normalizeAxis, sameShape, sameType } from "../ir/types.ts";
import type { Pass, Rewriter } from "./pass.ts";
import { type Context, constValue, match, P, type Pattern, type Rule, rewrite } from "./pattern.ts";

/** What one hand-written map's scores are: q @ keys (keys = k^T, [..., d, M]) * scale, masked or not. */
interface Scores {
  q: Node;
  keys: Node;
  scale: number;
  causal: boolean;
}

/** a @ b with b as stored: a product reading b transposed in place (transpose_b) is another computation. */
const matmul = (a: Pattern, b: Pattern) => P.op("matmul", a, b).attrs({ transpose_b: false });
const product = matmul(P.any("q"), P.any("keys")).once();
const SCALED = [
  { pattern: P.op("mul", product, P.const().named("s")), scale: (s: Node) => constValue(s) },
  // The scale on q, as the official Diff Transformer code writes it (q *= scaling; q @ k^T).
  { pattern: matmul(P.op("mul", P.any("q"), P.const().named("s")).once(), P.any("keys")).once(), scale: (s: Node) => constValue(s) },
  // 1 / c must be a number of the scores' dtype: else q k^T / c overflows (or vanishes) where the op would not.
  { pattern: P.op("div", product, P.const().named("s")), scale: (s: Node) => (Number.isFinite(roundScalar(s.type.dtype, 1 / constValue(s))) ? 1 / constValue(s) : 0) },
  { pattern: product, scale: () => 1 },
];
const MASKED = P.op("where", P.any("mask"), P.any("scores").once(), P.const(-Infinity));

/** iota [n, m] along `axis` in i32: a narrower or float dtype would saturate or round the indices. */
const iotaAlong = (axis: number, n: Dim, m: Dim) =>
  P.op("iota").where((node) => node.type.dtype === "i32" && sameShape(node.type.shape, [n, m]) && normalizeAxis(node.attrs.axis as number, 2) === axis);
/** The size `dim` at run time: numel([dim]), or the constant once folded. */
const sizeOf = (dim: Dim) =>
  P.op(["numel", "const"]).where((node) => (node.op === "numel" ? sameShape(node.attrs.shape as Dim[], [dim]) : constValue(node) === dim));

/** Whether `mask` is [N, M] with true exactly where key j <= query i + (M - N): diffattn's causal mask. */
function isCausalMask(mask: Node, cx: Context, n: Dim, m: Dim): boolean {
  if (mask.type.dtype !== "bool" || !sameShape(mask.type.shape, [n, m])) return false;
  const cols = iotaAlong(1, n, m);
  const rows = iotaAlong(0, n, m);
  const offsets = [P.op("add", rows, P.op("sub", sizeOf(m), sizeOf(n)))];
  if (n === m) offsets.push(rows);
  if (typeof n === "number" && typeof m === "number") offsets.push(P.op("add", rows, P.const(m - n)));
  return offsets.some((last) => [P.op("le", cols, last), P.op("ge", last, cols)].some((p) => match(p, mask, cx.graph, cx.uses) !== undefined));
}

function scoresOf(node: Node, cx: Context): Scores | undefined {
  let causal = false;
  let scores = node;
  const masked = match(MASKED, node, cx.graph, cx.uses);
  if (masked) {
    const [n, m] = masked.scores.type.shape.slice(-2);
    if (!isCausalMask(masked.mask, cx, n, m)) return undefined;
    causal = true;
    scores = masked.scores;
  }
  for (const form of SCALED) {
    const c = match(form.pattern, scores, cx.graph, cx.uses);
    if (!c) continue;
    const scale = form.scale(c.s);
    // 0 declines: it would read as the op's default d^-0.5 (and stands for a 1 / c out of range).
    if (!(scale !== 0 && Number.isFinite(scale)) || c.q.type.shape.length < 2 || c.keys.type.shape.length < 2) return undefined;
    return { q: c.q, keys: c.keys, scale, causal };
  }
  return undefined;
}

/** A softmax over the last axis of its operand, read only here. */
const lastAxisSoftmax = (name: string) =>
  P.op("softmax", P.any(name).once())
    .once()
    .where((node) => normalizeAxis(node.attrs.axis as number, node.type.shape.length) === node.type.shape.length - 1);

/** k [..., M, d] when keys [..., d, M] is its transpose, as `transpose(k)` wrote it. */
function rowsOf(keys: Node, cx: Context): Node | undefined {
  const rank = keys.type.shape.length;
  const swap = (perm: number[]) => perm.every((p, i) => p === (i < rank - 2 ? i : 2 * rank - 3 - i));
  return keys.op === "transpose" && swap(transposePerm(rank, keys.attrs.perm as number[])) ? cx.graph.nodes[keys.operands[0]] : undefined;
}

/** k [..., M, d] from keys [..., d, M]: k itself, or a transpose of keys. */
function keysAsRows(keys: Node, r: Rewriter, cx: Context): number {
  const rows = rowsOf(keys, cx);
  return rows ? r.value(rows.id) : r.add("transpose", [r.value(keys.id)], { perm: [] });
}

/** Whether a and b are the two halves of one value along the last axis, as `split(x, 2)` writes them. */
function halves(a: Node, b: Node): boolean {
  const half = (n: Node, index: number) => {
    const rank = n.type.shape.length;
    const width = n.type.shape[rank - 1] as number;
    return n.op === "slice" && normalizeAxis(n.attrs.axis as number, rank) === rank - 1 && n.attrs.step === 1 && n.attrs.start === index * width && n.attrs.end === (index + 1) * width;
  };
  return half(a, 0) && half(b, 1) && a.operands[0] === b.operands[0];
}

/** a | b along the last axis: the value they were split from when they are its halves, else a concat. */
function joined(a: Node, b: Node, cx: Context, r: Rewriter): number {
  if (halves(a, b)) {
    const whole = cx.graph.nodes[a.operands[0]].type.shape;
    if (whole[whole.length - 1] === 2 * (a.type.shape[a.type.shape.length - 1] as number)) return r.value(a.operands[0]);
  }
  return r.add("concat", [r.value(a.id), r.value(b.id)], { axis: -1 });
}

/** The checks both rules share: the scores' shapes line up with the values, in one float dtype, with static head widths (as the ops need). */
function fits(s: Scores, v: Node): boolean {
  const dtype = s.q.type.dtype;
  const keys = s.keys.type.shape;
  const [d, dv] = [s.q, v].map((x) => x.type.shape[x.type.shape.length - 1]);
  return (
    isFloat(dtype) &&
    s.keys.type.dtype === dtype &&
    v.type.dtype === dtype &&
    v.type.shape.length >= 2 &&
    typeof d === "number" &&
    typeof dv === "number" &&
    keys[keys.length - 1] === v.type.shape[v.type.shape.length - 2]
  );
}

function attrsOf(s: Scores) {
  return { heads: 1, causal: s.causal, scale: s.scale };
}

const ATTENTION: Rule = {
  name: "softmax(q k^T * s) @ v -> attention",
  pattern: matmul(lastAxisSoftmax("s"), P.any("v")),
  build: (c, r, node, cx) => {
    const s = scoresOf(c.s, cx);
    if (!s || !fits(s, c.v)) return undefined;
    const y = r.add("attention", [r.value(s.q.id), keysAsRows(s.keys, r, cx), r.value(c.v.id)], attrsOf(s));
    return r.add("reshape", [y], { shape: node.type.shape });
  },
};
const DIFFATTN: Rule = {
  name: "(softmax(q1 k1^T * s) - λ softmax(q2 k2^T * s)) @ v -> diffattn",
  pattern: matmul(P.op("sub", lastAxisSoftmax("s1").named("p1"), P.op("mul", P.any("lam"), lastAxisSoftmax("s2").named("p2")).once().named("scaled")).once().named("diff"), P.any("v")),
  build: (c, r, node, cx) => {
    const [s1, s2] = [c.s1, c.s2].map((s) => scoresOf(s, cx));
    if (!s1 || !s2 || !fits(s1, c.v) || !fits(s2, c.v)) return undefined;
    // One kernel: both maps over the same keys, one scale, one mask, no map broadcast.
    if (!sameType(s1.q.type, s2.q.type) || !sameType(s1.keys.type, s2.keys.type) || s1.scale !== s2.scale || s1.causal !== s2.causal) return undefined;
    if (![c.p2, c.scaled, c.diff].every((n) => sameType(n.type, c.p1.type))) return undefined;
    // λ per query (and batch entry), the same for every key; diffattn's values are 2d wide.
    const lam = c.lam.type;
    if (!isFloat(lam.dtype) || (lam.shape.length > 0 && lam.shape[lam.shape.length - 1] !== 1)) return undefined;
    const d = s1.q.type.shape[s1.q.type.shape.length - 1] as number; // static: fits checked it
    if (c.v.type.shape[c.v.type.shape.length - 1] !== 2 * d) return undefined;
    const q = joined(s1.q, s2.q, cx, r);
    const [k1, k2] = [s1.keys, s2.keys].map((keys) => rowsOf(keys, cx));
    const k = k1 && k2 ? joined(k1, k2, cx, r) : r.add("concat", [keysAsRows(s1.keys, r, cx), keysAsRows(s2.keys, r, cx)], { axis: -1 });
    const y = r.add("diffattn", [q, k, r.value(c.v.id), r.value(c.lam.id)], attrsOf(s1));
    return r.add("reshape", [y], { shape: node.type.shape });
  },
};

/** Hand-written differential attention -> diffattn. */
export function recognizeDiffattn(graph: Graph): Graph {
  return rewrite(graph, [DIFFATTN]);
}

/** Hand-written attention -> attention. */
export function recognizeAttention(graph: Graph): Graph {
  return rewrite(graph, [ATTENTION]);
}

export const recognizeAttentionPass: Pass = {
  name: "recognize-attention",
  description: "hand-written (q k^T * s, softmax, @ v) and differential attention (p1 - λ p2) -> attention / diffattn ops",
  run: (graph) => recognizeAttention(recognizeDiffattn(graph)),
};
