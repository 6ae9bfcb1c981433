// A difftc graph as an ONNX model for one set of sizes: inputs become graph inputs, params
// initializers, and every node the ONNX nodes of its rule. High-level ops without a rule
// here are first replaced by their decomposition from the op registry.
import type { Graph } from "../../../compiler/ir/graph.ts";
import type { HostTensor } from "../../../compiler/ir/tensor.ts";
import { formatShape, resolveShape } from "../../../compiler/ir/types.ts";
import { lowerForPeer } from "../graph.ts";
import { resolveAttrs } from "../../../compiler/ir/graph.ts";
import { attentionRules } from "./attention.ts";
import { OnnxGraphBuilder, onnxType, type OnnxRule } from "./builder.ts";
import type { OnnxModel } from "./model.ts";
import { nnRules } from "./nn.ts";
import { primitiveRules } from "./primitives.ts";

const rules: Record<string, OnnxRule> = { ...primitiveRules, ...nnRules, ...attentionRules };
const IMPLEMENTED = new Set(["input", "param", ...Object.keys(rules)]);

export function exportOnnx(graph: Graph, params: ReadonlyMap<string, HostTensor>, dims: ReadonlyMap<string, number>): OnnxModel {
  const lowered = lowerForPeer(graph, "onnx", IMPLEMENTED);
  const b = new OnnxGraphBuilder(graph.name);
  const values: string[] = [];
  const inputNames = new Set<string>();
  for (const node of lowered.nodes) {
    const shape = resolveShape(node.type.shape, dims);
    const name = String(node.attrs.name);
    if (node.op === "input") {
      b.input(name, onnxType(node.type.dtype), shape);
      inputNames.add(name);
      values[node.id] = name;
    } else if (node.op === "param") {
      const value = params.get(name);
      if (!value) throw new Error(`onnx peer: param ${name} (${node.type.dtype}${formatShape(shape)}) was not given`);
      if (value.dtype !== node.type.dtype || formatShape(value.shape) !== formatShape(shape))
        throw new Error(`onnx peer: param ${name} must be ${node.type.dtype}${formatShape(shape)}, got ${value.dtype}${formatShape(value.shape)}`);
      values[node.id] = b.initializer(onnxType(value.dtype), shape, value.data, `param.${name}`);
    } else {
      const cx = {
        b,
        op: node.op,
        attrs: resolveAttrs(node.attrs, dims),
        operands: node.operands.map((o) => ({ dtype: lowered.nodes[o].type.dtype, shape: resolveShape(lowered.nodes[o].type.shape, dims) })),
        out: { dtype: node.type.dtype, shape },
      };
      values[node.id] = rules[node.op](cx, node.operands.map((o) => values[o]));
    }
  }
  for (const o of lowered.outputs) {
    if (inputNames.has(o.name)) throw new Error(`onnx peer: output ${o.name} has the name of an input; ONNX needs distinct names`);
    const node = lowered.nodes[o.node];
    b.node("Identity", [values[o.node]], undefined, o.name);
    b.output(o.name, onnxType(node.type.dtype), resolveShape(node.type.shape, dims));
  }
  return b.finish();
}
