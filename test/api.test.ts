// The programmatic API end to end on one small model: every step the CLI takes, as functions.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import * as difftc from "../api/index.ts";
import { importJsModule } from "../runtime/adapters/js/index.ts";

const SOURCE = "model Tiny(D = 8) {\n  dim N\n  input x: f32[N, D]\n  sub proj = Linear(D, D)\n  output y = proj(x) * 2\n}";

describe("the API", () => {
  const model = difftc.elaborateModel(difftc.parseModel(SOURCE, "tiny.dt"), { set: { D: 4, N: 3 } });
  const weights = difftc.initWeights(model.graph, 0);
  const inputs = difftc.randomInputs(model.graph, model.dims, 0);
  const expected = difftc.evaluate(model.graph, inputs, weights).get("y")!;

  it("elaborates with parameters and dims, reporting both", () => {
    expect(model.name).toBe("Tiny");
    expect(model.parameters).toEqual({ D: 4 });
    expect(model.dims).toEqual(new Map([["N", 3]]));
    expect(difftc.graphParams(model.graph)).toEqual([{ name: "proj.weight", dtype: "f32", shape: [4, 4] }]);
  });

  it("prints the IR after a pipeline and parses it back to the same graph", () => {
    const optimized = difftc.optimize(model.graph, "default");
    const text = difftc.printGraph(optimized);
    expect(difftc.printGraph(difftc.parseGraph(text))).toBe(text);
    expect(() => difftc.optimize(model.graph, "default", { printAfter: new Set(["nope"]) })).toThrow(/unknown pass 'nope'/);
  });

  it("runs on the interpreter and on the JS backend, compiled in memory, alike", async () => {
    for (const backend of ["interp", "js"]) {
      const y = (await difftc.runModel(model.graph, inputs, weights, { backend })).get("y")!;
      expect(y.shape).toEqual([3, 4]);
      y.data.forEach((v, i) => expect(v).toBeCloseTo(expected.data[i], 5));
    }
  });

  it("writes an artifact directory, reads it back and runs it with a checkpoint read by name", async () => {
    const dir = mkdtempSync(join(tmpdir(), "difftc-api-"));
    difftc.writeArtifact(difftc.compile(model.graph, { target: "js" }), join(dir, "out"));
    difftc.writeSafetensors(join(dir, "w.safetensors"), new Map([["m.proj.weight", weights.get("proj.weight")!]]));
    const artifact = difftc.readArtifact(join(dir, "out"));
    expect(artifact.target).toBe("js");
    expect(difftc.isArtifactDir(join(dir, "out"))).toBe(true);
    const session = await difftc.loadSession(artifact.dir, difftc.readWeights(join(dir, "w.safetensors"), artifact.graph, { prefix: "m." }));
    // The default precision, f32, sums the projection in float32: the interpreter's value to a few units of f32.
    (await session.run(inputs)).get("y")!.data.forEach((v, i) => expect(v).toBeCloseTo(expected.data[i], 5));
    await expect(difftc.loadSession(artifact.dir, new Map())).rejects.toThrow(/does not match model Tiny: 1 param missing/);
  });

  it("refuses an input the model does not have, on every backend", async () => {
    const extra = new Map([...inputs, ["typo", difftc.tensor("f32", [1])]]);
    await expect(difftc.runModel(model.graph, extra, weights)).rejects.toThrow("model Tiny has no input typo (its inputs: x)");
    for (const backend of ["js", "cuda-emu"]) {
      const session = await difftc.loadSession(difftc.compile(model.graph, { target: difftc.findAdapterTarget(backend) }), weights, { backend });
      await expect(session.run(extra), backend).rejects.toThrow(/typo/);
    }
  });

  it("throws every mistake as a Diagnostic with file, line and column", () => {
    try {
      difftc.parseModel("model M {\n  output y = \n}", "bad.dt");
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(difftc.Diagnostic);
      expect((e as difftc.Diagnostic).format()).toMatch(/^bad\.dt:3:1: error: syntax error/);
    }
  });
});

describe("a JS artifact's run()", () => {
  it("takes int64 token ids (a BigInt64Array) when every one fits in i32", async () => {
    const lm = difftc.elaborateModel(difftc.parseModel("model E {\n  dim N\n  input tokens: i32[N]\n  param table: f32[300, 2]\n  output y = table[tokens]\n}")).graph;
    const model = await importJsModule(String(difftc.compile(lm).files.get("model.js")));
    const session = await model.load(difftc.serializeSafetensors(difftc.initWeights(lm, 0)));
    const wide = await session.run({ tokens: BigInt64Array.from([7n, 299n]) });
    expect(wide.y).toEqual((await session.run({ tokens: Int32Array.from([7, 299]) })).y);
    await expect(session.run({ tokens: BigInt64Array.from([1n, 2n ** 40n]) })).rejects.toThrow('input "tokens" holds 1099511627776 at index 1, outside i32');
  });
});
