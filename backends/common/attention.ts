// What the GPU streaming attention templates (CUDA, WGSL) share beyond the IR's geometry: where
// each operand's data starts for one batch entry, and a head's column as code.
import type { AttentionGeometry } from "../../compiler/ir/ops/attention-geometry.ts";
import type { TensorType } from "../../compiler/ir/types.ts";
import { type Monomial, monomialOf } from "../../common/size.ts";
import { broadcastStrides, strides, times } from "./layout.ts";

export interface EntryLayout {
  /** Per operand (out, q, k, v, then λ for diffattn): its stride along each batch dim, in elements. */
  entryStrides: Monomial[][];
  /** The templates' names for each operand's offset within its buffer for the current entry. */
  offsets: string[];
  /** λ's strides over [...batch, N, heads] (diffattn): the batch dims', then the row's and the head's. */
  lambdaStrides: Monomial[];
}

const lastDim = (t: TensorType) => t.shape[t.shape.length - 1] as number;

/** Batch dims broadcast: each operand's offset for an entry is the sum of index × stride over the batch dims. */
export function entryLayout(geo: AttentionGeometry, [q, k, v, lambda]: TensorType[]): EntryLayout {
  const { batch, n, m, heads, dv } = geo;
  const entryStrides = [
    strides(batch).map((s) => times(s, monomialOf([n, heads, dv]))),
    broadcastStrides(q.shape.slice(0, -2), batch).map((s) => times(s, monomialOf([n, lastDim(q)]))),
    broadcastStrides(k.shape.slice(0, -2), batch).map((s) => times(s, monomialOf([m, lastDim(k)]))),
    broadcastStrides(v.shape.slice(0, -2), batch).map((s) => times(s, monomialOf([m, lastDim(v)]))),
  ];
  const lambdaStrides = geo.maps === 2 ? broadcastStrides(lambda.shape, [...batch, n, heads]) : [];
  if (geo.maps === 2) entryStrides.push(lambdaStrides.slice(0, batch.length));
  return { entryStrides, lambdaStrides, offsets: ["oOut", "oQ", "oK", "oV", "oLam"].slice(0, entryStrides.length) };
}

/**
 * The IR's column of head (or group) `index` as code: affine in the index when the layout is
 * (both pairings are), else a chain of selects; never an indexed table, which a GPU keeps in
 * slow local memory. `int` spells an integer literal, `choose(cond, a, b)` a select.
 */
export function columnExpr(xs: number[], index: string, int: (n: number) => string, choose: (cond: string, a: string, b: string) => string): string {
  const step = xs.length > 1 ? xs[1] - xs[0] : 0;
  if (xs.every((x, i) => x === xs[0] + i * step)) return step === 0 ? int(xs[0]) : `(${int(xs[0])} + ${index} * ${int(step)})`;
  return xs.slice(0, -1).reduceRight((rest, x, i) => choose(`${index} == ${int(i)}`, int(x), rest), int(xs[xs.length - 1]));
}
