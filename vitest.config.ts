import { defineConfig } from "vitest/config";

const report = process.env.DIFFTC_TEST_REPORT;

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // fast-check's global parameters: DIFFTC_SEED replays a failing property from its seed.
    setupFiles: ["test/setup/fast-check.ts"],
    // CI machines have 2 cores; tests that spawn the CLI or compile artifacts need headroom.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // .ci/run asks for a JSON report as well, to print one plain closing line.
    reporters: report ? ["default", "json"] : ["default"],
    outputFile: report ? { json: report } : undefined,
  },
});
