import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Exit, Fiber, Latch, Scope } from "effect"
import { TestClock } from "effect/testing"
import fc from "fast-check"
import { createHash } from "node:crypto"
import * as Blocks from "../src/Blocks.ts"
import * as Device from "../src/Device.ts"
import * as Memory from "../src/Memory.ts"
import * as Provider from "../src/Provider.ts"
import * as WaitingCache from "../src/WaitingCache.ts"

const bs = 4096

/** A small deterministic generator (mulberry32), so a failing stress run can be replayed from its seed. */
const prng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const bytes = (length: number, seed: number): Uint8Array => {
  const next = prng(seed)
  const out = new Uint8Array(length)
  for (let i = 0; i < length; i++) out[i] = Math.floor(next() * 256)
  return out
}

/** Records the hints a cache sends. */
const hints = () => {
  const needAt: Array<[number, number]> = []
  const dontNeedAt: Array<[number, number]> = []
  return {
    needAt,
    dontNeedAt,
    options: (blockSize: number): WaitingCache.Options => ({
      blockSize,
      needAt: (offset, length) => Effect.sync(() => void needAt.push([offset, length])),
      dontNeedAt: (offset, length) => Effect.sync(() => void dontNeedAt.push([offset, length]))
    })
  }
}

/** Lets forked fibers run until they block. */
const settle = Effect.gen(function*() {
  for (let i = 0; i < 20; i++) yield* Effect.yieldNow
})

const read = (device: Provider.BlockDevice, offset: number, length: number) =>
  Effect.gen(function*() {
    const buffer = new Uint8Array(length)
    const n = yield* device.readAt(buffer, offset)
    return buffer.subarray(0, n)
  })

/**
 * A memory device whose n-th write (counted when it runs) waits for the n-th latch, so a test decides the order
 * in which writes reach the bytes.
 */
const gated = (size: number, writes: number) =>
  Effect.gen(function*() {
    const memory = yield* Memory.make(size)
    const gates = Array.from({ length: writes }, () => Latch.makeUnsafe(false))
    let calls = 0
    const device = Provider.wrap(memory, "gated", {
      writeAt: (data, offset) =>
        Effect.suspend(() => {
          const gate = gates[calls++]
          return gate === undefined
            ? memory.writeAt(data, offset)
            : Effect.andThen(gate.await, memory.writeAt(data, offset))
        })
    })
    return { device, gates }
  })

