// The kernel IR compiled to WebAssembly for the JS backend's f32 precision: the shared
// lowering's kernels (elementwise chains, reductions, softmax, norms, gather, copies) and the
// matmul's fused epilogues run as wasm functions over buffers copied into the module's memory
// (template/wasm-kernels.js does the copying). Floats compute in f32, integers and bools in i32.
//
// An innermost loop whose iterations are independent, but for sums, maxima and minima into
// locals declared outside it, runs four iterations per step in v128 lanes (f32x4, i32x4, and
// masks for bools), then the remaining ones one by one: a load or store whose offset moves by
// one element per iteration is one v128 access, one that does not move is a splat, any other
// is four lane accesses. Accumulators keep four partial results that are added up after the
// loop, so sums run in another order than the interpreter's (the f32 tolerance allows it),
// and in f32: partial sums past 3.4e38 are Infinity where the interpreter's float64 ones are not.
//
// What the compiler does not translate exactly (16-bit floats, u32 bit tricks, float-to-int
// conversion, a math function without an f32x4 version, floats and integers mixed in one
// operation, which the JS printing allows and wasm does not) makes it give up on
// the kernel, which then runs as the JS language table prints it: `wasmKernel` returns undefined.
import type { BinaryOp, MathFn, ScalarExpr, ScalarType } from "../../compiler/ir/scalar.ts";
import { children, typeOf } from "../../compiler/ir/scalar.ts";
import type { DType } from "../../compiler/ir/types.ts";
import { dimParam, ERRORS_PARAM, expressionsOf, type Kernel, type Stmt } from "../common/kernel/ir.ts";
import { F32X4_MATH, f32x4Math } from "./wasm-math.ts";
import { Body, F32, I32, type ValType, V128, wasmModule } from "./wasm-encoder.ts";
import * as opcode from "./wasm-opcodes.ts";

/** Why a kernel (or, inside the compiler, one loop's vector form) cannot be compiled. */
class Unsupported extends Error {}
function refuse(why: string): never {
  throw new Unsupported(why);
}

/** The kind of a value in vector form: four f32, four i32, or a mask of four lanes (bool). */
type Lanes = "f" | "i" | "m";

const isFloatType = (t: ScalarType) => t === "f32" || t === "f64";
const isIntType = (t: ScalarType) => t === "i32" || t === "i8" || t === "u8" || t === "bool";

function valType(t: ScalarType): ValType {
  if (isFloatType(t)) return F32;
  if (isIntType(t)) return I32;
  return refuse(`values of type ${t}`);
}

/** Bytes per element of a buffer the compiler reads or writes, with its scalar load and store opcodes. */
const ACCESS: Partial<Record<DType, { bytes: number; load: number; store: number; align: number }>> = {
  f32: { bytes: 4, load: opcode.F32_LOAD, store: opcode.F32_STORE, align: 2 },
  i32: { bytes: 4, load: opcode.I32_LOAD, store: opcode.I32_STORE, align: 2 },
  u8: { bytes: 1, load: opcode.I32_LOAD8_U, store: opcode.I32_STORE8, align: 0 },
  bool: { bytes: 1, load: opcode.I32_LOAD8_U, store: opcode.I32_STORE8, align: 0 },
  i8: { bytes: 1, load: opcode.I32_LOAD8_S, store: opcode.I32_STORE8, align: 0 },
};

function access(dtype: DType) {
  return ACCESS[dtype] ?? refuse(`buffers of ${dtype}`);
}

const F32_BINARY: Partial<Record<BinaryOp, number>> = {
  "+": opcode.F32_ADD, "-": opcode.F32_SUB, "*": opcode.F32_MUL, "/": opcode.F32_DIV, "==": opcode.F32_EQ, "!=": opcode.F32_NE, "<": opcode.F32_LT, ">": opcode.F32_GT, "<=": opcode.F32_LE, ">=": opcode.F32_GE,
};
const I32_BINARY: Partial<Record<BinaryOp, number>> = {
  "+": opcode.I32_ADD, "-": opcode.I32_SUB, "*": opcode.I32_MUL, "==": opcode.I32_EQ, "!=": opcode.I32_NE, "<": opcode.I32_LT_S, ">": opcode.I32_GT_S, "<=": opcode.I32_LE_S, ">=": opcode.I32_GE_S,
  "&&": opcode.I32_AND, "||": opcode.I32_OR, "&": opcode.I32_AND, "|": opcode.I32_OR, "^": opcode.I32_XOR, "<<": opcode.I32_SHL, ">>": opcode.I32_SHR_S,
};
const F32X4_BINARY: Partial<Record<BinaryOp, number>> = {
  "+": opcode.F32X4_ADD, "-": opcode.F32X4_SUB, "*": opcode.F32X4_MUL, "/": opcode.F32X4_DIV, "==": opcode.F32X4_EQ, "!=": opcode.F32X4_NE, "<": opcode.F32X4_LT, ">": opcode.F32X4_GT, "<=": opcode.F32X4_LE, ">=": opcode.F32X4_GE,
};
const I32X4_BINARY: Partial<Record<BinaryOp, number>> = {
  "+": opcode.I32X4_ADD, "-": opcode.I32X4_SUB, "*": opcode.I32X4_MUL, "==": opcode.I32X4_EQ, "!=": opcode.I32X4_NE, "<": opcode.I32X4_LT_S, ">": opcode.I32X4_GT_S, "<=": opcode.I32X4_LE_S, ">=": opcode.I32X4_GE_S,
  "&": opcode.V128_AND, "|": opcode.V128_OR, "^": opcode.V128_XOR,
};
const MASK_BINARY: Partial<Record<BinaryOp, number>> = { "&&": opcode.V128_AND, "||": opcode.V128_OR, "&": opcode.V128_AND, "|": opcode.V128_OR, "^": opcode.V128_XOR, "!=": opcode.V128_XOR };
const COMPARISON = new Set<BinaryOp>(["==", "!=", "<", ">", "<=", ">="]);

