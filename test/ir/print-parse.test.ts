import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Diagnostic } from "../../common/diagnostic.ts";
import { GraphBuilder } from "../../compiler/ir/builder.ts";
import type { Graph } from "../../compiler/ir/graph.ts";
import { parseGraph } from "../../compiler/ir/parse.ts";
import { printGraph } from "../../compiler/ir/print.ts";
import { verifyGraph } from "../../compiler/ir/verify.ts";
import { arbitraryGraph } from "../support/random-graph.ts";

const DIFF_ATTENTION = `graph DiffAttention [N, M] {
  %0 = input {name = "x"} : f32[N, 512]
  %1 = param {name = "q_proj.weight", init = "uniform", init_args = [-0.044, 0.044]} : f32[512, 512]
  %2 = transpose(%1) {perm = [1, 0]} : f32[512, 512]
  %3 = matmul(%0, %2) : f32[N, 512]
  %4 = const {value = 0.5} : f32[]
  %5 = mul(%3, %4) : f32[N, 512]
  %6 = sum(%5) {axes = [-1], keepdims = true} : f32[N, 1]
  %7 = reshape(%6) {shape = [1, N]} : f32[1, N]
  %8 = slice(%0) {axis = 1, end = 8, step = 2} : f32[N, 4]
  %9 = concat(%8, %8, %8) {axis = 1} : f32[N, 12]
  %10 = gt(%9, %4) : bool[N, 12]
  %11 = where(%10, %9, %4) : f32[N, 12]
  %12 = iota {axis = 1} : i32[3, 4]
  output "y" = %3
  output "scores" = %7
  output "masked" = %11
}
`;

/** Strips spans, which depend on where the text came from. */
function withoutSpans(g: Graph): Graph {
  return { ...g, nodes: g.nodes.map(({ span: _, ...n }) => n) };
}

function diagnose(text: string): { line: number; col: number; message: string; formatted: string } {
  try {
    parseGraph(text);
  } catch (e) {
    if (!(e instanceof Diagnostic)) throw e;
    const { line, col } = e.location!;
    return { line, col, message: e.message, formatted: e.format() };
  }
  throw new Error("expected a diagnostic, but the text parsed");
}