describe("WaitingCache", () => {
  it.effect("a read waits for the remote write of its block, then later reads are instant", () =>
    Effect.gen(function*() {
      const inner = yield* Memory.make(8 * bs)
      const h = hints()
      const { local, remote } = yield* WaitingCache.make(inner, h.options(bs))
      const data = bytes(bs, 1)
      const start = yield* Clock.currentTimeMillis
      const reader = yield* Effect.forkChild(Effect.gen(function*() {
        const got = yield* read(local, bs + 100, 200)
        return { got, at: yield* Clock.currentTimeMillis }
      }))
      yield* Effect.forkChild(Effect.andThen(Effect.sleep(50), remote.writeAt(data, bs)))
      yield* settle
      assert.isUndefined(reader.pollUnsafe())
      assert.deepStrictEqual(h.needAt, [[bs, bs]])
      yield* TestClock.adjust(50)
      const { at, got } = yield* Fiber.join(reader)
      assert.strictEqual(at - start, 50)
      assert.deepStrictEqual(got, data.subarray(100, 300))

      const before = yield* local.metrics
      assert.deepStrictEqual(yield* read(local, bs, bs), data)
      const after = yield* local.metrics
      assert.strictEqual(after.waitForBlock, before.waitForBlock)
      assert.strictEqual(after.hadRemote, before.hadRemote + 1)
      assert.strictEqual(before.waitForBlock, 1)
      assert.strictEqual(before.lock, 1)
      assert.strictEqual(before.lockDone, 1)
      assert.strictEqual(before.waitForBlockTimeNs, 50_000_000)
      assert.deepStrictEqual(h.needAt, [[bs, bs]])
    }))

  it.effect("marks complete blocks only; a short last block is complete when the write reaches the device end", () =>
    Effect.gen(function*() {
      const size = 3 * bs + 100
      const inner = yield* Memory.make(size)
      const { local, remote } = yield* WaitingCache.make(inner, { blockSize: bs })
      assert.deepStrictEqual(yield* local.availability, { available: 0, total: 4 })
      // Partial first and last blocks: only block 1 is complete.
      assert.strictEqual(yield* remote.writeAt(bytes(2 * bs, 2), bs / 2), 2 * bs)
      assert.deepStrictEqual(yield* local.availability, { available: 1, total: 4 })
      // The short last block, written up to the device end (and clipped there).
      assert.strictEqual(yield* remote.writeAt(bytes(bs, 3), 3 * bs), 100)
      assert.deepStrictEqual(yield* local.availability, { available: 2, total: 4 })
      const reader = yield* Effect.forkChild(read(local, 3 * bs, 100))
      yield* settle
      assert.isDefined(reader.pollUnsafe())
      assert.deepStrictEqual(yield* Fiber.join(reader), bytes(bs, 3).subarray(0, 100))
    }))

  it.effect("a local write wins over a later remote write, and is reported with one dontNeedAt", () =>
    Effect.gen(function*() {
      const inner = yield* Memory.make(8 * bs)
      const h = hints()
      const { local, remote } = yield* WaitingCache.make(inner, h.options(bs))
      const mine = bytes(2 * bs, 4)
      assert.strictEqual(yield* local.writeAt(mine, 2 * bs), 2 * bs)
      assert.deepStrictEqual(h.dontNeedAt, [[2 * bs, 2 * bs]])
      assert.deepStrictEqual(h.needAt, [])
      const theirs = bytes(8 * bs, 5)
      yield* remote.writeAt(theirs, 0)
      const expected = theirs.slice()
      expected.set(mine, 2 * bs)
      assert.deepStrictEqual(yield* read(local, 0, 8 * bs), expected)
      assert.deepStrictEqual(yield* local.availability, { available: 8, total: 8 })
    }))

  it.effect("a remote write starting inside a locally written block keeps exactly the local bytes", () =>
    Effect.gen(function*() {
      const inner = yield* Memory.make(8 * bs)
      const { local, remote } = yield* WaitingCache.make(inner, { blockSize: bs })
      const mine = bytes(bs, 6)
      yield* local.writeAt(mine, 3 * bs)
      const theirs = bytes(3 * bs, 7)
      // Starts 10 bytes into block 2, runs over the local block 3 and ends inside block 5.
      yield* remote.writeAt(theirs, 2 * bs + 10)
      const expected = new Uint8Array(8 * bs)
      expected.set(theirs, 2 * bs + 10)
      expected.set(mine, 3 * bs)
      assert.deepStrictEqual(yield* read(inner, 0, 8 * bs), expected)
      // Blocks 3 and 4 are covered completely; the local block counts as arrived too, its bytes untouched.
      assert.deepStrictEqual(yield* local.availability, { available: 2, total: 8 })
    }))

  it.effect("a local write waits for a remote write already in flight on its blocks", () =>
    Effect.gen(function*() {
      const { device, gates } = yield* gated(4 * bs, 2)
      const { local, remote } = yield* WaitingCache.make(device, { blockSize: bs })
      const theirs = bytes(4 * bs, 30)
      const mine = bytes(bs, 31)
      const sending = yield* Effect.forkChild(remote.writeAt(theirs, 0))
      yield* settle
      const writing = yield* Effect.forkChild(local.writeAt(mine, bs))
      // Were the local write not held back, it would land now and the remote write after it.
      yield* gates[1]!.open
      yield* settle
      yield* gates[0]!.open
      yield* Fiber.join(sending)
      yield* Fiber.join(writing)
      assert.deepStrictEqual(yield* read(local, bs, bs), mine)
    }))

  it.effect("a remote write that starts while a local write is in flight leaves that write's blocks out", () =>
    Effect.gen(function*() {
      const { device, gates } = yield* gated(4 * bs, 3)
      const { local, remote } = yield* WaitingCache.make(device, { blockSize: bs })
      const mine = bytes(bs, 32)
      const theirs = bytes(4 * bs, 33)
      const writing = yield* Effect.forkChild(local.writeAt(mine, bs))
      yield* settle
      const sending = yield* Effect.forkChild(remote.writeAt(theirs, 0))
      yield* settle
      yield* gates[0]!.open
      yield* Fiber.join(writing)
      yield* gates[1]!.open
      yield* gates[2]!.open
      yield* Fiber.join(sending)
      const expected = theirs.slice()
      expected.set(mine, bs)
      assert.deepStrictEqual(yield* read(local, 0, 4 * bs), expected)
    }))

  it.effect("a partial local write waits for its block's remote data, then merges into it", () =>
    Effect.gen(function*() {
      const inner = yield* Memory.make(8 * bs)
      const h = hints()
      const { local, remote } = yield* WaitingCache.make(inner, h.options(bs))
      const patch = bytes(10, 8)
      const writer = yield* Effect.forkChild(local.writeAt(patch, bs + 5))
      yield* settle
      assert.isUndefined(writer.pollUnsafe())
      assert.deepStrictEqual(h.needAt, [[bs, bs]])
      const theirs = bytes(bs, 9)
      yield* remote.writeAt(theirs, bs)
      assert.strictEqual(yield* Fiber.join(writer), 10)
      const expected = theirs.slice()
      expected.set(patch, 5)
      assert.deepStrictEqual(yield* read(local, bs, bs), expected)
      assert.deepStrictEqual(h.dontNeedAt, [])
      // The merged block is the application's now: a re-sent copy does not overwrite it.
      yield* remote.writeAt(bytes(bs, 10), bs)
      assert.deepStrictEqual(yield* read(local, bs, bs), expected)
    }))

  it.effect("a local write followed by a local read of the same blocks does not wait (Silo #48)", () =>
    Effect.gen(function*() {
      const inner = yield* Memory.make(8 * bs)
      const h = hints()
      const { local } = yield* WaitingCache.make(inner, h.options(bs))
      const mine = bytes(bs, 11)
      yield* local.writeAt(mine, 5 * bs)
      const reader = yield* Effect.forkChild(read(local, 5 * bs, bs))
      yield* settle
      assert.isDefined(reader.pollUnsafe())
      assert.deepStrictEqual(yield* Fiber.join(reader), mine)
      assert.deepStrictEqual(h.needAt, [])
      assert.strictEqual((yield* local.metrics).hadLocal, 1)
    }))

  it.effect("several readers of a missing block send one needAt and all get the data", () =>
    Effect.gen(function*() {
      const inner = yield* Memory.make(8 * bs)
      const h = hints()
      const { local, remote } = yield* WaitingCache.make(inner, h.options(bs))
      const readers = yield* Effect.forEach(
        [0, 1, 2, 3, 4],
        (i) => Effect.forkChild(read(local, 3 * bs + i * 100, 50))
      )
      yield* settle
      assert.deepStrictEqual(h.needAt, [[3 * bs, bs]])
      const theirs = bytes(bs, 12)
      yield* remote.writeAt(theirs, 3 * bs)
      for (const [i, reader] of readers.entries()) {
        assert.deepStrictEqual(yield* Fiber.join(reader), theirs.subarray(i * 100, i * 100 + 50))
      }
      const metrics = yield* local.metrics
      assert.strictEqual(metrics.waitForBlock, 5)
      assert.strictEqual(metrics.lock, 1)
      assert.strictEqual(metrics.lockDone, 1)
    }))

  it.effect("a read over several missing blocks asks for each of them at once", () =>
    Effect.gen(function*() {
      const inner = yield* Memory.make(8 * bs)
      const h = hints()
      const { local, remote } = yield* WaitingCache.make(inner, h.options(bs))
      yield* remote.writeAt(bytes(bs, 13), 2 * bs)
      const reader = yield* Effect.forkChild(read(local, bs, 3 * bs))
      yield* settle
      assert.deepStrictEqual(h.needAt, [[bs, bs], [3 * bs, bs]])
      yield* remote.writeAt(bytes(bs, 14), 3 * bs)
      yield* settle
      assert.isUndefined(reader.pollUnsafe())
      yield* remote.writeAt(bytes(bs, 15), bs)
      assert.strictEqual((yield* Fiber.join(reader)).length, 3 * bs)
    }))

  it.effect("dirtyBlocks makes reads wait again until the re-sent data arrives", () =>
    Effect.gen(function*() {
      const inner = yield* Memory.make(4 * bs)
      const h = hints()
      const { local, remote } = yield* WaitingCache.make(inner, h.options(bs))
      yield* remote.writeAt(bytes(4 * bs, 16), 0)
      assert.deepStrictEqual(yield* local.availability, { available: 4, total: 4 })
      yield* local.dirtyBlocks([1, 3, 99, -1])
      assert.deepStrictEqual(yield* local.availability, { available: 2, total: 4 })
      const reader = yield* Effect.forkChild(read(local, bs, bs))
      yield* settle
      assert.isUndefined(reader.pollUnsafe())
      assert.deepStrictEqual(h.needAt, [[bs, bs]])
      const fresh = bytes(bs, 17)
      yield* remote.writeAt(fresh, bs)
      assert.deepStrictEqual(yield* Fiber.join(reader), fresh)
    }))

  it.effect("markAvailable (YouAlreadyHave) marks whole blocks without writing; remote reads are unsupported", () =>
    Effect.gen(function*() {
      const inner = yield* Memory.make(3 * bs + 10)
      const { local, remote } = yield* WaitingCache.make(inner, { blockSize: bs })
      yield* remote.markAvailable(0, bs)
      yield* remote.markAvailable(3 * bs, bs)
      yield* remote.markAvailable(bs + 1, bs)
      assert.deepStrictEqual(yield* local.availability, { available: 2, total: 4 })
      assert.deepStrictEqual(yield* read(local, 0, bs), new Uint8Array(bs))
      const unsupported = yield* Effect.flip(remote.readAt(new Uint8Array(1), 0))
      assert.strictEqual(unsupported.reason._tag, "Unsupported")
      const outside = yield* Effect.flip(remote.markAvailable(4 * bs, 1))
      assert.strictEqual(outside.reason._tag, "OutOfRange")
    }))

  it.effect("refuses a block size that is not a positive whole number", () =>
    Effect.gen(function*() {
      const inner = yield* Memory.make(100)
      for (const blockSize of [0, -1, 1.5]) {
        const error = yield* Effect.flip(WaitingCache.make(inner, { blockSize }))
        assert.strictEqual(error.reason._tag, "Unsupported")
      }
    }))

  it.effect("closing the scope fails waiting reads and later operations with Closed", () =>
    Effect.gen(function*() {
      const inner = yield* Memory.make(4 * bs)
      const scope = yield* Scope.make()
      const { local, remote } = yield* WaitingCache.make(inner, { blockSize: bs }).pipe(Scope.provide(scope))
      const reader = yield* Effect.forkChild(read(local, 0, 10))
      yield* settle
      yield* Scope.close(scope, Exit.void)
      const waiting = yield* Effect.flip(Fiber.join(reader))
      assert.strictEqual(waiting.reason._tag, "Closed")
      const later = yield* Effect.flip(remote.writeAt(new Uint8Array(bs), 0))
      assert.strictEqual(later.reason._tag, "Closed")
    }))

  it.effect("an interrupted reader leaves the wait to the others", () =>
    Effect.gen(function*() {
      const inner = yield* Memory.make(4 * bs)
      const h = hints()
      const { local, remote } = yield* WaitingCache.make(inner, h.options(bs))
      const first = yield* Effect.forkChild(read(local, 0, 10))
      const second = yield* Effect.forkChild(read(local, 0, 10))
      yield* settle
      yield* Fiber.interrupt(first)
      yield* remote.writeAt(bytes(bs, 18), 0)
      assert.deepStrictEqual(yield* Fiber.join(second), bytes(bs, 18).subarray(0, 10))
      assert.deepStrictEqual(h.needAt, [[0, bs]])
    }))

  it.effect("present is every block the source need not send; waiting is every block a reader waits for", () =>
    Effect.gen(function*() {
      const inner = yield* Memory.make(8 * bs)
      const { local, remote } = yield* WaitingCache.make(inner, { blockSize: bs })
      yield* remote.writeAt(bytes(2 * bs, 30), bs)
      yield* local.writeAt(bytes(bs, 31), 5 * bs)
      yield* remote.markAvailable(7 * bs, bs)
      const reader = yield* Effect.forkChild(read(local, 3 * bs, 2 * bs))
      yield* settle
      assert.deepStrictEqual([...(yield* local.present)], [1, 2, 5, 7])
      assert.deepStrictEqual(yield* local.waiting, [3, 4])
      // A dirty block is no longer present unless the application wrote it here.
      yield* local.dirtyBlocks([1, 5])
      assert.deepStrictEqual([...(yield* local.present)], [2, 5, 7])
      yield* remote.writeAt(bytes(2 * bs, 32), 3 * bs)
      yield* Fiber.join(reader)
      assert.deepStrictEqual(yield* local.waiting, [])
    }))

  it.effect("remote writes at any offset merge with local blocks exactly as a byte model says", () =>
    Effect.promise(() =>
      fc.assert(
        fc.asyncProperty(
          fc.integer({ min: 1, max: 64 }).chain((blockSize) =>
            fc.integer({ min: 1, max: 12 * blockSize }).chain((size) =>
              fc.tuple(
                fc.constant(blockSize),
                fc.constant(size),
                fc.array(
                  fc.oneof(
                    fc.record({
                      op: fc.constantFrom("remote", "local", "read"),
                      offset: fc.nat({ max: size }),
                      length: fc.nat({ max: size + blockSize }),
                      seed: fc.nat()
                    }),
                    fc.record({
                      op: fc.constant("dirty"),
                      blocks: fc.array(fc.nat({ max: Math.floor(size / blockSize) + 1 }))
                    }),
                    fc.record({
                      op: fc.constant("whole"),
                      block: fc.nat({ max: Math.floor(size / blockSize) }),
                      seed: fc.nat()
                    })
                  ),
                  { maxLength: 40 }
                )
              )
            )
          ),
          ([blockSize, size, ops]) =>
            Effect.runPromise(Effect.scoped(Effect.gen(function*() {
              const inner = yield* Memory.make(size)
              const { local, remote } = yield* WaitingCache.make(inner, { blockSize })
              const numBlocks = Blocks.count(size, blockSize)
              const model = new Uint8Array(size)
              const mine = new Set<number>()
              const arrived = new Set<number>()
              const available = (block: number) => mine.has(block) || arrived.has(block)
              for (const op of ops) {
                if (op.op === "dirty") {
                  yield* local.dirtyBlocks(op.blocks)
                  for (const block of op.blocks) arrived.delete(block)
                  continue
                }
                const { offset, length } = op.op === "whole"
                  ? Blocks.range(Math.min(op.block, numBlocks - 1), size, blockSize)
                  : op
                const stop = Math.min(offset + length, size)
                if (stop <= offset) continue
                const { end, first } = Blocks.touched(offset, length, size, blockSize)
                const data = op.op === "read" ? new Uint8Array(0) : bytes(length, op.seed)
                if (op.op === "remote") {
                  yield* remote.writeAt(data, offset)
                  for (let i = offset; i < stop; i++) {
                    if (!mine.has(Math.floor(i / blockSize))) model[i] = data[i - offset]!
                  }
                  const whole = Blocks.covered(offset, length, size, blockSize)
                  for (let block = whole.first; block < whole.end; block++) arrived.add(block)
                } else {
                  const partial = [first, end - 1].filter((block) => {
                    const r = Blocks.range(block, size, blockSize)
                    return offset > r.offset || stop < r.offset + r.length
                  })
                  // Operations that would wait for data this model never sends are left out.
                  if (op.op === "read") {
                    for (let block = first; block < end; block++) if (!available(block)) partial.push(block)
                  }
                  if (!partial.every(available)) continue
                  if (op.op === "read") {
                    assert.deepStrictEqual(yield* read(local, offset, length), model.subarray(offset, stop))
                  } else {
                    yield* local.writeAt(data, offset)
                    model.set(data.subarray(0, stop - offset), offset)
                    for (let block = first; block < end; block++) mine.add(block)
                  }
                }
              }
              assert.deepStrictEqual(yield* read(inner, 0, size), model)
              assert.deepStrictEqual(yield* local.availability, { available: arrived.size, total: numBlocks })
            })))
        ),
        { numRuns: 300 }
      )
    ))

  it.effect("concurrent local reads and writes with remote writes and re-sends always read the model", () =>
    Effect.gen(function*() {
      const blockSize = 512
      const regions = 8
      const regionBlocks = 8
      const size = regions * regionBlocks * blockSize - 200 // a short last block
      const numBlocks = Blocks.count(size, blockSize)
      const next = prng(20_250_101)
      const int = (max: number) => Math.floor(next() * max)
      const shuffled = (blocks: Array<number>) => blocks.toSorted(() => next() - 0.5)
      const memory = yield* Memory.make(size)
      const jitter = Effect.gen(function*() {
        for (let i = int(4); i > 0; i--) yield* Effect.yieldNow
      })
      // Every device call yields a few times first, so operations interleave at every point they could.
      const inner = Provider.wrap(memory, "jitter", {
        readAt: (buffer, offset) => Effect.andThen(jitter, memory.readAt(buffer, offset)),
        writeAt: (data, offset) => Effect.andThen(jitter, memory.writeAt(data, offset))
      })
      const asked = new Array<number>(numBlocks).fill(0)
      const dirtied = new Array<number>(numBlocks).fill(0)
      const { local, remote } = yield* WaitingCache.make(inner, {
        blockSize,
        needAt: (offset) => Effect.sync(() => void asked[offset / blockSize]!++),
        dontNeedAt: () => Effect.void
      })
      const source = bytes(size, 21)
      const model = source.slice()
      const progress = { delivering: true }

      // Unaligned pieces of the source, which rarely cover a whole block.
      const pieces = Effect.gen(function*() {
        for (let i = 0; i < 400; i++) {
          const offset = int(size)
          yield* remote.writeAt(source.subarray(offset, offset + 1 + int(blockSize)), offset)
          yield* jitter
        }
      })
      // Every block, slowly and in random order; then two dirty rounds that invalidate a third of the blocks at
      // once and send them again.
      const blocks = Effect.gen(function*() {
        const all = Array.from({ length: numBlocks }, (_, i) => i)
        for (let round = 0; round < 3; round++) {
          const sent = round === 0 ? shuffled(all) : shuffled(all).slice(0, numBlocks / 3)
          if (round > 0) {
            for (const block of sent) dirtied[block]!++
            yield* local.dirtyBlocks(sent)
          }
          for (const block of sent) {
            const { length, offset } = Blocks.range(block, size, blockSize)
            yield* remote.writeAt(source.subarray(offset, offset + length), offset)
            for (let i = 0; i < 8; i++) yield* jitter
          }
        }
        progress.delivering = false
      })
      let reads = 0
      // Each region has one user, so its reads have one right answer. Writes stay in the first half of the
      // region, so the second half only ever holds migration data.
      const user = (region: number) =>
        Effect.gen(function*() {
          const base = region * regionBlocks * blockSize
          const limit = Math.min(size, base + regionBlocks * blockSize)
          const writeLimit = base + regionBlocks * blockSize / 2
          for (let i = 0; progress.delivering || i < 200; i++) {
            const reading = next() < 0.8
            const offset = base + int((reading ? limit : writeLimit) - base)
            const length = 1 + int(Math.min((reading ? limit : writeLimit) - offset, 2 * blockSize))
            if (reading) {
              const got = yield* read(local, offset, length)
              assert.deepStrictEqual(got, model.subarray(offset, offset + length))
              reads++
            } else {
              const data = bytes(length, int(1 << 30))
              yield* local.writeAt(data, offset)
              model.set(data, offset)
            }
          }
        })

      const fibers = yield* Effect.forEach(
        [pieces, blocks, ...Array.from({ length: regions }, (_, region) => user(region))],
        (work) => Effect.forkChild(work)
      )
      yield* Fiber.joinAll(fibers)

      assert.isAbove(reads, 1000)
      assert.isAbove((yield* local.metrics).waitForBlock, 20)
      for (let block = 0; block < numBlocks; block++) {
        // One needAt per wait: at most the first miss and one after each time the block was dirtied.
        assert.isAtMost(asked[block]!, 1 + dirtied[block]!)
      }
      assert.deepStrictEqual(yield* local.availability, { available: numBlocks, total: numBlocks })
      assert.deepStrictEqual(
        yield* Device.sha256(local),
        new Uint8Array(createHash("sha256").update(model).digest())
      )
    }))
})
