// The WGSL streaming attention kernels, flash_attention and flash_diffattn. A workgroup of 64
// invocations owns 64 query rows of one head (an invocation per row) and walks the keys in
// tiles held in workgroup memory, twice: the first walk finds each map's row max m and sum l
// (online, scalars only), the second weighs every key once with its final weight
// w = exp(s1 - m1) / l1 - λ exp(s2 - m2) / l2 and accumulates w·v: one dv-wide accumulator and
// no rescaling, where FlashAttention's one walk keeps one accumulator per map and rescales it
// as the max moves (on a SIMD machine every lane pays that rescale on every key). The q·k dots
// are done twice instead, which costs less than the second accumulator and its rescales.
// Then the epilogue: the per-head RMSNorm and the scale. Memory is O(N·d): no N×M map exists.
// Layouts, the causal rule and the epilogue come from the IR (attention-geometry.ts, flash.ts).
//
// Variants by how many lanes share each read of a tile row (every lane needs the whole row):
// with the `subgroups` feature, a quad's lanes read a quarter each and share them
// (quadBroadcast), or, where subgroups have at least 8 lanes, 8 lanes read an eighth each
// (subgroupBroadcast): a quarter or an eighth of the workgroup-memory reads, which a software
// rasteriser such as lavapipe pays most for. Without subgroups every lane reads the whole row.
import type { Node } from "../../compiler/ir/graph.ts";
import { attentionGeometry, causalRule } from "../../compiler/ir/ops/attention-geometry.ts";
import { epilogueOutput, flashEpilogue, normDenominator } from "../../compiler/ir/ops/flash.ts";
import type { Dim, TensorType } from "../../compiler/ir/types.ts";
import { type Monomial, monomialOf } from "../../common/size.ts";
import { type BufferParam, dimParam, int, type Kernel } from "../common/kernel/ir.ts";
import { columnExpr, entryLayout } from "../common/attention.ts";
import { sizesOf } from "../common/layout.ts";
import { WGSL_WORKGROUP_SIZE, wgslLanguage } from "./language.ts";
import type { Language } from "../common/kernel/render.ts";
import { attentionQuant } from "../../compiler/ir/ops/attention-quant.ts";
import { WGSL_FLOATS, WGSL_INTEGERS } from "./arith.ts";
import { integerProducts, type QuantRowContext, quantizedRow, rowDeclarations } from "./attention-quant.ts";


/**
 * The kernel of a flash_attention, flash_diffattn or qflash node: its WGSL, and the Kernel the
 * loader and manifest read. `sharing`: the lanes that share each tile read (1, 4: a quad, or 8:
 * a subgroup of at least 8 lanes; see above; a qflash kernel reads no tiles: 1); `language`:
 * the spelling of loads and stores (f16 buffers native or packed); `packedDot`: a qflash kernel's
 * integer products as dot4I8Packed (attention-quant.ts).
 */
