// Running passes by name, as a pipeline: verify after each pass, print the IR after the passes
// asked for, time them and collect their statistics.
//
// A pipeline is written as a comma-separated list, read left to right, each item editing the
// list built so far (MLIR's textual pipelines, with LLVM's `-passes` additions in mind):
//
//   default                       the optimising pipeline (DEFAULT_PIPELINE)
//   none                          no passes (alone: the unfused baseline)
//   NAME                          append pass NAME
//   +NAME@before:OTHER            insert NAME before the first OTHER so far (OTHER#2: the second)
//   +NAME@after:OTHER             insert NAME after it
//   -NAME                         remove every NAME so far (an ablation: default,-cse)
//
// so `default,+fold-matmul-transposes@before:fuse-elementwise` is the default pipeline with one
// pass put where it belongs. Passes declare the order they need (Pass.runsAfter / runsBefore);
// orderWarnings says where a pipeline breaks it.
import { Diagnostic } from "../../common/diagnostic.ts";
import type { Graph } from "../ir/graph.ts";
import { printGraph } from "../ir/print.ts";
import { verifyGraph } from "../ir/verify.ts";
import type { Pass, PassOptions } from "./pass.ts";
import { DEFAULT_PIPELINE, PASSES } from "./registry.ts";
import { collectStatistics, formatStatistics, type Statistics } from "./statistics.ts";

export interface PipelineOptions {
  /** Pass names after which the IR is printed; "*" for all. */
  printAfter?: ReadonlySet<string>;
  /** Pass names before which the IR is printed; "*" for all. */
  printBefore?: ReadonlySet<string>;
  /**
   * Shows the IR at a point asked for (`IR after cse`, with its 1-based position in the
   * pipeline); by default its text goes to `log`. The CLI draws it as DOT or SVG instead.
   */
  show?: (graph: Graph, heading: string, position: number) => void;
  timePasses?: boolean;
  /** Print each pass's statistics (rule firings, nodes fused) after it runs. */
  statistics?: boolean;
  /** Called after each pass with what it did: for tools that want the numbers, not the text. */
  onPass?: (report: PassReport) => void;
  /** Where printed IR, timings and statistics go (stderr by default, so stdout stays the command's output). */
  log?: (text: string) => void;
  /** Settings of the passes that take any. */
  passOptions?: PassOptions;
}

export interface PassReport {
  name: string;
  ms: number;
  nodesBefore: number;
  nodesAfter: number;
  statistics: Statistics;
  graph: Graph;
}

export function findPass(name: string): Pass {
  const pass = PASSES.find((p) => p.name === name);
  if (!pass) throw new Diagnostic(`unknown pass '${name}' (passes: ${PASSES.map((p) => p.name).join(", ")}; see --list-passes)`);
  return pass;
}

