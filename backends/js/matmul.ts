// The JS backend's hand-tuned batched matmul. Per batch, b is packed transposed (so both
// operands run contiguously along k; a b stored transposed, `transpose_b`, is read in place), then 4x2 tiles of the output accumulate in eight
// locals: V8 keeps them in registers, which makes this about 4x faster than the shared
// lowering's one-sum-per-element loop. Each sum runs over k in increasing order in float64,
// as the interpreter's does, so results match it bit for bit. A fused epilogue (the shared
// lowering's chain, kernel IR printed by the JS language table) turns each sum into the value
// stored.
import type { Node } from "../../compiler/ir/graph.ts";
import { ref, round } from "../../compiler/ir/scalar.ts";
import type { TensorType } from "../../compiler/ir/types.ts";
import { type Monomial, monomialOf } from "../../common/size.ts";
import { StmtBuilder } from "../common/kernel/ir.ts";
import { Renderer } from "../common/kernel/render.ts";
import { broadcastStrides, coalesce, sizesOf, strides, ZERO } from "../common/layout.ts";
import { type Epilogue, matmulShapes } from "../common/lower/reduce.ts";
import { jsLanguage } from "./language.ts";
import { loadExpr, storeExpr } from "./spelling.ts";
import type { KernelWriter } from "./writer.ts";

export function packedMatmul(w: KernelWriter, node: Node, [a, b]: TensorType[], inputs: [string, string] = ["in0", "in1"], epilogue?: Epilogue): void {
  const { as, bs, batch: batchShape, transposedB } = matmulShapes(node, a, b);
  const n = w.size(monomialOf([as[as.length - 2]]));
  const k = w.size(monomialOf([as[as.length - 1]]));
  const m = w.size(monomialOf([bs[bs.length - 1]]));
  // The epilogue's reads, by batch, row and column of the result (a 1-D operand has no row or column axis).
  const reads = (epilogue?.reads ?? []).map((r) => {
    const s = broadcastStrides(r.type.shape, node.type.shape);
    return { batch: s.slice(0, batchShape.length), row: a.shape.length > 1 ? s[batchShape.length] : ZERO, col: b.shape.length > 1 ? s[s.length - 1] : ZERO };
  });
  const flat = coalesce(sizesOf(batchShape), [{ strides: strides(batchShape) }, { strides: broadcastStrides(as.slice(0, -2), batchShape) }, { strides: broadcastStrides(bs.slice(0, -2), batchShape) }, ...reads.map((r) => ({ strides: r.batch }))]);
  const A = (i: string) => loadExpr(a.dtype, inputs[0], i, w.helpers);
  /** Element `i` of this batch's b as [m, k]: the packed copy, or b itself when it is stored so. */
  const B = (i: string) => (transposedB ? loadExpr(b.dtype, inputs[1], `bBase + ${i}`, w.helpers) : `bt[${i}]`);
  const store = (v: string) => storeExpr(node.type.dtype, v, w.helpers);
  // i32 sums of products wrap modulo 2^32 (C, WGSL, CUDA); floats accumulate in float64.
  const mac = (c: string, x: string, y: string) => (node.type.dtype === "i32" ? `${c} = (${c} + Math.imul(${x}, ${y})) | 0;` : `${c} += ${x} * ${y};`);
  // Integers stay exact in float64; floats (16-bit ones decoded) fit float32.
  if (!transposedB) w.line(`const bt = new ${a.dtype === "i32" || a.dtype === "i8" || a.dtype === "u8" ? "Float64Array" : "Float32Array"}(${k} * ${m});`);
  w.loops(flat.sizes, flat.strides.map((s) => ({ offset: "0", strides: s })), ([ob, ab, bb, ...eb]) => {
    /** `index * stride` as a term of an offset, or nothing for a zero stride. */
    const term = (index: string, stride: Monomial): string[] => {
      if (stride.coefficient === 0) return [];
      if (stride.coefficient === 1 && stride.symbols.length === 0) return [index];
      return [`${index.includes(" ") ? `(${index})` : index} * ${w.size(stride)}`];
    };
    /** With an epilogue, one block per result: the reads at (row, col), the chain, the store. */
    const epilogueStore = (sum: string, row: string, col: string, offset: string) => {
      w.open("{");
      const loaded = epilogue!.reads.map((r, i) => {
        const at = [eb[i], ...term(row, reads[i].row), ...term(col, reads[i].col)].join(" + ");
        w.line(`const v${i} = ${loadExpr(r.type.dtype, r.buffer, at, w.helpers)};`);
        return ref(`v${i}`, r.type.dtype);
      });
      const sb = new StmtBuilder();
      const value = epilogue!.value(sb, round(node.type.dtype, ref(sum, "f64")), loaded);
      const r = new Renderer(jsLanguage);
      sb.statements.length && r.stmts(sb.statements, 0).forEach((l) => w.line(l));
      w.line(`out[${offset}] = ${storeExpr(epilogue!.dtype, r.expr(value), w.helpers)};`);
      r.helpers.forEach((h) => w.helpers.add(h));
      w.close();
    };
    w.line(`const oBase = ${ob} * ${n} * ${m}, aBase = ${ab} * ${n} * ${k}, bBase = ${bb} * ${k} * ${m};`);
    if (!transposedB) w.line(`for (let p = 0; p < ${k}; p++) for (let j = 0; j < ${m}; j++) bt[j * ${k} + p] = ${loadExpr(b.dtype, inputs[1], `bBase + p * ${m} + j`, w.helpers)};`);
    w.line("let i = 0;");
    w.open(`for (; i + 4 <= ${n}; i += 4) {`);
    w.line(`const a0 = aBase + i * ${k}, a1 = a0 + ${k}, a2 = a1 + ${k}, a3 = a2 + ${k};`);
    w.line("let j = 0;");
    w.open(`for (; j + 2 <= ${m}; j += 2) {`);
    w.line(`const b0 = j * ${k}, b1 = b0 + ${k};`);
    w.line("let c00 = 0, c01 = 0, c10 = 0, c11 = 0, c20 = 0, c21 = 0, c30 = 0, c31 = 0;");
    w.open(`for (let p = 0; p < ${k}; p++) {`);
    w.line(`const y0 = ${B("b0 + p")}, y1 = ${B("b1 + p")};`);
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
    w.line(`for (let p = 0; p < ${k}; p++) ${mac("c", A("ar + p"), B("b0 + p"))}`);
    if (epilogue) epilogueStore("c", "i + r", "j", `oBase + (i + r) * ${m} + j`);
    else w.line(`out[oBase + (i + r) * ${m} + j] = ${store("c")};`);
    w.close();
    w.close();
    // The last rows (fewer than four): one dot product per output.
    w.open(`for (; i < ${n}; i++) for (let j = 0; j < ${m}; j++) {`);
    w.line(`const ar = aBase + i * ${k}, b0 = j * ${k};`);
    w.line("let c = 0;");
    w.line(`for (let p = 0; p < ${k}; p++) ${mac("c", A("ar + p"), B("b0 + p"))}`);
    if (epilogue) epilogueStore("c", "i", "j", `oBase + i * ${m} + j`);
    else w.line(`out[oBase + i * ${m} + j] = ${store("c")};`);
    w.close();
  }, "b");
}
