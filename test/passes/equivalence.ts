// What every pass test needs: before/after IR text, bit-exact comparison of the interpreter's
// outputs, and random graphs salted with the shapes cleanups look for (x * 1, x + 0 on -0,
// neg(neg x), reshape round trips, duplicates, dead nodes), so the equivalence properties
// exercise the rewrites and their near misses, not only graphs where nothing fires.
import fc from "fast-check";
import { expect } from "vitest";
import type { Graph, Node } from "../../compiler/ir/graph.ts";
import { parseGraph } from "../../compiler/ir/parse.ts";
import { printGraph } from "../../compiler/ir/print.ts";
import { OpError } from "../../compiler/ir/registry.ts";
import { type HostTensor, tensor } from "../../compiler/ir/tensor.ts";
import { type Dim, isFloat, sameType } from "../../compiler/ir/types.ts";
import { verifyGraph } from "../../compiler/ir/verify.ts";
import { type Rewriter, rebuild, type Pass } from "../../compiler/passes/pass.ts";
import { evaluate, type TensorMap } from "../../runtime/interpreter/index.ts";
import { initWeights } from "../../runtime/init.ts";
import { collectStatistics } from "../../compiler/passes/statistics.ts";
import { arbitraryGraphCase, seededInputs } from "../support/random-graph.ts";
import { expectClose } from "../harness/harness.ts";

/** Bit-for-bit equal, except that any NaN equals any NaN. */
export function sameValue(a: number, b: number): boolean {
  return Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b));
}

/** The first difference between two output maps, or undefined. */
export function outputDifference(before: Map<string, HostTensor>, after: Map<string, HostTensor>): string | undefined {
  if ([...before.keys()].join() !== [...after.keys()].join()) return `outputs [${[...before.keys()]}] became [${[...after.keys()]}]`;
  for (const [name, b] of before) {
    const a = after.get(name)!;
    if (a.dtype !== b.dtype || a.shape.join() !== b.shape.join()) return `${name}: ${b.dtype}[${b.shape}] became ${a.dtype}[${a.shape}]`;
    const i = b.data.findIndex((x, k) => !sameValue(x, a.data[k]));
    if (i >= 0) return `${name}[${i}]: ${Object.is(b.data[i], -0) ? "-0" : b.data[i]} became ${Object.is(a.data[i], -0) ? "-0" : a.data[i]}`;
  }
  return undefined;
}

/** Runs both graphs on the same inputs and weights and expects bit-identical outputs. */
export function expectSameOutputs(before: Graph, after: Graph, inputs: TensorMap, dims: ReadonlyMap<string, number>, params: TensorMap = initWeights(before, 7)): void {
  const difference = outputDifference(evaluate(before, inputs, params, { dims }), evaluate(after, inputs, params, { dims }));
  expect(difference).toBeUndefined();
}

/** Parses `before`, runs the pass, and expects `after` (both through the printer), with the same outputs on seeded inputs. */
export function expectRewrite(pass: Pass, before: string, after: string): Graph {
  const g = parseGraph(before);
  const out = pass.run(g);
  verifyGraph(out);
  expect(printGraph(out)).toBe(printGraph(parseGraph(after)));
  const dims = new Map(g.dims.map((d) => [d, 3]));
  expectSameOutputs(g, out, seededInputs(g, dims, 1), dims);
  return out;
}

const SALTS = [
  "mul1",
  "div1",
  "add0",
  "addNeg0",
  "sub0",
  "subNeg0",
  "negNeg",
  "castSame",
  "reshapeSame",
  "broadcastSame",
  "transposeSame",
  "reshapeRoundTrip",
  "transposeRoundTrip",
  "transposeTriple",
  "constLeft",
  "constChain",
  "duplicate",
  "dead",
] as const;
type Salt = { at: number; kind: (typeof SALTS)[number]; value: number; seed: number };

/** A permutation of 0..n-1 drawn from `seed`. */
function shuffled(n: number, seed: number): number[] {
  const perm = [...Array(n).keys()];
  let state = seed >>> 0;
  for (let i = n - 1; i > 0; i--) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    const j = state % (i + 1);
    [perm[i], perm[j]] = [perm[j], perm[i]];
  }
  return perm;
}

