import { describe, expect, it } from "vitest";
import { diagnose } from "../support/dsl.ts";

// Each mistake a user can make is reported at the exact line and column of its cause.
describe("diagnostics point at the mistake", () => {
  it("syntax error: a missing expression after =", () => {
    const d = diagnose("model M {\n  input x: f32[4]\n  let y = \n  output z = x\n}\n");
    expect([d.line, d.col]).toEqual([4, 3]);
    expect(d.message).toMatch(/^syntax error: expected/);
  });

  it("syntax error: an unclosed model body", () => {
    const d = diagnose("model M {\n  input x: f32[4]\n  output y = x\n");
    expect(d.line).toBe(4);
    expect(d.message).toMatch(/found end of file/);
  });

  it("unknown name, with a suggestion", () => {
    const d = diagnose("model M {\n  input xs: f32[4]\n  output y = x + 1\n}\n");
    expect([d.line, d.col]).toEqual([3, 14]);
    expect(d.message).toBe("unknown name x");
    expect(d.text).toContain("did you mean xs?");
  });

  it("unknown function", () => {
    const d = diagnose("model M {\n  input x: f32[4]\n  output y = sofmax(x)\n}\n");
    expect([d.line, d.col]).toEqual([3, 14]);
    expect(d.message).toBe("unknown function sofmax");
    expect(d.text).toContain("did you mean softmax?");
  });

  it("unknown model in a sub declaration", () => {
    const d = diagnose("model M {\n  input x: f32[4, 8]\n  sub l = Lineer(8, 8)\n  output y = l(x)\n}\n");
    expect([d.line, d.col]).toEqual([3, 11]);
    expect(d.message).toBe("unknown model Lineer");
    expect(d.text).toContain("did you mean Linear?");
  });

  it("wrong argument: an op keyword that does not exist", () => {
    const d = diagnose("model M {\n  input x: f32[4, 8]\n  output y = softmax(x, dim = 0)\n}\n");
    expect([d.line, d.col]).toEqual([3, 25]);
    expect(d.message).toMatch(/^softmax has no argument dim/);
  });

  it("wrong argument: a model parameter that does not exist", () => {
    const d = diagnose("model M {\n  input x: f32[4, 8]\n  sub n = RMSNorm(8, epsilon = 1e-6)\n  output y = n(x)\n}\n");
    expect([d.line, d.col]).toEqual([3, 22]);
    expect(d.message).toBe("RMSNorm has no parameter epsilon");
  });

  it("wrong argument: a tensor where a compile-time model parameter is expected", () => {
    const d = diagnose("model M {\n  input x: f32[4, 8]\n  sub l = Linear(x, 8)\n  output y = l(x)\n}\n");
    expect([d.line, d.col]).toEqual([3, 18]);
    expect(d.message).toMatch(/compile-time value, got a tensor/);
  });

  it("shape mismatch in a matmul names both shapes", () => {
    const d = diagnose("model M {\n  input a: f32[2, 3]\n  input b: f32[4, 5]\n  output y = a @ b\n}\n");
    expect([d.line, d.col]).toEqual([4, 14]);
    expect(d.message).toBe("matmul: inner sizes differ: f32[2, 3] @ f32[4, 5] (3 vs 4)");
  });

  it("shape mismatch in broadcasting names both shapes", () => {
    const d = diagnose("model M {\n  dim N\n  input a: f32[N, 3]\n  input b: f32[N, 4]\n  output y = a + b\n}\n");
    expect([d.line, d.col]).toEqual([5, 14]);
    expect(d.message).toBe("add: shapes f32[N, 3] and f32[N, 4] do not broadcast");
  });

  it("shape mismatch at a sub-module's input names the expected pattern", () => {
    const d = diagnose("model M {\n  dim N\n  input x: f32[N, 6]\n  sub l = Linear(8, 8)\n  output y = l(x)\n}\n");
    expect([d.line, d.col]).toEqual([5, 16]);
    expect(d.message).toBe("Linear input x expects f32[..., 8], got f32[N, 6]");
  });

  it("a dim no input uses cannot be bound", () => {
    const d = diagnose("model M {\n  dim N, M\n  input x: f32[N, 4]\n  output y = x\n}\n");
    expect([d.line, d.col]).toEqual([2, 10]);
    expect(d.message).toBe("dim M cannot be bound: no input shape uses it");
  });

  it("compile-time integer division must be exact (D / H with D = 10, H = 4)", () => {
    const d = diagnose("model M(D = 10, H = 4) {\n  input x: f32[D]\n  param w: f32[D / H]\n  output y = x\n}\n");
    expect([d.line, d.col]).toEqual([3, 16]);
    expect(d.message).toBe("10 / 4 does not divide exactly; compile-time integer division must be exact");
  });

  it("unknown dtype", () => {
    const d = diagnose("model M {\n  input x: f23[4]\n  output y = x\n}\n");
    expect([d.line, d.col]).toEqual([2, 12]);
    expect(d.message).toBe("unknown dtype f23");
  });

  it("a let rebound outside a for body", () => {
    const d = diagnose("model M {\n  input x: f32[4]\n  let h = x\n  h = h + 1\n  output y = h\n}\n");
    expect([d.line, d.col]).toEqual([4, 3]);
    expect(d.message).toMatch(/only a for body may rebind a let/);
  });

  it("a name defined twice", () => {
    const d = diagnose("model M {\n  input x: f32[4]\n  let x = 2\n  output y = x\n}\n");
    expect([d.line, d.col]).toEqual([3, 7]);
    expect(d.message).toBe("x is already defined");
  });

  it("a reduction over an empty axis", () => {
    const d = diagnose("model M {\n  input x: f32[0, 4]\n  output y = mean(x, axis = 0)\n}\n");
    expect([d.line, d.col]).toEqual([3, 14]);
    expect(d.message).toMatch(/mean over an empty axis of f32\[0, 4\]/);
  });

  it("diffattn with a q width that does not split into heads", () => {
    const d = diagnose("model M {\n  dim N\n  input q: f32[N, 30]\n  input k: f32[N, 32]\n  input v: f32[N, 32]\n  output y = diffattn(q, k, v, 0.5, heads = 4)\n}\n");
    expect([d.line, d.col]).toEqual([6, 14]);
    expect(d.message).toMatch(/30/);
  });

  it("a missing model parameter", () => {
    const d = diagnose("model M {\n  input x: f32[4, 8]\n  sub l = Linear(8)\n  output y = l(x)\n}\n");
    expect([d.line, d.col]).toEqual([3, 3]);
    expect(d.message).toBe("Linear needs parameter OUT");
  });

  it("calling a model by name instead of through a sub", () => {
    const d = diagnose("model M {\n  input x: f32[4, 8]\n  output y = Linear(8, 8)(x)\n}\n");
    expect([d.line, d.col]).toEqual([3, 14]);
    expect(d.message).toMatch(/Linear is a model: declare an instance/);
  });

  it("an unknown --set key lists the model's parameters", () => {
    const d = diagnose("model M(D = 4) {\n  input x: f32[D]\n  output y = x\n}\n", { set: new Map([["Q", 3]]) });
    expect(d.message).toBe("model M has no parameter or dim Q (it has parameters D; no dims)");
  });

  it("the formatted diagnostic shows file:line:col, the line and a caret", () => {
    const d = diagnose("model M {\n  input x: f32[4]\n  output y = x @ 2\n}\n");
    expect(d.text).toBe(
      [
        "test.dt:3:14: error: @ multiplies two tensors, got a tensor and the integer 2",
        "  |",
        "3 |   output y = x @ 2",
        "  |              ^~~~~",
      ].join("\n"),
    );
  });
});
