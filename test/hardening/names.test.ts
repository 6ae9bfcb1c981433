// Names that JavaScript objects already answer to (__proto__, constructor, toString, valueOf)
// are ordinary names to difftc: looked up as own keys only, never found on a prototype.
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { compileJs } from "../../backends/js/index.ts";
import { importJsModule } from "../../runtime/adapters/js/index.ts";
import { initWeights } from "../../runtime/init.ts";
import { serializeSafetensors } from "../../runtime/safetensors.ts";
import { compileSource, diagnose } from "../support/dsl.ts";

const BIN = new URL("../../bin/difftc.mjs", import.meta.url).pathname;

describe("prototype names", () => {
  it.each([
    ["a builtin named __proto__", "model M { input x: f32[4] output y = __proto__(1) }", /unknown function __proto__/],
    ["toString as an initialiser", "model M { input x: f32[4] param w: f32[4] ~ toString() output y = x * w }", /an initializer must be/],
    ["toString in a shape", "model M { input x: f32[4, toString(1)] output y = x }", /unknown function toString/],
    ["constructor as an option", "model M { input x: f32[4] output y = softmax(x, constructor = 1) }", /softmax has no argument constructor/],
    ["valueOf as a constant", "model M { input x: f32[4] output y = x * valueOf }", /unknown name valueOf/],
  ])("%s is a diagnostic", (_, source, message) => {
    expect(diagnose(source).message).toMatch(message);
  });

  it("difftc toString --help is an unknown command", () => {
    const r = spawnSync(process.execPath, [BIN, "toString", "--help"], { encoding: "utf8" });
    expect(r.stdout).not.toContain("Function");
    expect(r.stderr).toContain("unknown command 'toString'");
    expect(r.status).toBe(1);
  });

  it("dims named constructor, toString and valueOf and an output named __proto__ run in the JS artifact", async () => {
    const graph = compileSource("model M { dim constructor, toString, valueOf\n input x: f32[constructor, toString]\n input z: f32[valueOf]\n output __proto__ = x + 1\n output constructor_ = z * 2 }");
    const model = await importJsModule(String(compileJs(graph).files.get("model.js")));
    const session = await model.load(serializeSafetensors(initWeights(graph, 0)));
    const out = (await session.run({ x: { data: new Float32Array(6), shape: [2, 3] }, z: new Float32Array([1, 2]) })) as Record<string, Float32Array>;
    expect(Object.hasOwn(out, "__proto__")).toBe(true);
    expect([...out["__proto__"]]).toEqual([1, 1, 1, 1, 1, 1]);
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
    expect([...out.constructor_]).toEqual([2, 4]);
  });

  it("an input named constructor that is not given is reported missing, not taken from the prototype", async () => {
    const graph = compileSource("model M { input constructor: f32[2] output y = constructor + 1 }");
    const model = await importJsModule(String(compileJs(graph).files.get("model.js")));
    const session = await model.load(serializeSafetensors(initWeights(graph, 0)));
    await expect(session.run({})).rejects.toThrow(/missing input "constructor"/);
  });

  it("an artifact's run() rejects input shapes that are not non-negative integers", async () => {
    const graph = compileSource("model M { dim N input x: f32[N, 8] output y = x + 1 }");
    const model = await importJsModule(String(compileJs(graph).files.get("model.js")));
    const session = await model.load(serializeSafetensors(initWeights(graph, 0)));
    for (const shape of [[1.5, 8], ["2", 8], [-1, 8]]) await expect(session.run({ x: { data: new Float32Array(12), shape } })).rejects.toThrow(/shape must be an array of non-negative integers/);
    await expect(session.run({ x: { data: new Float32Array(16), shape: [2, 8] } })).resolves.toBeDefined();
  });

  it("the artifact's weights reader refuses a dtype named constructor", async () => {
    const graph = compileSource("model M { input x: f32[2] param w: f32[2] output y = x * w }");
    const model = await importJsModule(String(compileJs(graph).files.get("model.js")));
    const header = new TextEncoder().encode(JSON.stringify({ w: { dtype: "constructor", shape: [2], data_offsets: [0, 8] } }));
    const bytes = new Uint8Array(8 + header.length + 8);
    new DataView(bytes.buffer).setUint32(0, header.length, true);
    bytes.set(header, 8);
    await expect(model.load(bytes)).rejects.toThrow(/unsupported dtype "constructor"/);
  });
});

describe("an artifact's own weights reader", () => {
  it("refuses a header that names a tensor twice, as difftc's reader does", async () => {
    const graph = compileSource("model M { input x: f32[1] param w: f32[1] output y = x * w }");
    const model = await importJsModule(String(compileJs(graph).files.get("model.js")));
    const header = new TextEncoder().encode('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}');
    const bytes = new Uint8Array(8 + header.length + 8);
    new DataView(bytes.buffer).setUint32(0, header.length, true);
    bytes.set(header, 8);
    await expect(model.load(bytes)).rejects.toThrow('weights: not a valid safetensors file: the header names "w" twice');
  });
});
