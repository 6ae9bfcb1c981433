// A JS artifact's run() shares the caller's event loop: between kernels it lets timers and I/O
// run every few milliseconds; runSync() holds the loop until it returns. Overlapping runs of one
// session take turns (they share its temporaries).
import { describe, expect, it } from "vitest";
import { compileJs } from "../../backends/js/index.ts";
import { importJsModule } from "../../runtime/adapters/js/index.ts";
import { initWeights, randomInputs } from "../../runtime/init.ts";
import { serializeSafetensors } from "../../runtime/safetensors.ts";
import { toTyped } from "../../runtime/adapters/module.ts";
import { compileSource } from "../support/dsl.ts";

/**
 * Many small kernels (the unfused LM): a run of some tens of milliseconds in f64, whose kernels
 * are JS (f32 compiles them to wasm, a few times faster; the runtime's turns are the same).
 */
const graph = compileSource("model M(D = 64, L = 16) {\n  dim N\n  input x: f32[N, D]\n  sub norms[l in 0..L] = RMSNorm(D)\n  let h = x\n  for l in 0..L { h = norms[l](h) + h }\n  output y = h\n}", { set: new Map() });

async function session() {
  const model = await importJsModule(String(compileJs(graph, [], { precision: "f64" }).files.get("model.js")));
  return model.load(serializeSafetensors(initWeights(graph, 1)));
}

/** How many times a 0 ms timer fired while `work` ran. */
async function timerTicks(work: () => unknown): Promise<number> {
  let ticks = 0;
  let running = true;
  const tick = () => {
    ticks++;
    if (running) setTimeout(tick, 0);
  };
  setTimeout(tick, 0);
  await work();
  running = false;
  return ticks;
}

describe("a JS artifact's run()", () => {
  it("lets timers run while it computes; runSync() does not", async () => {
    const run = await session();
    const inputs = { x: Float32Array.from({ length: 4096 * 64 }, (_, i) => Math.sin(i)) };
    const blocking = run as unknown as { runSync(i: unknown): unknown };
    const start = performance.now();
    expect(await timerTicks(() => blocking.runSync(inputs))).toBe(0);
    // Long enough that yielding every few milliseconds lets a timer fire.
    expect(performance.now() - start).toBeGreaterThan(50);
    expect(await timerTicks(() => run.run(inputs))).toBeGreaterThan(0);
  });

  it("runs overlapping calls in turn, each with its own inputs", async () => {
    // The same sizes, so that a run interleaved with another would find its temporaries overwritten.
    const [a, b] = [1, 2].map((seed) => ({ x: toTyped(randomInputs(graph, new Map([["N", 4096]]), seed).get("x")!) }));
    const run = await session();
    const [ya, yb] = await Promise.all([run.run(a), run.run(b)]);
    const alone = (await session()) as unknown as { runSync(i: unknown): { y: Float32Array } };
    // Compared as one boolean: a diff of a quarter million floats takes the reporter minutes.
    const same = (x: ArrayLike<number>, y: ArrayLike<number>) => x.length === y.length && Array.prototype.every.call(x, (v: number, i: number) => Object.is(v, y[i]));
    expect(same(ya.y, alone.runSync(a).y)).toBe(true);
    expect(same(yb.y, alone.runSync(b).y)).toBe(true);
  });
});
