// Streaming attention kernels of the JS backend: flash_attention and flash_diffattn
// (FlashAttention, Dao et al. 2022). Per batch entry and kv head, K and V are packed once into
// float64 scratch; then a tile of ROWS query rows walks the keys in blocks of `block`, keeping
// per row and map an online-softmax state, the running max m and sum l, and the block's
// exponentials exp(s - m) in a buffer of ROWS rows × M keys. When the keys end, one pass turns
// the buffers into the weights p1 - λ p2 (exp(m_block - m) / l brings each block to the final m)
// and one W · V gives the output, then the epilogue. Deferring P · V this way reads each K and V
// tile once for both maps and spends 8·N²·d flops per head, where an accumulator per map
// (acc1/l1 - λ acc2/l2) spends 12·N²·d. Scratch is O(M·d) for the packed K and V plus O(M) per
// tile: no N×M map exists.
//
// The loops over keys (q k^T, the softmax step, the combination of the maps, W · V) run as
// WebAssembly SIMD (attention-wasm.ts), about three times the speed of the same loops in JS; packing,
// masks, per-block weights and the epilogue are JS. All scratch lives in one typed array F over
// the wasm module's memory, which both read (Float32Array in f32, Float64Array in f64); the
// memory keeps its largest size.
//
// What the kernel computes is the IR's: head layouts, GQA groups, scale, causal rule
// (compiler/ir/ops/attention-geometry.ts) and epilogue (flash.ts) are read or rendered from
// there, never derived here.
import type { Node } from "../../compiler/ir/graph.ts";
import type { Dim, TensorType } from "../../compiler/ir/types.ts";
import { type Arith, type AttentionGeometry, attentionGeometry, causalRule } from "../../compiler/ir/ops/attention-geometry.ts";
import { epilogueOutput, type FlashEpilogue, flashEpilogue, normDenominator } from "../../compiler/ir/ops/flash.ts";
import { type AttentionQuant, attentionQuant, quantizeValue, quantLevels, type QuantArith } from "../../compiler/ir/ops/attention-quant.ts";
import { type Monomial, monomialOf } from "../../common/size.ts";
import { broadcastStrides, coalesce, sizesOf, strides, times } from "../common/layout.ts";
import { loadExpr, storeExpr } from "./spelling.ts";
import { attentionModule, F32X4, F32X4_FMA, F64X2, type Lanes, paddedWidth } from "./attention-wasm.ts";
import type { Precision } from "../common/target.ts";
import { templateSource } from "./template/source.ts";

/** The loader every attention module is an instance of, as the artifact carries it. */
const LOADER = templateSource("attention-simd.js");

/** The helper that holds the module for head width d, value width dv and number of maps. */
const simdHelper = (d: number, dv: number, maps: number, lanes: Lanes) => `attentionSimd_${d}_${dv}_${maps}_${lanes.precision}`;

/** Source of the attention helpers: attentionSimd, and one module per (d, dv); undefined for other names. */
export function attentionHelperSource(name: string): string | undefined {
  if (name === "attentionSimd") return LOADER;
  const widths = name.match(/^attentionSimd_(\d+)_(\d+)_([12])_(f32|f64)$/);
  if (!widths) return undefined;
  // In f32, a module with relaxed SIMD's fused multiply-add first, for the engines that have it.
  const candidates = widths[4] === "f32" ? [F32X4_FMA, F32X4] : [F64X2];
  const modules = candidates.map((lanes) => `new Uint8Array([${attentionModule(Number(widths[1]), Number(widths[2]), ROWS, Number(widths[3]) as 1 | 2, lanes).join(",")}])`);
  return `const ${name} = attentionSimd([${modules.join(", ")}], ${candidates[0].bytes});`;
}

/** What the template needs of the kernel writer (kernels.ts). */
interface Writer {
  readonly helpers: Set<string>;
  size(m: Monomial): string;
  line(s: string): void;
  open(s: string): void;
  close(s?: string): void;
  loops(sizes: Monomial[], accesses: { offset: string; strides: Monomial[] }[], body: (offsets: string[]) => void, tag?: string): void;
  split(work: Monomial): { part: string; parts: string };
}

/**
 * Query rows per tile: each K and V tile read serves this many rows, so that the products run
 * from cache (4 rows re-read K and V from L3 for every 4 queries and ran at half the speed).
 */
