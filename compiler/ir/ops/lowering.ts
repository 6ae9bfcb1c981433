// Small builders used by decompositions: they read like the math (`matmul(q, k)`) and keep
// the shapes explicit, so a decomposition is a few lines per step.
import type { NodeSink } from "../registry.ts";
import type { Dim, DType } from "../types.ts";

export class Lowering {
  constructor(readonly b: NodeSink) {}

  shape(x: number): Dim[] {
    return this.b.type(x).shape;
  }
  /** The leading dims of x before its last `k` axes. */
  batch(x: number, k: number): Dim[] {
    const s = this.shape(x);
    return s.slice(0, s.length - k);
  }
  reshape(x: number, shape: Dim[]): number {
    return this.b.add("reshape", [x], { shape });
  }
  /** Permutes the last `perm.length` axes, keeping the leading ones in place. */
  permuteLast(x: number, perm: number[]): number {
    const rank = this.shape(x).length;
    const lead = rank - perm.length;
    return this.b.add("transpose", [x], { perm: [...Array(lead).keys(), ...perm.map((p) => p + lead)] });
  }
  slice(x: number, axis: number, start: number, end: number): number {
    return this.b.add("slice", [x], { axis, start, end, step: 1 });
  }
  scalar(value: number, dtype: DType): number {
    return this.b.add("const", [], { value, dtype });
  }
  op(name: string, ...operands: number[]): number {
    return this.b.add(name, operands);
  }
}
