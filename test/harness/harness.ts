// The differential harness: every backend runs against the reference interpreter (XLA's
// RunAndCompare). The backends come from the target and adapter registries: a new backend is
// in the harness once it is registered, with its precision entry saying how exact it is
// (tolerance.ts says what each family allows).
import { expect } from "vitest";
import { type CompileOptions, findTarget } from "../../backends/registry.ts";
import { precisionOf } from "../../backends/common/target.ts";
import { ADAPTERS } from "../../runtime/adapters/index.ts";
import type { Graph, Node } from "../../compiler/ir/graph.ts";
import { getOp } from "../../compiler/ir/registry.ts";
import type { HostTensor } from "../../compiler/ir/tensor.ts";
import { formatShape } from "../../compiler/ir/types.ts";
import type { Session, TensorMap } from "../../runtime/adapters/adapter.ts";
import { evaluate } from "../../runtime/interpreter/index.ts";
import { printGraph } from "../../compiler/ir/print.ts";
import { findPass } from "../../compiler/passes/pipeline.ts";
import { DEFAULT_PIPELINE } from "../../compiler/passes/registry.ts";
import { LEVEL_TIE_WINDOW, MAX_LEVEL_FLIPS, type OpFamily, tolerance } from "./tolerance.ts";
import { type NearTie, nearTies } from "../../compiler/ir/ops/attention-quant.ts";

export interface BackendUnderTest {
  name: string;
  load(graph: Graph, weights: TensorMap): Promise<Session>;
  /**
   * Bit-exact with the interpreter on every op it computes by the interpreter's rule: float64
   * in the rule's order, rounded once (see tolerance.ts, family "exact"). Outputs built only
   * from such ops must then match bit for bit, -0 included.
   */
  exactSingleOps: boolean;
  /** Multiplies every family's tolerance (tolerance.ts): 1 for a backend that computes as the JS one does. */
  toleranceFactor: number;
  /** The ops it runs directly; the others run as their decomposition. */
  ops: ReadonlySet<string>;
}

/**
 * Each registered backend that runs on every machine the tests run on, as the harness runs it.
 * `sharedLowering` also runs a target on the shared lowering wherever it has one (no packed JS
 * matmul), so that the lowering a GPU target relies on is checked on every op on the CPU. Backends
 * that need hardware (a GPU) or whose builds are slow (cuda-emu compiles C++ per graph) have
 * test files of their own.
 */
function registered(name: string, options: Pick<CompileOptions, "sharedLowering" | "precision"> = {}): BackendUnderTest {
  const adapter = ADAPTERS.find((a) => a.name === name)!;
  const target = findTarget(adapter.target);
  const precision = precisionOf(target, options);
  const labels = [...(options.sharedLowering ? ["shared lowering"] : []), ...(options.precision ? [options.precision] : [])];
  return {
    name: labels.length ? `${name} (${labels.join(", ")})` : name,
    load: (graph, weights) => adapter.load(target.compile(graph, options), weights),
    ...target.precisions[precision]!,
    ops: target.ops(),
  };
}

/** The JS backend in its default precision (f32), in its exact mode, and on the shared lowering. */
export const BACKENDS: BackendUnderTest[] = [registered("js"), registered("js", { precision: "f64" }), registered("js", { sharedLowering: true })];

/** The harness entry of a registered backend, for the test files of backends outside BACKENDS. */
export const backendUnderTest = registered;

/** What familyOf needs to know of a backend; without one, the family of a backend that is not exact. */
type Exactness = Pick<BackendUnderTest, "exactSingleOps"> & Partial<Pick<BackendUnderTest, "ops">>;

/** The quantised attention ops, whose levels a kernel may find on the other side of a near tie. */
const QUANT_OPS: ReadonlySet<string> = new Set(["qflash_attention", "qflash_diffattn"]);

