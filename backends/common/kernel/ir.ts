// The kernel IR: what a kernel does, in statements over the registry's scalar expressions,
// with nothing of any one language in it. Templates and the shared lowering build it; one
// renderer prints it through a language table per backend (tinygrad's uops + CStyleLanguage).
//
// Loops carry their scope: `grid` loops are independent iterations a GPU spreads over threads
// and a CPU runs in order; `serial` loops run in order inside one thread. In a cooperative
// kernel (Kernel.workgroupSize set), each grid iteration runs on a whole workgroup instead:
// every thread of it runs the iteration's statements, its `workgroup` loops spread their
// iterations over those threads, each thread's locals are its own, and `combine` merges one
// value per thread into one the whole workgroup sees. Offsets into buffers are scalar expressions of loop indices
// and dims, in elements of the buffer's dtype.
import type { DType } from "../../../compiler/ir/types.ts";
import { bin, lit, ref, type ScalarExpr, type ScalarType } from "../../../compiler/ir/scalar.ts";
import type { Monomial } from "../../../common/size.ts";

export type LoopScope = "serial" | "grid" | "workgroup";

/** How `combine` merges the threads' values: max and min are NaN when any value is (the IR's rule). */
export type CombineOp = "sum" | "max" | "min";

export type Stmt =
  | { kind: "let"; name: string; type: ScalarType; value?: ScalarExpr; mutable: boolean }
  | { kind: "assign"; name: string; value: ScalarExpr }
  | { kind: "store"; buffer: string; dtype: DType; index: ScalarExpr; value: ScalarExpr }
  /** for index in [start, end) by step. */
  | { kind: "loop"; index: string; start: ScalarExpr; end: ScalarExpr; step: number; scope: LoopScope; body: Stmt[] }
  | { kind: "while"; cond: ScalarExpr; body: Stmt[] }
  | { kind: "if"; cond: ScalarExpr; then: Stmt[]; else: Stmt[] }
  | { kind: "break" }
  | { kind: "return"; value: ScalarExpr }
  | { kind: "barrier" }
  /** An array in workgroup (shared) memory, read and written with load and store by its name. */
  | { kind: "shared"; name: string; type: ScalarType; size: number }
  /**
   * Every thread of the workgroup gives `value`; each gets their sum, max or min as the new
   * local `name` (in an order the language picks). Only in a cooperative kernel, where every
   * thread of the workgroup reaches it: in its grid loop's body, outside workgroup loops and
   * conditionals.
   */
  | { kind: "combine"; name: string; type: ScalarType; op: CombineOp; value: ScalarExpr }
  /**
   * Records a run-time error instead of throwing (GPU kernels cannot throw): the first error
   * wins; the runtime reads the flag after the launch and raises `message` with the values.
   */
  | { kind: "fail"; code: number; values: ScalarExpr[] };

/** A kernel buffer parameter: the kernel reads or writes elements of `dtype`. */
export interface BufferParam {
  name: string;
  dtype: DType;
  access: "read" | "write";
}

/** A run-time error a kernel can report, with the values its `fail` records. */
export interface KernelError {
  code: number;
  /** `{0}`, `{1}`, ... stand for the recorded values. */
  message: string;
}

export interface Kernel {
  name: string;
  /** Buffer parameters in order: the output first, then the inputs. */
  buffers: BufferParam[];
  /** Symbolic sizes the kernel reads, in the order its signature takes them (i32 parameters). */
  dims: string[];
  body: Stmt[];
  /** Launch geometry: the sizes of the outermost grid loops (threads a GPU launches). */
  grid: Monomial[];
  errors: KernelError[];
  /**
   * Set in a cooperative kernel: each iteration of its grid loop runs on one workgroup of this
   * many threads, which share its workgroup loops and combines (see the top of this file).
   * `grid` still counts threads: the iterations times this size.
   */
  workgroupSize?: number;
}

/** A helper function written once in the kernel IR and rendered per language. */
export interface HelperFunction {
  name: string;
  params: { name: string; type: ScalarType }[];
  returns: ScalarType;
  body: Stmt[];
}

export const I = (name: string): ScalarExpr => ref(name, "i32");
export const int = (value: number): ScalarExpr => lit(value, "i32");

