// Kernel templates of the JS backend: each kernel of the plan becomes one function
// `function kN(B, D)` over typed arrays B (indexed by buffer id) and bound dims D. Strides are
// compile-time numbers where shapes are static; loops walk offsets incrementally.
import type { Node } from "../../compiler/ir/graph.ts";
import { softmaxRow } from "../../compiler/ir/ops/nn.ts";
import { sliceRange, transposePerm } from "../../compiler/ir/ops/shape.ts";
import { reducedAxes } from "../../compiler/ir/ops/reduce.ts";
import type { Kernel, KernelPlan } from "../../compiler/schedule/index.ts";
import { formatMonomial, type Monomial, monomialOf } from "../../compiler/schedule/size.ts";
import { type Dim, type DType, normalizeAxis, type TensorType } from "../../compiler/ir/types.ts";
import { ref, render, type ScalarExpr, scalarOp, functionsUsed } from "../common/expr.ts";
import { broadcastStrides, coalesce, scale, sizesOf, strides, ZERO } from "../common/layout.ts";
import { jsSpelling, loadExpr, storeExpr } from "./spelling.ts";
import { attentionHelperSource, flashAttention } from "./attention.ts";
import { fused } from "./fused.ts";

/** Writes one kernel function; collects the dim variables and helpers it uses. */
export class KernelWriter {
  private readonly lines: string[] = [];
  private readonly hoisted = new Map<string, string>();
  private readonly symbols = new Map<string, string>();
  private indent = 1;

  constructor(readonly helpers: Set<string>) {}

  /** A JS expression for a size: a literal, or a hoisted constant over the bound dims. */
  size(m: Monomial): string {
    if (m.symbols.length === 0) return String(m.coefficient);
    const key = formatMonomial(m);
    let name = this.hoisted.get(key);
    if (!name) {
      name = `n${this.hoisted.size}`;
      const factors = m.symbols.map((s) => this.symbol(s));
      if (m.coefficient !== 1) factors.unshift(String(m.coefficient));
      this.hoisted.set(key, name);
      this.prelude.push(`const ${name} = ${factors.join(" * ")};`);
    }
    return name;
  }

  private readonly prelude: string[] = [];

  private symbol(s: string): string {
    let v = this.symbols.get(s);
    if (!v) {
      v = `s${this.symbols.size}`;
      this.symbols.set(s, v);
      // Dim names come from model files: reach them through a JSON string, never as code.
      this.prelude.push(`const ${v} = D[${JSON.stringify(s)}];`);
    }
    return v;
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

  finish(name: string, buffers: string[]): string {
    return [`function ${name}(B, D) {`, ...buffers.map((b) => `  ${b}`), ...this.prelude.map((p) => `  ${p}`), ...this.lines, "}"].join("\n");
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
      const vars = accesses.map((a, k) => `${tag}${k}_${d}`);
      const inits = accesses.map((a, k) => `${vars[k]} = ${d === 0 ? a.offset : `${tag}${k}_${d - 1}`}`);
      const steps = accesses.flatMap((a, k) => (a.strides[d].coefficient === 0 ? [] : [`${vars[k]} += ${this.size(a.strides[d])}`]));
      this.open(`for (let i${tag}${d} = 0, ${inits.join(", ")}; i${tag}${d} < ${this.size(size)}; i${tag}${d}++${steps.map((s) => `, ${s}`).join("")}) {`);
    });
    body(accesses.map((_, k) => `${tag}${k}_${sizes.length - 1}`));
    for (let d = 0; d < sizes.length; d++) this.close();
  }
}

interface KernelContext {
  plan: KernelPlan;
  kernel: Kernel;
  helpers: Set<string>;
}

const ELEMENTWISE = new Set(["add", "sub", "mul", "div", "pow", "maximum", "minimum", "neg", "exp", "log", "sqrt", "rsqrt", "abs", "tanh", "cos", "sin", "sigmoid", "relu", "gelu", "gelu_tanh", "silu", "eq", "ne", "lt", "le", "gt", "ge", "where", "cast", "quantize", "dequantize"]);

