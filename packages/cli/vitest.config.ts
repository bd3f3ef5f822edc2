import { defineProject } from "vitest/config"

export default defineProject({
  test: {
    name: "cli",
    include: ["test/**/*.test.ts"],
    setupFiles: ["../../vitest.setup.ts"],
    sequence: { concurrent: true },
    testTimeout: 120_000
  }
})
