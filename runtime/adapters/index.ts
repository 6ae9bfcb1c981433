// One runtime adapter per target, behind one interface: load an artifact (compiled in memory
// or a directory) with its weights, then run it. The CLI's --backend and the differential
// harness read this list; `interp` (the reference interpreter) is not an adapter.
import type { Artifact } from "../../backends/common/artifact.ts";
import { findTarget, TARGETS } from "../../backends/registry.ts";
import { Diagnostic } from "../../common/diagnostic.ts";
import type { Session, TensorMap } from "./adapter.ts";
import { cudaUnavailable, loadCuda } from "./cuda/index.ts";
import { loadJs } from "./js/index.ts";
import { webgpuUnavailableSync } from "./webgpu/device.ts";
import { loadWebgpu } from "./webgpu/index.ts";

export interface Adapter {
  /** The name --backend takes. */
  name: string;
  /** The target whose artifacts it runs. */
  target: string;
  /** Why it cannot run here (a missing driver or compiler), or undefined when it can. */
  unavailable(): string | undefined;
  load(artifact: Artifact | string, weights: TensorMap): Promise<Session>;
}

export const ADAPTERS: readonly Adapter[] = [
  { name: "js", target: "js", unavailable: () => undefined, load: loadJs },
  { name: "webgpu", target: "wgsl", unavailable: webgpuUnavailableSync, load: loadWebgpu },
  { name: "cuda", target: "cuda", unavailable: () => cudaUnavailable("cuda"), load: (artifact, weights) => loadCuda(artifact, weights, "cuda") },
  { name: "cuda-emu", target: "cuda", unavailable: () => cudaUnavailable("cuda-emu"), load: (artifact, weights) => loadCuda(artifact, weights, "cuda-emu") },
];

/** Every name --backend takes: the interpreter, then one per adapter. */
export function backendNames(): string[] {
  return ["interp", ...ADAPTERS.map((a) => a.name)];
}

/** The adapter for `name`, or a diagnostic naming the backends that exist (or why this one cannot run here). */
export function findAdapter(name: string): Adapter {
  const adapter = ADAPTERS.find((a) => a.name === name);
  if (!adapter) throw new Diagnostic(`unknown backend '${name}' (backends: ${backendNames().join(", ")})`);
  const why = adapter.unavailable();
  if (why) throw new Diagnostic(`backend '${name}' cannot run here: ${why}`);
  return adapter;
}

// Every target has an adapter, and every adapter a target.
for (const t of TARGETS) if (!ADAPTERS.some((a) => a.target === t.name)) throw new Error(`target ${t.name} has no runtime adapter`);
for (const a of ADAPTERS) findTarget(a.target);