/** The ops this backend implements directly; everything else must be decomposed first. */
export const JS_OPS = new Set([...ELEMENTWISE, "iota", "numel", "sum", "mean", "max", "min", "softmax", "transpose", "slice", "broadcast", "concat", "gather", "matmul", "flash_attention", "flash_diffattn", "fused"]);

export function emitKernel(ctx: KernelContext): string {
  const { kernel, plan } = ctx;
  const node = kernel.nodes[kernel.nodes.length - 1];
  const w = new KernelWriter(ctx.helpers);
  const operandTypes = node.operands.map((o) => plan.graph.nodes[o].type);
  const buffers = [`const out = B[${kernel.output}];`, ...kernel.inputs.map((b, i) => `const in${i} = B[${b}];`)];
  if (ELEMENTWISE.has(node.op)) elementwise(w, node, operandTypes);
  else if (node.op === "matmul") matmul(w, node, operandTypes);
  else if (["sum", "mean", "max", "min"].includes(node.op)) reduction(w, node, operandTypes[0]);
  else if (node.op === "softmax") softmax(w, node);
  else if (node.op === "transpose" || node.op === "slice" || node.op === "broadcast") stridedCopy(w, node, operandTypes[0]);
  else if (node.op === "concat") concat(w, node, operandTypes);
  else if (node.op === "gather") gather(w, node, operandTypes);
  else if (node.op === "iota") iota(w, node);
  else if (node.op === "flash_attention" || node.op === "flash_diffattn") flashAttention(w, node, operandTypes);
  else if (node.op === "fused") fused(w, node, operandTypes);
  else if (node.op === "numel") w.line(`out[0] = ${w.size(monomialOf(node.attrs.shape as Dim[]))};`);
  else throw new Error(`the JS backend has no kernel for ${node.op}; decompose it first`);
  return w.finish(kernel.name, buffers);
}

function elementwise(w: KernelWriter, node: Node, types: TensorType[]): void {
  const operandDtype = node.op === "where" ? types[1].dtype : types[0].dtype;
  const expr = scalarOp(node.op, types.map((_, i) => ref(`v${i}`)), operandDtype, node.attrs);
  useHelpers(w, expr);
  elementwiseLoop(w, node.type, types, () => render(expr, jsSpelling));
}

/** Registers the helper functions an expression calls beyond JS's own Math. */
export function useHelpers(w: KernelWriter, expr: ScalarExpr): void {
  for (const fn of functionsUsed(expr)) if (!["exp", "log", "sqrt", "abs", "tanh", "cos", "sin", "pow", "imul", "max", "min", "isnan", "trunc", "idiv"].includes(fn)) w.helpers.add(fn);
}

/**
 * One flat loop over `out`: loads operand i (`in${i}`, broadcast against `out`) into `v${i}`,
 * then stores what `value` returns for them; `value` may first write lines of its own.
 */
export function elementwiseLoop(w: KernelWriter, out: TensorType, types: TensorType[], value: (loaded: string[]) => string): void {
  const accesses = [{ strides: strides(out.shape) }, ...types.map((t) => ({ strides: broadcastStrides(t.shape, out.shape) }))];
  const flat = coalesce(sizesOf(out.shape), accesses);
  w.loops(flat.sizes, flat.strides.map((s) => ({ offset: "0", strides: s })), ([o, ...ins]) => {
    ins.forEach((idx, i) => w.line(`const v${i} = ${loadExpr(types[i].dtype, `in${i}[${idx}]`, w.helpers)};`));
    w.line(`out[${o}] = ${storeExpr(out.dtype, value(ins.map((_, i) => `v${i}`)), w.helpers)};`);
  });
}

/** Tensors a fused computation reads beside the template's own operands: the kernel input's name and its type. */
export interface FusedRead {
  name: string;
  type: TensorType;
}

