// The JS artifact as a user deploys it: a self-contained ES module with typings, loaded from a
// safetensors buffer, that only ever does what the graph says.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { compileJs } from "../../backends/js/index.ts";
import { writeArtifact } from "../../backends/common/artifact.ts";
import { parseGraph } from "../../compiler/ir/parse.ts";
import { tensor } from "../../compiler/ir/tensor.ts";
import { importJsModule } from "../../runtime/adapters/js/index.ts";
import { initWeights } from "../../runtime/init.ts";
import { evaluate } from "../../runtime/interpreter/index.ts";
import { serializeSafetensors } from "../../runtime/safetensors.ts";
import { compileWgsl } from "../../backends/wgsl/index.ts";
import { compileSource } from "../support/dsl.ts";

const TSC = new URL("../../node_modules/.bin/tsc", import.meta.url).pathname;
const LM = readFileSync(new URL("../../examples/diff_lm.dt", import.meta.url), "utf8");
const small = () => compileSource(LM, { set: new Map([["V", 30], ["D", 16], ["H", 2], ["L", 1]]) });

function typecheck(dir: string, app: string): { ok: boolean; output: string } {
  writeFileSync(join(dir, "app.ts"), app);
  writeFileSync(join(dir, "package.json"), JSON.stringify({ type: "module" }));
  writeFileSync(join(dir, "tsconfig.json"), JSON.stringify({ compilerOptions: { noEmit: true, strict: true, module: "nodenext", moduleResolution: "nodenext", target: "es2022", types: [], lib: ["es2022"] }, files: ["app.ts"] }));
  try {
    execFileSync(TSC, ["-p", dir], { encoding: "utf8", stdio: "pipe" });
    return { ok: true, output: "" };
  } catch (e) {
    return { ok: false, output: String((e as { stdout?: string }).stdout) };
  }
}

