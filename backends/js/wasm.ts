// The two inner loops of the streaming attention kernels as WebAssembly SIMD (f64x2), which JS
// cannot express: q k^T for a tile of 4 query rows against a block of keys, and W · V for the
// tile. Each is specialised at compile time (head width, value width) like the JS around it.
// Lanes run across query rows (scores) or value columns (W · V), never across the summed
// index, so every dot product is summed in the same order as the interpreter's: the results
// are bit-identical to scalar float64 code, and wasm has no fused multiply-add to change that.
//
// Only what these loops need of the binary format is here: one memory (exported, grown by the
// caller), a few locals, loops, loads and stores with constant offsets.

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
const F64X2_ADD = 0xf0;
const F64X2_MUL = 0xf2;

/** Rows of the query tile, as attention.ts lays them out: two f64x2 lanes each of two rows. */
const ROW_PAIRS = [0, 1];

/**
 * scores(qt, k, out, n, scale): for keys j < n, out[j * 4 + r] = scale * sum_t qt[t * 4 + r] k[j * d + t]
 * (byte offsets; four keys per step, then one).
 */
function scoresFunction(d: number): Body {
  const f = new Body([["qt", I32], ["k", I32], ["out", I32], ["n", I32], ["scale", F64]]);
  const acc = (p: number, j: number) => `acc${p}${j}`;
  const step = (keys: number) => {
    const keyIndices = Array.from({ length: keys }, (_, j) => j);
    for (const p of ROW_PAIRS) for (const j of keyIndices) f.op(0xfd, 0x0c, ...new Array(16).fill(0)).set(acc(p, j), V128); // v128.const 0
    f.get("qt").set("q");
    f.get("k").set("kt");
    f.get("qt").i32(32 * d).op(I32_ADD).set("qEnd");
    f.loopWhileBelow("q", "qEnd", () => {
      for (const p of ROW_PAIRS) f.get("q").simd(V128_LOAD, ...mem(16 * p)).set(`x${p}`, V128);
      for (const j of keyIndices) {
        f.get("kt").simd(V128_LOAD64_SPLAT, ...mem(8 * d * j)).set("y", V128);
        for (const p of ROW_PAIRS) f.get(acc(p, j), V128).get(`x${p}`, V128).get("y", V128).simd(F64X2_MUL).simd(F64X2_ADD).set(acc(p, j), V128);
      }
      f.bump("q", 32).bump("kt", 8);
    });
    for (const j of keyIndices)
      for (const p of ROW_PAIRS) f.get("out").get(acc(p, j), V128).get("s", V128).simd(F64X2_MUL).simd(V128_STORE, ...mem(32 * j + 16 * p));
    f.bump("out", 32 * keys).bump("k", 8 * d * keys).bump("j", keys);
  };
  f.get("scale", F64).simd(F64X2_SPLAT).set("s", V128);
  f.i32(0).set("j");
  // Four keys per step while four remain, then one at a time.
  f.get("n").i32(-3).op(I32_ADD).set("n4");
  f.ifBelow("j", "n4", () => f.loopWhileBelow("j", "n4", () => step(4)));
  f.ifBelow("j", "n", () => f.loopWhileBelow("j", "n", () => step(1)));
  return f;
}

/**
 * weighted(w, v, acc, n, keys): acc[r * dvp + c] = sum_{j < n} w[j * 4 + r] v[c][j], with v in
 * column pairs (the pair of column c at c * keys, key j at 2j in it); dvp is dv rounded up to
 * even (byte offsets; two column pairs per step, then one).
 */
function weightedFunction(dv: number): Body {
  const dvp = dv + (dv % 2);
  const f = new Body([["w", I32], ["v", I32], ["acc", I32], ["n", I32], ["keys", I32]]);
  const acc = (r: number, c: number) => `acc${r}${c}`;
  const rows = [0, 1, 2, 3];
  const step = (pairs: number) => {
    const pairIndices = Array.from({ length: pairs }, (_, c) => c);
    for (const r of rows) for (const c of pairIndices) f.op(0xfd, 0x0c, ...new Array(16).fill(0)).set(acc(r, c), V128);
    f.get("w").set("x");
    f.get("v").set("y0");
    if (pairs === 2) f.get("v").get("pairBytes").op(I32_ADD).set("y1");
    f.get("w").get("n").i32(32).op(I32_MUL, I32_ADD).set("xEnd");
    f.loopWhileBelow("x", "xEnd", () => {
      for (const c of pairIndices) f.get(`y${c}`).simd(V128_LOAD, ...mem(0)).set(`v${c}`, V128);
      for (const r of rows) {
        f.get("x").simd(V128_LOAD64_SPLAT, ...mem(8 * r)).set("wr", V128);
        for (const c of pairIndices) f.get(acc(r, c), V128).get("wr", V128).get(`v${c}`, V128).simd(F64X2_MUL).simd(F64X2_ADD).set(acc(r, c), V128);
      }
      f.bump("x", 32);
      for (const c of pairIndices) f.bump(`y${c}`, 16);
    });
    for (const r of rows) for (const c of pairIndices) f.get("acc").get(acc(r, c), V128).simd(V128_STORE, ...mem(8 * (r * dvp + 2 * c)));
    f.bump("acc", 16 * pairs).bump("c", 2 * pairs);
    for (let c = 0; c < pairs; c++) f.get("v").get("pairBytes").op(I32_ADD).set("v");
  };
  // One column pair of v spans 2 * keys values.
  f.get("keys").i32(16).op(I32_MUL).set("pairBytes");
  f.i32(0).set("c");
  f.i32(dvp - 3).set("c4");
  f.i32(dvp).set("cEnd");
  // With no keys the sums are 0; the loops below assume at least one.
  f.i32(0).get("n").op(I32_LT_S, 0x04, 0x40);
  f.ifBelow("c", "c4", () => f.loopWhileBelow("c", "c4", () => step(2)));
  f.ifBelow("c", "cEnd", () => f.loopWhileBelow("c", "cEnd", () => step(1)));
  f.op(0x0b);
  return f;
}

/**
 * A module exporting `memory`, `scores` and `weighted` for one kernel's head width d and value
 * width dv. The caller keeps n > 0 for scores (a block has at least one key).
 */
export function attentionModule(d: number, dv: number): Uint8Array<ArrayBuffer> {
  const functions = [scoresFunction(d), weightedFunction(dv)];
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
      ]),
    ),
    ...section(10, vec(functions.map((f) => f.encode()))),
  ]);
}
