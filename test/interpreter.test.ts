// The reference interpreter's contract with its caller: how symbolic sizes are bound from the
// inputs, the Diagnostics a caller's mistake gives, and what `onValue` sees.
import { describe, expect, it } from "vitest";
import { GraphBuilder } from "../compiler/ir/builder.ts";
import type { Graph } from "../compiler/ir/graph.ts";
import { type HostTensor, tensor } from "../compiler/ir/tensor.ts";
import { resolveShape } from "../compiler/ir/types.ts";
import { Diagnostic, type SourceSpan } from "../common/diagnostic.ts";
import { bindDims, evaluate } from "../runtime/interpreter/index.ts";

/**
 * x: f32[N, 4], y: f32[M], w: param f32[4, 2];
 * h = x @ w + sum(y) : f32[N, 2], s = sum(y) : f32[].
 */
function model(): Graph {
  const b = new GraphBuilder("model");
  b.dim("N");
  b.dim("M");
  const x = b.add("input", [], { name: "x", dtype: "f32", shape: ["N", 4] });
  const y = b.add("input", [], { name: "y", dtype: "f32", shape: ["M"] });
  const w = b.add("param", [], { name: "w", dtype: "f32", shape: [4, 2] });
  const xw = b.add("matmul", [x, w]);
  const s = b.add("sum", [y]);
  b.output("h", b.add("add", [xw, s]));
  b.output("s", s);
  return b.finish();
}

const range = (n: number) => [...Array(n).keys()];
const x3 = tensor("f32", [3, 4], range(12));
const y5 = tensor("f32", [5], [1, 1, 1, 1, 1]);
const w = tensor("f32", [4, 2], [1, 0, 0, 1, 1, 0, 0, 1]);
const params = new Map([["w", w]]);

function diagnostic(f: () => unknown): Diagnostic {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(Diagnostic);
    return e as Diagnostic;
  }
  throw new Error("expected a Diagnostic");
}

describe("binding dims", () => {
  it("binds each symbolic size from the input shapes", () => {
    expect(bindDims(model(), new Map([["x", x3], ["y", y5]]))).toEqual(new Map([["N", 3], ["M", 5]]));
  });

  it("gives results the shapes of their types with the bound sizes", () => {
    const out = evaluate(model(), new Map([["x", x3], ["y", y5]]), params);
    // x @ w sums columns (0, 2) and (1, 3) of each row; sum(y) = 5 is added.
    expect(out.get("h")!.shape).toEqual([3, 2]);
    expect([...out.get("h")!.data]).toEqual([2 + 5, 4 + 5, 10 + 5, 12 + 5, 18 + 5, 20 + 5]);
    expect(out.get("s")!.shape).toEqual([]);
    expect([...out.get("s")!.data]).toEqual([5]);
  });

  it("the same graph runs at another size: N = 1, M = 2", () => {
    const out = evaluate(model(), new Map([["x", tensor("f32", [1, 4], [1, 2, 3, 4])], ["y", tensor("f32", [2], [0.5, 0.25])]]), params);
    expect(out.get("h")!.shape).toEqual([1, 2]);
    expect([...out.get("h")!.data]).toEqual([4.75, 6.75]);
  });

  it("two inputs that agree on a shared dim bind it once", () => {
    const b = new GraphBuilder("shared");
    b.dim("N");
    const a = b.add("input", [], { name: "a", dtype: "f32", shape: ["N", 2] });
    const c = b.add("input", [], { name: "c", dtype: "f32", shape: [2, "N"] });
    b.output("out", b.add("matmul", [a, c]));
    const inputs = new Map([["a", tensor("f32", [3, 2], range(6))], ["c", tensor("f32", [2, 3], range(6))]]);
    expect(bindDims(b.finish(), inputs)).toEqual(new Map([["N", 3]]));
    expect(evaluate(b.finish(), inputs, new Map()).get("out")!.shape).toEqual([3, 3]);
  });

  it("a dim no input binds must be given in options.dims, and is used when it is", () => {
    const b = new GraphBuilder("iota");
    b.dim("K");
    b.output("out", b.add("iota", [], { shape: ["K"] }));
    const g = b.finish();
    expect(diagnostic(() => evaluate(g, new Map(), new Map())).message).toBe("dim K is not bound by any input; give it with --set K=SIZE");
    expect([...evaluate(g, new Map(), new Map(), { dims: new Map([["K", 4]]) }).get("out")!.data]).toEqual([0, 1, 2, 3]);
  });

  it("a size given in options.dims that an input contradicts is a Diagnostic", () => {
    const d = diagnostic(() => evaluate(model(), new Map([["x", x3], ["y", y5]]), params, { dims: new Map([["N", 4]]) }));
    expect(d.message).toBe("input x has N = 3 on axis 0, but N = 4 elsewhere");
  });
});