/** Math functions with a native wasm instruction: scalar f32 opcode and f32x4 SIMD opcode. */
const NATIVE_MATH: Partial<Record<MathFn, [number, number]>> = {
  sqrt: [opcode.F32_SQRT, opcode.F32X4_SQRT], abs: [opcode.F32_ABS, opcode.F32X4_ABS], floor: [opcode.F32_FLOOR, opcode.F32X4_FLOOR], trunc: [opcode.F32_TRUNC, opcode.F32X4_TRUNC], max: [opcode.F32_MAX, opcode.F32X4_MAX], min: [opcode.F32_MIN, opcode.F32X4_MIN],
};

/**
 * The reductions an accumulator of a vectorised loop can take: their f32x4 opcode, identity and
 * scalar opcode. Max and min run as pmax and pmin (one x86 instruction each in V8, where IEEE
 * max and min are several, on the loop's one dependency chain), which pass over NaN: a mask
 * of the lanes that met one makes them NaN after the loop (`nan`).
 */
const REDUCTION = {
  sum: { simd: opcode.F32X4_ADD, identity: 0, scalar: opcode.F32_ADD, nan: false },
  max: { simd: opcode.F32X4_PMAX, identity: -Infinity, scalar: opcode.F32_MAX, nan: true },
  min: { simd: opcode.F32X4_PMIN, identity: Infinity, scalar: opcode.F32_MIN, nan: true },
};
type Reduction = keyof typeof REDUCTION;

const i32x4Const = (...v: number[]) => [opcode.SIMD_PREFIX, opcode.V128_CONST, ...new Uint8Array(new Int32Array(v.length === 1 ? [v[0], v[0], v[0], v[0]] : v).buffer)];
const I32X4_ZERO = i32x4Const(0);
const I32X4_ONE = i32x4Const(1);
const f32Const = (v: number) => [opcode.F32_CONST, ...new Uint8Array(new Float32Array([v]).buffer)];
const v128Splat = (v: number) => [opcode.SIMD_PREFIX, opcode.V128_CONST, ...new Uint8Array(new Float32Array([v, v, v, v]).buffer)];
/** Each lane's offset from the loop index. */
const LANE_OFFSETS = i32x4Const(0, 1, 2, 3);

type Load = Extract<ScalarExpr, { kind: "load" }>;

/** The loads in an expression. */
function loadsIn(e: ScalarExpr, into: Load[] = []): Load[] {
  if (e.kind === "load") into.push(e);
  for (const c of children(e)) loadsIn(c, into);
  return into;
}

/** The names an expression reads. */
function reads(e: ScalarExpr, into = new Set<string>()): Set<string> {
  if (e.kind === "ref") into.add(e.name);
  for (const c of children(e)) reads(c, into);
  return into;
}

function same(a: ScalarExpr, b: ScalarExpr): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * The accumulation `acc = value` as a reduction of a term not involving acc: acc + t, t + acc,
 * the shared lowering's NaN-sticky max/min steps, or max(acc, t) / min(acc, t).
 */
function reductionOf(acc: string, value: ScalarExpr): { op: Reduction; term: ScalarExpr } | undefined {
  const isAcc = (e: ScalarExpr) => e.kind === "ref" && e.name === acc;
  const clean = (t: ScalarExpr) => (reads(t).has(acc) ? undefined : t);
  if (value.kind === "binary" && value.op === "+") {
    const term = isAcc(value.a) ? clean(value.b) : isAcc(value.b) ? clean(value.a) : undefined;
    return term && { op: "sum", term };
  }
  if (value.kind === "call" && (value.fn === "max" || value.fn === "min")) {
    const [a, b] = value.args;
    const term = isAcc(a) ? clean(b) : isAcc(b) ? clean(a) : undefined;
    return term && { op: value.fn, term };
  }
  // select(isnan(acc) || isnan(t), NaN, select(acc > t, acc, t)): max (with <, min), NaN sticking.
  if (value.kind === "select" && value.b.kind === "select" && value.b.cond.kind === "binary" && isAcc(value.b.cond.a) && isAcc(value.b.a)) {
    const term = value.b.b;
    const op = value.b.cond.op === ">" ? "max" : value.b.cond.op === "<" ? "min" : undefined;
    const isNan = (e: ScalarExpr, of: (x: ScalarExpr) => boolean) => e.kind === "call" && e.fn === "isnan" && of(e.args[0]);
    const isTerm = (e: ScalarExpr) => same(e, term);
    const c = value.cond;
    const nanCheck =
      c.kind === "binary" && c.op === "||" && ((isNan(c.a, isAcc) && isNan(c.b, isTerm)) || (isNan(c.a, isTerm) && isNan(c.b, isAcc))) && value.a.kind === "literal" && Number.isNaN(value.a.value);
    if (op && nanCheck && same(value.b.cond.b, term) && clean(term)) return { op, term };
  }
  return undefined;
}

