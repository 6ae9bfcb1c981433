// A pass takes a graph and returns a graph. Passes are small files with one job each,
// registered by name in registry.ts and run as a pipeline (pipeline.ts). docs/passes.md says
// how to write, test and measure one.
import type { SourceSpan } from "../../common/diagnostic.ts";
import { GraphBuilder } from "../ir/builder.ts";
import type { Attrs, Graph, Node } from "../ir/graph.ts";
import type { NodeSink } from "../ir/registry.ts";
import type { TensorType } from "../ir/types.ts";

export interface Pass {
  name: string;
  /** One line on what the pass does, for `--list-passes`. */
  description: string;
  run(graph: Graph, options?: PassOptions): Graph;
  /**
   * Passes this one must run after, each with why: it rewrites what they look for. A pipeline
   * that runs it first gets a warning (pipeline.ts, orderWarnings).
   */
  runsAfter?: Readonly<Record<string, string>>;
  /** Passes this one must run before, each with why: they hide or consume what it looks for. */
  runsBefore?: Readonly<Record<string, string>>;
}

/** Settings of the passes that take any, from the command line; a pass reads only its own. */
export interface PassOptions {
  /** quantize-attention's attributes of the qflash ops (parseQuantFlag). */
  quant?: Attrs;
}

/** What a rewrite sees of the graph being rebuilt. */
export interface Rewriter extends NodeSink {
  /** The new id of an old node's value. */
  value(oldId: number): number;
  /** Copies an old node unchanged (operands remapped). */
  copy(node: Node): number;
}

/**
 * Rebuilds a graph node by node: `visit` returns the new id that stands for each old node,
 * adding whatever nodes it needs. New nodes inherit the span of the node being rewritten.
 */
export function rebuild(graph: Graph, visit: (node: Node, r: Rewriter) => number): Graph {
  const b = new GraphBuilder(graph.name);
  for (const d of graph.dims) b.dim(d);
  const map = new Int32Array(graph.nodes.length).fill(-1);
  let span: SourceSpan | undefined;
  const r: Rewriter = {
    add: (op: string, operands: number[], attrs: Attrs = {}) => b.add(op, operands, attrs, span),
    type: (id: number): TensorType => b.type(id),
    value: (oldId: number) => map[oldId],
    copy: (node: Node) => b.add(node.op, node.operands.map((o) => map[o]), node.attrs, node.span),
  };
  for (const node of graph.nodes) {
    span = node.span;
    map[node.id] = visit(node, r);
  }
  for (const o of graph.outputs) b.output(o.name, map[o.node]);
  return b.finish();
}
