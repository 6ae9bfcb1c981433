// Where the attention ops find their data and which keys each query sees: the one statement of
// the head layouts, GQA groups, default scale and causal rule of attention, diffattn and their
// fused forms. The interpreter rules, the decompositions and every backend's attention template
// read it from here, so that a backend cannot drift from the ops' meaning (DESIGN.md §3, §5).
import type { Attrs } from "../graph.ts";
import { OpError } from "../registry.ts";
import { broadcastShapes, type Dim, formatType, isFloat, type TensorType } from "../types.ts";

/** How diffattn pairs the subheads of q and k into its two maps (DESIGN.md §3). */
export type Pairing = "stripe" | "halves";

export interface AttentionGeometry {
  /** Softmax maps per head: 2 for diffattn's p1 - λ p2 (eq. 1), 1 for attention. */
  maps: 1 | 2;
  /** Query heads H: the output has one dv-wide vector per head. */
  heads: number;
  /** Key/value heads Hkv, with kv_heads = 0 already read as H: a backend never sees the 0. */
  kvHeads: number;
  /** Query heads per kv head, H / Hkv: the G heads of a group share its keys and values. */
  group: number;
  /** The kv group whose keys and values q-head h reads: h / (H / Hkv), the flash semantics. */
  kvGroupOf(h: number): number;
  /** The q-heads of kv group g, in order: the heads a kernel can serve from one packing of K and V. */
  headsOfGroup(g: number): number[];
  /** Width of one q/k (sub)head: what the scores' dot products run over and the default scale reads. */
  d: number;
  /** Width of one output head: dv of v for attention, 2d for diffattn (both maps' values). */
  dv: number;
  /** The batch dims of q, k and v broadcast together: the leading dims of the result. */
  batch: Dim[];
  /** Queries N (rows of q); symbolic when the graph's size is. */
  n: Dim;
  /** Keys M (rows of k and v); symbolic when the graph's size is. */
  m: Dim;
  /** The scale of the scores with scale = 0 already read as d^-0.5: kernels multiply by this. */
  scale: number;
  /** Whether query i sees only the keys of the causal rule (`visibleKeys`). */
  causal: boolean;
  /** diffattn's pairing of subheads; undefined for attention, whose single map has no pairs. */
  pairing?: Pairing;
  /** Per map, per q-head h: the column of a q row where that map's d-wide (sub)head starts. */
  qColumns: number[][];
  /** Per map, per kv group g: the column of a k row where that map's d-wide (sub)head starts. */
  kColumns: number[][];
  /**
   * Per segment, per kv group g: the column of a v row where the segment starts. A head's value
   * vector is its group's segments concatenated in order, each `vSegment` wide; halves needs
   * two segments, stripe and attention one (contiguous values read as one run).
   */
  vColumns: number[][];
  /** Width of each v segment; segments × vSegment = dv. */
  vSegment: number;
}

/** Maps per op: the fused ops have the math of the op they replace. */
const MAPS: Record<string, 1 | 2> = { attention: 1, flash_attention: 1, qflash_attention: 1, diffattn: 2, flash_diffattn: 2, qflash_diffattn: 2 };

function staticWidth(op: string, role: string, t: TensorType): number {
  const w = t.shape[t.shape.length - 1];
  if (typeof w !== "number") throw new OpError(`${op}: the last dim of ${role} ${formatType(t)} must be a static size to split it into heads`);
  return w;
}

const range = (count: number, f: (i: number) => number) => Array.from({ length: count }, (_, i) => f(i));

/** The columns of q, k and v per head; see AttentionGeometry. */
function layout(maps: 1 | 2, pairing: Pairing | undefined, heads: number, kvHeads: number, d: number, dv: number) {
  if (maps === 1) return { qColumns: [range(heads, (h) => h * d)], kColumns: [range(kvHeads, (g) => g * d)], vColumns: [range(kvHeads, (g) => g * dv)], vSegment: dv };
  if (pairing === "halves")
    // Hugging Face DiffLlama: the first half of the subheads against the second; v is
    // [M, 2Hkv, d] and group g's values are subheads g and Hkv+g (its chunk-and-cat of value_states).
    return {
      qColumns: [range(heads, (h) => h * d), range(heads, (h) => (heads + h) * d)],
      kColumns: [range(kvHeads, (g) => g * d), range(kvHeads, (g) => (kvHeads + g) * d)],
      vColumns: [range(kvHeads, (g) => g * d), range(kvHeads, (g) => (kvHeads + g) * d)],
      vSegment: d,
    };
  // The official Diff Transformer code: subheads 2h and 2h+1 of q (2g and 2g+1 of k) form the
  // pair; v is [M, Hkv, 2d], group g's values taken whole.
  return {
    qColumns: [range(heads, (h) => 2 * h * d), range(heads, (h) => (2 * h + 1) * d)],
    kColumns: [range(kvHeads, (g) => 2 * g * d), range(kvHeads, (g) => (2 * g + 1) * d)],
    vColumns: [range(kvHeads, (g) => g * dv)],
    vSegment: dv,
  };
}

/**
 * The geometry of attention, diffattn, flash_attention or flash_diffattn from its operand types
 * (q, k, v first; the rest are ignored) and attributes. Throws OpError, naming `op` and the
 * shapes, when the operands do not fit: it is also the ops' shape rule.
 */