/** `if (t > acc || isnan(t)) acc = t` (softmax's row max; with <, a min) as a reduction. */
function conditionalReduction(s: Stmt): { acc: string; op: Reduction; term: ScalarExpr } | undefined {
  if (s.kind !== "if" || s.else.length || s.then.length !== 1 || s.then[0].kind !== "assign") return undefined;
  const { name: acc, value: term } = s.then[0];
  const c = s.cond;
  if (c.kind !== "binary" || c.op !== "||" || c.a.kind !== "binary" || c.b.kind !== "call" || c.b.fn !== "isnan") return undefined;
  const op = c.a.op === ">" ? "max" : c.a.op === "<" ? "min" : undefined;
  const ok = c.a.b.kind === "ref" && c.a.b.name === acc && same(c.a.a, term) && same(c.b.args[0], term) && !reads(term).has(acc);
  return op && ok ? { acc, op, term } : undefined;
}

interface Local {
  /** The wasm local's name. */
  local: string;
  type: ScalarType;
  /** Set for a value that differs per lane in a vectorised loop: its vector kind. */
  lanes?: Lanes;
}

/** A loop being vectorised: its index, the accumulators, the buffers it both reads and writes. */
interface VectorLoop {
  index: string;
  accumulators: Map<string, { op: Reduction; local: string; nan: string }>;
  readWritten: ReadonlySet<string>;
}

class Compiler {
  readonly f: Body;
  private scopes: Map<string, Local>[] = [new Map()];
  private counter = 0;
  /** Enclosing control constructs, innermost last: a loop's `block` is where `break` branches to. */
  private control: ("block" | "loop" | "if")[] = [];
  private vector?: VectorLoop;
  /** How many loops got a vector form. */
  vectorLoops = 0;

  constructor(kernel: Kernel) {
    const params: [string, ValType][] = [...kernel.buffers.map((b): [string, ValType] => [`@${b.name}`, I32]), ...kernel.dims.map((_, i): [string, ValType] => [dimParam(i), I32])];
    if (kernel.errors.length) params.push([`@${ERRORS_PARAM}`, I32]);
    this.f = new Body(params);
    kernel.dims.forEach((_, i) => this.scopes[0].set(dimParam(i), { local: dimParam(i), type: "i32" }));
    for (const b of kernel.buffers) access(b.dtype);
  }

  private fresh(type: ValType, hint: string): string {
    return this.f.declare(`${hint}$${this.counter++}`, type);
  }

  private lookup(name: string): Local {
    for (let i = this.scopes.length - 1; i >= 0; i--) {
      const l = this.scopes[i].get(name);
      if (l) return l;
    }
    return refuse(`an unknown name ${name}`);
  }

  private declare(name: string, type: ScalarType, lanes?: Lanes): Local {
    const local = { local: this.fresh(lanes ? V128 : valType(type), name), type, lanes };
    this.scopes[this.scopes.length - 1].set(name, local);
    return local;
  }

  private block(body: () => void): void {
    this.scopes.push(new Map());
    body();
    this.scopes.pop();
  }

  // ---- scalar code ----

  /**
   * Pushes the value of `e` where the code wants a `want`: the JS printing mixes floats and
   * integers freely (an f64 accumulator plus an i32), wasm does not, so a mix is refused.
   */
  private typed(e: ScalarExpr, want: ValType): void {
    if (valType(typeOf(e)) !== want) refuse(`a ${typeOf(e)} where a ${want === F32 ? "float" : "integer"} is wanted`);
    this.expr(e);
  }

  /** Pushes the value of `e` (f32 or i32). */
  expr(e: ScalarExpr): void {
    const f = this.f;
    switch (e.kind) {
      case "literal":
        if (isFloatType(e.type)) f.op(...f32Const(e.value));
        else if (isIntType(e.type)) f.i32(e.value | 0);
        else refuse(`literals of ${e.type}`);
        return;
      case "ref": {
        const l = this.lookup(e.name);
        if (l.lanes) refuse("a lane value read as a scalar");
        f.get(l.local, valType(l.type));
        return;
      }
      case "unary":
        // not x is x == 0: i32.eqz, or f32.eq with 0.
        if (e.op === "not") return void (this.expr(e.a), isFloatType(typeOf(e.a)) ? f.op(...f32Const(0), opcode.F32_EQ) : f.op(opcode.I32_EQZ));
        if (isFloatType(typeOf(e.a))) return void (this.expr(e.a), f.op(opcode.F32_NEG));
        return void (f.i32(0), this.expr(e.a), f.op(opcode.I32_SUB));
      case "binary":
        return this.binary(e.op, e.a, e.b);
      case "call":
        return this.call(e.fn, e.args);
      case "select":
        this.expr(e.a);
        this.typed(e.b, valType(typeOf(e.a)));
        this.typed(e.cond, I32);
        f.op(opcode.SELECT);
        return;
      case "cast":
        return this.cast(e.to, e.a);
      case "round":
        return this.round(e.dtype, e.a);
      case "load": {
        const a = access(e.dtype);
        this.address(e.buffer, e.dtype, e.index);
        f.op(a.load, a.align, 0);
        return;
      }
      default:
        refuse(`${e.kind} expressions`);
    }
  }

