// The load and store spellings the hand-written templates (matmul, attention) use: the JS
// language table's, so they agree with the shared lowering's kernels.
import type { DType } from "../../compiler/ir/types.ts";
import { jsLanguage } from "./language.ts";


/** `buffer[index]` in the form `loadExpr("in0", "f16", ...)` reads, split at the bracket. */
function split(e: string): [string, string] {
  const open = e.indexOf("[");
  return [e.slice(0, open), e.slice(open + 1, -1)];
}

/** A decoded read of `array[index]` (written as that string), recording the helpers it needs. */
export function loadExpr(dtype: DType, e: string, helpers: Set<string>): string {
  const [buffer, index] = split(e);
  return jsLanguage.load(buffer, dtype, index, (h) => helpers.add(h));
}

/** The value to assign to an element of `dtype`'s storage: encoded (16-bit bits, bool 0 or 1). */
export function storeExpr(dtype: DType, e: string, helpers: Set<string>): string {
  const stored = jsLanguage.store("x", dtype, "0", e, (h) => helpers.add(h));
  return stored.slice("x[0] = ".length, -1);
}
