import { assert, describe, it } from "@effect/vitest"
import * as Blocks from "../src/Blocks.ts"

describe("Blocks", () => {
  it("counts blocks with a short last one", () => {
    assert.strictEqual(Blocks.count(5000, 4096), 2)
    assert.strictEqual(Blocks.count(8192, 4096), 2)
    assert.deepStrictEqual(Blocks.range(1, 5000, 4096), { offset: 4096, length: 904 })
  })

  it("touched blocks clip at the device end", () => {
    assert.deepStrictEqual(Blocks.touched(10, 1_234_567, 1 << 20, 4096), { first: 0, end: 256 })
    assert.deepStrictEqual(Blocks.touched(4095, 2, 10_000, 4096), { first: 0, end: 2 })
    assert.deepStrictEqual(Blocks.touched(4096, 0, 10_000, 4096), { first: 1, end: 1 })
  })

  it("covered blocks leave out partial ends except the device's short last block", () => {
    assert.deepStrictEqual(Blocks.covered(10, 8192, 1 << 20, 4096), { first: 1, end: 2 })
    assert.deepStrictEqual(Blocks.covered(4096, 904, 5000, 4096), { first: 1, end: 2 })
    assert.deepStrictEqual(Blocks.covered(0, 4000, 5000, 4096), { first: 0, end: 0 })
  })
})
