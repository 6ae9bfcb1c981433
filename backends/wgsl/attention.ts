// The WGSL streaming attention kernels, flash_attention and flash_diffattn: one invocation per
// query row and head walks the keys it sees with an online softmax per map (running max m,
// sum l and a private accumulator of dv values, FlashAttention's recurrence), then the
// epilogue: p1 - λ p2 weights (a map that saw no key weighs 0), the per-head RMSNorm and the
// scale. Memory is O(N·d): no N×M map exists. Layouts, the causal rule and the epilogue come
// from the IR (attention-geometry.ts, flash.ts). Not yet tiled: K and V are read from storage
// by every row (workgroup tiles in workgroup memory are the next step for speed).
import type { Node } from "../../compiler/ir/graph.ts";
import { type Arith, attentionGeometry, causalRule } from "../../compiler/ir/ops/attention-geometry.ts";
import { epilogueOutput, flashEpilogue, normDenominator } from "../../compiler/ir/ops/flash.ts";
import type { Dim, TensorType } from "../../compiler/ir/types.ts";
import { type Monomial, monomialOf } from "../../common/size.ts";
import { type BufferParam, dimParam, int, type Kernel } from "../common/kernel/ir.ts";
import { columnExpr, entryLayout } from "../common/attention.ts";
import { sizesOf } from "../common/layout.ts";
import { WGSL_WORKGROUP_SIZE, wgslLanguage } from "./language.ts";

/** Arith over WGSL source: integers for the causal rule, f32 for the epilogue. */
const integers: Arith<string> = {
  num: (c) => `${c}i`,
  add: (a, b) => `(${a} + ${b})`,
  sub: (a, b) => `(${a} - ${b})`,
  mul: (a, b) => `(${a} * ${b})`,
  div: (a, b) => `(${a} / ${b})`,
  min: (a, b) => `min(${a}, ${b})`,
  max: (a, b) => `max(${a}, ${b})`,
  sqrt: (a) => `sqrt(${a})`,
};
const floats: Arith<string> = { ...integers, num: (c) => wgslLanguage.literal(c, "f32") };

