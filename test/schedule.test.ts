// The kernel plan: launch order, views, and buffer reuse by liveness.
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decompose } from "../compiler/passes/decompose.ts";
import { BYTES, type KernelPlan, schedule } from "../compiler/schedule/index.ts";
import { evalMonomial } from "../common/size.ts";
import { jsOps } from "../backends/js/index.ts";
import { arbitraryGraph } from "./support/random-graph.ts";
import { compileSource } from "./support/dsl.ts";

const LM = readFileSync(new URL("../examples/diff_lm.dt", import.meta.url), "utf8");

/** For each kernel, the temporaries alive while it runs: written earlier, read now or later. */
function liveSets(plan: KernelPlan): Set<number>[] {
  const lastUse = new Map<number, number>();
  plan.kernels.forEach((k, i) => k.inputs.forEach((b) => lastUse.set(b, i)));
  for (const o of plan.outputs) lastUse.set(o.buffer, Infinity);
  const written = new Map<number, number>();
  plan.kernels.forEach((k, i) => written.set(k.output, i));
  return plan.kernels.map((_, i) => new Set([...written].filter(([b, w]) => w <= i && (lastUse.get(b) ?? w) >= i).map(([b]) => b)));
}

describe("schedule", () => {
  it("gives no two buffers that are alive at once the same slot", () => {
    fc.assert(
      fc.property(arbitraryGraph({ dims: true }), (graph) => {
        const plan = schedule(decompose(graph, jsOps()));
        for (const live of liveSets(plan)) {
          const slots = [...live].map((b) => plan.buffers[b].slot);
          expect(new Set(slots).size).toBe(slots.length);
        }
      }),
      { numRuns: 200 },
    );
  });

  it("marks what params and consts alone compute, and gives each of those a slot of its own", () => {
    fc.assert(
      fc.property(arbitraryGraph({ dims: true }), (graph) => {
        const plan = schedule(decompose(graph, jsOps()));
        const fixed = (b: number) => plan.buffers[b].kind === "param" || plan.buffers[b].kind === "const" || plan.buffers[b].fromParams === true;
        for (const k of plan.kernels) expect(plan.buffers[k.output].fromParams === true, k.name).toBe(k.inputs.length > 0 && k.inputs.every(fixed));
        const slotsOf = plan.buffers.filter((b) => b.kind === "temp").map((b) => b.slot);
        for (const b of plan.buffers.filter((x) => x.fromParams)) expect(slotsOf.filter((s) => s === b.slot)).toHaveLength(1);
      }),
      { numRuns: 100 },
    );
    // DiffLM's λ per layer: exp(sum(λq1 * λk1)) - exp(sum(λq2 * λk2)) + λinit, from params alone.
    const plan = schedule(decompose(compileSource(LM, { set: new Map([["L", 2]]) }), jsOps()));
    const folded = plan.kernels.filter((k) => plan.buffers[k.output].fromParams);
    expect(folded.length).toBeGreaterThanOrEqual(2 * 3);
    expect(folded.flatMap((k) => k.nodes.map((n) => n.op))).toContain("exp");
  });

  it("makes reshape a view: no kernel, the operand's buffer", () => {
    const graph = compileSource("model M { dim N\n input x: f32[N, 4]\n output y = reshape(x * 2, [N, 2, 2]) + 1 }");
    const plan = schedule(graph);
    expect(plan.kernels.map((k) => k.nodes[0].op)).toEqual(["mul", "add"]);
    expect(plan.kernels[1].inputs[0]).toBe(plan.kernels[0].output);
  });

  it("keeps DiffLM's peak memory far below the sum of its intermediates", () => {
    const graph = compileSource(LM, { set: new Map([["L", 4]]) });
    const plan = schedule(decompose(graph, jsOps()));
    const dims = new Map([["N", 128]]);
    // What params alone compute (weight transposes, λ) is weights computed at load, in slots of its own.
    const temps = plan.buffers.filter((b) => b.kind === "temp" && !b.fromParams);
    const sum = temps.reduce((s, b) => s + evalMonomial(b.size, dims) * BYTES[b.dtype], 0);
    const shared = new Set(temps.map((b) => b.slot));
    const peak = plan.slots.filter((slot) => shared.has(slot.id)).reduce((s, slot) => s + evalMonomial(slot.bytes, dims), 0);
    expect(temps.length).toBeGreaterThan(200);
    expect(peak).toBeLessThan(sum / 10);
  });
});
