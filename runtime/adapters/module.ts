// What the adapters of JS-facing artifacts (the JS module, the WebGPU loader) share: importing
// model.js, and converting host tensors to and from the artifact's typed arrays.
import { join } from "node:path";
import { type Artifact, readArtifact } from "../../backends/common/artifact.ts";
import type { Manifest } from "../../common/manifest.ts";
import { bf16Bits, bf16FromBits, f16Bits, f16FromBits } from "../../compiler/ir/numeric.ts";
import type { HostTensor } from "../../compiler/ir/tensor.ts";
import type { DType } from "../../compiler/ir/types.ts";
import { Diagnostic } from "../../common/diagnostic.ts";
import type { KernelTime, Session, TensorMap } from "./adapter.ts";

export type TypedArray = Float32Array | Uint16Array | Int32Array | Int8Array | Uint8Array;

const ARRAYS: Record<DType, new (n: number) => TypedArray> = { f32: Float32Array, f16: Uint16Array, bf16: Uint16Array, i32: Int32Array, i8: Int8Array, u8: Uint8Array, bool: Uint8Array };

/** A host tensor as the artifact's typed array (16-bit floats as their bits). */
export function toTyped(t: HostTensor): TypedArray {
  const a = new ARRAYS[t.dtype](t.data.length);
  if (t.dtype === "f16" || t.dtype === "bf16") {
    const encode = t.dtype === "f16" ? f16Bits : bf16Bits;
    for (let i = 0; i < a.length; i++) a[i] = encode(t.data[i]);
  } else {
    a.set(t.data); // the typed array's own conversion: fast, and exact for rounded values
  }
  return a;
}

export function fromTyped(dtype: DType, shape: number[], a: TypedArray): HostTensor {
  if (dtype !== "f16" && dtype !== "bf16") return { dtype, shape, data: Float64Array.from(a) };
  const decode = dtype === "f16" ? f16FromBits : bf16FromBits;
  const data = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) data[i] = decode(a[i]);
  return { dtype, shape, data };
}

/** Every input given, as `{ data, shape }` for run(): the artifact refuses those its manifest lacks. */
export function givenInputs(inputs: TensorMap): Record<string, { data: TypedArray; shape: number[] }> {
  const given: Record<string, { data: TypedArray; shape: number[] }> = Object.create(null);
  for (const [name, t] of inputs) given[name] = { data: toTyped(t), shape: t.shape };
  return given;
}

/** Imports a model.js from its source text (no file needed: a data: URL module). */
export async function importModule<T>(source: string): Promise<T> {
  return (await import(`data:text/javascript;base64,${Buffer.from(source).toString("base64")}`)) as T;
}

/**
 * Imports an artifact's model.js (a directory is first checked against its manifest's hashes)
 * and checks that it is the module the manifest describes: one that fails to evaluate, lacks
 * load() or was compiled for another model is a diagnostic, not a crash in the middle of a run.
 */
export async function importArtifactModule<T extends { manifest: Manifest }>(artifact: Artifact | string): Promise<T> {
  const files = typeof artifact === "string" ? readArtifact(artifact) : artifact;
  const where = typeof artifact === "string" ? join(artifact, "model.js") : "model.js";
  const source = files.files.get("model.js");
  if (source === undefined) throw new Diagnostic(`${where} is missing: the artifact has no module to load`);
  let module: Record<string, unknown>;
  try {
    module = await importModule<Record<string, unknown>>(String(source));
  } catch (e) {
    throw new Diagnostic(`${where} cannot be loaded: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
  }
  if (typeof module.load !== "function" || typeof module.manifest !== "object" || module.manifest === null)
    throw new Diagnostic(`${where} does not export load() and manifest, as a difftc artifact's module does`);
  if (JSON.stringify(module.manifest) !== JSON.stringify(files.manifest))
    throw new Diagnostic(`${where} was compiled for another model or target than its manifest.json describes`);
  return module as unknown as T;
}

/** What a JS-facing artifact's session offers: run on typed arrays, and the shapes of its outputs. */
export interface ArtifactSession {
  run(inputs: Record<string, unknown>): Promise<Record<string, TypedArray>>;
  outputShape(name: string): number[];
  /** Per-kernel times, where the artifact's runtime measures them (the JS and WebGPU ones). */
  profile?(inputs: Record<string, unknown>, runs: number): Promise<KernelTime[]>;
}

/** An artifact's session behind the adapter interface: host tensors in and out, its errors as diagnostics. */
export function hostSession(manifest: Manifest, session: ArtifactSession, artifactName: string): Session {
  /** The artifact's own errors (bad inputs, an index out of range) are the user's to read. */
  const reported = async <T>(work: () => Promise<T>): Promise<T> => {
    try {
      return await work();
    } catch (e) {
      throw new Diagnostic(`${artifactName}: ${(e as Error).message}`);
    }
  };
  const profile = session.profile?.bind(session);
  return {
    async run(inputs) {
      const out = await reported(() => session.run(givenInputs(inputs)));
      return new Map(manifest.outputs.map((o) => [o.name, fromTyped(o.dtype, session.outputShape(o.name), out[o.name])]));
    },
    ...(profile && { profile: (inputs: TensorMap, runs = 1) => reported(() => profile(givenInputs(inputs), runs)) }),
  };
}