/** An elementwise computation a reduction applies to each value before accumulating it. */
export interface Prologue {
  /** Read with broadcast strides against the reduced tensor's shape. */
  reads: FusedRead[];
  /** Writes the computation and returns the value (rounded to the reduced tensor's dtype), given the loaded reads. */
  value(loaded: string[]): string;
}

/** An elementwise computation a matmul applies to each result before storing it. */
export interface Epilogue {
  /** Read with broadcast strides against the matmul's result shape. */
  reads: FusedRead[];
  /** The dtype stored. */
  dtype: DType;
  /** Writes the computation and returns the value to store, given the float64 sum and the loaded reads. */
  value(sum: string, loaded: string[]): string;
}

/** transpose, slice and broadcast: out[i] = in[offset + i . strides]. */
function stridedCopy(w: KernelWriter, node: Node, t: TensorType): void {
  const out = node.type;
  let inStrides: Monomial[];
  let offset: Monomial = ZERO;
  if (node.op === "transpose") {
    const own = strides(t.shape);
    inStrides = transposePerm(t.shape.length, node.attrs.perm as number[]).map((p) => own[p]);
  } else if (node.op === "slice") {
    const axis = normalizeAxis(node.attrs.axis as number, t.shape.length);
    const own = strides(t.shape);
    const { start } = sliceRange(t.shape[axis] as number, node.attrs.start as number, node.attrs.end as number, node.attrs.step as number);
    offset = scale(own[axis], start);
    inStrides = own.map((s, i) => (i === axis ? scale(s, node.attrs.step as number) : s));
  } else {
    inStrides = broadcastStrides(t.shape, out.shape);
  }
  const flat = coalesce(sizesOf(out.shape), [{ strides: strides(out.shape) }, { strides: inStrides }]);
  w.loops(flat.sizes, [{ offset: "0", strides: flat.strides[0] }, { offset: w.size(offset), strides: flat.strides[1] }], ([o, i]) => w.line(`out[${o}] = in0[${i}];`));
}

function concat(w: KernelWriter, node: Node, types: TensorType[]): void {
  const out = node.type;
  const axis = normalizeAxis(node.attrs.axis as number, out.shape.length);
  const outStrides = strides(out.shape);
  let start = 0;
  types.forEach((t, i) => {
    const flat = coalesce(sizesOf(t.shape), [{ strides: outStrides }, { strides: strides(t.shape) }]);
    w.loops(flat.sizes, [{ offset: w.size(scale(outStrides[axis], start)), strides: flat.strides[0] }, { offset: "0", strides: flat.strides[1] }], ([o, x]) => w.line(`out[${o}] = in${i}[${x}];`), `c${i}_`);
    start += t.shape[axis] as number;
  });
}

/** `node` reduces a tensor of type `t`: `in0`, or what the prologue computes at each of its elements. */
export function reduction(w: KernelWriter, node: Node, t: TensorType, prologue?: Prologue): void {
  const axes = reducedAxes(node.op, t, node.attrs.axes as number[]);
  const reads = prologue ? prologue.reads.map((r) => broadcastStrides(r.type.shape, t.shape)) : [strides(t.shape)];
  const keptAxes = t.shape.map((_, i) => i).filter((i) => !axes.includes(i));
  const kept = coalesce(keptAxes.map((i) => monomialOf([t.shape[i]])), reads.map((own) => ({ strides: keptAxes.map((i) => own[i]) })));
  const reduced = coalesce(axes.map((i) => monomialOf([t.shape[i]])), reads.map((own) => ({ strides: axes.map((i) => own[i]) })));
  const count = monomialOf(axes.map((i) => t.shape[i]));
  const [init, step, finish] = {
    sum: ["0", "acc += v;", "acc"],
    mean: ["0", "acc += v;", `acc / ${w.size(count)}`],
    max: ["-Infinity", "acc = acc !== acc || v !== v ? NaN : v > acc ? v : acc;", "acc"],
    min: ["Infinity", "acc = acc !== acc || v !== v ? NaN : v < acc ? v : acc;", "acc"],
  }[node.op as "sum"]!;
  w.line("let o = 0;");
  w.loops(kept.sizes, kept.strides.map((s) => ({ offset: "0", strides: s })), (bases) => {
    w.line(`let acc = ${init};`);
    w.loops(reduced.sizes, reduced.strides.map((s, k) => ({ offset: bases[k], strides: s })), (at) => {
      if (!prologue) w.line(`const v = ${loadExpr(t.dtype, `in0[${at[0]}]`, w.helpers)};`);
      else {
        const loaded = prologue.reads.map((r, k) => {
          w.line(`const v${k} = ${loadExpr(r.type.dtype, `${r.name}[${at[k]}]`, w.helpers)};`);
          return `v${k}`;
        });
        w.line(`const v = ${prologue.value(loaded)};`);
      }
      w.line(step);
    }, "r");
    w.line(`out[o++] = ${storeExpr(node.type.dtype, finish, w.helpers)};`);
  });
}

