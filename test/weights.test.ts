// Checkpoints bind to models as PyTorch users expect (common/weights.js): strictly, with a name
// prefix, a rename map and unused tensors allowed as options, float dtypes converted, said once;
// the same in the API, the CLI and an artifact's own load().
import fc from "fast-check";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { bindParams, compile, Diagnostic, elaborateModel, type Graph, type HostTensor, initWeights, parseModel, readWeights, serializeSafetensors, tensor, writeSafetensors } from "../api/index.ts";
import { bf16Bits, bf16FromBits, f16Bits, f16FromBits, roundTo } from "../compiler/ir/numeric.ts";
import { importJsModule } from "../runtime/adapters/js/index.ts";
import { cli } from "./support/cli.ts";

const work = mkdtempSync(join(tmpdir(), "difftc-weights-"));

/** A Llama-like decoder, its params named as Hugging Face's LlamaForCausalLM names them. */
const LLAMA = `
model Embedding(V, D) {
  dim N
  input ids: i32[N]
  param weight: f32[V, D] ~ normal(0, 0.02)
  output y = weight[ids]
}

model DecoderLayer(D, FFN) {
  input x: f32[..., D]
  sub input_layernorm = RMSNorm(D)
  sub mlp = SwiGLU(D, FFN)
  output y = x + mlp(input_layernorm(x))
}

model Decoder(V = 32, D = 16, FFN = 24, L = 2) {
  dim N
  input input_ids: i32[N]
  sub embed_tokens = Embedding(V, D)
  sub layers[l in 0..L] = DecoderLayer(D, FFN)
  sub norm = RMSNorm(D)
  let x = embed_tokens(input_ids)
  for l in 0..L { x = layers[l](x) }
  output hidden = norm(x)
}

# The checkpoint's own layout: the decoder as the sub-module 'model', beside lm_head.
model LlamaForCausalLM(V = 32, D = 16, FFN = 24, L = 2) {
  dim N
  input input_ids: i32[N]
  sub model = Decoder(V, D, FFN, L)
  sub lm_head = Linear(D, V)
  output logits = lm_head(model(input_ids))
}

# The same weights with the names after the prefix: what --weights-prefix model. binds.
model CausalLM(V = 32, D = 16, FFN = 24, L = 2) {
  dim N
  input input_ids: i32[N]
  sub embed_tokens = Embedding(V, D)
  sub layers[l in 0..L] = DecoderLayer(D, FFN)
  sub norm = RMSNorm(D)
  sub lm_head = Linear(D, V)
  let x = embed_tokens(input_ids)
  for l in 0..L { x = layers[l](x) }
  output logits = lm_head(norm(x))
}
`;
const program = parseModel(LLAMA, "llama.dt");
const hf = elaborateModel(program, { model: "LlamaForCausalLM" });
const stripped = elaborateModel(program, { model: "CausalLM" });
const LLAMA_FILE = join(work, "llama.dt");
writeFileSync(LLAMA_FILE, LLAMA);

/** The checkpoint as transformers saves one in bfloat16: `model.`-prefixed names, BF16 tensors. */
function hfCheckpoint(): Map<string, HostTensor> {
  const weights = initWeights(hf.graph, 3);
  return new Map([...weights].map(([name, t]) => [name, { dtype: "bf16" as const, shape: t.shape, data: roundTo("bf16", Float64Array.from(t.data)) }]));
}
const CHECKPOINT = join(work, "model.safetensors");
writeSafetensors(CHECKPOINT, hfCheckpoint());

function diagnostic(f: () => unknown): Diagnostic {
  try {
    f();
  } catch (e) {
    if (e instanceof Diagnostic) return e;
    throw e;
  }
  throw new Error("no diagnostic");
}

afterEach(() => vi.restoreAllMocks());