export const ROWS = 16;

/** Arith over JS source: the IR's causal rule and epilogue rendered as expressions of the generated code. */
const SOURCE: Arith<string> = {
  num: (c) => (c < 0 ? `(${c})` : String(c)),
  add: (a, b) => `(${a} + ${b})`,
  sub: (a, b) => `(${a} - ${b})`,
  mul: (a, b) => `(${a} * ${b})`,
  div: (a, b) => `(${a} / ${b})`,
  min: (a, b) => `Math.min(${a}, ${b})`,
  max: (a, b) => `Math.max(${a}, ${b})`,
  sqrt: (a) => `Math.sqrt(${a})`,
};

/** SOURCE with the level rule's rounding: the kernel IR's roundHalfEven, rendered as a helper. */
function quantSource(helpers: Set<string>): QuantArith<string> {
  return { ...SOURCE, roundHalfEven: (a) => (helpers.add("roundHalfEven"), `roundHalfEven(${a})`) };
}

/**
 * Quantises F[at(j)] for keys j in [start, stop) in place, the quantised ops' level rule
 * (attention-quant.ts): step = max|x| / levels, nothing where that max is 0 or not finite. `at`
 * maps the source name of a key to its offset. (V's levels, once per kv group; the maps' are
 * quantizeGroup's, in wasm.)
 */
function quantizeKeys(w: Writer, start: string, stop: string, at: (j: string) => string, bits: number, signed: boolean): void {
  const levels = quantLevels(bits, signed);
  const x = `F[${at("j")}]`;
  w.open("{");
  w.line(`let amax = 0;`);
  // A NaN max stays NaN (a later x > NaN is false): the group is then left as it is.
  w.line(`for (let j = ${start}; j < ${stop}; j++) { const a = Math.abs(${x}); if (a > amax || a !== a) amax = a; }`);
  w.open("if (amax > 0 && amax < Infinity) {");
  w.line(`const step = amax / ${levels};`);
  w.line(`for (let j = ${start}; j < ${stop}; j++) ${x} = ${quantizeValue(quantSource(w.helpers), x, "step", levels, signed)};`);
  w.close();
  w.close();
}

/**
 * Offsets into F. Fixed regions: per map, the tile's q rows transposed (qt[t * 16 + r]) and m and
 * l per row; the tile's outputs (acc[r * dv + c]); the quantised kernels' group sizes and maxima. After them, at offsets that depend on the
 * number of keys: K per map, row-major; V in column pairs (v[c - c % 2][j][c % 2]), so that the
 * inner loop of W · V reads both values of a pair side by side; per map the tile's
 * probabilities, key-major (pr[j * 16 + r]), and the running max each key block was
 * exponentiated against (blockMax[b * 16 + r]).
 */
interface Scratch {
  /** Bytes per element of F: the wasm loops take byte offsets. */
  bytes: number;
  qt: number[];
  acc: number;
  rowMax: number;
  rowSum: number;
  /** The quantised kernels': each row's number of keys in the group being quantised, and per map each row's largest value in it. */
  stops: number;
  maxes: number;
  fixed: number;
}

function scratch(lanes: Lanes, maps: number, d: number, dvp: number): Scratch {
  let next = 0;
  const take = (n: number) => (next += n) - n;
  const s = { qt: Array.from({ length: maps }, () => take(ROWS * d)), acc: take(ROWS * dvp), rowMax: take(ROWS * maps), rowSum: take(ROWS * maps), stops: take(ROWS), maxes: take(ROWS * maps) };
  return { bytes: lanes.bytes, ...s, fixed: next };
}

const lastDim = (t: TensorType) => t.shape[t.shape.length - 1] as number;