/** Softmax rows with the interpreter's own row routine, so the arithmetic is the same. */
function softmax(w: KernelWriter, node: Node): void {
  const shape = node.type.shape;
  const axis = normalizeAxis(node.attrs.axis as number, shape.length);
  const len = w.size(monomialOf([shape[axis]]));
  const inner = w.size(monomialOf(shape.slice(axis + 1)));
  const outer = w.size(monomialOf(shape.slice(0, axis)));
  w.helpers.add("softmaxRow");
  const dtype = node.type.dtype;
  w.line(`const row = new Float64Array(${len});`);
  w.open(`for (let o = 0; o < ${outer}; o++) {`);
  w.open(`for (let r = 0; r < ${inner}; r++) {`);
  w.line(`const base = o * ${len} * ${inner} + r;`);
  w.line(`for (let i = 0; i < ${len}; i++) row[i] = ${loadExpr(dtype, `in0[base + i * ${inner}]`, w.helpers)};`);
  w.line(`softmaxRow(row, ${len});`);
  w.line(`for (let i = 0; i < ${len}; i++) out[base + i * ${inner}] = ${storeExpr(dtype, "row[i]", w.helpers)};`);
  w.close();
  w.close();
}

function gather(w: KernelWriter, node: Node, [table, indices]: TensorType[]): void {
  const axis = normalizeAxis(node.attrs.axis as number, table.shape.length);
  const outer = w.size(monomialOf(table.shape.slice(0, axis)));
  const size = w.size(monomialOf([table.shape[axis]]));
  const inner = w.size(monomialOf(table.shape.slice(axis + 1)));
  const count = w.size(monomialOf(indices.shape));
  w.line("let o = 0;");
  w.open(`for (let i = 0; i < ${outer}; i++) {`);
  w.open(`for (let j = 0; j < ${count}; j++) {`);
  w.line("const k = in1[j];");
  w.line(`if (!(k >= 0 && k < ${size})) throw new RangeError("gather: index " + k + " is out of range for an axis of size " + ${size});`);
  w.line(`const src = (i * ${size} + k) * ${inner};`);
  w.line(`for (let e = 0; e < ${inner}; e++) out[o++] = in0[src + e];`);
  w.close();
  w.close();
}

function iota(w: KernelWriter, node: Node): void {
  const shape = node.type.shape;
  const axis = normalizeAxis(node.attrs.axis as number, shape.length);
  const stride = w.size(monomialOf(shape.slice(axis + 1)));
  const size = w.size(monomialOf([shape[axis]]));
  const total = w.size(monomialOf(shape));
  w.line(`for (let i = 0; i < ${total}; i++) out[i] = Math.floor(i / ${stride}) % ${size};`);
}