  private binary(op: BinaryOp, a: ScalarExpr, b: ScalarExpr): void {
    const t = typeOf(a);
    if (isFloatType(t)) {
      const code = F32_BINARY[op] ?? refuse(`the float operator ${op}`);
      this.expr(a);
      this.typed(b, F32);
      this.f.op(code);
      return;
    }
    valType(t);
    if (valType(typeOf(b)) !== I32) refuse(`an integer ${op} a float`);
    // JS's % on integers is C's remainder; wasm's traps on a zero divisor, where JS's NaN
    // stores as 0: the divisor 0 becomes 1 for the remainder, and the result 0.
    if (op === "%") {
      const y = this.fresh(I32, "den");
      this.expr(a);
      this.expr(b);
      this.f.set(y).get(y).i32(1).get(y).op(opcode.SELECT, opcode.I32_REM_S).i32(0).get(y).op(opcode.SELECT);
      return;
    }
    const code = I32_BINARY[op] ?? refuse(`the integer operator ${op}`);
    this.expr(a);
    this.expr(b);
    this.f.op(code);
  }

  private call(fn: MathFn, args: ScalarExpr[]): void {
    const f = this.f;
    if (fn === "imul") return void (this.expr(args[0]), this.expr(args[1]), f.op(opcode.I32_MUL));
    if (fn === "idiv") return this.idiv(args[0], args[1]);
    if (!isFloatType(typeOf(args[0]))) refuse(`${fn} of integers`);
    const native = NATIVE_MATH[fn];
    if (native) {
      args.forEach((a) => this.typed(a, F32));
      f.op(native[0]);
      return;
    }
    if (fn === "isnan") {
      const x = this.fresh(F32, "nan");
      this.expr(args[0]);
      f.set(x, F32).get(x, F32).get(x, F32).op(opcode.F32_NE);
      return;
    }
    // The other functions exist in f32x4 only: lane 0 of the splatted arguments.
    if (!F32X4_MATH.has(fn)) refuse(`the math function ${fn}`);
    const locals = args.map((a) => {
      const v = this.fresh(V128, "arg");
      this.typed(a, F32);
      f.simd(opcode.F32X4_SPLAT).set(v, V128);
      return v;
    });
    const out = this.fresh(V128, fn);
    f32x4Math(f, fn, locals, out);
    f.get(out, V128).simd(opcode.F32X4_EXTRACT_LANE, 0);
  }

  /**
   * Integer division truncating toward zero, 0 for a zero divisor, and -a (wrapping) for -1,
   * where wasm's div_s would trap: b is replaced by 1 for the division when it is 0 or -1.
   */
  private idiv(a: ScalarExpr, b: ScalarExpr): void {
    const f = this.f;
    const [x, y] = [this.fresh(I32, "num"), this.fresh(I32, "den")];
    this.expr(a);
    f.set(x);
    this.expr(b);
    f.set(y);
    f.i32(0).get(x).op(opcode.I32_SUB);
    f.get(x).get(y).i32(1).get(y).i32(1).op(opcode.I32_ADD).i32(1).op(opcode.I32_GT_U, opcode.SELECT, opcode.I32_DIV_S); // b + 1 >u 1: b is neither 0 nor -1
    f.get(y).i32(-1).op(opcode.I32_EQ, opcode.SELECT);
    f.i32(0).get(y).op(opcode.SELECT);
  }

  private cast(to: ScalarType, a: ScalarExpr): void {
    const from = typeOf(a);
    this.expr(a);
    if (isFloatType(to)) {
      if (isIntType(from)) this.f.op(opcode.F32_CONVERT_I32_S);
      else valType(from);
      return;
    }
    if (!isIntType(to) || !isIntType(from)) refuse(`a cast from ${from} to ${to}`);
    this.narrow(to);
  }

  /** An i32 on the stack as `to` holds it: i8 sign-extended, u8 masked, bool 0 or 1. */
  private narrow(to: ScalarType): void {
    if (to === "i8") this.f.op(opcode.I32_EXTEND8_S);
    else if (to === "u8") this.f.i32(255).op(opcode.I32_AND);
    else if (to === "bool") this.f.i32(0).op(opcode.I32_NE);
  }

  private round(dtype: DType, a: ScalarExpr): void {
    const from = typeOf(a);
    if (dtype === "f32" && isFloatType(from)) return this.expr(a);
    if (isIntType(dtype) && isIntType(from)) {
      this.expr(a);
      this.narrow(dtype);
      return;
    }
    refuse(`rounding ${from} to ${dtype}`);
  }

  /** The byte address of element `index` of `buffer`. */
  private address(buffer: string, dtype: DType, index: ScalarExpr): void {
    const bytes = access(dtype).bytes;
    this.f.get(`@${buffer}`);
    this.typed(index, I32);
    if (bytes > 1) this.f.i32(bytes).op(opcode.I32_MUL);
    this.f.op(opcode.I32_ADD);
  }

