// Arith over WGSL source: the IR's scalar rules (causal rule, epilogue, level rule) rendered as
// WGSL expressions, in i32 (the causal rule's counts) or f32.
import type { Arith } from "../../compiler/ir/ops/attention-geometry.ts";
import { wgslLanguage } from "./language.ts";

export const WGSL_INTEGERS: Arith<string> = {
  num: (c) => `${c}i`,
  add: (a, b) => `(${a} + ${b})`,
  sub: (a, b) => `(${a} - ${b})`,
  mul: (a, b) => `(${a} * ${b})`,
  div: (a, b) => `(${a} / ${b})`,
  min: (a, b) => `min(${a}, ${b})`,
  max: (a, b) => `max(${a}, ${b})`,
  sqrt: (a) => `sqrt(${a})`,
};

export const WGSL_FLOATS: Arith<string> = { ...WGSL_INTEGERS, num: (c) => wgslLanguage.literal(c, "f32") };
