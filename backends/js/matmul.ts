// The JS backend's hand-tuned batched matmul, in two forms by precision.
//
// f64 (and integer dtypes in either precision): per batch, b is packed transposed (so both
// operands run contiguously along k; a b stored transposed, `transpose_b`, is read in place),
// then 4x2 tiles of the output accumulate in eight locals: V8 keeps them in registers, which
// makes this about 4x faster than the shared lowering's one-sum-per-element loop. Each sum runs
// over k in increasing order in float64, as the interpreter's does, so results match it bit for
// bit.
//
// f32 (float dtypes): the WebAssembly SIMD micro-kernel (matmul-wasm.ts) on b packed into its
// panels and a copied into its memory (16-bit floats decoded on the way), chunk by chunk of
// rows; each sum runs over k in increasing order in float32 (fused multiply-adds where the engine
// validates relaxed SIMD: one rounding per term instead of two). A b that is a param is packed once
// per session (the loader keeps the packed copy per param array, template/matmul-simd.js); any
// other b is packed per call, once per batch entry of b. The kernel splits over threads by
// panels of b: each thread packs and computes its own panels.
//
// Either way a fused epilogue (the shared lowering's chain, kernel IR printed by the JS
// language table) turns each sum into the value stored.
import type { Node } from "../../compiler/ir/graph.ts";
import { ref, round } from "../../compiler/ir/scalar.ts";
import type { DType, TensorType } from "../../compiler/ir/types.ts";
import { type Monomial, monomialOf } from "../../common/size.ts";
import { product, StmtBuilder, sum } from "../common/kernel/ir.ts";
import { KernelBuilder } from "../common/lower/kernel-builder.ts";
import { Renderer } from "../common/kernel/render.ts";
import { broadcastStrides, coalesce, sizesOf, strides, times, ZERO } from "../common/layout.ts";
import { type Epilogue, matmulShapes } from "../common/lower/reduce.ts";
import type { Precision } from "../common/target.ts";
import { jsLanguage } from "./language.ts";
import { matmulModule, TILE_ROWS, TILE_VECTORS } from "./matmul-wasm.ts";
import { loadExpr, storeExpr } from "./spelling.ts";
import { F32X4, F32X4_FMA } from "./wasm-encoder.ts";
import type { KernelWriter } from "./writer.ts";
import { templateSource } from "./template/source.ts";

/** What a matmul kernel reads besides a and b's types: their kernel inputs, the epilogue, whether b is a param. */
export interface MatmulOperands {
  inputs?: [string, string];
  epilogue?: Epilogue;
  /** b is a param: the session passes the same array on every run, so its packing is kept. */
  bIsParam?: boolean;
}

/** Rows of a per call of the micro-kernel: a chunk of a and of the product stay in cache while b's panels pass. */
const CHUNK_ROWS = 64;
/** Columns per panel of packed b. */
const PANEL = TILE_VECTORS * F32X4.count;

/** The loader every matmul module is an instance of, as the artifact carries it. */
const LOADER = templateSource("matmul-simd.js");

/**
 * Source of the matmul helpers: the loader (matmulSimd) and the f32 module's instances
 * (matmulF32: relaxed SIMD's multiply-add where the engine validates it, else a product and a
 * sum); undefined for other names.
 */
export function matmulHelperSource(name: string): string | undefined {
  if (name === "matmulSimd") return LOADER;
  if (name !== "matmulF32") return undefined;
  const variants = [F32X4_FMA, F32X4].map((lanes) => `new Uint8Array([${matmulModule(lanes).join(",")}])`);
  return `const matmulF32 = matmulSimd([${variants.join(", ")}]);`;
}

const isFloat = (d: DType) => d === "f32" || d === "f16" || d === "bf16";

