import type { OnnxRule } from "./builder.ts";
export const attentionRules: Record<string, OnnxRule> = {};
