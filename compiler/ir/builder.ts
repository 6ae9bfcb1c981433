// Builds graphs one node at a time, checking each node against its op's schema and shape
// rule as it is added, so a graph built this way is well-typed by construction.
import type { SourceSpan } from "../../common/diagnostic.ts";
import type { Attrs, Graph, Node } from "./graph.ts";
import { getOp, normalizeAttrs, OpError, operandArity } from "./registry.ts";
import type { TensorType } from "./types.ts";
import "./ops/index.ts";

export class GraphBuilder {
  readonly nodes: Node[] = [];
  readonly outputs: { name: string; node: number }[] = [];
  readonly dims: string[] = [];

  constructor(readonly name: string) {}

  dim(name: string): void {
    if (!this.dims.includes(name)) this.dims.push(name);
  }

  type(id: number): TensorType {
    return this.nodes[id].type;
  }

  /** Adds a node; throws OpError when the op does not accept these operands or attributes. */
  add(op: string, operands: number[], attrs: Attrs = {}, span?: SourceSpan): number {
    const def = getOp(op);
    if (!def) throw new OpError(`unknown op ${op}`);
    const { min, max } = operandArity(def);
    if (operands.length < min || operands.length > max) {
      const want = min === max ? `${min}` : max === Infinity ? `at least ${min}` : `${min} to ${max}`;
      throw new OpError(`${op} takes ${want} operand${max === 1 ? "" : "s"} (${def.operands.join(", ")}), got ${operands.length}`);
    }
    const normalized = normalizeAttrs(def, attrs);
    const type = def.infer(operands.map((o) => this.nodes[o].type), normalized);
    const id = this.nodes.length;
    this.nodes.push({ id, op, operands, attrs: normalized, type, span });
    return id;
  }

  output(name: string, node: number): void {
    this.outputs.push({ name, node });
  }

  finish(): Graph {
    return { name: this.name, dims: [...this.dims], nodes: this.nodes, outputs: this.outputs };
  }
}