function salt(r: Rewriter, node: Node, v: number, { kind, value, seed }: Salt): number {
  const { dtype, shape } = r.type(v);
  const c = (x: number) => r.add("const", [], { value: x, dtype });
  const reversed = [...shape.keys()].reverse();
  const signedZeros = () => r.add("mul", [v, c(-0)]);
  switch (kind) {
    case "mul1":
      return r.add("mul", [v, c(1)]);
    case "div1":
      return r.add("div", [v, c(1)]);
    // On half the cases, v * -0 first: zeros of both signs, where x + 0 and x + -0 differ.
    case "add0":
      return r.add("add", [value > 0 ? v : signedZeros(), c(0)]);
    case "addNeg0":
      return r.add("add", [value > 0 ? v : signedZeros(), c(-0)]);
    case "sub0":
      return r.add("sub", [value > 0 ? v : signedZeros(), c(0)]);
    case "subNeg0":
      return r.add("sub", [value > 0 ? v : signedZeros(), c(-0)]);
    case "negNeg":
      return r.add("neg", [r.add("neg", [v])]);
    case "castSame":
      return r.add("cast", [v], { dtype });
    case "reshapeSame":
      return r.add("reshape", [v], { shape });
    case "broadcastSame":
      return r.add("broadcast", [v], { shape });
    case "transposeSame":
      return r.add("transpose", [v], { perm: [...shape.keys()] });
    case "reshapeRoundTrip":
      return r.add("reshape", [r.add("reshape", [v], { shape: [...shape].reverse() as Dim[] })], { shape });
    case "transposeRoundTrip":
      // Reversing the axes, or swapping the last two, undoes itself.
      return r.add("transpose", [r.add("transpose", [v], { perm: value > 0 ? reversed : [] })], { perm: value > 0 ? reversed : [] });
    case "transposeTriple": {
      // p, then q, then the inverse of their composition: x again, but only if folding composes in the right order.
      const p = shuffled(shape.length, seed);
      const q = shuffled(shape.length, seed + 1);
      const composed = q.map((i) => p[i]);
      const inverse = composed.map((_, i) => composed.indexOf(i));
      return r.add("transpose", [r.add("transpose", [r.add("transpose", [v], { perm: p })], { perm: q })], { perm: inverse });
    }
    case "constLeft":
      return r.add(value > 0 ? "add" : "mul", [c(value), v]);
    case "constChain":
      return r.add("add", [v, r.add("neg", [r.add("mul", [r.add("sub", [c(value), c(0.75)]), c(-1.5)])])]);
    case "duplicate":
      return node.op === "input" || node.op === "param" ? v : r.add("maximum", [v, r.copy(node)]);
    case "dead":
      r.add("neg", [v]);
      return v;
  }
}

/** The graph with salts applied after the nodes they pick (those that do not fit are skipped). */
export function salted(graph: Graph, salts: readonly Salt[]): Graph {
  return rebuild(graph, (node, r) => {
    let v = r.copy(node);
    for (const s of salts) {
      // Counted from the end, so that small numbers (which fast-check favours) salt the outputs.
      if (graph.nodes.length - 1 - (s.at % graph.nodes.length) !== node.id) continue;
      try {
        v = salt(r, node, v, s);
      } catch (e) {
        if (!(e instanceof OpError)) throw e;
      }
      if (!sameType(r.type(v), node.type)) throw new Error(`salt ${s.kind} changed the type of %${node.id}`);
    }
    return v;
  });
}

/** arbitraryGraphCase({ dims: true, layers: true }), salted (no salts at all is one of the cases). */
export function arbitrarySaltedCase() {
  const salts = fc.array(fc.record({ at: fc.nat(), kind: fc.constantFrom(...SALTS), value: fc.double({ min: -2, max: 2, noNaN: true }), seed: fc.nat() }), { maxLength: 8 });
  return fc.tuple(arbitraryGraphCase({ dims: true, layers: true }), salts).map(([c, s]) => ({ ...c, graph: salted(c.graph, s) }));
}

/**
 * How often a property's pass must do something: on at least `atLeast` of the random graphs,
 * the rule named `rule` (its name in --stats), or with no rule any counter, moved. A property
 * whose pass never fires checks nothing.
 */
export interface Fires {
  rule?: string;
  atLeast: number;
}

