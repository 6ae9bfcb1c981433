// Writes the hand-tuned JS templates (packed matmul, streaming attention) line by line, with
// the same kernel signature as the shared lowering's kernels: buffers (out, in0, ...), then the
// kernel's dims as positional parameters. Strides are compile-time numbers where shapes are
// static; loops walk offsets incrementally.
import { formatMonomial, type Monomial } from "../../common/size.ts";
import { dimParam, type Kernel } from "../common/kernel/ir.ts";

export class KernelWriter {
  private readonly lines: string[] = [];
  private readonly prelude: string[] = [];
  private readonly hoisted = new Map<string, string>();
  /** The dims this kernel reads, in the order of its parameters. */
  readonly dims: string[] = [];
  /** The multiply-adds of a kernel that splits its work over threads (KernelSpec.split, KernelSpec.work). */
  splitWork?: Monomial;
  private indent = 1;

  constructor(
    readonly helpers: Set<string>,
    /** The kernel's function name. */
    readonly name = "kernel",
    /** Adds kernel IR to the artifact's compiled wasm kernels (f32 only); false where the wasm compiler cannot translate it. */
    readonly compile?: (kernel: Kernel) => boolean,
  ) {}

  /** A JS expression for a size: a literal, or a hoisted constant over the dim parameters. */
  size(m: Monomial): string {
    if (m.symbols.length === 0) return String(m.coefficient);
    const key = formatMonomial(m);
    let name = this.hoisted.get(key);
    if (!name) {
      name = `n${this.hoisted.size}`;
      const factors = m.symbols.map((s) => this.dim(s));
      if (m.coefficient !== 1) factors.unshift(String(m.coefficient));
      this.hoisted.set(key, name);
      this.prelude.push(`const ${name} = ${factors.join(" * ")};`);
    }
    return name;
  }

  /** The parameter carrying dim `s` (dim names come from model files and never reach the code). */
  private dim(s: string): string {
    let i = this.dims.indexOf(s);
    if (i < 0) i = this.dims.push(s) - 1;
    return dimParam(i);
  }

  line(s: string): void {
    this.lines.push("  ".repeat(this.indent) + s);
  }
  open(s: string): void {
    this.line(s);
    this.indent++;
  }
  close(s = "}"): void {
    this.indent--;
    this.line(s);
  }

  /**
   * The parameters of the kernel's share of the work, `part` of `parts` (KernelSpec.split),
   * which follow its dims; a kernel run whole gets 0 of 1. `work`: its multiply-adds, by which
   * the runtime judges whether splitting pays.
   */
  split(work: Monomial): { part: string; parts: string } {
    this.splitWork = work;
    return { part: "part", parts: "parts" };
  }

  /** The kernel function over `buffers` (out, in0, ...), the dims it read and, if it splits, its share. */
  finish(name: string, buffers: string[]): string {
    const params = [...buffers, ...this.dims.map((_, i) => dimParam(i)), ...(this.splitWork ? ["part = 0", "parts = 1"] : [])];
    return [`function ${name}(${params.join(", ")}) {`, ...this.prelude.map((p) => `  ${p}`), ...this.lines, "}"].join("\n");
  }

  /**
   * A loop nest over `sizes`, walking each access's offset by its strides; `body` gets the
   * offset variable of every access at the innermost level.
   */
  loops(sizes: Monomial[], accesses: { offset: string; strides: Monomial[] }[], body: (offsets: string[]) => void, tag = "x"): void {
    if (sizes.length === 0) {
      body(accesses.map((a) => a.offset));
      return;
    }
    sizes.forEach((size, d) => {
      const vars = accesses.map((_, k) => `${tag}${k}_${d}`);
      const inits = accesses.map((a, k) => `${vars[k]} = ${d === 0 ? a.offset : `${tag}${k}_${d - 1}`}`);
      const steps = accesses.flatMap((a, k) => (a.strides[d].coefficient === 0 ? [] : [`${vars[k]} += ${this.size(a.strides[d])}`]));
      this.open(`for (let i${tag}${d} = 0, ${inits.join(", ")}; i${tag}${d} < ${this.size(size)}; i${tag}${d}++${steps.map((s) => `, ${s}`).join("")}) {`);
    });
    body(accesses.map((_, k) => `${tag}${k}_${sizes.length - 1}`));
    for (let d = 0; d < sizes.length; d++) this.close();
  }
}