export function flashAttentionKernel(
  name: string,
  node: Node,
  types: TensorType[],
  use: (helper: string) => void,
  { sharing, language, packedDot = false }: { sharing: 1 | 4 | 8; language: Language; packedDot?: boolean },
): { kernel: Kernel; source: string } {
  const quant = node.op.startsWith("qflash_") ? attentionQuant(node.attrs) : undefined;
  const [q, k, v, lambda, normWeight] = types;
  const geo = attentionGeometry(node.op, types, node.attrs);
  const epilogue = flashEpilogue(node.op, node.operands, node.attrs);
  const { maps, heads, d, dv, batch, n, m } = geo;
  const dims: string[] = [];
  const size = (x: Monomial) =>
    [`${x.coefficient}i`, ...x.symbols.map((s) => {
      if (!dims.includes(s)) dims.push(s);
      return dimParam(dims.indexOf(s));
    })].join(" * ");
  const width = (t: TensorType) => t.shape[t.shape.length - 1] as number;
  const load = (buffer: string, t: TensorType, index: string) => language.load(buffer, t.dtype, index, use);
  const buffers: BufferParam[] = [{ name: "out", dtype: node.type.dtype, access: "write" }, ...types.map((t, i) => ({ name: `in${i}`, dtype: t.dtype, access: "read" as const }))];
  const column = (xs: number[], index: string) => columnExpr(xs, index, (x) => `${x}i`, (c, a, b) => `select(${b}, ${a}, ${c})`);
  const { entryStrides, lambdaStrides, offsets } = entryLayout(geo, types);
  const batchSizes = sizesOf(batch);
  const mapRange = Array.from({ length: maps }, (_, p) => p);
  const L: string[] = [];
  const line = (s: string) => L.push(`  ${s}`);
  const rowsPerGroup = WGSL_WORKGROUP_SIZE;
  // q, k and v rows as vec4s, zero-padded: the loops over them below are unrolled with constant
  // indices, so q and the accumulator stay in registers (an array indexed at run time lives in
  // local memory, one copy per invocation).
  const d4 = Math.ceil(d / 4);
  const dv4 = Math.ceil(dv / 4);
  // Keys per tile: K of every map and V in workgroup memory, within the 16 KiB every adapter offers.
  const bc = Math.max(1, Math.min(32, Math.floor(1024 / (maps * d4 + dv4))));
  const NEG_INF = "-bitcast<f32>(F32_INF)";
  const scale = wgslLanguage.literal(geo.scale, "f32");
  /** A vec4 of four loads, each 0 where `within` (code, or known here) says it is past the row. */
  const vec4 = (scalar: (e: number) => string, within: (e: number) => string | boolean) =>
    `vec4<f32>(${[0, 1, 2, 3].map((e) => { const w = within(e); return w === true ? scalar(e) : w === false ? "0.0" : `select(0.0, ${scalar(e)}, ${w})`; }).join(", ")})`;
  /** Statements that visit vec4 `x` of `count` in the tile row starting at `base`, as `use(x, value)`. */
  const tileRow = (tile: string, base: string, count: number, use: (x: number, value: string) => string): string[] => {
    if (sharing === 1) return Array.from({ length: count }, (_, x) => use(x, `${tile}[${base} + ${x}i]`));
    const out: string[] = [];
    for (let x0 = 0; x0 < count; x0 += sharing) {
      // The sharing lanes read vec4s x0.. of the row, one each; every lane then has them all.
      out.push(`{ let mine = ${tile}[${base} + ${x0}i + min(share, ${Math.min(sharing, count - x0) - 1}i)];`);
      const broadcast = sharing === 4 ? "quadBroadcast" : "subgroupBroadcast";
      for (let x = x0; x < Math.min(x0 + sharing, count); x++) out.push(`  ${use(x, `${broadcast}(mine, ${x - x0}u)`)}`);
      out.push("}");
    }
    return out;
  };
  line(`let rows = ${size(monomialOf([n as Dim]))};`);
  line(`let keys = ${size(monomialOf([m as Dim]))};`);
  line(`let rowTiles = (rows + ${rowsPerGroup - 1}i) / ${rowsPerGroup}i;`);
  line(`let tiles = ${size(monomialOf(batch))} * ${heads}i * rowTiles;`);
  line("let lane = i32(local.x);");
  if (sharing === 4) line("let share = lane % 4i;");
  if (sharing === 8) line("let share = i32(subgroupLane);");
  // Every loop with a barrier or a quad operation in it is uniform over the workgroup.
  line("for (var tile = i32(group.x); tile < tiles; tile += i32(workgroups.x)) {");
  line("  let rowTile = tile % rowTiles;");
  line(`  let h = (tile / rowTiles) % ${heads}i;`);
  line(`  let g = h / ${geo.group}i;`);
  line(`  let i = rowTile * ${rowsPerGroup}i + lane;`);
  line("  let live = i < rows;");
  offsets.forEach((o) => line(`  var ${o} = 0i;`));
  if (batch.length > 0) {
    line(`  var rest = tile / rowTiles / ${heads}i;`);
    batch.map((_, bi) => batch.length - 1 - bi).forEach((di) => {
      line(`  { let at = rest % (${size(batchSizes[di])}); rest = rest / (${size(batchSizes[di])}); ${offsets.map((o, x) => `${o} += at * (${size(entryStrides[x][di])});`).join(" ")} }`);
    });
  }
  const visible = (row: string) => (geo.causal ? causalRule.visibleKeys(WGSL_INTEGERS, row, "rows", "keys") : "keys");
  line(`  let lastRow = min(rowTile * ${rowsPerGroup}i + ${rowsPerGroup - 1}i, rows - 1i);`);
  line(`  let end = ${visible("lastRow")};`);
  line(`  let seen = select(0i, ${visible("i")}, live);`);
  // The quantised row's q is private to the invocation, for its score functions.
  line(`  ${quant ? "" : "var "}qv = array<vec4<f32>, ${maps * d4}>();`);
  mapRange.forEach((p) => {
    for (let t = 0; t < d4; t++) line(`  qv[${p * d4 + t}] = ${vec4((e) => load("in0", q, `oQ + min(i, rows - 1i) * ${width(q)}i + ${column(geo.qColumns[p], "h")} + ${Math.min(4 * t + e, d - 1)}i`), (e) => 4 * t + e < d)};`);
  });
  const loadK = () =>
    mapRange.forEach((p) =>
      line(`    for (var t = lane; t < ${bc * d4}i; t += ${rowsPerGroup}i) { let j = min(j0 + t / ${d4}i, keys - 1i); let c = (t % ${d4}i) * 4i; kTile[${p * bc * d4}i + t] = ${vec4((e) => load("in1", k, `oK + j * ${width(k)}i + ${column(geo.kColumns[p], "g")} + min(c + ${e}i, ${d - 1}i)`), (e) => `c + ${e}i < ${d}i`)}; }`),
    );
  const vColumn = (c: string) => (geo.vColumns.length === 1 ? `${column(geo.vColumns[0], "g")} + ${c}` : `select(${column(geo.vColumns[1], "g")} + ${c} - ${geo.vSegment}i, ${column(geo.vColumns[0], "g")} + ${c}, ${c} < ${geo.vSegment}i)`);
  const loadV = () =>
    line(`    for (var t = lane; t < ${bc * dv4}i; t += ${rowsPerGroup}i) { let j = min(j0 + t / ${dv4}i, keys - 1i); let c = (t % ${dv4}i) * 4i; vTile[t] = ${vec4((e) => load("in2", v, `oV + j * ${width(v)}i + ${vColumn(`min(c + ${e}i, ${dv - 1}i)`)}`), (e) => `c + ${e}i < ${dv}i`)}; }`);
  /** The walk over the key tiles; a key its row does not see scores -inf. */
  const walk = (loads: () => void, perKey: () => void) => {
    line(`  for (var j0 = 0i; j0 < end; j0 += ${bc}i) {`);
    line("    workgroupBarrier();");
    loads();
    line("    workgroupBarrier();");
    line(`    for (var jj = 0i; jj < min(end - j0, ${bc}i); jj++) {`);
    line("      let sees = j0 + jj < seen;");
    mapRange.forEach((p) => {
      line(`      var dots${p} = vec4<f32>(0.0);`);
      tileRow("kTile", `${p * bc * d4}i + jj * ${d4}i`, d4, (t, kv) => `dots${p} = fma(qv[${p * d4 + t}], ${kv}, dots${p});`).forEach((s) => line(`      ${s}`));
      line(`      let s${p} = select(${NEG_INF}, ((dots${p}.x + dots${p}.y) + (dots${p}.z + dots${p}.w)) * ${scale}, sees);`);
    });
    perKey();
    line("    }");
    line("  }");
  };
  const lambdaValue = maps === 2 ? load("in3", lambda, `oLam + min(i, rows - 1i) * (${size(lambdaStrides[batch.length])}) + h * (${size(lambdaStrides[batch.length + 1])})`) : undefined;
  let declarations = [`var<workgroup> kTile: array<vec4<f32>, ${maps * bc * d4}>;`, `var<workgroup> vTile: array<vec4<f32>, ${bc * dv4}>;`];
  if (quant) {
    const kColumn = (p: number) => column(geo.kColumns[p], "g");
    const row: QuantRowContext = {
      maps,
      d4,
      dv4,
      kAt: (p, j) => `oK + min(${j}, keys - 1i) * ${width(k)}i + ${kColumn(p)}`,
      k: (at, t) => vec4((e) => load("in1", k, `${at} + ${Math.min(4 * t + e, d - 1)}i`), (e) => 4 * t + e < d),
      v: (j, c) => vec4((e) => load("in2", v, `oV + min(${j}, keys - 1i) * ${width(v)}i + ${vColumn(`${Math.min(4 * c + e, dv - 1)}i`)}`), (e) => 4 * c + e < dv),
      scale,
      lambda: lambdaValue && "lam",
      packedDot: packedDot && integerProducts(quant),
    };
    if (lambdaValue) line(`  let lam = ${lambdaValue};`);
    quantizedRow(quant, row).forEach((s) => line(`  ${s}`));
    declarations = rowDeclarations(quant, row, "qv");
  } else {
    // First walk: each map's max and sum, online (a rescale of one scalar when the max moves).
    line(`  var mx = array<f32, ${maps}>(${mapRange.map(() => NEG_INF).join(", ")});`);
    line(`  var sum = array<f32, ${maps}>();`);
    walk(loadK, () =>
      mapRange.forEach((p) => {
        line(`      let next${p} = max(mx[${p}], s${p});`);
        // Before the first key the row sees, both are -inf: nothing to rescale.
        line(`      sum[${p}] = select(sum[${p}] * exp(mx[${p}] - next${p}) + exp(s${p} - next${p}), 0.0, next${p} == ${NEG_INF});`);
        line(`      mx[${p}] = next${p};`);
      }),
    );
    // Second walk: every key's final weight (a map that saw no key weighs 0), times v.
    line(`  let w0 = select(0.0, 1.0 / sum[0], sum[0] > 0.0);`);
    if (maps === 2) {
      line(`  let lam = ${lambdaValue};`);
      line(`  let w1 = select(0.0, 1.0 / sum[1], sum[1] > 0.0) * lam;`);
    }
    line(`  var acc = array<vec4<f32>, ${dv4}>();`);
    walk(
      () => {
        loadK();
        loadV();
      },
      () => {
        const weight = mapRange.map((p) => `select(0.0, exp(s${p} - mx[${p}]), sees) * w${p}`);
        line(`      let w = vec4<f32>(${weight.join(" - ")});`);
        tileRow("vTile", `jj * ${dv4}i`, dv4, (c, vv) => `acc[${c}] = fma(w, ${vv}, acc[${c}]);`).forEach((s) => line(`      ${s}`));
      },
    );
  }
  // Only live rows store; a `continue` here would make the next tile's barriers non-uniform.
  line("  if (live) {");
  if (epilogue.normWeight) {
    // Padding columns are zeros: they add nothing to the squares.
    line(`  let squares = ${Array.from({ length: dv4 }, (_, c) => `dot(acc[${c}], acc[${c}])`).join(" + ")};`);
    line(`  let denom = ${normDenominator(WGSL_FLOATS, epilogue, "squares", dv)};`);
  }
  line(`  let none = ${mapRange.map((p) => `sum[${p}] == 0.0`).join(" && ")};`);
  line(`  let o = oOut + (i * ${heads}i + h) * ${dv}i;`);
  const value = epilogueOutput(WGSL_FLOATS, epilogue, "y", epilogue.normWeight ? { denom: "denom", weight: load("in4", normWeight, "c") } : undefined);
  for (let c = 0; c < dv; c++) line(`  { let c = ${c}i; let y = acc[${c >> 2}].${"xyzw"[c & 3]}; ${language.store("out", node.type.dtype, "o + c", `select(${value}, 0.0, none)`, use)} }`);
  line("  }");
  line("}");
  const grid = [monomialOf([...batch, n as Dim, heads])];
  // The language table's kernel wrapper declares the bindings and dims; its one grid loop is the
  // tile loop above, which also needs the workgroup's id (uniform, for the barriers) and the lane.
  const kernel: Kernel = { name, buffers, dims, grid, errors: [], body: [{ kind: "loop", index: "tile", start: int(0), end: int(0), step: 1, scope: "grid", body: [] }] };
  const wrapped = language
    .kernel(kernel, L)
    .replace("@builtin(num_workgroups) workgroups: vec3<u32>)", "@builtin(num_workgroups) workgroups: vec3<u32>, @builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>)")
    .replace("@compute", `${declarations.join("\n")}\n@compute`);
  const withLane = sharing === 8 ? wrapped.replace("@builtin(local_invocation_id) local: vec3<u32>)", "@builtin(local_invocation_id) local: vec3<u32>, @builtin(subgroup_invocation_id) subgroupLane: u32)") : wrapped;
  const directives = [...(sharing > 1 ? ["enable subgroups;"] : []), ...(quant && packedDot && integerProducts(quant) ? ["requires packed_4x8_integer_dot_product;"] : [])];
  return { kernel, source: [...directives, withLane].join("\n") };
}
