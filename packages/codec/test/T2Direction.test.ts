import { assert, describe, it } from "@effect/vitest"
import fc from "fast-check"
import * as T2Direction from "../src/T2Direction.ts"
import { dir8 } from "./utils/T2Arbitraries.ts"

// The §1.3 table: dir8, code, name, on T2, PRU/prudir, dir6, opposite, hex offset.
const TABLE = [
  [0, "NT", "North", false, undefined, undefined, 4, [0, 1]],
  [1, "NE", "Northeast", true, [1, 2], 5, 5, [1, 1]],
  [2, "ET", "East", true, [0, 0], 0, 6, [2, 0]],
  [3, "SE", "Southeast", true, [0, 1], 1, 7, [1, -1]],
  [4, "ST", "South", false, undefined, undefined, 0, [0, -1]],
  [5, "SW", "Southwest", true, [0, 2], 2, 1, [-1, -1]],
  [6, "WT", "West", true, [1, 0], 3, 2, [-2, 0]],
  [7, "NW", "Northwest", true, [1, 1], 4, 3, [-1, 1]]
] as const

describe("T2Direction", () => {
  it("matches the direction table of §1.3", () => {
    for (const [d, code, name, onT2, pru, dir6, opposite, [x, y]] of TABLE) {
      assert.strictEqual(T2Direction.code(d), code)
      assert.strictEqual(T2Direction.fromCode(code), d)
      assert.strictEqual(T2Direction.name(d), name)
      assert.strictEqual(T2Direction.isLink(d), onT2)
      assert.deepStrictEqual(T2Direction.pruLink(d), pru === undefined ? undefined : { pru: pru[0], prudir: pru[1] })
      assert.strictEqual(T2Direction.toDir6(d), dir6)
      assert.strictEqual(T2Direction.opposite(d), opposite)
      assert.deepStrictEqual(T2Direction.offset(d), { x, y })
    }
  })

  it("names the constants and lists the six links in dir6 order", () => {
    assert.deepStrictEqual(
      [
        T2Direction.NT,
        T2Direction.NE,
        T2Direction.ET,
        T2Direction.SE,
        T2Direction.ST,
        T2Direction.SW,
        T2Direction.WT,
        T2Direction.NW
      ],
      [0, 1, 2, 3, 4, 5, 6, 7]
    )
    assert.deepStrictEqual(T2Direction.links.map(T2Direction.code), ["ET", "SE", "SW", "WT", "NW", "NE"])
    for (let d6 = 0; d6 < 6; d6++) {
      assert.strictEqual(T2Direction.toDir6(T2Direction.fromDir6(d6 as T2Direction.Dir6)), d6)
    }
  })

  it("PRU0 serves ET/SE/SW and PRU1 WT/NW/NE", () => {
    for (const d of T2Direction.links) {
      const link = T2Direction.pruLink(d)!
      assert.strictEqual(T2Direction.fromPruLink(link.pru, link.prudir), d)
    }
  })

  it("opposites are involutive and their offsets cancel", () => {
    fc.assert(fc.property(dir8, (d) => {
      const o = T2Direction.opposite(d)
      assert.notStrictEqual(o, d)
      assert.strictEqual(T2Direction.opposite(o), d)
      assert.strictEqual(T2Direction.isLink(o), T2Direction.isLink(d))
      const a = T2Direction.offset(d)
      const b = T2Direction.offset(o)
      assert.deepStrictEqual([a.x + b.x, a.y + b.y], [0, 0])
    }))
  })

  it("recognises dir8 numbers", () => {
    assert.isTrue(T2Direction.isDir8(0))
    assert.isTrue(T2Direction.isDir8(7))
    assert.isFalse(T2Direction.isDir8(8))
    assert.isFalse(T2Direction.isDir8(-1))
    assert.isFalse(T2Direction.isDir8(1.5))
  })
})
