import { assert, describe, it } from "@effect/vitest"
import * as BlockOrder from "@tessera/storage/BlockOrder"
import * as Blocks from "@tessera/storage/Blocks"
import * as Device from "@tessera/storage/Device"
import * as DirtyTracker from "@tessera/storage/DirtyTracker"
import * as Lockable from "@tessera/storage/Lockable"
import * as Memory from "@tessera/storage/Memory"
import { type BlockDevice, wrap } from "@tessera/storage/Provider"
import * as StorageError from "@tessera/storage/StorageError"
import * as VolatilityMonitor from "@tessera/storage/VolatilityMonitor"
import * as WaitingCache from "@tessera/storage/WaitingCache"
import { Duration, Effect, Exit, Fiber, Latch, Scope } from "effect"
import { createHash } from "node:crypto"
import type * as MigrationProgress from "../src/MigrationProgress.ts"
import * as Migrator from "../src/Migrator.ts"

const KiB = 1024
const MiB = 1024 * KiB
const bs = 4 * KiB

/** A small deterministic generator (mulberry32), so a failing run can be replayed from its seed. */
const prng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const bytes = (length: number, next: () => number): Uint8Array => {
  const out = new Uint8Array(length)
  for (let i = 0; i < length; i++) out[i] = Math.floor(next() * 256)
  return out
}

/** Lets every other runnable fiber take its steps. */
const settle = Effect.gen(function*() {
  for (let i = 0; i < 20; i++) yield* Effect.yieldNow
})

/** A source device filled with pseudo-random bytes, its dirty tracker, and a `Lockable` above the tracker. */
const sourceStack = Effect.fnUntraced(function*(size: number, blockSize = bs) {
  const base = yield* Memory.make(size, "source")
  yield* Device.fillPseudoRandom(base, `migrator:${size}`)
  const tracker = yield* DirtyTracker.make(base, blockSize)
  const lockable = yield* Lockable.make(tracker.local)
  return { base, tracker, lockable }
})

const anyOrder = (size: number, blockSize = bs) => {
  const order = BlockOrder.makeAny(Blocks.count(size, blockSize))
  order.addAll()
  return order
}

const ioFailure = (device: string) =>
  StorageError.make(device, new StorageError.IoFailure({ operation: "write", cause: new Error("refused") }))

const blockBytes = Effect.fnUntraced(function*(device: BlockDevice, block: number) {
  const { length, offset } = Blocks.range(block, device.size, bs)
  const buffer = new Uint8Array(length)
  yield* device.readAt(buffer, offset)
  return buffer
})

/** A WaitingCache hint that applies `apply` to every block its byte range touches (what the source does). */
const eachBlock = (size: number, apply: (block: number) => void) => (offset: number, length: number) =>
  Effect.sync(() => {
    const { end, first } = Blocks.touched(offset, length, size, bs)
    for (let block = first; block < end; block++) apply(block)
  })