export function packedMatmul(w: KernelWriter, node: Node, [a, b]: TensorType[], precision: Precision, { inputs = ["in0", "in1"], epilogue, bIsParam = false }: MatmulOperands = {}): void {
  const { as, bs, batch: batchShape, transposedB } = matmulShapes(node, a, b);
  const n = w.size(monomialOf([as[as.length - 2]]));
  const k = w.size(monomialOf([as[as.length - 1]]));
  const m = w.size(monomialOf([bs[bs.length - 1]]));
  // The epilogue's reads, by batch, row and column of the result (a 1-D operand has no row or column axis).
  const reads = (epilogue?.reads ?? []).map((r) => {
    const s = broadcastStrides(r.type.shape, node.type.shape);
    return { batch: s.slice(0, batchShape.length), row: a.shape.length > 1 ? s[batchShape.length] : ZERO, col: b.shape.length > 1 ? s[s.length - 1] : ZERO };
  });
  const bBatch = broadcastStrides(bs.slice(0, -2), batchShape);
  const simd = precision === "f32" && [a.dtype, b.dtype, node.type.dtype].every(isFloat);
  // Offsets per batch entry: out, a, b, (packed b,) the epilogue's reads.
  const batchStrides = [strides(batchShape), broadcastStrides(as.slice(0, -2), batchShape), bBatch, ...(simd ? [bBatch] : []), ...reads.map((r) => r.batch)];
  const flat = coalesce(sizesOf(batchShape), batchStrides.map((s) => ({ strides: s })));
  /** With an epilogue, one block per result: the reads at (row, col), the chain, the store; without, the store. */
  const store = (eb: string[], sum: string, row: string, col: string, offset: string) => {
    if (!epilogue) {
      w.line(`out[${offset}] = ${storeExpr(node.type.dtype, sum, w.helpers)};`);
      return;
    }
    w.open("{");
    const loaded = epilogue.reads.map((r, i) => {
      const at = [eb[i], ...term(w, row, reads[i].row), ...term(w, col, reads[i].col)].join(" + ");
      w.line(`const v${i} = ${loadExpr(r.type.dtype, r.buffer, at, w.helpers)};`);
      return ref(`v${i}`, r.type.dtype);
    });
    const sb = new StmtBuilder();
    const value = epilogue.value(sb, round(node.type.dtype, ref(sum, "f64")), loaded);
    const r = new Renderer(jsLanguage);
    sb.statements.length && r.stmts(sb.statements, 0).forEach((l) => w.line(l));
    w.line(`out[${offset}] = ${storeExpr(epilogue.dtype, r.expr(value), w.helpers)};`);
    r.helpers.forEach((h) => w.helpers.add(h));
    w.close();
  };
  const shapes = { a, b, node, n, k, m, inputs, transposedB, work: monomialOf([...batchShape, as[as.length - 2], as[as.length - 1], bs[bs.length - 1]]) };
  const offsetStrides = flat.strides.map((s) => ({ offset: "0", strides: s }));
  if (simd) {
    const bEntries = w.size(bs.slice(0, -2).reduce((p: Monomial, d) => times(p, monomialOf([d])), monomialOf([])));
    const compiled = epilogue && compiledEpilogue(w, epilogue, reads, node.type.dtype, m);
    simdMatmul(w, shapes, bIsParam, bEntries, (body) => w.loops(flat.sizes, offsetStrides, body, "b"), store, compiled ?? (!epilogue && node.type.dtype === "f32"));
  } else float64Matmul(w, shapes, (body) => w.loops(flat.sizes, offsetStrides, body, "b"), store);
}

/** The JS that runs the compiled epilogue on a chunk of the product, given the batch entry's read offsets. */
type EpilogueCall = (eb: string[]) => string;

/**
 * The epilogue as a kernel of its own over a chunk of the product, compiled to wasm where the
 * compiler can (an f32 result): it rewrites the chunk in place (`rows` rows of `width` columns
 * from column j0, `cols` of them in the result) with its reads, each passed as the slice of its
 * buffer that the chunk's rows reach. Undefined where it cannot: the epilogue then runs as JS
 * per element.
 */
function compiledEpilogue(w: KernelWriter, epilogue: Epilogue, reads: { row: Monomial; col: Monomial }[], productType: DType, m: string): EpilogueCall | undefined {
  if (epilogue.dtype !== "f32" || !w.compile) return undefined;
  const name = `${w.name}_epilogue`;
  const kb = new KernelBuilder(name, [{ name: "out", dtype: "f32", access: "write" }, ...epilogue.reads.map((r, i) => ({ name: `e${i}`, dtype: r.type.dtype, access: "read" as const }))]);
  // Strides first, so that the model's dims come first among the kernel's parameters; then the
  // chunk's geometry, under names no model dim can have.
  const strides = reads.map((r) => ({ row: kb.size(r.row), col: kb.size(r.col) }));
  const [rows, j0, cols, width] = ["#rows", "#j0", "#cols", "#width"].map((d) => kb.dim(d));
  const b = kb.b;
  b.loop("r", rows, "serial", (r) =>
    b.loop("j", cols, "serial", (j) => {
      const at = sum([product(r, width), j]);
      const c = b.let("c", "f32", { kind: "load", buffer: "out", dtype: "f32", index: at });
      const loaded = epilogue.reads.map((rd, i) => b.let(`v${i}`, rd.type.dtype, { kind: "load", buffer: `e${i}`, dtype: rd.type.dtype, index: sum([product(r, strides[i].row), product(sum([j, j0]), strides[i].col)]) }));
      b.store("out", "f32", at, epilogue.value(b, round(productType, c), loaded));
    }),
  );
  if (!w.compile(kb.finish())) return undefined;
  const dims = kb.dims.slice(0, -4).map((d) => w.size(monomialOf([d])));
  return (eb) => {
    const slices = epilogue.reads.map((r, i) => {
      const rs = reads[i].row.coefficient === 0 ? "0" : w.size(reads[i].row);
      const cs = reads[i].col.coefficient === 0 ? "0" : w.size(reads[i].col);
      return `${r.buffer}.subarray(${eb[i]} + i0 * ${rs}, ${eb[i]} + i0 * ${rs} + (rows - 1) * ${rs} + (${m} - 1) * ${cs} + 1)`;
    });
    return `wasmKernels.call(${JSON.stringify(name)}, true, [F.subarray(cAt, cAt + rows * width), ${slices.join(", ")}], [${[...dims, "rows", "j0", "j1 - j0", "width"].join(", ")}]);`;
  };
}

