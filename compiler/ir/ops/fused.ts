// Fused kernels as an IR op (TVM's FuseOps result, made a node): `fused(xs...) {body, kind}`
// computes a small graph, `body` (the attribute is the Graph itself, printed as a nested block
// after the node), whose `input` nodes "0", "1", ... stand for the operands in order. The
// fusion pass writes these; a backend emits one kernel per fused node, and a backend without a
// kernel for it runs the body unfused.
//
//   elementwise  a chain of elementwise ops and broadcasts: one loop over the result
//   epilogue     one matmul and an elementwise chain over its result, applied before the store
//   prologue     an elementwise chain feeding one reduction (sum, mean, max, min), applied to
//                each value the reduction loads
//
// The interpreter evaluates the body node by node, rounding each to its dtype as it rounds
// every node of a graph, so fusing never changes a result.
import { type Attrs, type Graph, type Node, resolveAttrs } from "../graph.ts";
import { roundTo } from "../numeric.ts";
import { getOp, OpError, registerOp } from "../registry.ts";
import type { HostTensor } from "../tensor.ts";
import { broadcastShapes, type Dim, formatType, resolveShape, sameShape, sameType } from "../types.ts";

export const FUSED_KINDS = ["elementwise", "epilogue", "prologue"] as const;
export type FusedKind = (typeof FUSED_KINDS)[number];

/** The reductions a prologue may feed. */
export const PROLOGUE_REDUCTIONS: ReadonlySet<string> = new Set(["sum", "mean", "max", "min"]);

/** Ops of a fused body's elementwise chain: elementwise ops and broadcast (a read at a broadcast index). */
export function isChainOp(op: string): boolean {
  return op === "broadcast" || getOp(op)?.pattern === "elementwise";
}

/** A checked body, and what a kernel needs to know of it. */
export interface FusedBody {
  graph: Graph;
  kind: FusedKind;
  /** The body's input node of each operand, by operand index. */
  inputs: Node[];
  output: Node;
  /** The epilogue's matmul or the prologue's reduction. */
  anchor?: Node;
  /**
   * The shape every chain node broadcasts to, so that a kernel computes the chain once per
   * element of it: the result's (elementwise, epilogue) or the reduced operand's (prologue).
   */
  elementShape: Dim[];
}

/** Checked bodies by kind, by body graph: attribute values are never changed, so identity is enough. */
const analyses = new WeakMap<Graph, Map<FusedKind, FusedBody>>();

/** The checked body of a fused node's attributes (cached); throws OpError saying what is wrong. */
export function fusedBody(attrs: Attrs): FusedBody {
  const graph = attrs.body as Graph;
  const kind = attrs.kind as FusedKind;
  let byKind = analyses.get(graph);
  if (!byKind) analyses.set(graph, (byKind = new Map()));
  let body = byKind.get(kind);
  if (!body) byKind.set(kind, (body = analyze(graph, kind)));
  return body;
}

