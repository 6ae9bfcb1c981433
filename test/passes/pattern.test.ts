import { describe, expect, it } from "vitest";
import { InternalError } from "../../common/diagnostic.ts";
import type { Graph } from "../../compiler/ir/graph.ts";
import { parseGraph } from "../../compiler/ir/parse.ts";
import { printGraph } from "../../compiler/ir/print.ts";
import { match, P, type Pattern, rewrite, type Rule } from "../../compiler/passes/pattern.ts";

/** The captures (as node ids) of `pattern` at the graph's last node. */
function matchLast(pattern: Pattern, g: Graph): Record<string, number> | undefined {
  const captures = match(pattern, g.nodes[g.nodes.length - 1], g);
  return captures && Object.fromEntries(Object.entries(captures).map(([k, n]) => [k, n.id]));
}

const graph = (body: string) => parseGraph(`graph g [N] {\n${body}\n}\n`);

describe("pattern matching", () => {
  it("reshape of a reshape captures the innermost value", () => {
    const g = graph(`
      %0 = input {name = "x"} : f32[N, 6]
      %1 = reshape(%0) {shape = [N, 2, 3]} : f32[N, 2, 3]
      %2 = reshape(%1) {shape = [6, N]} : f32[6, N]
      output "y" = %2`);
    expect(matchLast(P.op("reshape", P.op("reshape", P.any("x")).named("inner")), g)).toEqual({ x: 0, inner: 1 });
    // One reshape is not a reshape of a reshape.
    expect(matchLast(P.op("reshape", P.op("reshape", P.op("reshape", P.any()))), g)).toBeUndefined();
  });

  it("a name bound twice must bind the same node: x - x matches, x - y does not", () => {
    const g = graph(`
      %0 = input {name = "x"} : f32[N]
      %1 = input {name = "y"} : f32[N]
      %2 = sub(%0, %0) : f32[N]
      %3 = sub(%0, %1) : f32[N]
      output "a" = %2
      output "b" = %3`);
    const same = P.op("sub", P.any("x"), P.any("x"));
    expect(match(same, g.nodes[2], g)).toBeDefined();
    expect(match(same, g.nodes[3], g)).toBeUndefined();
    expect(match(P.op("sub", P.any("x"), P.any("y")), g.nodes[3], g)).toBeDefined();
  });

  it("add and mul match their operands in either order; sub does not", () => {
    const g = graph(`
      %0 = input {name = "x"} : f32[N]
      %1 = const {value = 2} : f32[]
      %2 = mul(%1, %0) : f32[N]
      %3 = sub(%1, %0) : f32[N]
      output "a" = %2
      output "b" = %3`);
    expect(match(P.op("mul", P.any("x"), P.const(2).named("c")), g.nodes[2], g)).toEqual({ x: g.nodes[0], c: g.nodes[1] });
    expect(match(P.op("sub", P.any("x"), P.const(2)), g.nodes[3], g)).toBeUndefined();
    expect(match(P.op("sub", P.const(2), P.any("x")), g.nodes[3], g)).toBeDefined();
  });

  it("commutative matching backtracks to the order in which a repeated capture agrees", () => {
    // a + a * b, written (b * a) + a: x must be a in both places.
    const g = graph(`
      %0 = input {name = "a"} : f32[N]
      %1 = input {name = "b"} : f32[N]
      %2 = mul(%1, %0) : f32[N]
      %3 = add(%2, %0) : f32[N]
      output "y" = %3`);
    expect(matchLast(P.op("add", P.any("x"), P.op("mul", P.any("x"), P.any("y"))), g)).toEqual({ x: 0, y: 1 });
    expect(matchLast(P.op("add", P.any("x"), P.op("mul", P.any("x"), P.any("x"))), g)).toBeUndefined();
  });

  it("once() finds values with one reader that are no output", () => {
    const g = graph(`
      %0 = input {name = "x"} : f32[N]
      %1 = exp(%0) : f32[N]
      %2 = neg(%1) : f32[N]
      %3 = exp(%0) : f32[N]
      %4 = neg(%3) : f32[N]
      %5 = exp(%0) : f32[N]
      %6 = mul(%5, %5) : f32[N]
      %7 = add(%2, %4) : f32[N]
      %8 = add(%7, %6) : f32[N]
      output "y" = %8
      output "e" = %3`);
    const pattern = P.op("neg", P.op("exp", P.any()).once());
    expect(match(pattern, g.nodes[2], g)).toBeDefined(); // %1: read once
    expect(match(pattern, g.nodes[4], g)).toBeUndefined(); // %3: also an output
    const square = P.op("mul", P.op("exp", P.any()).once(), P.any());
    expect(match(square, g.nodes[6], g)).toBeUndefined(); // %5: read by both slots of the mul
  });

  it("attrs() and where() constrain a node; where() sees the captures below it", () => {
    const g = graph(`
      %0 = input {name = "x"} : f32[N, 4]
      %1 = transpose(%0) {perm = [1, 0]} : f32[4, N]
      output "y" = %1`);
    expect(matchLast(P.op("transpose", P.any()).attrs({ perm: [1, 0] }), g)).toEqual({});
    expect(matchLast(P.op("transpose", P.any()).attrs({ perm: [] }), g)).toBeUndefined();
    expect(matchLast(P.op("transpose", P.any("x")).where((n, { x }) => n.type.shape[0] === x.type.shape[1]), g)).toEqual({ x: 0 });
    expect(matchLast(P.op("transpose", P.any("x")).where((n, { x }) => n.type.shape[0] === x.type.shape[0]), g)).toBeUndefined();
  });

  it("near misses: another op, another arity, a const of another value, 0 for -0", () => {
    const g = graph(`
      %0 = input {name = "x"} : f32[N]
      %1 = const {value = 0} : f32[]
      %2 = add(%0, %1) : f32[N]
      output "y" = %2`);
    expect(matchLast(P.op("sub", P.any(), P.any()), g)).toBeUndefined();
    expect(matchLast(P.op("add", P.any()), g)).toBeUndefined();
    expect(matchLast(P.op("add", P.any(), P.any(), P.any()), g)).toBeUndefined();
    expect(matchLast(P.op("add", P.any(), P.const(1)), g)).toBeUndefined();
    expect(matchLast(P.op("add", P.any(), P.const(-0)), g)).toBeUndefined();
    expect(matchLast(P.op("add", P.any("x"), P.const(0)), g)).toEqual({ x: 0 });
    // A const's value is its attribute rounded to its dtype: 1 + 2^-30 is 1 in f32.
    const h = graph(`
      %0 = const {value = 1.0000000009313226} : f32[]
      output "y" = %0`);
    expect(matchLast(P.const(1), h)).toEqual({});
  });

  it("a hand-written dual softmax matches with the scale and v bound once for both maps", () => {
    const text = (scale2: string) => `
      %q1 = input {name = "q1"} : f32[N, 8]
      %q2 = input {name = "q2"} : f32[N, 8]
      %k1 = input {name = "k1"} : f32[N, 8]
      %k2 = input {name = "k2"} : f32[N, 8]
      %v = input {name = "v"} : f32[N, 16]
      %lam = input {name = "lam"} : f32[]
      %s = const {value = 0.35355339059327373} : f32[]
      %t = const {value = 0.5} : f32[]
      %kt1 = transpose(%k1) : f32[8, N]
      %a1 = matmul(%q1, %kt1) : f32[N, N]
      %s1 = mul(%a1, %s) : f32[N, N]
      %p1 = softmax(%s1) : f32[N, N]
      %kt2 = transpose(%k2) : f32[8, N]
      %a2 = matmul(%q2, %kt2) : f32[N, N]
      %s2 = mul(${scale2}, %a2) : f32[N, N]
      %p2 = softmax(%s2) : f32[N, N]
      %l2 = mul(%lam, %p2) : f32[N, N]
      %d = sub(%p1, %l2) : f32[N, N]
      %o = matmul(%d, %v) : f32[N, 16]
      output "o" = %o`;
    const scaledScores = (q: string, k: string, scale: string) =>
      P.op("softmax", P.op("mul", P.op("matmul", P.any(q), P.op("transpose", P.any(k))), P.const().named(scale)).once()).once();
    const dual = (scale1: string, scale2: string) =>
      P.op("matmul", P.op("sub", scaledScores("q1", "k1", scale1), P.op("mul", P.any("lam"), scaledScores("q2", "k2", scale2))), P.any("v"));
    expect(Object.keys(matchLast(dual("scale", "scale"), graph(text("%s"))) ?? {}).sort()).toEqual(["k1", "k2", "lam", "q1", "q2", "scale", "v"]);
    // Two different scales: not one dual softmax, though each half alone matches.
    expect(matchLast(dual("scale", "scale"), graph(text("%t")))).toBeUndefined();
    expect(matchLast(dual("scale1", "scale2"), graph(text("%t")))).toBeDefined();
  });
});

