/**
 * The dirty tracker finds the blocks written after the migrator sent them. It has two sides over one device:
 * `local`, where the application writes, and `remote`, where the migrator reads. Two bit sets are shared
 * between them:
 *
 * - `tracking`: blocks the migrator has read. A remote read sets them *before* reading, so a write that lands
 *   while the read is in progress is counted as dirty rather than lost.
 * - `dirty`: tracked blocks written since. A local write marks `dirty |= tracking` over its blocks once the data
 *   has landed, with the time of the write. A block the migrator never read is never dirty: its first read will
 *   pick the data up anyway.
 *
 * `sync` takes the dirty set and clears it, and clears those blocks from `tracking` (re-sending them reads them
 * again, which re-arms them). It runs while local writes are paused and after the running ones have finished,
 * so no write can be between landing its data and marking its blocks: once writers are stopped (a `Lockable`
 * above the tracker), an empty `sync` means the copy is exact.
 *
 * Time comes from the `Clock` of the context the tracker was made in, so tests drive it with `TestClock`.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Semaphore from "effect/Semaphore"
import { Bitfield } from "./Bitfield.ts"
import * as Blocks from "./Blocks.ts"
import * as BitRange from "./internal/bitRange.ts"
import * as Gate from "./internal/gate.ts"
import { type BlockDevice, wrap } from "./Provider.ts"
import type * as StorageError from "./StorageError.ts"

/**
 * The migrator's side of a dirty tracker: a device whose reads arm tracking, plus the dirty-set operations.
 * Writes and flushes go straight to the tracked device and are not tracked.
 *
 * @since 0.1.0
 * @category models
 */
export interface Remote extends BlockDevice {
  /**
   * Takes the dirty set: returns it and clears it, and clears its blocks from tracking. Local writes wait while
   * it runs, and it waits for the running ones.
   */
  readonly sync: Effect.Effect<Bitfield>
  /**
   * Takes part of the dirty set, in groups of `2 ** groupShift` blocks (for a copy kept in larger blocks than
   * the tracker's): first the groups of blocks last written more than `maxAge` ago, oldest first, then the
   * groups with the most dirty blocks, keeping only groups with at least `minChanged`; at most `limit` groups in
   * all. Clears tracking and dirty state for every block of the returned groups, and returns the group numbers,
   * ascending. Local writes wait while it runs, as for `sync`.
   */
  readonly getDirtyBlocks: (
    maxAge: Duration.Input,
    limit: number,
    groupShift: number,
    minChanged: number
  ) => Effect.Effect<ReadonlyArray<number>>
  /** Arms tracking for the blocks of a byte range without reading them (for a copy made some other way). */
  readonly trackAt: (offset: number, length: number) => Effect.Effect<void>
  /** The tracked blocks, ascending. */
  readonly trackedBlocks: Effect.Effect<ReadonlyArray<number>>
  /** Marks the blocks of a byte range dirty, as written now (for changes made around the tracker). */
  readonly markDirty: (offset: number, length: number) => Effect.Effect<void>
  /** How many blocks are dirty. */
  readonly measureDirty: Effect.Effect<number>
  /** How long ago, in milliseconds, the oldest dirty block was last written; 0 when none is dirty. */
  readonly measureDirtyAge: Effect.Effect<number>
}

/**
 * The two sides of a dirty tracker.
 *
 * @since 0.1.0
 * @category models
 */
export interface DirtyTracker {
  /** The application's side: writes mark tracked blocks dirty; reads pass through. */
  readonly local: BlockDevice
  /** The migrator's side. */
  readonly remote: Remote
}

/**
 * Options for `make`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * Where remote reads get their data, when not from the tracked device itself (for example a view of a
   * process's memory that is cheaper to read). It must show the same bytes.
   */
  readonly remoteSource?: BlockDevice | undefined
}

const noBlocks = { first: 0, end: 0 } as const

