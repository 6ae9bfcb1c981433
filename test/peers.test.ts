// The benchmark peers (bench/peers) run the same graph as difftc on onnxruntime-node,
// onnxruntime-web's WebAssembly provider and TensorFlow.js; a benchmark ratio means nothing unless they compute the same thing. Each
// peer is compared with the interpreter through the differential harness's tolerances.
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { ProtoWriter } from "../bench/peers/onnx/protobuf.ts";
import type { PeerRunner } from "../bench/peers/graph.ts";
import { elaborate } from "../compiler/elaborate/index.ts";
import { GraphBuilder } from "../compiler/ir/builder.ts";
import type { Graph } from "../compiler/ir/graph.ts";
import type { HostTensor } from "../compiler/ir/tensor.ts";
import type { Dim } from "../compiler/ir/types.ts";
import { parseProgram } from "../dsl/parse.ts";
import { evaluate } from "../runtime/interpreter/index.ts";
import { initWeights, randomInputs } from "../runtime/init.ts";
import { expectClose, familyOf } from "./harness/harness.ts";
import { arbitraryGraphCase } from "./support/random-graph.ts";

type TensorMap = ReadonlyMap<string, HostTensor>;

interface Peer {
  name: string;
  create(graph: Graph, params: TensorMap, dims: ReadonlyMap<string, number>): Promise<PeerRunner>;
}

// The peers are bench/'s own package (npm run bench:install). A missing peer fails on CI and
// skips loudly elsewhere, as everywhere in the suite.
let onnx: typeof import("../bench/peers/onnx.ts") | undefined;
let tfjs: typeof import("../bench/peers/tfjs.ts") | undefined;
let peersMissing: string | undefined;
try {
  onnx = await import("../bench/peers/onnx.ts");
  tfjs = await import("../bench/peers/tfjs.ts");
} catch (e) {
  peersMissing = `the benchmark peers are not installed (${e instanceof Error ? e.message.split("\n")[0] : String(e)}): run npm run bench:install`;
  if (process.env.CI === "true") throw new Error(`on CI: ${peersMissing}`);
  console.warn(`\n*** SKIPPING the peer agreement tests: ${peersMissing} ***\n`);
}

const PEERS: Peer[] = [
  { name: "onnxruntime-node", create: (g, p, d) => onnx!.createOnnxRunner(g, p, d) },
  { name: "onnxruntime-web wasm", create: (g, p, d) => onnx!.createOnnxRunner(g, p, d, { provider: "wasm" }) },
  { name: "tfjs-cpu", create: (g, p, d) => tfjs!.createTfjsRunner(g, p, d, "cpu") },
  { name: "tfjs-wasm", create: (g, p, d) => tfjs!.createTfjsRunner(g, p, d, "wasm") },
];

/**
 * Runs the graph on the peer and on the interpreter and compares every output. Whole models
 * are held to the "reduction" tolerance (6e-5 + 6e-5·|e| in f32, about the 1e-4 relative a
 * peer in f32 should meet): the peers compute in f32 throughout, as the interpreter's rounding
 * assumes, and their attention is exact, not streamed.
 */
async function agrees(peer: Peer, graph: Graph, params: TensorMap, inputs: TensorMap, dims: ReadonlyMap<string, number>): Promise<void> {
  const expected = evaluate(graph, inputs, params, { dims });
  const runner = await peer.create(graph, params, dims);
  try {
    const actual = await runner.run(inputs);
    const family = familyOf(graph) === "elementwise" ? "elementwise" : "reduction";
    for (const [name, e] of expected) {
      expect(actual.has(name), `${peer.name}: output ${name} missing`).toBe(true);
      expectClose(actual.get(name)!, e, family, `${peer.name} ${graph.name}.${name}`);
    }
  } finally {
    await runner.release();
  }
}

function compileExample(file: string, set: Record<string, number>): Graph {
  const path = `examples/${file}`;
  return elaborate(parseProgram(readFileSync(path, "utf8"), path), { set: new Map(Object.entries(set)) }).graph;
}

const EXAMPLES: [string, Record<string, number>][] = [
  ["diff_attention.dt", { D: 64, H: 2 }],
  ["diff_attention_v2.dt", { D: 64 }],
  ["transformer_lm.dt", { V: 32, D: 32, H: 2, L: 1 }],
  ["diff_lm.dt", { V: 32, D: 32, H: 2, L: 1 }],
];

