import { defineProject } from "vitest/config"

export default defineProject({
  test: {
    name: "tile",
    include: ["test/**/*.test.ts"],
    setupFiles: ["../../vitest.setup.ts"],
    sequence: { concurrent: true },
    testTimeout: 30_000
  }
})
