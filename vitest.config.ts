import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // CI machines have 2 cores; tests that spawn the CLI or compile artifacts need headroom.
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