/**
 * diffattn and attention with GQA 4:2, both pairings, λ per token and head, a leading batch
 * dim and M != N keys (a KV cache: the causal diagonal shifts by M - N).
 */
function groupedAttentionGraph(pairing: "stripe" | "halves", lambdaShape: Dim[]): Graph {
  const b = new GraphBuilder(`gqa_${pairing}`);
  b.dim("N");
  b.dim("M");
  const [heads, kvHeads, d] = [4, 2, 4];
  const input = (name: string, shape: Dim[]) => b.add("input", [], { name, dtype: "f32", shape });
  const q = input("q", [2, "N", 2 * heads * d]);
  const k = input("k", [2, "M", 2 * kvHeads * d]);
  const v = input("v", [2, "M", 2 * kvHeads * d]);
  const lambda = b.add("sigmoid", [input("lambda_logits", lambdaShape)]);
  b.output("diff", b.add("diffattn", [q, k, v, lambda], { heads, kv_heads: kvHeads, causal: true, pairing }));
  b.output("plain", b.add("attention", [q, k, v], { heads: 2 * heads, kv_heads: 2 * kvHeads, causal: true, scale: 0.3 }));
  return b.finish();
}

/** One of nearly every other op, with the edges the peers must patch: integer division, negative slice steps, softmax off the last axis. */
function opsGraph(): Graph {
  const b = new GraphBuilder("ops");
  b.dim("N");
  const x = b.add("input", [], { name: "x", dtype: "f32", shape: ["N", 8] });
  const tokens = b.add("input", [], { name: "tokens", dtype: "i32", shape: ["N"] });
  const table = b.add("param", [], { name: "table", dtype: "f32", shape: [6, 8] });
  const ones = b.add("param", [], { name: "ones", dtype: "f32", shape: [8], init: "constant", init_args: [1] });
  const c = (value: number, dtype: "f32" | "i32" = "f32") => b.add("const", [], { value, dtype });
  const positions = b.add("iota", [], { shape: ["N"], dtype: "i32" });
  b.output("rope_interleaved", b.add("rope", [x, positions], { head_dim: 4, interleaved: true }));
  b.output("rope_neox", b.add("rope", [x, b.add("cast", [positions], { dtype: "f32" })], { interleaved: false, theta: 500 }));
  b.output("layernorm", b.add("layernorm", [b.add("gelu", [x]), ones, b.add("gelu_tanh", [ones])], { eps: 1e-3 }));
  b.output("softmax_rows", b.add("softmax", [x], { axis: 0 }));
  b.output("reversed", b.add("slice", [x], { axis: 1, start: -1, end: -100, step: -3 }));
  b.output("quotient", b.add("div", [b.add("sub", [positions, c(3, "i32")]), b.add("sub", [tokens, c(1, "i32")])]));
  const embedded = b.add("gather", [table, tokens], { axis: 0 });
  const gated = b.add("where", [b.add("gt", [x, c(0)]), b.add("silu", [x]), b.add("tanh", [embedded])]);
  const columnMax = b.add("max", [x], { axes: [0], keepdims: true });
  const stacked = b.add("concat", [gated, b.add("broadcast", [columnMax], { shape: ["N", 8] })], { axis: 1 });
  b.output("stacked", b.add("mean", [b.add("reshape", [stacked], { shape: ["N", 4, 4] })], { axes: [1, -1], keepdims: false }));
  b.output("products", b.add("matmul", [b.add("transpose", [x], { perm: [1, 0] }), b.add("exp", [b.add("neg", [b.add("abs", [x])])])]));
  b.output("counts", b.add("sum", [b.add("cast", [b.add("le", [x, c(0.5)])], { dtype: "i32" })], { axes: [] }));
  return b.finish();
}

