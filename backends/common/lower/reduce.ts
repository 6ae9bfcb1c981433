// Lowering of reductions (sum, mean, max, min, with an optional fused prologue), softmax and
// a plain batched matmul (with an optional fused epilogue). Accumulators are f64 where the
// language has it, so a CPU target sums exactly as the interpreter does; the NaN rule of
// max and min is spelled out (a NaN anywhere makes the result NaN).
import type { Node } from "../../../compiler/ir/graph.ts";
import { reducedAxes } from "../../../compiler/ir/ops/reduce.ts";
import { logicalB } from "../../../compiler/ir/ops/matmul.ts";
import { bin, call, lit, round, type ScalarExpr, select } from "../../../compiler/ir/scalar.ts";
import { type Dim, type DType, isInteger, normalizeAxis, type TensorType } from "../../../compiler/ir/types.ts";
import { monomialOf } from "../../../common/size.ts";
import { int, product, type StmtBuilder, sum } from "../kernel/ir.ts";
import { broadcastStrides, coalesce, sizesOf, strides, times, ZERO } from "../layout.ts";
import type { Read } from "./injective.ts";
import { f64, type KernelBuilder } from "./kernel-builder.ts";

/** An elementwise computation a reduction applies to each value before accumulating it. */
export interface Prologue {
  /** Read with broadcast strides against the reduced tensor's shape. */
  reads: Read[];
  /** The value at one element (rounded to the reduced tensor's dtype), given the loaded reads; may add statements to `b`. */
  value(b: StmtBuilder, loaded: ScalarExpr[]): ScalarExpr;
}

const NAN = f64(NaN);
const STEP: Record<string, { init: number; step: (acc: ScalarExpr, v: ScalarExpr) => ScalarExpr }> = {
  sum: { init: 0, step: (acc, v) => bin("+", acc, v) },
  mean: { init: 0, step: (acc, v) => bin("+", acc, v) },
  // On a tie (-0 and +0) the later element wins, as the interpreter's step (acc > v ? acc : v) says.
  max: { init: -Infinity, step: (acc, v) => select(bin("||", call("isnan", acc), call("isnan", v)), NAN, select(bin(">", acc, v), acc, v)) },
  min: { init: Infinity, step: (acc, v) => select(bin("||", call("isnan", acc), call("isnan", v)), NAN, select(bin("<", acc, v), acc, v)) },
};

/**
 * `node` reduces a tensor of type `t`: `in0`, or what the prologue computes at each of its
 * elements. A thread per output row walks the reduced axes in order; where the kernel is
 * cooperative (cooperative.ts; only when the reduced axes coalesce into one), a workgroup per
 * row, each thread adding every workgroup-size-th element, then the threads' results combined.
 */
