// The loops over keys of the streaming attention kernels as WebAssembly SIMD, which JS cannot
// express: q k^T for a tile of query rows against a block of keys, the online-softmax step of a
// block, the combination p1 w1 - p2 w2, and W · V. Each module is specialised at compile time
// (head width, value width, tile rows, maps, precision) like the JS around it. Lanes run across
// query rows or value columns, never across a summed index, so every sum runs in the same order
// as the interpreter's. In f64 (f64x2) the products are bit-identical to scalar float64 code
// (no fused multiply-add changes them); in f32 (f32x4) twice as many lanes run per instruction.
// exp is a polynomial within about 2 ulps of the precision.

import { Body, END, exp, F32, F32_DEMOTE_F64, F64, F64X2, I32, I32_ADD, I32_LT_S, I32_MUL, I32_SUB, IF, type Lanes, mem, V128, V128_AND, V128_BITSELECT, V128_LOAD, V128_OR, V128_STORE, VOID, wasmModule } from "./wasm-encoder.ts";

export { F32X4, F32X4_FMA, F64X2, type Lanes } from "./wasm-encoder.ts";

/**
 * softmax(pr, n, blockMax, rowMax, rowSum): the online-softmax step of one key block for every
 * row (byte offsets; pr[j * rows + r] for keys j < n, the others [r]): m' = max(m, the block's
 * max), NaN sticking; the scores become exp(s - m'), or 0 while m' is -Infinity (only masked
 * keys so far); l' = l exp(m - m') + their sum (l unchanged where m' = m); blockMax = m'.
 * Each lane is one row; each row's sum runs over the keys in order.
 */
function softmaxFunction(L: Lanes, rows: number): Body {
  const f = new Body([["pr", I32], ["n", I32], ["blockMax", I32], ["rowMax", I32], ["rowSum", I32]]);
  const rowBytes = L.bytes * rows;
  f.i32(0).set("o");
  f.i32(rowBytes).set("oEnd");
  f.get("n").i32(rowBytes).op(I32_MUL).set("span");
  f.loopWhileBelow("o", "oEnd", () => {
    f.get("pr").get("o").op(I32_ADD).set("x");
    f.get("x").get("span").op(I32_ADD).set("xEnd");
    // The block's max by pmax, whose chain from key to key is one instruction (IEEE max is
    // several), with a mask of the lanes that met a NaN, which pmax passes over.
    f.op(...L.constant(-Infinity)).set("top", V128);
    f.op(...L.constant(0)).set("nan", V128);
    f.loopWhileBelow("x", "xEnd", () => {
      f.get("x").simd(V128_LOAD, ...mem(0)).set("s", V128);
      f.get("top", V128).get("s", V128).simd(L.pmax).set("top", V128);
      f.get("nan", V128).get("s", V128).get("s", V128).simd(L.ne).simd(V128_OR).set("nan", V128);
      f.bump("x", rowBytes);
    });
    f.op(...L.constant(NaN)).get("top", V128).get("nan", V128).simd(V128_BITSELECT).set("top", V128);
    f.get("rowMax").get("o").op(I32_ADD).simd(V128_LOAD, ...mem(0)).set("old", V128);
    f.get("top", V128).get("old", V128).simd(L.max).set("next", V128);
    f.get("blockMax").get("o").op(I32_ADD).get("next", V128).simd(V128_STORE, ...mem(0));
    f.get("rowMax").get("o").op(I32_ADD).get("next", V128).simd(V128_STORE, ...mem(0));
    f.get("next", V128).op(...L.constant(-Infinity)).simd(L.ne).set("live", V128);
    f.op(...L.constant(0)).set("sum", V128);
    f.get("pr").get("o").op(I32_ADD).set("x");
    f.loopWhileBelow("x", "xEnd", () => {
      f.get("x").simd(V128_LOAD, ...mem(0)).get("next", V128).simd(L.sub).set("s", V128);
      exp(f, L, "s", "e");
      f.get("e", V128).get("live", V128).simd(V128_AND).set("e", V128);
      f.get("x").get("e", V128).simd(V128_STORE, ...mem(0));
      f.get("sum", V128).get("e", V128).simd(L.add).set("sum", V128);
      f.bump("x", rowBytes);
    });
    // l exp(m - m') where m' differs from m (NaN differs from everything), else l.
    f.get("old", V128).get("next", V128).simd(L.sub).set("s", V128);
    exp(f, L, "s", "e");
    f.get("e", V128).op(...L.constant(1)).get("next", V128).get("old", V128).simd(L.ne).simd(V128_BITSELECT).set("e", V128);
    f.get("rowSum").get("o").op(I32_ADD);
    f.get("rowSum").get("o").op(I32_ADD).simd(V128_LOAD, ...mem(0)).get("e", V128).simd(L.mul).get("sum", V128).simd(L.add);
    f.simd(V128_STORE, ...mem(0));
    f.bump("o", 16);
  });
  return f;
}