/** The streaming attention kernels: no backend computes them in the interpreter's order. */
const FLASH_OPS: ReadonlySet<string> = new Set(["flash_attention", "flash_diffattn", "qflash_attention", "qflash_diffattn"]);

/**
 * The family of the error one node may add, or undefined for nodes that add none on any
 * backend (inputs, params, consts, iota, and copies: reshape, transpose, slice, concat, gather).
 */
export function nodeFamily(node: Node, backend?: Partial<Pick<BackendUnderTest, "ops">>): Exclude<OpFamily, "exact" | "model"> | undefined {
  // A backend without the streaming kernel runs its decomposition.
  if (FLASH_OPS.has(node.op)) return !backend?.ops || backend.ops.has(node.op) ? "flash" : "decomposed";
  // A fused node rounds every intermediate of its body as the unfused ops do: its family is
  // theirs, an elementwise chain, or a chain around one matmul or reduction.
  if (node.op === "fused") return node.attrs.kind === "elementwise" ? "elementwise" : "reduction";
  const def = getOp(node.op);
  if (def?.decompose) return "decomposed";
  switch (def?.pattern) {
    case "elementwise":
      return "elementwise";
    case "reduction":
    case "matmul":
      return "reduction";
    case "source":
    case "injective":
      return undefined;
    default:
      return "decomposed";
  }
}

/**
 * The family of one output, from the error sources among the nodes it depends on. On a backend
 * with exactSingleOps, elementwise and reduction nodes are no source: with no source at all
 * the output is "exact". Otherwise one accumulating source (reduction, flash, decomposed) and
 * any number of elementwise ones give the loosest of their families, unless the source is a
 * flash or decomposed node whose result later ops compute with (they amplify its few units:
 * exp by |x|, a difference by cancellation), or there are several: then "carried" on a backend
 * whose later ops add no rounding of their own (exactSingleOps), "model" on one that rounds
 * every op its own way.
 */
export function outputFamily(graph: Graph, output: number, backend?: Exactness): OpFamily {
  const inCone = new Set<number>([output]);
  for (let id = output; id >= 0; id--) if (inCone.has(id)) for (const o of graph.nodes[id].operands) inCone.add(o);
  const exact = backend?.exactSingleOps ?? false;
  const sourceFamily = (n: Node) => {
    const f = nodeFamily(n, backend);
    return exact && (f === "elementwise" || f === "reduction") ? undefined : f;
  };
  const accumulating: Node[] = [];
  let elementwise = false;
  for (const id of inCone) {
    const f = sourceFamily(graph.nodes[id]);
    if (f === "elementwise") elementwise = true;
    else if (f !== undefined) accumulating.push(graph.nodes[id]);
  }
  const chain: OpFamily = exact ? "carried" : "model";
  if (accumulating.length > 1) return chain;
  if (accumulating.length === 0) return elementwise ? "elementwise" : "exact";
  const source = accumulating[0];
  const family = sourceFamily(source)!;
  if (family === "reduction") return family;
  // Whether a node that reads the source (directly or through copies) computes with it.
  const tainted = new Set([source.id]);
  for (const id of [...inCone].sort((a, b) => a - b)) {
    const n = graph.nodes[id];
    if (id === source.id || !n.operands.some((o) => tainted.has(o))) continue;
    if (nodeFamily(n) !== undefined) return chain;
    tainted.add(id);
  }
  return family;
}

const LOOSENESS: OpFamily[] = ["exact", "flash", "elementwise", "decomposed", "carried", "reduction", "model"];

/** The loosest family among a graph's outputs: how much rounding can pile up between input and output. */
export function familyOf(graph: Graph, backend?: Exactness): OpFamily {
  let worst: OpFamily = "exact";
  for (const o of graph.outputs) {
    const f = outputFamily(graph, o.node, backend);
    if (LOOSENESS.indexOf(f) > LOOSENESS.indexOf(worst)) worst = f;
  }
  return worst;
}

const show = (x: number) => (Object.is(x, -0) ? "-0" : String(x));

