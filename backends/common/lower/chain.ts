// Elementwise chains: each node's meaning from the registry, a local per node rounded to its
// dtype unless the registry says the op is exact in it, so a fused kernel computes bit for
// bit what the unfused kernels (and the interpreter, which rounds every node) compute.
import type { Node } from "../../../compiler/ir/graph.ts";
import { roundScalar } from "../../../compiler/ir/numeric.ts";
import type { FusedBody } from "../../../compiler/ir/ops/fused.ts";
import { getOp } from "../../../compiler/ir/registry.ts";
import { lit, round, type ScalarExpr } from "../../../compiler/ir/scalar.ts";
import type { DType } from "../../../compiler/ir/types.ts";
import type { StmtBuilder } from "../kernel/ir.ts";

/** What an elementwise node (or a broadcast, a read at a broadcast index) computes from its operands' values. */
export function elementValue(node: Node, operands: ScalarExpr[], operandDtypes: DType[]): ScalarExpr {
  if (node.op === "broadcast") return operands[0];
  const def = getOp(node.op);
  if (!def?.scalar) throw new Error(`${node.op} has no scalar meaning in the registry`);
  return def.scalar(operands, operandDtypes, node.attrs);
}

/** Whether a node's value needs no rounding to its dtype. */
export function isExact(node: Node): boolean {
  return node.op === "broadcast" || getOp(node.op)?.exact?.(node.type.dtype) === true;
}

/** The body nodes `target` depends on, not looking past the `known` ones. */
export function needed(body: FusedBody, target: Node, known: ReadonlySet<number>): Set<number> {
  // Body nodes are in topological order, so one backward sweep finds them all: no recursion,
  // which a chain thousands of ops long would overflow.
  const seen = new Set<number>([target.id]);
  for (let id = target.id; id >= 0; id--) {
    if (seen.has(id) && !known.has(id)) for (const o of body.graph.nodes[id].operands) seen.add(o);
  }
  return seen;
}

/**
 * Writes the chain nodes `target` needs beyond the `known` values (body node id -> value),
 * each a local rounded to its dtype, and returns target's value: unrounded (a store rounds
 * it) unless `rounded`.
 */
export function chain(b: StmtBuilder, body: FusedBody, known: ReadonlyMap<number, ScalarExpr>, target: Node, rounded: boolean): ScalarExpr {
  const values = new Map(known);
  const nodes = body.graph.nodes;
  for (const id of [...needed(body, target, new Set(known.keys()))].sort((x, y) => x - y)) {
    const n = nodes[id];
    if (values.has(id)) continue;
    if (n.op === "input") throw new Error(`fused: body input ${n.attrs.name} is needed but was not loaded`);
    if (n.op === "const") {
      values.set(id, lit(roundScalar(n.type.dtype, n.attrs.value as number), n.type.dtype));
      continue;
    }
    const value = elementValue(n, n.operands.map((o) => values.get(o)!), n.operands.map((o) => nodes[o].type.dtype));
    const exact = isExact(n);
    if (id === target.id) return rounded && !exact ? round(n.type.dtype, value) : value;
    values.set(id, n.op === "broadcast" ? value : b.let(`t${id}`, n.type.dtype, exact ? value : round(n.type.dtype, value)));
  }
  return values.get(target.id)!;
}
