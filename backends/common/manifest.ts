// manifest.json: what an artifact computes and how, shared by every backend.
import { inputNodes, nodeName, paramNodes } from "../../compiler/ir/graph.ts";
import { bf16Bits, f16Bits, roundScalar } from "../../compiler/ir/numeric.ts";
import type { Dim, DType } from "../../compiler/ir/types.ts";
import { BYTES, type KernelPlan } from "../../compiler/schedule/index.ts";
import { formatMonomial, type Monomial, monomialOf } from "../../compiler/schedule/size.ts";

export const COMPILER_VERSION = "0.1.0";

export interface TensorSpec {
  name: string;
  dtype: DType;
  shape: Dim[];
  /** Elements, as `coefficient * symbols`. */
  size: Monomial;
  buffer: number;
}

export interface Manifest {
  format: "difftc-artifact";
  compiler: string;
  target: string;
  model: string;
  passes: string[];
  dims: string[];
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  params: TensorSpec[];
  buffers: { id: number; kind: string; dtype: DType; size: Monomial; bytes: string; slot?: number; name?: string; encoded?: number | string }[];
  slots: { id: number; bytes: Monomial }[];
  kernels: { name: string; op: string; inputs: number[]; output: number; launch: string }[];
}

/**
 * The value a const buffer holds in storage: 16-bit floats as their bits; non-finite values as
 * strings, since JSON has no Infinity, NaN or -0 (`Number()` reads them back).
 */
function encodeConst(dtype: DType, value: number): number | string {
  const stored = dtype === "f16" ? f16Bits(value) : dtype === "bf16" ? bf16Bits(value) : roundScalar(dtype, value);
  if (Object.is(stored, -0)) return "-0";
  return Number.isFinite(stored) ? stored : String(stored);
}

export function buildManifest(plan: KernelPlan, target: string, passes: string[]): Manifest {
  const g = plan.graph;
  const spec = (name: string, node: number): TensorSpec => {
    const t = g.nodes[node].type;
    return { name, dtype: t.dtype, shape: t.shape, size: monomialOf(t.shape), buffer: plan.bufferOf[node] };
  };
  return {
    format: "difftc-artifact",
    compiler: `difftc ${COMPILER_VERSION}`,
    target,
    model: g.name,
    passes,
    dims: g.dims,
    inputs: inputNodes(g).map((n) => spec(nodeName(n), n.id)),
    outputs: plan.outputs.map((o) => spec(o.name, o.node)),
    params: paramNodes(g).map((n) => spec(nodeName(n), n.id)),
    buffers: plan.buffers.map((b) => ({
      id: b.id,
      kind: b.kind,
      dtype: b.dtype,
      size: b.size,
      bytes: formatMonomial({ ...b.size, coefficient: b.size.coefficient * BYTES[b.dtype] }),
      ...(b.slot !== undefined ? { slot: b.slot } : {}),
      ...(b.name !== undefined ? { name: b.name } : {}),
      ...(b.value !== undefined ? { encoded: encodeConst(b.dtype, b.value) } : {}),
    })),
    slots: plan.slots.map((s) => ({ id: s.id, bytes: s.bytes })),
    kernels: plan.kernels.map((k) => {
      const root = k.nodes[k.nodes.length - 1];
      return { name: k.name, op: k.nodes.map((n) => n.op).join("+"), inputs: k.inputs, output: k.output, launch: formatMonomial(monomialOf(root.type.shape)) };
    }),
  };
}
