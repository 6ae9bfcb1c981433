// The CUDA streaming attention kernels, flash_attention and flash_diffattn (FlashAttention,
// Dao et al. 2022): one warp per query row, WARPS rows per block. The block loads each tile of
// BC keys' K (both maps) and V into shared memory once for all its rows; each warp keeps its
// row's q in registers (lanes split the head width), computes each score with a warp-shuffle
// reduction, and runs one online softmax per map (running max m, sum l and accumulator acc,
// lanes splitting the value columns): 12·N²·d flops per head, no N×M map, O(BC·(2d+dv)) shared
// memory per block. Then the epilogue: p1 - λ p2 weights (a map that saw no key weighs 0), the
// per-head RMSNorm (warp-reduced) and scale. Everything the template knows of the layout, the
// causal rule and the epilogue comes from the IR (attention-geometry.ts, flash.ts).
//
// Rules for the CPU emulation header: only static __shared__ arrays; every __syncthreads is
// reached by all threads (the loops around them are uniform over the block); shuffles run
// with all lanes of a warp converged (the branches around them are uniform over the warp).
import type { Node } from "../../compiler/ir/graph.ts";
import { type Arith, attentionGeometry, causalRule } from "../../compiler/ir/ops/attention-geometry.ts";
import { epilogueOutput, flashEpilogue, normDenominator } from "../../compiler/ir/ops/flash.ts";
import { type AttentionQuant, attentionQuant, quantizeValue, quantLevel, quantLevels, type QuantArith } from "../../compiler/ir/ops/attention-quant.ts";
import type { Dim, TensorType } from "../../compiler/ir/types.ts";
import { type Monomial, monomialOf } from "../../common/size.ts";
import { dimParam } from "../common/kernel/ir.ts";
import type { BufferParam } from "../common/kernel/ir.ts";
import { columnExpr, entryLayout } from "../common/attention.ts";
import { sizesOf } from "../common/layout.ts";
import { CUDA_STORAGE, cudaLanguage } from "./language.ts";

/** Query rows per block: one warp each. */
const WARPS = 4;
/** Floats of static shared memory a block may use (48 KiB, the limit without opt-in). */
const SHARED_FLOATS = 12288;

/** Arith over C source (float): the IR's causal rule and epilogue as expressions of the kernel. */
const C: Arith<string> = {
  num: (c) => (Number.isInteger(c) ? String(c) : `${c}f`),
  add: (a, b) => `(${a} + ${b})`,
  sub: (a, b) => `(${a} - ${b})`,
  mul: (a, b) => `(${a} * ${b})`,
  div: (a, b) => `(${a} / ${b})`,
  // Ternaries: the rules use them on ints, where CUDA's min/max overloads are not portable C.
  min: (a, b) => `(${a} < ${b} ? ${a} : ${b})`,
  max: (a, b) => `(${a} > ${b} ? ${a} : ${b})`,
  sqrt: (a) => `sqrtf(${a})`,
};
/**
 * Arith over C source in double, with the level rule's rounding (the kernel-IR helper
 * roundHalfEven): the quantised kernels compute in double, as the interpreter does, so that a
 * level differs from the interpreter's only on a rounding tie (~1e-16 relative away).
 */
const D: QuantArith<string> = {
  ...C,
  num: (c) => (Number.isInteger(c) ? `${c}.0` : String(c)),
  min: (a, b) => `fmin(${a}, ${b})`,
  max: (a, b) => `fmax(${a}, ${b})`,
  sqrt: (a) => `sqrt(${a})`,
  roundHalfEven: (a) => `roundHalfEven(${a})`,
};

/** The same over floats written as C float literals (eps, scales). */
const float = (x: number) => `${Math.fround(x)}f`.replace(/^(-?\d+)f$/, "$1.0f");

