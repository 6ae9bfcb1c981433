// Pictures of the graph IR: Graphviz DOT text, one box per node labelled `%id op` with its
// result type (and its attributes, the defaulted ones left out as the printer does), a
// fused node's body drawn as a cluster of its own nodes (the kernel it becomes), inputs and
// params as ellipses, outputs as their names. `renderSvg` runs Graphviz's `dot`, where it is
// installed (Debian: apt-get install graphviz).
import { spawnSync } from "node:child_process";
import { Diagnostic } from "../../common/diagnostic.ts";
import { type Graph, isGraph, type Node } from "./graph.ts";
import { formatIrType, formatNumber, printGraph, type PrintOptions, printNode } from "./print.ts";

export interface DotOptions {
  /** A title drawn above the graph (the pass it was printed after). */
  title?: string;
}

const escape = (s: string) => s.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");

/** The attributes part of the node's printed line, `{heads = 4, causal = true}`, or nothing. */
function attrText(node: Node): string {
  const line = printNode({ ...node, attrs: Object.fromEntries(Object.entries(node.attrs).filter(([, v]) => !isGraph(v))) }).split("\n")[0];
  const m = line.match(/ (\{.*\}) : /);
  return m ? m[1] : "";
}

function label(node: Node): string {
  // Inputs and params are their names; a constant is its value.
  if (node.op === "input" || node.op === "param") return escape(`%${node.id} ${node.op} ${String(node.attrs.name)}\n${formatIrType(node.type)}`);
  if (node.op === "const") return escape(`%${node.id} ${formatNumber(node.attrs.value as number)}`);
  const attrs = attrText(node);
  return escape(`%${node.id} ${node.op}${attrs.length > 60 ? `\n${attrs.slice(0, 57)}...` : attrs ? `\n${attrs}` : ""}\n${formatIrType(node.type)}`);
}

function nodeStyle(node: Node): string {
  if (node.op === "input") return 'shape=ellipse, style=filled, fillcolor="#d9f2d9"';
  if (node.op === "param") return 'shape=ellipse, style=filled, fillcolor="#e8e8e8"';
  if (node.op === "const") return 'shape=plaintext';
  if (node.op.startsWith("flash_")) return 'shape=box, style="rounded,filled", fillcolor="#ffe0b3"';
  return "shape=box, style=rounded";
}

export function graphToDot(graph: Graph, options: DotOptions = {}): string {
  const lines = [`digraph ${JSON.stringify(graph.name)} {`, "  rankdir=TB;", '  node [fontname="monospace", fontsize=10];', '  edge [color="#555555"];'];
  if (options.title) lines.push(`  labelloc=t; label="${escape(options.title)}";`);
  /** The DOT id standing for each node's value: the node itself, or a fused body's output node. */
  const valueOf = new Map<number, string>();
  for (const node of graph.nodes) {
    const body = Object.values(node.attrs).find(isGraph);
    if (!body) {
      lines.push(`  n${node.id} [label="${label(node)}", ${nodeStyle(node)}];`);
      for (const o of node.operands) lines.push(`  ${valueOf.get(o)} -> n${node.id};`);
      valueOf.set(node.id, `n${node.id}`);
      continue;
    }
    // The body's inputs are the fused node's operands: edges come from those, not from input boxes.
    const inner = (id: number) => `n${node.id}_${id}`;
    const bodyValue = new Map<number, string>();
    lines.push(`  subgraph cluster_${node.id} {`, `    label="${escape(`%${node.id} ${node.op} ${String(node.attrs.kind ?? "")} : ${formatIrType(node.type)}`)}";`, '    style="rounded,filled"; fillcolor="#eef3ff"; color="#7a8cc0";');
    for (const n of body.nodes) {
      if (n.op === "input") {
        bodyValue.set(n.id, valueOf.get(node.operands[Number(n.attrs.name)])!);
        continue;
      }
      lines.push(`    ${inner(n.id)} [label="${label(n)}", ${nodeStyle(n)}];`);
      bodyValue.set(n.id, inner(n.id));
    }
    lines.push("  }");
    for (const n of body.nodes) for (const o of n.operands) if (n.op !== "input") lines.push(`  ${bodyValue.get(o)} -> ${inner(n.id)};`);
    valueOf.set(node.id, bodyValue.get(body.outputs[0].node)!);
  }
  for (const o of graph.outputs) {
    lines.push(`  out_${escape(o.name).replace(/[^A-Za-z0-9_]/g, "_")} [label="${escape(`output ${o.name}`)}", shape=plaintext, fontcolor="#006400"];`);
    lines.push(`  ${valueOf.get(o.node)} -> out_${escape(o.name).replace(/[^A-Za-z0-9_]/g, "_")};`);
  }
  lines.push("}");
  return lines.join("\n") + "\n";
}

/** Whether Graphviz's `dot` can be run here. */
export function hasGraphviz(): boolean {
  return spawnSync("dot", ["-V"], { stdio: "ignore" }).status === 0;
}

/** The DOT text rendered to SVG by Graphviz's `dot`; a Diagnostic where it is not installed or fails. */
export function renderSvg(dot: string): string {
  const result = spawnSync("dot", ["-Tsvg"], { input: dot, encoding: "utf8", maxBuffer: 256 * 1024 * 1024 });
  if (result.error) throw new Diagnostic("--svg needs Graphviz's dot, which is not installed here (Debian: apt-get install graphviz); --dot writes the DOT text");
  if (result.status !== 0) throw new Diagnostic(`graphviz dot failed: ${result.stderr.trim()}`);
  return result.stdout;
}

export type GraphFormat = "text" | "dot" | "svg";

/** The graph as IR text, DOT, or SVG (through Graphviz). */
export function formatGraph(graph: Graph, format: GraphFormat, options: DotOptions & PrintOptions = {}): string {
  if (format === "text") return printGraph(graph, options);
  const dot = graphToDot(graph, options);
  return format === "dot" ? dot : renderSvg(dot);
}
