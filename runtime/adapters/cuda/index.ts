// The CUDA adapters: build an artifact's runner (cached by the content hash of its sources and
// the build command), then run it on safetensors files of the weights and inputs and read its
// outputs back. `cuda` builds with nvcc and needs an NVIDIA GPU; `cuda-emu` builds the same
// source with g++ against the CPU emulation header and runs anywhere.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { type Artifact, readArtifact } from "../../../backends/common/artifact.ts";
import { Diagnostic } from "../../../common/diagnostic.ts";
import type { HostTensor } from "../../../compiler/ir/tensor.ts";
import { readSafetensors, serializeSafetensors } from "../../safetensors.ts";
import type { Session, TensorMap } from "../adapter.ts";

export type CudaMode = "cuda" | "cuda-emu";

/** The sources a runner is built from. */
const SOURCES = ["runner.cu", "kernels.cu", "difftc_model.h", "difftc_cuda.h", "difftc_cuda_emu.h", "difftc_safetensors.h"];

function nvcc(): string | undefined {
  for (const p of [process.env.NVCC, "/usr/local/cuda/bin/nvcc"]) if (p && existsSync(p)) return p;
  return spawnSync("nvcc", ["--version"]).status === 0 ? "nvcc" : undefined;
}

/** The build command of each mode, given the output path. */
function buildCommand(mode: CudaMode, out: string): [string, string[]] {
  if (mode === "cuda") return [nvcc()!, ["-O3", "-gencode", "arch=compute_80,code=sm_80", "-gencode", "arch=compute_90,code=sm_90", "-o", out, "runner.cu", "kernels.cu"]];
  return [process.env.CXX ?? "g++", ["-O1", "-std=c++17", "-pthread", "-x", "c++", "-w", "-o", out, "runner.cu", "kernels.cu"]];
}

const unavailable = new Map<CudaMode, string | undefined>();

/** Why `mode` cannot run here, or undefined; found out once per process (it runs the tools). */
export function cudaUnavailable(mode: CudaMode): string | undefined {
  if (!unavailable.has(mode)) unavailable.set(mode, findUnavailable(mode));
  return unavailable.get(mode);
}

function findUnavailable(mode: CudaMode): string | undefined {
  if (mode === "cuda-emu") return spawnSync(process.env.CXX ?? "g++", ["--version"]).status === 0 ? undefined : "g++ is not installed (the emulation builds the CUDA source with it)";
  if (!nvcc()) return "nvcc is not installed (CUDA toolkit)";
  if (spawnSync("nvidia-smi", ["-L"]).status !== 0) return "there is no NVIDIA GPU here (nvidia-smi finds none); --backend cuda-emu runs the same source on the CPU";
  return undefined;
}

function cacheRoot(): string {
  return join(process.env.DIFFTC_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "difftc"), "cuda");
}

/** The artifact's sources, from memory or from its directory. */
function sourcesOf(artifact: Artifact | string): Map<string, string> {
  const files = new Map<string, string>();
  // A directory is checked against its manifest's hashes first: what is built is what difftc wrote.
  const verified = typeof artifact === "string" ? readArtifact(artifact) : artifact;
  for (const name of SOURCES) {
    const content = verified.files.get(name);
    if (content === undefined) throw new Diagnostic(`${typeof artifact === "string" ? artifact : "the artifact"} is not a complete CUDA artifact: ${name} is missing (recompile with difftc compile --target cuda)`);
    files.set(name, String(content));
  }
  return files;
}

/** The built runner for these sources: from the cache, or compiled into it (atomically). */
export function buildRunner(artifact: Artifact | string, mode: CudaMode): string {
  const files = sourcesOf(artifact);
  const [tool, args] = buildCommand(mode, "runner");
  const hash = createHash("sha256").update(JSON.stringify([mode, tool, args, [...files]])).digest("hex").slice(0, 24);
  const dir = join(cacheRoot(), hash);
  const runner = join(dir, "runner");
  if (existsSync(runner)) return runner;
  mkdirSync(cacheRoot(), { recursive: true });
  const staging = mkdtempSync(join(cacheRoot(), `.build-${hash}-`));
  try {
    for (const [name, content] of files) writeFileSync(join(staging, name), content);
    const built = spawnSync(tool, args, { cwd: staging, encoding: "utf8", maxBuffer: 64 << 20 });
    if (built.status !== 0) throw new Diagnostic(`building the ${mode} runner failed (${tool} ${args.join(" ")}):\n${(built.stderr || built.stdout || String(built.error)).slice(0, 4000)}`);
    try {
      renameSync(staging, dir);
    } catch (e) {
      // Another process built the same sources first: use theirs.
      if (!existsSync(runner)) throw e;
      rmSync(staging, { recursive: true, force: true });
    }
  } catch (e) {
    rmSync(staging, { recursive: true, force: true });
    throw e;
  }
  return runner;
}

export async function loadCuda(artifact: Artifact | string, weights: TensorMap, mode: CudaMode): Promise<Session> {
  const why = cudaUnavailable(mode);
  if (why) throw new Diagnostic(`backend '${mode}' cannot run here: ${why}`);
  const runner = buildRunner(artifact, mode);
  const manifest = typeof artifact === "string" ? readArtifact(artifact).manifest : artifact.manifest;
  const params = new Map<string, HostTensor>();
  for (const p of manifest.params as { name: string }[]) {
    const t = weights.get(p.name);
    if (t) params.set(p.name, t);
  }
  const weightsBytes = serializeSafetensors(params);
  return {
    async run(inputs) {
      const dir = mkdtempSync(join(tmpdir(), "difftc-cuda-"));
      try {
        writeFileSync(join(dir, "weights.safetensors"), weightsBytes);
        // Every input given: the C API refuses one the model does not have.
        writeFileSync(join(dir, "inputs.safetensors"), serializeSafetensors(new Map(inputs)));
        const out = join(dir, "outputs.safetensors");
        const result = spawnSync(runner, [join(dir, "weights.safetensors"), join(dir, "inputs.safetensors"), out], { encoding: "utf8", maxBuffer: 64 << 20 });
        if (result.status !== 0) throw new Diagnostic(`${mode}: ${(result.stderr || String(result.error ?? `the runner exited with ${result.status ?? result.signal}`)).trim()}`);
        return readSafetensors(out).tensors;
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
