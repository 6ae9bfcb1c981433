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
    const temps = plan.buffers.filter((b) => b.kind === "temp");
    const sum = temps.reduce((s, b) => s + evalMonomial(b.size, dims) * BYTES[b.dtype], 0);
    const peak = plan.slots.reduce((s, slot) => s + evalMonomial(slot.bytes, dims), 0);
    expect(temps.length).toBeGreaterThan(200);
    expect(peak).toBeLessThan(sum / 10);
  });
});