export function flashAttention(w: Writer, node: Node, types: TensorType[], precision: Precision): void {
  const geo = attentionGeometry(node.op, types, node.attrs);
  const { maps, heads, d, dv, batch, n, m } = geo;
  const diff = maps === 2;
  const [q, k, v, lambda] = types;
  const [qW, kW, vW] = [q, k, v].map(lastDim);
  const block = node.attrs.block as number;
  const quant = node.op.startsWith("qflash_") ? attentionQuant(node.attrs) : undefined;
  // The quantised kernels compute in f64 in either precision: their levels are the interpreter's, bit for bit.
  const lanes = precision === "f32" && !quant ? F32X4 : F64X2;
  // The tile's outputs, row by row, dv rounded up to whole v128s: W · V writes column groups.
  const dvp = paddedWidth(lanes, dv);
  const f = scratch(lanes, maps, d, dvp);
  w.helpers.add(simdHelper(d, dv, maps, lanes));
  const mapIndices = Array.from({ length: maps }, (_, p) => p);

  w.line(`const rows = ${w.size(monomialOf([n]))}, keys = ${w.size(monomialOf([m]))}, blocks = Math.ceil(keys / ${block});`);
  w.line(`const ${mapIndices.map((p) => `kBase${p} = ${f.fixed} + ${p * d} * keys`).join(", ")}, vBase = ${f.fixed} + ${maps * d} * keys;`);
  w.line(`const ${mapIndices.map((p) => `prBase${p} = vBase + ${dvp + p * ROWS} * keys`).join(", ")};`);
  w.line(`const ${mapIndices.map((p) => `blockMax${p} = prBase0 + ${maps * ROWS} * keys + ${p * ROWS} * blocks`).join(", ")};`);
  w.line(`const weights = blockMax0 + ${maps * ROWS} * blocks, floats = weights + ${maps * ROWS} * blocks;`);
  w.line(`const simd = ${simdHelper(d, dv, maps, lanes)}(floats), visible = new Int32Array(${ROWS});`);
  if (quant && (quant.target === "probs" || quant.threshold > 0)) w.line("const keptBlocks = new Uint8Array(blocks);");
  w.line(`const F = new Float${8 * lanes.bytes}Array(simd.memory.buffer, 0, floats).fill(0);`);
  geo.qColumns.forEach((c, p) => w.line(`const qCol${p} = [${c.join(", ")}];`));
  geo.kColumns.forEach((c, p) => w.line(`const kCol${p} = [${c.join(", ")}];`));
  geo.vColumns.forEach((c, s) => w.line(`const vCol${s} = [${c.join(", ")}];`));
  w.line(`const groupHeads = [${Array.from({ length: geo.kvHeads }, (_, g) => `[${geo.headsOfGroup(g).join(", ")}]`).join(", ")}];`);

  // Batch entries: offsets of out, q, k, v (and λ), batch dims broadcast.
  const perEntry = (t: TensorType, rowsDim: Dim) => monomialOf([rowsDim, lastDim(t)]);
  const accesses = [
    strides(batch).map((s) => times(s, monomialOf([n, heads, dv]))),
    broadcastStrides(q.shape.slice(0, -2), batch).map((s) => times(s, perEntry(q, n))),
    broadcastStrides(k.shape.slice(0, -2), batch).map((s) => times(s, perEntry(k, m))),
    broadcastStrides(v.shape.slice(0, -2), batch).map((s) => times(s, perEntry(v, m))),
  ];
  const lambdaStrides = diff ? broadcastStrides(lambda.shape, [...batch, n, heads]) : [];
  if (diff) accesses.push(lambdaStrides.slice(0, batch.length));
  const flat = coalesce(sizesOf(batch), accesses.map((s) => ({ strides: s })));
  // This call's share of the work over threads: whole kv groups (batch entries × kv heads)
  // round robin where there are at least as many as parts, else query tiles round robin
  // (each thread then packs every group's K and V itself). Every row is computed by the same
  // code whoever computes it: the same bits for any number of parts.
  // Multiply-adds: q·kᵀ per map and W · V, for every head, query row and key.
  const { part, parts } = w.split(times(monomialOf([...batch, n, m]), monomialOf([], heads * (maps * d + dv))));
  w.line(`const byGroup = ${w.size(monomialOf([...batch, geo.kvHeads]))} >= ${parts};`);
  w.line("let group = 0, tile = 0;");
  w.loops(flat.sizes, flat.strides.map((s) => ({ offset: "0", strides: s })), ([oBatch, qBatch, kBatch, vBatch, lBatch]) => {
    // Per kv group: K and V packed once, then every q-head of the group.
    w.open(`for (let g = 0; g < ${geo.kvHeads}; g++) {`);
    w.line(`if (group++ % ${parts} !== ${part} && byGroup) continue;`);
    pack(w, { geo, kW, vW, maps: mapIndices, kBatch, vBatch, k, v, lanes });
    if (quant && quant.vBits > 0) {
      // V's levels per channel over all keys (a column of v is a column of the packed pairs).
      w.open(`for (let c = 0; c < ${dv}; c++) {`);
      w.line(`const lane = c % ${lanes.count};`);
      quantizeKeys(w, "0", "keys", (j) => `vBase + (c - lane) * keys + ${lanes.count} * ${j} + lane`, quant.vBits, true);
      w.close();
    }
    w.open("for (const h of groupHeads[g]) {");
    w.open(`for (let i0 = 0; i0 < rows; i0 += ${ROWS}) {`);
    w.line(`if (!byGroup && tile++ % ${parts} !== ${part}) continue;`);
    // The tile's q rows; past the last row, the last row again (computed, never stored).
    w.open(`for (let r = 0; r < ${ROWS}; r++) {`);
    w.line("const i = i0 + r < rows ? i0 + r : rows - 1;");
    w.line(`visible[r] = ${geo.causal ? causalRule.visibleKeys(SOURCE, "i", "rows", "keys") : "keys"};`);
    w.line(`const qRow = ${qBatch} + i * ${qW};`);
    for (const p of mapIndices) w.line(`for (let t = 0; t < ${d}; t++) F[${f.qt[p]} + t * ${ROWS} + r] = ${loadExpr(q.dtype, "in0", `qRow + qCol${p}[h] + t`, w.helpers)};`);
    w.close();
    w.line(`F.fill(-Infinity, ${f.rowMax}, ${f.rowMax + ROWS * maps}); F.fill(0, ${f.rowSum}, ${f.rowSum + ROWS * maps});`);
    // Key blocks past what the tile's last row sees are skipped whole: the causal rule's count never falls as i grows.
    w.line(`const end = visible[${ROWS - 1}];`);
    // Per key block and map: scores, the causal mask, the online-softmax step. Logits quantised
    // per row need the whole row first: then the scores of every block come before any softmax.
    const blockLoop = (body: () => void) => {
      w.open(`for (let j0 = 0, b = 0; j0 < end; j0 += ${block}, b++) {`);
      w.line(`const j1 = j0 + ${block} < end ? j0 + ${block} : end;`);
      body();
      w.close();
    };
    const pr = (p: number) => `prBase${p} + j0 * ${ROWS}`;
    const logits = quant?.target === "logits" ? quant : undefined;
    const scores = () => {
      for (const p of mapIndices) {
        w.line(`simd.scores(${f.qt[p] * f.bytes}, (kBase${p} + j0 * ${d}) * ${f.bytes}, (${pr(p)}) * ${f.bytes}, j1 - j0, ${geo.scale});`);
        if (geo.causal) w.line(`for (let r = 0; r < ${ROWS}; r++) for (let j = visible[r] > j0 ? visible[r] : j0; j < j1; j++) F[${pr(p)} + (j - j0) * ${ROWS} + r] = -Infinity;`);
        if (logits?.granularity === "block") {
          if (p === 0) blockStops(w, f);
          quantizeGroup(w, f, p, `prBase${p} + j0 * ${ROWS}`, "j1 - j0", logits.bits, true);
        }
      }
    };
    const softmax = () => {
      for (const p of mapIndices) w.line(`simd.softmax((${pr(p)}) * ${f.bytes}, j1 - j0, (blockMax${p} + b * ${ROWS}) * ${f.bytes}, ${(f.rowMax + p * ROWS) * f.bytes}, ${(f.rowSum + p * ROWS) * f.bytes});`);
    };
    if (logits?.granularity === "row") {
      blockLoop(scores);
      rowStops(w, f);
      for (const p of mapIndices) quantizeGroup(w, f, p, `prBase${p}`, "end", logits.bits, true);
      blockLoop(softmax);
    } else
      blockLoop(() => {
        scores();
        softmax();
      });
    w.open("if (end > 0) {");
    const combineArgs = { f, diff, lambda, lambdaStrides, batchRank: batch.length, lBatch, heads, block };
    w.line(`F.fill(0, ${f.acc}, ${f.acc + ROWS * dvp});`);
    if (quant && (quant.target === "probs" || quant.threshold > 0)) {
      sparsify(w, combineArgs, quant);
      // W · V over the runs of key blocks that some row of the tile kept: a block every row
      // skipped is never read.
      w.open(`for (let b0 = 0; b0 < blocks && b0 * ${block} < end; ) {`);
      w.line("if (!keptBlocks[b0]) { b0++; continue; }");
      w.line(`let b1 = b0 + 1; while (b1 < blocks && b1 * ${block} < end && keptBlocks[b1]) b1++;`);
      w.line(`const j0 = b0 * ${block}, j1 = b1 * ${block} < end ? b1 * ${block} : end;`);
      w.line(`simd.weighted((prBase0 + j0 * ${ROWS}) * ${f.bytes}, (vBase + ${lanes.count} * j0) * ${f.bytes}, ${f.acc * f.bytes}, j1 - j0, keys);`);
      w.line("b0 = b1;");
      w.close();
    } else {
      combine(w, combineArgs);
      w.line(`simd.weighted(prBase0 * ${f.bytes}, vBase * ${f.bytes}, ${f.acc * f.bytes}, end, keys);`);
    }
    w.close();
    epilogue(w, { f, maps, dv, dvp, heads, oBatch, normWeight: types[4], epilogue: flashEpilogue(node.op, types, node.attrs), out: node.type });
    w.close();
    w.close();
    w.close();
  }, "b");
}