  stmts(list: readonly Stmt[]): void {
    for (const s of list) this.stmt(s);
  }

  private stmt(s: Stmt): void {
    const f = this.f;
    switch (s.kind) {
      case "let": {
        const type = s.type;
        if (s.value) this.typed(s.value, valType(type));
        const l = this.declare(s.name, type);
        if (s.value) f.set(l.local, valType(type));
        return;
      }
      case "assign": {
        const l = this.lookup(s.name);
        this.typed(s.value, valType(l.type));
        f.set(l.local, valType(l.type));
        return;
      }
      case "store": {
        const a = access(s.dtype);
        this.address(s.buffer, s.dtype, s.index);
        this.expr(s.value);
        const t = typeOf(s.value);
        if (isFloatType(t) !== (s.dtype === "f32")) refuse(`storing ${t} into ${s.dtype}`);
        this.narrow(s.dtype);
        f.op(a.store, a.align, 0);
        return;
      }
      case "loop":
        return this.loop(s);
      case "while":
        this.control.push("block", "loop");
        f.op(opcode.BLOCK, opcode.VOID, opcode.LOOP, opcode.VOID);
        this.typed(s.cond, I32);
        f.op(opcode.I32_EQZ, opcode.BR_IF, 1);
        this.block(() => this.stmts(s.body));
        f.op(opcode.BR, 0, opcode.END, opcode.END);
        this.control.splice(-2);
        return;
      case "if":
        this.typed(s.cond, I32);
        this.control.push("if");
        f.op(opcode.IF, opcode.VOID);
        this.block(() => this.stmts(s.then));
        if (s.else.length) {
          f.op(opcode.ELSE);
          this.block(() => this.stmts(s.else));
        }
        f.op(opcode.END);
        this.control.pop();
        return;
      case "break": {
        const loop = this.control.lastIndexOf("loop");
        if (loop < 1) refuse("a break outside a loop");
        f.op(opcode.BR, this.control.length - loop);
        return;
      }
      case "fail": {
        // The first error wins: errors[0] is its code, then its values.
        f.get(`@${ERRORS_PARAM}`).op(opcode.I32_LOAD, 2, 0).op(opcode.I32_EQZ, opcode.IF, opcode.VOID);
        f.get(`@${ERRORS_PARAM}`).i32(s.code).op(opcode.I32_STORE, 2, 0);
        s.values.forEach((v, i) => {
          if (!isIntType(typeOf(v))) refuse("an error value that is not an integer");
          f.get(`@${ERRORS_PARAM}`);
          this.expr(v);
          f.op(opcode.I32_STORE, 2, 4 * (i + 1));
        });
        f.op(opcode.END);
        return;
      }
      default:
        refuse(`${s.kind} statements`);
    }
  }

  /** for (index = start; index < end; index += step): four lanes per step where it can. */
  private loop(s: Extract<Stmt, { kind: "loop" }>): void {
    const f = this.f;
    this.block(() => {
      const index = this.declare(s.index, "i32");
      const end = this.fresh(I32, "end");
      this.typed(s.start, I32);
      f.set(index.local);
      this.typed(s.end, I32);
      f.set(end);
      if (s.step === 1 && !this.vector) this.tryVector(s, index.local, end);
      this.counted(index.local, end, s.step, () => this.block(() => this.stmts(s.body)));
    });
  }

  /** while (index < end) { body; index += step }, the control stack kept for breaks. */
  private counted(index: string, end: string, step: number, body: () => void): void {
    const f = this.f;
    this.control.push("block", "loop");
    f.op(opcode.BLOCK, opcode.VOID, opcode.LOOP, opcode.VOID);
    f.get(index).get(end).op(opcode.I32_GE_S, opcode.BR_IF, 1);
    body();
    f.bump(index, step).op(opcode.BR, 0, opcode.END, opcode.END);
    this.control.splice(-2);
  }