function analyze(graph: Graph, kind: FusedKind): FusedBody {
  const fail = (message: string): never => {
    throw new OpError(`fused ${kind}: ${message}`);
  };
  if (graph.outputs.length !== 1) fail(`its body must have one output, it has ${graph.outputs.length}`);
  const output = graph.nodes[graph.outputs[0].node];

  const inputs: Node[] = [];
  let anchor: Node | undefined;
  for (const n of graph.nodes) {
    if (n.op === "input") {
      const name = String(n.attrs.name);
      const k = Number(name);
      if (!/^(0|[1-9][0-9]*)$/.test(name) || inputs[k]) fail(`body inputs are named "0", "1", ... once each, not ${JSON.stringify(name)}`);
      inputs[k] = n;
    } else if (n.op === "const" || isChainOp(n.op)) {
      continue;
    } else if (kind === "epilogue" && getOp(n.op)?.pattern === "matmul" && !anchor) {
      anchor = n;
      if (n.operands.some((o) => graph.nodes[o].op !== "input")) fail("the matmul must read body inputs");
    } else if (kind === "prologue" && PROLOGUE_REDUCTIONS.has(n.op) && !anchor) {
      anchor = n;
    } else {
      fail(`${kind === "prologue" ? "a" : "an"} ${kind} body holds elementwise ops and broadcasts${kind === "epilogue" ? " after one matmul" : kind === "prologue" ? " before one sum, mean, max or min" : ""}, not ${n.op}`);
    }
  }
  for (let k = 0; k < inputs.length; k++) if (!inputs[k]) fail(`body input "${k}" is missing`);
  if (kind !== "elementwise" && !anchor) fail(`its body needs ${kind === "epilogue" ? "a matmul" : "a sum, mean, max or min"}`);
  if (kind === "prologue" && (anchor !== output || anchor !== graph.nodes[graph.nodes.length - 1])) fail("the reduction must be the body's last node and its output");
  if (kind === "epilogue" && !sameShape(anchor!.type.shape, output.type.shape))
    fail(`the chain after the matmul must keep its shape: ${formatType(anchor!.type)} -> ${formatType(output.type)}`);

  const elementShape = kind === "prologue" ? graph.nodes[anchor!.operands[0]].type.shape : output.type.shape;
  for (const n of graph.nodes) {
    if (!isChainOp(n.op)) continue;
    const b = broadcastShapes(n.type.shape, elementShape);
    if (!b || !sameShape(b, elementShape)) fail(`%${n.id} (${formatType(n.type)}) does not broadcast to the body's element shape [${elementShape.join(", ")}]`);
  }
  // Run-time sizes reach the body through its operands and its result only.
  const bound = new Set<Dim>([...inputs.flatMap((n) => n.type.shape), ...output.type.shape]);
  for (const n of graph.nodes) {
    const dims = [...n.type.shape, ...Object.values(n.attrs).flatMap((v) => (Array.isArray(v) ? v : []))];
    const unbound = dims.find((d) => typeof d === "string" && !bound.has(d));
    if (unbound !== undefined) fail(`%${n.id} uses dim ${unbound}, which no operand or result shape binds`);
  }
  return { graph, kind, inputs, output, anchor, elementShape };
}

registerOp({
  name: "fused",
  doc:
    'A fused kernel, made by the fuse-elementwise pass: computes `body`, a graph (printed after the node) whose inputs "0", "1", ... are the operands, ' +
    "rounding every body node to its dtype as the interpreter does. `kind` says its shape: elementwise (a chain of elementwise ops and broadcasts), " +
    "epilogue (a matmul, then a chain over its result) or prologue (a chain, then a sum, mean, max or min over it).",
  operands: ["xs..."],
  attrs: { body: { type: "graph" }, kind: { type: "string", oneOf: FUSED_KINDS } },
  pattern: "opaque",
  infer: (types, a) => {
    const body = fusedBody(a);
    if (types.length !== body.inputs.length) throw new OpError(`fused ${a.kind}: its body has ${body.inputs.length} inputs, but it has ${types.length} operands`);
    types.forEach((t, k) => {
      if (!sameType(t, body.inputs[k].type)) throw new OpError(`fused ${a.kind}: operand ${k} is ${formatType(t)}, but body input "${k}" is ${formatType(body.inputs[k].type)}`);
    });
    return body.output.type;
  },
  interpret: (args, a, out) => {
    const body = fusedBody(a);
    const dims = new Map<string, number>();
    const bind = (shape: readonly Dim[], actual: readonly number[]) => shape.forEach((d, i) => typeof d === "string" && dims.set(d, actual[i]));
    body.inputs.forEach((n, k) => bind(n.type.shape, args[k].shape));
    bind(body.output.type.shape, out.shape);
    const values: HostTensor[] = [];
    for (const n of body.graph.nodes) {
      if (n.op === "input") {
        values[n.id] = args[Number(n.attrs.name)];
        continue;
      }
      const shape = resolveShape(n.type.shape, dims);
      const data = getOp(n.op)!.interpret(
        n.operands.map((o) => values[o]),
        resolveAttrs(n.attrs, dims),
        { dtype: n.type.dtype, shape },
      );
      values[n.id] = { dtype: n.type.dtype, shape, data: roundTo(n.type.dtype, data) };
    }
    const result = values[body.output.id].data;
    return body.output.op === "input" ? result.slice() : result;
  },
  decompose: (b, operands, a) => {
    const body = fusedBody(a);
    const ids: number[] = [];
    for (const n of body.graph.nodes)
      ids[n.id] = n.op === "input" ? operands[Number(n.attrs.name)] : b.add(n.op, n.operands.map((o) => ids[o]), n.attrs);
    return ids[body.output.id];
  },
});