interface PackArgs {
  geo: AttentionGeometry;
  lanes: Lanes;
  kW: number;
  vW: number;
  maps: number[];
  kBatch: string;
  vBatch: string;
  k: TensorType;
  v: TensorType;
}

/** K of kv group g for each map, and its value vectors (its v segments in order) in column pairs. */
function pack(w: Writer, x: PackArgs): void {
  const { d, vSegment: seg } = x.geo;
  w.open("for (let j = 0; j < keys; j++) {");
  w.line(`const kRow = ${x.kBatch} + j * ${x.kW}, vRow = ${x.vBatch} + j * ${x.vW};`);
  for (const p of x.maps) {
    // f32 rows copy natively (into F of either precision, exactly); 16-bit ones decode one by one.
    if (x.k.dtype === "f32") w.line(`F.set(in1.subarray(kRow + kCol${p}[g], kRow + kCol${p}[g] + ${d}), kBase${p} + j * ${d});`);
    else w.line(`for (let t = 0; t < ${d}; t++) F[kBase${p} + j * ${d} + t] = ${loadExpr(x.k.dtype, "in1", `kRow + kCol${p}[g] + t`, w.helpers)};`);
  }
  x.geo.vColumns.forEach((_, s) => {
    w.open(`for (let c = ${s * seg}; c < ${(s + 1) * seg}; c++) {`);
    w.line(`const lane = c % ${x.lanes.count};`);
    w.line(`F[vBase + (c - lane) * keys + ${x.lanes.count} * j + lane] = ${loadExpr(x.v.dtype, "in2", `vRow + vCol${s}[g] + c${s ? ` - ${s * seg}` : ""}`, w.helpers)};`);
    w.close();
  });
  w.close();
}