export function lowerReduction(k: KernelBuilder, node: Node, t: TensorType, prologue?: Prologue): void {
  const axes = reducedAxes(node.op, t, node.attrs.axes as number[]);
  const reads = prologue ? prologue.reads : [{ buffer: "in0", type: t }];
  const readStrides = reads.map((r) => broadcastStrides(r.type.shape, t.shape));
  const keptAxes = t.shape.map((_, i) => i).filter((i) => !axes.includes(i));
  const keptSizes = keptAxes.map((i) => monomialOf([t.shape[i]]));
  const kept = coalesce(keptSizes, [{ strides: strides(keptAxes.map((i) => t.shape[i])) }, ...readStrides.map((own) => ({ strides: keptAxes.map((i) => own[i]) }))]);
  const reduced = coalesce(axes.map((i) => monomialOf([t.shape[i]])), readStrides.map((own) => ({ strides: axes.map((i) => own[i]) })));
  const scope = reduced.sizes.length === 1 ? k.rowScope(kept.sizes.reduce(times, monomialOf([])), reduced.sizes[0]) : "serial";
  const { init, step } = STEP[node.op];
  k.grid = kept.sizes;
  k.nest(kept.sizes, kept.strides.map((s) => ({ base: int(0), strides: s })), "grid", ([o, ...bases]) => {
    const acc = k.b.var("acc", "f64", f64(init));
    const add = (at: ScalarExpr[]) => {
      const loaded = reads.map((r, i) => k.b.let(`v${i}`, r.type.dtype, { kind: "load", buffer: r.buffer, dtype: r.type.dtype, index: at[i] }));
      const v = prologue ? k.b.let("v", t.dtype, prologue.value(k.b, loaded)) : loaded[0];
      k.b.assign("acc", step(acc, v));
    };
    if (scope === "workgroup") k.b.loop(k.b.fresh("r"), k.size(reduced.sizes[0]), scope, (r) => add(reduced.strides.map((s, i) => sum([bases[i], product(r, k.size(s[0]))]))));
    else k.nest(reduced.sizes, reduced.strides.map((s, i) => ({ base: bases[i], strides: s })), "serial", add, "r");
    const total = k.combine("total", node.op === "max" || node.op === "min" ? node.op : "sum", acc);
    const count = k.size(monomialOf(axes.map((i) => t.shape[i])));
    k.once(() => k.b.store("out", node.type.dtype, o, node.op === "mean" ? bin("/", total, { kind: "cast", to: "f64", a: count }) : total));
  });
}

/**
 * Softmax along one axis, as the interpreter's softmaxRow computes it: max, sum of exp, then
 * exp * (1 / sum); an all -inf row gives 0. Each of the three walks over a row is a thread's
 * serial loop, or, in a cooperative kernel, a workgroup loop whose max and sum are combined.
 */
export function lowerSoftmax(k: KernelBuilder, node: Node): void {
  const shape = node.type.shape;
  const dtype = node.type.dtype;
  const axis = normalizeAxis(node.attrs.axis as number, shape.length);
  const len = k.size(monomialOf([shape[axis]]));
  const inner = k.size(monomialOf(shape.slice(axis + 1)));
  const outer = monomialOf(shape.slice(0, axis));
  const scope = k.rowScope(times(outer, monomialOf(shape.slice(axis + 1))), monomialOf([shape[axis]]));
  k.grid = [outer, monomialOf(shape.slice(axis + 1))];
  const b = k.b;
  b.loop("o", k.size(outer), "grid", (o) =>
    b.loop("r", inner, "grid", (r) => {
      const base = b.let("base", "i32", sum([product(product(o, len), inner), r]));
      const at = (i: ScalarExpr) => sum([base, product(i, inner)]);
      const x = (i: ScalarExpr): ScalarExpr => ({ kind: "load", buffer: "in0", dtype, index: at(i) });
      const partMax = b.var("partMax", "f64", f64(-Infinity));
      b.loop("i", len, scope, (i) => {
        const v = b.let("v", dtype, x(i));
        b.if(bin("||", bin(">", v, partMax), call("isnan", v)), () => b.assign("partMax", v));
      });
      const max = k.combine("rowMax", "max", partMax);
      const partSum = b.var("partSum", "f64", f64(0));
      b.loop("i", len, scope, (i) => b.assign("partSum", bin("+", partSum, call("exp", bin("-", x(i), max)))));
      const inv = b.let("inv", "f64", bin("/", f64(1), k.combine("rowSum", "sum", partSum)));
      // A select, not a branch around the walks: every thread of a cooperative kernel must reach its combines.
      b.loop("i", len, scope, (i) => b.store("out", dtype, at(i), select(bin("==", max, f64(-Infinity)), lit(0, dtype), bin("*", call("exp", bin("-", x(i), max)), inv))));
    }),
  );
}

/** An elementwise computation a matmul applies to each result before storing it. */
export interface Epilogue {
  /** Read with broadcast strides against the matmul's result shape. */
  reads: Read[];
  /** The dtype stored. */
  dtype: DType;
  /** The value to store, given the sum rounded to the matmul's dtype and the loaded reads; may add statements to `b`. */
  value(b: StmtBuilder, product: ScalarExpr, loaded: ScalarExpr[]): ScalarExpr;
}

