// Builds manifest.json (the contract in common/manifest.ts) from a kernel plan.
import { inputNodes, nodeName, paramNodes } from "../../compiler/ir/graph.ts";
import { bf16Bits, f16Bits, roundScalar } from "../../compiler/ir/numeric.ts";
import type { DType } from "../../compiler/ir/types.ts";
import type { KernelPlan } from "../../compiler/schedule/index.ts";
import { type KernelSpec, type Manifest, MANIFEST_FORMAT, type Precision, type TensorSpec } from "../../common/manifest.ts";
import { formatMonomial, monomialOf } from "../../common/size.ts";

export const COMPILER_VERSION = "0.1.0";

/**
 * The value a const buffer holds in storage: 16-bit floats as their bits; non-finite values as
 * strings, since JSON has no Infinity, NaN or -0 (`Number()` reads them back).
 */
function encodeConst(dtype: DType, value: number): number | string {
  const stored = dtype === "f16" ? f16Bits(value) : dtype === "bf16" ? bf16Bits(value) : roundScalar(dtype, value);
  if (Object.is(stored, -0)) return "-0";
  return Number.isFinite(stored) ? stored : String(stored);
}

/** What a backend's lowering adds to each plan kernel: its dims parameters, geometry and errors. */
export type KernelLaunch = Pick<KernelSpec, "dims" | "grid" | "workgroup" | "errors" | "split" | "work">;

export function buildManifest(plan: KernelPlan, target: string, compiled: { passes: string[]; precision: Precision }, launches: readonly KernelLaunch[]): Manifest {
  const g = plan.graph;
  const spec = (name: string, node: number): TensorSpec => {
    const t = g.nodes[node].type;
    return { name, dtype: t.dtype, shape: t.shape, size: monomialOf(t.shape), buffer: plan.bufferOf[node] };
  };
  return {
    format: MANIFEST_FORMAT,
    compiler: `difftc ${COMPILER_VERSION}`,
    target,
    model: g.name,
    passes: compiled.passes,
    precision: compiled.precision,
    dims: g.dims,
    inputs: inputNodes(g).map((n) => spec(nodeName(n), n.id)),
    outputs: plan.outputs.map((o) => spec(o.name, o.node)),
    params: paramNodes(g).map((n) => spec(nodeName(n), n.id)),
    buffers: plan.buffers.map((b) => ({
      id: b.id,
      kind: b.kind,
      dtype: b.dtype,
      size: b.size,
      bytes: formatMonomial({ ...b.size, coefficient: b.size.coefficient * plan.storage[b.dtype] }),
      ...(b.slot !== undefined ? { slot: b.slot } : {}),
      ...(b.fromParams ? { fromParams: true } : {}),
      ...(b.name !== undefined ? { name: b.name } : {}),
      ...(b.value !== undefined ? { encoded: encodeConst(b.dtype, b.value) } : {}),
    })),
    slots: plan.slots.map((s) => ({ id: s.id, bytes: s.bytes })),
    kernels: plan.kernels.map((k, i) => ({
      name: k.name,
      op: k.nodes.map((n) => n.op).join("+"),
      buffers: [k.output, ...k.inputs],
      inputs: k.inputs,
      output: k.output,
      ...launches[i],
    })),
  };
}