/** The kernel of a flash_attention or flash_diffattn node: its WGSL, and the Kernel the loader and manifest read. */
export function flashAttentionKernel(name: string, node: Node, types: TensorType[], use: (helper: string) => void): { kernel: Kernel; source: string } {
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
  const load = (buffer: string, t: TensorType, index: string) => wgslLanguage.load(buffer, t.dtype, index, use);
  const buffers: BufferParam[] = [{ name: "out", dtype: node.type.dtype, access: "write" }, ...types.map((t, i) => ({ name: `in${i}`, dtype: t.dtype, access: "read" as const }))];
  const column = (xs: number[], index: string) => columnExpr(xs, index, (x) => `${x}i`, (c, a, b) => `select(${b}, ${a}, ${c})`);
  const { entryStrides, lambdaStrides, offsets } = entryLayout(geo, types);
  const batchSizes = sizesOf(batch);
  const mapRange = Array.from({ length: maps }, (_, p) => p);
  const L: string[] = [];
  const line = (s: string) => L.push(`  ${s}`);
  const rowsPerGroup = WGSL_WORKGROUP_SIZE;
  // Keys per tile: K of both maps and V in workgroup memory, within 16 KiB (SwiftShader offers 32).
  const bc = Math.max(1, Math.min(32, Math.floor(4096 / (maps * d + dv))));
  line(`let rows = ${size(monomialOf([n as Dim]))};`);
  line(`let keys = ${size(monomialOf([m as Dim]))};`);
  line(`let rowTiles = (rows + ${rowsPerGroup - 1}i) / ${rowsPerGroup}i;`);
  line(`let tiles = ${size(monomialOf(batch))} * ${heads}i * rowTiles;`);
  line("let lane = i32(local.x);");
  // The tile loop and the key-tile loop are uniform over the workgroup: every invocation reaches every barrier.
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
  const visible = (row: string) => (geo.causal ? causalRule.visibleKeys(integers, row, "rows", "keys") : "keys");
  line(`  let lastRow = min(rowTile * ${rowsPerGroup}i + ${rowsPerGroup - 1}i, rows - 1i);`);
  line(`  let end = ${visible("lastRow")};`);
  line(`  let seen = select(0i, ${visible("i")}, live);`);
  line(`  var mx = array<f32, ${maps}>(${mapRange.map(() => "-bitcast<f32>(F32_INF)").join(", ")});`);
  line(`  var sum = array<f32, ${maps}>();`);
  line(`  var acc = array<f32, ${maps * dv}>();`);
  line(`  var qv = array<f32, ${maps * d}>();`);
  mapRange.forEach((p) => line(`  if (live) { for (var t = 0i; t < ${d}i; t++) { qv[${p * d}i + t] = ${load("in0", q, `oQ + i * ${width(q)}i + ${column(geo.qColumns[p], "h")} + t`)}; } }`));
  line(`  for (var j0 = 0i; j0 < end; j0 += ${bc}i) {`);
  line("    workgroupBarrier();");
  mapRange.forEach((p) =>
    line(`    for (var t = lane; t < ${bc * d}i; t += ${rowsPerGroup}i) { let j = j0 + t / ${d}i; kTile[${p * bc * d}i + t] = select(0.0, ${load("in1", k, `oK + min(j, keys - 1i) * ${width(k)}i + ${column(geo.kColumns[p], "g")} + t % ${d}i`)}, j < keys); }`),
  );
  const vColumn = geo.vColumns.length === 1 ? `${column(geo.vColumns[0], "g")} + c` : `select(${column(geo.vColumns[1], "g")} + c - ${geo.vSegment}i, ${column(geo.vColumns[0], "g")} + c, c < ${geo.vSegment}i)`;
  line(`    for (var t = lane; t < ${bc * dv}i; t += ${rowsPerGroup}i) { let j = j0 + t / ${dv}i; let c = t % ${dv}i; vTile[t] = select(0.0, ${load("in2", v, `oV + min(j, keys - 1i) * ${width(v)}i + ${vColumn}`)}, j < keys); }`);
  line("    workgroupBarrier();");
  line(`    for (var jj = 0i; jj < ${bc}i && j0 + jj < seen; jj++) {`);
  for (const p of mapRange) {
    line("      {");
    line("        var s = 0.0;");
    line(`        for (var t = 0i; t < ${d}i; t++) { s += qv[${p * d}i + t] * kTile[${p * bc * d}i + jj * ${d}i + t]; }`);
    line(`        s *= ${wgslLanguage.literal(geo.scale, "f32")};`);
    line(`        let next = max(mx[${p}], s);`);
    line(`        let correction = exp(mx[${p}] - next);`);
    line("        let e = exp(s - next);");
    line(`        sum[${p}] = sum[${p}] * correction + e;`);
    line(`        for (var c = 0i; c < ${dv}i; c++) { acc[${p * dv}i + c] = acc[${p * dv}i + c] * correction + e * vTile[jj * ${dv}i + c]; }`);
    line(`        mx[${p}] = next;`);
    line("      }");
  }
  line("    }");
  line("  }");
  // Only live rows store; a `continue` here would make the next tile's barriers non-uniform.
  line("  if (live) {");
  const weight = (p: number) => `select(0.0, 1.0 / sum[${p}], sum[${p}] > 0.0)`;
  line(`  let w0 = ${weight(0)};`);
  if (maps === 2) {
    line(`  let lam = ${load("in3", lambda, `oLam + i * (${size(lambdaStrides[batch.length])}) + h * (${size(lambdaStrides[batch.length + 1])})`)};`);
    line(`  let w1 = ${weight(1)} * lam;`);
  }
  const y = (c: string) => `(acc[${c}] * w0${maps === 2 ? ` - acc[${dv}i + ${c}] * w1` : ""})`;
  if (epilogue.normWeight) {
    line("  var squares = 0.0;");
    line(`  for (var c = 0i; c < ${dv}i; c++) { squares += ${y("c")} * ${y("c")}; }`);
    line(`  let denom = ${normDenominator(floats, epilogue, "squares", dv)};`);
  }
  line(`  let none = ${mapRange.map((p) => `sum[${p}] == 0.0`).join(" && ")};`);
  line(`  let o = oOut + (i * ${heads}i + h) * ${dv}i;`);
  const value = epilogueOutput(floats, epilogue, y("c"), epilogue.normWeight ? { denom: "denom", weight: load("in4", normWeight, "c") } : undefined);
  line(`  for (var c = 0i; c < ${dv}i; c++) { ${wgslLanguage.store("out", node.type.dtype, "o + c", `select(${value}, 0.0, none)`, use)} }`);
  line("  }");
  line("}");
  const grid = [monomialOf([...batch, n as Dim, heads])];
  // The language table's kernel wrapper declares the bindings and dims; its one grid loop is the
  // tile loop above, which also needs the workgroup's id (uniform, for the barriers) and the lane.
  const kernel: Kernel = { name, buffers, dims, grid, errors: [], body: [{ kind: "loop", index: "tile", start: int(0), end: int(0), step: 1, scope: "grid", body: [] }] };
  const wrapped = wgslLanguage
    .kernel(kernel, L)
    .replace("@builtin(num_workgroups) workgroups: vec3<u32>)", "@builtin(num_workgroups) workgroups: vec3<u32>, @builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>)")
    .replace("@compute", `var<workgroup> kTile: array<f32, ${maps * bc * d}>;\nvar<workgroup> vTile: array<f32, ${bc * dv}>;\n@compute`);
  return { kernel, source: wrapped };
}
