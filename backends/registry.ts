// The target registry: one entry per backend, and the only list of them. The CLI (--target,
// its help and errors) and the differential harness read it.
import { Diagnostic } from "../common/diagnostic.ts";
import type { Target } from "./common/target.ts";
import { cudaTarget } from "./cuda/index.ts";
import { jsTarget } from "./js/index.ts";
import { wgslTarget } from "./wgsl/index.ts";

export type { CompileOptions, Precision, Target } from "./common/target.ts";

export const TARGETS: readonly Target[] = [jsTarget, wgslTarget, cudaTarget];

export function targetNames(): string[] {
  return TARGETS.map((t) => t.name);
}

/** The target called `name`, or a diagnostic naming the targets that exist. */
export function findTarget(name: string): Target {
  const target = TARGETS.find((t) => t.name === name);
  if (!target) throw new Diagnostic(`unknown target '${name}' (targets: ${targetNames().join(", ")})`);
  return target;
}
