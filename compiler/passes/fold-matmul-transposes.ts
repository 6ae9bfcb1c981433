// Matmul transpose folding: `x @ transpose(w)` (PyTorch's Linear, y = x W^T, and q k^T) reads
// w transposed in place, `matmul(x, w) {transpose_b = true}`, instead of copying w into its
// transpose on every forward. The product sums over k in the same order either way, so the
// result is bit-identical; only where b's elements are read from changes.
import { transposePerm } from "../ir/ops/shape.ts";
import type { Node } from "../ir/graph.ts";
import type { Pass } from "./pass.ts";
import { P, rewrite, type Rule } from "./pattern.ts";

/** The transpose swaps the last two axes and keeps the others: what transpose_b reads in place. */
const swapsLastTwo = (t: Node) => {
  const rank = t.type.shape.length;
  const perm = transposePerm(rank, t.attrs.perm as number[]);
  return rank >= 2 && perm.every((p, i) => p === (i < rank - 2 ? i : 2 * rank - 3 - i));
};
const lastTwoSwapped = (name: string) => P.op("transpose", P.any(name)).where(swapsLastTwo);

export const FOLD_MATMUL_TRANSPOSE_RULES: Rule[] = [
  {
    name: "x @ transpose(w) -> matmul(x, w) {transpose_b}",
    pattern: P.op("matmul", P.any("x"), lastTwoSwapped("w")).attrs({ transpose_b: false }),
    build: ({ x, w }, r) => r.add("matmul", [r.value(x.id), r.value(w.id)], { transpose_b: true }),
  },
  {
    // Reading transpose(w) transposed is reading w as it is stored.
    name: "matmul(x, transpose(w)) {transpose_b} -> x @ w",
    pattern: P.op("matmul", P.any("x"), lastTwoSwapped("w")).attrs({ transpose_b: true }),
    build: ({ x, w }, r) => r.add("matmul", [r.value(x.id), r.value(w.id)]),
  },
];

export const foldMatmulTransposesPass: Pass = {
  name: "fold-matmul-transposes",
  description: "x @ transpose(w) -> matmul(x, w) {transpose_b}: w read transposed in place, no copy per forward",
  run: (graph) => rewrite(graph, FOLD_MATMUL_TRANSPOSE_RULES),
  runsAfter: {
    "recognize-attention": "it rewrites q @ transpose(k), the scores recognize-attention looks for",
    "fuse-dual-softmax": "it rewrites q @ transpose(k), so hand-written differential attention is no longer found and fused",
    "fuse-attention": "it rewrites q @ transpose(k), so hand-written attention is no longer found and fused",
  },
  runsBefore: {
    "fuse-elementwise": "a matmul fused with its epilogue reads the transpose through the fused node, where this pass cannot see it",
  },
};