/**
 * Tracks `inner` in blocks of `blockSize` bytes; nothing is tracked or dirty at first.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fn("DirtyTracker.make")(
  function*(inner: BlockDevice, blockSize: number, options?: Options) {
    const clock = yield* Clock.Clock
    const blocks = Blocks.count(inner.size, blockSize)
    const tracking = new Bitfield(blocks)
    const dirty = new Bitfield(blocks)
    // Last write time of each dirty block: its keys are exactly the dirty blocks.
    const writeTimes = new Map<number, number>()
    const writes = Gate.makeUnsafe()
    // One taker of the dirty set at a time, so one cannot reopen the gate under another.
    const takers = yield* Semaphore.make(1)
    const remoteSource = options?.remoteSource ?? inner

    // The blocks of a range from outside (a read not yet checked by the device, a caller's mark): none for an
    // offset the device would refuse, so that it cannot index the bit sets.
    const blocksOf = (offset: number, length: number) =>
      offset >= 0 && offset < inner.size ? Blocks.touched(offset, length, inner.size, blockSize) : noBlocks

    const arm = (offset: number, length: number) => {
      const { first, end } = blocksOf(offset, length)
      tracking.setRange(first, end)
    }

    const markWritten = (offset: number, written: number) => {
      const { first, end } = Blocks.touched(offset, written, inner.size, blockSize)
      let now: number | undefined
      BitRange.forEachSet(tracking, first, end, (block) => {
        now ??= clock.currentTimeMillisUnsafe()
        dirty.set(block)
        writeTimes.set(block, now)
      })
    }

    const clearBlocks = (first: number, end: number) => {
      BitRange.forEachSet(dirty, first, end, (block) => writeTimes.delete(block))
      dirty.clearRange(first, end)
      tracking.clearRange(first, end)
    }

    const whileWritesPaused = <A>(take: () => A): Effect.Effect<A> =>
      takers.withPermit(
        writes.close.pipe(Effect.andThen(Effect.sync(take)), Effect.ensuring(writes.open))
      )

    const takeAll = (): Bitfield => {
      const taken = dirty.clone()
      for (let word = 0; word < tracking.words.length; word++) tracking.words[word]! &= ~taken.words[word]!
      dirty.clearAll()
      writeTimes.clear()
      return taken
    }

    const takeGroups = (maxAgeMillis: number, limit: number, groupShift: number, minChanged: number) => {
      const now = clock.currentTimeMillisUnsafe()
      const chosen = new Set<number>()
      const old = [...writeTimes].filter(([, time]) => now - time > maxAgeMillis)
      old.sort(([blockA, timeA], [blockB, timeB]) => timeA - timeB || blockA - blockB)
      for (const [block] of old) {
        if (chosen.size >= limit) break
        chosen.add(block >> groupShift)
      }
      const counts = new Map<number, number>()
      for (const block of dirty) counts.set(block >> groupShift, (counts.get(block >> groupShift) ?? 0) + 1)
      const busiest = [...counts].filter(([group, count]) => count >= minChanged && !chosen.has(group))
      busiest.sort(([groupA, countA], [groupB, countB]) => countB - countA || groupA - groupB)
      for (const [group] of busiest) {
        if (chosen.size >= limit) break
        chosen.add(group)
      }
      const groups = [...chosen].toSorted((a, b) => a - b)
      for (const group of groups) clearBlocks(group << groupShift, Math.min((group + 1) << groupShift, blocks))
      return groups
    }

    // `writes.pass` by hand, with the marking in the same exit handler: one Effect step less per write.
    const writeAt = (data: Uint8Array, offset: number): Effect.Effect<number, StorageError.StorageError> =>
      Effect.suspend(() => {
        if (!writes.enter()) return Effect.andThen(writes.opened, writeAt(data, offset))
        return Effect.onExit(inner.writeAt(data, offset), (exit) => {
          if (Exit.isSuccess(exit)) markWritten(offset, exit.value)
          writes.leave()
          return Effect.void
        })
      })

    const local = wrap(inner, `dirty-tracker(${inner.name})`, { writeAt })

    const remote: Remote = {
      ...wrap(inner, `dirty-tracker-remote(${inner.name})`, {
        readAt: (buffer, offset) =>
          Effect.suspend(() => {
            arm(offset, buffer.length)
            return remoteSource.readAt(buffer, offset)
          })
      }),
      sync: whileWritesPaused(takeAll).pipe(Effect.withSpan("DirtyTracker.sync")),
      getDirtyBlocks: Effect.fn("DirtyTracker.getDirtyBlocks")(
        function*(maxAge: Duration.Input, limit: number, groupShift: number, minChanged: number) {
          const maxAgeMillis = Duration.toMillis(maxAge)
          return yield* whileWritesPaused(() => takeGroups(maxAgeMillis, limit, groupShift, minChanged))
        }
      ),
      trackAt: (offset, length) => Effect.sync(() => arm(offset, length)),
      trackedBlocks: Effect.sync(() => [...tracking]),
      markDirty: (offset, length) =>
        Effect.sync(() => {
          const { first, end } = blocksOf(offset, length)
          const now = clock.currentTimeMillisUnsafe()
          dirty.setRange(first, end)
          for (let block = first; block < end; block++) writeTimes.set(block, now)
        }),
      measureDirty: Effect.sync(() => dirty.count()),
      measureDirtyAge: Effect.sync(() => {
        let oldest = Number.POSITIVE_INFINITY
        for (const time of writeTimes.values()) oldest = Math.min(oldest, time)
        return writeTimes.size === 0 ? 0 : clock.currentTimeMillisUnsafe() - oldest
      })
    }

    const tracker: DirtyTracker = { local, remote }
    return tracker
  }
)