/**
 * combine(pr0, pr1, n, weights, block): the weights of the tile's one W · V in place of map 0's
 * probabilities, pr0[j * rows + r] = pr0[..] w0[b][r] - pr1[..] w1[b][r] for keys j < n in key
 * block b = floor(j / block), weights[b][map][r] (byte offsets; one map: pr0[..] w0[b][r]).
 */
function combineFunction(L: Lanes, rows: number, maps: number): Body {
  const f = new Body([["pr0", I32], ["pr1", I32], ["n", I32], ["weights", I32], ["block", I32]]);
  const rowBytes = L.bytes * rows;
  f.get("pr1").get("pr0").op(I32_SUB).set("gap");
  f.get("n").i32(rowBytes).op(I32_MUL).get("pr0").op(I32_ADD).set("end");
  f.get("block").i32(rowBytes).op(I32_MUL).set("blockBytes");
  f.get("pr0").set("start");
  f.loopWhileBelow("start", "end", () => {
    // This block's keys: [start, stop).
    f.get("start").get("blockBytes").op(I32_ADD).set("stop");
    f.ifBelow("end", "stop", () => f.get("end").set("stop"));
    f.i32(0).set("o");
    f.i32(rowBytes).set("oEnd");
    f.loopWhileBelow("o", "oEnd", () => {
      f.get("weights").get("o").op(I32_ADD).simd(V128_LOAD, ...mem(0)).set("w0", V128);
      if (maps === 2) f.get("weights").get("o").op(I32_ADD).simd(V128_LOAD, ...mem(rowBytes)).set("w1", V128);
      f.get("start").get("o").op(I32_ADD).set("y");
      f.get("stop").get("o").op(I32_ADD).set("yEnd");
      f.loopWhileBelow("y", "yEnd", () => {
        f.get("y").get("y").simd(V128_LOAD, ...mem(0)).get("w0", V128).simd(L.mul);
        if (maps === 2) f.get("y").get("gap").op(I32_ADD).simd(V128_LOAD, ...mem(0)).get("w1", V128).simd(L.mul).simd(L.sub);
        f.simd(V128_STORE, ...mem(0));
        f.bump("y", rowBytes);
      });
      f.bump("o", 16);
    });
    f.bump("weights", maps * rowBytes);
    f.get("stop").set("start");
  });
  return f;
}

/**
 * quantize(pr, n, stops, maxes, levels, lo, apply): the level rule of the quantised attention
 * ops (compiler/ir/ops/attention-quant.ts) on one group of keys j < n of every row r < rows
 * (pr[j * rows + r], byte offsets): row r's group is its keys j < stops[r] (f64). maxes[r] =
 * the group's largest |x| (NaN if one is NaN); with apply != 0 each x in the group becomes
 * min(levels, max(lo, nearest(x / step))) · step, step = max / levels, where the max is > 0 and
 * finite (else the group stays). f64x2.nearest rounds half to even: the interpreter's rule, bit
 * for bit. Lanes are pairs of rows.
 */
