// A fuzz target with a bounded running time: random programs whose models instantiate one
// another (several times, in sub arrays, many levels deep) and nest long loops either
// elaborate or stop with a diagnostic; the elaboration budget keeps every case short, so none
// runs for minutes, exhausts memory or aborts V8 (which would kill this test's worker).
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Diagnostic } from "../../common/diagnostic.ts";
import { compileSource } from "../support/dsl.ts";

interface ModelSpec {
  /** Sub-modules: which later model (as an offset), how many instances, and whether in a sub array of that length. */
  subs: { offset: number; times: number; array: number | null }[];
  /** Loop nests: the ranges, outermost first. */
  loops: number[][];
}

const LONG = fc.oneof({ arbitrary: fc.integer({ min: 0, max: 8 }), weight: 4 }, { arbitrary: fc.constantFrom(1000, 100_000), weight: 1 });
const modelSpec: fc.Arbitrary<ModelSpec> = fc.record({
  subs: fc.array(fc.record({ offset: fc.nat(2), times: fc.integer({ min: 1, max: 3 }), array: fc.option(LONG) }), { maxLength: 3 }),
  loops: fc.array(fc.array(LONG, { minLength: 1, maxLength: 3 }), { maxLength: 2 }),
});

/** One program: model M0 is the root, and model i may only use models after it (no recursion). */
function render(models: ModelSpec[]): string {
  return models
    .map((m, i) => {
      const body = ["  input x: f32[4]", "  let y = x"];
      const calls: string[] = [];
      m.subs.forEach((s, k) => {
        const target = i + 1 + s.offset;
        if (target >= models.length) return;
        for (let t = 0; t < s.times; t++) {
          const name = `s${k}_${t}`;
          if (s.array === null) {
            body.push(`  sub ${name} = M${target}()`);
            calls.push(`y = ${name}(y)`);
          } else {
            body.push(`  sub ${name}[j in 0..${s.array}] = M${target}()`);
            calls.push(`for j in 0..${s.array} { y = ${name}[j](y) }`);
          }
        }
      });
      m.loops.forEach((ranges, k) => {
        const open = ranges.map((r, d) => `for i${k}_${d} in 0..${r} { `).join("");
        calls.push(`${open}y = y * 0.5 + x${" }".repeat(ranges.length)}`);
      });
      // A let may be rebound only inside a for body: wrap the calls in a one-step loop.
      if (calls.length) body.push(`  for once in 0..1 {\n    ${calls.join("\n    ")}\n  }`);
      body.push("  output out = y");
      return `model M${i} {\n${body.join("\n")}\n}`;
    })
    .join("\n");
}

function outcome(source: string): "ok" | "budget" | "diagnostic" {
  try {
    compileSource(source, { model: "M0" }, "fuzz.dt");
    return "ok";
  } catch (e) {
    if (!(e instanceof Diagnostic)) throw e;
    expect(e.format()).toMatch(/^fuzz\.dt:\d+:\d+: error: /);
    return /exceeds the limit of/.test(e.message) ? "budget" : "diagnostic";
  }
}

const doubling: ModelSpec[] = Array.from({ length: 26 }, (_, i) => ({ subs: i < 25 ? [{ offset: 0, times: 2, array: null }] : [], loops: [] }));
const loopNest: ModelSpec[] = [{ subs: [], loops: [[100_000, 100_000]] }];
const small: ModelSpec[] = [{ subs: [{ offset: 0, times: 2, array: 3 }], loops: [[2, 3]] }, { subs: [], loops: [[4]] }];

describe("fuzzing elaboration's budget", () => {
  it("deep instantiation and loop nests end within the budget, with a diagnostic, never an abort", () => {
    const seen = { ok: 0, budget: 0, diagnostic: 0 };
    const started = Date.now();
    fc.assert(
      fc.property(fc.array(modelSpec, { minLength: 1, maxLength: 30 }), (models) => {
        seen[outcome(render(models))]++;
      }),
      // Each case is bounded by the budget; the whole run by a time limit checked between cases.
      { numRuns: 1000, interruptAfterTimeLimit: 20_000, markInterruptAsFailure: false, examples: [[small], [doubling], [loopNest]] },
    );
    // The examples run first, whatever the time limit leaves: one that elaborates, and the two
    // known explosions, which stop at the budget.
    expect(seen.budget).toBeGreaterThanOrEqual(2);
    expect(seen.ok).toBeGreaterThan(0);
    console.log(`fuzz-budget: ${JSON.stringify(seen)} in ${Date.now() - started} ms`);
  }, 180_000);
});
