// Low-bit quantisation inside the fused attention kernels (DESIGN.md §4; Diff Transformer §3.8):
// the one statement of what qflash_attention and qflash_diffattn compute beyond their flash op.
// The interpreter rule (attention.ts's attend) applies these functions; every backend's kernel
// renders the same formulas (the level rule through Arith, the groups and the skip rule from the
// attributes read here), so a kernel cannot drift from the ops' meaning.
//
// Per (batch entry, query, head) row and per map:
// - target "logits": the scaled logits s_j = q·k_j·scale of the keys the query sees are split
//   into groups (the whole row, or key blocks [b·block, (b+1)·block)); a group's step is
//   max|s_j| / L with L = 2^(bits-1) - 1, and each s_j becomes clamp(rhe(s_j / step), -L, L) · step
//   (rhe: round half to even), symmetric and signed. The softmax then runs on these values.
// - threshold t > 0: a key block is skipped for a row when every map's probability of every key
//   in it is below t; a skipped block contributes nothing (no renormalisation: the kernels skip
//   reading its V where every row of their tile skips it; this rule weighs it 0, so only an
//   infinite or NaN value in V, where 0·v is NaN, would tell the two apart).
// - target "probs": each map's probabilities p_j (in [0, 1]; p1 and p2 separately, as their
//   difference is signed) in the kept groups become clamp(rhe(p_j / step), 0, U) · step with
//   step = max p_j / U over the group (the whole row, or the block), U = 2^bits - 1, unsigned.
// - v_bits b > 0: V is quantised per channel once, before the attention: per batch entry and
//   column of v, step = max_j |v_j| / (2^(b-1) - 1) over all M keys, symmetric as for logits.
// A group whose max is 0 or not finite (NaN, ±inf) is left as it is: step 0 would make 0/0.
// All of it is float64 in the interpreter; a kernel that computes the values in another order
// (or precision) agrees up to its float tolerance except where a value lies on a rounding tie,
// which moves one level (test/harness/tolerance.ts states the bound).
import type { Attrs } from "../graph.ts";
import { OpError, type AttrSpec } from "../registry.ts";
import { roundHalfToEven } from "../scalar.ts";
import { type Arith, NUMBERS } from "./attention-geometry.ts";

export type QuantTarget = "none" | "logits" | "probs";
export type QuantGranularity = "row" | "block";

/** The quantisation a qflash op applies; see the file comment. */
export interface AttentionQuant {
  target: QuantTarget;
  /** Bits of the target's levels (2..8); unused with target "none". */
  bits: number;
  granularity: QuantGranularity;
  /** Probability under which a whole key block is skipped; 0 skips nothing. */
  threshold: number;
  /** Bits of V's per-channel levels; 0 leaves V as it is. */
  vBits: number;
  /** Keys per block: the block granularity's groups and the skip rule's blocks. */
  block: number;
}

/** The attributes the quantised ops add to their flash op's. */
export const QUANT_ATTRS: Record<string, AttrSpec> = {
  // Required, so that the printed IR always says what is quantised.
  quant: { type: "string", oneOf: ["none", "logits", "probs"], doc: "what is quantised: the scaled logits, the probability maps, or neither (threshold and v_bits only)" },
  bits: { type: "int", default: 8, doc: "bits of the logits' (signed, levels ±(2^(bits-1)-1)) or the maps' (unsigned, levels 0..2^bits-1) integers, 2 to 8" },
  granularity: { type: "string", default: "row", oneOf: ["row", "block"], doc: "one scale per query row and map, or per row, map and key block" },
  threshold: { type: "float", default: 0, doc: "skip a row's key block when every map's probabilities in it fall under this; 0 skips none" },
  v_bits: { type: "int", default: 0, doc: "0: V as it is; 2 to 8: V quantised per channel (signed, max |v| over the keys)" },
};

/** The quantisation the attributes of a qflash node say. */
export function attentionQuant(a: Attrs): AttentionQuant {
  return {
    target: a.quant as QuantTarget,
    bits: a.bits as number,
    granularity: a.granularity as QuantGranularity,
    threshold: a.threshold as number,
    vBits: a.v_bits as number,
    block: a.block as number,
  };
}