describe("inputs that do not fit the graph are Diagnostics", () => {
  const cases: { what: string; inputs: [string, HostTensor][]; message: string }[] = [
    {
      what: "a static size that differs",
      inputs: [["x", tensor("f32", [3, 5], range(15))], ["y", y5]],
      message: "input x must have shape [N, 4], got [3, 5]",
    },
    {
      what: "a rank that differs",
      inputs: [["x", tensor("f32", [12], range(12))], ["y", y5]],
      message: "input x must have shape [N, 4], got [12]",
    },
    {
      what: "a dtype that differs",
      inputs: [["x", tensor("f16", [3, 4], range(12))], ["y", y5]],
      message: "input x must be f32[N, 4], got f16[3, 4]",
    },
    {
      what: "a missing input",
      inputs: [["x", x3]],
      message: "input y (f32[M]) was not given",
    },
  ];
  for (const c of cases) {
    it(`${c.what}: "${c.message}"`, () => {
      expect(diagnostic(() => evaluate(model(), new Map(c.inputs), params)).message).toBe(c.message);
    });
  }

  it('two inputs that disagree on the same dim: "input b has N = 2 on axis 1, but N = 3 elsewhere"', () => {
    const b = new GraphBuilder("disagree");
    b.dim("N");
    const a = b.add("input", [], { name: "a", dtype: "f32", shape: ["N"] });
    const c = b.add("input", [], { name: "b", dtype: "f32", shape: [1, "N"] });
    b.output("out", b.add("add", [a, c]));
    const inputs = new Map([["a", tensor("f32", [3], [1, 2, 3])], ["b", tensor("f32", [1, 2], [1, 2])]]);
    expect(diagnostic(() => evaluate(b.finish(), inputs, new Map())).message).toBe("input b has N = 2 on axis 1, but N = 3 elsewhere");
  });
});

describe("params", () => {
  const inputs = new Map([["x", x3], ["y", y5]]);

  it('a missing param is a Diagnostic: "param w (f32[4, 2]) was not given"', () => {
    expect(diagnostic(() => evaluate(model(), inputs, new Map())).message).toBe("param w (f32[4, 2]) was not given");
  });

  it("a param of the wrong shape or dtype is a Diagnostic naming both types", () => {
    const transposed = new Map([["w", tensor("f32", [2, 4], range(8))]]);
    expect(diagnostic(() => evaluate(model(), inputs, transposed)).message).toBe("param w must be f32[4, 2], got f32[2, 4]");
    const half = new Map([["w", tensor("f16", [4, 2], range(8))]]);
    expect(diagnostic(() => evaluate(model(), inputs, half)).message).toBe("param w must be f32[4, 2], got f16[4, 2]");
  });
});

describe("evaluation", () => {
  it("onValue sees every node once, in order, with a value of the node's type", () => {
    const g = model();
    const seen: { id: number; value: HostTensor }[] = [];
    const out = evaluate(g, new Map([["x", x3], ["y", y5]]), params, { onValue: (id, value) => seen.push({ id, value }) });
    expect(seen.map((s) => s.id)).toEqual(range(g.nodes.length));
    const dims = new Map([["N", 3], ["M", 5]]);
    for (const { id, value } of seen) {
      expect(value.dtype, `node ${id}`).toBe(g.nodes[id].type.dtype);
      expect(value.shape, `node ${id}`).toEqual(resolveShape(g.nodes[id].type.shape, dims));
    }
    expect(seen[0].value).toBe(x3);
    expect(seen[2].value).toBe(w);
    expect(seen[g.outputs[0].node].value).toBe(out.get("h"));
  });

  it("rounds every node's result to its dtype, not only the outputs: in f16 (2048 + 1) + 1 = 2048", () => {
    const b = new GraphBuilder("f16");
    const x = b.add("input", [], { name: "x", dtype: "f16", shape: [] });
    const one = b.add("const", [], { value: 1, dtype: "f16" });
    // 2049 ties between 2048 and 2050 (f16 spacing 2) and goes to even, 2048; twice.
    b.output("out", b.add("add", [b.add("add", [x, one]), one]));
    expect([...evaluate(b.finish(), new Map([["x", tensor("f16", [], [2048])]]), new Map()).get("out")!.data]).toEqual([2048]);
  });

  it("a run-time error in an op is a Diagnostic that points at the node's source", () => {
    const source = "let e = embed[ids]\n";
    const span: SourceSpan = { file: "model.dt", source, start: 8, end: 18 };
    const b = new GraphBuilder("gather");
    const table = b.add("input", [], { name: "table", dtype: "f32", shape: [3, 2] });
    const ids = b.add("input", [], { name: "ids", dtype: "i32", shape: [2] });
    b.output("e", b.add("gather", [table, ids], {}, span));
    const inputs = new Map([["table", tensor("f32", [3, 2], range(6))], ["ids", tensor("i32", [2], [1, 3])]]);
    const d = diagnostic(() => evaluate(b.finish(), inputs, new Map()));
    expect(d.message).toBe("gather: index 3 is out of range for an axis of size 3");
    expect(d.span).toBe(span);
    expect(d.location).toEqual({ file: "model.dt", line: 1, col: 9 });
  });

  it("an output that is an input node passes the input through", () => {
    const b = new GraphBuilder("identity");
    b.output("same", b.add("input", [], { name: "x", dtype: "f32", shape: [2] }));
    const x = tensor("f32", [2], [1.5, -2]);
    expect(evaluate(b.finish(), new Map([["x", x]]), new Map()).get("same")).toBe(x);
  });
});
