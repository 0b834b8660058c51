import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    // Anvil-backed files each start their own node; two cores: keep it to two at once.
    maxWorkers: 2,
    reporters: ["default"],
  },
});