/** The elements of `actual` outside `family`'s tolerance (times `factor`) of `expected`, each with what is wrong. */
function outOfTolerance(actual: HostTensor, expected: HostTensor, family: OpFamily, label: string, factor: number): { index: number; message: string }[] {
  const { rtol, atol, exact } = tolerance(expected.dtype, family, factor);
  const out: { index: number; message: string }[] = [];
  for (let i = 0; i < expected.data.length; i++) {
    const a = actual.data[i];
    const e = expected.data[i];
    if (Object.is(a, e) || (Number.isNaN(a) && Number.isNaN(e))) continue;
    if (exact) out.push({ index: i, message: `${label}: element ${i} is ${show(a)}, the interpreter says ${show(e)} (the ${family} family for ${expected.dtype}: bit for bit)` });
    else if (!(Math.abs(a - e) <= atol + rtol * Math.abs(e)))
      out.push({ index: i, message: `${label}: element ${i} is ${a}, the interpreter says ${e} (|diff| ${Math.abs(a - e)} > ${atol} + ${rtol}·|e|, ${family} tolerance for ${expected.dtype})` });
  }
  return out;
}

/** Every element of `actual` within `family`'s tolerance (times `factor`) of `expected`; bit for bit in the exact family. */
export function expectClose(actual: HostTensor, expected: HostTensor, family: OpFamily, label: string, factor = 1): void {
  expect(actual.dtype, `${label}: dtype`).toBe(expected.dtype);
  expect(formatShape(actual.shape), `${label}: shape`).toBe(formatShape(expected.shape));
  const [first] = outOfTolerance(actual, expected, family, label, factor);
  if (first) expect.fail(first.message);
}

/** One output's elements out of tolerance, as the interpreter (with `flipped` near ties) gives them. */
interface Mismatch {
  output: string;
  node: number;
  index: number;
  message: string;
}

/**
 * The outputs of `graph` compared with the interpreter's, its near ties of the quantised
 * attention in `flipped` taking their other side (tolerance.ts, LEVEL_TIE_WINDOW): the elements
 * out of tolerance, and the near ties the interpreter met.
 */
function compareWithTies(graph: Graph, inputs: TensorMap, weights: TensorMap, dims: ReadonlyMap<string, number> | undefined, actual: TensorMap, backend: BackendUnderTest, family: OpFamily | undefined, flipped: ReadonlySet<number>): { mismatches: Mismatch[]; ties: NearTie[] } {
  nearTies.reset(LEVEL_TIE_WINDOW, flipped);
  let expected: Map<string, HostTensor>;
  let ties: NearTie[];
  try {
    expected = evaluate(graph, inputs, weights, { dims });
    ties = nearTies.found;
  } finally {
    nearTies.reset(0);
  }
  const mismatches: Mismatch[] = [];
  for (const [name, e] of expected) {
    const a = actual.get(name);
    expect(a, `${backend.name}: output ${name} missing`).toBeDefined();
    expect(a!.dtype, `${backend.name} ${graph.name}.${name}: dtype`).toBe(e.dtype);
    expect(formatShape(a!.shape), `${backend.name} ${graph.name}.${name}: shape`).toBe(formatShape(e.shape));
    const node = graph.outputs.find((o) => o.name === name)!.node;
    for (const m of outOfTolerance(a!, e, family ?? outputFamily(graph, node, backend), `${backend.name} ${graph.name}.${name}`, backend.toleranceFactor)) mismatches.push({ output: name, node, ...m });
  }
  return { mismatches, ties };
}

/**
 * The near ties of the quantised attention that, taking their other side, may explain a
 * mismatch: those of its row (a qflash output's row is its last axis) in the qflash op that
 * computed it (the interpreter evaluates them in graph order), and that op's V ties; where the
 * output is not a qflash op's own, every tie.
 */
