import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { TestClock } from "effect/testing"
import fc from "fast-check"
import * as BlockOrder from "../src/BlockOrder.ts"
import * as Memory from "../src/Memory.ts"
import * as VolatilityMonitor from "../src/VolatilityMonitor.ts"

const blockSize = 4096

/** The §4.6 example: 8192-byte writes at 10, 7000, 7004 and 190000. */
const exampleWrites = Effect.fnUntraced(function*(monitor: VolatilityMonitor.VolatilityMonitor) {
  for (const offset of [10, 7000, 7004, 190_000]) yield* monitor.writeAt(new Uint8Array(8192), offset)
})

const volatilities = (monitor: VolatilityMonitor.VolatilityMonitor, blocks: number) => {
  const counts: Record<number, number> = {}
  for (let block = 0; block < blocks; block++) {
    const volatility = monitor.volatility(block)
    if (volatility > 0) counts[block] = volatility
  }
  return counts
}

describe("VolatilityMonitor", () => {
  it.effect("counts writes per available block and in total", () =>
    Effect.gen(function*() {
      const monitor = yield* VolatilityMonitor.make(yield* Memory.make(1 << 20), blockSize, "1 minute")
      monitor.addAll()
      yield* exampleWrites(monitor)
      assert.deepStrictEqual(volatilities(monitor, 256), { 0: 1, 1: 3, 2: 3, 3: 2, 46: 1, 47: 1, 48: 1 })
      assert.strictEqual(monitor.blockWrites(), 12)
    }))

  it.effect("writes pass through to the device", () =>
    Effect.gen(function*() {
      const memory = yield* Memory.make(8192)
      const monitor = yield* VolatilityMonitor.make(memory, blockSize, "1 minute")
      assert.strictEqual(yield* monitor.writeAt(new Uint8Array([1, 2, 3]), 8190), 2)
      const back = new Uint8Array(2)
      yield* memory.readAt(back, 8190)
      assert.deepStrictEqual([...back], [1, 2])
    }))

  it.effect("expiry clears the counts, but not the total", () =>
    Effect.gen(function*() {
      const monitor = yield* VolatilityMonitor.make(yield* Memory.make(1 << 20), blockSize, "1 minute")
      monitor.addAll()
      yield* exampleWrites(monitor)
      yield* TestClock.adjust("30 seconds")
      yield* monitor.writeAt(new Uint8Array(1), 4096)
      assert.strictEqual(monitor.volatility(1), 4)
      yield* TestClock.adjust("30 seconds")
      assert.deepStrictEqual(volatilities(monitor, 256), { 1: 1 })
      yield* TestClock.adjust("30 seconds")
      assert.deepStrictEqual(volatilities(monitor, 256), {})
      assert.strictEqual(monitor.blockWrites(), 13)
    }))

  it.effect("blocks not available are not counted", () =>
    Effect.gen(function*() {
      const monitor = yield* VolatilityMonitor.make(yield* Memory.make(1 << 20), blockSize, "1 minute")
      monitor.add(1)
      yield* exampleWrites(monitor)
      assert.deepStrictEqual(volatilities(monitor, 256), { 1: 3 })
      assert.strictEqual(monitor.blockWrites(), 12)
    }))

  it.effect("next hands out quiet blocks first, ascending, then the least volatile, highest on a tie", () =>
    Effect.gen(function*() {
      const monitor = yield* VolatilityMonitor.make(yield* Memory.make(5 * blockSize), blockSize, "1 minute")
      monitor.addAll()
      // Volatility: block 0 → 2, 1 → 1, 2 → 0, 3 → 1, 4 → 0.
      yield* monitor.writeAt(new Uint8Array(2 * blockSize), 0)
      yield* monitor.writeAt(new Uint8Array(1), 0)
      yield* monitor.writeAt(new Uint8Array(1), 3 * blockSize)
      const order = Array.from({ length: 5 }, () => monitor.next())
      assert.deepStrictEqual(order.map((info) => info.block), [2, 4, 3, 1, 0])
      assert.isTrue(order.every((info) => info.type === BlockOrder.BlockType.Standard))
      assert.deepStrictEqual(monitor.next(), BlockOrder.Finish)
    }))

  it.effect("a handed-out or removed block loses its history", () =>
    Effect.gen(function*() {
      const monitor = yield* VolatilityMonitor.make(yield* Memory.make(2 * blockSize), blockSize, "1 minute")
      monitor.addAll()
      yield* monitor.writeAt(new Uint8Array(2 * blockSize), 0)
      monitor.remove(0)
      assert.strictEqual(monitor.volatility(0), 0)
      assert.deepStrictEqual(monitor.next(), { block: 1, type: BlockOrder.BlockType.Standard })
      assert.strictEqual(monitor.volatility(1), 0)
      monitor.add(1)
      assert.strictEqual(monitor.volatility(1), 0)
    }))

  it.effect("as the order behind a PriorityBlockOrder, prioritised blocks still come first", () =>
    Effect.gen(function*() {
      const monitor = yield* VolatilityMonitor.make(yield* Memory.make(4 * blockSize), blockSize, "1 minute")
      const order = BlockOrder.makePriority(4, monitor)
      order.addAll()
      yield* monitor.writeAt(new Uint8Array(blockSize), 0)
      order.prioritise(3)
      const handedOut = Array.from({ length: 4 }, () => order.next())
      assert.deepStrictEqual(handedOut.map((info) => [info.block, info.type]), [[3, 2], [1, 0], [2, 0], [0, 0]])
      assert.deepStrictEqual(order.next(), BlockOrder.Finish)
    }))

  it.effect("hands out every available block exactly once, whatever was written", () =>
    Effect.gen(function*() {
      const context = yield* Effect.context<never>()
      fc.assert(fc.property(
        fc.integer({ min: 1, max: 64 }).chain((blocks) =>
          fc.tuple(
            fc.constant(blocks),
            fc.array(fc.tuple(fc.nat({ max: blocks * 100 - 1 }), fc.integer({ min: 1, max: 300 })), {
              maxLength: 40
            }),
            fc.uniqueArray(fc.nat({ max: blocks - 1 }))
          )
        ),
        ([blocks, writes, removed]) => {
          const handedOut = Effect.runSyncWith(context)(Effect.scoped(Effect.gen(function*() {
            const monitor = yield* VolatilityMonitor.make(yield* Memory.make(blocks * 100), 100, "1 hour")
            monitor.addAll()
            for (const [offset, length] of writes) yield* monitor.writeAt(new Uint8Array(length), offset)
            for (const block of removed) monitor.remove(block)
            const out: Array<number> = []
            for (let info = monitor.next(); info.block !== -1; info = monitor.next()) out.push(info.block)
            return out
          })))
          const expected = Array.from({ length: blocks }, (_, b) => b).filter((b) => !removed.includes(b))
          assert.deepStrictEqual(handedOut.toSorted((a, b) => a - b), expected)
        }
      ))
    }))
})