/** The shape rule's part: the attribute values that mean something. */
export function checkQuant(op: string, a: Attrs): void {
  const q = attentionQuant(a);
  if (!Number.isInteger(q.bits) || q.bits < 2 || q.bits > 8) throw new OpError(`${op}: bits must be 2 to 8, got ${q.bits}`);
  if (q.vBits !== 0 && (q.vBits < 2 || q.vBits > 8)) throw new OpError(`${op}: v_bits must be 0 (V as it is) or 2 to 8, got ${q.vBits}`);
  if (!(q.threshold >= 0 && q.threshold < 1)) throw new OpError(`${op}: threshold must be in [0, 1), got ${q.threshold}`);
}

/** The largest level of a signed (±L) or unsigned (0..U) integer of `bits` bits. */
export function quantLevels(bits: number, signed: boolean): number {
  return signed ? 2 ** (bits - 1) - 1 : 2 ** bits - 1;
}

/** Arith with the rounding of the level rule: rhe in the interpreter, the helper or rint in a kernel. */
export interface QuantArith<T> extends Arith<T> {
  roundHalfEven(a: T): T;
}

/** The level rule's integer: clamp(rhe(x / step), -levels or 0, levels). */
export function quantLevel<T>(A: QuantArith<T>, x: T, step: T, levels: number, signed: boolean): T {
  return A.min(A.num(levels), A.max(A.num(signed ? -levels : 0), A.roundHalfEven(A.div(x, step))));
}

/** The level rule: x to its level and back, · step. */
export function quantizeValue<T>(A: QuantArith<T>, x: T, step: T, levels: number, signed: boolean): T {
  return A.mul(quantLevel(A, x, step, levels, signed), step);
}

/** The step of a group whose largest magnitude is `amax`; 0 for a group left as it is. */
function quantStep(amax: number, levels: number): number {
  return amax > 0 && Number.isFinite(amax) ? amax / levels : 0;
}

/** A near tie the interpreter met: the qflash op evaluation it came in (`call`) and its output row, or -1 (V: every row). */
export interface NearTie {
  call: number;
  row: number;
}

/**
 * The interpreter's near ties, for comparing it with a kernel that computes the level rule in
 * another precision (test/harness/tolerance.ts, LEVEL_TIE_WINDOW). Off while `window` is 0. On,
 * every level whose x / step lies within `window` (in levels) of a rounding tie, and every skip
 * test whose probability lies within window·threshold of the threshold, is listed in `found` in
 * evaluation order; those whose index is in `flipped` take the tie's other side: the neighbouring
 * level, one step away, or the other skip decision.
 */
export const nearTies = {
  window: 0,
  flipped: new Set<number>() as ReadonlySet<number>,
  found: [] as NearTie[],
  /** The qflash evaluation under way (attend counts them) and the output row its values belong to (-1: V's). */
  call: -1,
  row: -1,
  /** Starts recording (or stops, with window 0): the list and the counters afresh. */
  reset(window: number, flipped: ReadonlySet<number> = new Set()): void {
    this.window = window;
    this.flipped = flipped;
    this.found = [];
    this.call = -1;
    this.row = -1;
  },
  /** Whether this near tie takes the other side (and lists it). */
  flip(): boolean {
    this.found.push({ call: this.call, row: this.row });
    return this.flipped.has(this.found.length - 1);
  },
};

/** rhe, or the tie's other integer where nearTies says so. */
function roundLevel(r: number): number {
  const level = roundHalfToEven(r);
  if (nearTies.window > 0 && Math.abs(Math.abs(r - Math.floor(r)) - 0.5) <= nearTies.window && nearTies.flip()) {
    const below = Math.floor(r);
    return level === below ? below + 1 : below;
  }
  return level;
}

/** x < threshold (false for NaN), or the other answer where nearTies says so. */
function under(x: number, threshold: number): boolean {
  const answer = x < threshold;
  return nearTies.window > 0 && Math.abs(x - threshold) <= nearTies.window * threshold && nearTies.flip() ? !answer : answer;
}

const NUMBER_QUANT: QuantArith<number> = { ...NUMBERS, roundHalfEven: roundLevel };

/** The groups [start, end) of a row of `seen` keys: the row, or its key blocks. */
export function quantGroups(seen: number, granularity: QuantGranularity, block: number): [number, number][] {
  if (granularity === "row") return seen > 0 ? [[0, seen]] : [];
  const groups: [number, number][] = [];
  for (let j = 0; j < seen; j += block) groups.push([j, Math.min(j + block, seen)]);
  return groups;
}

