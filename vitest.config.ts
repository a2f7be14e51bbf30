import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/global-setup.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration suites start real servers on free ports; two workers fit a 2-core machine.
    maxWorkers: 2,
    // expect.poll waits for a state to come about (a browser page signed in and rendered); its
    // default second is a load-dependent deadline that a busy CI machine misses.
    expect: { poll: { timeout: 15_000 } },
  },
});
