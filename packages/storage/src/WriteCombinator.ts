/**
 * The write combinator arbitrates between several writers of one device, on the destination of a migration:
 * each source has a unique priority, and a block written by a higher-priority source is never overwritten by
 * a lower one, whatever the arrival order. A peer's data (priority 2) beats data fetched from S3 (priority 1).
 *
 * A write is split by block. Under the block's lock, it goes through when the source's priority is at least
 * the highest priority that has written the block (an equal priority is the same source writing again), and is
 * otherwise dropped without an error: the write still reports every byte written, and the drop is counted.
 * The lock spans the check, the write and the record, so a slow low-priority write cannot land after a
 * high-priority one that checked later (Silo bug #128).
 *
 * Writes must start on a block boundary and cover whole blocks, except where the device ends; anything else
 * fails with `Unsupported`. Reads, flushes and cancellation pass through.
 *
 * @since 0.1.0
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import { Bitfield } from "./Bitfield.ts"
import * as Blocks from "./Blocks.ts"
import { type BlockDevice, clip, wrap } from "./Provider.ts"
import * as StorageError from "./StorageError.ts"

/**
 * Blocks written and dropped so far, per source priority.
 *
 * @since 0.1.0
 * @category models
 */
export interface WriteCombinatorMetrics {
  /** Blocks each source wrote through. */
  readonly writesAllowed: ReadonlyMap<number, number>
  /** Blocks of each source dropped because a higher-priority source had written them. */
  readonly writesBlocked: ReadonlyMap<number, number>
}

/**
 * A write combinator over one device.
 *
 * @since 0.1.0
 * @category models
 */
export interface WriteCombinator {
  /** A new source writing at `priority`; fails with `Unsupported` when a source already has that priority. */
  readonly addSource: (priority: number) => Effect.Effect<BlockDevice, StorageError.StorageError>
  /** The counts so far. */
  readonly metrics: Effect.Effect<WriteCombinatorMetrics>
}

interface Source {
  readonly priority: number
  /** The blocks this source has written. */
  readonly written: Bitfield
  allowed: number
  blocked: number
}

/**
 * Creates a combinator over `inner` in blocks of `blockSize` bytes, with no sources yet.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fn("WriteCombinator.make")(function*(inner: BlockDevice, blockSize: number) {
  const name = `write-combinator(${inner.name})`
  const blocks = Blocks.count(inner.size, blockSize)
  // Highest priority first, so the first source that has written a block is its highest writer.
  const sources: Array<Source> = []
  const locks = yield* Effect.sync(() => new BlockLocks())

  const unsupported = (detail: string) => StorageError.make(name, new StorageError.Unsupported({ detail }))

  /** Whether a source of higher priority than `priority` has written `block`. */
  const outranked = (block: number, priority: number): boolean => {
    for (const source of sources) {
      if (source.priority <= priority) return false
      if (source.written.has(block)) return true
    }
    return false
  }

  /** Writes the blocks of `[first, end)` the source may write, as few inner writes as there are runs of them. */
  const writeBlocks = Effect.fnUntraced(function*(source: Source, data: Uint8Array, first: number, end: number) {
    let block = first
    while (block < end) {
      if (outranked(block, source.priority)) {
        source.blocked++
        block++
        continue
      }
      let runEnd = block + 1
      while (runEnd < end && !outranked(runEnd, source.priority)) runEnd++
      const from = (block - first) * blockSize
      yield* inner.writeAt(data.subarray(from, Math.min((runEnd - first) * blockSize, data.length)), block * blockSize)
      source.written.setRange(block, runEnd)
      source.allowed += runEnd - block
      block = runEnd
    }
  })

  const sourceDevice = (source: Source): BlockDevice =>
    wrap(inner, `${name}#${source.priority}`, {
      writeAt: (data, offset) =>
        Effect.suspend(() => {
          const checked = clip(name, inner.size, offset, data.length)
          if (Result.isFailure(checked)) return Effect.fail(checked.failure)
          const length = checked.success
          if (offset % blockSize !== 0) {
            return Effect.fail(unsupported(`write at ${offset} does not start on a ${blockSize}-byte block`))
          }
          if (length % blockSize !== 0 && offset + length !== inner.size) {
            return Effect.fail(unsupported(`write of ${length} bytes at ${offset} does not end on a block boundary`))
          }
          if (length === 0) return Effect.succeed(0)
          const { first, end } = Blocks.touched(offset, length, inner.size, blockSize)
          return locks.holding(
            first,
            end,
            Effect.as(writeBlocks(source, data.subarray(0, length), first, end), length)
          )
        })
    })

  const combinator: WriteCombinator = {
    addSource: Effect.fn("WriteCombinator.addSource")(function*(priority: number) {
      if (sources.some((source) => source.priority === priority)) {
        return yield* unsupported(`a source with priority ${priority} already exists`)
      }
      const source: Source = { priority, written: new Bitfield(blocks), allowed: 0, blocked: 0 }
      sources.push(source)
      sources.sort((a, b) => b.priority - a.priority)
      return sourceDevice(source)
    }),
    metrics: Effect.sync(() => ({
      writesAllowed: new Map(sources.map((source) => [source.priority, source.allowed])),
      writesBlocked: new Map(sources.map((source) => [source.priority, source.blocked]))
    }))
  }
  return combinator
})

/**
 * One lock per block, held only while a write to it is running: a map from a held block to the signal its
 * waiters wait for. Blocks are always locked in ascending order, so no two writes can wait for each other.
 */
class BlockLocks {
  readonly #held = new Map<number, Deferred.Deferred<void>>()

  /** Runs `effect` holding the locks of blocks `[first, end)`. */
  holding<A, E>(first: number, end: number, effect: Effect.Effect<A, E>): Effect.Effect<A, E> {
    return Effect.suspend(() => {
      let lockedEnd = first
      const lockRest: Effect.Effect<void> = Effect.suspend(() => {
        while (lockedEnd < end) {
          const holder = this.#held.get(lockedEnd)
          // Every waiter wakes when the holder lets go; one takes the lock and the others wait again.
          if (holder !== undefined) return Effect.andThen(Deferred.await(holder), lockRest)
          this.#held.set(lockedEnd, Deferred.makeUnsafe<void>())
          lockedEnd++
        }
        return Effect.void
      })
      const unlock = Effect.sync(() => {
        for (let block = first; block < lockedEnd; block++) {
          Deferred.doneUnsafe(this.#held.get(block)!, Effect.void)
          this.#held.delete(block)
        }
      })
      return Effect.ensuring(Effect.andThen(lockRest, effect), unlock)
    })
  }
}