describe("a Hugging Face style checkpoint (model.-prefixed names, bf16)", () => {
  it("has the names transformers writes, because `model` may name a sub-module", () => {
    const names = hf.graph.nodes.filter((n) => n.op === "param").map((n) => String(n.attrs.name));
    expect(names).toContain("model.embed_tokens.weight");
    expect(names).toContain("model.layers.1.mlp.down_proj.weight");
    expect(names).toContain("model.norm.weight");
    expect(names).toContain("lm_head.weight");
  });

  it("loads into the model whose names match after the prefix, converting bf16 to f32 and saying so once", () => {
    const notes: string[] = [];
    const weights = readWeights(CHECKPOINT, stripped.graph, { prefix: "model.", onNote: (n) => notes.push(n) });
    expect(notes).toEqual([`${CHECKPOINT}: converted 11 tensors from bf16 to f32 (as PyTorch's load_state_dict does)`]);
    const source = hfCheckpoint();
    expect(weights.get("layers.0.mlp.gate_proj.weight")!.dtype).toBe("f32");
    expect(weights.get("layers.0.mlp.gate_proj.weight")!.data).toEqual(source.get("model.layers.0.mlp.gate_proj.weight")!.data);
    expect(weights.get("lm_head.weight")!.data).toEqual(source.get("lm_head.weight")!.data);
  });

  it("loads as it is into the model that mirrors its layout", () => {
    expect(readWeights(CHECKPOINT, hf.graph, { onNote: () => {} }).size).toBe(11);
  });

  it("is refused without the prefix, listing what is missing and unused, and naming the option", () => {
    const d = diagnostic(() => readWeights(CHECKPOINT, stripped.graph, { onNote: () => {} }));
    expect(d.format()).toBe(
      [
        `error: ${CHECKPOINT} does not match model CausalLM: 10 params missing, 10 tensors unused`,
        "  note: missing: embed_tokens.weight, layers.0.input_layernorm.weight, layers.0.mlp.gate_proj.weight, layers.0.mlp.up_proj.weight, layers.0.mlp.down_proj.weight, layers.1.input_layernorm.weight, layers.1.mlp.gate_proj.weight, layers.1.mlp.up_proj.weight, ... (2 more)",
        // lm_head.weight carries no prefix in the file either: it binds as it is.
        "  note: unused: model.embed_tokens.weight, model.layers.0.input_layernorm.weight, model.layers.0.mlp.down_proj.weight, model.layers.0.mlp.gate_proj.weight, model.layers.0.mlp.up_proj.weight, model.layers.1.input_layernorm.weight, model.layers.1.mlp.down_proj.weight, model.layers.1.mlp.gate_proj.weight, ... (2 more)",
        "  note: the file's names carry the prefix 'model.': give it as the weights prefix (--weights-prefix model.)",
      ].join("\n"),
    );
  });
});

describe("strict binding", () => {
  const small = elaborateModel(parseModel("model M(D = 4) {\n  input x: f32[D]\n  param w: f32[D]\n  param b: f32[D]\n  output y = x * w + b\n}")).graph;
  const t = (n: number) => tensor("f32", [n]);

  it("refuses a tensor the model does not use, unless unused tensors are allowed", () => {
    const file = new Map([["w", t(4)], ["b", t(4)], ["optimizer.step", t(1)]]);
    expect(diagnostic(() => bindParams(small, file)).format()).toBe(
      "error: weights does not match model M: 1 tensor unused\n  note: unused: optimizer.step\n  note: to load a checkpoint that holds more than the model uses, allow unused tensors (--allow-unused)",
    );
    expect([...bindParams(small, file, { allowUnused: true }).keys()]).toEqual(["w", "b"]);
  });

  it("lists a shape that differs, and two tensors that name one param", () => {
    const d = diagnostic(() => bindParams(small, new Map([["w", t(5)], ["b", t(4)], ["p.b", t(4)]]), { prefix: "p." }));
    expect(d.message).toBe("weights does not match model M: 2 mismatched");
    expect(d.notes).toEqual(["mismatched: w is f32[5], the model's is f32[4]", "twice: b and p.b both name b"]);
  });

  it("renames the names that differ otherwise, before the prefix", () => {
    const bound = bindParams(small, new Map([["m.weight", t(4)], ["m.b", t(4)]]), { prefix: "m.", rename: { "m.weight": "w" } });
    expect([...bound.keys()]).toEqual(["w", "b"]);
  });

  it("refuses an integer tensor for a float param", () => {
    const d = diagnostic(() => bindParams(small, new Map([["w", tensor("i32", [4])], ["b", t(4)]])));
    expect(d.notes).toEqual(["mismatched: w is i32[4], the model's is f32[4]"]);
  });
});

