// The example models end to end through the real `difftc` command.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findTarget, targetNames } from "../backends/registry.ts";
import { backendNames } from "../runtime/adapters/index.ts";
import { describe, expect, it } from "vitest";
import { readSafetensors, writeSafetensors } from "../runtime/safetensors.ts";
import { tensor } from "../compiler/ir/tensor.ts";

const BIN = new URL("../bin/difftc.mjs", import.meta.url).pathname;
const work = mkdtempSync(join(tmpdir(), "difftc-cli-"));

function difftc(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8" });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

describe("difftc CLI", () => {
  it("check prints the signature of diff_attention.dt with hierarchical param names", () => {
    const r = difftc("check", "examples/diff_attention.dt");
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("model DiffAttention(D = 512, H = 4, Hkv = 4, layer = 0)");
    expect(r.stdout).toContain("dims: N");
    expect(r.stdout).toMatch(/inputs:\n {2}x: f32\[N, 512\]/);
    expect(r.stdout).toMatch(/outputs:\n {2}y: f32\[N, 512\]/);
    expect(r.stdout).toMatch(/q_proj\.weight +f32\[512, 512\] +uniform\(-0\.04419, 0\.04419\)/);
    expect(r.stdout).toMatch(/lambda_q1 +f32\[64\] +normal\(0, 0\.1\)/);
    expect(r.stdout).toMatch(/subln\.weight +f32\[128\] +constant\(1\)/);
  });

  it("check of diff_lm.dt names params hierarchically through sub arrays", () => {
    const r = difftc("check", "examples/diff_lm.dt", "--set", "L=2");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("layers.1.attn.q_proj.weight");
    expect(r.stdout).toContain("layers.0.ffn.gate_proj.weight");
    expect(r.stdout).not.toContain("layers.2.");
  });

  it("ir prints the graph as text", () => {
    const r = difftc("ir", "examples/diff_lm.dt", "--set", "L=2");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^graph DiffLM \[N\] \{/);
    expect(r.stdout).toContain("diffattn(");
    expect(r.stdout).toMatch(/output "logits" = %\d+/);
  });

  it("init writes seeded weights; the same seed gives the same file", () => {
    const a = join(work, "a.safetensors");
    const b = join(work, "b.safetensors");
    expect(difftc("init", "examples/diff_lm.dt", "--set", "L=1", "--seed", "1", "-o", a).code).toBe(0);
    expect(difftc("init", "examples/diff_lm.dt", "--set", "L=1", "--seed", "1", "-o", b).code).toBe(0);
    expect(readFileSync(a).equals(readFileSync(b))).toBe(true);
    const w = readSafetensors(a).tensors;
    expect(w.get("layers.0.attn_norm.weight")!.data.every((x) => x === 1)).toBe(true);
    expect(w.get("embed")!.shape).toEqual([256, 256]);
  });

  it("run with weights and inputs files writes outputs; without -o prints a summary", () => {
    const weights = join(work, "w.safetensors");
    const inputs = join(work, "in.safetensors");
    const out = join(work, "out.safetensors");
    expect(difftc("init", "examples/diff_lm.dt", "--set", "L=1", "--seed", "1", "-o", weights).code).toBe(0);
    writeSafetensors(inputs, { tokens: tensor("i32", [5], [1, 2, 3, 250, 0]) });
    const r = difftc("run", "examples/diff_lm.dt", "--set", "L=1", "--backend", "interp", "--weights", weights, "--inputs", inputs, "-o", out);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const logits = readSafetensors(out).tensors.get("logits")!;
    expect(logits.shape).toEqual([5, 256]);
    expect(logits.data.every(Number.isFinite)).toBe(true);
    const printed = difftc("run", "examples/diff_lm.dt", "--set", "L=1", "--weights", weights, "--inputs", inputs);
    expect(printed.stdout).toMatch(/^logits: f32\[5, 256\] {2}min .* max .* mean .*\n {2}\[/);
  });

  it("run without files draws seeded inputs of the sizes given by --set", () => {
    for (const file of ["examples/diff_attention.dt", "examples/transformer_lm.dt", "examples/diff_attention_v2.dt"]) {
      const r = difftc("run", file, "--set", "N=16", "--set", "L=1");
      if (file.includes("lm")) {
        expect(r.code, r.stderr).toBe(0);
      } else {
        // These models have no L: --set L is a mistake and says so.
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(/has no parameter or dim L/);
        const ok = difftc("run", file, "--set", "N=16");
        expect(ok.code, ok.stderr).toBe(0);
        expect(ok.stdout).toMatch(/^y: f32\[16, \d+\]/);
      }
    }
  });

  it("a mistake in a .dt file prints file:line:col with a caret and exits 1, never a stack trace", () => {
    const bad = join(work, "bad.dt");
    writeFileSync(bad, "model M {\n  input x: f32[4, 8]\n  output y = x @ x\n}\n");
    const r = difftc("check", bad);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`${bad}:3:14: error: matmul: inner sizes differ: f32[4, 8] @ f32[4, 8] (8 vs 4)\n  |\n3 |   output y = x @ x\n  |              ^~~~~\n`);
    expect(r.stderr).not.toMatch(/at .*\.ts:\d+/);
  });

  it("bad command lines get one-line errors", () => {
    expect(difftc("frobnicate").stderr).toMatch(/unknown command 'frobnicate'/);
    // Targets and backends are named from the registries.
    expect(difftc("compile", "examples/diff_attention.dt", "--target", "nope", "-o", join(work, "nope")).stderr).toBe(`error: unknown target 'nope' (targets: ${targetNames().join(", ")})\n`);
    expect(difftc("run", "examples/diff_attention.dt", "--backend", "nope").stderr).toBe(`error: unknown backend 'nope' (backends: ${backendNames().join(", ")})\n`);
    expect(difftc("compile", "--help").stdout).toContain(`js: ${findTarget("js").description}`);
    expect(difftc("run", "examples/diff_lm.dt").stderr).toMatch(/random inputs need a size for N: pass --set N=SIZE/);
    expect(difftc("check", "examples/diff_lm.dt", "--bogus").stderr).toMatch(/Unknown option '--bogus'/);
    expect(difftc("check", "missing.dt").stderr).toBe("error: cannot read missing.dt: no such file\n");
    const corrupt = join(work, "corrupt.safetensors");
    writeFileSync(corrupt, Buffer.from([1, 2, 3]));
    const r = difftc("run", "examples/diff_lm.dt", "--set", "N=4", "--set", "L=1", "--weights", corrupt);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/corrupt\.safetensors/);
  });

  it("a failed run leaves no half-written output file", () => {
    const out = join(work, "never.safetensors");
    const r = difftc("run", "examples/diff_lm.dt", "--set", "L=1", "-o", out);
    expect(r.code).toBe(1);
    expect(existsSync(out)).toBe(false);
  });

  it("--help describes every command", () => {
    for (const cmd of ["check", "ir", "init", "run", "quant-report"]) {
      const r = difftc(cmd, "--help");
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`difftc ${cmd}`);
      expect(r.stdout).toContain("--set KEY=VALUE");
    }
    expect(execFileSync(process.execPath, [BIN, "--help"], { encoding: "utf8" })).toContain("Commands:");
  });
});