export interface CudaTemplateKernel {
  source: string;
  buffers: BufferParam[];
  dims: string[];
  /** Threads per block, and the blocks a launch needs, as C over `s->dims` (given each dim's index). */
  workgroup: number[];
  blocks(dim: (name: string) => string): string;
  /** Launch geometry for the manifest: query rows × heads × batch entries. */
  grid: Monomial[];
}

/** The streaming kernel of a flash_attention, flash_diffattn or qflash node. */
export function flashAttentionKernel(name: string, node: Node, types: TensorType[], use: (helper: string) => void): CudaTemplateKernel {
  const [q, k, v, lambda, normWeight] = types;
  const geo = attentionGeometry(node.op, types, node.attrs);
  const epilogue = flashEpilogue(node.op, node.operands, node.attrs);
  const { maps, heads, d, dv, batch, n, m } = geo;
  const dims: string[] = [];
  const dim = (s: string) => {
    if (!dims.includes(s)) dims.push(s);
    return dimParam(dims.indexOf(s));
  };
  const size = (x: Monomial) => [`${x.coefficient}LL`, ...x.symbols.map(dim)].join(" * ");
  const qpl = Math.ceil(d / 32);
  const vpl = Math.ceil(dv / 32);
  const bc = Math.max(1, Math.min(32, Math.floor(SHARED_FLOATS / (maps * d + dv))));
  const width = (t: TensorType) => t.shape[t.shape.length - 1] as number;
  const load = (buffer: string, t: TensorType, index: string) => cudaLanguage.load(buffer, t.dtype, index, use);
  const buffers: BufferParam[] = [{ name: "out", dtype: node.type.dtype, access: "write" }, ...types.map((t, i) => ({ name: `in${i}`, dtype: t.dtype, access: "read" as const }))];

  // Batch entries: each operand's offset from the entry's index along each batch dim.
  const { entryStrides, lambdaStrides, offsets } = entryLayout(geo, types);
  const batchSizes = sizesOf(batch);
  const entryLines = batch.length === 0 ? [] : [
    "long long rest = entry;",
    ...batch.map((_, bi) => batch.length - 1 - bi).map((di) => `{ const long long at = rest % (${size(batchSizes[di])}); rest /= (${size(batchSizes[di])}); ${offsets.map((o, k) => `${o} += at * (${size(entryStrides[k][di])});`).join(" ")} }`),
  ];

  const rowsExpr = size(monomialOf([n as Dim]));
  const keysExpr = size(monomialOf([m as Dim]));
  const mapRange = Array.from({ length: maps }, (_, p) => p);
  const column = (xs: number[], index: string) => columnExpr(xs, index, String, (c, a, b) => `(${c} ? ${a} : ${b})`);
  const visible = (row: string) => (geo.causal ? causalRule.visibleKeys(C, row, "rows", "keys") : "keys");
  const lines: string[] = [];
  const L = (s: string) => lines.push(s);
  const params = [...buffers.map((b) => `${b.access === "read" ? "const " : ""}${CUDA_STORAGE[b.dtype]}* __restrict__ ${b.name}`), ...["__DIMS__"]];
  L(`  const int rows = (int)(${rowsExpr}), keys = (int)(${keysExpr});`);
  L(`  const long long entries = ${size(monomialOf(batch))};`);
  L(`  const int rowTiles = (rows + ${WARPS - 1}) / ${WARPS};`);
  const quant = node.op.startsWith("qflash_") ? attentionQuant(node.attrs) : undefined;
  if (!quant) {
    L(`  __shared__ float kTile[${maps}][${bc}][${d}];`);
    L(`  __shared__ float vTile[${bc}][${dv}];`);
  }
  L("  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;");
  // The tile loop is uniform over the block: every thread reaches every __syncthreads.
  L(`  for (long long tile = blockIdx.x; tile < entries * ${heads} * rowTiles; tile += gridDim.x) {`);
  L(`    const int rowTile = (int)(tile % rowTiles), h = (int)((tile / rowTiles) % ${heads});`);
  if (batch.length > 0) L(`    const long long entry = tile / rowTiles / ${heads};`);
  // One kv group: every column is a constant and g would go unused (nvcc -Werror warns).
  if (geo.kvHeads > 1) L(`    const int g = h / ${geo.group};`);
  L(`    long long ${offsets.map((o) => `${o} = 0`).join(", ")};`);
  entryLines.forEach((l) => L(`    ${l}`));
  L(`    const int i = rowTile * ${WARPS} + warp;`);
  L("    const bool live = i < rows;");
  if (!quant) {
    if (geo.causal) L(`    const int lastRow = ${C.min(`rowTile * ${WARPS} + ${WARPS - 1}`, "rows - 1")};`);
    // Keys past what the tile's last row sees are never loaded (the causal rule only grows with i).
    L(`    const int end = ${visible("lastRow")};`);
  }
  L(`    const int seen = live ? ${visible("i")} : 0;`);
  // The quantised kernels keep their state in double, as the interpreter does (see D).
  const real = quant ? "double" : "float";
  L(`    float q[${maps}][${qpl}];`);
  L(`    ${real} acc[${maps}][${vpl}], mx[${maps}], sum[${maps}];`);
  L(`    for (int p = 0; p < ${maps}; p++) { mx[p] = -INFINITY; sum[p] = 0; for (int c = 0; c < ${vpl}; c++) acc[p][c] = 0; }`);
  mapRange.forEach((p) => L(`    for (int t = 0; t < ${qpl}; t++) { const int col = lane + 32 * t; q[${p}][t] = live && col < ${d} ? ${load("in0", q, `oQ + (long long)i * ${width(q)} + ${column(geo.qColumns[p], "h")} + col`)} : 0.0f; }`));
  const vColumnOf = (c: string) => (geo.vColumns.length === 1 ? `${column(geo.vColumns[0], "g")} + ${c}` : `(${c} < ${geo.vSegment} ? ${column(geo.vColumns[0], "g")} + ${c} : ${column(geo.vColumns[1], "g")} + ${c} - ${geo.vSegment})`);
  const kColumnOf = (p: string) => (maps === 1 ? column(geo.kColumns[0], "g") : `(${p} == 0 ? ${column(geo.kColumns[0], "g")} : ${column(geo.kColumns[1], "g")})`);
  if (quant) {
    quantizedRow(L, quant, {
      maps,
      qpl,
      vpl,
      d,
      dv,
      scale: geo.scale,
      k: (p, j, col) => load("in1", k, `oK + (long long)(${j}) * ${width(k)} + ${kColumnOf(p)} + ${col}`),
      v: (j, col) => load("in2", v, `oV + (long long)(${j}) * ${width(v)} + ${vColumnOf(col)}`),
    });
    if (quant.target !== "none" || quant.vBits > 0) use("roundHalfEven");
  } else {
    L(`    for (int j0 = 0; j0 < end; j0 += ${bc}) {`);
    L("      __syncthreads();");
    L(`      for (int t = threadIdx.x; t < ${maps * bc * d}; t += blockDim.x) {`);
    L(`        const int p = t / ${bc * d}, jj = (t / ${d}) % ${bc}, col = t % ${d}, j = j0 + jj;`);
    L(`        kTile[p][jj][col] = j < keys ? ${load("in1", k, `oK + (long long)j * ${width(k)} + ${kColumnOf("p")} + col`)} : 0.0f;`);
    L("      }");
    L(`      for (int t = threadIdx.x; t < ${bc * dv}; t += blockDim.x) {`);
    L(`        const int jj = t / ${dv}, c = t % ${dv}, j = j0 + jj;`);
    L(`        vTile[jj][c] = j < keys ? ${load("in2", v, `oV + (long long)j * ${width(v)} + ${vColumnOf("c")}`)} : 0.0f;`);
    L("      }");
    L("      __syncthreads();");
    // `seen` is uniform over the warp: the shuffles below run with all its lanes.
    L(`      for (int jj = 0; jj < ${bc} && j0 + jj < seen; jj++) {`);
    for (const p of mapRange) {
      L("        {");
      L(`          float s = 0.0f;`);
      L(`          for (int t = 0; t < ${qpl}; t++) { const int col = lane + 32 * t; if (col < ${d}) s += q[${p}][t] * kTile[${p}][jj][col]; }`);
      L("          for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);");
      L(`          s *= ${float(geo.scale)};`);
      L(`          const float next = fmaxf(mx[${p}], s), correction = expf(mx[${p}] - next), e = expf(s - next);`);
      L(`          sum[${p}] = sum[${p}] * correction + e;`);
      L(`          for (int c = 0; c < ${vpl}; c++) { const int col = lane + 32 * c; acc[${p}][c] = acc[${p}][c] * correction + (col < ${dv} ? e * vTile[jj][col] : 0.0f); }`);
      L(`          mx[${p}] = next;`);
      L("        }");
    }
    L("      }");
    L("    }");
  }
  // The epilogue: a row that saw no key in either map is 0; a map that saw none weighs 0.
  L("    if (live) {");
  // Where the probabilities were needed (sparse), acc holds them already divided by l.
  const sparse = quant !== undefined && (quant.target === "probs" || quant.threshold > 0);
  const weight = (p: number) => `(sum[${p}] > 0 ? ${sparse ? "1" : `1 / sum[${p}]`} : 0)`;
  const A = quant ? D : C;
  if (maps === 2) {
    L(`      const ${real} lam = ${load("in3", lambda, `oLam + (long long)i * (${size(lambdaStrides[batch.length])}) + (long long)h * (${size(lambdaStrides[batch.length + 1])})`)};`);
    L(`      const ${real} w0 = ${weight(0)}, w1 = ${weight(1)} * lam;`);
  } else L(`      const ${real} w0 = ${weight(0)};`);
  L(`      ${real} y[${vpl}], squares = 0;`);
  L(`      for (int c = 0; c < ${vpl}; c++) { y[c] = acc[0][c] * w0${maps === 2 ? " - acc[1][c] * w1" : ""}; if (lane + 32 * c < ${dv}) squares += y[c] * y[c]; }`);
  const norm = epilogue.normWeight;
  if (norm) {
    L("      for (int o = 16; o > 0; o >>= 1) squares += __shfl_xor_sync(0xffffffffu, squares, o);");
    L(`      const ${real} denom = ${normDenominator(A, epilogue, "squares", dv)};`);
  }
  L(`      const bool none = ${mapRange.map((p) => `sum[${p}] == 0`).join(" && ")};`);
  L(`      const long long o = oOut + ((long long)i * ${heads} + h) * ${dv};`);
  L(`      for (int c = 0; c < ${vpl}; c++) {`);
  L(`        const int col = lane + 32 * c;`);
  L(`        if (col >= ${dv}) break;`);
  const value = epilogueOutput(A, epilogue, "y[c]", norm ? { denom: "denom", weight: load("in4", normWeight, "col") } : undefined);
  L(`        ${cudaLanguage.store("out", node.type.dtype, "o + col", `none ? 0.0f : (float)(${value})`, use)}`);
  L("      }");
  L("    }");
  L("  }");
  const signature = params.join(", ").replace("__DIMS__", dims.map((_, i) => `int ${dimParam(i)}`).join(", ")).replace(/, $/, "");
  const source = [`extern "C" __global__ void __launch_bounds__(${WARPS * 32}) ${name}(${signature}) {`, ...lines, "}"].join("\n");
  return {
    source,
    buffers,
    dims,
    workgroup: [WARPS * 32],
    blocks: (dimExpr) => {
      const rows = monomialOf([n as Dim]).symbols.length ? `${dimExpr(String(n))}` : String(n);
      const entries = [String(monomialOf(batch).coefficient), ...monomialOf(batch).symbols.map(dimExpr)].join(" * ");
      return `((${rows} + ${WARPS - 1}) / ${WARPS}) * ${heads} * ${entries}`;
    },
    grid: [monomialOf([...batch, n as Dim, heads])],
  };
}