export function attentionGeometry(op: string, [q, k, v]: TensorType[], a: Attrs): AttentionGeometry {
  const maps = MAPS[op];
  if (maps === undefined) throw new Error(`attentionGeometry: ${op} is not an attention op`);
  const all = `q ${formatType(q)}, k ${formatType(k)}, v ${formatType(v)}`;
  if (q.shape.length < 2 || k.shape.length < 2 || v.shape.length < 2) throw new OpError(`${op}: q, k and v must each be [..., rows, width], got ${all}`);
  if (!isFloat(q.dtype) || k.dtype !== q.dtype || v.dtype !== q.dtype) throw new OpError(`${op}: q, k and v must be float tensors of one dtype, got ${all}`);
  const heads = a.heads as number;
  const kvHeads = ((a.kv_heads as number | undefined) ?? 0) === 0 ? heads : (a.kv_heads as number);
  if (heads < 1) throw new OpError(`${op}: heads must be positive, got ${heads}`);
  if (kvHeads < 1) throw new OpError(`${op}: kv_heads must be positive (or 0 for heads), got ${a.kv_heads}`);
  if (heads % kvHeads !== 0) throw new OpError(`${op}: heads ${heads} is not a multiple of kv_heads ${kvHeads} (q ${formatType(q)}, k ${formatType(k)})`);

  const qWidth = staticWidth(op, "q", q);
  const kWidth = staticWidth(op, "k", k);
  const vWidth = staticWidth(op, "v", v);
  const qSplit = maps * heads;
  if (qWidth % qSplit !== 0)
    throw new OpError(`${op}: q ${formatType(q)} has width ${qWidth}, not a multiple of ${maps === 2 ? `2 * heads = ${qSplit}` : `heads = ${qSplit}`}`);
  const d = qWidth / qSplit;
  const kNeed = maps * kvHeads * d;
  if (kWidth !== kNeed)
    throw new OpError(`${op}: k ${formatType(k)} has width ${kWidth}, but ${maps === 2 ? "2 * " : ""}kv_heads ${kvHeads} heads of width ${d} (from q ${formatType(q)}) need ${kNeed}`);
  let dv: number;
  if (maps === 2) {
    dv = 2 * d;
    if (vWidth !== kvHeads * dv) throw new OpError(`${op}: v ${formatType(v)} has width ${vWidth}, but kv_heads ${kvHeads} heads of width 2 * ${d} need ${kvHeads * dv}`);
  } else {
    if (vWidth % kvHeads !== 0) throw new OpError(`${op}: v ${formatType(v)} has width ${vWidth}, not a multiple of kv_heads ${kvHeads}`);
    dv = vWidth / kvHeads;
  }

  const m = k.shape[k.shape.length - 2];
  const mv = v.shape[v.shape.length - 2];
  if (m !== mv) throw new OpError(`${op}: k ${formatType(k)} and v ${formatType(v)} have different numbers of keys (${m} vs ${mv})`);
  const batch = [q, k, v].reduce<Dim[] | undefined>((acc, t) => acc && broadcastShapes(acc, t.shape.slice(0, -2)), []);
  if (!batch) throw new OpError(`${op}: the batch dims of ${all} do not broadcast`);

  const group = heads / kvHeads;
  const kvGroupOf = (h: number) => Math.floor(h / group);
  const pairing = maps === 2 ? ((a.pairing as Pairing | undefined) ?? "stripe") : undefined;
  return {
    maps,
    heads,
    kvHeads,
    group,
    kvGroupOf,
    headsOfGroup: (g) => range(heads, (h) => h).filter((h) => kvGroupOf(h) === g),
    d,
    dv,
    batch,
    n: q.shape[q.shape.length - 2],
    m,
    scale: (a.scale as number | undefined) || d ** -0.5,
    causal: (a.causal as boolean | undefined) ?? false,
    pairing,
    ...layout(maps, pairing, heads, kvHeads, d, dv),
  };
}

/**
 * Scalar arithmetic over T: numbers where the interpreter evaluates a rule, source text where a
 * backend renders it, graph nodes where a decomposition builds it. A rule written once against
 * this is the same rule in every one of them.
 */
export interface Arith<T> {
  num(c: number): T;
  add(a: T, b: T): T;
  sub(a: T, b: T): T;
  mul(a: T, b: T): T;
  div(a: T, b: T): T;
  min(a: T, b: T): T;
  max(a: T, b: T): T;
  sqrt(a: T): T;
}

/** Arith over float64 numbers: the interpreter's. */
export const NUMBERS: Arith<number> = {
  num: (c) => c,
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  min: Math.min,
  max: Math.max,
  sqrt: Math.sqrt,
};

/** The offset M - N of the causal rule: it aligns the last query with the last key, as the paper's code does for a KV cache holding M - N earlier keys. */
function offset<T>(A: Arith<T>, n: T, m: T): T {
  return A.sub(m, n);
}

/** The last key query i sees, i + (M - N): the rule is j <= lastKey, and a negative lastKey sees none. */
function lastKey<T>(A: Arith<T>, i: T, n: T, m: T): T {
  return A.add(i, offset(A, n, m));
}

/** How many keys query i sees, lastKey + 1 clamped to [0, M]: keys 0 .. count - 1, a count that never falls as i grows. */
function visibleKeysOf<T>(A: Arith<T>, i: T, n: T, m: T): T {
  return A.max(A.num(0), A.min(m, A.add(lastKey(A, i, n, m), A.num(1))));
}

/** The causal rule over any Arith: query i of N sees key j of M iff j <= i + (M - N). */
export const causalRule = { offset, lastKey, visibleKeys: visibleKeysOf };

/** M - N for numbers: the causal offset. */
export const causalOffset = (n: number, m: number): number => offset(NUMBERS, n, m);
/** The number of keys query i of n sees among m under the causal rule. */
export const visibleKeys = (i: number, n: number, m: number): number => visibleKeysOf(NUMBERS, i, n, m);