describe("an artifact's own load() binds by the same rules", () => {
  const bytes = serializeSafetensors(hfCheckpoint());
  const modelJs = async (graph: Graph) => importJsModule(String(compile(graph, { target: "js" }).files.get("model.js")));

  it("takes the prefix, converts bf16 to f32 saying so once on stderr, and runs", async () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const model = await modelJs(stripped.graph);
    const session = await model.load(bytes, { prefix: "model." });
    expect(warn.mock.calls).toEqual([["note: weights: converted 11 tensors from bf16 to f32 (as PyTorch's load_state_dict does)"]]);
    const out = await session.run({ input_ids: Int32Array.from([1, 2, 3]) });
    expect(out.logits.length).toBe(3 * 32);
  });

  it("refuses the checkpoint without the prefix, with the same listing", async () => {
    const model = await modelJs(stripped.graph);
    await expect(model.load(bytes)).rejects.toThrow(/^weights does not match model CausalLM: 10 params missing, 10 tensors unused\n {2}missing: embed_tokens\.weight, .*\n {2}unused: model\.embed_tokens\.weight, .*\n {2}the file's names carry the prefix 'model\.'/);
  });

  it("loads F64 weights (NumPy's default), as the CLI does", async () => {
    const f64 = elaborateModel(parseModel("model M {\n  input x: f32[3]\n  param w: f32[3]\n  output y = x * w\n}")).graph;
    const json = JSON.stringify({ w: { dtype: "F64", shape: [3], data_offsets: [0, 24] } });
    const header = json.padEnd(Math.ceil(json.length / 8) * 8); // so the data is 8-byte aligned
    const file = new Uint8Array(8 + header.length + 24);
    new DataView(file.buffer).setUint32(0, header.length, true);
    file.set(new TextEncoder().encode(header), 8);
    new Float64Array(file.buffer, 8 + header.length, 3).set([0.5, -2, 1 / 3]);
    vi.spyOn(console, "warn").mockImplementation(() => {});
    const session = await (await modelJs(f64)).load(file);
    expect([...(await session.run({ x: Float32Array.from([1, 1, 3]) })).y]).toEqual([0.5, -2, Math.fround(Math.fround(1 / 3) * 3)]);
  });

  it("rounds f32 weights into f16 and bf16 params exactly as the compiler rounds them", async () => {
    vi.spyOn(console, "warn").mockImplementation(() => {});
    for (const [dtype, bits, fromBits] of [["f16", f16Bits, f16FromBits], ["bf16", bf16Bits, bf16FromBits]] as const) {
      const graph = elaborateModel(parseModel(`model M {\n  input x: ${dtype}[64]\n  param w: ${dtype}[64]\n  output y = x * w\n}`)).graph;
      const model = await modelJs(graph);
      await fc.assert(
        fc.asyncProperty(fc.array(fc.float({ noNaN: true }), { minLength: 64, maxLength: 64 }), async (values) => {
          const session = await model.load(serializeSafetensors(new Map([["w", tensor("f32", [64], values.map((v) => Math.fround(v)))]])));
          const one = Uint16Array.from({ length: 64 }, () => bits(1));
          const y = (await session.run({ x: one })).y as Uint16Array;
          expect([...y].map((b) => fromBits(b))).toEqual(values.map((v) => fromBits(bits(v))));
        }),
        { numRuns: 20 },
      );
    }
  });
});

describe("the CLI binds by the same rules", () => {
  it("--weights-prefix model. loads the checkpoint, saying the conversion once", async () => {
    const r = await cli("run", LLAMA_FILE, "--model", "CausalLM", "--weights", CHECKPOINT, "--weights-prefix", "model.", "--set", "N=4");
    expect(r.err).toBe(`note: ${CHECKPOINT}: converted 11 tensors from bf16 to f32 (as PyTorch's load_state_dict does)`);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^logits: f32\[4, 32\]/);
  });

  it("without it, the strict error; --rename and --allow-unused without --weights are errors", async () => {
    const r = await cli("run", LLAMA_FILE, "--model", "CausalLM", "--weights", CHECKPOINT, "--set", "N=4");
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^error: .* does not match model CausalLM: 10 params missing, 10 tensors unused\n/);
    expect((await cli("run", LLAMA_FILE, "--allow-unused", "--set", "N=4")).err).toBe("error: --allow-unused applies to --weights FILE, which is not given");
  });
});
