// The differential harness: every backend runs against the reference interpreter (XLA's
// RunAndCompare). Adding a backend is one line in BACKENDS.
import { expect } from "vitest";
import { compileJs } from "../../backends/js/index.ts";
import type { Graph } from "../../compiler/ir/graph.ts";
import { getOp } from "../../compiler/ir/registry.ts";
import type { HostTensor } from "../../compiler/ir/tensor.ts";
import { formatShape } from "../../compiler/ir/types.ts";
import type { Session, TensorMap } from "../../runtime/adapters/adapter.ts";
import { loadJs } from "../../runtime/adapters/js/index.ts";
import { evaluate } from "../../runtime/interpreter/index.ts";
import { printGraph } from "../../compiler/ir/print.ts";
import { findPass } from "../../compiler/passes/pipeline.ts";
import { DEFAULT_PIPELINE } from "../../compiler/passes/registry.ts";
import { type OpFamily, tolerance } from "./tolerance.ts";

export interface BackendUnderTest {
  name: string;
  load(graph: Graph, weights: TensorMap): Promise<Session>;
}

export const BACKENDS: BackendUnderTest[] = [
  { name: "js", load: (graph, weights) => loadJs(compileJs(graph), weights) },
];

/** The loosest family among a graph's ops: how much rounding can pile up between input and output. */
export function familyOf(graph: Graph): OpFamily {
  let accumulating = 0;
  for (const n of graph.nodes) {
    const pattern = getOp(n.op)?.pattern;
    if (pattern === "opaque") return "model";
    if (pattern === "reduction" || pattern === "matmul") accumulating++;
  }
  return accumulating > 1 ? "model" : accumulating === 1 ? "reduction" : "elementwise";
}

export function expectClose(actual: HostTensor, expected: HostTensor, family: OpFamily, label: string): void {
  expect(actual.dtype, `${label}: dtype`).toBe(expected.dtype);
  expect(formatShape(actual.shape), `${label}: shape`).toBe(formatShape(expected.shape));
  const { rtol, atol } = tolerance(expected.dtype, family);
  for (let i = 0; i < expected.data.length; i++) {
    const a = actual.data[i];
    const e = expected.data[i];
    if (Object.is(a, e) || (Number.isNaN(a) && Number.isNaN(e))) continue;
    if (!(Math.abs(a - e) <= atol + rtol * Math.abs(e)))
      expect.fail(`${label}: element ${i} is ${a}, the interpreter says ${e} (|diff| ${Math.abs(a - e)} > ${atol} + ${rtol}·|e|, ${family} tolerance for ${expected.dtype})`);
  }
}

/** Runs `graph` on the backend and on the interpreter with the same inputs and weights, and compares every output. */
export async function runAndCompare(backend: BackendUnderTest, graph: Graph, inputs: TensorMap, weights: TensorMap, dims?: ReadonlyMap<string, number>, family: OpFamily = familyOf(graph)): Promise<void> {
  const expected = evaluate(graph, inputs, weights, { dims });
  const session = await backend.load(graph, weights);
  const actual = await session.run(inputs);
  for (const [name, e] of expected) {
    const a = actual.get(name);
    expect(a, `${backend.name}: output ${name} missing`).toBeDefined();
    expectClose(a!, e, family, `${backend.name} ${graph.name}.${name}`);
  }
}

/**
 * The graph before the pipeline and after each of its passes that changed it, labelled by the
 * passes run so far: the stages the harness runs every backend on.
 */
export function pipelineStages(graph: Graph, passes: readonly string[] = DEFAULT_PIPELINE): { label: string; graph: Graph }[] {
  const stages = [{ label: "--passes none", graph }];
  let g = graph;
  let text = printGraph(g);
  passes.forEach((name, i) => {
    g = findPass(name).run(g);
    const next = printGraph(g);
    if (next !== text) stages.push({ label: `after ${name} (pass ${i + 1} of the default pipeline)`, graph: g });
    text = next;
  });
  return stages;
}

/** runAndCompare on every stage of the default pipeline: each against the interpreter on that stage's graph. */
export async function runAndCompareStages(backend: BackendUnderTest, graph: Graph, inputs: TensorMap, weights: TensorMap, dims?: ReadonlyMap<string, number>): Promise<void> {
  for (const stage of pipelineStages(graph)) {
    try {
      await runAndCompare(backend, stage.graph, inputs, weights, dims);
    } catch (e) {
      if (e instanceof Error) e.message = `${stage.label}: ${e.message}`;
      throw e;
    }
  }
}