interface CombineArgs {
  f: Scratch;
  diff: boolean;
  lambda?: TensorType;
  lambdaStrides: Monomial[];
  batchRank: number;
  lBatch: string;
  heads: number;
  block: number;
}

/**
 * The weights of the tile's one W · V, in place of map 0's probabilities: per row and key block,
 * exp(blockMax - m) / l brings the block's exponentials to the final softmax (computed here, a
 * few per row and block); flash_diffattn subtracts λ times map 1's (the multiply-subtract per
 * key runs in wasm). One W · V for both maps costs 8·N²·d flops per head where two online
 * accumulators would cost 12·N²·d.
 */
function combine(w: Writer, x: CombineArgs): void {
  const { f } = x;
  const maps = x.diff ? 2 : 1;
  w.open(`for (let r = 0; r < ${ROWS}; r++) {`);
  rowWeights(w, x, true);
  w.open(`for (let j0 = 0, b = 0, y = weights + r; j0 < end; j0 += ${x.block}, b++, y += ${maps * ROWS}) {`);
  w.line(`F[y] = ${blockWeight(0)};`);
  if (x.diff) w.line(`F[y + ${ROWS}] = ${blockWeight(1)};`);
  w.close();
  w.close();
  w.line(`simd.combine(prBase0 * ${f.bytes}, ${x.diff ? "prBase1" : "prBase0"} * ${f.bytes}, end, weights * ${f.bytes}, ${x.block});`);
}

