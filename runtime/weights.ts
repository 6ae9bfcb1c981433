// Weights for a graph: a checkpoint's tensors bound to its params by the rules in
// common/weights.js (shared with every JS-facing artifact's load()), converted to each param's
// dtype, or seeded weights drawn as each param's initialiser says.
import { Diagnostic } from "../common/diagnostic.ts";
import { bindingSummary, bindWeights, conversionNote, type WeightsBindingOptions } from "../common/weights.js";
import { type Graph, nodeName, paramNodes } from "../compiler/ir/graph.ts";
import { INT_RANGE, roundTo } from "../compiler/ir/numeric.ts";
import type { HostTensor } from "../compiler/ir/tensor.ts";
import { type Dim, type DType, isFloat } from "../compiler/ir/types.ts";
import { readSafetensors } from "./safetensors.ts";

export type { WeightsBindingOptions } from "../common/weights.js";

export interface BindOptions extends WeightsBindingOptions {
  /** Where the file came from, for messages. */
  file?: string;
  /** Receives the one note said when tensors change dtype (default: stderr). */
  onNote?: (note: string) => void;
}

/** A param as a model declares it: the graph's param nodes, or an artifact manifest's params. */
export interface ParamSpec {
  name: string;
  dtype: DType;
  shape: readonly Dim[];
}

/** The params a graph declares, by hierarchical name. */
export function graphParams(graph: Graph): ParamSpec[] {
  return paramNodes(graph).map((n) => ({ name: nodeName(n), dtype: n.type.dtype, shape: n.type.shape }));
}

/**
 * A model's params from a checkpoint's tensors, strictly bound (see common/weights.js), each
 * converted to its param's dtype. `model` names the model (a graph, or its name and params).
 */
export function bindParams(model: Graph | { name: string; params: readonly ParamSpec[] }, tensors: ReadonlyMap<string, HostTensor>, options: BindOptions = {}): Map<string, HostTensor> {
  const file = options.file ?? "weights";
  const params = "nodes" in model ? graphParams(model) : model.params;
  const entries = [...tensors].map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape }));
  const binding = bindWeights(params.map((p) => ({ name: p.name, dtype: p.dtype, shape: p.shape as number[] })), entries, options);
  if (binding.problems.length) throw new Diagnostic(bindingSummary(binding, file, model.name), undefined, [...binding.problems, ...(binding.hint ? [binding.hint] : [])]);
  const bound = new Map<string, HostTensor>();
  for (const { name, dtype } of params) {
    const source = binding.sources.get(name)!;
    const t = tensors.get(source)!;
    if (t.dtype !== dtype && !isFloat(dtype)) {
      const [lo, hi] = INT_RANGE[dtype]!;
      const bad = t.data.findIndex((x) => x < lo || x > hi);
      if (bad >= 0) throw new Diagnostic(`${file}: ${source} holds ${t.data[bad]} at index ${bad}, outside ${dtype} (${lo}..${hi})`);
    }
    bound.set(name, t.dtype === dtype ? t : { dtype, shape: t.shape, data: roundTo(dtype, Float64Array.from(t.data)) });
  }
  const note = conversionNote(binding, file);
  if (note) (options.onNote ?? ((s: string) => process.stderr.write(`note: ${s}\n`)))(note);
  return bound;
}

/** Reads a safetensors checkpoint and binds it to a model's params. */
export function readWeights(file: string, model: Parameters<typeof bindParams>[0], options: Omit<BindOptions, "file"> = {}): Map<string, HostTensor> {
  return bindParams(model, readSafetensors(file).tensors, { ...options, file });
}