  /**
   * The loop's vector form, for as many whole steps of four as fit, leaving `index` where the
   * scalar loop goes on; nothing if its body is not a vectorisable one.
   */
  private tryVector(s: Extract<Stmt, { kind: "loop" }>, index: string, end: string): void {
    const f = this.f;
    // Abandoning the vector form drops its code; the locals it declared stay, unused.
    const mark = f.code.length;
    const saved = { control: this.control.length, scopes: this.scopes.length };
    try {
      const accumulators = new Map<string, { op: Reduction; local: string; nan: string }>();
      const noteReduction = (acc: string, op: Reduction) => {
        const known = accumulators.get(acc);
        if (known && known.op !== op) refuse("an accumulator reduced two ways");
        if (!known) {
          const l = this.lookup(acc);
          if (!isFloatType(l.type)) refuse("an integer accumulator");
          accumulators.set(acc, { op, local: this.fresh(V128, `${acc}x4`), nan: this.fresh(V128, `${acc}nan`) });
        }
      };
      for (const st of s.body) {
        if (st.kind === "assign") noteReduction(st.name, reductionOf(st.name, st.value)?.op ?? refuse("an assignment that is not a reduction"));
        else if (st.kind === "if") {
          const r = conditionalReduction(st) ?? refuse("a conditional");
          noteReduction(r.acc, r.op);
        } else if (st.kind !== "let" && st.kind !== "store") refuse(`${st.kind} in a vector loop`);
      }
      const readWritten = this.checkAliasing(s.body);
      const last = this.fresh(I32, "last");
      f.get(end).i32(-3).op(opcode.I32_ADD).set(last);
      for (const { op, local, nan } of accumulators.values()) {
        f.op(...v128Splat(REDUCTION[op].identity)).set(local, V128);
        if (REDUCTION[op].nan) f.op(...I32X4_ZERO).set(nan, V128);
      }
      this.vector = { index: s.index, accumulators, readWritten };
      this.counted(index, last, 4, () => this.block(() => this.vectorBody(s.body)));
      this.vector = undefined;
      this.vectorLoops++;
      // Each accumulator: acc op ((l0 op l1) op (l2 op l3)), its lanes that met a NaN first made NaN.
      for (const [acc, { op, local, nan }] of accumulators) {
        const l = this.lookup(acc);
        const { scalar } = REDUCTION[op];
        if (REDUCTION[op].nan) f.op(...v128Splat(NaN)).get(local, V128).get(nan, V128).simd(opcode.V128_BITSELECT).set(local, V128);
        f.get(l.local, F32);
        f.get(local, V128).simd(opcode.F32X4_EXTRACT_LANE, 0).get(local, V128).simd(opcode.F32X4_EXTRACT_LANE, 1).op(scalar);
        f.get(local, V128).simd(opcode.F32X4_EXTRACT_LANE, 2).get(local, V128).simd(opcode.F32X4_EXTRACT_LANE, 3).op(scalar);
        f.op(scalar).op(scalar).set(l.local, F32);
      }
    } catch (e) {
      if (!(e instanceof Unsupported)) throw e;
      this.vector = undefined;
      f.code.length = mark;
      this.control.length = saved.control;
      this.scopes.length = saved.scopes;
    }
  }

  /**
   * A buffer stored and loaded in the same loop: only at the same offset (each lane its own
   * element, which the stores check: lanes at offsets that may coincide would read what an
   * earlier iteration writes). Returns the buffers both stored and loaded.
   */
  private checkAliasing(body: readonly Stmt[]): Set<string> {
    const stores = body.flatMap((s) => (s.kind === "store" ? [s] : []));
    const loads = expressionsOf(body).flatMap((e) => loadsIn(e));
    for (const st of stores) for (const ld of loads) if (ld.buffer === st.buffer && !same(ld.index, st.index)) refuse("a buffer read and written at other offsets");
    const stored = new Map<string, ScalarExpr>();
    for (const st of stores) {
      const other = stored.get(st.buffer);
      if (other && !same(other, st.index)) refuse("two stores to one buffer");
      stored.set(st.buffer, st.index);
    }
    return new Set(loads.filter((ld) => stored.has(ld.buffer)).map((ld) => ld.buffer));
  }

  // ---- vector code (inside tryVector) ----

  /** Whether `e` is the same in every lane: it reads no lane value. */
  private uniform(e: ScalarExpr): boolean {
    const v = this.vector!;
    if (e.kind === "load") return this.uniform(e.index);
    if (e.kind === "ref") return e.name !== v.index && !this.lookup(e.name).lanes && !v.accumulators.has(e.name);
    return children(e).every((c) => this.uniform(c));
  }

  /** The lane kind of a scalar type. */
  private kindOf(t: ScalarType): Lanes {
    if (isFloatType(t)) return "f";
    if (t === "bool") return "m";
    if (t === "i32") return "i";
    return refuse(`lanes of ${t}`);
  }

