import { assert, describe, it } from "@effect/vitest"
import fc from "fast-check"
import { Bitfield } from "../src/Bitfield.ts"

describe("Bitfield", () => {
  it("behaves as a set of integers", () => {
    fc.assert(fc.property(
      fc.integer({ min: 1, max: 300 }).chain((size) =>
        fc.tuple(fc.constant(size), fc.array(fc.tuple(fc.boolean(), fc.nat({ max: size - 1 })), { maxLength: 200 }))
      ),
      fc.nat(),
      ([size, ops], from) => {
        const field = new Bitfield(size)
        const model = new Set<number>()
        for (const [add, i] of ops) {
          if (add) {
            field.set(i)
            model.add(i)
          } else {
            field.clear(i)
            model.delete(i)
          }
        }
        const sorted = [...model].toSorted((a, b) => a - b)
        assert.deepStrictEqual([...field], sorted)
        assert.strictEqual(field.count(), model.size)
        const start = from % (size + 1)
        assert.strictEqual(field.next(start), sorted.find((i) => i >= start) ?? -1)
        assert.deepStrictEqual([...Bitfield.fromBytes(size, field.toBytes())!], sorted)
      }
    ))
  })

  it("setRange and clearRange match bit-by-bit updates", () => {
    fc.assert(fc.property(
      fc.integer({ min: 1, max: 200 }).chain((size) =>
        fc.tuple(
          fc.constant(size),
          fc.array(fc.tuple(fc.boolean(), fc.nat({ max: size }), fc.nat({ max: size })), { maxLength: 20 })
        )
      ),
      ([size, ops]) => {
        const field = new Bitfield(size)
        const model = new Set<number>()
        for (const [set, a, b] of ops) {
          const [from, to] = a <= b ? [a, b] : [b, a]
          if (set) field.setRange(from, to)
          else field.clearRange(from, to)
          for (let i = from; i < to; i++) {
            if (set) model.add(i)
            else model.delete(i)
          }
        }
        assert.deepStrictEqual([...field], [...model].toSorted((x, y) => x - y))
      }
    ))
  })

  it("setAll sets exactly size bits", () => {
    for (const size of [1, 31, 32, 33, 64, 100]) {
      const field = new Bitfield(size)
      field.setAll()
      assert.strictEqual(field.count(), size)
      assert.strictEqual(field.next(size - 1), size - 1)
    }
  })
})
