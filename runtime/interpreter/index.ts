// The reference interpreter: evaluates a verified graph in float64, rounding every result to
// its node's dtype. It is the specification every backend is compared against.
import { Diagnostic } from "../../common/diagnostic.ts";
import { type Graph, resolveAttrs } from "../../compiler/ir/graph.ts";
import { roundTo } from "../../compiler/ir/numeric.ts";
import { checkGraphSizes } from "../../compiler/ir/limits.ts";
import { getOp } from "../../compiler/ir/registry.ts";
import type { HostTensor } from "../../compiler/ir/tensor.ts";
import { formatShape, formatType, resolveShape } from "../../compiler/ir/types.ts";
import "../../compiler/ir/ops/index.ts";

export type TensorMap = ReadonlyMap<string, HostTensor>;

/**
 * Binds the graph's symbolic sizes from the input shapes, checking every static size and
 * every repeated symbol. `dims` may pre-bind sizes (from `--set N=64`).
 */
export function bindDims(graph: Graph, inputs: TensorMap, dims: ReadonlyMap<string, number> = new Map()): Map<string, number> {
  const bound = new Map(dims);
  const declared = graph.nodes.filter((n) => n.op === "input").map((n) => String(n.attrs.name));
  // An input the model does not have is a misspelt name or the wrong file, never something to ignore.
  const unknown = [...inputs.keys()].filter((k) => !declared.includes(k));
  if (unknown.length) throw new Diagnostic(`model ${graph.name} has no input${unknown.length === 1 ? "" : "s"} ${unknown.join(", ")} (its inputs: ${declared.join(", ") || "none"})`);
  for (const node of graph.nodes) {
    if (node.op !== "input") continue;
    const name = String(node.attrs.name);
    const value = inputs.get(name);
    if (!value) throw new Diagnostic(`input ${name} (${formatType(node.type)}) was not given`);
    if (value.dtype !== node.type.dtype) throw new Diagnostic(`input ${name} must be ${formatType(node.type)}, got ${value.dtype}${formatShape(value.shape)}`);
    const expected = node.type.shape;
    const mismatch = () => new Diagnostic(`input ${name} must have shape ${formatShape(expected)}, got ${formatShape(value.shape)}`);
    if (expected.length !== value.shape.length) throw mismatch();
    expected.forEach((d, i) => {
      const actual = value.shape[i];
      if (typeof d === "number") {
        if (d !== actual) throw mismatch();
      } else {
        const prior = bound.get(d);
        if (prior !== undefined && prior !== actual)
          throw new Diagnostic(`input ${name} has ${d} = ${actual} on axis ${i}, but ${d} = ${prior} elsewhere`);
        bound.set(d, actual);
      }
    });
  }
  for (const d of graph.dims) if (!bound.has(d)) throw new Diagnostic(`dim ${d} is not bound by any input; give it with --set ${d}=SIZE`);
  checkGraphSizes(graph, bound);
  return bound;
}

export interface EvaluateOptions {
  dims?: ReadonlyMap<string, number>;
  /** Called with every node's value, for debugging and for tests of intermediate values. */
  onValue?: (nodeId: number, value: HostTensor) => void;
}

export function evaluate(graph: Graph, inputs: TensorMap, params: TensorMap, options: EvaluateOptions = {}): Map<string, HostTensor> {
  const dims = bindDims(graph, inputs, options.dims);
  // Free each value after its last use so peak memory stays near the live set.
  const lastUse = new Int32Array(graph.nodes.length).fill(-1);
  for (const n of graph.nodes) for (const o of n.operands) lastUse[o] = n.id;
  for (const o of graph.outputs) lastUse[o.node] = graph.nodes.length;
  const values: (HostTensor | undefined)[] = new Array(graph.nodes.length);
  for (const node of graph.nodes) {
    const shape = resolveShape(node.type.shape, dims);
    let value: HostTensor;
    if (node.op === "input" || node.op === "param") {
      const name = String(node.attrs.name);
      const source = node.op === "input" ? inputs : params;
      const given = source.get(name);
      if (!given) throw new Diagnostic(`${node.op} ${name} (${formatType(node.type)}) was not given`);
      if (node.op === "param" && (given.dtype !== node.type.dtype || formatShape(given.shape) !== formatShape(shape)))
        throw new Diagnostic(`param ${name} must be ${formatType(node.type)}, got ${given.dtype}${formatShape(given.shape)}`);
      value = given;
    } else {
      const def = getOp(node.op);
      if (!def) throw new Error(`unknown op ${node.op}`);
      const args = node.operands.map((o) => values[o]!);
      let data: Float64Array;
      try {
        data = def.interpret(args, resolveAttrs(node.attrs, dims), { dtype: node.type.dtype, shape });
      } catch (e) {
        if (e instanceof RangeError) throw new Diagnostic(e.message, node.span);
        throw e;
      }
      value = { dtype: node.type.dtype, shape, data: roundTo(node.type.dtype, data) };
    }
    values[node.id] = value;
    options.onValue?.(node.id, value);
    for (const o of node.operands) if (lastUse[o] === node.id) values[o] = undefined;
  }
  return new Map(graph.outputs.map((o) => [o.name, values[o.node]!]));
}
