// The load and store spellings the hand-written templates (matmul, attention) use: the JS
// language table's, so they agree with the shared lowering's kernels.
import type { DType } from "../../compiler/ir/types.ts";
import { jsEncode, jsLanguage } from "./language.ts";

/** A decoded read of `buffer[index]`, recording the helpers it needs. */
export function loadExpr(dtype: DType, buffer: string, index: string, helpers: Set<string>): string {
  return jsLanguage.load(buffer, dtype, index, (h) => helpers.add(h));
}

/** The value to assign to an element of `dtype`'s storage: encoded (16-bit bits, bool 0 or 1). */
export function storeExpr(dtype: DType, value: string, helpers: Set<string>): string {
  return jsEncode(dtype, value, (h) => helpers.add(h));
}