describe("difftc's low-bit attention", () => {
  it("ir with --passes default,quantize-attention --quant shows the quantised fused op", () => {
    const r = difftc("ir", "examples/diff_attention.dt", "--passes", "default,quantize-attention", "--quant", "target=logits,bits=4");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/qflash_diffattn\(.*quant = "logits", bits = 4\}/);
  });

  it("run takes --quant on the js backend and gives the interpreter's result", () => {
    const args = ["examples/diff_attention.dt", "--passes", "default,quantize-attention", "--quant", "target=probs,bits=4,granularity=block,threshold=1e-3,v=8", "--set", "N=24", "--set", "D=64", "--set", "H=2"];
    const js = difftc("run", ...args, "--backend", "js");
    const interp = difftc("run", ...args);
    expect(js.code, js.stderr).toBe(0);
    expect(js.stdout).toBe(interp.stdout);
  });

  it("refuses --quant without the pass, and a bad setting, with one-line errors", () => {
    const missing = difftc("ir", "examples/diff_attention.dt", "--quant", "bits=4");
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("--quant sets the quantize-attention pass, which the pipeline lacks");
    const bad = difftc("ir", "examples/diff_attention.dt", "--passes", "default,quantize-attention", "--quant", "bits=12");
    expect(bad.stderr.trim()).toBe("error: --quant: bits must be 2 to 8, got 12");
  });

  it("quant-report prints errors and savings for 16, 8, 6 and 4 bits, diff and standard attention side by side", () => {
    const r = difftc("quant-report", "examples/diff_attention.dt", "--set", "N=40", "--set", "D=32", "--set", "H=2", "--quant", "threshold=0.05,block=8", "--peak", "4");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("quant report: DiffAttention, N = 40; seeded weights (seed 0), random inputs (seed 0), every 16th row x 4");
    for (const section of ["differential attention", "standard attention on the same q, k, v", "rel L2, diff vs standard"]) expect(r.stdout).toContain(section);
    for (const row of ["none      -     16", "none+t/v  -     16", "logits    row    8", "logits    block  6", "probs     row    4", "probs     block  4"]) expect(r.stdout.split(row).length, row).toBe(3);
    // The unquantised row is exact; the threshold skips some blocks.
    expect(r.stdout).toMatch(/none {6}- {5}16 {11}0 {10}0  1\.0000000 {5}0\.0%/);
    expect(r.stdout).toMatch(/none\+t\/v {2}- {5}16 .* [1-9]\d?\.\d%/);
  });
});
