// The kernel plan: which kernels run in which order, over which buffers. Views (reshape) share
// their operand's buffer; temporaries share storage by liveness, so peak memory stays near the
// largest live set instead of the sum of all intermediates.
import type { Graph, Node } from "../ir/graph.ts";
import type { DType } from "../ir/types.ts";
import { covers, type Monomial, monomialOf } from "../../common/size.ts";

/** Bytes per element of each dtype in a target's storage (WGSL has no 8-bit storage: a target says). */
export type StorageBytes = Readonly<Record<DType, number>>;

/** The natural byte widths: what typed arrays, CUDA and safetensors use. */
export const BYTES: StorageBytes = { f32: 4, f16: 2, bf16: 2, i32: 4, i8: 1, u8: 1, bool: 1 };

export type BufferKind = "input" | "param" | "const" | "temp";

export interface PlanBuffer {
  id: number;
  kind: BufferKind;
  dtype: DType;
  /** Elements. */
  size: Monomial;
  /** For inputs and params, the name they are bound by; for consts, the value. */
  name?: string;
  value?: number;
  /** Temporaries: the storage slot they live in (several buffers share a slot over time). */
  slot?: number;
  /**
   * A temporary computed from params and consts alone: the same every forward, so it keeps a
   * slot of its own and a runtime may compute it once, at load (constant folding over params).
   */
  fromParams?: true;
}

export interface Slot {
  id: number;
  bytes: Monomial;
}

export interface Kernel {
  /** A stable name for the generated function, `k3_matmul`. */
  name: string;
  /**
   * Launch geometry: the sizes of the independent iterations (a GPU's threads), outermost
   * first. One per output element until a backend's lowering says otherwise.
   */
  grid: Monomial[];
  /** The nodes computed by this kernel; the last one is its result. */
  nodes: Node[];
  inputs: number[]; // buffer ids, in operand order of the nodes
  output: number; // buffer id
}

export interface KernelPlan {
  graph: Graph;
  /** Bytes per element in the target's storage, which slot sizes are counted in. */
  storage: StorageBytes;
  buffers: PlanBuffer[];
  slots: Slot[];
  kernels: Kernel[];
  /** The buffer holding each node's value. */
  bufferOf: Int32Array;
  outputs: { name: string; node: number; buffer: number }[];
}

/** Ops whose result is their operand's data unchanged: they get no kernel and no buffer. */
const VIEW_OPS = new Set(["reshape"]);

export function schedule(graph: Graph, storage: StorageBytes = BYTES): KernelPlan {
  const buffers: PlanBuffer[] = [];
  const kernels: Kernel[] = [];
  const bufferOf = new Int32Array(graph.nodes.length).fill(-1);
  const newBuffer = (b: Omit<PlanBuffer, "id">) => buffers.push({ id: buffers.length, ...b }) - 1;

  for (const node of graph.nodes) {
    const size = monomialOf(node.type.shape);
    if (node.op === "input" || node.op === "param") {
      bufferOf[node.id] = newBuffer({ kind: node.op, dtype: node.type.dtype, size, name: String(node.attrs.name) });
    } else if (node.op === "const") {
      bufferOf[node.id] = newBuffer({ kind: "const", dtype: node.type.dtype, size, value: node.attrs.value as number });
    } else if (VIEW_OPS.has(node.op)) {
      bufferOf[node.id] = bufferOf[node.operands[0]];
    } else {
      const output = newBuffer({ kind: "temp", dtype: node.type.dtype, size });
      bufferOf[node.id] = output;
      kernels.push({ name: `k${kernels.length}_${node.op}`, grid: [size], nodes: [node], inputs: node.operands.map((o) => bufferOf[o]), output });
    }
  }

  // Kernels that read params and consts alone, and those that read only their results.
  const fixed = (b: number) => buffers[b].kind === "param" || buffers[b].kind === "const" || buffers[b].fromParams === true;
  for (const k of kernels) if (k.inputs.length > 0 && k.inputs.every(fixed)) buffers[k.output].fromParams = true;
  const outputs = graph.outputs.map((o) => ({ ...o, buffer: bufferOf[o.node] }));
  const kept = new Set([...outputs.map((o) => o.buffer), ...buffers.filter((b) => b.fromParams).map((b) => b.id)]);
  const slots = assignSlots(buffers, kernels, kept, storage);
  return { graph, storage, buffers, slots, kernels, bufferOf, outputs };
}

/**
 * Greedy slot assignment in launch order: a kernel's output takes a free slot that always
 * covers it (same symbols, no fewer bytes), and a temporary's slot is freed after its last
 * reader. Outputs, and results computed from params alone, keep their own slots (`outputs`).
 */
function assignSlots(buffers: PlanBuffer[], kernels: Kernel[], outputs: ReadonlySet<number>, storage: StorageBytes): Slot[] {
  const lastUse = new Map<number, number>();
  kernels.forEach((k, i) => k.inputs.forEach((b) => lastUse.set(b, i)));
  const slots: Slot[] = [];
  const free: Slot[] = [];
  kernels.forEach((k, i) => {
    const out = buffers[k.output];
    const bytes = { ...out.size, coefficient: out.size.coefficient * storage[out.dtype] };
    let slot: Slot | undefined;
    if (!outputs.has(out.id)) {
      const j = free.findIndex((s) => covers(s.bytes, bytes));
      if (j >= 0) slot = free.splice(j, 1)[0];
    }
    if (!slot) {
      slot = { id: slots.length, bytes };
      slots.push(slot);
    }
    out.slot = slot.id;
    // Release inputs read for the last time here (after allocating: a kernel never writes
    // over its own operands).
    for (const b of new Set(k.inputs)) {
      const buf = buffers[b];
      if (buf.kind === "temp" && lastUse.get(b) === i && !outputs.has(b) && buf.slot !== undefined) free.push(slots[buf.slot]);
    }
    // A result nobody reads (and that is no output) frees its slot at once.
    if (!lastUse.has(out.id) && !outputs.has(out.id)) free.push(slot);
  });
  return slots;
}