/** Runs the pass, tallying in `tally` whether it fired as `fires` asks. */
function runCounted(pass: Pass, graph: Graph, fires: Fires | undefined, tally: { runs: number; fired: number }): Graph {
  const { result, statistics } = collectStatistics(() => pass.run(graph));
  tally.runs++;
  if (fires?.rule === undefined ? statistics.size > 0 : (statistics.get(fires.rule) ?? 0) > 0) tally.fired++;
  return result;
}

function expectFired(pass: Pass, fires: Fires | undefined, { runs, fired }: { runs: number; fired: number }): void {
  if (!fires) return;
  expect(fired / runs, `${pass.name}${fires.rule ? `'s rule ${fires.rule}` : ""} fired on ${fired} of ${runs} random graphs, fewer than ${fires.atLeast * 100}%`).toBeGreaterThanOrEqual(fires.atLeast);
}

/** Where identities of the reals fail in floats: x * 0 is NaN for x = NaN or ±inf, -0 for x < 0; x - x is NaN for ±inf; -0 + 0 is +0. */
export const SPECIAL_VALUES: readonly number[] = [NaN, Infinity, -Infinity, -0, 0];

/**
 * The inputs with every third float element, counted across all inputs, replaced by the next
 * of SPECIAL_VALUES: the same salt whatever fast-check draws, so that a rewrite that holds only
 * for finite values fails on every graph where it fires, not on the runs that happen to draw
 * a NaN.
 */
export function withSpecialValues(inputs: TensorMap): TensorMap {
  let k = 0;
  return new Map(
    [...inputs].map(([name, t]) => {
      if (!isFloat(t.dtype)) return [name, t];
      const data = Array.from(t.data, (x) => (k++ % 3 === 0 ? SPECIAL_VALUES[((k - 1) / 3) % SPECIAL_VALUES.length] : x));
      return [name, tensor(t.dtype, t.shape, data)];
    }),
  );
}

/**
 * The equivalence property of a cleanup pass: on random graphs the output verifies, is no
 * bigger, computes bit-identical outputs, on the drawn inputs and on the same salted with NaN,
 * ±inf and zeros of both signs (withSpecialValues), and (unless told otherwise) is a fixpoint
 * of the pass.
 */
export function checkCleanup(pass: Pass, { numRuns = 200, fixpoint = true, fires }: { numRuns?: number; fixpoint?: boolean; fires?: Fires } = {}): void {
  const tally = { runs: 0, fired: 0 };
  fc.assert(
    fc.property(arbitrarySaltedCase(), ({ graph, dims, inputs, params }) => {
      const after = runCounted(pass, graph, fires, tally);
      verifyGraph(after);
      expect(after.nodes.length).toBeLessThanOrEqual(graph.nodes.length);
      for (const salted of [inputs, withSpecialValues(inputs)]) {
        const difference = outputDifference(evaluate(graph, salted, params, { dims }), evaluate(after, salted, params, { dims }));
        expect(difference, salted === inputs ? "on the drawn inputs" : "on the inputs salted with NaN, ±inf and ±0").toBeUndefined();
      }
      if (fixpoint) expect(printGraph(pass.run(after))).toBe(printGraph(after));
    }),
    { numRuns },
  );
  expectFired(pass, fires, tally);
}

/** Both graphs compute the same outputs up to rounding: for passes that change where values are rounded (fusions, decompositions). */
export function expectCloseOutputs(before: Graph, after: Graph, inputs: TensorMap, dims: ReadonlyMap<string, number>, weights: TensorMap = new Map()): void {
  const expected = evaluate(before, inputs, weights, { dims });
  const actual = evaluate(after, inputs, weights, { dims });
  for (const [name, e] of expected) expectClose(actual.get(name)!, e, "model", name);
}

/**
 * The equivalence property of a pass that changes rounding: on random graphs, with attention
 * among their steps, the output verifies and computes the same outputs within tolerance.
 */
export function checkWithinTolerance(pass: Pass, { numRuns = 300, fires }: { numRuns?: number; fires?: Fires } = {}): void {
  const tally = { runs: 0, fired: 0 };
  fc.assert(
    fc.property(arbitraryGraphCase({ dims: true, attention: true, layers: true, continuous: true }), ({ graph, dims, inputs, params }) => {
      const after = runCounted(pass, graph, fires, tally);
      verifyGraph(after);
      expectCloseOutputs(graph, after, inputs, dims, params);
    }),
    { numRuns },
  );
  expectFired(pass, fires, tally);
}
