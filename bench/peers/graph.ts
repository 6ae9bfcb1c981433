// What both peers need from a difftc graph before converting it: the high-level ops they do
// not implement replaced by the registry's decompositions, sizes resolved, inputs checked.
import { decompose } from "../../compiler/passes/decompose.ts";
import type { Graph } from "../../compiler/ir/graph.ts";
import { getOp } from "../../compiler/ir/registry.ts";
import type { HostTensor } from "../../compiler/ir/tensor.ts";
import { formatShape, resolveShape } from "../../compiler/ir/types.ts";
import "../../compiler/ir/ops/index.ts";

/** A peer framework running one difftc graph at fixed sizes. */
export interface PeerRunner {
  run(inputs: ReadonlyMap<string, HostTensor>): Promise<Map<string, HostTensor>>;
  /**
   * These inputs converted once to the peer's own tensors, and a forward pass on them that
   * awaits the outputs in the peer's own form: what a user of the peer times, without the
   * float64 conversions of `run` that difftc's own runtimes do not need.
   */
  bindInputs(inputs: ReadonlyMap<string, HostTensor>): Promise<BoundForward>;
  /** Frees the session or the uploaded tensors; the runner is unusable afterwards. */
  release(): Promise<void>;
}

export interface BoundForward {
  forward(): Promise<void>;
  /** Frees the converted inputs. */
  release(): void;
}

/**
 * The graph with every op the peer lacks decomposed into primitives. Throws, naming the
 * ops, when one of them has no decomposition.
 */
export function lowerForPeer(graph: Graph, peer: string, implemented: ReadonlySet<string>): Graph {
  const missing = new Set(graph.nodes.map((n) => n.op).filter((op) => !implemented.has(op)));
  if (missing.size === 0) return graph;
  const unmappable = [...missing].filter((op) => !getOp(op)?.decompose);
  if (unmappable.length > 0) throw new Error(`${peer} peer: cannot map op${unmappable.length > 1 ? "s" : ""} ${unmappable.join(", ")} (no ${peer} equivalent and no decomposition into primitives)`);
  const lowered = decompose(graph, implemented);
  return lowerForPeer(lowered, peer, implemented);
}

/** Every input given, with the dtype and (resolved) shape the runner was built for. */
export function checkInputs(graph: Graph, inputs: ReadonlyMap<string, HostTensor>, dims: ReadonlyMap<string, number>, peer: string): void {
  for (const node of graph.nodes) {
    if (node.op !== "input") continue;
    const name = String(node.attrs.name);
    const value = inputs.get(name);
    const shape = resolveShape(node.type.shape, dims);
    if (!value) throw new Error(`${peer} peer: input ${name} (${node.type.dtype}${formatShape(shape)}) was not given`);
    if (value.dtype !== node.type.dtype || formatShape(value.shape) !== formatShape(shape))
      throw new Error(`${peer} peer: input ${name} must be ${node.type.dtype}${formatShape(shape)} (the runner was built for these sizes), got ${value.dtype}${formatShape(value.shape)}`);
  }
}
