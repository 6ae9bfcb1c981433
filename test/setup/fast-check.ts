// Vitest setup (vitest.config.ts, setupFiles): fast-check's global parameters for every test
// file. A failing property's report gives its seed and shrink path ("{ seed: 1391127711,
// path: "0:1:0", endOnFailure: true }", then the counterexample); DIFFTC_SEED=<that seed> runs
// every property from it, so the failure replays:
//
//   DIFFTC_SEED=1391127711 npx vitest run test/backends/ops.test.ts
//
// Properties that pass their own seed (fc.sample(..., { seed })) keep it.
import fc from "fast-check";

const seed = process.env.DIFFTC_SEED;
if (seed !== undefined && seed !== "") {
  const value = Number(seed);
  // fast-check takes a 32-bit integer seed, negative ones included (its reports print them).
  if (!Number.isInteger(value) || value < -(2 ** 31) || value >= 2 ** 32) throw new Error(`DIFFTC_SEED must be a 32-bit integer seed as fast-check reports it, got ${JSON.stringify(seed)}`);
  fc.configureGlobal({ ...fc.readConfigureGlobal(), seed: value });
}
