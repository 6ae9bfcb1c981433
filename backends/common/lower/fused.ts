// Lowering of a `fused` node: the elementwise loop, reduction or matmul of the shared
// lowering, given the body's elementwise chain to compute at each element.
import type { Node } from "../../../compiler/ir/graph.ts";
import { fusedBody, type FusedBody } from "../../../compiler/ir/ops/fused.ts";
import type { ScalarExpr } from "../../../compiler/ir/scalar.ts";
import type { TensorType } from "../../../compiler/ir/types.ts";
import { chain, needed } from "./chain.ts";
import { elementwiseLoop, type Read } from "./injective.ts";
import type { KernelBuilder } from "./kernel-builder.ts";
import { type Epilogue, lowerMatmul, lowerReduction } from "./reduce.ts";

/** The operand index of a body input. */
const operandOf = (n: Node) => Number(n.attrs.name);

/** The body inputs the chain up to `target` reads (beyond `known`), as kernel reads. */
function readsFor(body: FusedBody, types: TensorType[], target: Node, known: ReadonlySet<number>): { reads: Read[]; inputs: Node[] } {
  const reach = needed(body, target, known);
  const inputs = body.inputs.filter((n) => reach.has(n.id) && !known.has(n.id));
  return { inputs, reads: inputs.map((n) => ({ buffer: `in${operandOf(n)}`, type: types[operandOf(n)] })) };
}

const loadedAs = (inputs: Node[], loaded: ScalarExpr[]) => new Map(inputs.map((n, i) => [n.id, loaded[i]]));

/** An epilogue body's matmul, the kernel inputs holding its operands (and their operand indices), and the chain after it. */
export function fusedEpilogue(node: Node, types: TensorType[]): { matmul: Node; inputs: [string, string]; operands: [number, number]; operandTypes: [TensorType, TensorType]; epilogue: Epilogue } {
  const body = fusedBody(node.attrs);
  const mm = body.anchor!;
  const [a, b] = mm.operands.map((o) => operandOf(body.graph.nodes[o]));
  const { inputs, reads } = readsFor(body, types, body.output, new Set([mm.id]));
  return {
    matmul: mm,
    inputs: [`in${a}`, `in${b}`],
    operands: [a, b],
    operandTypes: [types[a], types[b]],
    epilogue: {
      reads,
      dtype: node.type.dtype,
      value: (sb, product, loaded) => chain(sb, body, new Map([...loadedAs(inputs, loaded), [mm.id, product]]), body.output, false),
    },
  };
}

export function lowerFused(k: KernelBuilder, node: Node, types: TensorType[]): void {
  const body = fusedBody(node.attrs);
  if (body.kind === "elementwise") {
    const reads = body.inputs.map((n) => ({ buffer: `in${operandOf(n)}`, type: types[operandOf(n)] }));
    elementwiseLoop(k, node.type, reads, (loaded) => chain(k.b, body, loadedAs(body.inputs, loaded), body.output, false));
  } else if (body.kind === "epilogue") {
    const { matmul, inputs, operandTypes, epilogue } = fusedEpilogue(node, types);
    lowerMatmul(k, matmul, operandTypes, inputs, epilogue);
  } else {
    const reduction = body.anchor!;
    const x = body.graph.nodes[reduction.operands[0]];
    const { inputs, reads } = readsFor(body, types, x, new Set());
    lowerReduction(k, reduction, x.type, { reads, value: (sb, loaded) => chain(sb, body, loadedAs(inputs, loaded), x, true) });
  }
}
