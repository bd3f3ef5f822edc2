import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Latch } from "effect"
import { TestClock } from "effect/testing"
import fc from "fast-check"
import { createHash } from "node:crypto"
import * as BlockOrder from "../src/BlockOrder.ts"
import * as Blocks from "../src/Blocks.ts"
import * as Device from "../src/Device.ts"
import * as DirtyTracker from "../src/DirtyTracker.ts"
import * as Lockable from "../src/Lockable.ts"
import * as Memory from "../src/Memory.ts"
import { type BlockDevice, wrap } from "../src/Provider.ts"
import * as VolatilityMonitor from "../src/VolatilityMonitor.ts"

const blockSize = 4096

/** A tracker over 1 MiB of memory with every block tracked, as after a full first copy. */
const trackedMegabyte = Effect.gen(function*() {
  const tracker = yield* DirtyTracker.make(yield* Memory.make(1 << 20), blockSize)
  yield* tracker.remote.trackAt(0, 1 << 20)
  return tracker
})

/** The §4.4 example writes: 9000 bytes at 10, 30, 10000 and 40000 (blocks 0–4 and 9–11). */
const exampleWrites = Effect.fnUntraced(function*(tracker: DirtyTracker.DirtyTracker) {
  for (const offset of [10, 30, 10_000, 40_000]) yield* tracker.local.writeAt(new Uint8Array(9000), offset)
})

/** Lets every other runnable fiber take its steps. */
const settle = Effect.gen(function*() {
  for (let i = 0; i < 20; i++) yield* Effect.yieldNow
})

