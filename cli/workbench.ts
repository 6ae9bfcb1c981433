// The CLI's pass-research commands and views: where `difftc ir` shows the IR (text, DOT or
// SVG, on stdout and stderr or as files in a directory), and `difftc new-pass`.
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Diagnostic } from "../common/diagnostic.ts";
import { formatGraph, type GraphFormat } from "../compiler/ir/dot.ts";
import type { Graph } from "../compiler/ir/graph.ts";
import { passTemplate } from "../compiler/passes/template.ts";

const EXTENSION: Record<GraphFormat, string> = { text: "ir", dot: "dot", svg: "svg" };

export interface IrViews {
  /** The IR before or after a pass, as asked for by --print-before/--print-after. */
  stage(graph: Graph, heading: string, position: number): void;
  /** The graph the pipeline ends with. */
  final(graph: Graph): void;
}

/**
 * Without a directory, stages go to stderr under a `// ----` heading (a comment in IR text and
 * in DOT alike) and the final graph to stdout; with one, each is a file: NN-after-PASS.EXT
 * (NN its position in the pipeline) and final.EXT.
 */
export function irViews(format: GraphFormat, dir: string | undefined, locations: boolean): IrViews {
  const draw = (graph: Graph, title: string) => formatGraph(graph, format, { title, locations });
  if (dir) mkdirSync(dir, { recursive: true });
  const write = (file: string, text: string) => {
    writeFileSync(join(dir!, file), text);
    process.stderr.write(`wrote ${join(dir!, file)}\n`);
  };
  return {
    stage: (graph, heading, position) => {
      const text = draw(graph, `${graph.name}: ${heading}`);
      if (dir) write(`${String(position).padStart(2, "0")}-${heading.replace(/^IR /, "").replace(/ /g, "-")}.${EXTENSION[format]}`, text);
      else process.stderr.write(format === "svg" ? text : `// ---- ${heading} ----\n${text}`);
    },
    final: (graph) => {
      const text = draw(graph, graph.name);
      if (dir) write(`final.${EXTENSION[format]}`, text);
      else process.stdout.write(text);
    },
  };
}

/** The repository root of this difftc: where compiler/ and test/ are. */
const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");

/** `difftc new-pass NAME`: writes the template's files (never over existing ones) and says how to register the pass. */
export function newPass(positionals: string[]): number {
  if (positionals.length !== 1) throw new Diagnostic("difftc new-pass takes one pass name (fold-weight-transposes); see difftc new-pass --help");
  // An installed package runs from dist/, which has no pass sources to add to: the template is for a checkout.
  if (!existsSync(join(ROOT, "compiler", "passes", "registry.ts")) || !existsSync(join(ROOT, "test", "passes")))
    throw new Diagnostic(`difftc new-pass writes a pass into a difftc checkout (compiler/passes/ and test/passes/ of a git clone), and this difftc (${ROOT}) is an installed package: clone the repository and run it there`);
  const template = passTemplate(positionals[0]);
  for (const f of template.files) if (existsSync(join(ROOT, f.path))) throw new Diagnostic(`${f.path} exists already; new-pass writes only new files`);
  for (const f of template.files) {
    writeFileSync(join(ROOT, f.path), f.text);
    console.log(`wrote ${f.path}`);
  }
  console.log(`\nRegister it in compiler/passes/registry.ts:\n  ${template.registration.join("\n  ")}\nthen: npx vitest run test/passes/${positionals[0]}.test.ts (docs/passes.md says what comes next)`);
  return 0;
}
