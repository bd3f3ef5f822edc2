import { defineProject } from "vitest/config"

export default defineProject({
  test: {
    name: "tile",
    include: ["test/**/*.test.ts"],
    setupFiles: ["../../vitest.setup.ts"],
    // The grid simulations are synchronous: run side by side their times would only add up against each
    // test's timeout, so tests run one after another.
    sequence: { concurrent: false },
    testTimeout: 60_000
  }
})