interface QuantRow {
  maps: number;
  /** q (k) columns per lane and value columns per lane. */
  qpl: number;
  vpl: number;
  d: number;
  dv: number;
  scale: number;
  /** C expressions of k's element `col` of map p's subhead at key j, and of v's column `col` at key j. */
  k(p: string, j: string, col: string): string;
  v(j: string, col: string): string;
}

/**
 * One warp's row of a qflash kernel (attention-quant.ts), after its q is loaded: in double,
 * reading K and V from global memory, no shared tiles. A group's logit step needs all of its
 * scores, and the probabilities need the row's final max and sum, so the scores of a group (the
 * row, or a key block) are computed once for its step and again where they are used, and where
 * the probabilities are needed (sparse) a first pass over the row finds m and l before a second
 * one accumulates the probabilities' levels times V. Leaves acc, mx and sum as the plain kernel
 * does (acc already divided by l where sparse).
 */
/** A loop over maps or a lane's columns, fully unrolled: its arrays then stay in registers (indexed by constants). */
function unrolled(L: (s: string) => void, loop: string): void {
  L("#pragma unroll");
  L(loop);
}

function quantizedRow(L: (s: string) => void, quant: AttentionQuant, r: QuantRow): void {
  const maps = Array.from({ length: r.maps }, (_, p) => p);
  const sparse = quant.target === "probs" || quant.threshold > 0;
  const logitLevels = quantLevels(quant.bits, true);
  const level = (x: string, step: string, levels: number, signed: boolean) => `(${step} > 0 ? ${quantizeValue(D, x, step, levels, signed)} : ${x})`;
  const stepOf = (amax: string, levels: number) => `(${amax} > 0 && ${amax} < INFINITY ? ${amax} / ${levels}.0 : 0.0)`;
  L(`    const int qblock = ${quant.block};`);
  L("    auto score = [&](int p, int j) -> double {");
  L("      double s = 0.0;");
  L(`      for (int t = 0; t < ${r.qpl}; t++) { const int col = lane + 32 * t; if (col < ${r.d}) s += (double)q[p][t] * (double)${r.k("p", "j", "col")}; }`);
  L("      for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);");
  L(`      return s * ${r.scale};`);
  L("    };");
  const logits = quant.target === "logits";
  if (logits) {
    // A group's largest |logit| / L, or 0 (left as it is); NaN sticks as in the interpreter.
    L("    auto logitStep = [&](int p, int j0, int j1) -> double {");
    L("      double amax = 0.0;");
    L("      for (int j = j0; j < j1; j++) { const double a = fabs(score(p, j)); if (a > amax || a != a) amax = a; }");
    L(`      return ${stepOf("amax", logitLevels)};`);
    L("    };");
  }
  L(`    auto logit = [&](int p, int j, double st) -> double { const double s = score(p, j); return ${logits ? level("s", "st", logitLevels, true) : "s"}; };`);
  L(`    double step[${r.maps}] = {${maps.map(() => "0.0").join(", ")}};`);
  if (logits && quant.granularity === "row") unrolled(L, `    for (int p = 0; p < ${r.maps}; p++) step[p] = logitStep(p, 0, seen);`);
  const blockSteps = logits && quant.granularity === "block" ? `      for (int p = 0; p < ${r.maps}; p++) step[p] = logitStep(p, j0, j1);` : "";
  // V's levels per column over all keys; each lane holds its columns' steps.
  const integers = quant.target === "probs" && quant.vBits > 0;
  if (quant.vBits > 0) {
    const vLevels = quantLevels(quant.vBits, true);
    L(`    double vStep[${r.vpl}];`);
    if (integers) L("    int vExact = 1;");
    unrolled(L, `    for (int c = 0; c < ${r.vpl}; c++) {`);
    L("      const int col = lane + 32 * c;");
    L("      double amax = 0.0;");
    L(`      if (col < ${r.dv}) for (int j = 0; j < keys; j++) { const double a = fabs((double)${r.v("j", "col")}); if (a > amax || a != a) amax = a; }`);
    L(`      vStep[c] = ${stepOf("amax", vLevels)};`);
    if (integers) L("      vExact &= amax < INFINITY;");
    L("    }");
    L(`    auto value = [&](int j, int c) -> double { const double x = (double)${r.v("j", "lane + 32 * c")}; return ${level("x", "vStep[c]", vLevels, true)}; };`);
    if (integers) {
      // The integer levels take the integer product only where every column of the warp has levels (uniform: the scores shuffle).
      L("    for (int o = 16; o > 0; o >>= 1) vExact &= __shfl_xor_sync(0xffffffffu, vExact, o);");
      L(`    auto vLevel = [&](int j, int c) -> int { return lane + 32 * c < ${r.dv} && vStep[c] > 0 ? (int)${quantLevel(D, `(double)${r.v("j", "lane + 32 * c")}`, "vStep[c]", vLevels, true)} : 0; };`);
    }
  } else L(`    auto value = [&](int j, int c) -> double { return (double)${r.v("j", "lane + 32 * c")}; };`);
  const blocks = (body: () => void) => {
    L("    for (int j0 = 0; j0 < seen; j0 += qblock) {");
    L("      const int j1 = j0 + qblock < seen ? j0 + qblock : seen;");
    if (blockSteps) unrolled(L, blockSteps);
    body();
    L("    }");
  };
  const onlineStep = (withValues: boolean) => {
    L("      for (int j = j0; j < j1; j++) {");
    unrolled(L, `      for (int p = 0; p < ${r.maps}; p++) {`);
    L("        const double s = logit(p, j, step[p]), next = fmax(mx[p], s), correction = exp(mx[p] - next), e = exp(s - next);");
    L("        sum[p] = sum[p] * correction + e;");
    if (withValues) unrolled(L, `        for (int c = 0; c < ${r.vpl}; c++) acc[p][c] = acc[p][c] * correction + (lane + 32 * c < ${r.dv} ? e * value(j, c) : 0.0);`);
    L("        mx[p] = next;");
    L("      }");
    L("      }");
  };
  if (!sparse) {
    blocks(() => onlineStep(true));
    return;
  }
  blocks(() => onlineStep(false));
  // The row's probabilities: exp(s - m) · (1 / l), the interpreter's order; the row's largest is 1 / l.
  const probLevels = quantLevels(quant.bits, false);
  const probs = quant.target === "probs";
  L(`    double inv[${r.maps}]${probs ? `, pStep[${r.maps}]` : ""};`);
  unrolled(L, `    for (int p = 0; p < ${r.maps}; p++) { inv[p] = sum[p] > 0 ? 1.0 / sum[p] : 0.0;${probs ? " pStep[p] = 0.0;" : ""} }`);
  if (probs && quant.granularity === "row") unrolled(L, `    for (int p = 0; p < ${r.maps}; p++) pStep[p] = ${stepOf("inv[p]", probLevels)};`);
  L("    auto prob = [&](int p, int j) -> double { return exp(logit(p, j, step[p]) - mx[p]) * inv[p]; };");
  blocks(() => {
    if (quant.threshold > 0 || (probs && quant.granularity === "block")) {
      L(`      double pmax[${r.maps}];`);
      unrolled(L, `      for (int p = 0; p < ${r.maps}; p++) { pmax[p] = 0.0; for (int j = j0; j < j1; j++) { const double x = prob(p, j); if (x > pmax[p] || x != x) pmax[p] = x; } }`);
    }
    // Skipped: every map's probabilities in the block are under the threshold (NaN is not).
    if (quant.threshold > 0) L(`      if (${maps.map((p) => `pmax[${p}] < ${quant.threshold}`).join(" && ")}) continue;`);
    if (probs && quant.granularity === "block") unrolled(L, `      for (int p = 0; p < ${r.maps}; p++) pStep[p] = ${stepOf("pmax[p]", probLevels)};`);
    if (integers) {
      L("      if (vExact) {");
      integerProducts(L, quant, r);
      L("      } else");
    }
    L("      for (int j = j0; j < j1; j++) {");
    unrolled(L, `      for (int p = 0; p < ${r.maps}; p++) {`);
    L(`        const double x = prob(p, j), w = ${probs ? level("x", "pStep[p]", probLevels, false) : "x"};`);
    unrolled(L, `        for (int c = 0; c < ${r.vpl}; c++) if (lane + 32 * c < ${r.dv}) acc[p][c] += w * value(j, c);`);
    L("      }");
    L("      }");
  });
}

