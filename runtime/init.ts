// Seeded values for a graph's parameters (from each param's init attributes) and random
// inputs for running it. Each tensor draws from its own stream keyed by its name, so adding,
// removing or reordering one parameter leaves every other parameter's values unchanged.
import { Diagnostic } from "../common/diagnostic.ts";
import { type Graph, type Node, inputNodes, nodeName, paramNodes } from "../compiler/ir/graph.ts";
import { checkGraphSizes, checkNodeSize } from "../compiler/ir/limits.ts";
import { roundScalar } from "../compiler/ir/numeric.ts";
import { type HostTensor, tensor } from "../compiler/ir/tensor.ts";
import { formatShape, isFloat, isStatic, resolveShape } from "../compiler/ir/types.ts";
import { Rng } from "./random.ts";

const INIT_ARITY: Record<string, { args: number; meaning: string }> = {
  normal: { args: 2, meaning: "[mean, std]" },
  uniform: { args: 2, meaning: "[lo, hi]" },
  constant: { args: 1, meaning: "[value]" },
};

/** Seeded values for every param; `onProgress` hears after each param how many of how many are done. */
export function initWeights(graph: Graph, seed: number, onProgress?: (done: number, total: number) => void): Map<string, HostTensor> {
  const weights = new Map<string, HostTensor>();
  const params = paramNodes(graph);
  for (const node of params) {
    const name = nodeName(node);
    if (weights.has(name)) throw new Diagnostic(`parameter ${name} is declared twice`, node.span);
    const shape = node.type.shape;
    if (!isStatic(shape)) {
      throw new Diagnostic(`parameter ${name} has shape ${formatShape(shape)}; parameters need static sizes`, node.span);
    }
    checkNodeSize(node);
    const sample = sampler(node, name, Rng.forKey(seed, `param:${name}`));
    const t = tensor(node.type.dtype, shape);
    for (let i = 0; i < t.data.length; i++) t.data[i] = roundScalar(t.dtype, sample());
    weights.set(name, t);
    onProgress?.(weights.size, params.length);
  }
  return weights;
}

function sampler(node: Node, name: string, rng: Rng): () => number {
  const init = String(node.attrs.init);
  const args = node.attrs.init_args;
  if (!Object.hasOwn(INIT_ARITY, init)) {
    throw new Diagnostic(`parameter ${name} has unknown init "${init}" (normal, uniform or constant)`, node.span);
  }
  const arity = INIT_ARITY[init];
  if (!Array.isArray(args) || args.length !== arity.args || !args.every((a) => typeof a === "number")) {
    throw new Diagnostic(`parameter ${name}: init ${init} takes init_args ${arity.meaning}`, node.span);
  }
  const [a, b] = args as number[];
  switch (init) {
    case "normal":
      return () => a + b * rng.normal();
    case "uniform":
      return () => a + (b - a) * rng.uniform();
    default: // constant
      return () => a;
  }
}

/** Index inputs stay below this when no gather tells us the table size. */
const DEFAULT_INDEX_BOUND = 100;
const INDEX_DTYPE_BOUND: Record<string, number> = { i8: 128, u8: 256, i32: 2 ** 31 };

/**
 * Random values for every input: floats N(0, 1), bools 0/1, and integers in [0, K) where K
 * is the row count of the smallest table gathered with them, so embedding lookups stay in
 * range.
 */
export function randomInputs(graph: Graph, dims: ReadonlyMap<string, number>, seed: number): Map<string, HostTensor> {
  const inputs = new Map<string, HostTensor>();
  // Every tensor the run will make, not only the inputs: refused before anything is allocated.
  checkGraphSizes(graph, dims);
  for (const node of inputNodes(graph)) {
    const name = nodeName(node);
    const t = tensor(node.type.dtype, bound(node.type.shape, dims, node, `input ${name}`));
    const rng = Rng.forKey(seed, `input:${name}`);
    if (isFloat(t.dtype)) {
      for (let i = 0; i < t.data.length; i++) t.data[i] = roundScalar(t.dtype, rng.normal());
    } else if (t.dtype === "bool") {
      for (let i = 0; i < t.data.length; i++) t.data[i] = rng.int(2);
    } else {
      const k = Math.min(indexBound(graph, node, dims), INDEX_DTYPE_BOUND[t.dtype]);
      for (let i = 0; i < t.data.length; i++) t.data[i] = rng.int(k);
    }
    inputs.set(name, t);
  }
  return inputs;
}

function indexBound(graph: Graph, input: Node, dims: ReadonlyMap<string, number>): number {
  let k = DEFAULT_INDEX_BOUND;
  let gathered = false;
  for (const n of graph.nodes) {
    if (n.op !== "gather" || n.operands[1] !== input.id) continue;
    const table = graph.nodes[n.operands[0]];
    const rows = bound(table.type.shape.slice(0, 1), dims, table, "gather table")[0] ?? 1;
    k = gathered ? Math.min(k, rows) : rows;
    gathered = true;
  }
  return k;
}

function bound(shape: Node["type"]["shape"], dims: ReadonlyMap<string, number>, node: Node, what: string): number[] {
  try {
    return resolveShape(shape, dims);
  } catch (e) {
    throw new Diagnostic(`${what}: ${(e as Error).message}`, node.span);
  }
}
