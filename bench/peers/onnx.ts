// The onnxruntime-node peer: the same difftc graph exported to ONNX (for one set of sizes)
// and run by ONNX Runtime's CPU provider, for side-by-side benchmarks.
import * as ort from "onnxruntime-node";
import type { Graph } from "../../compiler/ir/graph.ts";
import type { HostTensor } from "../../compiler/ir/tensor.ts";
import type { DType } from "../../compiler/ir/types.ts";
import { checkInputs, type PeerRunner } from "./graph.ts";
import { exportOnnx } from "./onnx/export.ts";
import { encodeModel } from "./onnx/model.ts";
import { provideNavigatorGpu, withLiveTimer } from "./webgpu.ts";

export type { PeerRunner };

export interface OnnxRunnerOptions {
  /** ONNX Runtime's intra-op thread pool size (default 1, for per-core comparisons). */
  threads?: number;
  /** onnxruntime-node's CPU provider (default), or onnxruntime-web's WebGPU or WebAssembly provider. */
  provider?: "cpu" | "webgpu" | "wasm";
}

const ORT_TYPE: Partial<Record<DType, ort.Tensor.Type>> = { f32: "float32", i32: "int32", bool: "bool" };

function toOrt(t: HostTensor): ort.Tensor {
  switch (t.dtype) {
    case "f32":
      return new ort.Tensor("float32", new Float32Array(t.data), t.shape);
    case "i32":
      return new ort.Tensor("int32", new Int32Array(t.data), t.shape);
    case "bool":
      return new ort.Tensor("bool", Uint8Array.from(t.data, (v) => (v ? 1 : 0)), t.shape);
    default:
      throw new Error(`onnx peer: dtype ${t.dtype} is not supported (the peers run f32, i32 and bool)`);
  }
}

function fromOrt(t: ort.Tensor, dtype: DType): HostTensor {
  if (t.type !== ORT_TYPE[dtype]) throw new Error(`onnx peer: ONNX Runtime returned ${t.type} where ${dtype} was expected`);
  // The typed-array constructor converts natively; Float64Array.from with a map function runs
  // a JS callback per element (about 0.4 s per million here, more than the forward itself).
  const data = new Float64Array(t.data as Float32Array | Int32Array | Uint8Array);
  return { dtype, shape: t.dims.map(Number), data };
}

export async function createOnnxRunner(
  graph: Graph,
  params: ReadonlyMap<string, HostTensor>,
  dims: ReadonlyMap<string, number>,
  options: OnnxRunnerOptions = {},
): Promise<PeerRunner> {
  const model = encodeModel(exportOnnx(graph, params, dims));
  if (options.provider === "webgpu" || options.provider === "wasm") return createOnnxWebRunner(graph, model, dims, options.provider);
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: options.threads ?? 1,
    interOpNumThreads: 1,
    executionMode: "sequential",
    graphOptimizationLevel: "all",
    // Warnings only: a graph may hold constants nothing reads, which ORT reports as it drops them.
    logSeverityLevel: 3,
  });
  const outputTypes = new Map(graph.outputs.map((o) => [o.name, graph.nodes[o.node].type.dtype]));
  const feedsOf = (inputs: ReadonlyMap<string, HostTensor>) => {
    checkInputs(graph, inputs, dims, "onnx");
    return Object.fromEntries(session.inputNames.map((name) => [name, toOrt(inputs.get(name)!)]));
  };
  return {
    async run(inputs) {
      const results = await session.run(feedsOf(inputs));
      return new Map(graph.outputs.map((o) => [o.name, fromOrt(results[o.name] as ort.Tensor, outputTypes.get(o.name)!)]));
    },
    async bindInputs(inputs) {
      const feeds = feedsOf(inputs);
      return { forward: async () => void (await session.run(feeds)), release: () => {} };
    },
    release: () => session.release(),
  };
}

/**
 * The same model on onnxruntime-web in Node: its WebGPU execution provider (the
 * `onnxruntime-web/webgpu` entry) on Dawn, or its WebAssembly one (SIMD, one thread: the
 * thread count is fixed for the process by the first session, and one is the per-core figure).
 */
async function createOnnxWebRunner(graph: Graph, model: Uint8Array, dims: ReadonlyMap<string, number>, provider: "webgpu" | "wasm"): Promise<PeerRunner> {
  if (provider === "webgpu") await provideNavigatorGpu();
  const web = (await import(provider === "webgpu" ? "onnxruntime-web/webgpu" : "onnxruntime-web")) as unknown as typeof ort;
  (web.env as unknown as { logLevel: string }).logLevel = "error";
  if (provider === "wasm") (web.env as unknown as { wasm: { numThreads: number } }).wasm.numThreads = 1;
  const session = await web.InferenceSession.create(model, { executionProviders: [provider], graphOptimizationLevel: "all" });
  const outputTypes = new Map(graph.outputs.map((o) => [o.name, graph.nodes[o.node].type.dtype]));
  const feedsOf = (inputs: ReadonlyMap<string, HostTensor>) => {
    checkInputs(graph, inputs, dims, `onnx ${provider}`);
    const feeds: Record<string, ort.Tensor> = {};
    for (const name of session.inputNames) {
      const t = inputs.get(name)!;
      feeds[name] = new web.Tensor(ORT_TYPE[t.dtype]!, toOrt(t).data as Float32Array, t.shape) as ort.Tensor;
    }
    return feeds;
  };
  return {
    async run(inputs) {
      const results = await withLiveTimer(() => session.run(feedsOf(inputs)));
      return new Map(graph.outputs.map((o) => [o.name, fromOrt(results[o.name] as ort.Tensor, outputTypes.get(o.name)!)]));
    },
    async bindInputs(inputs) {
      const feeds = feedsOf(inputs);
      return { forward: async () => void (await withLiveTimer(() => session.run(feeds))), release: () => {} };
    },
    release: () => session.release(),
  };
}