/** Row r's m and 1 / l per map (0 where the map saw no key), and λ; map 1's factor times λ when `lambdaInFactor`. */
function rowWeights(w: Writer, x: CombineArgs, lambdaInFactor: boolean): void {
  const { f } = x;
  const factor = (p: number) => `F[${f.rowSum + p * ROWS} + r] === 0 ? 0 : 1 / F[${f.rowSum + p * ROWS} + r]`;
  w.line(`const m0 = F[${f.rowMax} + r], inv0 = ${factor(0)};`);
  if (x.diff) {
    const lamN = w.size(x.lambdaStrides[x.batchRank]);
    const lamH = w.size(x.lambdaStrides[x.batchRank + 1]);
    w.line("const i = i0 + r < rows ? i0 + r : rows - 1;");
    w.line(`const lam = ${loadExpr(x.lambda!.dtype, "in3", `${x.lBatch} + i * ${lamN} + h * ${lamH}`, w.helpers)};`);
    w.line(`const m1 = F[${f.rowMax + ROWS} + r], inv1 = ${factor(1)}${lambdaInFactor ? " * lam" : ""};`);
  }
}

/** Map p's factor exp(blockMax - m) / l of key block b: a map that saw no key (l = 0, m = -Infinity) weighs 0, not exp(-inf - -inf) * 0 = NaN. */
const blockWeight = (p: number) => `inv${p} === 0 ? 0 : Math.exp(F[blockMax${p} + b * ${ROWS} + r] - m${p}) * inv${p}`;

/**
 * combine for the quantised ops whose probabilities are needed (target "probs", a threshold):
 * each map's exponentials become its final probabilities in place (combine with the map's
 * block weights and 0 for the other), key blocks where every map's fall under the threshold
 * become 0 for that row, the probabilities their levels (attention-quant.ts); then the one W · V
 * weighs the maps by 1 and λ.
 */
function sparsify(w: Writer, x: CombineArgs, quant: AttentionQuant): void {
  const { f } = x;
  const maps = x.diff ? 2 : 1;
  const mapIndices = Array.from({ length: maps }, (_, p) => p);
  const blockWeights = (weight: (p: number) => string) => {
    w.open(`for (let r = 0; r < ${ROWS}; r++) {`);
    rowWeights(w, x, false);
    w.line(`for (let j0 = 0, b = 0, y = weights + r; j0 < end; j0 += ${x.block}, b++, y += ${maps * ROWS}) { ${mapIndices.map((p) => `F[y${p ? ` + ${ROWS}` : ""}] = ${weight(p)};`).join(" ")} }`);
    w.close();
  };
  for (const p of mapIndices) {
    blockWeights((other) => (other === 0 ? blockWeight(p) : "0"));
    w.line(`simd.combine(prBase${p} * ${f.bytes}, prBase${p} * ${f.bytes}, end, weights * ${f.bytes}, ${x.block});`);
  }
  const probs = quant.target === "probs" ? quant : undefined;
  const levels = quant.bits;
  if (quant.threshold > 0 || probs?.granularity === "block") {
    w.open(`for (let j0 = 0; j0 < end; j0 += ${x.block}) {`);
    w.line(`const j1 = j0 + ${x.block} < end ? j0 + ${x.block} : end;`);
    blockStops(w, f);
    // Each row's largest probability per map in the block (before its levels: the skip rule reads those).
    for (const p of mapIndices) quantizeGroup(w, f, p, `prBase${p} + j0 * ${ROWS}`, "j1 - j0", levels, false, probs?.granularity === "block");
    if (quant.threshold > 0) {
      const under = mapIndices.map((p) => `F[${f.maxes + p * ROWS} + r] < ${quant.threshold}`).join(" && ");
      w.line("let kept = 0;");
      w.line(`for (let r = 0; r < ${ROWS}; r++) if (${under}) for (let j = j0; j < j1; j++) { ${mapIndices.map((p) => `F[prBase${p} + j * ${ROWS} + r] = 0;`).join(" ")} } else kept = 1;`);
      w.line(`keptBlocks[j0 / ${x.block}] = kept;`);
    }
    w.close();
  }
  if (quant.threshold === 0) w.line("keptBlocks.fill(1);");
  if (probs?.granularity === "row") {
    rowStops(w, f);
    for (const p of mapIndices) quantizeGroup(w, f, p, `prBase${p}`, "end", levels, false);
  }
  blockWeights((p) => (p === 0 ? "1" : "lam"));
  w.line(`simd.combine(prBase0 * ${f.bytes}, ${x.diff ? "prBase1" : "prBase0"} * ${f.bytes}, end, weights * ${f.bytes}, ${x.block});`);
}

