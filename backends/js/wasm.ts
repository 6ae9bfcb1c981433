// The loops over keys of the streaming attention kernels as WebAssembly SIMD (f64x2), which JS
// cannot express: q k^T for a tile of query rows against a block of keys, the online-softmax
// step of a block, the combination p1 w1 - p2 w2, and W · V. Each module is specialised at
// compile time (head width, value width, tile rows, maps) like the JS around it. Lanes run
// across query rows or value columns, never across a summed index, so every sum runs in the
// same order as the interpreter's: the products are bit-identical to scalar float64 code (wasm
// has no fused multiply-add to change that); exp is a polynomial within about 2 ulps.
//
// Only what these loops need of the binary format is here: one memory (exported, grown by the
// caller), locals, loops, loads and stores with constant offsets.

/** Unsigned LEB128. */
function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n) byte |= 0x80;
    out.push(byte);
  } while (n);
  return out;
}

/** Signed LEB128, for i32.const. */
function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && !(byte & 0x40)) || (n === -1 && byte & 0x40)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

const I32 = 0x7f;
const F64 = 0x7c;
const V128 = 0x7b;
type ValType = typeof I32 | typeof F64 | typeof V128;

const vec = (items: number[][]) => [...uleb(items.length), ...items.flat()];
const section = (id: number, body: number[]) => [id, ...uleb(body.length), ...body];
const name = (s: string) => vec([...s].map((c) => [c.charCodeAt(0)]));

/** A function body under construction: locals by name, instructions as bytes. */
class Body {
  readonly code: number[] = [];
  private readonly locals = new Map<string, number>();
  private readonly extra: ValType[] = [];

  constructor(readonly params: [string, ValType][]) {
    params.forEach(([n], i) => this.locals.set(n, i));
  }

  /** The index of local `n`, declared with type `t` on first use. */
  private local(n: string, t: ValType): number {
    let i = this.locals.get(n);
    if (i === undefined) {
      i = this.params.length + this.extra.length;
      this.locals.set(n, i);
      this.extra.push(t);
    }
    return i;
  }

  get(n: string, t: ValType = I32): this {
    this.code.push(0x20, ...uleb(this.local(n, t)));
    return this;
  }
  set(n: string, t: ValType = I32): this {
    this.code.push(0x21, ...uleb(this.local(n, t)));
    return this;
  }
  i32(value: number): this {
    this.code.push(0x41, ...sleb(value));
    return this;
  }
  op(...bytes: number[]): this {
    this.code.push(...bytes);
    return this;
  }
  /** A SIMD instruction: the 0xfd prefix and its LEB128 opcode, then any immediates. */
  simd(opcode: number, ...immediates: number[]): this {
    this.code.push(0xfd, ...uleb(opcode), ...immediates);
    return this;
  }
  /** acc += a * b for v128 locals (f64x2). */
  mulAdd(acc: string, a: string, b: string): this {
    return this.get(acc, V128).get(a, V128).get(b, V128).simd(F64X2_MUL).simd(F64X2_ADD).set(acc, V128);
  }
  /** `n += step` for an i32 local. */
  bump(n: string, step: number): this {
    return this.get(n).i32(step).op(I32_ADD).set(n);
  }
  /** do { body } while (n < limit): limit is an i32 local; the caller guarantees one pass is due. */
  loopWhileBelow(n: string, limit: string, body: () => void): this {
    this.op(0x03, 0x40); // loop (no result)
    body();
    this.get(n).get(limit).op(I32_LT_S, 0x0d, 0); // br_if 0
    return this.op(0x0b);
  }
  /** if (a < b) { body }: a and b are i32 locals. */
  ifBelow(a: string, b: string, body: () => void): this {
    this.get(a).get(b).op(I32_LT_S, 0x04, 0x40); // if (no result)
    body();
    return this.op(0x0b);
  }

  encode(): number[] {
    // One local declaration per run of the same type.
    const runs: number[][] = [];
    for (const t of this.extra) {
      const last = runs[runs.length - 1];
      if (last && last[1] === t) last[0]++;
      else runs.push([1, t]);
    }
    const body = [...vec(runs.map(([count, t]) => [...uleb(count), t])), ...this.code, 0x0b];
    return [...uleb(body.length), ...body];
  }
}

