// Notes that lead to the fix: a dim to declare, the bracket left open, and the user's line that
// instantiated a model an error occurred in (often the standard library).
import { describe, expect, it } from "vitest";
import { elaborate } from "../../compiler/elaborate/index.ts";
import { Diagnostic } from "../../common/diagnostic.ts";
import { parseProgram } from "../../dsl/parse.ts";

function diagnose(source: string, set: Record<string, number> = {}): Diagnostic {
  try {
    elaborate(parseProgram(source, "m.dt"), { set: new Map(Object.entries(set)) });
  } catch (e) {
    if (e instanceof Diagnostic) return e;
    throw e;
  }
  throw new Error("no diagnostic");
}

describe("diagnostic notes", () => {
  it("an unknown name in a shape suggests declaring it as a dim", () => {
    const d = diagnose("model M(D = 4) {\n  input x: f32[N, D]\n  output y = x\n}");
    expect(d.message).toBe("unknown name N");
    expect(d.notes).toEqual(["did you mean D?", "a size bound at run time is declared in the model first: dim N"]);
  });

  it("an unknown name outside a shape does not", () => {
    expect(diagnose("model M {\n  input x: f32[4]\n  output y = x * N\n}").notes).toEqual(["did you mean x?"]);
  });

  it("a syntax error after an unclosed bracket notes where it was opened", () => {
    const d = diagnose("model M {\n  input x: f32[4]\n  output y = exp((x)\n  output z = x\n}");
    expect(d.location).toEqual({ file: "m.dt", line: 4, col: 3 });
    expect(d.notes).toEqual(["the '(' at m.dt:3:17 is not closed"]);
  });

  it("brackets in comments and strings are not counted", () => {
    const d = diagnose('model M {  # (\n  input x: f32[4]\n  output y = exp(x\n}');
    expect(d.notes).toEqual(["the '(' at m.dt:3:17 is not closed"]);
  });

  it("an error inside the standard library names each instantiation, from the user's file down", () => {
    const source = [
      "model Outer(D = 96) {",
      "  dim N",
      "  input x: f32[N, D]",
      "  sub block = Block(D = D, H = 5)",
      "  output y = block(x)",
      "}",
    ].join("\n");
    const d = diagnose(source);
    expect(d.message).toBe("96 / 5 does not divide exactly; compile-time integer division must be exact");
    expect(d.span?.file).toBe("<std>/std.dt");
    expect(d.notes.slice(0, 2)).toEqual([
      "in Block as block, instantiated at m.dt:4:3",
      expect.stringMatching(/^in DiffAttention as block\.attn, instantiated at <std>\/std\.dt:\d+:3$/),
    ]);
  });

  it("an error at the instantiation itself gets no such note", () => {
    const d = diagnose("model M {\n  dim N\n  input x: f32[N, 4]\n  sub p = Linear(4, 4, 5)\n  output y = p(x)\n}");
    expect(d.notes.filter((n) => n.startsWith("in "))).toEqual([]);
  });
});
