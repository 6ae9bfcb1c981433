// The one renderer: prints kernel IR through a language table. A language says how to spell
// literals, operators, math calls, conversions, buffer accesses, declarations and loop
// headers; the renderer owns the traversal, the indentation and which helpers get emitted.
import type { BinaryOp, MathFn, ScalarExpr, ScalarType, UnaryOp } from "../../../compiler/ir/scalar.ts";
import { typeOf } from "../../../compiler/ir/scalar.ts";
import type { DType } from "../../../compiler/ir/types.ts";
import type { CombineOp, HelperFunction, Kernel, LoopScope, Stmt } from "./ir.ts";
import { helperFunction } from "./helpers.ts";

/** Records that the code being printed calls a helper function (emitted once per module). */
export type UseHelper = (name: string) => void;

export interface Language {
  name: string;
  literal(value: number, type: ScalarType): string;
  unary(op: UnaryOp, a: string, type: ScalarType): string;
  /** `type` is the operands' type. */
  binary(op: BinaryOp, a: string, b: string, type: ScalarType): string;
  /**
   * The spelling of a math function: native, or a call of a library helper recorded with `use`;
   * undefined calls the library helper of the function's own name.
   */
  math(fn: MathFn, args: string[], types: ScalarType[], use: UseHelper): string | undefined;
  select(cond: string, a: string, b: string, type: ScalarType): string;
  cast(to: ScalarType, from: ScalarType, a: string): string;
  /** A value rounded to a dtype as a store of it would round it. */
  round(dtype: DType, a: string, use: UseHelper): string;
  bitcast(to: "f32" | "u32", a: string): string;
  /** Element `index` of a buffer, decoded from storage. */
  load(buffer: string, dtype: DType, index: string, use: UseHelper): string;
  /** The statement storing `value` (of `dtype`) at `index`, encoded for storage. */
  store(buffer: string, dtype: DType, index: string, value: string, use: UseHelper): string;
  /** A statement declaring a local. */
  declare(name: string, type: ScalarType, mutable: boolean, value: string | undefined): string;
  /**
   * The header of a loop over [start, end), ending in an opening brace. `cooperative`: the loop
   * is in a cooperative kernel (Kernel.workgroupSize), whose grid loop gives each workgroup,
   * not each thread, its iterations; a language without such kernels may ignore it.
   */
  loop(index: string, start: string, end: string, step: number, scope: LoopScope, cooperative: boolean): string;
  shared(name: string, type: ScalarType, size: number): string;
  barrier: string;
  /** The statements of a `combine` (Stmt): each thread gets the workgroup's merged `value` as local `name`. */
  combine(name: string, type: ScalarType, op: CombineOp, value: string, use: UseHelper): string[];
  /** Statements that record a kernel error (the first one wins). */
  fail(code: number, values: string[]): string[];
  /** The whole function of a kernel around its rendered body lines. */
  kernel(k: Kernel, body: string[]): string;
  /** The whole function of a helper around its rendered body lines. */
  helper(fn: HelperFunction, body: string[]): string;
}

/** Prints expressions and statements of one function, collecting the helpers they call. */
export class Renderer {
  readonly helpers = new Set<string>();
  private readonly shared = new Set<string>();

  /** `cooperative`: printing a cooperative kernel (Kernel.workgroupSize). */
  constructor(
    readonly lang: Language,
    readonly cooperative = false,
  ) {}

  private readonly use: UseHelper = (name) => {
    this.helpers.add(name);
  };

