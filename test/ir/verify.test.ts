import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { InternalError } from "../../common/diagnostic.ts";
import type { Graph } from "../../compiler/ir/graph.ts";
import { parseGraph } from "../../compiler/ir/parse.ts";
import { verifyGraph } from "../../compiler/ir/verify.ts";
import { evaluate } from "../../runtime/interpreter/index.ts";
import { arbitraryGraph, arbitraryGraphCase } from "../support/random-graph.ts";

const GOOD = parseGraph(`graph g [N] {
  %0 = input {name = "x"} : f32[N, 4]
  %1 = input {name = "w"} : f32[4, 3]
  %2 = matmul(%0, %1) : f32[N, 3]
  %3 = sum(%2) {axes = [1]} : f32[N]
  %4 = const {value = 2} : f32[]
  %5 = mul(%3, %4) : f32[N]
  output "y" = %5
}
`);

/** A copy of the good graph, broken by `edit`. */
function broken(edit: (g: Graph) => void): Graph {
  const g = structuredClone(GOOD);
  edit(g);
  return g;
}

function rejection(g: Graph): string {
  try {
    verifyGraph(g);
  } catch (e) {
    expect(e).toBeInstanceOf(InternalError);
    return (e as Error).message;
  }
  throw new Error("expected the verifier to reject the graph");
}

describe("verifyGraph", () => {
  it("accepts a well-formed graph", () => {
    expect(() => verifyGraph(GOOD)).not.toThrow();
  });

  const cases: { kind: string; edit: (g: Graph) => void; message: RegExp }[] = [
    { kind: "an id that is not the node's index", edit: (g) => (g.nodes[2].id = 7), message: /%2 = matmul: its id is 7 but it is node 2/ },
    { kind: "an operand that is not an earlier node", edit: (g) => (g.nodes[2].operands = [0, 5]), message: /%2 = matmul: operand %5 is not an earlier node/ },
    { kind: "an operand that is the node itself", edit: (g) => (g.nodes[3].operands = [3]), message: /%3 = sum: operand %3 is not an earlier node/ },
    { kind: "an unregistered op", edit: (g) => (g.nodes[5].op = "frobnicate"), message: /%5 = frobnicate: unknown op/ },
    { kind: "the wrong operand count", edit: (g) => (g.nodes[5].operands = [3]), message: /%5 = mul: mul takes 2 operands \(a, b\), got 1/ },
    { kind: "attributes missing a default", edit: (g) => delete g.nodes[3].attrs.keepdims, message: /%3 = sum: attribute keepdims is missing \(its default is false\)/ },
    { kind: "an unknown attribute", edit: (g) => (g.nodes[5].attrs.axis = 0), message: /%5 = mul: mul has no attribute axis/ },
    { kind: "an ill-typed attribute", edit: (g) => (g.nodes[3].attrs.axes = 1), message: /%3 = sum: sum: attribute axes must be a list of integers/ },
    { kind: "a type the shape rule does not give", edit: (g) => (g.nodes[3].type.shape = ["N", 1]), message: /%3 = sum: its type is f32\[N, 1\], but the shape rule gives f32\[N\]/ },
    { kind: "a dtype the shape rule does not give", edit: (g) => (g.nodes[5].type.dtype = "f16"), message: /%5 = mul: its type is f16\[N\], but the shape rule gives f32\[N\]/ },
    { kind: "operands the shape rule rejects", edit: (g) => (g.nodes[2].operands = [1, 0]), message: /%2 = matmul: its shape rule rejects it: matmul: inner sizes differ/ },
    { kind: "a symbolic size not in the graph's dims", edit: (g) => (g.dims = []), message: /%0 = input: its type f32\[N, 4\] uses symbolic size N, which is not in the graph's dims/ },
    { kind: "an input name used twice", edit: (g) => (g.nodes[1].attrs.name = "x"), message: /%1 = input: input "x" is also defined by %0/ },
    { kind: "an output of a node that does not exist", edit: (g) => (g.outputs[0].node = 6), message: /output "y": %6 is not a node/ },
    { kind: "an output name used twice", edit: (g) => g.outputs.push({ name: "y", node: 3 }), message: /output "y": the name is used twice/ },
  ];
  for (const c of cases) {
    it(`rejects ${c.kind}`, () => {
      const message = rejection(broken(c.edit));
      expect(message).toMatch(/^internal error \(a bug in difftc\): graph g: /);
      expect(message).toMatch(c.message);
    });
  }

  it("checks a fused node's body as a graph, and names the node and the body node", () => {
    const fused = parseGraph(`graph g [N] {
      %0 = input {name = "x"} : f32[N, 4]
      %1 = fused(%0) {kind = "elementwise"} : f32[N, 4]
        body = graph b [N] {
          %0 = input {name = "0"} : f32[N, 4]
          %1 = exp(%0) : f32[N, 4]
          %2 = neg(%1) : f32[N, 4]
          output "out" = %2
        }
      output "y" = %1
    }`);
    expect(() => verifyGraph(fused)).not.toThrow();
    const g = structuredClone(fused);
    (g.nodes[1].attrs.body as Graph).nodes[2].type.dtype = "f16";
    expect(rejection(g)).toMatch(/graph g: %1 = fused: attribute body: graph b: %2 = neg: its type is f16\[N, 4\], but the shape rule gives f32\[N, 4\]/);
  });

  it("random graphs verify and evaluate to finite values on inputs in [-2, 2]", () => {
    fc.assert(
      fc.property(arbitraryGraphCase({ dims: true }), ({ graph, dims, inputs }) => {
        verifyGraph(graph);
        const outputs = evaluate(graph, inputs, new Map(), { dims });
        expect(outputs.size).toBe(graph.outputs.length);
        for (const [name, t] of outputs) {
          const bad = t.data.findIndex((x) => !Number.isFinite(x));
          expect(bad, `output ${name}`).toBe(-1);
        }
      }),
      { numRuns: 200 },
    );
  });

  it("random graphs stay within maxNodes", () => {
    fc.assert(
      fc.property(arbitraryGraph({ maxNodes: 8 }), (g) => {
        expect(g.nodes.length).toBeLessThanOrEqual(8);
      }),
    );
  });
});