describe("JS artifacts", () => {
  it("import nothing: model.js can be copied into a page or a service as it is", () => {
    const js = String(compileJs(small()).files.get("model.js"));
    expect(js).not.toMatch(/^\s*import\s/m);
    // Only Node's builtins, loaded in Node alone when a session starts worker threads, hidden from bundlers.
    const loaded = [...js.matchAll(/\b(?:import|require)\s*\(\s*(?:\/\*[^*]*\*\/\s*)*("[^"]*"|[^)]*)/g)].map((m) => m[1]);
    expect(loaded.length).toBeGreaterThan(0);
    for (const name of loaded) expect(name).toMatch(/^"node:(worker_threads|os)"$/);
    expect(js).toMatch(/^export async function load\(weights, options = \{\}\)/m);
  });

  it("load weights from a safetensors buffer and run({ tokens }) on a plain typed array", async () => {
    const graph = small();
    const weights = initWeights(graph, 5);
    const model = await importJsModule(String(compileJs(graph).files.get("model.js")));
    const bytes = serializeSafetensors(weights);
    const session = await model.load(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as unknown as Uint8Array);
    const tokens = Int32Array.from([3, 1, 4, 1, 5, 9]);
    const { logits } = await session.run({ tokens });
    expect(logits).toBeInstanceOf(Float32Array);
    expect(session.outputShape("logits")).toEqual([6, 30]);
    const expected = evaluate(graph, new Map([["tokens", tensor("i32", [6], tokens)]]), weights).get("logits")!;
    for (let i = 0; i < logits.length; i++) expect(Math.abs(logits[i] - expected.data[i])).toBeLessThan(2e-5);
  });

  it("compute what params alone determine once, in the first run with given sizes, and agree with the interpreter on every run", async () => {
    const graph = small();
    const weights = initWeights(graph, 6);
    const artifact = compileJs(graph);
    const folded = artifact.manifest.kernels.filter((k) => artifact.manifest.buffers[k.output].fromParams).map((k) => k.name);
    expect(folded.length).toBeGreaterThan(0);
    const model = await importJsModule(String(artifact.files.get("model.js")));
    const session = (await model.load(serializeSafetensors(weights))) as unknown as {
      run(i: unknown): Promise<{ logits: Float32Array }>;
      profile(i: unknown, runs: number): Promise<{ kernel: string; ms: number }[]>;
    };
    for (const [n, seed] of [[6, 1], [6, 2], [9, 3], [6, 4]]) {
      const tokens = Int32Array.from({ length: n }, (_, i) => (i * 7 + seed) % 30);
      const { logits } = await session.run({ tokens });
      const expected = evaluate(graph, new Map([["tokens", tensor("i32", [n], tokens)]]), weights).get("logits")!;
      for (let i = 0; i < logits.length; i++) expect(Math.abs(logits[i] - expected.data[i]), `N = ${n}, seed ${seed}`).toBeLessThan(2e-5);
    }
    // After the warm-up run the profile's runs skip them: no time at all.
    const profile = await session.profile({ tokens: Int32Array.from([1, 2, 3, 4, 5, 6]) }, 3);
    for (const k of profile) if (folded.includes(k.kernel)) expect(k.ms, k.kernel).toBe(0);
  });

  it("reject bad inputs and bad weights with clear errors", async () => {
    const graph = small();
    const model = await importJsModule(String(compileJs(graph).files.get("model.js")));
    await expect(model.load(new Uint8Array([1, 2, 3]))).rejects.toThrow(/not a valid safetensors file/);
    await expect(model.load(serializeSafetensors(new Map([["embed", tensor("f32", [2, 2])]])))).rejects.toThrow(/mismatched: embed is f32\[2, 2\], the model's is f32\[30, 16\]/);
    const session = await model.load(serializeSafetensors(initWeights(graph, 1)));
    await expect(session.run({})).rejects.toThrow(/missing input "tokens": i32\[N\]/);
    await expect(session.run({ tokens: new Float32Array(3) } as never)).rejects.toThrow(/must be a Int32Array/);
    await expect(session.run({ tokens: Int32Array.from([0, 99]) })).rejects.toThrow(/gather: index 99 is out of range for an axis of size 30/);
  });

  it("come with typings that spell out the inputs and outputs (type-checked with tsc)", () => {
    const dir = mkdtempSync(join(tmpdir(), "difftc-types-"));
    writeArtifact(compileJs(small()), join(dir, "out"));
    const good = typecheck(
      dir,
      `import { load, type Outputs } from "./out/model.js";
const session = await load(new Uint8Array(8));
const out: Outputs = await session.run({ tokens: new Int32Array(4) });
const logits: Float32Array = out.logits;
const n: number = session.dims.N;
const shape: number[] = session.outputShape("logits");
await session.run({ tokens: { data: new Int32Array(4), shape: [4] } });
export { logits, n, shape };
`,
    );
    expect(good.output).toBe("");
    expect(good.ok).toBe(true);
    const bad = typecheck(dir, `import { load } from "./out/model.js";\nconst s = await load(new Uint8Array(8));\nawait s.run({ tokenz: new Int32Array(4) });\nconst x: Int32Array = (await s.run({ tokens: new Int32Array(1) })).logits;\nexport { x };\n`);
    expect(bad.ok).toBe(false);
    expect(bad.output).toMatch(/tokenz/);
    expect(bad.output).toMatch(/Float32Array.*Int32Array|Int32Array.*Float32Array/s);
    const dts = readFileSync(join(dir, "out", "model.d.ts"), "utf8");
    expect(dts).toContain("/** i32[N] */");
    expect(dts).toContain("/** f32[N, 30] */");
  });

  it("for WebGPU too: the loader's typings take a device and have no runSync (type-checked with tsc)", () => {
    const dir = mkdtempSync(join(tmpdir(), "difftc-types-"));
    writeArtifact(compileWgsl(small()), join(dir, "out"));
    const good = typecheck(dir, `import { load } from "./out/model.js";
const session = await load(new Uint8Array(8), { device: {} });
const logits: Float32Array = (await session.run({ tokens: new Int32Array(4) })).logits;
export { logits };
`);
    expect(good.output).toBe("");
    const bad = typecheck(dir, `import { load } from "./out/model.js";
const s = await load(new Uint8Array(8));
export const x = s.runSync({ tokens: new Int32Array(4) });
`);
    expect(bad.output).toMatch(/runSync/);
  });

  it("never let a name from the source reach the code unescaped", async () => {
    // Names cannot be written this way in a .dt file, but the IR text accepts any string.
    const evil = 'x"]; globalThis.pwned = 1; //*/ ${globalThis.pwned = 2} `';
    const graph = parseGraph(`graph ${JSON.stringify(evil)} [${JSON.stringify(evil)}] {
  %0 = input {name = ${JSON.stringify(evil)}} : f32[${JSON.stringify(evil)}, 3]
  %1 = param {name = ${JSON.stringify(`${evil}.w`)}, init_args = [0, 1]} : f32[3]
  %2 = mul(%0, %1) : f32[${JSON.stringify(evil)}, 3]
  output ${JSON.stringify(`*/ ${evil}`)} = %2
}
`);
    const artifact = compileJs(graph);
    const dir = mkdtempSync(join(tmpdir(), "difftc-evil-"));
    writeArtifact(artifact, join(dir, "out"));
    const model = await importJsModule(String(artifact.files.get("model.js")));
    const weights = initWeights(graph, 2);
    const session = await model.load(serializeSafetensors(weights));
    const x = Float32Array.from([1, 2, 3, 4, 5, 6]);
    const out = await session.run({ [evil]: x });
    expect((globalThis as { pwned?: number }).pwned).toBeUndefined();
    const w = weights.get(`${evil}.w`)!.data;
    expect(Array.from(out[`*/ ${evil}`])).toEqual(Array.from(x, (v, i) => Math.fround(v * w[i % 3])));
    // The typings still parse and type-check.
    const checked = typecheck(dir, `import { load } from "./out/model.js";\nconst s = await load(new Uint8Array(8));\nexport const r = await s.run({ ${JSON.stringify(evil)}: new Float32Array(3) });\n`);
    expect(checked.output).toBe("");
  });
});
