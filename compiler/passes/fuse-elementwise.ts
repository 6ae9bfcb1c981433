// Elementwise fusion, TVM's FuseOps by op pattern: maximal connected groups of elementwise
// ops and broadcasts become one `fused` node, then fold into a matmul before them (an
// epilogue) or a reduction after them (a prologue).
//
// A group has one exit, its root: every other member is read only inside the group and is no
// graph output, so nothing outside needs its value. A value read elsewhere too stays
// materialised as the root of its own group. Walking the graph backwards, a node joins the
// group of its readers when they all belong to one group; since only the root is read from
// outside and its readers all come after every member, groups never form a cycle.
//
// Scalar constants are copied into the bodies that read them, as literals. A group of one op
// stays as it is (there is nothing to fuse), unless it becomes an epilogue or a prologue.
import type { Graph, Node } from "../ir/graph.ts";
import { GraphBuilder } from "../ir/builder.ts";
import { getOp } from "../ir/registry.ts";
import { type FusedKind, isChainOp, PROLOGUE_REDUCTIONS } from "../ir/ops/fused.ts";
import { type Dim, sameShape } from "../ir/types.ts";
import { type Pass, rebuild } from "./pass.ts";
import { count } from "./statistics.ts";
import { uses } from "./uses.ts";

interface Group {
  kind: FusedKind;
  /** Sorted by id; the last one is where the fused node goes. */
  members: Node[];
}

/** The groups to fuse, keyed by the id of their last member. */
function planGroups(graph: Graph): Map<number, Group> {
  const u = uses(graph);
  const nodes = graph.nodes;
  // rootOf[id]: the root of the chain group a node belongs to, or -1.
  const rootOf = new Int32Array(nodes.length).fill(-1);
  /** The group every reader of `id` belongs to, when that is one group and `id` is no output. */
  const soleGroup = (id: number): number => {
    const readers = u.readers(id);
    const r = readers.length && !u.isOutput(id) ? rootOf[readers[0].id] : -1;
    return r >= 0 && readers.every((x) => rootOf[x.id] === r) ? r : -1;
  };
  for (let i = nodes.length - 1; i >= 0; i--) {
    if (!isChainOp(nodes[i].op)) continue;
    const r = soleGroup(i);
    rootOf[i] = r >= 0 ? r : i;
  }
  const chains = new Map<number, Node[]>();
  for (const n of nodes) {
    if (rootOf[n.id] < 0) continue;
    const chain = chains.get(rootOf[n.id]);
    if (chain) chain.push(n);
    else chains.set(rootOf[n.id], [n]);
  }

  const groups = new Map<number, Group>();
  const prologueOf = new Set<number>();
  // Prologues: a chain whose root only a reduction reads.
  for (const [root, chain] of chains) {
    const reduction = u.soleReader(root);
    if (!reduction || !PROLOGUE_REDUCTIONS.has(reduction.op)) continue;
    const members = [...chain, reduction];
    if (!boundDims(graph, members)) continue;
    groups.set(reduction.id, { kind: "prologue", members });
    prologueOf.add(root);
  }
  // Epilogues: a matmul read only by one chain that keeps its shape. When several matmuls
  // qualify (SwiGLU's silu(gate) * up), the last one hosts the chain; the others stay.
  const hostOf = new Map<number, Node>();
  for (const n of nodes) {
    if (getOp(n.op)?.pattern !== "matmul") continue;
    const root = soleGroup(n.id);
    if (root >= 0 && !prologueOf.has(root) && sameShape(nodes[root].type.shape, n.type.shape)) hostOf.set(root, n);
  }
  for (const [root, chain] of chains) {
    if (prologueOf.has(root)) continue;
    const matmul = hostOf.get(root);
    if (matmul) groups.set(root, { kind: "epilogue", members: [matmul, ...chain].sort((a, b) => a.id - b.id) });
    else if (chain.length > 1) groups.set(root, { kind: "elementwise", members: chain });
  }
  // A body needs an operand: constant expressions are constant folding's job.
  for (const [at, g] of groups) if (externalOperands(graph, g.members).length === 0) groups.delete(at);
  return groups;
}

/** The values a group reads from outside, in order of first use; scalar constants are copied in instead. */
function externalOperands(graph: Graph, members: Node[]): number[] {
  const inside = new Set(members.map((m) => m.id));
  const out: number[] = [];
  for (const m of members) for (const o of m.operands) if (!inside.has(o) && graph.nodes[o].op !== "const" && !out.includes(o)) out.push(o);
  return out;
}

/** Whether every symbolic size a group uses reaches it through an operand or its result. */
function boundDims(graph: Graph, members: Node[]): boolean {
  const bound = new Set<Dim>([...externalOperands(graph, members).flatMap((o) => graph.nodes[o].type.shape), ...members[members.length - 1].type.shape]);
  return members.every((m) => m.type.shape.every((d) => typeof d === "number" || bound.has(d)) && (!Array.isArray(m.attrs.shape) || (m.attrs.shape as Dim[]).every((d) => typeof d === "number" || bound.has(d))));
}

/** The body graph of a group: inputs "0", "1", ... for its operands, then constants and members in order. */
function bodyOf(graph: Graph, members: Node[], operands: number[]): Graph {
  const b = new GraphBuilder("fused");
  const used = new Set<Dim>(members.flatMap((m) => [...m.type.shape, ...(Array.isArray(m.attrs.shape) ? (m.attrs.shape as Dim[]) : [])]));
  for (const o of operands) graph.nodes[o].type.shape.forEach((d) => used.add(d));
  for (const d of graph.dims) if (used.has(d)) b.dim(d);
  const ids = new Map<number, number>();
  operands.forEach((o, k) => {
    const t = graph.nodes[o].type;
    ids.set(o, b.add("input", [], { name: String(k), dtype: t.dtype, shape: t.shape }));
  });
  for (const m of members) {
    for (const o of m.operands) if (!ids.has(o)) ids.set(o, b.add("const", [], graph.nodes[o].attrs));
    ids.set(m.id, b.add(m.op, m.operands.map((o) => ids.get(o)!), m.attrs));
  }
  b.output("out", ids.get(members[members.length - 1].id)!);
  return b.finish();
}

export function fuseElementwise(graph: Graph): Graph {
  const groups = planGroups(graph);
  const absorbed = new Set<number>();
  for (const g of groups.values()) for (const m of g.members) absorbed.add(m.id);
  const outputs = new Set(graph.outputs.map((o) => o.node));
  const readers = uses(graph);
  return rebuild(graph, (node, r) => {
    const g = groups.get(node.id);
    if (g) {
      const operands = externalOperands(graph, g.members);
      count(`${g.kind} kernels`);
      count(`nodes fused into ${g.kind} kernels`, g.members.length);
      return r.add("fused", operands.map((o) => r.value(o)), { body: bodyOf(graph, g.members, operands), kind: g.kind });
    }
    if (absorbed.has(node.id)) return -1;
    // A constant that only fused bodies read now lives in those bodies.
    const copiedIn = node.op === "const" && !outputs.has(node.id) && readers.readers(node.id).length > 0 && readers.readers(node.id).every((x) => absorbed.has(x.id));
    return copiedIn ? -1 : r.copy(node);
  });
}

export const fuseElementwisePass: Pass = {
  name: "fuse-elementwise",
  description: "fuse chains of elementwise ops and broadcasts into one kernel, and into a matmul (epilogue) or a reduction (prologue)",
  run: fuseElementwise,
};