  /** Pushes `e` as a v128 of four lanes; returns their kind. */
  private vexpr(e: ScalarExpr): Lanes {
    const f = this.f;
    const v = this.vector!;
    if (this.uniform(e)) {
      const kind = this.kindOf(typeOf(e));
      if (kind === "m") f.i32(0);
      this.expr(e);
      if (kind === "m") f.op(opcode.I32_SUB);
      f.simd(kind === "f" ? opcode.F32X4_SPLAT : opcode.I32X4_SPLAT);
      return kind;
    }
    switch (e.kind) {
      case "ref": {
        if (e.name === v.index) {
          f.get(this.lookup(e.name).local).simd(opcode.I32X4_SPLAT).op(...LANE_OFFSETS).simd(opcode.I32X4_ADD);
          return "i";
        }
        const l = this.lookup(e.name);
        if (!l.lanes) refuse(`an accumulator read in its loop`);
        f.get(l.local, V128);
        return l.lanes;
      }
      case "load":
        return this.vload(e);
      case "unary": {
        const kind = this.vexpr(e.a);
        if (e.op === "not") {
          if (kind !== "m") refuse("not of a number");
          f.simd(opcode.V128_NOT);
          return "m";
        }
        f.simd(kind === "f" ? opcode.F32X4_NEG : kind === "i" ? opcode.I32X4_NEG : refuse("negating a bool"));
        return kind;
      }
      case "binary": {
        if (e.op === "<<" || e.op === ">>") {
          if (this.vexpr(e.a) !== "i" || !this.uniform(e.b)) refuse("a shift by lanes");
          this.typed(e.b, I32);
          f.simd(e.op === "<<" ? opcode.I32X4_SHL : opcode.I32X4_SHR_S);
          return "i";
        }
        // A bool beside an integer (b != 0) takes part as 0 or 1.
        const mixed = new Set([this.kindOf(typeOf(e.a)), this.kindOf(typeOf(e.b))]).size > 1;
        const operand = (x: ScalarExpr): Lanes => {
          const kind = this.vexpr(x);
          if (!mixed || kind !== "m") return kind;
          f.op(...I32X4_ONE).simd(opcode.V128_AND);
          return "i";
        };
        const a = operand(e.a);
        const b = operand(e.b);
        if (a !== b) refuse("operands of two lane kinds");
        if (a === "m" && e.op === "==") {
          f.simd(opcode.V128_XOR).simd(opcode.V128_NOT);
          return "m";
        }
        const table = a === "f" ? F32X4_BINARY : a === "i" ? I32X4_BINARY : MASK_BINARY;
        f.simd(table[e.op] ?? refuse(`the operator ${e.op} on lanes`));
        return COMPARISON.has(e.op) || a === "m" ? "m" : a;
      }
      case "call": {
        if (e.fn === "imul") {
          if (this.vexpr(e.args[0]) !== "i" || this.vexpr(e.args[1]) !== "i") refuse("imul of floats");
          f.simd(opcode.I32X4_MUL);
          return "i";
        }
        const native = NATIVE_MATH[e.fn];
        if (native) {
          for (const a of e.args) if (this.vexpr(a) !== "f") refuse(`${e.fn} of integer lanes`);
          f.simd(native[1]);
          return "f";
        }
        const locals = e.args.map((a) => {
          if (this.vexpr(a) !== "f") refuse(`${e.fn} of integer lanes`);
          const l = this.fresh(V128, "x");
          f.set(l, V128);
          return l;
        });
        if (e.fn === "isnan") {
          f.get(locals[0], V128).get(locals[0], V128).simd(opcode.F32X4_NE);
          return "m";
        }
        if (!F32X4_MATH.has(e.fn)) refuse(`the math function ${e.fn}`);
        const out = this.fresh(V128, e.fn);
        f32x4Math(f, e.fn, locals, out);
        f.get(out, V128);
        return "f";
      }
      case "select": {
        const a = this.vexpr(e.a);
        if (this.vexpr(e.b) !== a) refuse("select of two lane kinds");
        if (this.vexpr(e.cond) !== "m") refuse("select on a number");
        f.simd(opcode.V128_BITSELECT);
        return a;
      }
      case "cast": {
        const from = this.vexpr(e.a);
        const to = this.kindOf(e.to);
        if (from === to) return to;
        if (to === "f" && from === "i") return void f.simd(opcode.F32X4_CONVERT_I32X4_S), "f";
        // A mask as a number: 1 where set (the bits of 1.0f for floats).
        if (from === "m" && to !== "m") {
          f.op(...(to === "f" ? v128Splat(1) : I32X4_ONE)).simd(opcode.V128_AND);
          return to;
        }
        return refuse(`a cast of lanes to ${e.to}`);
      }
      case "round": {
        const from = this.vexpr(e.a);
        if ((e.dtype === "f32" && from === "f") || (e.dtype === "i32" && from === "i")) return from;
        return refuse(`rounding lanes to ${e.dtype}`);
      }
      default:
        return refuse(`${e.kind} in lanes`);
    }
  }

  /** How far an index moves per iteration of the vector loop: a constant number of elements, or undefined. */
  private stride(e: ScalarExpr): number | undefined {
    const v = this.vector!;
    if (this.uniform(e)) return 0;
    if (e.kind === "ref" && e.name === v.index) return 1;
    if (e.kind === "binary" && (e.op === "+" || e.op === "-")) {
      const a = this.stride(e.a);
      const b = this.stride(e.b);
      return a === undefined || b === undefined ? undefined : e.op === "+" ? a + b : a - b;
    }
    if (e.kind === "binary" && e.op === "*") {
      const a = this.stride(e.a);
      const b = this.stride(e.b);
      if (a !== undefined && e.b.kind === "literal") return a * e.b.value;
      if (b !== undefined && e.a.kind === "literal") return b * e.a.value;
    }
    return undefined;
  }

  /** The byte address of element `index` of `buffer` at lane `lane` (index read with the loop index plus lane). */
  private laneAddress(buffer: string, dtype: DType, index: ScalarExpr, lane: number): void {
    const v = this.vector!;
    const outer = this.lookup(v.index);
    const shifted = this.fresh(I32, "lane");
    this.f.get(outer.local).i32(lane).op(opcode.I32_ADD).set(shifted);
    this.vector = undefined;
    this.scopes.push(new Map([[v.index, { local: shifted, type: "i32" }]]));
    this.address(buffer, dtype, index);
    this.scopes.pop();
    this.vector = v;
  }

