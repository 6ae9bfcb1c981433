// Reshape and transpose folding: a reshape of a reshape is one reshape (row-major data does
// not move), a transpose of a transpose is one transpose with the composed permutation, and
// a fold that lands back on x's shape or order is x itself.
import { transposePerm } from "../ir/ops/shape.ts";
import { sameShape } from "../ir/types.ts";
import { isIdentityPerm } from "./canonicalize.ts";
import type { Pass } from "./pass.ts";
import { P, rewrite, type Rule } from "./pattern.ts";

export const FOLD_RESHAPE_RULES: Rule[] = [
  {
    pattern: P.op("reshape", P.op("reshape", P.any("x"))),
    build: ({ x }, r, node) => (sameShape(node.type.shape, x.type.shape) ? r.value(x.id) : r.add("reshape", [r.value(x.id)], { shape: node.attrs.shape })),
  },
  {
    // out.shape[i] = inner.shape[outer[i]] = x.shape[inner[outer[i]]].
    pattern: P.op("transpose", P.op("transpose", P.any("x")).named("inner")),
    build: ({ x, inner }, r, node) => {
      const rank = x.type.shape.length;
      const first = transposePerm(rank, inner.attrs.perm as number[]);
      const perm = transposePerm(rank, node.attrs.perm as number[]).map((p) => first[p]);
      return isIdentityPerm(perm) ? r.value(x.id) : r.add("transpose", [r.value(x.id)], { perm });
    },
  },
];

export const foldReshapesPass: Pass = {
  name: "fold-reshapes",
  description: "reshape(reshape x) -> one reshape, transpose(transpose x) -> one transpose; identities -> x",
  run: (graph) => rewrite(graph, FOLD_RESHAPE_RULES),
};