describe("a protobuf writer for ONNX models", () => {
  it("writes varints as base-128 groups, negatives as ten-byte two's complement", () => {
    const w = new ProtoWriter().varint(1, 300).varint(2, -1);
    expect([...w.finish()]).toEqual([0x08, 0xac, 0x02, 0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
  });

  it("writes nested messages and packed repeated fields length-delimited", () => {
    const w = new ProtoWriter().message(7, (m) => m.string(1, "ab").packedVarints(2, [1, 150]));
    expect([...w.finish()]).toEqual([0x3a, 0x09, 0x0a, 0x02, 0x61, 0x62, 0x12, 0x03, 0x01, 0x96, 0x01]);
  });
});

for (const peer of PEERS) {
  describe.skipIf(peersMissing !== undefined)(`the ${peer.name} peer computes what the interpreter computes`, () => {
    for (const [file, set] of EXAMPLES) {
      it(`on ${file} with ${Object.entries(set).map(([k, v]) => `${k}=${v}`).join(", ")}, N=8`, async () => {
        const graph = compileExample(file, set);
        const dims = new Map([["N", 8]]);
        await agrees(peer, graph, initWeights(graph, 7), randomInputs(graph, dims, 11), dims);
      });
    }

    for (const [pairing, lambdaShape] of [["halves", ["N", 4]], ["stripe", [4]]] as const) {
      it(`on diffattn with GQA 4:2, ${pairing} pairing and λ of shape [${lambdaShape}], M > N keys`, async () => {
        const graph = groupedAttentionGraph(pairing, [...lambdaShape]);
        const dims = new Map([["N", 5], ["M", 7]]);
        await agrees(peer, graph, new Map(), randomInputs(graph, dims, 3), dims);
      });
    }

    it("on causal attention where queries outnumber keys (the first rows see no key and give 0)", async () => {
      const graph = groupedAttentionGraph("halves", []);
      const dims = new Map([["N", 6], ["M", 4]]);
      await agrees(peer, graph, new Map(), randomInputs(graph, dims, 5), dims);
    });

    it("on rope, layernorm, gather, where, integer division, reversed slices and off-axis softmax", async () => {
      const graph = opsGraph();
      const dims = new Map([["N", 5]]);
      const inputs = new Map(randomInputs(graph, dims, 9));
      // Token 1 makes a zero divisor: difftc's integer division gives 0 there.
      inputs.get("tokens")!.data.set([0, 1, 5, 2, 1]);
      await agrees(peer, graph, initWeights(graph, 4), inputs, dims);
    });

    it("times a bound forward on inputs converted once, and frees them on release", async () => {
      const graph = compileExample("diff_attention.dt", { D: 64, H: 2 });
      const dims = new Map([["N", 8]]);
      const runner = await peer.create(graph, initWeights(graph, 7), dims);
      try {
        const bound = await runner.bindInputs(randomInputs(graph, dims, 11));
        await bound.forward();
        await bound.forward();
        bound.release();
        // A shape the runner was not built for is refused before anything is converted.
        await expect(runner.bindInputs(randomInputs(graph, new Map([["N", 9]]), 11))).rejects.toThrow(/was built for these sizes/);
      } finally {
        await runner.release();
      }
    });

    it("reports an op it cannot map by name", async () => {
      const b = new GraphBuilder("quantized");
      const x = b.add("input", [], { name: "x", dtype: "f32", shape: [4] });
      b.output("q", b.add("quantize", [x, b.add("const", [], { value: 0.1 })], { dtype: "i8" }));
      await expect(peer.create(b.finish(), new Map(), new Map())).rejects.toThrow(/cannot map op quantize/);
    });
  });
}

describe.skipIf(peersMissing !== undefined)("the peers agree with the interpreter on random well-typed graphs", () => {
  for (const peer of PEERS.slice(0, 2)) {
    it(`on ${peer.name}`, async () => {
      await fc.assert(
        fc.asyncProperty(arbitraryGraphCase({ dims: true }), async ({ graph, dims, inputs }) => {
          const expected = evaluate(graph, inputs, new Map(), { dims });
          const runner = await peer.create(graph, new Map(), dims);
          try {
            const actual = await runner.run(inputs);
            for (const [name, e] of expected) expectClose(actual.get(name)!, e, familyOf(graph), `${peer.name} ${name}`);
          } finally {
            await runner.release();
          }
        }),
        { numRuns: 40 },
      );
    });
  }
});

afterAll(() => {
  // Every tensor a runner uploaded or computed was freed.
  if (tfjs) expect(tfjs.liveTensors()).toBe(0);
});
