// The CUDA artifact as users get it: every kernel compiles with nvcc for sm_80 and sm_90
// (ptxas's register and spill report recorded), and a C program links the artifact's C API
// (under the CPU emulation header) and checks results and error codes.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { writeArtifact } from "../../backends/common/artifact.ts";
import { compileCuda } from "../../backends/cuda/index.ts";
import { runPipeline } from "../../compiler/passes/pipeline.ts";
import { DEFAULT_PIPELINE } from "../../compiler/passes/registry.ts";
import { evaluate } from "../../runtime/interpreter/index.ts";
import { compileSource } from "../support/dsl.ts";
import { QUANT_SETTINGS, quantModel } from "../support/quant.ts";
import { parseQuantFlag } from "../../compiler/passes/quantize-attention.ts";
import type { Graph } from "../../compiler/ir/graph.ts";

const NVCC = ["/usr/local/cuda/bin/nvcc", process.env.NVCC].find((p) => p && existsSync(p));
const GXX = spawnSync("g++", ["--version"]).status === 0;
for (const [tool, found] of [["nvcc", NVCC], ["g++", GXX]] as const) {
  if (found) continue;
  if (process.env.CI === "true") throw new Error(`${tool} is needed by the CUDA artifact tests in CI`);
  console.warn(`\n*** SKIPPING CUDA artifact tests that need ${tool}: not installed ***\n`);
}

