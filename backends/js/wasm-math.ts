// INTERIM (lead's scratch, replaced by the wasm-math branch): exp only.
import type { MathFn } from "../../compiler/ir/scalar.ts";
import { type Body, exp, F32X4, V128 } from "./wasm-encoder.ts";

export const F32X4_MATH: ReadonlySet<MathFn> = new Set<MathFn>(["exp"]);

export function f32x4Math(f: Body, fn: MathFn, args: string[], out: string): void {
  if (fn !== "exp") throw new Error(fn);
  f.get(args[0], V128).op(...F32X4.constant(88)).simd(F32X4.min).set("math_x", V128);
  exp(f, F32X4, "math_x", "math_e");
  f.op(...F32X4.constant(Infinity)).get("math_e", V128).get(args[0], V128).op(...F32X4.constant(88)).simd(F32X4.gt).simd(0x52).set(out, V128);
}
