// Peak memory (RSS) of one diff attention forward (H = 8, d = 64, f32) on the JS backend,
// fused (default passes) and unfused (--passes none), each in a fresh process:
//   npm run bench:memory
// The fused kernel's memory must grow linearly in N (inputs and output are N·d), the
// unfused graph's quadratically (it materialises H×N×N maps).
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { freemem } from "node:os";
import { compileJs } from "../backends/js/index.ts";
import { elaborate } from "../compiler/elaborate/index.ts";
import { parsePipeline, runPipeline } from "../compiler/passes/pipeline.ts";
import { parseProgram } from "../dsl/parse.ts";
import { importJsModule } from "../runtime/adapters/js/index.ts";
import { serializeSafetensors } from "../runtime/safetensors.ts";

const DIFFATTN = readFileSync(new URL("./diffattn.dt", import.meta.url), "utf8");

function peakRssMiB(): number {
  const m = readFileSync("/proc/self/status", "utf8").match(/VmHWM:\s+(\d+) kB/);
  return m ? Number(m[1]) / 1024 : process.memoryUsage().rss / 2 ** 20;
}

/** In a child: one forward at size N, printing peak RSS before and after as JSON. */
async function child(n: number, pipeline: string): Promise<void> {
  const graph = elaborate(parseProgram(DIFFATTN, "bench/diffattn.dt")).graph;
  const passes = parsePipeline(pipeline);
  const model = await importJsModule(String(compileJs(runPipeline(graph, passes), passes).files.get("model.js")));
  const session = await model.load(serializeSafetensors(new Map()));
  const width = 2 * 8 * 64;
  const input = () => Float32Array.from({ length: n * width }, (_, i) => Math.sin(i) * 0.5);
  const inputs = { q: input(), k: input(), v: input() };
  const before = peakRssMiB();
  const start = performance.now();
  await session.run(inputs);
  const ms = performance.now() - start;
  console.log(JSON.stringify({ before, after: peakRssMiB(), ms }));
}

async function main(): Promise<void> {
  const [, , mode, n, pipeline] = process.argv;
  if (mode === "--child") return child(Number(n), pipeline);
  const rows: string[] = [];
  rows.push("| N | pipeline | peak RSS MiB | growth during the forward MiB | time ms |", "|---|---|---|---|---|");
  for (const size of [2048, 4096, 8192]) {
    for (const p of ["default", "none"]) {
      // Unfused, about three H×N×N maps are live at once (6.4 GiB at N = 8192): skip what does not fit.
      const mapBytes = 8 * size * size * 4;
      if (p === "none" && 3.5 * mapBytes > freemem()) {
        rows.push(`| ${size} | ${p} | - | - | skipped: needs about ${((3.5 * mapBytes) / 2 ** 30).toFixed(0)} GiB, ${(freemem() / 2 ** 30).toFixed(0)} GiB free |`);
        continue;
      }
      const out = execFileSync(process.execPath, ["--import", "tsx", new URL(import.meta.url).pathname, "--child", String(size), p], { encoding: "utf8", maxBuffer: 1 << 20 });
      const r = JSON.parse(out.trim().split("\n").pop()!) as { before: number; after: number; ms: number };
      rows.push(`| ${size} | ${p} | ${r.after.toFixed(0)} | ${(r.after - r.before).toFixed(0)} | ${r.ms.toFixed(0)} |`);
      process.stderr.write(`  N=${size} ${p}: ${r.after.toFixed(0)} MiB\n`);
    }
  }
  console.log("\nPeak RSS of one diffattn forward (H = 8, d = 64, f32), JS backend, fresh process each\n");
  console.log(rows.join("\n"));
}

await main();