function candidateTies(graph: Graph, m: Mismatch, ties: NearTie[]): number[] {
  const qflash = graph.nodes.filter((n) => QUANT_OPS.has(n.op)).map((n) => n.id);
  const node = graph.nodes[m.node];
  const call = qflash.indexOf(node.id);
  const row = Math.floor(m.index / (node.type.shape[node.type.shape.length - 1] as number));
  return ties.flatMap((t, i) => (call < 0 || (t.call === call && (t.row === row || t.row === -1)) ? [i] : []));
}

/** The subsets of `xs` of `size` elements. */
function* subsets(xs: number[], size: number, from = 0): Generator<number[]> {
  if (size === 0) yield [];
  else for (let i = from; i <= xs.length - size; i++) for (const rest of subsets(xs, size - 1, i + 1)) yield [xs[i], ...rest];
}

/**
 * Outputs out of tolerance where the graph has quantised attention: the interpreter is asked
 * again with near ties flipped, for each mismatched row the fewest of its own that make it
 * match, at most MAX_LEVEL_FLIPS in all, and everything must then match (tolerance.ts says why).
 */
function explainByLevelFlips(graph: Graph, inputs: TensorMap, weights: TensorMap, dims: ReadonlyMap<string, number> | undefined, actual: TensorMap, backend: BackendUnderTest, family: OpFamily | undefined): void {
  const compare = (flipped: ReadonlySet<number>) => compareWithTies(graph, inputs, weights, dims, actual, backend, family, flipped);
  let flipped = new Set<number>();
  let { mismatches, ties } = compare(flipped);
  while (mismatches.length > 0) {
    const first = mismatches[0];
    if (flipped.size >= MAX_LEVEL_FLIPS) expect.fail(`${first.message}; after ${flipped.size} near-tie levels flipped, the most tolerance.ts allows (MAX_LEVEL_FLIPS)`);
    const candidates = candidateTies(graph, first, ties).filter((t) => !flipped.has(t));
    const row = (m: Mismatch) => `${m.output}:${Math.floor(m.index / (graph.nodes[m.node].type.shape.at(-1) as number))}`;
    // The fewest of the row's near ties whose other sides make it match.
    let fixed = false;
    for (let size = 1; size <= MAX_LEVEL_FLIPS - flipped.size && !fixed; size++) {
      for (const some of subsets(candidates, size)) {
        const next = compare(new Set([...flipped, ...some]));
        if (!next.mismatches.some((m) => row(m) === row(first))) {
          flipped = new Set([...flipped, ...some]);
          ({ mismatches, ties } = next);
          fixed = true;
          break;
        }
      }
    }
    if (!fixed) expect.fail(`${first.message}; no near tie of the level rule explains it (${candidates.length} within LEVEL_TIE_WINDOW of a tie tried, ${flipped.size} flipped)`);
  }
}

/**
 * Runs `graph` on the backend and on the interpreter with the same inputs and weights, and
 * compares every output within its family's tolerance (outputFamily), or within `family` for
 * all outputs when given.
 */
export async function runAndCompare(backend: BackendUnderTest, graph: Graph, inputs: TensorMap, weights: TensorMap, dims?: ReadonlyMap<string, number>, family?: OpFamily): Promise<void> {
  const session = await backend.load(graph, weights);
  const actual = await session.run(inputs);
  // Quantised attention: a kernel in another precision may break a near tie of the level rule the other way.
  if (graph.nodes.some((n) => QUANT_OPS.has(n.op))) return explainByLevelFlips(graph, inputs, weights, dims, actual, backend, family);
  const expected = evaluate(graph, inputs, weights, { dims });
  for (const [name, e] of expected) {
    const a = actual.get(name);
    expect(a, `${backend.name}: output ${name} missing`).toBeDefined();
    const output = graph.outputs.find((o) => o.name === name)!.node;
    expectClose(a!, e, family ?? outputFamily(graph, output, backend), `${backend.name} ${graph.name}.${name}`, backend.toleranceFactor);
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