/** The index of `ref` (`NAME` or `NAME#k`, the k-th from 1) in `names`. */
function positionOf(ref: string, names: readonly string[], item: string): number {
  const m = ref.match(/^([^#]+)(?:#([1-9][0-9]*))?$/);
  if (!m) throw new Diagnostic(`pipeline item '${item}': '${ref}' is not a pass name or NAME#N`);
  findPass(m[1]);
  const k = Number(m[2] ?? 1);
  const at = names.flatMap((n, i) => (n === m[1] ? [i] : []))[k - 1];
  if (at === undefined) throw new Diagnostic(`pipeline item '${item}': the pipeline so far (${names.join(",") || "empty"}) has no ${k === 1 ? m[1] : `${m[1]}#${k}`}`);
  return at;
}

/** The pass names a pipeline spec stands for (syntax above); undefined means `default`. */
export function parsePipeline(spec: string | undefined): string[] {
  if (spec === undefined) return [...DEFAULT_PIPELINE];
  if (spec.trim() === "none" || spec.trim() === "") return [];
  const names: string[] = [];
  for (const raw of spec.split(",")) {
    const item = raw.trim();
    if (item === "default") names.push(...DEFAULT_PIPELINE);
    else if (item === "none") throw new Diagnostic(`pipeline '${spec}': 'none' stands alone (it is the empty pipeline)`);
    else if (item.startsWith("-")) {
      findPass(item.slice(1));
      if (!names.includes(item.slice(1))) throw new Diagnostic(`pipeline item '${item}': the pipeline so far (${names.join(",") || "empty"}) has no ${item.slice(1)} to remove`);
      names.splice(0, names.length, ...names.filter((n) => n !== item.slice(1)));
    } else if (item.startsWith("+")) {
      const m = item.match(/^\+([^@]+)(?:@(before|after):(.+))?$/);
      if (!m) throw new Diagnostic(`pipeline item '${item}': write +NAME, +NAME@before:OTHER or +NAME@after:OTHER`);
      findPass(m[1]);
      if (!m[2]) names.push(m[1]);
      else names.splice(positionOf(m[3], names, item) + (m[2] === "after" ? 1 : 0), 0, m[1]);
    } else {
      findPass(item);
      names.push(item);
    }
  }
  return names;
}

/**
 * Where `names` runs a pass out of the order it declared: P.runsAfter[Q] is broken when a P
 * comes before a Q (Q no longer finds what P rewrote); P.runsBefore[Q] when a Q runs with no P
 * before it but one after. A pass absent from the pipeline breaks nothing.
 */
export function orderWarnings(names: readonly string[]): string[] {
  const warnings: string[] = [];
  names.forEach((name, i) => {
    const pass = findPass(name);
    for (const [other, why] of Object.entries(pass.runsAfter ?? {}))
      if (names.indexOf(other, i + 1) > i) warnings.push(`${name} runs before ${other}, but must run after it: ${why}`);
    for (const [other, why] of Object.entries(pass.runsBefore ?? {})) {
      const first = names.indexOf(other);
      if (first >= 0 && first < i && names.indexOf(name) > first) warnings.push(`${name} runs after ${other}, but must run before it: ${why}`);
    }
  });
  return [...new Set(warnings)];
}

export function runPipeline(graph: Graph, names: readonly string[], options: PipelineOptions = {}): Graph {
  const log = options.log ?? ((t: string) => process.stderr.write(t));
  const show = options.show ?? ((g: Graph, heading: string) => log(`// ---- ${heading} ----\n${printGraph(g)}`));
  const asked = (set: ReadonlySet<string> | undefined, name: string) => set?.has("*") || set?.has(name);
  let g = graph;
  for (const [i, name] of names.entries()) {
    const pass = findPass(name);
    const before = g;
    if (asked(options.printBefore, name)) show(g, `IR before ${name}`, i + 1);
    const start = performance.now();
    const { result, statistics } = collectStatistics(() => pass.run(before, options.passOptions));
    const ms = performance.now() - start;
    g = result;
    verifyGraph(g);
    if (options.timePasses) log(`pass ${name}: ${ms.toFixed(2)} ms, ${g.nodes.length} nodes\n`);
    const heading = `// ---- statistics of ${name} (${before.nodes.length} -> ${g.nodes.length} nodes)`;
    if (options.statistics) log(formatStatistics(`${heading} ----`, statistics) || `${heading}: no counter moved ----\n`);
    options.onPass?.({ name, ms, nodesBefore: before.nodes.length, nodesAfter: g.nodes.length, statistics, graph: g });
    if (asked(options.printAfter, name)) show(g, `IR after ${name}`, i + 1);
  }
  return g;
}

export function listPasses(): string {
  const width = Math.max(...PASSES.map((p) => p.name.length));
  const order = (p: Pass) => [
    ...Object.keys(p.runsAfter ?? {}).map((o) => `after ${o}`),
    ...Object.keys(p.runsBefore ?? {}).map((o) => `before ${o}`),
  ];
  const lines = PASSES.map((p) => `${p.name.padEnd(width)}  ${p.description}${order(p).length ? ` [runs ${order(p).join(", ")}]` : ""}`);
  return [...lines, "", `default pipeline: ${DEFAULT_PIPELINE.join(",") || "(empty)"}`].join("\n");
}
