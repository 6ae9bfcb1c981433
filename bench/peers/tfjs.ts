// The TensorFlow.js peer: the same difftc graph executed op by op with tfjs-core ops on the
// cpu or wasm backend, for side-by-side benchmarks. Params and constants are uploaded once;
// each node's temporaries are freed by tf.tidy and its value after its last use.
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import type { Graph } from "../../compiler/ir/graph.ts";
import type { HostTensor } from "../../compiler/ir/tensor.ts";
import { formatShape, resolveShape } from "../../compiler/ir/types.ts";
import { checkInputs, lowerForPeer, type PeerRunner } from "./graph.ts";
import { resolveAttrs } from "../../compiler/ir/graph.ts";
import { attentionRules } from "./tfjs/attention.ts";
import { tfDType, type TfjsKernel, type TfjsRule } from "./tfjs/kernel.ts";
import { primitiveRules } from "./tfjs/primitives.ts";
import { provideNavigatorGpu } from "./webgpu.ts";

/** How many tensors TensorFlow.js holds: 0 once every runner is released. */
export function liveTensors(): number {
  return tf.memory().numTensors;
}

// Production mode, as a deployed tfjs app runs (it also drops the "install tfjs-node" banner).
tf.enableProdMode();

export type { PeerRunner };
export type TfjsBackend = "cpu" | "wasm" | "webgpu";

const rules: Record<string, TfjsRule> = { ...primitiveRules, ...attentionRules };
const IMPLEMENTED = new Set(["input", "param", ...Object.keys(rules)]);

/**
 * tfjs has one global backend per process. The runner switches to its own before every run,
 * so cpu and wasm runners can be measured side by side in one process.
 */
async function useBackend(backend: TfjsBackend): Promise<void> {
  if (tf.getBackend() === backend) return;
  if (backend === "wasm") await import("@tensorflow/tfjs-backend-wasm");
  // tfjs-backend-webgpu on navigator.gpu: in Node, the Dawn instance difftc's own device runs on.
  if (backend === "webgpu") {
    await provideNavigatorGpu();
    await import("@tensorflow/tfjs-backend-webgpu");
  }
  if (!(await tf.setBackend(backend))) throw new Error(`tfjs peer: backend ${backend} failed to initialise`);
  await tf.ready();
}

function upload(t: HostTensor): tf.Tensor {
  const dtype = tfDType(t.dtype);
  const values = dtype === "float32" ? new Float32Array(t.data) : dtype === "int32" ? new Int32Array(t.data) : Uint8Array.from(t.data, (v) => (v ? 1 : 0));
  return tf.tensor(values, t.shape, dtype);
}

type Step = { kind: "input"; name: string } | { kind: "fixed"; tensor: tf.Tensor } | { kind: "compute"; kernel: TfjsKernel; operands: number[] };

export async function createTfjsRunner(
  graph: Graph,
  params: ReadonlyMap<string, HostTensor>,
  dims: ReadonlyMap<string, number>,
  backend: TfjsBackend,
): Promise<PeerRunner> {
  await useBackend(backend);
  const lowered = lowerForPeer(graph, "tfjs", IMPLEMENTED);
  const owned: tf.Tensor[] = [];
  const keep = <T extends tf.Tensor>(t: T): T => {
    owned.push(t);
    return t;
  };
  const steps: Step[] = [];
  try {
    for (const node of lowered.nodes) {
      const shape = resolveShape(node.type.shape, dims);
      const name = String(node.attrs.name);
      if (node.op === "input") steps.push({ kind: "input", name });
      else if (node.op === "param") {
        const value = params.get(name);
        if (!value) throw new Error(`tfjs peer: param ${name} (${node.type.dtype}${formatShape(shape)}) was not given`);
        if (value.dtype !== node.type.dtype || formatShape(value.shape) !== formatShape(shape))
          throw new Error(`tfjs peer: param ${name} must be ${node.type.dtype}${formatShape(shape)}, got ${value.dtype}${formatShape(value.shape)}`);
        steps.push({ kind: "fixed", tensor: keep(upload(value)) });
      } else {
        const kernel = rules[node.op]({
          op: node.op,
          attrs: resolveAttrs(node.attrs, dims),
          operands: node.operands.map((o) => ({ dtype: lowered.nodes[o].type.dtype, shape: resolveShape(lowered.nodes[o].type.shape, dims) })),
          out: { dtype: node.type.dtype, shape },
          keep,
        });
        steps.push({ kind: "compute", kernel, operands: node.operands });
      }
    }
  } catch (e) {
    for (const t of owned) t.dispose();
    throw e;
  }

  const lastUse = new Int32Array(lowered.nodes.length).fill(-1);
  for (const n of lowered.nodes) for (const o of n.operands) lastUse[o] = n.id;
  for (const o of lowered.outputs) lastUse[o.node] = lowered.nodes.length;

  /** The forward pass on uploaded inputs; the caller owns (and disposes) the inputs and the returned outputs. */
  const forward = (uploaded: ReadonlyMap<string, tf.Tensor>): tf.Tensor[] => {
    const values: (tf.Tensor | undefined)[] = new Array(steps.length);
    const transient = new Set<tf.Tensor>();
    const release = (t: tf.Tensor | undefined) => {
      if (t && transient.delete(t)) t.dispose();
    };
    try {
      steps.forEach((step, id) => {
        if (step.kind === "fixed") values[id] = step.tensor;
        else if (step.kind === "input") values[id] = uploaded.get(step.name)!;
        else {
          const value = tf.tidy(() => {
            const args = step.operands.map((o) => values[o]!);
            const result = step.kernel(args);
            // A kernel may hand back an operand or a constant; the node's value must be its own.
            return args.includes(result) || owned.includes(result) ? tf.clone(result) : result;
          });
          values[id] = value;
          transient.add(value);
          for (const o of step.operands) if (lastUse[o] === id) release(values[o]);
        }
      });
      // Clones share the data; they outlive the transients disposed below.
      return lowered.outputs.map((o) => tf.clone(values[o.node]!));
    } finally {
      for (const t of transient) t.dispose();
    }
  };
  const uploadInputs = async (inputs: ReadonlyMap<string, HostTensor>) => {
    checkInputs(graph, inputs, dims, "tfjs");
    await useBackend(backend);
    return new Map(steps.flatMap((step) => (step.kind === "input" ? [[step.name, upload(inputs.get(step.name)!)] as const] : [])));
  };
  const dispose = (tensors: Iterable<tf.Tensor>) => {
    for (const t of tensors) t.dispose();
  };

  return {
    async run(inputs) {
      const uploaded = await uploadInputs(inputs);
      try {
        const results = forward(uploaded);
        try {
          const outputs = new Map<string, HostTensor>();
          for (const [i, o] of lowered.outputs.entries()) {
            // Converted natively: Float64Array.from with a map function costs more than the forward.
            const data = new Float64Array(await results[i].data());
            outputs.set(o.name, { dtype: lowered.nodes[o.node].type.dtype, shape: [...results[i].shape], data });
          }
          return outputs;
        } finally {
          dispose(results);
        }
      } finally {
        dispose(uploaded.values());
      }
    },
    async bindInputs(inputs) {
      const uploaded = await uploadInputs(inputs);
      return {
        async forward() {
          await useBackend(backend);
          const results = forward(uploaded);
          try {
            await Promise.all(results.map((t) => t.data()));
          } finally {
            dispose(results);
          }
        },
        release: () => dispose(uploaded.values()),
      };
    },
    async release() {
      for (const t of owned) t.dispose();
      owned.length = 0;
    },
  };
}