/**
 * Quantises x[start + j·stride] for j < count in place (float64) and returns its step (0: left
 * as it is). Every group scales by its largest |x|: for the probabilities (>= 0) of an unsigned
 * group, its largest value.
 */
export function quantizeGroup(x: Float64Array, start: number, count: number, stride: number, bits: number, signed: boolean): number {
  const levels = quantLevels(bits, signed);
  let amax = 0;
  for (let j = 0, at = start; j < count; j++, at += stride) {
    const v = Math.abs(x[at]);
    if (v > amax || Number.isNaN(v)) amax = v; // a NaN max stays (v > NaN is false): the group is then left as it is
  }
  const step = quantStep(amax, levels);
  if (step === 0) return 0;
  for (let j = 0, at = start; j < count; j++, at += stride) x[at] = quantizeValue(NUMBER_QUANT, x[at], step, levels, signed);
  return step;
}

/**
 * What a quantised attention did, summed over every row it computed: the quant report's
 * savings and the error bound its property tests check.
 */
export class QuantStats {
  /** Rows (batch entry, query, head) with at least one visible key. */
  rows = 0;
  /** Visible (query, key) pairs over those rows: each map has this many logits. */
  keys = 0;
  /** Visible keys in skipped blocks: neither their maps' values nor their V are read. */
  skippedKeys = 0;
  /** (row, key block) pairs over visible keys, and how many were skipped. */
  rowBlocks = 0;
  skippedBlocks = 0;
  /** Scales of the quantised target: one per group and map. */
  scales = 0;
  /** The largest bound, over all rows, on |y' - y| of one output before the epilogue (see rowBound). */
  maxBound = 0;
}

/**
 * The bound on |y'_c - y_c| for one row of y = Σ_p λ_p P_p V (λ_0 = 1; y before any epilogue):
 * map p's probabilities move by at most E_p in L1 (logits within δ = step/2 move each p_j by a
 * factor within e^±2δ, so by (e^2δ - 1) in L1; a skipped block removes its mass; a probability
 * level moves p_j by at most step/2), and V's values by at most vStep/2, so
 * |y'_c - y_c| <= Σ_p |λ_p| (E_p · max_j |v_jc| + (1 + E_p) · vStep_c / 2).
 */
export function rowBound(mapError: number[], lambdas: number[], vMax: number, vHalfStep: number): number {
  let bound = 0;
  mapError.forEach((e, p) => (bound += Math.abs(lambdas[p]) * (e * vMax + (1 + e) * vHalfStep)));
  return bound;
}

/** V quantised per channel: a copy of v's data, per batch entry of v and column, over its M keys. */
export function quantizeValues(data: Float64Array, batches: number, keys: number, width: number, bits: number): { data: Float64Array; steps: Float64Array } {
  const out = Float64Array.from(data);
  const steps = new Float64Array(batches * width);
  for (let b = 0; b < batches; b++)
    for (let c = 0; c < width; c++) steps[b * width + c] = quantizeGroup(out, b * keys * width + c, keys, width, bits, true);
  return { data: out, steps };
}

/**
 * One row's maps after the softmax (`probs[p][j]`, j < seen, logits already quantised when that
 * is the target): the skip rule, then the probability levels, in place. Adds to `stats` and
 * returns each map's added L1 error (skipped mass plus levels), for the bound.
 */
export function sparsifyRow(probs: Float64Array[], seen: number, q: AttentionQuant, stats?: QuantStats): number[] {
  const error = probs.map(() => 0);
  if (q.threshold > 0) {
    for (const [start, end] of quantGroups(seen, "block", q.block)) {
      const kept = probs.some((row) => {
        for (let j = start; j < end; j++) if (!under(row[j], q.threshold)) return true;
        return false;
      });
      if (kept) continue;
      probs.forEach((row, p) => {
        for (let j = start; j < end; j++) error[p] += row[j];
        row.fill(0, start, end);
      });
      if (stats) {
        stats.skippedBlocks++;
        stats.skippedKeys += end - start;
      }
    }
  }
  if (q.target === "probs")
    for (const [start, end] of quantGroups(seen, q.granularity, q.block))
      probs.forEach((row, p) => (error[p] += ((end - start) * quantizeGroup(row, start, end - start, 1, q.bits, false)) / 2));
  return error;
}