describe("Migrator", () => {
  it.effect("TestMigratorSimple: 1 MiB in 4 KiB blocks, memory to memory, ends equal", () =>
    Effect.gen(function*() {
      const { base, tracker } = yield* sourceStack(MiB)
      const destination = yield* Memory.make(MiB, "destination")
      const migrator = yield* Migrator.make({
        source: tracker.remote,
        destination,
        order: anyOrder(MiB),
        blockSize: bs
      })
      const summary = yield* Migrator.run(migrator)
      assert.isTrue(yield* Device.equals(base, destination))
      assert.strictEqual(summary.blocksSent, 256)
      assert.strictEqual(summary.blocksResent, 0)
      assert.strictEqual(summary.dirtyRounds, 0)
      assert.strictEqual((yield* migrator.migratedBlocks).count(), 256)
    }))

  it.effect("TestMigratorPartial: a 5000-byte device with a short last block ends equal", () =>
    Effect.gen(function*() {
      const { base, tracker } = yield* sourceStack(5000)
      const destination = yield* Memory.make(5000, "destination")
      const migrator = yield* Migrator.make({
        source: tracker.remote,
        destination,
        order: anyOrder(5000),
        blockSize: bs
      })
      const summary = yield* Migrator.run(migrator)
      assert.strictEqual(summary.blocksSent, 2)
      assert.isTrue(yield* Device.equals(base, destination))
    }))

  it.effect("dirty rounds re-send the blocks written after the bulk copy and leave the source locked", () =>
    Effect.gen(function*() {
      const { base, lockable, tracker } = yield* sourceStack(MiB)
      const destination = yield* Memory.make(MiB, "destination")
      const migrator = yield* Migrator.make({
        source: tracker.remote,
        destination,
        order: anyOrder(MiB),
        blockSize: bs,
        lock: lockable.lock,
        unlock: lockable.unlock
      })
      yield* migrator.migrate(Number.POSITIVE_INFINITY)
      yield* migrator.waitForCompletion
      const next = prng(7)
      // Block 3, and blocks 10 and 11 through one write that straddles them.
      yield* lockable.writeAt(bytes(100, next), 3 * bs + 50)
      yield* lockable.writeAt(bytes(200, next), 11 * bs - 100)
      const seen: Array<ReadonlyArray<number>> = []
      const summary = yield* Migrator.run(migrator, {
        onDirty: (blocks) => Effect.sync(() => void seen.push([...blocks]))
      })
      assert.deepStrictEqual(seen, [[3, 10, 11]])
      assert.strictEqual(summary.dirtyRounds, 1)
      assert.strictEqual(summary.blocksResent, 3)
      assert.isTrue(lockable.isLocked())
      assert.isTrue(yield* Device.equals(base, destination))
      yield* migrator.unlock
      assert.isFalse(lockable.isLocked())
    }))

  it.live("TestMigratorWithReaderWriter: destination reads see source bytes while the source is written", () =>
    Effect.gen(function*() {
      const size = MiB
      const numBlocks = Blocks.count(size, bs)
      const base = yield* Memory.make(size, "source")
      yield* Device.fillPseudoRandom(base, "reader-writer")
      const initial = new Uint8Array(size)
      yield* base.readAt(initial, 0)
      const tracker = yield* DirtyTracker.make(base, bs)
      const monitor = yield* VolatilityMonitor.make(tracker.local, bs, "10 seconds")
      const source = yield* Lockable.make(monitor)
      const order = BlockOrder.makePriority(numBlocks, monitor)
      order.addAll()

      const destinationBase = yield* Memory.make(size, "destination")
      const cache = yield* WaitingCache.make(destinationBase, {
        blockSize: bs,
        needAt: eachBlock(size, (block) => order.prioritise(block))
      })
      const migrator = yield* Migrator.make({
        source: tracker.remote,
        destination: cache.remote,
        order,
        blockSize: bs,
        concurrency: { Standard: 4, Priority: 4, Dirty: 4 },
        lock: source.lock,
        unlock: source.unlock
      })

      // Every value each written byte has held: a destination read must show one the source has had.
      const history = new Map<number, Set<number>>()
      const next = prng(42)
      const writer = yield* Effect.forkChild(Effect.gen(function*() {
        for (let i = 0; i < 300; i++) {
          const offset = Math.floor(next() * (size - 1))
          const data = bytes(1 + Math.floor(next() * 3000), next)
          data.forEach((value, j) => {
            const at = offset + j
            if (at < size) history.set(at, (history.get(at) ?? new Set([initial[at]!])).add(value))
          })
          yield* source.writeAt(data, offset)
          yield* Effect.yieldNow
        }
      }))
      let mismatches = 0
      const reader = yield* Effect.forkChild(Effect.gen(function*() {
        const read = new Uint8Array(1)
        for (let i = 0; i < 300; i++) {
          const offset = Math.floor(next() * size)
          yield* cache.local.readAt(read, offset)
          const allowed = history.get(offset) ?? new Set([initial[offset]!])
          if (!allowed.has(read[0]!)) mismatches++
        }
      }))

      const summary = yield* Migrator.run(migrator, { onDirty: (blocks) => cache.local.dirtyBlocks(blocks) })
      yield* Fiber.join(reader)
      // The writer may be parked at the lock for good: the final round leaves the source locked.
      yield* Fiber.interrupt(writer)
      assert.strictEqual(mismatches, 0)
      assert.isTrue(source.isLocked())
      assert.isTrue(yield* Device.equals(base, destinationBase))
      assert.strictEqual((yield* cache.local.availability).available, numBlocks)
      yield* Effect.log(
        `reader-writer: ${summary.dirtyRounds} dirty rounds, ${summary.blocksResent} blocks re-sent, ` +
          `${(yield* cache.local.metrics).waitForBlock} destination waits`
      )
    }).pipe(Effect.timeout("20 seconds")))

  it.effect("TestMigratorWithReaderWriterWrite: a local 8 KiB destination write takes 2 blocks out of the order", () =>
    Effect.gen(function*() {
      const size = MiB
      const numBlocks = Blocks.count(size, bs)
      const { base, lockable, tracker } = yield* sourceStack(size)
      const order = BlockOrder.makePriority(numBlocks, BlockOrder.makeAny(numBlocks))
      order.addAll()
      for (let block = 0; block < numBlocks; block++) order.prioritise(block)
      const destinationBase = yield* Memory.make(size, "destination")
      const cache = yield* WaitingCache.make(destinationBase, {
        blockSize: bs,
        needAt: eachBlock(size, (block) => order.prioritise(block)),
        dontNeedAt: eachBlock(size, (block) => order.remove(block))
      })
      const migrator = yield* Migrator.make({
        source: tracker.remote,
        destination: cache.remote,
        order,
        blockSize: bs,
        concurrency: { Any: 1, Standard: 1, Dirty: 1, Priority: 1 },
        lock: lockable.lock,
        unlock: lockable.unlock
      })
      yield* migrator.migrate(4)
      const data = bytes(8 * KiB, prng(3))
      yield* cache.local.writeAt(data, 8 * bs)
      yield* Migrator.run(migrator, { onDirty: (blocks) => cache.local.dirtyBlocks(blocks) })
      const migrated = yield* migrator.migratedBlocks
      assert.strictEqual(migrated.count(), numBlocks - 2)
      assert.isFalse(migrated.has(8))
      assert.isFalse(migrated.has(9))
      assert.isTrue(lockable.isLocked())
      // The source is locked, so the application's write is replayed on the device under it.
      yield* base.writeAt(data, 8 * bs)
      assert.isTrue(yield* Device.equals(base, destinationBase))
    }))

  it.effect("a destination that fails a write makes run fail with a MigrationError naming the block", () =>
    Effect.gen(function*() {
      const { tracker } = yield* sourceStack(MiB)
      const memory = yield* Memory.make(MiB, "destination")
      const destination = wrap(memory, "failing", {
        writeAt: (data, offset) => offset === 7 * bs ? Effect.fail(ioFailure("failing")) : memory.writeAt(data, offset)
      })
      const migrator = yield* Migrator.make({
        source: tracker.remote,
        destination,
        order: anyOrder(MiB),
        blockSize: bs
      })
      const error = yield* Effect.flip(Migrator.run(migrator))
      assert.strictEqual(error._tag, "MigrationError")
      assert.strictEqual(error.reason._tag, "WriteFailed")
      assert.strictEqual(error.reason._tag === "WriteFailed" ? error.reason.block : -1, 7)
      assert.include(error.message, "block 7")
      assert.include(error.message, "refused")
      // The failure is kept: every later wait reports it, and nothing more is handed out.
      const again = yield* Effect.flip(migrator.waitForCompletion)
      assert.strictEqual(again, error)
      assert.isBelow((yield* migrator.progress).totalMigratedBlocks, 255)
    }))

  it.effect("a short read from the source is a ShortRead for that block", () =>
    Effect.gen(function*() {
      const memory = yield* Memory.make(MiB, "source")
      const short = wrap(memory, "short", {
        readAt: (buffer, offset) =>
          offset === 3 * bs ? Effect.succeed(buffer.length - 1) : memory.readAt(buffer, offset)
      })
      const tracker = yield* DirtyTracker.make(short, bs)
      const destination = yield* Memory.make(MiB, "destination")
      const migrator = yield* Migrator.make({
        source: tracker.remote,
        destination,
        order: anyOrder(MiB),
        blockSize: bs
      })
      yield* migrator.migrate(Number.POSITIVE_INFINITY)
      const error = yield* Effect.flip(migrator.waitForCompletion)
      assert.deepInclude(error.reason, { _tag: "ShortRead", block: 3, expected: bs, actual: bs - 1 })
    }))

  it.effect("progress counts blocks, re-sends and readiness, and is reported when waiting ends", () =>
    Effect.gen(function*() {
      const { tracker } = yield* sourceStack(MiB)
      const destination = yield* Memory.make(MiB, "destination")
      const reports: Array<MigrationProgress.MigrationProgress> = []
      const migrator = yield* Migrator.make({
        source: tracker.remote,
        destination,
        order: anyOrder(MiB),
        blockSize: bs,
        onProgress: (progress) => Effect.sync(() => void reports.push(progress))
      })
      yield* migrator.migrate(10)
      yield* migrator.waitForCompletion
      const partial = yield* migrator.progress
      assert.strictEqual(partial.migratedBlocks, 10)
      assert.strictEqual(partial.migratedBlocksPerc, (10 * 100) / 256)
      yield* migrator.migrate(Number.POSITIVE_INFINITY)
      yield* migrator.migrateDirty([1, 2, 1000, -1])
      yield* migrator.waitForCompletion
      const final = yield* migrator.progress
      assert.deepStrictEqual(final, {
        blockSize: bs,
        totalBlocks: 256,
        migratedBlocks: 256,
        migratedBlocksPerc: 100,
        readyBlocks: 256,
        readyBlocksPerc: 100,
        activeBlocks: 0,
        totalCanceledBlocks: 0,
        totalMigratedBlocks: 258,
        totalDuplicatedBlocks: 0
      })
      // The test clock stands still: the first block reports, later ones are rate-limited, waits always report.
      assert.isAtLeast(reports.length, 3)
      assert.deepStrictEqual(reports.at(-1), final)
    }))

  it.effect("integrity keeps the sha256 of every block as sent", () =>
    Effect.gen(function*() {
      const size = 64 * KiB + 100
      const { base, tracker } = yield* sourceStack(size)
      const destination = yield* Memory.make(size, "destination")
      const migrator = yield* Migrator.make({
        source: tracker.remote,
        destination,
        order: anyOrder(size),
        blockSize: bs,
        integrity: true
      })
      yield* Migrator.run(migrator)
      const hashes = yield* migrator.hashes
      assert.strictEqual(hashes.size, 17)
      for (let block = 0; block < 17; block++) {
        const expected = createHash("sha256").update(yield* blockBytes(base, block)).digest()
        assert.deepStrictEqual(hashes.get(block), new Uint8Array(expected))
      }
    }))

  it.effect("dedupeWrites skips a re-send still waiting to start and goes on with the rest of the list", () =>
    Effect.gen(function*() {
      const { base, tracker } = yield* sourceStack(MiB)
      const memory = yield* Memory.make(MiB, "destination")
      const gate = yield* Latch.make(true)
      const destination = wrap(memory, "gated", {
        writeAt: (data, offset) => Effect.andThen(gate.await, memory.writeAt(data, offset))
      })
      const migrator = yield* Migrator.make({
        source: tracker.remote,
        destination,
        order: anyOrder(MiB),
        blockSize: bs,
        concurrency: { Dirty: 1 },
        dedupeWrites: true
      })
      yield* migrator.migrate(Number.POSITIVE_INFINITY)
      yield* migrator.waitForCompletion
      yield* gate.close
      // Block 0 holds the only Dirty slot; block 1 waits for it; then 1 comes again with 3.
      yield* migrator.migrateDirty([0])
      const first = yield* Effect.forkChild(migrator.migrateDirty([1, 2]))
      yield* settle
      const second = yield* Effect.forkChild(migrator.migrateDirty([1, 3]))
      yield* settle
      assert.strictEqual((yield* migrator.progress).totalDuplicatedBlocks, 1)
      yield* gate.open
      yield* Fiber.join(first)
      yield* Fiber.join(second)
      yield* migrator.waitForCompletion
      const progress = yield* migrator.progress
      assert.strictEqual(progress.totalMigratedBlocks, 256 + 4)
      assert.strictEqual(progress.readyBlocks, 256)
      assert.isTrue(yield* Device.equals(base, memory))
    }))

  it.effect("cancelWrites asks the destination to cancel a recent send before re-sending the block", () =>
    Effect.gen(function*() {
      const { tracker } = yield* sourceStack(MiB)
      const memory = yield* Memory.make(MiB, "destination")
      const cancels: Array<[number, number]> = []
      const destination = wrap(memory, "cancelling", {
        cancelWrites: (offset, length) => Effect.sync(() => void cancels.push([offset, length]))
      })
      const migrator = yield* Migrator.make({
        source: tracker.remote,
        destination,
        order: anyOrder(MiB),
        blockSize: bs,
        cancelWrites: true
      })
      yield* migrator.migrate(2)
      yield* migrator.waitForCompletion
      // Block 1 was just sent; block 5 never was.
      yield* migrator.migrateDirty([1, 5])
      yield* migrator.waitForCompletion
      assert.deepStrictEqual(cancels, [[bs, bs]])
      assert.strictEqual((yield* migrator.progress).totalCanceledBlocks, 1)
    }))

  it.effect("setMigratedBlock skips the bulk send of a block but still re-sends it once written", () =>
    Effect.gen(function*() {
      const { base, lockable, tracker } = yield* sourceStack(MiB)
      // Block 2 is zero on both sides, so it need not be sent.
      yield* base.writeAt(new Uint8Array(bs), 2 * bs)
      const destination = yield* Memory.make(MiB, "destination")
      const migrator = yield* Migrator.make({
        source: tracker.remote,
        destination,
        order: anyOrder(MiB),
        blockSize: bs,
        lock: lockable.lock,
        unlock: lockable.unlock
      })
      yield* migrator.setMigratedBlock(2)
      yield* migrator.migrate(Number.POSITIVE_INFINITY)
      yield* migrator.waitForCompletion
      assert.strictEqual((yield* migrator.progress).totalMigratedBlocks, 255)
      assert.strictEqual((yield* migrator.migratedBlocks).count(), 256)
      yield* lockable.writeAt(new Uint8Array([1, 2, 3]), 2 * bs + 10)
      const summary = yield* Migrator.run(migrator)
      assert.strictEqual(summary.blocksResent, 1)
      assert.isTrue(yield* Device.equals(base, destination))
    }))

  it.effect("devices of different sizes are an InvalidConfig", () =>
    Effect.gen(function*() {
      const { tracker } = yield* sourceStack(MiB)
      const destination = yield* Memory.make(MiB - 1, "destination")
      const error = yield* Effect.flip(
        Migrator.make({ source: tracker.remote, destination, order: anyOrder(MiB), blockSize: bs })
      )
      assert.strictEqual(error.reason._tag, "InvalidConfig")
      const zero = yield* Effect.flip(
        Migrator.make({ source: tracker.remote, destination: tracker.remote, order: anyOrder(MiB), blockSize: 0 })
      )
      assert.strictEqual(zero.reason._tag, "InvalidConfig")
    }))

  it.effect("closing the migrator's scope ends a wait with Closed", () =>
    Effect.gen(function*() {
      const { tracker } = yield* sourceStack(MiB)
      const memory = yield* Memory.make(MiB, "destination")
      const destination = wrap(memory, "stalled", { writeAt: () => Effect.never })
      const scope = yield* Scope.make()
      const migrator = yield* Migrator.make({
        source: tracker.remote,
        destination,
        order: anyOrder(MiB),
        blockSize: bs
      })
        .pipe(Scope.provide(scope))
      yield* migrator.migrate(3)
      const waiting = yield* Effect.forkChild(migrator.waitForCompletion)
      yield* settle
      yield* Scope.close(scope, Exit.void)
      const error = yield* Effect.flip(Fiber.join(waiting))
      assert.strictEqual(error.reason._tag, "Closed")
    }))

  it.live("256 MiB memory to memory in 1 MiB blocks finishes well within bounds", () =>
    Effect.gen(function*() {
      const size = 256 * MiB
      const blockSize = MiB
      const { base, tracker } = yield* sourceStack(size, blockSize)
      const destination = yield* Memory.make(size, "destination")
      const migrator = yield* Migrator.make({
        source: tracker.remote,
        destination,
        order: anyOrder(size, blockSize),
        blockSize
      })
      const start = performance.now()
      const summary = yield* Migrator.run(migrator)
      const seconds = (performance.now() - start) / 1000
      yield* Effect.log(`migrator: 256 MiB in ${seconds.toFixed(3)} s = ${(256 / seconds).toFixed(0)} MiB/s`)
      assert.strictEqual(summary.blocksSent, size / blockSize)
      assert.isTrue(yield* Device.equals(base, destination))
      assert.isBelow(Duration.toMillis(summary.finalRound), 5_000)
      assert.isBelow(seconds, 15)
    }).pipe(Effect.timeout("30 seconds")))
})