/**
 * The operand shapes of a matmul with 1-D operands made 2-D, b's as the product reads it
 * ([..., k, m], whether or not it is stored transposed), its batch shape, and whether b is
 * stored transposed ([..., m, k]: column j of the product is row j of b).
 */
export function matmulShapes(node: Node, a: TensorType, b: TensorType): { as: Dim[]; bs: Dim[]; batch: Dim[]; transposedB: boolean } {
  const as: Dim[] = a.shape.length === 1 ? [1, a.shape[0]] : a.shape;
  const bs = logicalB(b.shape, node.attrs);
  const batch = node.type.shape.slice(0, node.type.shape.length - (a.shape.length > 1 ? 1 : 0) - (b.shape.length > 1 ? 1 : 0));
  return { as, bs, batch, transposedB: node.attrs.transpose_b === true };
}

/**
 * Batched matmul: one grid iteration per output element, a serial sum over k in increasing
 * order (float64 where the language has it; i32 wraps modulo 2^32).
 */
export function lowerMatmul(k: KernelBuilder, node: Node, [a, bt]: TensorType[], inputs: [string, string] = ["in0", "in1"], epilogue?: Epilogue): void {
  const { as, bs, batch, transposedB } = matmulShapes(node, a, bt);
  const n = monomialOf([as[as.length - 2]]);
  const depth = monomialOf([as[as.length - 1]]);
  const m = monomialOf([bs[bs.length - 1]]);
  const out = node.type;
  // Walks over (batch..., row, col): out, a, b and each epilogue read.
  const aStrides = [...broadcastStrides(as.slice(0, -2), batch).map((s) => times(times(s, n), depth)), depth, ZERO];
  const bStrides = [...broadcastStrides(bs.slice(0, -2), batch).map((s) => times(times(s, depth), m)), ZERO, transposedB ? depth : monomialOf([])];
  const epilogueStrides = (epilogue?.reads ?? []).map((r) => {
    const s = broadcastStrides(r.type.shape, out.shape);
    return [...s.slice(0, batch.length), a.shape.length > 1 ? s[batch.length] : ZERO, bt.shape.length > 1 ? s[s.length - 1] : ZERO];
  });
  const sizes = [...sizesOf(batch), n, m];
  const flat = coalesce(sizes, [{ strides: strides([...batch, as[as.length - 2], bs[bs.length - 1]]) }, { strides: aStrides }, { strides: bStrides }, ...epilogueStrides.map((s) => ({ strides: s }))]);
  k.grid = flat.sizes;
  const integer = isInteger(out.dtype);
  k.nest(flat.sizes, flat.strides.map((s) => ({ base: int(0), strides: s })), "grid", ([o, aRow, bCol, ...at]) => {
    const acc = k.b.var("acc", integer ? "i32" : "f64", integer ? int(0) : f64(0));
    k.b.loop("p", k.size(depth), "serial", (p) => {
      const x: ScalarExpr = { kind: "load", buffer: inputs[0], dtype: a.dtype, index: sum([aRow, p]) };
      const y: ScalarExpr = { kind: "load", buffer: inputs[1], dtype: bt.dtype, index: transposedB ? sum([bCol, p]) : sum([bCol, product(p, k.size(m))]) };
      k.b.assign("acc", integer ? round("i32", bin("+", acc, call("imul", x, y))) : bin("+", acc, bin("*", x, y)));
    });
    if (!epilogue) return k.b.store("out", out.dtype, o, acc);
    const loaded = epilogue.reads.map((r, i) => k.b.let(`v${i}`, r.type.dtype, { kind: "load", buffer: r.buffer, dtype: r.type.dtype, index: at[i] }));
    k.b.store("out", epilogue.dtype, o, epilogue.value(k.b, k.b.let("product", out.dtype, round(out.dtype, acc)), loaded));
  });
}

