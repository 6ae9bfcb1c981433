// Constant folding: a node whose operands are all scalar `const`s, and whose result is a
// scalar, becomes a `const` — computed by the op's own interpreter rule and rounded to the
// result dtype, exactly as the interpreter would at run time. This folds the compile-time
// λ_init arithmetic (0.8 - 0.6 * exp(-0.3 * layer)) when it is written with tensors.
//
// Not a pattern: it asks one question of every node, and one bottom-up sweep over the graph
// being built folds whole chains of constants.
import type { AttrValue, Graph } from "../ir/graph.ts";
import type { HostTensor } from "../ir/tensor.ts";
import { roundTo } from "../ir/numeric.ts";
import { getOp } from "../ir/registry.ts";
import { dce } from "./dce.ts";
import { type Pass, rebuild } from "./pass.ts";
import { count } from "./statistics.ts";

/** Whether an attribute holds a symbolic size, known only at run time (numel of [N]). */
const symbolic = (v: AttrValue) => Array.isArray(v) && v.some((d) => typeof d === "string");

export function constantFold(graph: Graph): Graph {
  // The value of each new node that is a scalar constant.
  const constants = new Map<number, HostTensor>();
  let folded = false;
  const next = rebuild(graph, (node, r) => {
    const operands = node.operands.map((o) => r.value(o));
    const args = operands.map((o) => constants.get(o));
    const { dtype, shape } = node.type;
    const foldable =
      node.op !== "input" && node.op !== "param" && shape.length === 0 && args.every((a) => a !== undefined) && !Object.values(node.attrs).some(symbolic);
    let value: number | undefined;
    if (foldable) {
      try {
        value = roundTo(dtype, getOp(node.op)!.interpret(args as HostTensor[], node.attrs, { dtype, shape: [] }))[0];
      } catch {
        // An op that fails on these values (an index out of range) fails at run time, as written.
      }
    }
    if (value === undefined) return r.copy(node);
    if (node.op !== "const") {
      folded = true;
      count(`${node.op} of constants folded`);
    }
    const id = node.op === "const" ? r.copy(node) : r.add("const", [], { value, dtype });
    constants.set(id, { dtype, shape: [], data: Float64Array.of(value) });
    return id;
  });
  return folded ? dce(next) : graph;
}

export const constantFoldPass: Pass = {
  name: "constant-fold",
  description: "fold scalar ops of constants into one const, computed by the op's interpreter rule",
  run: constantFold,
};
