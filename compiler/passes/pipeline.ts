// Running passes by name, as a pipeline: verify after each pass, print the IR after the passes
// asked for, and time them.
import { Diagnostic } from "../../common/diagnostic.ts";
import type { Graph } from "../ir/graph.ts";
import { printGraph } from "../ir/print.ts";
import { verifyGraph } from "../ir/verify.ts";
import type { Pass, PassOptions } from "./pass.ts";
import { DEFAULT_PIPELINE, PASSES } from "./registry.ts";

export interface PipelineOptions {
  /** Pass names after which the IR is printed; "*" for all. */
  printAfter?: ReadonlySet<string>;
  timePasses?: boolean;
  /** Where printed IR and timings go (stderr by default, so stdout stays the command's output). */
  log?: (text: string) => void;
  /** Settings of the passes that take any. */
  passOptions?: PassOptions;
}

export function findPass(name: string): Pass {
  const pass = PASSES.find((p) => p.name === name);
  if (!pass) throw new Diagnostic(`unknown pass '${name}' (passes: ${PASSES.map((p) => p.name).join(", ")}; see --list-passes)`);
  return pass;
}

/** `none` is the empty pipeline, `default` the optimising one; otherwise a comma-separated list of names, where `default` stands for its passes. */
export function parsePipeline(spec: string | undefined): string[] {
  if (spec === undefined || spec === "default") return [...DEFAULT_PIPELINE];
  if (spec === "none" || spec === "") return [];
  // 'default' and 'none' may start a list: `default,quantize-attention`.
  const names = spec.split(",").map((s) => s.trim()).flatMap((n) => (n === "default" ? DEFAULT_PIPELINE : n === "none" ? [] : [n]));
  for (const n of names) findPass(n);
  return names;
}

export function runPipeline(graph: Graph, names: readonly string[], options: PipelineOptions = {}): Graph {
  const log = options.log ?? ((t: string) => process.stderr.write(t));
  let g = graph;
  for (const name of names) {
    const pass = findPass(name);
    const start = performance.now();
    g = pass.run(g, options.passOptions);
    const ms = performance.now() - start;
    verifyGraph(g);
    if (options.timePasses) log(`pass ${name}: ${ms.toFixed(2)} ms, ${g.nodes.length} nodes\n`);
    if (options.printAfter?.has("*") || options.printAfter?.has(name)) log(`// ---- IR after ${name} ----\n${printGraph(g)}`);
  }
  return g;
}

export function listPasses(): string {
  const width = Math.max(...PASSES.map((p) => p.name.length));
  return [...PASSES.map((p) => `${p.name.padEnd(width)}  ${p.description}`), "", `default pipeline: ${DEFAULT_PIPELINE.join(",") || "(empty)"}`].join("\n");
}