describe("IR text", () => {
  it("a hand-written graph parses and prints back unchanged", () => {
    const g = parseGraph(DIFF_ATTENTION);
    expect(printGraph(g)).toBe(DIFF_ATTENTION);
    verifyGraph(g);
    expect(g.dims).toEqual(["N", "M"]);
    expect(g.nodes[1].attrs).toEqual({ name: "q_proj.weight", dtype: "f32", shape: [512, 512], init: "uniform", init_args: [-0.044, 0.044] });
    expect(g.nodes[12].attrs).toEqual({ shape: [3, 4], axis: 1, dtype: "i32" });
    expect(g.outputs).toEqual([
      { name: "y", node: 3 },
      { name: "scores", node: 7 },
      { name: "masked", node: 11 },
    ]);
  });

  it("attributes at their defaults are left out of the text, and the parser fills them in", () => {
    const g = parseGraph(`graph g [N] {\n  %0 = input {name = "x"} : f32[N, 4]\n  %1 = sum(%0) {axes = [-1]} : f32[N]\n  %2 = const {value = 1} : f32[]\n  output "y" = %1\n}\n`);
    expect(g.nodes[1].attrs).toEqual({ axes: [-1], keepdims: false });
    expect(g.nodes[2].attrs).toEqual({ value: 1, dtype: "f32" });
    expect(printGraph(g)).toBe(`graph g [N] {\n  %0 = input {name = "x"} : f32[N, 4]\n  %1 = sum(%0) {axes = [-1]} : f32[N]\n  %2 = const {value = 1} : f32[]\n  output "y" = %1\n}\n`);
  });

  it("value ids may be any numbers or names and are renumbered in order; comments are ignored", () => {
    const g = parseGraph(`# before the graph
      graph "two words" {
        %7 = input {name = "x"} : f32[2, 3]   # an input
        %x.t = transpose(%7) : f32[3, 2]
        %2 = matmul(%7, %x.t) : f32[2, 2]
        output "a\\"b" = %2
      }`);
    expect(printGraph(g)).toBe(`graph "two words" {
  %0 = input {name = "x"} : f32[2, 3]
  %1 = transpose(%0) : f32[3, 2]
  %2 = matmul(%0, %1) : f32[2, 2]
  output "a\\"b" = %2
}
`);
  });

  it("numbers print so that every double round-trips, -0, infinities and NaN included", () => {
    const values: [string, number][] = [["-0", -0], ["0", 0], ["inf", Infinity], ["-inf", -Infinity], ["nan", NaN], ["0.30000000000000004", 0.1 + 0.2], ["1e-7", 1e-7], ["-1.5e+300", -1.5e300], ["5e-324", 5e-324], ["9007199254740994", 2 ** 53 + 2]];
    const text = `graph g {\n${values.map(([t], i) => `  %${i} = const {value = ${t}} : f32[]\n`).join("")}}\n`;
    const g = parseGraph(text);
    expect(g.nodes.map((n) => n.attrs.value)).toEqual(values.map(([, v]) => v));
    expect(printGraph(g)).toBe(text);
  });

  it("any double const value round-trips through the text", () => {
    fc.assert(
      fc.property(fc.double(), (value) => {
        const b = new GraphBuilder("g");
        b.add("const", [], { value });
        const back = parseGraph(printGraph(b.finish())).nodes[0].attrs.value;
        expect(Object.is(back, value)).toBe(true);
      }),
    );
  });

  it("the parsed graph carries spans, printed as # file:line:col on request", () => {
    const g = parseGraph(DIFF_ATTENTION, "attn.ir");
    const span = g.nodes[3].span!;
    expect(DIFF_ATTENTION.slice(span.start, span.end)).toBe("%3 = matmul(%0, %2) : f32[N, 512]");
    const lines = printGraph(g, { locations: true }).split("\n");
    expect(lines[4]).toBe("  %3 = matmul(%0, %2) : f32[N, 512]  # attn.ir:5:3");
    // The comments are ignored when the text is read back.
    expect(printGraph(parseGraph(lines.join("\n")))).toBe(DIFF_ATTENTION);
  });

  it("a fused node prints its body as a nested graph block after its type, and reads back the same", () => {
    const text = `graph g [N] {
  %0 = input {name = "x"} : f32[N, 4]
  %1 = input {name = "w"} : f32[4]
  %2 = fused(%0, %1) {kind = "elementwise"} : f32[N, 4]
    body = graph fused [N] {
      %0 = input {name = "0"} : f32[N, 4]
      %1 = input {name = "1"} : f32[4]
      %2 = mul(%0, %1) : f32[N, 4]
      %3 = const {value = 0.5} : f32[]
      %4 = add(%2, %3) : f32[N, 4]
      output "out" = %4
    }
  %3 = neg(%2) : f32[N, 4]
  output "y" = %3
}
`;
    const g = parseGraph(text);
    verifyGraph(g);
    expect(printGraph(g)).toBe(text);
    const body = g.nodes[2].attrs.body as Graph;
    expect(body.dims).toEqual(["N"]);
    expect(body.nodes.map((n) => n.op)).toEqual(["input", "input", "mul", "const", "add"]);
    // Body nodes carry spans into the same text, so a body reads like the rest of the graph.
    const span = body.nodes[2].span!;
    expect(text.slice(span.start, span.end)).toBe("%2 = mul(%0, %1) : f32[N, 4]");
    // Line breaks and indentation are free: the body may open on the node's line.
    expect(printGraph(parseGraph(text.replace(/\] *\n *body = /, "] body = ")))).toBe(text);
  });

  it("print -> parse -> print is the identity on random graphs, and the parsed graph verifies", () => {
    fc.assert(
      fc.property(arbitraryGraph({ dims: true }), (g) => {
        const text = printGraph(g);
        const parsed = parseGraph(text);
        expect(printGraph(parsed)).toBe(text);
        verifyGraph(parsed);
        expect(withoutSpans(parsed)).toEqual(withoutSpans(g));
      }),
      { numRuns: 200 },
    );
  });
});

