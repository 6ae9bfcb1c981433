// The JS adapter: imports an artifact's model.js and runs it on host tensors.
import type { Artifact } from "../../../backends/common/artifact.ts";
import type { Manifest } from "../../../common/manifest.ts";
import { serializeSafetensors } from "../../safetensors.ts";
import type { Session, TensorMap } from "../adapter.ts";
import { Diagnostic } from "../../../common/diagnostic.ts";
import { fromTyped, givenInputs, importModule, moduleSource, type TypedArray } from "../module.ts";

export interface JsModel {
  manifest: Manifest;
  load(weights: Uint8Array): Promise<{ run(inputs: Record<string, unknown>): Promise<Record<string, TypedArray>>; outputShape(name: string): number[] }>;
}

/** Imports a JS artifact's model.js from its source text. */
export const importJsModule = (source: string): Promise<JsModel> => importModule<JsModel>(source);

export async function loadJs(artifact: Artifact | string, weights: TensorMap): Promise<Session> {
  const model = await importJsModule(moduleSource(artifact));
  const artifactName = typeof artifact === "string" ? artifact : `model ${model.manifest.model}`;
  const params = new Map(model.manifest.params.map((p) => [p.name, weights.get(p.name)!]));
  const session = await model.load(serializeSafetensors(new Map([...params].filter(([, t]) => t !== undefined))));
  return {
    async run(inputs) {
      let out: Record<string, TypedArray>;
      try {
        out = await session.run(givenInputs(model.manifest, inputs));
      } catch (e) {
        // The artifact's own errors (bad inputs, an index out of range) are the user's to read.
        throw new Diagnostic(`${artifactName}: ${(e as Error).message}`);
      }
      return new Map(model.manifest.outputs.map((o) => [o.name, fromTyped(o.dtype, session.outputShape(o.name), out[o.name])]));
    },
  };
}
