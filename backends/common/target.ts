// What a target registry entry is (backends/registry.ts lists them): a backend's name, the ops
// it implements, its storage, its language table, its templates and how it writes an artifact.
import type { Graph } from "../../compiler/ir/graph.ts";
import type { DType } from "../../compiler/ir/types.ts";
import { BYTES, type StorageBytes } from "../../compiler/schedule/index.ts";
import { Diagnostic } from "../../common/diagnostic.ts";
import type { Precision } from "../../common/manifest.ts";

export type { Precision } from "../../common/manifest.ts";
import type { Artifact } from "./artifact.ts";
import type { Language } from "./kernel/render.ts";
import type { ReductionMapping } from "./lower/cooperative.ts";

export interface CompileOptions {
  /** The pass pipeline the graph went through, recorded in the manifest. */
  passes?: string[];
  /**
   * Lower every kernel the shared lowering can with it, even where the target has a hand-tuned
   * template (the packed JS matmul): how the tests check the lowering a GPU target relies on,
   * on every op, on the CPU. Templates of ops the lowering lacks (attention) stay.
   */
  sharedLowering?: boolean;
  /**
   * GPU targets with cooperative reductions (lower/cooperative.ts): one mapping for every
   * reduction, softmax and norm, where a heuristic picks one per kernel by default. Benchmarks
   * and tests compare the two.
   */
  reductions?: ReductionMapping;
  /** The arithmetic the kernels compute in: one of the target's precisions (default: its first). */
  precision?: Precision;
}


/** How closely a target's artifacts match the interpreter, for the differential harness. */
export interface Accuracy {
  /** Single elementwise, copy and reduction ops give the interpreter's bits exactly. */
  exactSingleOps: boolean;
  /** Multiplies the harness's per-family tolerances (1: as tight as float64 arithmetic rounded once). */
  toleranceFactor: number;
}

export interface Target {
  name: string;
  /** One line for --help: what the artifact holds and where it runs. */
  description: string;
  /** The ops it runs directly (the shared lowering's and its templates'); others are decomposed first. */
  ops(): ReadonlySet<string>;
  /** How each dtype is stored: the storage type's name in the target language, and bytes per element. */
  storage: Readonly<Record<DType, { type: string; bytes: number }>>;
  language: Language;
  /** Ops with hand-tuned kernel templates, used instead of the shared lowering. */
  templates: readonly string[];
  /** The artifact: its files (manifest.json among them), written by writeArtifact. */
  compile(graph: Graph, options?: CompileOptions): Artifact;
  /** The precisions it compiles for, the default first, each with how closely it matches the interpreter. */
  precisions: Readonly<Partial<Record<Precision, Accuracy>>>;
}

/** The precision `options` ask of `target`, its default when they ask none; a diagnostic for one it lacks. */
export function precisionOf(target: Target, options: CompileOptions = {}): Precision {
  const offered = Object.keys(target.precisions) as Precision[];
  const asked = options.precision ?? offered[0];
  if (!offered.includes(asked)) throw new Diagnostic(`the ${target.name} target computes in ${offered.join(" or ")}, not ${asked} (--precision ${offered.join("|")})`);
  return asked;
}

/** Bytes per element of each dtype in a target's storage, as the kernel plan counts them. */
export function storageBytes(target: Target): StorageBytes {
  return Object.fromEntries(Object.entries(target.storage).map(([d, s]) => [d, s.bytes])) as Record<DType, number>;
}


/** Storage at each dtype's natural width (typed arrays, CUDA, safetensors), under the language's type names. */
export function naturalStorage(types: Readonly<Record<DType, string>>): Target["storage"] {
  return Object.fromEntries(Object.entries(types).map(([dtype, type]) => [dtype, { type, bytes: BYTES[dtype as DType] }])) as Target["storage"];
}
