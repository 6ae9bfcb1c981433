// Prepares the bundle the GPU benchmark runs from (bench/cuda-device/run.sh): CUDA artifacts of
// the diff attention layer in f32, f16 and bf16, inputs at N = 1024 with the interpreter's
// outputs as the reference, and the scripts. The GPU machine needs nvcc, an NVIDIA GPU and
// PyTorch, but no Node and no network.
//
//   npx tsx bench/cuda-device/prepare.ts OUT_DIR
//   # then, on the GPU machine:  bash OUT_DIR/run.sh
import { copyFileSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { writeArtifact } from "../../backends/common/artifact.ts";
import { compileCuda } from "../../backends/cuda/index.ts";
import { elaborate } from "../../compiler/elaborate/index.ts";
import { runPipeline } from "../../compiler/passes/pipeline.ts";
import { DEFAULT_PIPELINE } from "../../compiler/passes/registry.ts";
import { parseProgram } from "../../dsl/parse.ts";
import { randomInputs } from "../../runtime/init.ts";
import { evaluate } from "../../runtime/interpreter/index.ts";
import { writeSafetensors } from "../../runtime/safetensors.ts";

const out = process.argv[2];
if (!out) {
  console.error("usage: npx tsx bench/cuda-device/prepare.ts OUT_DIR");
  process.exit(2);
}
mkdirSync(out, { recursive: true });
const source = readFileSync(new URL("../diffattn.dt", import.meta.url), "utf8");
const CHECK_N = 1024;
writeSafetensors(join(out, "weights.safetensors"), new Map());
for (const dtype of ["f32", "f16", "bf16"]) {
  const graph = elaborate(parseProgram(source.replaceAll("f32", dtype), `diffattn-${dtype}.dt`)).graph;
  const artifact = compileCuda(runPipeline(graph, DEFAULT_PIPELINE, { log: () => {} }), { passes: DEFAULT_PIPELINE });
  if (!artifact.manifest.kernels.some((k) => k.op === "flash_diffattn")) throw new Error(`diffattn-${dtype}: the pipeline did not fuse the attention`);
  writeArtifact(artifact, join(out, `difftc-${dtype}`));
  const dims = new Map([["N", CHECK_N]]);
  const inputs = randomInputs(graph, dims, 7);
  writeSafetensors(join(out, `inputs-${dtype}-${CHECK_N}.safetensors`), inputs);
  const started = performance.now();
  writeSafetensors(join(out, `reference-${dtype}-${CHECK_N}.safetensors`), evaluate(graph, inputs, new Map(), { dims }));
  console.log(`${dtype}: artifact, inputs and the interpreter's reference at N = ${CHECK_N} (${((performance.now() - started) / 1000).toFixed(1)} s)`);
}
for (const f of ["run.sh", "bench.py"]) copyFileSync(new URL(`./${f}`, import.meta.url), join(out, f));
console.log(`wrote ${out}: run 'bash ${out}/run.sh' on a machine with nvcc, an NVIDIA GPU and PyTorch`);
