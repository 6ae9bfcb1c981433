// Sizes of buffers: a product of static sizes and symbolic dims, `coefficient * N * M`. Part of
// the artifact contract (manifest sizes), so it is neutral: every stage may import it.
import type { Dim } from "../compiler/ir/types.ts";

export interface Monomial {
  coefficient: number;
  symbols: string[]; // sorted, with repetition
}

export function monomialOf(shape: readonly Dim[], scale = 1): Monomial {
  let coefficient = scale;
  const symbols: string[] = [];
  for (const d of shape) {
    if (typeof d === "number") coefficient *= d;
    else symbols.push(d);
  }
  return { coefficient, symbols: symbols.sort() };
}

export function evalMonomial(m: Monomial, dims: ReadonlyMap<string, number>): number {
  let v = m.coefficient;
  for (const s of m.symbols) {
    const d = dims.get(s);
    if (d === undefined) throw new Error(`dim ${s} is not bound`);
    v *= d;
  }
  return v;
}

/** Whether a buffer of size `have` can always hold `need`: same symbols, no smaller. */
export function covers(have: Monomial, need: Monomial): boolean {
  return have.symbols.join("*") === need.symbols.join("*") && have.coefficient >= need.coefficient;
}

export function formatMonomial(m: Monomial): string {
  return [String(m.coefficient), ...m.symbols].filter((s, i) => i > 0 || s !== "1" || m.symbols.length === 0).join("*");
}