/** `index * stride` as a term of an offset, or nothing for a zero stride. */
function term(w: KernelWriter, index: string, stride: Monomial): string[] {
  if (stride.coefficient === 0) return [];
  if (stride.coefficient === 1 && stride.symbols.length === 0) return [index];
  return [`${index.includes(" ") ? `(${index})` : index} * ${w.size(stride)}`];
}

interface Shapes {
  a: TensorType;
  b: TensorType;
  node: Node;
  /** Rows of a, its row length, columns of b: JS expressions. */
  n: string;
  k: string;
  m: string;
  inputs: [string, string];
  transposedB: boolean;
  /** Multiply-adds: batch entries × n × k × m. */
  work: Monomial;
}

/** The loops over batch entries: `body` gets the entry's offsets (out, a, b, [packed b,] epilogue reads). */
type BatchLoops = (body: (offsets: string[]) => void) => void;
/** Stores result `sum` at (row, col), element `offset` of out, with the epilogue reads at offsets `eb`. */
type Store = (eb: string[], sum: string, row: string, col: string, offset: string) => void;

function float64Matmul(w: KernelWriter, { a, b, node, n, k, m, inputs, transposedB }: Shapes, batchLoops: BatchLoops, store: Store): void {
  const A = (i: string) => loadExpr(a.dtype, inputs[0], i, w.helpers);
  /** Element `i` of this batch's b as [m, k]: the packed copy, or b itself when it is stored so. */
  const B = (i: string) => (transposedB ? loadExpr(b.dtype, inputs[1], `bBase + ${i}`, w.helpers) : `bt[${i}]`);
  // i32 sums of products wrap modulo 2^32 (C, WGSL, CUDA); floats accumulate in float64.
  const mac = (c: string, x: string, y: string) => (node.type.dtype === "i32" ? `${c} = (${c} + Math.imul(${x}, ${y})) | 0;` : `${c} += ${x} * ${y};`);
  // Integers stay exact in float64; floats (16-bit ones decoded) fit float32.
  if (!transposedB) w.line(`const bt = new ${a.dtype === "i32" || a.dtype === "i8" || a.dtype === "u8" ? "Float64Array" : "Float32Array"}(${k} * ${m});`);
  batchLoops(([ob, ab, bb, ...eb]) => {
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
    for (const r of [0, 1, 2, 3])
      for (const c of [0, 1]) store(eb, `c${r}${c}`, r ? `i + ${r}` : "i", c ? "j + 1" : "j", ["o", ...(r === 0 ? [] : [r === 1 ? m : `${r} * ${m}`]), ...(c ? ["1"] : [])].join(" + "));
    w.close();
    // An odd last column: four single dot products.
    w.open(`if (j < ${m}) for (let r = 0; r < 4; r++) {`);
    w.line(`const ar = aBase + (i + r) * ${k}, b0 = j * ${k};`);
    w.line("let c = 0;");
    w.line(`for (let p = 0; p < ${k}; p++) ${mac("c", A("ar + p"), B("b0 + p"))}`);
    store(eb, "c", "i + r", "j", `oBase + (i + r) * ${m} + j`);
    w.close();
    w.close();
    // The last rows (fewer than four): one dot product per output.
    w.open(`for (; i < ${n}; i++) for (let j = 0; j < ${m}; j++) {`);
    w.line(`const ar = aBase + i * ${k}, b0 = j * ${k};`);
    w.line("let c = 0;");
    w.line(`for (let p = 0; p < ${k}; p++) ${mac("c", A("ar + p"), B("b0 + p"))}`);
    store(eb, "c", "i", "j", `oBase + i * ${m} + j`);
    w.close();
  });
}

/**
 * The f32 kernel, split over threads by panels: share `part` of `parts` computes the columns of
 * panels [q0, q1) (every output by the same code in any split: the one-thread result bit for
 * bit). In its module's memory: b's panels of the share packed (every batch entry of a param b;
 * the current entry of any other), then a chunk of a's rows (padded with zero rows to whole
 * tiles), then that chunk of the share's product (`width` columns per row). `copyOut`: the
 * product's rows go to out as they are (f32, no epilogue, or after the compiled epilogue it is).
 */