/** Each row's group is its visible keys: stops[r] = visible[r]. */
function rowStops(w: Writer, f: Scratch): void {
  w.line(`for (let r = 0; r < ${ROWS}; r++) F[${f.stops} + r] = visible[r];`);
}

/** Each row's group is its visible keys in the block [j0, j1). */
function blockStops(w: Writer, f: Scratch): void {
  w.line(`for (let r = 0; r < ${ROWS}; r++) F[${f.stops} + r] = visible[r] >= j1 ? j1 - j0 : visible[r] > j0 ? visible[r] - j0 : 0;`);
}

/**
 * The level rule on map p's group starting at key offset `at` (F index), `count` keys, each
 * row's first stops[r] of them, in wasm (quantize): signed with levels ±(2^(bits-1) - 1) or
 * unsigned 0..2^bits - 1; with `apply` false it only finds each row's maximum (maxes).
 */
function quantizeGroup(w: Writer, f: Scratch, p: number, at: string, count: string, bits: number, signed: boolean, apply = true): void {
  const levels = quantLevels(bits, signed);
  w.line(`simd.quantize((${at}) * ${f.bytes}, ${count}, ${f.stops * f.bytes}, ${(f.maxes + p * ROWS) * f.bytes}, ${levels}, ${signed ? -levels : 0}, ${apply ? 1 : 0});`);
}

interface EpilogueArgs {
  f: Scratch;
  maps: number;
  dv: number;
  dvp: number;
  heads: number;
  oBatch: string;
  normWeight?: TensorType;
  epilogue: FlashEpilogue;
  out: TensorType;
}

/** Each real row of the tile: its outputs, then the IR's epilogue (norm and scale); 0 when no map saw a key. */
function epilogue(w: Writer, x: EpilogueArgs): void {
  const { f, dv, dvp, epilogue: e } = x;
  const sawNone = Array.from({ length: x.maps }, (_, p) => `F[${f.rowSum + p * ROWS} + r] === 0`).join(" && ");
  const store = (expr: string) => storeExpr(x.out.dtype, expr, w.helpers);
  w.open(`for (let r = 0; r < ${ROWS} && i0 + r < rows; r++) {`);
  w.line(`const i = i0 + r, o = ${x.oBatch} + (i * ${x.heads} + h) * ${dv}, row = ${f.acc} + r * ${dvp};`);
  w.open(`if (${sawNone}) {`);
  w.line(`for (let c = 0; c < ${dv}; c++) out[o + c] = ${store("0")};`);
  w.line("continue;");
  w.close();
  const value = "F[row + c]";
  let norm: { denom: string; weight: string } | undefined;
  if (e.normWeight) {
    // The sum of squares in column order, as the interpreter's epilogue adds them.
    w.line("let sq = 0;");
    w.line(`for (let c = 0; c < ${dv}; c++) { const y = ${value}; sq += y * y; }`);
    w.line(`const denom = ${normDenominator(SOURCE, e, "sq", dv)};`);
    norm = { denom: "denom", weight: loadExpr(x.normWeight!.dtype, "in4", "c", w.helpers) };
  }
  // A row that the epilogue leaves as it is copies natively (f64 rounds to f32 as a store does).
  if (x.out.dtype === "f32" && !norm && e.outScale === 1) w.line(`out.set(F.subarray(row, row + ${dv}), o);`);
  else w.line(`for (let c = 0; c < ${dv}; c++) out[o + c] = ${store(epilogueOutput(SOURCE, e, value, norm))};`);
  w.close();
}