/**
 * Batched matmul. Per batch, b is packed transposed (so both operands run contiguously along
 * k), then 4x2 tiles of the output accumulate in eight locals: V8 keeps them in registers,
 * which makes this about 4x faster than an i-k-j loop over memory. Each sum runs over k in
 * increasing order in float64, as the interpreter's does, so results match it bit for bit.
 * `inputs` name the kernel inputs holding a and b; an epilogue, if any, turns each sum into
 * the value stored.
 */
export function matmul(w: KernelWriter, node: Node, [a, b]: TensorType[], inputs: [string, string] = ["in0", "in1"], epilogue?: Epilogue): void {
  const as: Dim[] = a.shape.length === 1 ? [1, a.shape[0]] : a.shape;
  const bs: Dim[] = b.shape.length === 1 ? [b.shape[0], 1] : b.shape;
  const n = w.size(monomialOf([as[as.length - 2]]));
  const k = w.size(monomialOf([as[as.length - 1]]));
  const m = w.size(monomialOf([bs[bs.length - 1]]));
  const batchShape = node.type.shape.slice(0, node.type.shape.length - (a.shape.length > 1 ? 1 : 0) - (b.shape.length > 1 ? 1 : 0));
  // The epilogue's reads, by batch, row and column of the result (a 1-D operand has no row or column axis).
  const reads = (epilogue?.reads ?? []).map((r) => {
    const s = broadcastStrides(r.type.shape, node.type.shape);
    return { batch: s.slice(0, batchShape.length), row: a.shape.length > 1 ? s[batchShape.length] : ZERO, col: b.shape.length > 1 ? s[s.length - 1] : ZERO };
  });
  const flat = coalesce(sizesOf(batchShape), [{ strides: strides(batchShape) }, { strides: broadcastStrides(as.slice(0, -2), batchShape) }, { strides: broadcastStrides(bs.slice(0, -2), batchShape) }, ...reads.map((r) => ({ strides: r.batch }))]);
  const A = (i: string) => loadExpr(a.dtype, `${inputs[0]}[${i}]`, w.helpers);
  const store = (v: string) => storeExpr(node.type.dtype, v, w.helpers);
  // i32 sums of products wrap modulo 2^32 (C, WGSL, CUDA); floats accumulate in float64.
  const mac = (c: string, x: string, y: string) => (node.type.dtype === "i32" ? `${c} = (${c} + Math.imul(${x}, ${y})) | 0;` : `${c} += ${x} * ${y};`);
  // Integers stay exact in float64; floats (16-bit ones decoded) fit float32.
  w.line(`const bt = new ${a.dtype === "i32" || a.dtype === "i8" || a.dtype === "u8" ? "Float64Array" : "Float32Array"}(${k} * ${m});`);
  w.loops(flat.sizes, flat.strides.map((s) => ({ offset: "0", strides: s })), ([ob, ab, bb, ...eb]) => {
    /** `index * stride` as a term of an offset, or nothing for a zero stride. */
    const term = (index: string, stride: Monomial): string[] => {
      if (stride.coefficient === 0) return [];
      if (stride.coefficient === 1 && stride.symbols.length === 0) return [index];
      return [`${index.includes(" ") ? `(${index})` : index} * ${w.size(stride)}`];
    };
    /** With an epilogue, one block per result: the reads at (row, col), the epilogue, the store. */
    const epilogueStore = (sum: string, row: string, col: string, offset: string) => {
      w.open("{");
      const loaded = epilogue!.reads.map((r, i) => {
        const at = [eb[i], ...term(row, reads[i].row), ...term(col, reads[i].col)].join(" + ");
        w.line(`const v${i} = ${loadExpr(r.type.dtype, `${r.name}[${at}]`, w.helpers)};`);
        return `v${i}`;
      });
      w.line(`out[${offset}] = ${storeExpr(epilogue!.dtype, epilogue!.value(sum, loaded), w.helpers)};`);
      w.close();
    };
    w.line(`const oBase = ${ob} * ${n} * ${m}, aBase = ${ab} * ${n} * ${k}, bBase = ${bb} * ${k} * ${m};`);
    w.line(`for (let p = 0; p < ${k}; p++) for (let j = 0; j < ${m}; j++) bt[j * ${k} + p] = ${loadExpr(b.dtype, `${inputs[1]}[bBase + p * ${m} + j]`, w.helpers)};`);
    w.line("let i = 0;");
    w.open(`for (; i + 4 <= ${n}; i += 4) {`);
    w.line(`const a0 = aBase + i * ${k}, a1 = a0 + ${k}, a2 = a1 + ${k}, a3 = a2 + ${k};`);
    w.line("let j = 0;");
    w.open(`for (; j + 2 <= ${m}; j += 2) {`);
    w.line(`const b0 = j * ${k}, b1 = b0 + ${k};`);
    w.line("let c00 = 0, c01 = 0, c10 = 0, c11 = 0, c20 = 0, c21 = 0, c30 = 0, c31 = 0;");
    w.open(`for (let p = 0; p < ${k}; p++) {`);
    w.line("const y0 = bt[b0 + p], y1 = bt[b1 + p];");
    w.line(`const x0 = ${A("a0 + p")}, x1 = ${A("a1 + p")}, x2 = ${A("a2 + p")}, x3 = ${A("a3 + p")};`);
    w.line([mac("c00", "x0", "y0"), mac("c01", "x0", "y1"), mac("c10", "x1", "y0"), mac("c11", "x1", "y1")].join(" "));
    w.line([mac("c20", "x2", "y0"), mac("c21", "x2", "y1"), mac("c30", "x3", "y0"), mac("c31", "x3", "y1")].join(" "));
    w.close();
    w.line(`const o = oBase + i * ${m} + j;`);
    if (epilogue) {
      for (const r of [0, 1, 2, 3])
        for (const c of [0, 1]) epilogueStore(`c${r}${c}`, r ? `i + ${r}` : "i", c ? "j + 1" : "j", ["o", ...(r === 0 ? [] : [r === 1 ? m : `${r} * ${m}`]), ...(c ? ["1"] : [])].join(" + "));
    } else {
      w.line(`out[o] = ${store("c00")}; out[o + 1] = ${store("c01")}; out[o + ${m}] = ${store("c10")}; out[o + ${m} + 1] = ${store("c11")};`);
      w.line(`out[o + 2 * ${m}] = ${store("c20")}; out[o + 2 * ${m} + 1] = ${store("c21")}; out[o + 3 * ${m}] = ${store("c30")}; out[o + 3 * ${m} + 1] = ${store("c31")};`);
    }
    w.close();
    // An odd last column: four single dot products.
    w.open(`if (j < ${m}) for (let r = 0; r < 4; r++) {`);
    w.line(`const ar = aBase + (i + r) * ${k}, b0 = j * ${k};`);
    w.line("let c = 0;");
    w.line(`for (let p = 0; p < ${k}; p++) ${mac("c", A("ar + p"), "bt[b0 + p]")}`);
    if (epilogue) epilogueStore("c", "i + r", "j", `oBase + (i + r) * ${m} + j`);
    else w.line(`out[oBase + (i + r) * ${m} + j] = ${store("c")};`);
    w.close();
    w.close();
    // The last rows (fewer than four): one dot product per output.
    w.open(`for (; i < ${n}; i++) for (let j = 0; j < ${m}; j++) {`);
    w.line(`const ar = aBase + i * ${k}, b0 = j * ${k};`);
    w.line("let c = 0;");
    w.line(`for (let p = 0; p < ${k}; p++) ${mac("c", A("ar + p"), "bt[b0 + p]")}`);
    if (epilogue) epilogueStore("c", "i", "j", `oBase + i * ${m} + j`);
    else w.line(`out[oBase + i * ${m} + j] = ${store("c")};`);
    w.close();
  }, "b");
}

/** Source of helpers referenced by kernels, beyond the spelling helpers. */
export function kernelHelperSource(name: string): string | undefined {
  if (name === "softmaxRow") return softmaxRow.toString();
  return attentionHelperSource(name);
}
