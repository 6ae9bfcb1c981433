// What every lowering of a plan kernel shares: its buffer parameters (`out`, `in0`, `in1`, ...
// in operand order), its dims as ordered parameters, sizes as expressions over them, and loop
// nests that walk strided offsets.
import type { Node } from "../../../compiler/ir/graph.ts";
import type { Dim, TensorType } from "../../../compiler/ir/types.ts";
import type { Kernel as PlanKernel, KernelPlan } from "../../../compiler/schedule/index.ts";
import { type Monomial, monomialOf } from "../../../common/size.ts";
import { lit, type ScalarExpr } from "../../../compiler/ir/scalar.ts";
import { type BufferParam, type CombineOp, dimParam, I, int, type Kernel, type KernelError, type LoopScope, product, StmtBuilder, sum } from "../kernel/ir.ts";
import { type Cooperation, cooperates } from "./cooperative.ts";

/** One tensor walked by a loop nest: where it starts and its stride along each loop. */
export interface Walk {
  base: ScalarExpr;
  strides: Monomial[];
}

export class KernelBuilder {
  readonly b = new StmtBuilder();
  readonly dims: string[] = [];
  readonly errors: KernelError[] = [];
  /** Launch geometry: the sizes of the outermost grid loops. */
  grid: Monomial[] = [];
  /** Set once the lowering makes this a cooperative kernel (Kernel.workgroupSize). */
  private workgroupSize?: number;

  constructor(
    readonly name: string,
    readonly buffers: BufferParam[],
    /** What the target offers for cooperative reductions; none: every reduction is per row. */
    readonly cooperation?: Cooperation,
  ) {}

  /** The builder of a plan kernel: its root node, the operands' types, `out` and `in<i>`. */
  static forPlan(plan: KernelPlan, kernel: PlanKernel, cooperation?: Cooperation): { k: KernelBuilder; node: Node; types: TensorType[] } {
    const node = kernel.nodes[kernel.nodes.length - 1];
    const types = node.operands.map((o) => plan.graph.nodes[o].type);
    const buffers: BufferParam[] = [{ name: "out", dtype: node.type.dtype, access: "write" }, ...types.map((t, i) => ({ name: `in${i}`, dtype: t.dtype, access: "read" as const }))];
    return { k: new KernelBuilder(kernel.name, buffers, cooperation), node, types };
  }

  /**
   * Whether `rows` reductions of `length` elements run cooperatively here (cooperative.ts);
   * if so the kernel becomes a cooperative one. Returns the loop scope a row's walk takes.
   */
  rowScope(rows: Monomial, length: Monomial): "workgroup" | "serial" {
    if (!cooperates(this.cooperation, rows, length)) return "serial";
    this.workgroupSize = this.cooperation!.workgroupSize;
    return "workgroup";
  }

  /** `value` merged over the workgroup's threads in a cooperative kernel (Stmt "combine"); elsewhere `value`, one thread's own. */
  combine(name: string, op: CombineOp, value: ScalarExpr): ScalarExpr {
    return this.workgroupSize ? this.b.combine(name, "f64", op, value) : value;
  }

  /** Statements one thread runs: in a cooperative kernel, a workgroup loop of one iteration (every thread would store the same value). */
  once(body: () => void): void {
    if (this.workgroupSize) this.b.loop(this.b.fresh("once"), int(1), "workgroup", body);
    else body();
  }

  /** A dim as an i32 expression: the kernel parameter that carries it. */
  dim(name: string): ScalarExpr {
    let i = this.dims.indexOf(name);
    if (i < 0) i = this.dims.push(name) - 1;
    return I(dimParam(i));
  }

  /** A size (coefficient times dims) as an i32 expression. */
  size(m: Monomial): ScalarExpr {
    if (m.coefficient === 0) return int(0);
    return m.symbols.reduce<ScalarExpr>((acc, s) => product(acc, this.dim(s)), int(m.coefficient));
  }

  /** The element count of a shape. */
  count(shape: readonly Dim[]): ScalarExpr {
    return this.size(monomialOf(shape));
  }

  /**
   * A nest of loops over `sizes` (outermost first); each walk's offset is accumulated one
   * level at a time, so the innermost loop adds one product per walk. `body` gets the
   * innermost offsets.
   */
  nest(sizes: readonly Monomial[], walks: readonly Walk[], scope: LoopScope, body: (offsets: ScalarExpr[]) => void, tag = "i"): void {
    const level = (d: number, offsets: ScalarExpr[]) => {
      if (d === sizes.length) return body(offsets);
      const index = this.b.fresh(tag);
      this.b.loop(index, this.size(sizes[d]), scope, (i) => {
        // Name a partial offset only where an inner loop reuses it, once per distinct offset.
        const named = new Map<string, ScalarExpr>();
        const next = walks.map((w, k) => {
          const off = sum([offsets[k], product(i, this.size(w.strides[d]))]);
          if (d === sizes.length - 1 || off.kind !== "binary") return off;
          const key = JSON.stringify(off);
          if (!named.has(key)) named.set(key, this.b.let(this.b.fresh(`o${k}_`), "i32", off));
          return named.get(key)!;
        });
        level(d + 1, next);
      });
    };
    level(0, walks.map((w) => w.base));
  }

  /** Records a run-time error kind; `fail(code, ...)` statements report it. */
  error(message: string): number {
    return this.errors.push({ code: this.errors.length + 1, message });
  }

  finish(): Kernel {
    return { name: this.name, buffers: this.buffers, dims: this.dims, body: this.b.statements, grid: this.grid, errors: this.errors, ...(this.workgroupSize ? { workgroupSize: this.workgroupSize } : {}) };
  }
}

export const f64 = (v: number): ScalarExpr => lit(v, "f64");