function quantizeFunction(rows: number): Body {
  const f = new Body([["pr", I32], ["n", I32], ["stops", I32], ["maxes", I32], ["levels", F64], ["lo", F64], ["apply", I32]]);
  const rowBytes = 8 * rows;
  f.i32(0).set("o");
  f.i32(rowBytes).set("oEnd");
  f.get("n").i32(rowBytes).op(I32_MUL).set("span");
  f.get("levels", F64).simd(F64X2.splat).set("top", V128);
  f.get("lo", F64).simd(F64X2.splat).set("bottom", V128);
  // The loops assume a key.
  f.i32(0).get("n").op(I32_LT_S, IF, VOID);
  f.loopWhileBelow("o", "oEnd", () => {
    f.get("stops").get("o").op(I32_ADD).simd(V128_LOAD, ...mem(0)).set("stop", V128);
    f.get("pr").get("o").op(I32_ADD).set("x");
    f.get("x").get("span").op(I32_ADD).set("xEnd");
    f.op(...F64X2.constant(0)).set("j", V128);
    f.op(...F64X2.constant(0)).set("amax", V128);
    f.loopWhileBelow("x", "xEnd", () => {
      f.get("x").simd(V128_LOAD, ...mem(0)).simd(F64X2.abs).get("j", V128).get("stop", V128).simd(F64X2.lt).simd(V128_AND);
      f.get("amax", V128).simd(F64X2.max).set("amax", V128);
      f.get("j", V128).op(...F64X2.constant(1)).simd(F64X2.add).set("j", V128);
      f.bump("x", rowBytes);
    });
    f.get("maxes").get("o").op(I32_ADD).get("amax", V128).simd(V128_STORE, ...mem(0));
    f.get("apply").op(IF, VOID);
    f.get("amax", V128).get("top", V128).simd(F64X2.div).set("step", V128);
    f.get("amax", V128).op(...F64X2.constant(0)).simd(F64X2.gt).get("amax", V128).op(...F64X2.constant(Infinity)).simd(F64X2.lt).simd(V128_AND).set("valid", V128);
    f.get("pr").get("o").op(I32_ADD).set("x");
    f.op(...F64X2.constant(0)).set("j", V128);
    f.loopWhileBelow("x", "xEnd", () => {
      f.get("x").simd(V128_LOAD, ...mem(0)).set("v", V128);
      f.get("x");
      f.get("v", V128).get("step", V128).simd(F64X2.div).simd(F64X2.nearest).get("bottom", V128).simd(F64X2.max).get("top", V128).simd(F64X2.min).get("step", V128).simd(F64X2.mul);
      f.get("v", V128);
      f.get("valid", V128).get("j", V128).get("stop", V128).simd(F64X2.lt).simd(V128_AND);
      f.simd(V128_BITSELECT).simd(V128_STORE, ...mem(0));
      f.get("j", V128).op(...F64X2.constant(1)).simd(F64X2.add).set("j", V128);
      f.bump("x", rowBytes);
    });
    f.op(END);
    f.bump("o", 16);
  });
  f.op(END);
  return f;
}

/** The two v128s of a group of query rows (2 · lanes rows) that a step of scores walks together. */
const ROW_VECTORS = [0, 1];

/**
 * scores(qt, k, out, n, scale): for keys j < n and rows r < rows,
 * out[j * rows + r] = scale * sum_t qt[t * rows + r] k[j * d + t] (byte offsets). Four keys
 * per step, then one; within a step the groups of rows (two v128s each) take turns, so the
 * step's keys are read from memory once for the whole tile.
 */
function scoresFunction(L: Lanes, d: number, rows: number): Body {
  const f = new Body([["qt", I32], ["k", I32], ["out", I32], ["n", I32], ["scale", F64]]);
  const acc = (p: number, j: number) => `acc${p}${j}`;
  const rowBytes = L.bytes * rows;
  const step = (keys: number) => {
    const keyIndices = Array.from({ length: keys }, (_, j) => j);
    for (let g = 0; g < rows / (2 * L.count); g++) {
      for (const p of ROW_VECTORS) for (const j of keyIndices) f.op(...L.constant(0)).set(acc(p, j), V128);
      f.get("qt").i32(32 * g).op(I32_ADD).set("q");
      f.get("k").set("kt");
      f.get("qt").i32(rowBytes * d).op(I32_ADD).set("qEnd");
      f.loopWhileBelow("q", "qEnd", () => {
        for (const p of ROW_VECTORS) f.get("q").simd(V128_LOAD, ...mem(16 * p)).set(`x${p}`, V128);
        for (const j of keyIndices) {
          f.get("kt").simd(L.loadSplat, ...mem(L.bytes * d * j, L.splatAlign)).set("y", V128);
          for (const p of ROW_VECTORS) f.mulAdd(L, acc(p, j), `x${p}`, "y");
        }
        f.bump("q", rowBytes).bump("kt", L.bytes);
      });
      for (const j of keyIndices)
        for (const p of ROW_VECTORS) f.get("out").get(acc(p, j), V128).get("s", V128).simd(L.mul).simd(V128_STORE, ...mem(rowBytes * j + 32 * g + 16 * p));
    }
    f.bump("out", rowBytes * keys).bump("k", L.bytes * d * keys).bump("j", keys);
  };
  f.get("scale", F64);
  if (L.scalar === F32) f.op(F32_DEMOTE_F64);
  f.simd(L.splat).set("s", V128);
  f.i32(0).set("j");
  f.get("n").i32(-3).op(I32_ADD).set("n4");
  f.ifBelow("j", "n4", () => f.loopWhileBelow("j", "n4", () => step(4)));
  f.ifBelow("j", "n", () => f.loopWhileBelow("j", "n", () => step(1)));
  return f;
}

