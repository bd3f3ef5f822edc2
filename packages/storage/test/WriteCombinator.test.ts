import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Memory from "../src/Memory.ts"
import { type BlockDevice, wrap } from "../src/Provider.ts"
import * as WriteCombinator from "../src/WriteCombinator.ts"

const blockSize = 4096

const filled = (length: number, value: number) => new Uint8Array(length).fill(value)

/** The distinct byte values of each block of `device`. */
const blockContents = Effect.fnUntraced(function*(device: BlockDevice) {
  const contents: Array<Array<number>> = []
  for (let offset = 0; offset < device.size; offset += blockSize) {
    const buffer = new Uint8Array(Math.min(blockSize, device.size - offset))
    yield* device.readAt(buffer, offset)
    contents.push([...new Set(buffer)])
  }
  return contents
})

/** A device whose writes let other fibers run several times before they land, and which counts them. */
const slow = (inner: BlockDevice) => {
  const writes: Array<readonly [offset: number, length: number]> = []
  const device = wrap(inner, `slow(${inner.name})`, {
    writeAt: (data, offset) =>
      Effect.gen(function*() {
        for (let i = 0; i < 5; i++) yield* Effect.yieldNow
        writes.push([offset, data.length])
        return yield* inner.writeAt(data, offset)
      })
  })
  return { device, writes }
}

describe("WriteCombinator", () => {
  it.effect("the higher priority wins whatever the order; a lower one is dropped, reported written, and counted", () =>
    Effect.gen(function*() {
      const memory = yield* Memory.make(2 * blockSize)
      const combinator = yield* WriteCombinator.make(memory, blockSize)
      const s3 = yield* combinator.addSource(1)
      const p2p = yield* combinator.addSource(2)
      assert.strictEqual(yield* s3.writeAt(filled(blockSize, 1), 0), blockSize)
      assert.strictEqual(yield* p2p.writeAt(filled(blockSize, 2), 0), blockSize)
      assert.strictEqual(yield* p2p.writeAt(filled(blockSize, 2), blockSize), blockSize)
      assert.strictEqual(yield* s3.writeAt(filled(blockSize, 1), blockSize), blockSize)
      assert.deepStrictEqual(yield* blockContents(memory), [[2], [2]])
      assert.deepStrictEqual(yield* combinator.metrics, {
        writesAllowed: new Map([[2, 2], [1, 1]]),
        writesBlocked: new Map([[2, 0], [1, 1]])
      })
    }))

  it.effect("a source may write its own block again", () =>
    Effect.gen(function*() {
      const memory = yield* Memory.make(blockSize)
      const combinator = yield* WriteCombinator.make(memory, blockSize)
      const p2p = yield* combinator.addSource(2)
      yield* p2p.writeAt(filled(blockSize, 2), 0)
      yield* p2p.writeAt(filled(blockSize, 3), 0)
      assert.deepStrictEqual(yield* blockContents(memory), [[3]])
      assert.deepStrictEqual((yield* combinator.metrics).writesAllowed, new Map([[2, 2]]))
    }))

  it.effect("a write over several blocks skips only the blocks a higher source owns", () =>
    Effect.gen(function*() {
      const memory = yield* Memory.make(4 * blockSize)
      const { device, writes } = slow(memory)
      const combinator = yield* WriteCombinator.make(device, blockSize)
      const low = yield* combinator.addSource(1)
      const high = yield* combinator.addSource(5)
      yield* high.writeAt(filled(blockSize, 5), blockSize)
      yield* low.writeAt(filled(4 * blockSize, 1), 0)
      assert.deepStrictEqual(yield* blockContents(memory), [[1], [5], [1], [1]])
      assert.deepStrictEqual(writes, [[blockSize, blockSize], [0, blockSize], [2 * blockSize, 2 * blockSize]])
      assert.deepStrictEqual((yield* combinator.metrics).writesBlocked, new Map([[5, 0], [1, 1]]))
    }))

  it.effect("writes must be block-aligned and whole blocks, except a short last block", () =>
    Effect.gen(function*() {
      const memory = yield* Memory.make(10_000)
      const combinator = yield* WriteCombinator.make(memory, blockSize)
      const source = yield* combinator.addSource(1)
      const unaligned = yield* Effect.flip(source.writeAt(filled(blockSize, 1), 100))
      assert.strictEqual(unaligned.reason._tag, "Unsupported")
      const partial = yield* Effect.flip(source.writeAt(filled(100, 1), 0))
      assert.strictEqual(partial.reason._tag, "Unsupported")
      assert.strictEqual(yield* source.writeAt(filled(10_000 - 8192, 7), 8192), 10_000 - 8192)
      assert.strictEqual(yield* source.writeAt(filled(blockSize, 7), 8192), 10_000 - 8192)
      const outside = yield* Effect.flip(source.writeAt(filled(blockSize, 1), 3 * blockSize))
      assert.strictEqual(outside.reason._tag, "OutOfRange")
    }))

  it.effect("priorities are unique", () =>
    Effect.gen(function*() {
      const combinator = yield* WriteCombinator.make(yield* Memory.make(blockSize), blockSize)
      yield* combinator.addSource(1)
      const error = yield* Effect.flip(combinator.addSource(1))
      assert.strictEqual(error.reason._tag, "Unsupported")
    }))

  it.effect("the higher priority wins under concurrency, when the lower one starts first (bug #128)", () =>
    Effect.gen(function*() {
      const blocks = 64
      const memory = yield* Memory.make(blocks * blockSize)
      const combinator = yield* WriteCombinator.make(slow(memory).device, blockSize)
      const s3 = yield* combinator.addSource(1)
      const p2p = yield* combinator.addSource(2)
      yield* Effect.forEach(
        Array.from({ length: blocks }, (_, block) => block),
        (block) => {
          const low = s3.writeAt(filled(blockSize, 1), block * blockSize)
          const high = p2p.writeAt(filled(blockSize, 2), block * blockSize)
          // Even blocks: the low write starts first and is still landing when the high one arrives.
          return Effect.all(block % 2 === 0 ? [low, high] : [high, low], { concurrency: "unbounded" })
        },
        { concurrency: "unbounded" }
      )
      assert.deepStrictEqual(yield* blockContents(memory), Array.from({ length: blocks }, () => [2]))
      assert.deepStrictEqual(yield* combinator.metrics, {
        writesAllowed: new Map([[2, blocks], [1, blocks / 2]]),
        writesBlocked: new Map([[2, 0], [1, blocks / 2]])
      })
    }))
})
