// The WebGPU adapter: imports a WGSL artifact's model.js and runs it on this process's GPU
// device (Dawn through the `webgpu` package in Node; SwiftShader or lavapipe on machines
// without a GPU).
import type { Artifact } from "../../../backends/common/artifact.ts";
import { Diagnostic } from "../../../common/diagnostic.ts";
import type { Manifest } from "../../../common/manifest.ts";
import { serializeSafetensors } from "../../safetensors.ts";
import type { Session, TensorMap } from "../adapter.ts";
import { type ArtifactSession, hostSession, importArtifactModule } from "../module.ts";
import { gpuDevice, gpuInstance } from "./device.ts";

interface WgslModel {
  manifest: Manifest;
  load(weights: Uint8Array, options: { device: unknown; wgslLanguageFeatures?: ReadonlySet<string> }): Promise<ArtifactSession>;
}

/** `device`: the GPUDevice to run on; by default the process's (gpuDevice). */
export async function loadWebgpu(artifact: Artifact | string, weights: TensorMap, device?: GPUDevice): Promise<Session> {
  const model = await importArtifactModule<WgslModel>(artifact);
  const artifactName = typeof artifact === "string" ? artifact : `model ${model.manifest.model}`;
  device ??= (await gpuDevice()).device;
  const { wgslLanguageFeatures } = await gpuInstance();
  const params = new Map(model.manifest.params.flatMap((p) => (weights.has(p.name) ? [[p.name, weights.get(p.name)!] as const] : [])));
  const session = await model.load(serializeSafetensors(new Map(params)), { device, wgslLanguageFeatures }).catch((e: unknown) => {
    throw new Diagnostic(`${artifactName}: ${(e as Error).message}`);
  });
  return hostSession(model.manifest, session, artifactName);
}