describe("rewrite", () => {
  const foldReshapes: Rule = {
    pattern: P.op("reshape", P.op("reshape", P.any("x"))),
    build: ({ x }, r, node) => r.add("reshape", [r.value(x.id)], { shape: node.attrs.shape }),
  };

  it("applies rules to a fixpoint and removes the nodes they leave dead", () => {
    const g = graph(`
      %0 = input {name = "x"} : f32[N, 12]
      %1 = reshape(%0) {shape = [N, 2, 6]} : f32[N, 2, 6]
      %2 = reshape(%1) {shape = [N, 6, 2]} : f32[N, 6, 2]
      %3 = reshape(%2) {shape = [N, 3, 4]} : f32[N, 3, 4]
      %4 = reshape(%3) {shape = [N, 4, 3]} : f32[N, 4, 3]
      %5 = reshape(%4) {shape = [12, N]} : f32[12, N]
      output "y" = %5`);
    expect(printGraph(rewrite(g, [foldReshapes]))).toBe(
      printGraph(
        graph(`
      %0 = input {name = "x"} : f32[N, 12]
      %1 = reshape(%0) {shape = [12, N]} : f32[12, N]
      output "y" = %1`),
      ),
    );
  });

  it("a builder that declines leaves the node, and the next rule is tried", () => {
    const g = graph(`
      %0 = input {name = "x"} : f32[N]
      %1 = neg(%0) : f32[N]
      output "y" = %1`);
    const declines: Rule = { pattern: P.op("neg", P.any()), build: () => undefined };
    expect(rewrite(g, [declines])).toEqual(g);
    const toAbs: Rule = { pattern: P.op("neg", P.any("x")), build: ({ x }, r) => r.add("abs", [r.value(x.id)]) };
    expect(printGraph(rewrite(g, [declines, toAbs]))).toContain("%1 = abs(%0) : f32[N]");
  });

  it("a rule that changes a node's type is a bug, and says so", () => {
    const g = graph(`
      %0 = input {name = "x"} : f32[N, 4]
      %1 = neg(%0) : f32[N, 4]
      output "y" = %1`);
    const wrong: Rule = { pattern: P.op("neg", P.any("x")), build: ({ x }, r) => r.add("sum", [r.value(x.id)], { axes: [1] }) };
    expect(() => rewrite(g, [wrong])).toThrow(InternalError);
    expect(() => rewrite(g, [wrong])).toThrow(/gave f32\[N\], not its type f32\[N, 4\]/);
  });

  it("rules that undo each other stop with an internal error instead of looping", () => {
    const g = graph(`
      %0 = input {name = "x"} : f32[N]
      %1 = neg(%0) : f32[N]
      output "y" = %1`);
    const flip = (from: string, to: string): Rule => ({ pattern: P.op(from, P.any("x")), build: ({ x }, r) => r.add(to, [r.value(x.id)]) });
    expect(() => rewrite(g, [flip("neg", "abs"), flip("abs", "neg")])).toThrow(/still changes after 100 sweeps/);
  });
});