/** dv rounded up to whole v128s of lanes: the width of the tile's output rows and of V's column groups. */
export const paddedWidth = (L: Lanes, dv: number) => Math.ceil(dv / L.count) * L.count;

/**
 * weighted(w, v, acc, n, keys): acc[r * dvp + c] += sum_{j < n} w[j * rows + r] v[c][j] for rows
 * r < rows, with v in column groups of one v128 (the group of column c at (c - c % lanes) * keys,
 * key j at lanes · j in it); dvp is paddedWidth (byte offsets). Two column groups per step, then
 * one; within a step the groups of four rows take turns over the same values.
 */
function weightedFunction(L: Lanes, dv: number, rows: number): Body {
  const dvp = paddedWidth(L, dv);
  const f = new Body([["w", I32], ["v", I32], ["acc", I32], ["n", I32], ["keys", I32]]);
  const acc = (r: number, c: number) => `acc${r}${c}`;
  const rowBytes = L.bytes * rows;
  const accAt = (r: number, c: number) => mem(L.bytes * (r * dvp + L.count * c));
  const step = (groups: number) => {
    const groupIndices = Array.from({ length: groups }, (_, c) => c);
    for (let g = 0; g < rows / 4; g++) {
      const groupRows = [0, 1, 2, 3];
      for (const r of groupRows) for (const c of groupIndices) f.get("acc").simd(V128_LOAD, ...accAt(4 * g + r, c)).set(acc(r, c), V128);
      f.get("w").i32(4 * L.bytes * g).op(I32_ADD).set("x");
      f.get("v").set("y0");
      if (groups === 2) f.get("v").get("groupBytes").op(I32_ADD).set("y1");
      f.get("w").get("n").i32(rowBytes).op(I32_MUL, I32_ADD).set("xEnd");
      f.loopWhileBelow("x", "xEnd", () => {
        for (const c of groupIndices) f.get(`y${c}`).simd(V128_LOAD, ...mem(0)).set(`v${c}`, V128);
        for (const r of groupRows) {
          f.get("x").simd(L.loadSplat, ...mem(L.bytes * r, L.splatAlign)).set("wr", V128);
          for (const c of groupIndices) f.mulAdd(L, acc(r, c), "wr", `v${c}`);
        }
        f.bump("x", rowBytes);
        for (const c of groupIndices) f.bump(`y${c}`, 16);
      });
      for (const r of groupRows) for (const c of groupIndices) f.get("acc").get(acc(r, c), V128).simd(V128_STORE, ...accAt(4 * g + r, c));
    }
    f.bump("acc", 16 * groups).bump("c", L.count * groups);
    for (let c = 0; c < groups; c++) f.get("v").get("groupBytes").op(I32_ADD).set("v");
  };
  // One column group of v spans lanes · keys values, 16 bytes per key.
  f.get("keys").i32(16).op(I32_MUL).set("groupBytes");
  f.i32(0).set("c");
  f.i32(dvp - 2 * L.count + 1).set("c2");
  f.i32(dvp).set("cEnd");
  // With no keys acc is left as it is (the kernel stores no row then); the loops below assume a key.
  f.i32(0).get("n").op(I32_LT_S, IF, VOID);
  f.ifBelow("c", "c2", () => f.loopWhileBelow("c", "c2", () => step(2)));
  f.ifBelow("c", "cEnd", () => f.loopWhileBelow("c", "cEnd", () => step(1)));
  f.op(END);
  return f;
}

/**
 * A module exporting `memory`, `scores`, `weighted`, `softmax`, `combine` and (in f64)
 * `quantize` for one kernel's head width d, value width dv, query tile of `rows` rows (a
 * multiple of 2 · lanes) and number of maps, computing in `lanes`. The caller keeps n > 0 for
 * scores, softmax and combine (a block has at least one key).
 */
export function attentionModule(d: number, dv: number, rows: number, maps: 1 | 2, lanes: Lanes = F64X2): Uint8Array<ArrayBuffer> {
  if (rows % (2 * lanes.count) !== 0) throw new RangeError(`attentionModule: rows must be a multiple of ${2 * lanes.count}, got ${rows}`);
  // The quantised kernels compute in f64 only (their levels are the interpreter's, bit for bit).
  const named: [string, Body][] = [
    ["scores", scoresFunction(lanes, d, rows)],
    ["weighted", weightedFunction(lanes, dv, rows)],
    ["softmax", softmaxFunction(lanes, rows)],
    ["combine", combineFunction(lanes, rows, maps)],
    ...(lanes === F64X2 ? [["quantize", quantizeFunction(rows)] as [string, Body]] : []),
  ];
  return wasmModule(named);
}
