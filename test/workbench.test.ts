// The pass-research workbench through the real `difftc` command: pipeline warnings, --stats,
// IR pictures, the per-kernel profile, new-pass's checks.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { hasGraphviz } from "../compiler/ir/dot.ts";

const BIN = new URL("../bin/difftc.mjs", import.meta.url).pathname;
const work = mkdtempSync(join(tmpdir(), "difftc-workbench-"));

function difftc(args: string[], env: NodeJS.ProcessEnv = process.env): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8", env });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

describe("difftc as a pass workbench", () => {
  it("a pipeline that runs fold-matmul-transposes before the attention fusions warns, and the attention is not fused", () => {
    const r = difftc(["ir", "examples/diff_attention_by_hand.dt", "--passes", "fold-matmul-transposes,default"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(
      "warning: fold-matmul-transposes runs before fuse-dual-softmax, but must run after it: it rewrites q @ transpose(k), so hand-written differential attention is no longer found and fused\n",
    );
    expect(r.stdout).not.toContain("flash_diffattn");
  });

  it("--stats prints what each pass did", () => {
    const r = difftc(["ir", "examples/diff_lm.dt", "--set", "L=1", "--stats"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/\/\/ ---- statistics of fold-matmul-transposes \(\d+ -> \d+ nodes\) ----\n {2}8 {2}x @ transpose\(w\) -> matmul\(x, w\) \{transpose_b\}\n/);
    expect(r.stderr).toMatch(/statistics of fuse-dual-softmax .*\n {2}1 {2}diffattn -> flash_diffattn/);
  });

  it("ir --dot draws the graph; with --print-before/--print-after and -o DIR, each stage is a numbered file beside final.dot", () => {
    const dir = join(work, "stages");
    const s = difftc(["ir", "examples/diff_attention.dt", "--print-before", "fold-matmul-transposes", "--print-after", "fold-matmul-transposes", "--dot", "-o", dir]);
    expect(s.code).toBe(0);
    const files = readdirSync(dir).sort();
    expect(files).toEqual(["14-after-fold-matmul-transposes.dot", "14-before-fold-matmul-transposes.dot", "final.dot"]);
    expect(readFileSync(join(dir, files[1]), "utf8")).toContain("transpose");
    expect(readFileSync(join(dir, files[0]), "utf8")).toContain("{transpose_b = true}");
    const final = readFileSync(join(dir, "final.dot"), "utf8");
    expect(final).toMatch(/^digraph "DiffAttention" \{/);
    expect(final).toContain("subgraph cluster_");
  });

  it("ir --svg renders through Graphviz where it is installed, and says how to get it where it is not", () => {
    const noDot = difftc(["ir", "examples/diff_attention.dt", "--svg"], { ...process.env, PATH: "/nonexistent" });
    expect(noDot.code).toBe(1);
    expect(noDot.stderr).toContain("--svg needs Graphviz's dot, which is not installed here (Debian: apt-get install graphviz)");
    if (!hasGraphviz()) {
      if (process.env.CI === "true") throw new Error("Graphviz's dot is missing: --svg cannot be tested in CI (apt-get install graphviz)");
      console.warn("\n*** SKIPPING the --svg rendering check: Graphviz's dot is not installed ***\n");
      return;
    }
    const r = difftc(["ir", "examples/diff_attention.dt", "--svg"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("<svg");
  });

  it("run --profile times each kernel of the JS artifact", () => {
    const r = difftc(["run", "examples/diff_lm.dt", "--set", "L=1", "--set", "N=3", "--backend", "js", "--profile", "--runs", "2"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^profile: \d+ kernels, [\d.]+ ms per forward \(mean of 2 runs after a warm-up\)\n/);
    expect(r.stdout).toMatch(/ms +[\d.]+% {2}k\d+_flash_diffattn\n/);
    expect(r.stdout).toMatch(/by op:\n(.*\n)* +[\d.]+ ms +[\d.]+% {2}matmul \(\d+ kernels?\)/);
    const interp = difftc(["run", "examples/diff_lm.dt", "--set", "N=3", "--profile"]);
    expect(interp.stderr).toContain("--profile times the kernels of a compiled artifact: give --backend js");
    const precision = difftc(["run", "examples/diff_lm.dt", "--set", "N=3", "--precision", "f64"]);
    expect(precision.code).toBe(1);
    expect(precision.stderr).toContain("--precision is the arithmetic of compiled kernels; the interpreter always computes in float64: give --backend js");
  });

  it("new-pass refuses a bad name without writing anything (taken names: test/passes/pipeline.test.ts)", () => {
    expect(difftc(["new-pass", "Bad_Name"]).stderr).toContain("a pass name is lowercase words joined by '-'");
    expect(existsSync(new URL("../compiler/passes/Bad_Name.ts", import.meta.url))).toBe(false);
  });
});
