// The WebGPU adapter: imports a WGSL artifact's model.js and runs it on this process's GPU
// device (Dawn through the `webgpu` package in Node; SwiftShader or lavapipe on machines
// without a GPU).
import type { Artifact } from "../../../backends/common/artifact.ts";
import { Diagnostic } from "../../../common/diagnostic.ts";
import type { Manifest } from "../../../common/manifest.ts";
import { serializeSafetensors } from "../../safetensors.ts";
import type { Session, TensorMap } from "../adapter.ts";
import { fromTyped, givenInputs, importModule, moduleSource, type TypedArray } from "../module.ts";
import { gpuDevice } from "./device.ts";

interface WgslModel {
  manifest: Manifest;
  load(weights: Uint8Array, options: { device: unknown }): Promise<{ run(inputs: Record<string, unknown>): Promise<Record<string, TypedArray>>; outputShape(name: string): number[] }>;
}

export async function loadWebgpu(artifact: Artifact | string, weights: TensorMap): Promise<Session> {
  const model = await importModule<WgslModel>(moduleSource(artifact));
  const artifactName = typeof artifact === "string" ? artifact : `model ${model.manifest.model}`;
  const { device } = await gpuDevice();
  const params = new Map(model.manifest.params.flatMap((p) => (weights.has(p.name) ? [[p.name, weights.get(p.name)!] as const] : [])));
  const fail = (e: unknown) => new Diagnostic(`${artifactName}: ${(e as Error).message}`);
  const session = await model.load(serializeSafetensors(new Map(params)), { device }).catch((e: unknown) => {
    throw fail(e);
  });
  return {
    async run(inputs) {
      let out: Record<string, TypedArray>;
      try {
        out = await session.run(givenInputs(model.manifest, inputs));
      } catch (e) {
        throw fail(e);
      }
      return new Map(model.manifest.outputs.map((o) => [o.name, fromTyped(o.dtype, session.outputShape(o.name), out[o.name])]));
    },
  };
}