  private vload(e: Load): Lanes {
    const f = this.f;
    const kind = this.kindOf(e.dtype);
    const stride = this.stride(e.index);
    if (kind === "m") {
      // Four consecutive bytes, widened to i32 lanes, then compared with 0.
      if (stride !== 1) refuse("bools read from scattered bytes");
      this.scalarAddress(e.buffer, e.dtype, e.index);
      f.simd(opcode.V128_LOAD32_ZERO, 0, 0).simd(opcode.I16X8_EXTEND_LOW_I8X16_U).simd(opcode.I32X4_EXTEND_LOW_I16X8_U).op(...I32X4_ZERO).simd(opcode.I32X4_NE);
      return "m";
    }
    if (stride === 1) {
      this.scalarAddress(e.buffer, e.dtype, e.index);
      f.simd(opcode.V128_LOAD, 2, 0);
      return kind;
    }
    // Four lanes, each from its own element.
    f.op(...v128Splat(0));
    for (let lane = 0; lane < 4; lane++) {
      const v = this.fresh(V128, "gather");
      f.set(v, V128);
      this.laneAddress(e.buffer, e.dtype, e.index, lane);
      f.get(v, V128).simd(opcode.V128_LOAD32_LANE, 2, 0, lane);
    }
    return kind;
  }

  /** The address of the vector loop's first lane (the loop index as it is). */
  private scalarAddress(buffer: string, dtype: DType, index: ScalarExpr): void {
    const saved = this.vector;
    this.vector = undefined;
    this.address(buffer, dtype, index);
    this.vector = saved;
  }

  private vectorBody(list: readonly Stmt[]): void {
    const f = this.f;
    const v = this.vector!;
    for (const s of list) {
      switch (s.kind) {
        case "let": {
          if (!s.value) refuse("a lane local without a value");
          if (this.uniform(s.value)) {
            this.expr(s.value);
            f.set(this.declare(s.name, s.type).local, valType(s.type));
          } else {
            const kind = this.vexpr(s.value);
            f.set(this.declare(s.name, s.type, kind).local, V128);
          }
          break;
        }
        case "assign":
        case "if": {
          const r = s.kind === "assign" ? { acc: s.name, ...reductionOf(s.name, s.value)! } : conditionalReduction(s)!;
          const { op, local, nan } = v.accumulators.get(r.acc)!;
          if (this.vexpr(r.term) !== "f") refuse("an integer term of a float reduction");
          const term = this.fresh(V128, "term");
          f.set(term, V128);
          f.get(local, V128).get(term, V128).simd(REDUCTION[op].simd).set(local, V128);
          if (REDUCTION[op].nan) f.get(nan, V128).get(term, V128).get(term, V128).simd(opcode.F32X4_NE).simd(opcode.V128_OR).set(nan, V128);
          break;
        }
        case "store": {
          const kind = this.kindOf(s.dtype);
          const stride = this.stride(s.index);
          if (stride === 0) refuse("a store to one element from every lane");
          if (stride === undefined && v.readWritten.has(s.buffer)) refuse("a buffer read and written at offsets lanes may share");
          if (kind === "m") {
            // Lanes of 0 or 1, narrowed to four consecutive bytes.
            if (stride !== 1) refuse("bools written to scattered bytes");
            this.scalarAddress(s.buffer, s.dtype, s.index);
            if (this.vexpr(s.value) !== "m") refuse("a store of another lane kind");
            f.op(...I32X4_ONE).simd(opcode.V128_AND).op(...I32X4_ZERO).simd(opcode.I16X8_NARROW_I32X4_U).op(...I32X4_ZERO).simd(opcode.I8X16_NARROW_I16X8_U).simd(opcode.V128_STORE32_LANE, 0, 0, 0);
            break;
          }
          if (stride === 1) {
            this.scalarAddress(s.buffer, s.dtype, s.index);
            if (this.vexpr(s.value) !== kind) refuse("a store of another lane kind");
            f.simd(opcode.V128_STORE, 2, 0);
            break;
          }
          if (this.vexpr(s.value) !== kind) refuse("a store of another lane kind");
          const value = this.fresh(V128, "scatter");
          f.set(value, V128);
          for (let lane = 0; lane < 4; lane++) {
            this.laneAddress(s.buffer, s.dtype, s.index, lane);
            f.get(value, V128).simd(opcode.V128_STORE32_LANE, 2, 0, lane);
          }
          break;
        }
        default:
          refuse(`${s.kind} in a vector loop`);
      }
    }
  }
}

/** What the JS side needs of a compiled kernel to call it (template/wasm-kernels.js). */
export interface WasmKernel {
  name: string;
  body: Body;
  /** Whether the kernel reads its output buffer (then it is copied in before the call). */
  readsOut: boolean;
  /** How many of its loops run four iterations per step. */
  vectorLoops: number;
}

/** `kernel` as a wasm function over byte offsets of its buffers, its dims and its error record; undefined where the compiler cannot translate it exactly. */
export function wasmKernel(kernel: Kernel): WasmKernel | undefined {
  if (kernel.workgroupSize !== undefined) return undefined;
  try {
    const c = new Compiler(kernel);
    c.stmts(kernel.body);
    // The artifact's kernels share one module, which an invalid function would keep from
    // loading at all: a compiler fault stops the compile here, naming the kernel.
    if (!WebAssembly.validate(wasmModule([[kernel.name, c.f]]))) throw new Error(`internal error: the wasm kernel compiler made an invalid function of kernel ${kernel.name}`);
    const out = kernel.buffers[0].name;
    return { name: kernel.name, body: c.f, readsOut: expressionsOf(kernel.body).some((e) => loadsIn(e).some((l) => l.buffer === out)), vectorLoops: c.vectorLoops };
  } catch (e) {
    if (e instanceof Unsupported) return undefined;
    throw e;
  }
}
