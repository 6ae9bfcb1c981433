// How the peers cut attention and diffattn into per-head batched matmuls, from the ops' docs
// (compiler/ir/ops/attention.ts): q is viewed as [..., N, maps*H, d] and all of its subheads
// meet their k subheads in one batched matmul, as the official Diff Transformer code does;
// the maps*H score maps are then split into map p of head h.

export interface HeadPlan {
  /** 1 for attention, 2 for diffattn. */
  maps: 1 | 2;
  heads: number;
  kvHeads: number;
  /** Width of one q/k subhead. */
  d: number;
  /** Width of one output head. */
  dv: number;
  scale: number;
  causal: boolean;
  /** For each q subhead, the k subhead it meets (GQA and pairing); undefined when it is its own index. */
  kSubhead: number[] | undefined;
  /** Where map p of head h sits among the maps*H score maps: subhead 2h+p ("stripe") or pH+h ("halves"). */
  mapOrder: "stripe" | "halves";
  /** v viewed as [..., M, vSubheads, vWidth]; head h's values are the concatenation of subheads vParts[s][h]. */
  vSubheads: number;
  vWidth: number;
  vParts: number[][];
}

function isIdentity(index: readonly number[]): boolean {
  return index.every((v, i) => v === i);
}

/** The plan for one attention or diffattn node, from its attributes and static widths. */
export function headPlan(op: "attention" | "diffattn", attrs: Record<string, unknown>, qWidth: number, vWidth: number): HeadPlan {
  const maps = op === "diffattn" ? 2 : 1;
  const heads = attrs.heads as number;
  const kvHeads = (attrs.kv_heads as number) || heads;
  const group = heads / kvHeads;
  const d = qWidth / (maps * heads);
  const scale = (attrs.scale as number) || d ** -0.5;
  const causal = attrs.causal as boolean;
  const kvGroup = (h: number) => Math.floor(h / group);
  const headsRange = [...Array(heads).keys()];
  if (maps === 1) {
    const kSubhead = headsRange.map(kvGroup);
    return {
      maps, heads, kvHeads, d, dv: vWidth / kvHeads, scale, causal,
      kSubhead: isIdentity(kSubhead) ? undefined : kSubhead,
      mapOrder: "stripe",
      vSubheads: kvHeads,
      vWidth: vWidth / kvHeads,
      vParts: [headsRange.map(kvGroup)],
    };
  }
  const halves = attrs.pairing === "halves";
  // q subhead j is map p of head h; it meets map p of kv group g(h).
  const kSubhead = [...Array(2 * heads).keys()].map((j) => {
    const [h, p] = halves ? [j % heads, Math.floor(j / heads)] : [Math.floor(j / 2), j % 2];
    return halves ? p * kvHeads + kvGroup(h) : 2 * kvGroup(h) + p;
  });
  return {
    maps, heads, kvHeads, d, dv: 2 * d, scale, causal,
    kSubhead: isIdentity(kSubhead) ? undefined : kSubhead,
    mapOrder: halves ? "halves" : "stripe",
    // stripe: v is [M, Hkv, 2d], head g whole; halves: [M, 2Hkv, d], subheads g and Hkv+g.
    vSubheads: halves ? 2 * kvHeads : kvHeads,
    vWidth: halves ? d : 2 * d,
    vParts: halves ? [headsRange.map(kvGroup), headsRange.map((h) => kvHeads + kvGroup(h))] : [headsRange.map(kvGroup)],
  };
}

/** Whether v needs no gather: one part whose subheads are the heads themselves. */
export function vIsPerHead(plan: HeadPlan): boolean {
  return plan.vParts.length === 1 && plan.vParts[0].length === plan.vSubheads && isIdentity(plan.vParts[0]);
}

/**
 * The additive causal mask [N, M] (query i sees keys j <= i + M - N), and which queries see
 * no key at all (N > M): their softmax row is NaN in the peers and must become 0.
 */
export function causalMask(n: number, m: number): { mask: Float32Array; blindRows: number[] } {
  const mask = new Float32Array(n * m);
  const blindRows: number[] = [];
  for (let i = 0; i < n; i++) {
    const seen = Math.max(0, Math.min(m, i + m - n + 1));
    if (seen === 0) blindRows.push(i);
    mask.fill(-Infinity, i * m + seen, (i + 1) * m);
  }
  return { mask, blindRows };
}