describe("DirtyTracker", () => {
  it.effect("sync returns the tracked blocks written since, then nothing", () =>
    Effect.gen(function*() {
      const tracker = yield* DirtyTracker.make(yield* Memory.make(1 << 20), blockSize)
      yield* tracker.remote.readAt(new Uint8Array(1_234_567), 10)
      for (const offset of [10, 10_000, 40_000]) yield* tracker.local.writeAt(new Uint8Array(9000), offset)
      assert.deepStrictEqual([...(yield* tracker.remote.sync)], [0, 1, 2, 3, 4, 9, 10, 11])
      assert.deepStrictEqual([...(yield* tracker.remote.sync)], [])
    }))

  it.effect("a block the migrator never read is never dirty", () =>
    Effect.gen(function*() {
      const tracker = yield* DirtyTracker.make(yield* Memory.make(1 << 20), blockSize)
      yield* tracker.remote.readAt(new Uint8Array(blockSize), 2 * blockSize)
      yield* tracker.local.writeAt(new Uint8Array(4 * blockSize), 0)
      assert.deepStrictEqual([...(yield* tracker.remote.sync)], [2])
    }))

  it.effect("a synced block is no longer tracked until it is read again", () =>
    Effect.gen(function*() {
      const tracker = yield* trackedMegabyte
      yield* tracker.local.writeAt(new Uint8Array(1), 0)
      assert.deepStrictEqual([...(yield* tracker.remote.sync)], [0])
      assert.strictEqual((yield* tracker.remote.trackedBlocks)[0], 1)
      yield* tracker.local.writeAt(new Uint8Array(1), 0)
      assert.deepStrictEqual([...(yield* tracker.remote.sync)], [])
      yield* tracker.remote.readAt(new Uint8Array(blockSize), 0)
      yield* tracker.local.writeAt(new Uint8Array(1), 0)
      assert.deepStrictEqual([...(yield* tracker.remote.sync)], [0])
    }))

  it.effect("both sides show the device's bytes; remote reads can come from another source", () =>
    Effect.gen(function*() {
      const memory = yield* Memory.make(8192)
      const other = yield* Memory.make(8192)
      yield* other.writeAt(new Uint8Array([7]), 5000)
      const tracker = yield* DirtyTracker.make(memory, blockSize, { remoteSource: other })
      yield* tracker.local.writeAt(new Uint8Array([9]), 5000)
      const local = new Uint8Array(1)
      const remote = new Uint8Array(1)
      yield* tracker.local.readAt(local, 5000)
      yield* tracker.remote.readAt(remote, 5000)
      assert.deepStrictEqual([local[0], remote[0]], [9, 7])
      assert.deepStrictEqual(yield* tracker.remote.trackedBlocks, [1])
    }))

  it.effect("a refused remote read arms nothing", () =>
    Effect.gen(function*() {
      const tracker = yield* DirtyTracker.make(yield* Memory.make(8192), blockSize)
      const error = yield* Effect.flip(tracker.remote.readAt(new Uint8Array(10), -5))
      assert.strictEqual(error.reason._tag, "OutOfRange")
      yield* tracker.remote.trackAt(9000, 10)
      assert.deepStrictEqual(yield* tracker.remote.trackedBlocks, [])
    }))

  describe("getDirtyBlocks", () => {
    it.effect("groups by shift 1: {0, 1, 2, 4, 5}", () =>
      Effect.gen(function*() {
        const tracker = yield* trackedMegabyte
        yield* exampleWrites(tracker)
        assert.deepStrictEqual(yield* tracker.remote.getDirtyBlocks("1 hour", 100, 1, 0), [0, 1, 2, 4, 5])
        assert.strictEqual(yield* tracker.remote.measureDirty, 0)
      }))

    it.effect("keeps groups with at least minChanged blocks: {0, 1, 5}, and leaves the rest dirty", () =>
      Effect.gen(function*() {
        const tracker = yield* trackedMegabyte
        yield* exampleWrites(tracker)
        assert.deepStrictEqual(yield* tracker.remote.getDirtyBlocks("1 hour", 100, 1, 2), [0, 1, 5])
        assert.deepStrictEqual([...(yield* tracker.remote.sync)], [4, 9])
        const untracked = new Set([0, 1, 2, 3, 4, 9, 10, 11])
        assert.deepStrictEqual(
          yield* tracker.remote.trackedBlocks,
          Array.from({ length: 256 }, (_, b) => b).filter((b) => !untracked.has(b))
        )
      }))

    it.effect("groups by shift 2 with minChanged 2: {0, 2}", () =>
      Effect.gen(function*() {
        const tracker = yield* trackedMegabyte
        yield* exampleWrites(tracker)
        assert.deepStrictEqual(yield* tracker.remote.getDirtyBlocks("1 hour", 100, 2, 2), [0, 2])
      }))

    it.effect("takes groups last written more than maxAge ago first, oldest first, up to limit", () =>
      Effect.gen(function*() {
        const tracker = yield* trackedMegabyte
        yield* tracker.local.writeAt(new Uint8Array(9000), 40_000)
        yield* TestClock.adjust("1 second")
        yield* tracker.local.writeAt(new Uint8Array(9000), 10)
        yield* TestClock.adjust("2 minutes")
        yield* tracker.local.writeAt(new Uint8Array(9000), 10_000)
        // Old: blocks 9–11 (groups 4, 5), then 0–1 (group 0); block 2 was written again just now.
        assert.deepStrictEqual(yield* tracker.remote.getDirtyBlocks("1 minute", 2, 1, 100), [4, 5])
        assert.deepStrictEqual(yield* tracker.remote.getDirtyBlocks("1 minute", 2, 1, 100), [0])
        assert.deepStrictEqual(yield* tracker.remote.getDirtyBlocks("1 minute", 1, 1, 1), [1])
        assert.deepStrictEqual(yield* tracker.remote.getDirtyBlocks("1 minute", 5, 1, 1), [2])
        assert.strictEqual(yield* tracker.remote.measureDirty, 0)
      }))
  })

  it.effect("markDirty, measureDirty and measureDirtyAge", () =>
    Effect.gen(function*() {
      const tracker = yield* DirtyTracker.make(yield* Memory.make(1 << 20), blockSize)
      assert.strictEqual(yield* tracker.remote.measureDirtyAge, 0)
      yield* tracker.remote.markDirty(4000, 200)
      yield* TestClock.adjust("5 seconds")
      yield* tracker.remote.markDirty(50_000, 1)
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* tracker.remote.measureDirty, 3)
      assert.strictEqual(yield* tracker.remote.measureDirtyAge, 6000)
      assert.deepStrictEqual([...(yield* tracker.remote.sync)], [0, 1, 12])
      assert.strictEqual(yield* tracker.remote.measureDirtyAge, 0)
    }))

  it.effect("sync waits for a write that has landed but not yet been marked, and holds new writes back", () =>
    Effect.gen(function*() {
      const memory = yield* Memory.make(1 << 20)
      const release = yield* Latch.make()
      let landed = 0
      const stalling = wrap(memory, "stalling", {
        writeAt: (data, offset) =>
          Effect.tap(memory.writeAt(data, offset), () => {
            landed++
            return release.await
          })
      })
      const tracker = yield* DirtyTracker.make(stalling, blockSize)
      yield* tracker.remote.trackAt(0, 1 << 20)
      const first = yield* Effect.forkChild(tracker.local.writeAt(new Uint8Array(1), 0))
      yield* settle
      const sync = yield* Effect.forkChild(tracker.remote.sync)
      yield* settle
      const second = yield* Effect.forkChild(tracker.local.writeAt(new Uint8Array(1), 5 * blockSize))
      yield* settle
      assert.strictEqual(landed, 1)
      assert.isUndefined(sync.pollUnsafe())
      yield* release.open
      assert.deepStrictEqual([...(yield* Fiber.join(sync))], [0])
      yield* Fiber.join(first)
      yield* Fiber.join(second)
      assert.strictEqual(landed, 2)
      assert.deepStrictEqual([...(yield* tracker.remote.sync)], [5])
    }))

  it.effect("matches a model of tracking and dirty sets under random reads, writes and syncs", () =>
    Effect.gen(function*() {
      const context = yield* Effect.context<never>()
      const size = 40 * 100 + 37
      const op = fc.oneof(
        fc.record({ op: fc.constant("read" as const), offset: fc.nat({ max: size - 1 }), length: fc.nat(900) }),
        fc.record({ op: fc.constant("write" as const), offset: fc.nat({ max: size - 1 }), length: fc.nat(900) }),
        fc.record({ op: fc.constant("sync" as const) })
      )
      fc.assert(fc.property(fc.array(op, { maxLength: 120 }), (ops) => {
        Effect.runSyncWith(context)(Effect.scoped(Effect.gen(function*() {
          const tracker = yield* DirtyTracker.make(yield* Memory.make(size), 100)
          const tracking = new Set<number>()
          const dirty = new Set<number>()
          for (const step of ops) {
            if (step.op === "sync") {
              assert.deepStrictEqual([...(yield* tracker.remote.sync)], [...dirty].toSorted((a, b) => a - b))
              for (const block of dirty) tracking.delete(block)
              dirty.clear()
              continue
            }
            const { first, end } = Blocks.touched(step.offset, step.length, size, 100)
            if (step.op === "read") {
              yield* tracker.remote.readAt(new Uint8Array(step.length), step.offset)
              for (let block = first; block < end; block++) tracking.add(block)
            } else {
              yield* tracker.local.writeAt(new Uint8Array(step.length), step.offset)
              for (let block = first; block < end; block++) if (tracking.has(block)) dirty.add(block)
            }
            assert.strictEqual(yield* tracker.remote.measureDirty, dirty.size)
          }
          assert.deepStrictEqual(yield* tracker.remote.trackedBlocks, [...tracking].toSorted((a, b) => a - b))
        })))
      }))
    }))

  it.effect(
    "under concurrent writers, readers and a migrator, a final sync under lock leaves an exact copy",
    () =>
      Effect.gen(function*() {
        const size = 64 * blockSize + 1000
        const blocks = Blocks.count(size, blockSize)
        const source = yield* Memory.make(size)
        const tracker = yield* DirtyTracker.make(yielding(source), blockSize)
        const monitor = yield* VolatilityMonitor.make(tracker.local, blockSize, "1 minute")
        const application = yield* Lockable.make(monitor)
        const order = BlockOrder.makePriority(blocks, monitor)
        order.addAll()
        const copy = yield* Memory.make(size)

        const send = Effect.fnUntraced(function*(block: number) {
          const { offset, length } = Blocks.range(block, size, blockSize)
          const buffer = new Uint8Array(length)
          assert.strictEqual(yield* tracker.remote.readAt(buffer, offset), length)
          yield* copy.writeAt(buffer, offset)
        })
        const migrate = Effect.gen(function*() {
          for (let info = order.next(); info.block !== -1; info = order.next()) yield* send(info.block)
        })

        // Each writer owns a stripe that does not line up with blocks, keeps a shadow of it, and reads back what
        // it wrote through the whole stack; blocks on stripe edges are written by two writers.
        const writers = 4
        const stripe = Math.floor(size / writers)
        const shadow = new Uint8Array(size)
        let writes = 0
        const writer = Effect.fnUntraced(function*(index: number) {
          const random = mulberry32(index + 1)
          const start = index * stripe
          const end = index === writers - 1 ? size : start + stripe
          for (let round = 0; round < 150; round++) {
            const offset = start + Math.floor(random() * (end - start))
            const length = 1 + Math.floor(random() * Math.min(3 * blockSize, end - offset - 1))
            const data = new Uint8Array(length).map(() => Math.floor(random() * 256))
            assert.strictEqual(yield* application.writeAt(data, offset), length)
            shadow.set(data, offset)
            writes++
            if (random() < 0.1) order.prioritise(Math.floor(offset / blockSize))
            const readFrom = start + Math.floor(random() * (end - start))
            const readBack = new Uint8Array(Math.min(2 * blockSize, end - readFrom))
            yield* application.readAt(readBack, readFrom)
            assert.strictEqual(sha256(readBack), sha256(shadow.subarray(readFrom, readFrom + readBack.length)))
          }
        })

        const writing = yield* Effect.forkChild(
          Effect.forEach(Array.from({ length: writers }, (_, i) => i), writer, { concurrency: "unbounded" })
        )
        yield* Effect.all([migrate, migrate, migrate], { concurrency: "unbounded" })
        // Dirty rounds while the writers run, then a final one with them locked out part-way through.
        for (let round = 0; round < 5; round++) {
          yield* Effect.forEach(yield* tracker.remote.sync, send, { concurrency: 4 })
          yield* settle
        }
        yield* application.lock
        yield* Effect.forEach(yield* tracker.remote.sync, send, { concurrency: 4 })

        assert.isTrue(application.isLocked())
        assert.isUndefined(writing.pollUnsafe())
        assert.isBelow(writes, 4 * 150)
        assert.strictEqual(yield* tracker.remote.measureDirty, 0)
        assert.deepStrictEqual(yield* Device.sha256(copy), yield* Device.sha256(source))

        yield* application.unlock
        yield* Fiber.join(writing)
        assert.strictEqual(Buffer.from(yield* Device.sha256(source)).toString("hex"), sha256(shadow))
      }),
    60_000
  )
})

/** A device that lets other fibers run before and after each read and write lands. */
const yielding = (inner: BlockDevice): BlockDevice =>
  wrap(inner, `yielding(${inner.name})`, {
    readAt: (buffer, offset) =>
      Effect.yieldNow.pipe(Effect.andThen(inner.readAt(buffer, offset)), Effect.tap(() => Effect.yieldNow)),
    writeAt: (data, offset) =>
      Effect.yieldNow.pipe(Effect.andThen(inner.writeAt(data, offset)), Effect.tap(() => Effect.yieldNow))
  })

const sha256 = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex")

/** A small seeded generator, so a failing run can be repeated. */
const mulberry32 = (seed: number) => () => {
  seed = (seed + 0x6d2b_79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
}