function simdMatmul(w: KernelWriter, { a, b, n, k, m, inputs, transposedB, work }: Shapes, bIsParam: boolean, bEntries: string, batchLoops: BatchLoops, store: Store, copyOut: boolean | EpilogueCall): void {
  w.helpers.add("matmulSimd").add("matmulF32");
  const { part, parts } = w.split(work);
  const B = (p: string, j: string) => loadExpr(b.dtype, inputs[1], transposedB ? `bBase + ${j} * ${k} + ${p}` : `bBase + ${p} * ${m} + ${j}`, w.helpers);
  w.line(`const panels = Math.ceil(${m} / ${PANEL}), q0 = Math.floor((panels * ${part}) / ${parts}), q1 = Math.floor((panels * (${part} + 1)) / ${parts});`);
  w.line(`const width = (q1 - q0) * ${PANEL}, j0 = q0 * ${PANEL}, j1 = Math.min(q1 * ${PANEL}, ${m}), chunk = Math.min(${CHUNK_ROWS}, (${n} + ${TILE_ROWS - 1}) & ${-TILE_ROWS});`);
  w.line("if (j0 >= j1) return;");
  // panel[q][p][c] = b[p][q * PANEL + c], zero past column m.
  w.open("const pack = (F, at, bBase) => {");
  w.line(`for (let q = j0; q < j0 + width; q += ${PANEL}) for (let p = 0; p < ${k}; p++) for (let j = q; j < q + ${PANEL}; j++) F[at++] = j < ${m} ? ${B("p", "j")} : 0;`);
  w.close("};");
  if (bIsParam) {
    w.line(`const packedFloats = ${bEntries} * ${k} * width;`);
    w.line(`const mm = matmulF32.packed(${inputs[1]}, \`${transposedB ? "t" : ""}\${${k}}x\${${m}}:\${q0}-\${q1}\`, packedFloats, (F) => { for (let e = 0; e < ${bEntries}; e++) pack(F, e * ${k} * width, e * ${k} * ${m}); });`);
  } else w.line(`const mm = matmulF32.scratch(), packedFloats = ${k} * width;`);
  w.line(`const aAt = packedFloats, cAt = aAt + chunk * ${k}, F = mm.memory(cAt + chunk * width);`);
  if (!bIsParam) w.line("let packedFrom = -1;");
  batchLoops(([ob, ab, bb, pb, ...eb]) => {
    w.line(`const oBase = ${ob} * ${n} * ${m}, aBase = ${ab} * ${n} * ${k}, bAt = ${bIsParam ? `${pb} * ${k} * width` : "0"};`);
    // Consecutive entries often share b (a broadcast b): packed once for them.
    if (!bIsParam) w.line(`if (${bb} !== packedFrom) pack(F, 0, (packedFrom = ${bb}) * ${k} * ${m});`);
    w.open(`for (let i0 = 0; i0 < ${n}; i0 += chunk) {`);
    w.line(`const rows = ${n} - i0 < chunk ? ${n} - i0 : chunk, tiled = (rows + ${TILE_ROWS - 1}) & ${-TILE_ROWS}, aFrom = aBase + i0 * ${k};`);
    if (a.dtype === "f32") w.line(`F.set(${inputs[0]}.subarray(aFrom, aFrom + rows * ${k}), aAt);`);
    else w.line(`for (let t = 0; t < rows * ${k}; t++) F[aAt + t] = ${loadExpr(a.dtype, inputs[0], "aFrom + t", w.helpers)};`);
    w.line(`if (tiled > rows) F.fill(0, aAt + rows * ${k}, aAt + tiled * ${k});`);
    w.line(`mm.matmul(4 * aAt, 4 * bAt, 4 * cAt, tiled, ${k}, q1 - q0);`);
    if (typeof copyOut === "function") w.line(copyOut(eb));
    if (copyOut) {
      w.line(`if (width === ${m}) out.set(F.subarray(cAt, cAt + rows * ${m}), oBase + i0 * ${m});`);
      w.line(`else for (let r = 0; r < rows; r++) out.set(F.subarray(cAt + r * width, cAt + r * width + j1 - j0), oBase + (i0 + r) * ${m} + j0);`);
    } else {
      w.open(`for (let r = 0; r < rows; r++) for (let j = j0; j < j1; j++) {`);
      w.line("const c = F[cAt + r * width + j - j0];");
      store(eb, "c", "i0 + r", "j", `oBase + (i0 + r) * ${m} + j`);
      w.close();
    }
    w.close();
  });
}
