// The JS adapter: imports an artifact's model.js and runs it on host tensors.
import type { Artifact } from "../../../backends/common/artifact.ts";
import type { Manifest } from "../../../common/manifest.ts";
import type { WeightsBindingOptions } from "../../../common/weights.js";
import { serializeSafetensors } from "../../safetensors.ts";
import type { Session, TensorMap } from "../adapter.ts";
import { type ArtifactSession, hostSession, importArtifactModule, importModule } from "../module.ts";

export interface JsModel {
  manifest: Manifest;
  load(weights: Uint8Array, options?: WeightsBindingOptions & { threads?: number }): Promise<ArtifactSession>;
}

/** Imports a JS artifact's model.js from its source text. */
export const importJsModule = (source: string): Promise<JsModel> => importModule<JsModel>(source);

/** The artifact's own session (typed arrays in and out), with `options` for its load() (threads). */
export async function loadJsSession(artifact: Artifact | string, weights: TensorMap, options: { threads?: number } = {}): Promise<{ model: JsModel; session: ArtifactSession }> {
  const model = await importArtifactModule<JsModel>(artifact);
  const params = new Map(model.manifest.params.flatMap((p) => (weights.has(p.name) ? [[p.name, weights.get(p.name)!] as const] : [])));
  return { model, session: await model.load(serializeSafetensors(params), options) };
}

export async function loadJs(artifact: Artifact | string, weights: TensorMap): Promise<Session> {
  const { model, session } = await loadJsSession(artifact, weights);
  return hostSession(model.manifest, session, typeof artifact === "string" ? artifact : `model ${model.manifest.model}`);
}