const I32_ADD = 0x6a;
const I32_LT_S = 0x48;
const I32_MUL = 0x6c;
/** Memory immediates: log2 of the alignment promised (8 bytes), then the constant offset. */
const mem = (offset: number) => [3, ...uleb(offset)];
const V128_LOAD = 0x00;
const V128_LOAD64_SPLAT = 0x0a;
const V128_STORE = 0x0b;
const F64X2_SPLAT = 0x14;
const F64X2_NE = 0x48;
const F64X2_LT = 0x49;
const V128_AND = 0x4e;
const V128_ANDNOT = 0x4f;
const V128_BITSELECT = 0x52;
const F64X2_NEAREST = 0x94;
const I64X2_EXTEND_LOW_I32X4_S = 0xc7;
const I64X2_SHL = 0xcb;
const I64X2_ADD = 0xce;
const F64X2_ADD = 0xf0;
const F64X2_SUB = 0xf1;
const F64X2_MUL = 0xf2;
const F64X2_MAX = 0xf5;
const F64X2_MIN = 0xf4;
const F64X2_DIV = 0xf3;
const F64X2_ABS = 0xec;
const F64X2_GT = 0x4a;
const I32X4_TRUNC_SAT_F64X2_S_ZERO = 0xfc;

/** v128.const with `value` in both f64 lanes. */
function f64x2(value: number): number[] {
  const bytes = new Uint8Array(new Float64Array([value, value]).buffer);
  return [0xfd, 0x0c, ...bytes];
}
/** v128.const with `value` in both i64 lanes. */
function i64x2(value: number): number[] {
  const bytes = new Uint8Array(new BigInt64Array([BigInt(value), BigInt(value)]).buffer);
  return [0xfd, 0x0c, ...bytes];
}

// exp on f64x2 for x <= 0 (and NaN), the arguments softmax has: x = k ln 2 + r with k an
// integer and |r| <= ln 2 / 2 (ln 2 in two parts, so that k ln2_hi is exact), e^r by its Taylor
// series to r^13 (truncation below 1e-17), times 2^k built in the exponent bits. Within about
// 2 ulps of Math.exp; below -708 (where 2^k would be subnormal) the result is 0, which next to
// the row maximum's e^0 = 1 changes no sum.
const LN2_HI = 0.6931471803691238;
const LN2_LO = 1.9082149292705877e-10;
const EXP_TAYLOR = Array.from({ length: 14 }, (_, n) => 1 / Array.from({ length: n }, (_, i) => i + 1).reduce((a, b) => a * b, 1));

/** out = exp(x) for the v128 locals x and out, using k and r as scratch. */
function exp(f: Body, x: string, out: string): void {
  f.get(x, V128).op(...f64x2(Math.LOG2E)).simd(F64X2_MUL).simd(F64X2_NEAREST).set("k", V128);
  f.get(x, V128).get("k", V128).op(...f64x2(LN2_HI)).simd(F64X2_MUL).simd(F64X2_SUB);
  f.get("k", V128).op(...f64x2(LN2_LO)).simd(F64X2_MUL).simd(F64X2_SUB).set("r", V128);
  f.op(...f64x2(EXP_TAYLOR[13]));
  for (let n = 12; n >= 0; n--) f.get("r", V128).simd(F64X2_MUL).op(...f64x2(EXP_TAYLOR[n])).simd(F64X2_ADD);
  // 2^k: (k + 1023) << 52 as the bits of a double.
  f.get("k", V128).simd(I32X4_TRUNC_SAT_F64X2_S_ZERO).simd(I64X2_EXTEND_LOW_I32X4_S).op(...i64x2(1023)).simd(I64X2_ADD).i32(52).simd(I64X2_SHL);
  f.simd(F64X2_MUL);
  // Below -708 (and -Infinity): 0. NaN compares false and stays NaN.
  f.get(x, V128).op(...f64x2(-708)).simd(F64X2_LT).simd(V128_ANDNOT).set(out, V128);
}

/**
 * softmax(pr, n, blockMax, rowMax, rowSum): the online-softmax step of one key block for every
 * row (byte offsets; pr[j * rows + r] for keys j < n, the others [r]): m' = max(m, the block's
 * max), NaN sticking; the scores become exp(s - m'), or 0 while m' is -Infinity (only masked
 * keys so far); l' = l exp(m - m') + their sum (l unchanged where m' = m); blockMax = m'.
 * Lanes are pairs of rows; each row's sum runs over the keys in order.
 */