/** Keys whose integer products one int sum holds: 16384 · 255 · 127 < 2^31. */
const CHUNK = 16384;

/**
 * The P·V product of a kept block over integer levels (target probs with V's levels): with one
 * step per group of probabilities (the row, or this block) and one per V column,
 * Σ_j (l_j·step)(u_jc·vStep_c) = step·vStep_c·Σ_j l_j·u_jc, and the integer sum is exact, so the
 * result is the level·step arithmetic's. Four keys' levels are packed into the bytes of a word
 * and multiplied with __dp4a (sm_61+; the emulation header has it), which is signed: 8-bit
 * probability levels reach 255, so they are packed as l - 128 and 128·Σ u is added back.
 * Nothing else in the kernel is an integer product: q and k are not quantised, the softmax of
 * levels is no level, and without V's levels P·V multiplies by real values.
 */
function integerProducts(L: (s: string) => void, quant: AttentionQuant, r: QuantRow): void {
  const probLevels = quantLevels(quant.bits, false);
  const offset = quant.bits === 8 ? " - 128" : "";
  const chunked = quant.block > CHUNK;
  const [from, to] = chunked ? ["c0", "c1"] : ["j0", "j1"];
  if (chunked) L(`      for (int c0 = j0; c0 < j1; c0 += ${CHUNK}) { const int c1 = c0 + ${CHUNK} < j1 ? c0 + ${CHUNK} : j1;`);
  L(`      int dots[${r.maps}][${r.vpl}] = {};`);
  L(`      for (int j4 = ${from}; j4 < ${to}; j4 += 4) {`);
  L(`        unsigned int lWords[${r.maps}] = {}, uWords[${r.vpl}] = {};`);
  // Uniform over the warp (the scores shuffle): every lane packs the same four keys.
  L(`        for (int e = 0; e < 4 && j4 + e < ${to}; e++) {`);
  L("          const int j = j4 + e;");
  unrolled(L, `          for (int p = 0; p < ${r.maps}; p++) { const int l = pStep[p] > 0 ? (int)${quantLevel(D, "prob(p, j)", "pStep[p]", probLevels, false)} : 0; lWords[p] |= (unsigned int)((l${offset}) & 0xff) << (8 * e); }`);
  unrolled(L, `          for (int c = 0; c < ${r.vpl}; c++) uWords[c] |= (unsigned int)(vLevel(j, c) & 0xff) << (8 * e);`);
  L("        }");
  unrolled(L, `        for (int p = 0; p < ${r.maps}; p++)`);
  unrolled(L, `        for (int c = 0; c < ${r.vpl}; c++) dots[p][c] = __dp4a((int)lWords[p], (int)uWords[c], dots[p][c])${offset ? " + 128 * __dp4a((int)uWords[c], 0x01010101, 0)" : ""};`);
  L("      }");
  unrolled(L, `      for (int p = 0; p < ${r.maps}; p++)`);
  unrolled(L, `      for (int c = 0; c < ${r.vpl}; c++) acc[p][c] += (double)dots[p][c] * pStep[p] * vStep[c];`);
  if (chunked) L("      }");
}