  expr(e: ScalarExpr): string {
    const L = this.lang;
    switch (e.kind) {
      case "literal":
        return L.literal(e.value, e.type);
      case "ref":
        return e.name;
      case "unary":
        return L.unary(e.op, this.expr(e.a), typeOf(e.a));
      case "binary":
        return L.binary(e.op, this.expr(e.a), this.expr(e.b), typeOf(e.a));
      case "call": {
        const args = e.args.map((a) => this.expr(a));
        const native = L.math(e.fn, args, e.args.map(typeOf), this.use);
        if (native !== undefined) return native;
        this.use(e.fn);
        return `${e.fn}(${args.join(", ")})`;
      }
      case "apply":
        this.use(e.fn);
        return `${e.fn}(${e.args.map((a) => this.expr(a)).join(", ")})`;
      case "select":
        return L.select(this.expr(e.cond), this.expr(e.a), this.expr(e.b), typeOf(e));
      case "cast":
        return L.cast(e.to, typeOf(e.a), this.expr(e.a));
      case "round":
        return L.round(e.dtype, this.expr(e.a), this.use);
      case "bitcast":
        return L.bitcast(e.to, this.expr(e.a));
      case "load":
        return this.shared.has(e.buffer) ? `${e.buffer}[${this.expr(e.index)}]` : L.load(e.buffer, e.dtype, this.expr(e.index), this.use);
    }
  }

  /** Statement lines, indented by `depth` levels of two spaces. */
  stmts(list: readonly Stmt[], depth = 1): string[] {
    const pad = "  ".repeat(depth);
    const out: string[] = [];
    const block = (header: string, body: readonly Stmt[], close = "}") => {
      out.push(pad + header, ...this.stmts(body, depth + 1), pad + close);
    };
    for (const s of list) {
      switch (s.kind) {
        case "let":
          out.push(pad + this.lang.declare(s.name, s.type, s.mutable, s.value && this.expr(s.value)));
          break;
        case "assign":
          out.push(`${pad}${s.name} = ${this.expr(s.value)};`);
          break;
        case "store":
          out.push(
            pad +
              (this.shared.has(s.buffer)
                ? `${s.buffer}[${this.expr(s.index)}] = ${this.expr(s.value)};`
                : this.lang.store(s.buffer, s.dtype, this.expr(s.index), this.expr(s.value), this.use)),
          );
          break;
        case "loop":
          block(this.lang.loop(s.index, this.expr(s.start), this.expr(s.end), s.step, s.scope, this.cooperative), s.body);
          break;
        case "while":
          block(`while (${this.expr(s.cond)}) {`, s.body);
          break;
        case "if":
          if (s.else.length === 0) block(`if (${this.expr(s.cond)}) {`, s.then);
          else {
            block(`if (${this.expr(s.cond)}) {`, s.then, "} else {");
            out.push(...this.stmts(s.else, depth + 1), `${pad}}`);
          }
          break;
        case "break":
          out.push(`${pad}break;`);
          break;
        case "return":
          out.push(`${pad}return ${this.expr(s.value)};`);
          break;
        case "barrier":
          out.push(pad + this.lang.barrier);
          break;
        case "shared":
          this.shared.add(s.name);
          out.push(pad + this.lang.shared(s.name, s.type, s.size));
          break;
        case "combine":
          out.push(...this.lang.combine(s.name, s.type, s.op, this.expr(s.value), this.use).map((l) => pad + l));
          break;
        case "fail":
          out.push(...this.lang.fail(s.code, s.values.map((v) => this.expr(v))).map((l) => pad + l));
          break;
      }
    }
    return out;
  }
}

/** One kernel's source and the helpers it calls. */
export function renderKernel(k: Kernel, lang: Language): { source: string; helpers: Set<string> } {
  const r = new Renderer(lang, k.workgroupSize !== undefined);
  return { source: lang.kernel(k, r.stmts(k.body)), helpers: r.helpers };
}

/**
 * The sources of the helpers `names` and of every helper they call, each once, callees first,
 * each printed by the language.
 */
export function renderHelpers(names: Iterable<string>, lang: Language): string[] {
  const done = new Map<string, string>();
  const visit = (name: string) => {
    if (done.has(name)) return;
    const fn = helperFunction(name);
    if (!fn) throw new Error(`no helper function ${name} in the kernel IR library`);
    done.set(name, "");
    const r = new Renderer(lang);
    const body = r.stmts(fn.body);
    r.helpers.forEach(visit);
    done.delete(name);
    done.set(name, lang.helper(fn, body));
  };
  [...names].sort().forEach(visit);
  return [...done.values()];
}
