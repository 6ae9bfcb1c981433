// The parser and elaborator only ever answer with diagnostics: random text and random
// mutations of the example programs never produce another kind of error.
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Diagnostic } from "../../common/diagnostic.ts";
import { compileSource } from "../support/dsl.ts";

const EXAMPLES = ["diff_attention.dt", "diff_lm.dt", "transformer_lm.dt", "diff_attention_v2.dt"].map((f) =>
  readFileSync(new URL(`../../examples/${f}`, import.meta.url), "utf8"),
);

/** Compiles with small sizes so that mutated programs elaborate quickly. */
function outcome(source: string): "ok" | "diagnostic" {
  try {
    compileSource(source, {}, "fuzz.dt");
    return "ok";
  } catch (e) {
    if (e instanceof Diagnostic) {
      expect(e.format()).toMatch(/^(\S+:\d+:\d+: )?error: /);
      return "diagnostic";
    }
    throw e;
  }
}

const TOKENS = ["model", "dim", "let", "input", "param", "output", "sub", "for", "in", "..", "...", "(", ")", "[", "]", "{", "}", ",", "=", "~", ":", "+", "-", "*", "/", "@", "**", "<", "0", "1", "-1", "2.5", "1e-5", "N", "x", "f32", "i32", "bool", "true", "Linear", "diffattn", "softmax", "reshape", "sum", "heads", "#", "\n", '"s"'];

const mutation = fc.oneof(
  fc.record({ kind: fc.constant("delete" as const), at: fc.nat(), length: fc.integer({ min: 1, max: 20 }) }),
  fc.record({ kind: fc.constant("insert" as const), at: fc.nat(), token: fc.constantFrom(...TOKENS) }),
  fc.record({ kind: fc.constant("number" as const), at: fc.nat(), value: fc.constantFrom("0", "1", "3", "7", "-2", "0.5", "8") }),
);

function mutate(source: string, ms: { kind: string; at: number; length?: number; token?: string; value?: string }[]): string {
  let s = source;
  for (const m of ms) {
    const at = m.at % (s.length + 1);
    if (m.kind === "delete") s = s.slice(0, at) + s.slice(at + (m.length ?? 1));
    else if (m.kind === "insert") s = `${s.slice(0, at)} ${m.token} ${s.slice(at)}`;
    else {
      // Replace the next integer literal: sizes, heads, layer counts.
      const rest = s.slice(at).replace(/\b\d+\b/, m.value ?? "1");
      s = s.slice(0, at) + rest;
    }
  }
  return s;
}

describe("fuzzing the front end", () => {
  it("random strings give diagnostics", () => {
    fc.assert(fc.property(fc.string({ maxLength: 200 }), (s) => void outcome(s)), { numRuns: 300 });
  });

  it("random token soups give diagnostics", () => {
    fc.assert(fc.property(fc.array(fc.constantFrom(...TOKENS), { maxLength: 60 }), (ts) => void outcome(ts.join(" "))), { numRuns: 300 });
  });

  it("mutated example programs compile or give diagnostics", () => {
    const seen = { ok: 0, diagnostic: 0 };
    fc.assert(
      fc.property(fc.constantFrom(...EXAMPLES), fc.array(mutation, { minLength: 1, maxLength: 3 }), (src, ms) => {
        // Keep the mutated models small: one layer, narrow widths.
        const small = src.replace(/L = 4/, "L = 1").replace(/D = 512/, "D = 64").replace(/D = 256/, "D = 32");
        seen[outcome(mutate(small, ms))]++;
      }),
      { numRuns: 400 },
    );
    // Both outcomes occur, or the mutations are not exercising anything.
    expect(seen.ok).toBeGreaterThan(0);
    expect(seen.diagnostic).toBeGreaterThan(0);
  });

  it("deep nesting is a diagnostic, not a stack overflow", () => {
    expect(outcome(`model M { input x: f32[4] output y = ${"(".repeat(20000)}x${")".repeat(20000)} }`)).toBe("diagnostic");
  });
});
