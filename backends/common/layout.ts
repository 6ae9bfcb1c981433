// Index arithmetic shared by kernel templates: strides as monomials (symbolic where shapes
// are), broadcast strides, and coalescing of loop dims so that kernels run flat loops.
import type { Dim } from "../../compiler/ir/types.ts";
import { type Monomial, monomialOf } from "../../common/size.ts";

export const ZERO: Monomial = { coefficient: 0, symbols: [] };

export function scale(m: Monomial, k: number): Monomial {
  return k === 0 ? ZERO : { coefficient: m.coefficient * k, symbols: m.symbols };
}
export function times(a: Monomial, b: Monomial): Monomial {
  if (a.coefficient === 0 || b.coefficient === 0) return ZERO;
  return { coefficient: a.coefficient * b.coefficient, symbols: [...a.symbols, ...b.symbols].sort() };
}
export function sameMonomial(a: Monomial, b: Monomial): boolean {
  if (a.coefficient === 0 || b.coefficient === 0) return a.coefficient === b.coefficient;
  return a.coefficient === b.coefficient && a.symbols.join("*") === b.symbols.join("*");
}

/** Row-major strides of a shape. */
export function strides(shape: readonly Dim[]): Monomial[] {
  return shape.map((_, i) => monomialOf(shape.slice(i + 1)));
}

/** Strides with which an operand of `shape` is read at each index of `outShape` (broadcast = 0). */
export function broadcastStrides(shape: readonly Dim[], outShape: readonly Dim[]): Monomial[] {
  const own = strides(shape);
  const lead = outShape.length - shape.length;
  return outShape.map((d, i) => {
    const j = i - lead;
    if (j < 0) return ZERO;
    return shape[j] === 1 && d !== 1 ? ZERO : own[j];
  });
}

/** One tensor walked by a loop nest: its offset and its stride along each loop dim. */
export interface Access {
  strides: Monomial[];
}

/**
 * Merges adjacent loop dims wherever every access walks them as one (stride[d] =
 * stride[d+1] * size[d+1]), so [N, 512] elementwise becomes one loop of N*512.
 */
export function coalesce(sizes: readonly Monomial[], accesses: readonly Access[]): { sizes: Monomial[]; strides: Monomial[][] } {
  const out = { sizes: [...sizes], strides: accesses.map((a) => [...a.strides]) };
  for (let d = out.sizes.length - 2; d >= 0; d--) {
    const mergeable = out.strides.every((s) => sameMonomial(s[d], times(s[d + 1], out.sizes[d + 1])));
    if (!mergeable) continue;
    out.sizes.splice(d, 2, times(out.sizes[d], out.sizes[d + 1]));
    for (const s of out.strides) s.splice(d, 2, s[d + 1]);
  }
  // Size-1 dims contribute nothing.
  for (let d = out.sizes.length - 1; d >= 0 && out.sizes.length > 1; d--) {
    if (out.sizes[d].coefficient === 1 && out.sizes[d].symbols.length === 0) {
      out.sizes.splice(d, 1);
      for (const s of out.strides) s.splice(d, 1);
    }
  }
  return out;
}

export function sizesOf(shape: readonly Dim[]): Monomial[] {
  return shape.map((d) => monomialOf([d]));
}
