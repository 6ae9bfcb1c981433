// The model the cooperative-reduction tests run on every GPU backend: every reduction, softmax
// and norm over rows of L, and over other axes of an [N, 3, L] tensor (sum over everything,
// axes that coalesce into one, a reduction across rows, softmax on a leading and a middle axis).
import type { Graph } from "../../compiler/ir/graph.ts";
import { runPipeline } from "../../compiler/passes/pipeline.ts";
import { DEFAULT_PIPELINE } from "../../compiler/passes/registry.ts";
import { compileSource } from "./dsl.ts";

const MODEL = `model M(L) {
  dim N
  input x: f32[N, L]
  input y: f32[N, 3, L]
  param w: f32[L]
  param b: f32[L]
  output s = sum(x, axis = -1)
  output m = mean(x * x, axis = -1, keepdims = true)
  output mx = max(x, axis = -1)
  output mn = min(x, axis = -1)
  output all = sum(x)
  output across = max(y, axes = [1, 2])
  output down = min(y, axis = 0)
  output p = softmax(x)
  output p0 = softmax(y, axis = 0)
  output p1 = softmax(y, axis = 1)
  output r = rmsnorm(x, w, eps = 1e-5)
  output l = layernorm(x, w, b, eps = 1e-5)
}`;

/** The model over rows of `length`, unfused and after the default pipeline (norms as fused prologue reductions). */
export function reductionStages(length: number): Graph[] {
  const graph = compileSource(MODEL, { set: new Map([["L", length]]) });
  return [graph, runPipeline(graph, DEFAULT_PIPELINE, { log: () => {} })];
}
