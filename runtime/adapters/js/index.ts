// The JS adapter: imports an artifact's model.js and runs it on host tensors.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Artifact } from "../../../backends/common/artifact.ts";
import type { Manifest } from "../../../common/manifest.ts";
import { bf16Bits, bf16FromBits, f16Bits, f16FromBits } from "../../../compiler/ir/numeric.ts";
import type { HostTensor } from "../../../compiler/ir/tensor.ts";
import type { DType } from "../../../compiler/ir/types.ts";
import { serializeSafetensors } from "../../safetensors.ts";
import type { Session, TensorMap } from "../adapter.ts";
import { Diagnostic } from "../../../common/diagnostic.ts";

type TypedArray = Float32Array | Uint16Array | Int32Array | Int8Array | Uint8Array;

interface JsModel {
  manifest: Manifest;
  load(weights: Uint8Array): Promise<{ run(inputs: Record<string, unknown>): Promise<Record<string, TypedArray>>; outputShape(name: string): number[] }>;
}

const ARRAYS: Record<DType, new (n: number) => TypedArray> = { f32: Float32Array, f16: Uint16Array, bf16: Uint16Array, i32: Int32Array, i8: Int8Array, u8: Uint8Array, bool: Uint8Array };

function toTyped(t: HostTensor): TypedArray {
  const a = new ARRAYS[t.dtype](t.data.length);
  if (t.dtype === "f16" || t.dtype === "bf16") {
    const encode = t.dtype === "f16" ? f16Bits : bf16Bits;
    for (let i = 0; i < a.length; i++) a[i] = encode(t.data[i]);
  } else {
    a.set(t.data); // the typed array's own conversion: fast, and exact for rounded values
  }
  return a;
}

function fromTyped(dtype: DType, shape: number[], a: TypedArray): HostTensor {
  if (dtype !== "f16" && dtype !== "bf16") return { dtype, shape, data: Float64Array.from(a) };
  const decode = dtype === "f16" ? f16FromBits : bf16FromBits;
  const data = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) data[i] = decode(a[i]);
  return { dtype, shape, data };
}

/** Imports a model.js from its source text (no file needed: a data: URL module). */
export async function importModule(source: string): Promise<JsModel> {
  return (await import(`data:text/javascript;base64,${Buffer.from(source).toString("base64")}`)) as JsModel;
}

export async function loadJs(artifact: Artifact | string, weights: TensorMap): Promise<Session> {
  const source = typeof artifact === "string" ? readFileSync(join(artifact, "model.js"), "utf8") : String(artifact.files.get("model.js"));
  const model = await importModule(source);
  const artifactName = typeof artifact === "string" ? artifact : `model ${model.manifest.model}`;
  const params = new Map(model.manifest.params.map((p) => [p.name, weights.get(p.name)!]));
  const session = await model.load(serializeSafetensors(new Map([...params].filter(([, t]) => t !== undefined))));
  return {
    async run(inputs) {
      const given: Record<string, { data: TypedArray; shape: number[] }> = {};
      for (const i of model.manifest.inputs) {
        const t = inputs.get(i.name);
        if (t) given[i.name] = { data: toTyped(t), shape: t.shape };
      }
      let out: Record<string, TypedArray>;
      try {
        out = await session.run(given);
      } catch (e) {
        // The artifact's own errors (bad inputs, an index out of range) are the user's to read.
        throw new Diagnostic(`${artifactName}: ${(e as Error).message}`);
      }
      return new Map(model.manifest.outputs.map((o) => [o.name, fromTyped(o.dtype, session.outputShape(o.name), out[o.name])]));
    },
  };
}