const work = mkdtempSync(join(tmpdir(), "difftc-cuda-artifact-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A model file of the repository (examples/, bench/) after the default pipeline. */
const model = (file: string, set: [string, number][], dtype = "f32") =>
  runPipeline(compileSource(readFileSync(new URL(`../../${file}`, import.meta.url), "utf8").replaceAll("f32", dtype), { set: new Map(set) }, file), DEFAULT_PIPELINE, { log: () => {} });

/** ptxas's report per kernel: registers, spill stores and loads. */
function ptxasReport(stderr: string): Map<string, { registers: number; spills: number }> {
  const report = new Map<string, { registers: number; spills: number }>();
  let current = "";
  for (const line of stderr.split("\n")) {
    const entry = line.match(/Compiling entry function '(\w+)'/);
    if (entry) current = entry[1];
    const spill = line.match(/(\d+) bytes spill stores, (\d+) bytes spill loads/);
    if (spill && current) report.set(current, { registers: report.get(current)?.registers ?? 0, spills: Number(spill[1]) + Number(spill[2]) });
    const regs = line.match(/Used (\d+) registers/);
    if (regs && current) report.set(current, { registers: Number(regs[1]), spills: report.get(current)?.spills ?? 0 });
  }
  return report;
}

describe.skipIf(!NVCC)("every kernel of a CUDA artifact compiles with nvcc", { timeout: 120_000 }, () => {
  for (const [file, set, dtype] of [
    ["examples/diff_attention.dt", [["D", 128], ["H", 2]], "f32"],
    ["examples/diff_lm.dt", [["V", 64], ["D", 64], ["H", 2], ["L", 1]], "f32"],
    // The benchmark's layer: H = 8, d = 64, in f32 and with 16-bit storage.
    ["bench/diffattn.dt", [], "f32"],
    ["bench/diffattn.dt", [], "bf16"],
  ] as [string, [string, number][], string][])
    it(`${file} (${dtype}): sm_80 and sm_90, with ptxas's register and spill report`, () => compilesWithNvcc(model(file, set, dtype), `${file.replace("/", "-")}-${dtype}`));
  // The quantised attention kernels in every setting, and at the benchmark layer's widths.
  it("the quantised attention kernels of test/support/quant.ts: sm_80 and sm_90", () => compilesWithNvcc(compileSource(quantModel(QUANT_SETTINGS)), "quant"));
  it("bench/diffattn.dt, quantised (probs, 4 bits, blocks, threshold, V at 8 bits): sm_80 and sm_90", () => {
    const quant = { quant: parseQuantFlag("target=probs,bits=4,granularity=block,threshold=1e-3,v=8") };
    const graph = runPipeline(model("bench/diffattn.dt", []), ["quantize-attention"], { log: () => {}, passOptions: quant });
    compilesWithNvcc(graph, "bench-quant");
  });

});

/** Every kernel of the graph's artifact compiles for sm_80 and sm_90 without warnings; the attention kernels do not spill. */
function compilesWithNvcc(graph: Graph, label: string): void {
  const artifact = compileCuda(graph);
  const dir = join(work, label);
  writeArtifact(artifact, dir);
  for (const arch of ["sm_80", "sm_90"]) {
    const r = spawnSync(NVCC!, ["-cubin", `-arch=${arch}`, "-Xptxas", "-v", "-Werror", "all-warnings", "-o", join(dir, `kernels.${arch}.cubin`), "kernels.cu"], { cwd: dir, encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    const report = ptxasReport(r.stderr);
    expect([...report.keys()].sort()).toEqual(artifact.manifest.kernels.map((k) => k.name).sort());
    // Attention kernels must keep their state in registers. The quantised ones, in double with
    // the math library's exp, spill a few bytes (20 at H = 8, d = 64): reported, not failed.
    for (const [name, { spills }] of report) if (/attention|diffattn/.test(name) && !/qflash/.test(name)) expect(spills, `${name} spills on ${arch}`).toBe(0);
    console.log(`${label} ${arch}: ${report.size} kernels, registers ${Math.min(...[...report.values()].map((x) => x.registers))}..${Math.max(...[...report.values()].map((x) => x.registers))}, spilling: ${[...report].filter(([, x]) => x.spills > 0).map(([n]) => n).join(", ") || "none"}`);
  }
}

// A C program against the C API: create, run, read outputs, and every kind of mistake.
const PROGRAM = `#include <math.h>
#include <stdio.h>
#include <string.h>
#include "difftc_model.h"
#include "expected.h"

#define CHECK(cond, ...) do { if (!(cond)) { printf(__VA_ARGS__); printf("\\n"); return 1; } } while (0)

int main(void) {
  difftc_tensor w = {"w", DIFFTC_F32, 2, {3, 4}, W};
  difftc_tensor x = {"x", DIFFTC_F32, 2, {2, 4}, X};
  difftc_session *s = NULL;
  CHECK(difftc_num_inputs() == 1 && strcmp(difftc_input_name(0), "x") == 0, "inputs");
  CHECK(difftc_num_outputs() == 1 && strcmp(difftc_output_name(0), "y") == 0, "outputs");
  CHECK(difftc_create(&w, 0, &s) == DIFFTC_ERROR_MISSING, "no weights");
  printf("missing: %s\\n", difftc_last_error(NULL));
  difftc_tensor bad = w;
  bad.shape[1] = 5;
  CHECK(difftc_create(&bad, 1, &s) == DIFFTC_ERROR_MISMATCH, "bad shape");
  printf("mismatch: %s\\n", difftc_last_error(NULL));
  difftc_tensor extra[2] = {w, {"nope", DIFFTC_F32, 1, {1}, W}};
  CHECK(difftc_create(extra, 2, &s) == DIFFTC_ERROR_UNKNOWN, "unknown weight");
  printf("unknown: %s\\n", difftc_last_error(NULL));
  difftc_tensor twice[2] = {w, w};
  CHECK(difftc_create(twice, 2, &s) == DIFFTC_ERROR_ARGUMENT, "a weight given twice");
  printf("twice: %s\\n", difftc_last_error(NULL));
  CHECK(difftc_create(&w, 1, &s) == DIFFTC_OK, "create: %s", difftc_last_error(NULL));
  difftc_tensor out[DIFFTC_MAX_OUTPUTS];
  difftc_tensor wrong = x;
  wrong.dtype = DIFFTC_I32;
  CHECK(difftc_run(s, &wrong, 1, out) == DIFFTC_ERROR_MISMATCH, "wrong dtype");
  printf("dtype: %s\\n", difftc_last_error(s));
  CHECK(difftc_run(s, &x, 1, out) == DIFFTC_OK, "run: %s", difftc_last_error(s));
  CHECK(out[0].rank == 2 && out[0].shape[0] == 2 && out[0].shape[1] == 3, "output shape");
  const float *y = (const float *)out[0].data;
  for (int i = 0; i < 6; i++) CHECK(fabsf(y[i] - Y[i]) <= 1e-6f * fabsf(Y[i]) + 1e-7f, "y[%d] = %g, expected %g", i, y[i], Y[i]);
  difftc_destroy(s);
  printf("ok\\n");
  return 0;
}
`;

describe.skipIf(!GXX)("the C API of a CUDA artifact", () => {
  it("creates, runs and reports each kind of mistake with its error code and message", () => {
    const graph = compileSource(`model M { dim N
      input x: f32[N, 4]
      param w: f32[3, 4]
      output y = silu(x @ transpose(w)) }`);
    const W = Float64Array.from({ length: 12 }, (_, i) => Math.fround(Math.sin(i) * 0.7));
    const X = Float64Array.from({ length: 8 }, (_, i) => Math.fround(Math.cos(i * 1.3)));
    const y = evaluate(graph, new Map([["x", { dtype: "f32", shape: [2, 4], data: X }]]), new Map([["w", { dtype: "f32", shape: [3, 4], data: W }]])).get("y")!;
    const dir = join(work, "capi");
    writeArtifact(compileCuda(graph), dir);
    const array = (name: string, xs: Float64Array) => `static const float ${name}[] = {${[...xs].join(", ")}};`;
    writeFileSync(join(dir, "expected.h"), [array("W", W), array("X", X), array("Y", y.data)].join("\n"));
    writeFileSync(join(dir, "main.cu"), PROGRAM);
    execFileSync("g++", ["-O1", "-std=c++17", "-pthread", "-x", "c++", "-o", "main", "main.cu", "kernels.cu"], { cwd: dir });
    const out = execFileSync(join(dir, "main"), { encoding: "utf8" });
    expect(out).toContain("ok");
    expect(out).toContain('missing: missing param "w": f32[3, 4]');
    expect(out).toContain('mismatch: param "w" must have shape [3, 4], got size 5 on axis 1');
    expect(out).toContain('unknown: the model has no param "nope"');
    expect(out).toContain('dtype: input "x" must be f32[N, 4], got i32 of rank 2');
    expect(out).toContain('twice: param "w" is given twice');
  }, 60_000);

  it("refuses at compile time a model with more outputs than the C API returns", () => {
    const outputs = Array.from({ length: 65 }, (_, i) => `output y${i} = x * ${i}`).join("\n      ");
    const graph = compileSource(`model M { dim N
      input x: f32[N]
      ${outputs} }`);
    expect(() => compileCuda(graph)).toThrow(/at most 64 outputs \(DIFFTC_MAX_OUTPUTS\), model M has 65/);
  }, 60_000);
});
