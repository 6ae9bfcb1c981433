// Canonicalisation: one spelling for each computation, so CSE and the fusion passes see
// fewer forms. Constants go to the right of commutative ops, and ops that change nothing go.
// Every rewrite here is exact, bit for bit: an identity is removed only where it is one for
// every value of its dtype (x + 0 is not: -0 + 0 is +0) and the node already has x's type.
// The rules apply inside fused bodies too, and a body left returning its input goes.
import type { Graph, Node } from "../ir/graph.ts";
import { transposePerm } from "../ir/ops/shape.ts";
import { isFloat, sameShape, sameType } from "../ir/types.ts";
import type { Pass } from "./pass.ts";
import { COMMUTATIVE, type Captures, P, type Pattern, rewrite, type Rule } from "./pattern.ts";

const x = P.any("x");
/** The node has x's dtype and shape: a scalar operand did not broadcast x to more. */
const keepsType = (node: Node, { x }: Captures) => sameType(node.type, x.type);
const floatResult = (node: Node) => isFloat(node.type.dtype);
const integerResult = (node: Node) => !isFloat(node.type.dtype);

/** The matched node is x itself. */
function toX(pattern: Pattern): Rule {
  return { name: `${pattern} -> x`, pattern: pattern.where(keepsType), build: ({ x }, r) => r.value(x.id) };
}

/** The operand a fused node's body returns unchanged, if it does. */
function bodyInput(node: Node): number | undefined {
  const body = node.attrs.body as Graph;
  const out = body.nodes[body.outputs[0].node];
  return out.op === "input" && sameType(out.type, node.type) ? Number(out.attrs.name) : undefined;
}

export function isIdentityPerm(perm: readonly number[]): boolean {
  return perm.every((p, i) => p === i);
}

export const CANONICALIZE_RULES: Rule[] = [
  toX(P.op("mul", x, P.const(1))),
  toX(P.op("div", x, P.const(1))),
  // x + -0 is x for every float x, -0 included; x + 0 is not, since -0 + 0 = +0.
  toX(P.op("add", x, P.const(-0)).where(floatResult)),
  // Integers (and bool) have no -0: the const -0 rounds to 0.
  toX(P.op("add", x, P.const(0)).where(integerResult)),
  // x - 0 is x for every x (-0 - 0 = -0); x - (-0) is x + 0, which is not.
  toX(P.op("sub", x, P.const(0))),
  // Two's-complement negation undoes itself, wrapping included (-(-128) is -128 in i8).
  toX(P.op("neg", P.op("neg", x))),
  toX(P.op("cast", x).where((node, { x }) => node.attrs.dtype === x.type.dtype)),
  toX(P.op("transpose", x).where((node, { x }) => isIdentityPerm(transposePerm(x.type.shape.length, node.attrs.perm as number[])))),
  toX(P.op(["reshape", "broadcast"], x).where((node, { x }) => sameShape(node.type.shape, x.type.shape))),
  {
    // A fused body that returns one of its inputs (once the rules above emptied it) is that operand.
    name: "fused(...) whose body returns an input -> that operand",
    pattern: P.op("fused").where((node) => bodyInput(node) !== undefined),
    build: (_, r, node) => r.value(node.operands[bodyInput(node)!]),
  },
  {
    // c op x -> x op c for commutative ops, so later rules and CSE see one form.
    name: "c op x -> x op c (commutative op, constant to the right)",
    pattern: P.op(COMMUTATIVE, P.const().named("c"), P.any("x").where((n) => n.op !== "const")).where((node, { c }) => node.operands[0] === c.id),
    build: ({ x, c }, r, node) => r.add(node.op, [r.value(x.id), r.value(c.id)], node.attrs),
  },
];

export const canonicalizePass: Pass = {
  name: "canonicalize",
  description: "constants to the right of commutative ops; remove x*1, x/1, x+(-0), x-0, neg(neg x) and no-op casts, transposes, reshapes, broadcasts",
  // Fused bodies too: what a fusion absorbed is canonical as well.
  run: (graph) => rewrite(graph, CANONICALIZE_RULES, { bodies: true }),
};
