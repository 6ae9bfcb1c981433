// Lowering of the ops where each output element is computed from one element of each
// operand: elementwise ops and fused elementwise chains (broadcast operands), strided copies
// (transpose, slice, broadcast), concat, gather, iota and numel. Each is one nest of grid
// loops over the output, coalesced where the accesses allow.
import type { Node } from "../../../compiler/ir/graph.ts";
import { sliceRange, transposePerm } from "../../../compiler/ir/ops/shape.ts";
import { bin, call, cast, type ScalarExpr } from "../../../compiler/ir/scalar.ts";
import { type Dim, normalizeAxis, type TensorType } from "../../../compiler/ir/types.ts";
import { type Monomial, monomialOf } from "../../../common/size.ts";
import { int, product, sum } from "../kernel/ir.ts";
import { broadcastStrides, coalesce, scale, sizesOf, strides, ZERO } from "../layout.ts";
import { elementValue } from "./chain.ts";
import type { KernelBuilder } from "./kernel-builder.ts";

/** A tensor an elementwise loop reads: its kernel buffer and type (broadcast against the output). */
export interface Read {
  buffer: string;
  type: TensorType;
}

/**
 * One loop nest over `out`'s elements: loads each read (broadcast) into a local, then stores
 * what `value` returns for them (value may add statements of its own first).
 */
export function elementwiseLoop(k: KernelBuilder, out: TensorType, reads: readonly Read[], value: (loaded: ScalarExpr[]) => ScalarExpr): void {
  const flat = coalesce(sizesOf(out.shape), [{ strides: strides(out.shape) }, ...reads.map((r) => ({ strides: broadcastStrides(r.type.shape, out.shape) }))]);
  k.grid = flat.sizes;
  k.nest(flat.sizes, flat.strides.map((s) => ({ base: int(0), strides: s })), "grid", ([o, ...at]) => {
    const loaded = reads.map((r, i) => k.b.let(`v${i}`, r.type.dtype, { kind: "load", buffer: r.buffer, dtype: r.type.dtype, index: at[i] }));
    k.b.store("out", out.dtype, o, value(loaded));
  });
}

export function lowerElementwise(k: KernelBuilder, node: Node, types: TensorType[]): void {
  const reads = types.map((type, i) => ({ buffer: `in${i}`, type }));
  elementwiseLoop(k, node.type, reads, (loaded) => elementValue(node, loaded, types.map((t) => t.dtype)));
}

/** transpose, slice and broadcast: out[i] = in[offset + i . strides]. */
export function lowerStridedCopy(k: KernelBuilder, node: Node, [t]: TensorType[]): void {
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
  k.grid = flat.sizes;
  k.nest(flat.sizes, [{ base: int(0), strides: flat.strides[0] }, { base: k.size(offset), strides: flat.strides[1] }], "grid", ([o, i]) =>
    k.b.store("out", out.dtype, o, { kind: "load", buffer: "in0", dtype: t.dtype, index: i }),
  );
}

/** One loop nest per operand, each writing its part of the output. */
export function lowerConcat(k: KernelBuilder, node: Node, types: TensorType[]): void {
  const out = node.type;
  const axis = normalizeAxis(node.attrs.axis as number, out.shape.length);
  const outStrides = strides(out.shape);
  let start = 0;
  k.grid = sizesOf(out.shape);
  types.forEach((t, i) => {
    const flat = coalesce(sizesOf(t.shape), [{ strides: outStrides }, { strides: strides(t.shape) }]);
    k.nest(flat.sizes, [{ base: k.size(scale(outStrides[axis], start)), strides: flat.strides[0] }, { base: int(0), strides: flat.strides[1] }], "grid", ([o, x]) =>
      k.b.store("out", out.dtype, o, { kind: "load", buffer: `in${i}`, dtype: t.dtype, index: x }),
    );
    start += t.shape[axis] as number;
  });
}

/**
 * out[i, j, e] = table[i, indices[j], e]. An index out of range is reported through the
 * kernel's error record (GPU kernels cannot throw) and reads row 0 instead.
 */
export function lowerGather(k: KernelBuilder, node: Node, [table, indices]: TensorType[]): void {
  const axis = normalizeAxis(node.attrs.axis as number, table.shape.length);
  const outer = monomialOf(table.shape.slice(0, axis));
  const size = k.size(monomialOf([table.shape[axis]]));
  const inner = monomialOf(table.shape.slice(axis + 1));
  const count = monomialOf(indices.shape);
  const code = k.error("gather: index {0} is out of range for an axis of size {1}");
  k.grid = [outer, count, inner];
  const b = k.b;
  b.loop("i", k.size(outer), "grid", (i) =>
    b.loop("j", k.size(count), "grid", (j) => {
      const index = b.var("index", "i32", { kind: "load", buffer: "in1", dtype: indices.dtype, index: j });
      b.if(bin("||", bin("<", index, int(0)), bin(">=", index, size)), () => {
        b.add({ kind: "fail", code, values: [index, size] });
        b.assign("index", int(0));
      });
      const src = b.let("src", "i32", product(sum([product(i, size), index]), k.size(inner)));
      const dst = b.let("dst", "i32", product(sum([product(i, k.size(count)), j]), k.size(inner)));
      b.loop("e", k.size(inner), "grid", (e) => b.store("out", node.type.dtype, sum([dst, e]), { kind: "load", buffer: "in0", dtype: table.dtype, index: sum([src, e]) }));
    }),
  );
}

/** out[i] = (i / stride) mod size: the index along one axis. */
export function lowerIota(k: KernelBuilder, node: Node): void {
  const shape = node.type.shape;
  const axis = normalizeAxis(node.attrs.axis as number, shape.length);
  const total = monomialOf(shape);
  k.grid = [total];
  const stride = k.size(monomialOf(shape.slice(axis + 1)));
  const size = k.size(monomialOf([shape[axis]]));
  k.b.loop("i", k.size(total), "grid", (i) => k.b.store("out", node.type.dtype, i, bin("%", call("idiv", i, stride), size)));
}

/** The element count of a shape, read at run time (the causal offset of decompositions). */
export function lowerNumel(k: KernelBuilder, node: Node): void {
  k.grid = [monomialOf([])];
  k.b.store("out", "i32", int(0), cast("i32", k.count(node.attrs.shape as Dim[])));
}