/** A sum of terms, dropping zeros and folding literal parts, so offsets print short. */
export function sum(terms: ScalarExpr[]): ScalarExpr {
  let constant = 0;
  const rest: ScalarExpr[] = [];
  for (const t of terms) {
    if (t.kind === "literal") constant += t.value;
    else rest.push(t);
  }
  if (constant !== 0 || rest.length === 0) rest.push(int(constant));
  return rest.reduce((a, b) => bin("+", a, b));
}

/** a * b for index arithmetic, folding 0 and 1. */
export function product(a: ScalarExpr, b: ScalarExpr): ScalarExpr {
  if (a.kind === "literal" && b.kind === "literal") return int(a.value * b.value);
  if ((a.kind === "literal" && a.value === 0) || (b.kind === "literal" && b.value === 0)) return int(0);
  if (a.kind === "literal" && a.value === 1) return b;
  if (b.kind === "literal" && b.value === 1) return a;
  return bin("*", a, b);
}

/** Names the languages reserve for types, which a local must not shadow (WGSL allows it, then fails). */
const TYPE_NAMES = new Set(["i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "f16", "f32", "f64"]);

/**
 * Builds statement lists with nested blocks: `b.loop(...)` opens a block, statements added
 * inside its callback land in it.
 */
export class StmtBuilder {
  private stack: Stmt[][] = [[]];
  private counter = 0;

  get statements(): Stmt[] {
    return this.stack[0];
  }

  /** A fresh local name with a readable prefix, never a type name of a target language (i32, f16, int, ...). */
  fresh(prefix: string): string {
    let name: string;
    do name = `${prefix}${this.counter++}`;
    while (TYPE_NAMES.has(name));
    return name;
  }

  add(s: Stmt): void {
    this.stack[this.stack.length - 1].push(s);
  }

  /** Declares a local; returns a reference to it. */
  let(name: string, type: ScalarType, value?: ScalarExpr, mutable = false): ScalarExpr {
    this.add({ kind: "let", name, type, value, mutable });
    return ref(name, type);
  }
  var(name: string, type: ScalarType, value?: ScalarExpr): ScalarExpr {
    return this.let(name, type, value, true);
  }
  assign(name: string, value: ScalarExpr): void {
    this.add({ kind: "assign", name, value });
  }
  store(buffer: string, dtype: DType, index: ScalarExpr, value: ScalarExpr): void {
    this.add({ kind: "store", buffer, dtype, index, value });
  }
  block(body: () => void): Stmt[] {
    this.stack.push([]);
    body();
    return this.stack.pop()!;
  }
  loop(index: string, end: ScalarExpr, scope: LoopScope, body: (i: ScalarExpr) => void, start: ScalarExpr = int(0), step = 1): void {
    this.add({ kind: "loop", index, start, end, step, scope, body: this.block(() => body(I(index))) });
  }
  while(cond: ScalarExpr, body: () => void): void {
    this.add({ kind: "while", cond, body: this.block(body) });
  }
  if(cond: ScalarExpr, then: () => void, otherwise?: () => void): void {
    this.add({ kind: "if", cond, then: this.block(then), else: otherwise ? this.block(otherwise) : [] });
  }
  /** Merges every thread's `value` (see Stmt "combine"); returns a reference to the result. */
  combine(name: string, type: ScalarType, op: CombineOp, value: ScalarExpr): ScalarExpr {
    this.add({ kind: "combine", name, type, op, value });
    return ref(name, type);
  }
  break(): void {
    this.add({ kind: "break" });
  }
  return(value: ScalarExpr): void {
    this.add({ kind: "return", value });
  }
}

/** Every expression the statements evaluate, those of nested bodies included. */
export function expressionsOf(list: readonly Stmt[]): ScalarExpr[] {
  return list.flatMap((s): ScalarExpr[] => {
    switch (s.kind) {
      case "let":
        return s.value ? [s.value] : [];
      case "assign":
      case "return":
      case "combine":
        return [s.value];
      case "store":
        return [s.index, s.value];
      case "loop":
        return [s.start, s.end, ...expressionsOf(s.body)];
      case "while":
        return [s.cond, ...expressionsOf(s.body)];
      case "if":
        return [s.cond, ...expressionsOf(s.then), ...expressionsOf(s.else)];
      case "fail":
        return s.values;
      default:
        return [];
    }
  });
}

/** The name of a kernel's i-th dim parameter: positional, since dim names come from model files. */
export const dimParam = (i: number): string => `dim${i}`;

/** The name of the error record a kernel with `errors` takes as its last parameter. */
export const ERRORS_PARAM = "errors";