describe("IR parse errors point at the offending token", () => {
  const header = `graph g [N] {\n  %0 = input {name = "x"} : f32[N, 4]\n`;
  const cases: { kind: string; body: string; line: number; col: number; message: RegExp }[] = [
    { kind: "unknown op", body: "  %1 = frobnicate(%0) : f32[N, 4]", line: 3, col: 8, message: /unknown op frobnicate/ },
    { kind: "too many operands", body: "  %1 = neg(%0, %0) : f32[N, 4]", line: 3, col: 8, message: /neg takes 1 operand \(x\), got 2/ },
    { kind: "too few operands", body: "  %1 = matmul(%0) : f32[N, 4]", line: 3, col: 8, message: /matmul takes 2 operands \(a, b\), got 1/ },
    { kind: "unknown attribute", body: "  %1 = transpose(%0) {perm = [1, 0], dim = 2} : f32[4, N]", line: 3, col: 38, message: /transpose has no attribute dim \(it takes perm\)/ },
    { kind: "attribute of the wrong kind", body: '  %1 = sum(%0) {axes = "all"} : f32[]', line: 3, col: 24, message: /sum: attribute axes must be a list of integers, got "all"/ },
    { kind: "non-integer int attribute", body: "  %1 = slice(%0) {axis = 1.5, end = 2} : f32[N, 2]", line: 3, col: 26, message: /attribute axis must be an integer, got 1.5/ },
    { kind: "string attribute outside its choices", body: '  %1 = param {name = "w", init = "zeros"} : f32[4]', line: 3, col: 34, message: /attribute init must be one of "normal", "uniform", "constant"/ },
    { kind: "missing attribute", body: "  %1 = slice(%0) {axis = 1} : f32[N, 2]", line: 3, col: 8, message: /slice needs attribute end/ },
    { kind: "undefined value", body: "  %1 = add(%0, %9) : f32[N, 4]", line: 3, col: 16, message: /%9 is not defined/ },
    { kind: "value defined twice", body: "  %0 = neg(%0) : f32[N, 4]", line: 3, col: 3, message: /%0 is defined twice/ },
    {
      kind: "stated type differs from the shape rule",
      body: "  %1 = sum(%0) {axes = [1], keepdims = true} : f32[N, 4]",
      line: 3,
      col: 48,
      message: /sum gives f32\[N, 1\], but the stated type is f32\[N, 4\]/,
    },
    { kind: "stated dtype differs", body: "  %1 = lt(%0, %0) : f32[N, 4]", line: 3, col: 21, message: /lt gives bool\[N, 4\], but the stated type is f32\[N, 4\]/ },
    { kind: "shape rule rejects the operands", body: "  %1 = matmul(%0, %0) : f32[N, N]", line: 3, col: 8, message: /matmul: inner sizes differ/ },
    { kind: "undeclared dim", body: "  %1 = input {name = \"y\"} : f32[M]", line: 3, col: 33, message: /dim M is not declared/ },
    { kind: "undeclared dim in a shape attribute", body: "  %1 = reshape(%0) {shape = [K, 4]} : f32[N, 4]", line: 3, col: 30, message: /dim K is not declared/ },
    { kind: "unknown dtype", body: "  %1 = neg(%0) : f64[N, 4]", line: 3, col: 18, message: /unknown dtype f64/ },
    { kind: "input name used twice", body: '  %1 = input {name = "x"} : f32[4]', line: 3, col: 22, message: /input "x" is defined twice/ },
    { kind: "output name used twice", body: '  output "y" = %0\n  output "y" = %0', line: 4, col: 10, message: /output "y" is defined twice/ },
    { kind: "graph attribute in the braces", body: '  %1 = fused(%0) {body = "graph b { }", kind = "elementwise"} : f32[N, 4]', line: 3, col: 26, message: /fused: attribute body must be a graph, written after the node's type/ },
    { kind: "other attribute after the type", body: '  %1 = sum(%0) : f32[] axes = [0]', line: 3, col: 24, message: /sum: attribute axes is a list of integers, written in the braces before the type/ },
    {
      kind: "mistake inside a fused body",
      body: '  %1 = fused(%0) {kind = "elementwise"} : f32[N, 4]\n    body = graph b [N] {\n      %0 = input {name = "0"} : f32[N, 4]\n      %1 = exp(%0) : f32[4]\n      output "out" = %1\n    }',
      line: 6,
      col: 22,
      message: /exp gives f32\[N, 4\], but the stated type is f32\[4\]/,
    },
    { kind: "fused body that breaks its kind", body: '  %1 = fused(%0) {kind = "prologue"} : f32[N, 4] body = graph b [N] {\n    %0 = input {name = "0"} : f32[N, 4]\n    output "out" = %0\n  }', line: 3, col: 8, message: /fused prologue: its body needs a sum, mean, max or min/ },
    { kind: "syntax: missing type", body: "  %1 = neg(%0)\n  %2 = neg(%1) : f32[N, 4]", line: 4, col: 3, message: /expected ":", found "%2"/ },
    { kind: "syntax: stray token", body: "  %1 = neg(%0) : f32[N, 4] ;", line: 3, col: 28, message: /expected a token, not ";"/ },
  ];
  for (const c of cases) {
    it(`${c.kind} is reported at ${c.line}:${c.col}`, () => {
      const d = diagnose(`${header}${c.body}\n}\n`);
      expect(d.message).toMatch(c.message);
      expect([d.line, d.col]).toEqual([c.line, c.col]);
      expect(d.formatted).toMatch(new RegExp(`^<ir>:${c.line}:${c.col}: error: `));
    });
  }

  it("the diagnostic names the file it was given", () => {
    try {
      parseGraph("graph g {\n  %0 = nope : f32[]\n}", "model.ir");
      expect.unreachable();
    } catch (e) {
      expect((e as Diagnostic).format()).toMatch(/^model\.ir:2:8: error: unknown op nope\n/);
    }
  });

  it("random text gives only Diagnostics", () => {
    const tokens = ["graph", "g", "[", "]", "{", "}", "(", ")", "%0", "%1", "=", ",", ":", "input", "neg", "f32", "N", '"x"', "1", "-inf", "name", "\n", "#"];
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...tokens), { maxLength: 30 }), (ts) => {
        try {
          parseGraph(ts.join(" "));
        } catch (e) {
          expect(e).toBeInstanceOf(Diagnostic);
        }
      }),
    );
  });
});
