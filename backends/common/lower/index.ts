// The shared lowering: each kernel of a plan becomes kernel IR, chosen by the op's fusion
// pattern in the registry (elementwise, reduction, matmul) and, for the injective, source and
// opaque ops that differ in kind, by the table below. A backend prints the result through its
// language table, or takes a kernel over with a template of its own.
import type { Node } from "../../../compiler/ir/graph.ts";
import { allOps, getOp } from "../../../compiler/ir/registry.ts";
import type { TensorType } from "../../../compiler/ir/types.ts";
import type { Kernel as PlanKernel, KernelPlan } from "../../../compiler/schedule/index.ts";
import { explicitCasts } from "../kernel/explicit-casts.ts";
import { flattenGrid } from "../kernel/flatten-grid.ts";
import type { Kernel } from "../kernel/ir.ts";
import type { Cooperation } from "./cooperative.ts";
import { lowerFused } from "./fused.ts";
import { lowerConcat, lowerElementwise, lowerGather, lowerIota, lowerNumel, lowerStridedCopy } from "./injective.ts";
import { KernelBuilder } from "./kernel-builder.ts";
import { lowerMatmul, lowerReduction, lowerSoftmax } from "./reduce.ts";

type Lowering = (k: KernelBuilder, node: Node, types: TensorType[]) => void;

const BY_OP: Record<string, Lowering> = {
  transpose: lowerStridedCopy,
  slice: lowerStridedCopy,
  broadcast: lowerStridedCopy,
  concat: lowerConcat,
  gather: lowerGather,
  iota: lowerIota,
  numel: lowerNumel,
  softmax: (k, node) => lowerSoftmax(k, node),
  fused: lowerFused,
};

const BY_PATTERN: Partial<Record<string, Lowering>> = {
  elementwise: lowerElementwise,
  reduction: (k, node, types) => lowerReduction(k, node, types[0]),
  matmul: (k, node, types) => lowerMatmul(k, node, types),
};

/** The ops the shared lowering handles; a target implements the rest with templates or decomposes them. */
export function lowers(op: string): boolean {
  const def = getOp(op);
  // High-level ops of a lowered pattern (rmsnorm is a reduction) still run as their decomposition.
  return op in BY_OP || (def !== undefined && !def.decompose && BY_PATTERN[def.pattern] !== undefined);
}

/** Every op of the registry the shared lowering handles: what a target runs directly before its templates. */
export function loweredOps(): string[] {
  return allOps().filter((op) => lowers(op.name)).map((op) => op.name);
}

/** A plan kernel as kernel IR; `cooperation`: a GPU target's offer of cooperative reductions (cooperative.ts). */
export function lowerKernel(plan: KernelPlan, kernel: PlanKernel, cooperation?: Cooperation): Kernel {
  const { k, node, types } = KernelBuilder.forPlan(plan, kernel, cooperation);
  const lowering = BY_OP[node.op] ?? BY_PATTERN[getOp(node.op)?.pattern ?? ""];
  if (!lowering || !lowers(node.op)) throw new Error(`no shared lowering for ${node.op}; the target must decompose it or bring a template`);
  lowering(k, node, types);
  return k.finish();
}

/**
 * A plan kernel as kernel IR for a GPU language: one grid loop that threads (or, in a
 * cooperative kernel, workgroups) share, every conversion explicit.
 */
export function lowerGpuKernel(plan: KernelPlan, kernel: PlanKernel, cooperation?: Cooperation): Kernel {
  return flattenGrid(explicitCasts(lowerKernel(plan, kernel, cooperation)));
}