function softmaxFunction(rows: number): Body {
  const f = new Body([["pr", I32], ["n", I32], ["blockMax", I32], ["rowMax", I32], ["rowSum", I32]]);
  const rowBytes = 8 * rows;
  f.i32(0).set("o");
  f.i32(rowBytes).set("oEnd");
  f.get("n").i32(rowBytes).op(I32_MUL).set("span");
  f.loopWhileBelow("o", "oEnd", () => {
    f.get("pr").get("o").op(I32_ADD).set("x");
    f.get("x").get("span").op(I32_ADD).set("xEnd");
    f.op(...f64x2(-Infinity)).set("top", V128);
    f.loopWhileBelow("x", "xEnd", () => {
      f.get("top", V128).get("x").simd(V128_LOAD, ...mem(0)).simd(F64X2_MAX).set("top", V128);
      f.bump("x", rowBytes);
    });
    f.get("rowMax").get("o").op(I32_ADD).simd(V128_LOAD, ...mem(0)).set("old", V128);
    f.get("top", V128).get("old", V128).simd(F64X2_MAX).set("next", V128);
    f.get("blockMax").get("o").op(I32_ADD).get("next", V128).simd(V128_STORE, ...mem(0));
    f.get("rowMax").get("o").op(I32_ADD).get("next", V128).simd(V128_STORE, ...mem(0));
    f.get("next", V128).op(...f64x2(-Infinity)).simd(F64X2_NE).set("live", V128);
    f.op(...f64x2(0)).set("sum", V128);
    f.get("pr").get("o").op(I32_ADD).set("x");
    f.loopWhileBelow("x", "xEnd", () => {
      f.get("x").simd(V128_LOAD, ...mem(0)).get("next", V128).simd(F64X2_SUB).set("s", V128);
      exp(f, "s", "e");
      f.get("e", V128).get("live", V128).simd(V128_AND).set("e", V128);
      f.get("x").get("e", V128).simd(V128_STORE, ...mem(0));
      f.get("sum", V128).get("e", V128).simd(F64X2_ADD).set("sum", V128);
      f.bump("x", rowBytes);
    });
    // l exp(m - m') where m' differs from m (NaN differs from everything), else l.
    f.get("old", V128).get("next", V128).simd(F64X2_SUB).set("s", V128);
    exp(f, "s", "e");
    f.get("e", V128).op(...f64x2(1)).get("next", V128).get("old", V128).simd(F64X2_NE).simd(V128_BITSELECT).set("e", V128);
    f.get("rowSum").get("o").op(I32_ADD);
    f.get("rowSum").get("o").op(I32_ADD).simd(V128_LOAD, ...mem(0)).get("e", V128).simd(F64X2_MUL).get("sum", V128).simd(F64X2_ADD);
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
function combineFunction(rows: number, maps: number): Body {
  const f = new Body([["pr0", I32], ["pr1", I32], ["n", I32], ["weights", I32], ["block", I32]]);
  const rowBytes = 8 * rows;
  f.get("pr1").get("pr0").op(0x6b).set("gap"); // i32.sub: pr1 - pr0
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
        f.get("y").get("y").simd(V128_LOAD, ...mem(0)).get("w0", V128).simd(F64X2_MUL);
        if (maps === 2) f.get("y").get("gap").op(I32_ADD).simd(V128_LOAD, ...mem(0)).get("w1", V128).simd(F64X2_MUL).simd(F64X2_SUB);
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
  f.get("levels", F64).simd(F64X2_SPLAT).set("top", V128);
  f.get("lo", F64).simd(F64X2_SPLAT).set("bottom", V128);
  // The loops assume a key.
  f.i32(0).get("n").op(I32_LT_S, 0x04, 0x40);
  f.loopWhileBelow("o", "oEnd", () => {
    f.get("stops").get("o").op(I32_ADD).simd(V128_LOAD, ...mem(0)).set("stop", V128);
    f.get("pr").get("o").op(I32_ADD).set("x");
    f.get("x").get("span").op(I32_ADD).set("xEnd");
    f.op(...f64x2(0)).set("j", V128);
    f.op(...f64x2(0)).set("amax", V128);
    f.loopWhileBelow("x", "xEnd", () => {
      f.get("x").simd(V128_LOAD, ...mem(0)).simd(F64X2_ABS).get("j", V128).get("stop", V128).simd(F64X2_LT).simd(V128_AND);
      f.get("amax", V128).simd(F64X2_MAX).set("amax", V128);
      f.get("j", V128).op(...f64x2(1)).simd(F64X2_ADD).set("j", V128);
      f.bump("x", rowBytes);
    });
    f.get("maxes").get("o").op(I32_ADD).get("amax", V128).simd(V128_STORE, ...mem(0));
    f.get("apply").op(0x04, 0x40);
    f.get("amax", V128).get("top", V128).simd(F64X2_DIV).set("step", V128);
    f.get("amax", V128).op(...f64x2(0)).simd(F64X2_GT).get("amax", V128).op(...f64x2(Infinity)).simd(F64X2_LT).simd(V128_AND).set("valid", V128);
    f.get("pr").get("o").op(I32_ADD).set("x");
    f.op(...f64x2(0)).set("j", V128);
    f.loopWhileBelow("x", "xEnd", () => {
      f.get("x").simd(V128_LOAD, ...mem(0)).set("v", V128);
      f.get("x");
      f.get("v", V128).get("step", V128).simd(F64X2_DIV).simd(F64X2_NEAREST).get("bottom", V128).simd(F64X2_MAX).get("top", V128).simd(F64X2_MIN).get("step", V128).simd(F64X2_MUL);
      f.get("v", V128);
      f.get("valid", V128).get("j", V128).get("stop", V128).simd(F64X2_LT).simd(V128_AND);
      f.simd(V128_BITSELECT).simd(V128_STORE, ...mem(0));
      f.get("j", V128).op(...f64x2(1)).simd(F64X2_ADD).set("j", V128);
      f.bump("x", rowBytes);
    });
    f.op(0x0b);
    f.bump("o", 16);
  });
  f.op(0x0b);
  return f;
}

/** Row pairs of a group of four query rows: two f64x2 lanes each of two rows. */
const ROW_PAIRS = [0, 1];

/**
 * scores(qt, k, out, n, scale): for keys j < n and rows r < rows,
 * out[j * rows + r] = scale * sum_t qt[t * rows + r] k[j * d + t] (byte offsets). Four keys
 * per step, then one; within a step the groups of four rows take turns, so the step's keys
 * are read from memory once for the whole tile.
 */
function scoresFunction(d: number, rows: number): Body {
  const f = new Body([["qt", I32], ["k", I32], ["out", I32], ["n", I32], ["scale", F64]]);
  const acc = (p: number, j: number) => `acc${p}${j}`;
  const rowBytes = 8 * rows;
  const step = (keys: number) => {
    const keyIndices = Array.from({ length: keys }, (_, j) => j);
    for (let g = 0; g < rows / 4; g++) {
      for (const p of ROW_PAIRS) for (const j of keyIndices) f.op(...f64x2(0)).set(acc(p, j), V128);
      f.get("qt").i32(32 * g).op(I32_ADD).set("q");
      f.get("k").set("kt");
      f.get("qt").i32(rowBytes * d).op(I32_ADD).set("qEnd");
      f.loopWhileBelow("q", "qEnd", () => {
        for (const p of ROW_PAIRS) f.get("q").simd(V128_LOAD, ...mem(16 * p)).set(`x${p}`, V128);
        for (const j of keyIndices) {
          f.get("kt").simd(V128_LOAD64_SPLAT, ...mem(8 * d * j)).set("y", V128);
          for (const p of ROW_PAIRS) f.mulAdd(acc(p, j), `x${p}`, "y");
        }
        f.bump("q", rowBytes).bump("kt", 8);
      });
      for (const j of keyIndices)
        for (const p of ROW_PAIRS) f.get("out").get(acc(p, j), V128).get("s", V128).simd(F64X2_MUL).simd(V128_STORE, ...mem(rowBytes * j + 32 * g + 16 * p));
    }
    f.bump("out", rowBytes * keys).bump("k", 8 * d * keys).bump("j", keys);
  };
  f.get("scale", F64).simd(F64X2_SPLAT).set("s", V128);
  f.i32(0).set("j");
  f.get("n").i32(-3).op(I32_ADD).set("n4");
  f.ifBelow("j", "n4", () => f.loopWhileBelow("j", "n4", () => step(4)));
  f.ifBelow("j", "n", () => f.loopWhileBelow("j", "n", () => step(1)));
  return f;
}

/**
 * weighted(w, v, acc, n, keys): acc[r * dvp + c] += sum_{j < n} w[j * rows + r] v[c][j] for rows
 * r < rows, with v in column pairs (the pair of column c at c * keys, key j at 2j in it); dvp is
 * dv rounded up to even (byte offsets). Two column pairs per step, then one; within a step the
 * groups of four rows take turns over the same values.
 */
function weightedFunction(dv: number, rows: number): Body {
  const dvp = dv + (dv % 2);
  const f = new Body([["w", I32], ["v", I32], ["acc", I32], ["n", I32], ["keys", I32]]);
  const acc = (r: number, c: number) => `acc${r}${c}`;
  const rowBytes = 8 * rows;
  const step = (pairs: number) => {
    const pairIndices = Array.from({ length: pairs }, (_, c) => c);
    for (let g = 0; g < rows / 4; g++) {
      const groupRows = [0, 1, 2, 3];
      for (const r of groupRows) for (const c of pairIndices) f.get("acc").simd(V128_LOAD, ...mem(8 * ((4 * g + r) * dvp + 2 * c))).set(acc(r, c), V128);
      f.get("w").i32(32 * g).op(I32_ADD).set("x");
      f.get("v").set("y0");
      if (pairs === 2) f.get("v").get("pairBytes").op(I32_ADD).set("y1");
      f.get("w").get("n").i32(rowBytes).op(I32_MUL, I32_ADD).set("xEnd");
      f.loopWhileBelow("x", "xEnd", () => {
        for (const c of pairIndices) f.get(`y${c}`).simd(V128_LOAD, ...mem(0)).set(`v${c}`, V128);
        for (const r of groupRows) {
          f.get("x").simd(V128_LOAD64_SPLAT, ...mem(8 * r)).set("wr", V128);
          for (const c of pairIndices) f.mulAdd(acc(r, c), "wr", `v${c}`);
        }
        f.bump("x", rowBytes);
        for (const c of pairIndices) f.bump(`y${c}`, 16);
      });
      for (const r of groupRows) for (const c of pairIndices) f.get("acc").get(acc(r, c), V128).simd(V128_STORE, ...mem(8 * ((4 * g + r) * dvp + 2 * c)));
    }
    f.bump("acc", 16 * pairs).bump("c", 2 * pairs);
    for (let c = 0; c < pairs; c++) f.get("v").get("pairBytes").op(I32_ADD).set("v");
  };
  // One column pair of v spans 2 * keys values.
  f.get("keys").i32(16).op(I32_MUL).set("pairBytes");
  f.i32(0).set("c");
  f.i32(dvp - 3).set("c4");
  f.i32(dvp).set("cEnd");
  // With no keys acc is left as it is (the kernel stores no row then); the loops below assume a key.
  f.i32(0).get("n").op(I32_LT_S, 0x04, 0x40);
  f.ifBelow("c", "c4", () => f.loopWhileBelow("c", "c4", () => step(2)));
  f.ifBelow("c", "cEnd", () => f.loopWhileBelow("c", "cEnd", () => step(1)));
  f.op(0x0b);
  return f;
}

/**
 * A module exporting `memory`, `scores`, `weighted`, `softmax`, `combine` and `quantize` for one kernel's
 * head width d, value width dv, query tile of `rows` rows (a multiple of 4) and number of
 * maps. The caller keeps n > 0 for scores, softmax and combine (a block has at least one key).
 */
export function attentionModule(d: number, dv: number, rows: number, maps: 1 | 2): Uint8Array<ArrayBuffer> {
  if (rows % 4 !== 0) throw new RangeError(`attentionModule: rows must be a multiple of 4, got ${rows}`);
  const functions = [scoresFunction(d, rows), weightedFunction(dv, rows), softmaxFunction(rows), combineFunction(rows, maps), quantizeFunction(rows)];
  const types = functions.map((f) => [0x60, ...vec(f.params.map(([, t]) => [t])), 0]);
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00], // \0asm, version 1
    ...section(1, vec(types)),
    ...section(3, vec(functions.map((_, i) => uleb(i)))),
    ...section(5, vec([[0x00, 1]])), // one memory, at least one page, grown by the caller
    ...section(
      7,
      vec([
        [...name("memory"), 0x02, 0],
        [...name("scores"), 0x00, 0],
        [...name("weighted"), 0x00, 1],
        [...name("softmax"), 0x00, 2],
        [...name("combine"), 0x00, 3],
        [...name("quantize"), 0x00, 4],
      ]),
    ),
    ...section(10, vec(functions.map((f) => f.encode()))),
  ]);
}
