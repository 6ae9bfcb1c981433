import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Diagnostic } from "../../common/diagnostic.ts";
import { parseGraph } from "../../compiler/ir/parse.ts";
import { orderWarnings, parsePipeline, runPipeline } from "../../compiler/passes/pipeline.ts";
import { DEFAULT_PIPELINE, PASSES } from "../../compiler/passes/registry.ts";
import { collectStatistics, count, formatStatistics } from "../../compiler/passes/statistics.ts";
import { passTemplate } from "../../compiler/passes/template.ts";
import { canonicalizePass } from "../../compiler/passes/canonicalize.ts";

const diagnosticOf = (spec: string) => {
  try {
    parsePipeline(spec);
  } catch (e) {
    if (e instanceof Diagnostic) return e.message;
    throw e;
  }
  throw new Error(`'${spec}' parsed`);
};

describe("pipeline syntax", () => {
  it("default, none and plain lists", () => {
    expect(parsePipeline(undefined)).toEqual(DEFAULT_PIPELINE);
    expect(parsePipeline("default")).toEqual(DEFAULT_PIPELINE);
    expect(parsePipeline("none")).toEqual([]);
    expect(parsePipeline("cse, dce")).toEqual(["cse", "dce"]);
  });

  it("default composes inside a list; +P@before:Q and +P@after:Q insert next to the first Q, Q#2 the second; -P removes every P", () => {
    expect(parsePipeline("decompose,default")).toEqual(["decompose", ...DEFAULT_PIPELINE]);
    const withoutFold = DEFAULT_PIPELINE.filter((n) => n !== "fold-matmul-transposes");
    expect(parsePipeline("default,-fold-matmul-transposes")).toEqual(withoutFold);
    expect(parsePipeline("default,-fold-matmul-transposes,+fold-matmul-transposes@before:fuse-elementwise")).toEqual(DEFAULT_PIPELINE);
    expect(parsePipeline("default,-cse").includes("cse")).toBe(false);
    expect(parsePipeline("cse,dce,cse,+canonicalize@after:cse#2")).toEqual(["cse", "dce", "cse", "canonicalize"]);
    expect(parsePipeline("cse,dce,+canonicalize@before:dce,+fold-reshapes")).toEqual(["cse", "canonicalize", "dce", "fold-reshapes"]);
  });

  it("mistakes are diagnostics that say what is wrong", () => {
    expect(diagnosticOf("default,frobnicate")).toMatch(/unknown pass 'frobnicate'/);
    expect(diagnosticOf("cse,+dce@before:fuse-elementwise")).toMatch(/the pipeline so far \(cse\) has no fuse-elementwise/);
    expect(diagnosticOf("cse,+dce@before:cse#2")).toMatch(/the pipeline so far \(cse\) has no cse#2/);
    expect(diagnosticOf("cse,-dce")).toMatch(/has no dce to remove/);
    expect(diagnosticOf("cse,+dce@sideways:cse")).toMatch(/write \+NAME, \+NAME@before:OTHER or \+NAME@after:OTHER/);
    expect(diagnosticOf("none,cse")).toMatch(/'none' stands alone/);
  });

  it("every order a pass declares names a real pass, and the default pipeline keeps every one", () => {
    const names = PASSES.map((p) => p.name);
    for (const p of PASSES) for (const other of [...Object.keys(p.runsAfter ?? {}), ...Object.keys(p.runsBefore ?? {})]) expect(names, `${p.name} names ${other}`).toContain(other);
    expect(orderWarnings(DEFAULT_PIPELINE)).toEqual([]);
  });

  it("a pass run before one it must follow, or after one it must precede, is warned about once", () => {
    expect(orderWarnings(["fold-matmul-transposes", "recognize-attention", "fold-matmul-transposes", "recognize-attention"])).toEqual([
      "fold-matmul-transposes runs before recognize-attention, but must run after it: it rewrites q @ transpose(k), the scores recognize-attention looks for",
    ]);
    expect(orderWarnings(["fuse-elementwise", "fold-matmul-transposes"])).toEqual([
      "fold-matmul-transposes runs after fuse-elementwise, but must run before it: a matmul fused with its epilogue reads the transpose through the fused node, where this pass cannot see it",
    ]);
    expect(orderWarnings(parsePipeline("decompose,default"))).toEqual([
      "fuse-dual-softmax runs after decompose, but must run before it: decompose expands diffattn and the rmsnorm its kernel takes as an epilogue; recognised again by hand, the kernel has its heads as batch dims and no fused norm",
    ]);
    // Absent passes break nothing; a second run in the right place mends a wrong first one.
    expect(orderWarnings(["fold-matmul-transposes"])).toEqual([]);
    expect(orderWarnings(["fold-matmul-transposes", "fuse-elementwise", "fold-matmul-transposes"])).toEqual([]);
  });
});

describe("pass statistics", () => {
  it("count adds to the collection in progress; nested collections also count in the outer one; none collecting drops it", () => {
    count("dropped");
    const { result, statistics } = collectStatistics(() => {
      count("a");
      const inner = collectStatistics(() => count("b", 2)).statistics;
      expect([...inner]).toEqual([["b", 2]]);
      return 7;
    });
    expect(result).toBe(7);
    expect([...statistics]).toEqual([["a", 1], ["b", 2]]);
    expect(formatStatistics("h", statistics)).toBe("h\n  2  b\n  1  a\n");
    expect(formatStatistics("h", new Map())).toBe("");
  });

  it("rewrite counts each rule's firings by name, not the DCE after it; runPipeline reports them per pass", () => {
    const g = parseGraph(`graph g {
      %0 = input {name = "x"} : f32[4]
      %1 = const {value = 1} : f32[]
      %2 = mul(%0, %1) : f32[4]
      %3 = mul(%1, %2) : f32[4]
      %4 = neg(%3) : f32[4]
      %5 = neg(%4) : f32[4]
      %6 = exp(%0) : f32[4]
      output "y" = %5
    }`);
    const reports: { name: string; statistics: Map<string, number>; nodesBefore: number; nodesAfter: number }[] = [];
    const log: string[] = [];
    runPipeline(g, ["canonicalize", "dce"], { statistics: true, onPass: (r) => reports.push(r), log: (t) => log.push(t) });
    expect(Object.fromEntries(reports[0].statistics)).toEqual({ "neg(neg(x)) -> x": 1, "mul(x, 1) -> x": 2 });
    expect(reports[1]).toMatchObject({ name: "dce", nodesBefore: 1, nodesAfter: 1 });
    expect(log.join("")).toContain("// ---- statistics of canonicalize (7 -> 1 nodes) ----\n  2  mul(x, 1) -> x\n");
    expect(log.join("")).toContain("// ---- statistics of dce (1 -> 1 nodes): no counter moved ----");
    expect(collectStatistics(() => canonicalizePass.run(g)).statistics.get("dead nodes removed")).toBeUndefined();
  });
});

describe("the new-pass template", () => {
  it("names the files after the pass and refuses bad or taken names", () => {
    const t = passTemplate("fold-weight-scales");
    expect(t.files.map((f) => f.path)).toEqual(["compiler/passes/fold-weight-scales.ts", "test/passes/fold-weight-scales.test.ts"]);
    expect(t.registration).toEqual(['import { foldWeightScalesPass } from "./fold-weight-scales.ts";', "  foldWeightScalesPass, // in PASSES"]);
    expect(() => passTemplate("FoldThings")).toThrow(/lowercase words joined by '-'/);
    expect(() => passTemplate("cse")).toThrow(/there is a pass named cse already/);
  });

  it("the generated pass works as generated: its example rule rewrites and is counted", async () => {
    const t = passTemplate("my-pass");
    // Beside the real passes, so that its relative imports resolve; removed at once.
    const dir = mkdtempSync(join(tmpdir(), "difftc-template-"));
    const file = join(dir, "my-pass.ts");
    writeFileSync(file, t.files[0].text.replaceAll('"./', `"${new URL("../../compiler/passes/", import.meta.url).pathname}`));
    const { myPass } = await import(file);
    const g = parseGraph(`graph g {\n %0 = input {name = "x"} : f32[4]\n %1 = neg(%0) : f32[4]\n %2 = neg(%1) : f32[4]\n output "y" = %2\n}`);
    const { result, statistics } = collectStatistics(() => myPass.run(g));
    expect(result.outputs[0].node).toBe(0);
    expect([...statistics]).toEqual([["neg(neg(x)) -> x", 1]]);
    expect(t.files[1].text).toContain('checkCleanup(myPass, { fires: { rule: "neg(neg(x)) -> x", atLeast: 0.02 } })');
  });
});
