/**
 * The destination side of a live migration (Silo's `waitingcache`): one device seen two ways. `remote` takes the
 * migration data as it arrives; `local` is what the application uses, and its reads wait for blocks that have
 * not arrived yet. Two bitmaps, in whole blocks of `blockSize`, say what is there: remote-available (migration
 * data arrived and nothing has invalidated it since) and local-available (the application wrote the block here).
 *
 * - A remote write marks the blocks it covers completely (a short last block counts when the write reaches the
 *   end of the device). Blocks the application has written keep the application's bytes: the remote write
 *   leaves them out and writes only the runs of other blocks, so a write that starts or ends inside a block
 *   keeps exactly the right bytes whatever its offset. A remote write is not retried or merged later; a block
 *   that arrives only in pieces stays missing until one write covers all of it.
 * - A local read waits for every block of its range that is neither local- nor remote-available. The first wait
 *   on a block calls `needAt(block * blockSize, blockSize)` (a hint to the source to send it sooner); every
 *   other reader of that block shares the same wait, so one block costs one `needAt` however many read it.
 * - A local write first waits for remote data in a partial first or last block (the bytes it does not cover
 *   must come from the source), then writes and marks every block it touched local-available, and calls
 *   `dontNeedAt` once with the range of the blocks it covered completely, so the source can skip them. A
 *   partially written block is marked too (Silo marks only whole blocks): once its remote data has been merged
 *   with the application's bytes, a later remote copy of it would be older than what the application wrote.
 * - `dirtyBlocks` clears remote availability (the source changed those blocks), so later reads wait for the
 *   re-sent data; blocks the application wrote stay available.
 *
 * Local and remote writes to the same block never overlap on the device: a local write waits for remote writes
 * already in flight on its blocks, and a remote write that starts while a local write is in flight leaves that
 * local write's blocks out. If the device fails a local write, the blocks it touched hold whatever the device
 * left there.
 *
 * Waits are `Deferred`s, completed when a block is marked; there is no polling and no fiber per block. Closing
 * the scope fails every waiter and every later operation with `Closed`. The cache owns nothing but its maps, so
 * it does not wait for operations in flight on the device (the device's own scope does that).
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Result from "effect/Result"
import type * as Scope from "effect/Scope"
import { Bitfield } from "./Bitfield.ts"
import * as Blocks from "./Blocks.ts"
import { type BlockDevice, clip } from "./Provider.ts"
import * as StorageError from "./StorageError.ts"

/**
 * A hint sent to the source about a byte range: `needAt` (send it soon) or `dontNeedAt` (do not send it). Hints
 * cannot fail a read or a write, so a callback handles its own errors (a lost hint only costs time).
 *
 * @since 0.1.0
 * @category models
 */
export type Hint = (offset: number, length: number) => Effect.Effect<void>

/**
 * How to build a cache: the tracking unit (the migration block size) and the optional hint callbacks.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly blockSize: number
  readonly needAt?: Hint | undefined
  readonly dontNeedAt?: Hint | undefined
}

/**
 * Remote-available blocks and the number of blocks (Silo's `Availability()`).
 *
 * @since 0.1.0
 * @category models
 */
export interface Availability {
  readonly available: number
  readonly total: number
}

/**
 * Counters since the cache was made (Silo's waiting-cache metrics). Block counts, except the wait time.
 *
 * @since 0.1.0
 * @category models
 */
export interface Metrics {
  /** Blocks a local read or partial local write found missing and waited for. */
  readonly waitForBlock: number
  /** Blocks found present because migration data had arrived. */
  readonly hadRemote: number
  /** Blocks found present because the application had written them. */
  readonly hadLocal: number
  /** Total time local operations spent waiting for blocks, in nanoseconds. */
  readonly waitForBlockTimeNs: number
  /** Waits started on a block (each called `needAt` once). */
  readonly lock: number
  /** Waits ended because their block was marked. */
  readonly lockDone: number
  /** Blocks marked local-available (counted once per marking). */
  readonly markAvailableLocal: number
  /** Blocks marked remote-available (counted once per marking). */
  readonly markAvailableRemote: number
  /** Blocks local-available now. */
  readonly availableLocal: number
  /** Blocks remote-available now. */
  readonly availableRemote: number
}

/**
 * The application's view: a block device whose reads wait for missing blocks.
 *
 * @since 0.1.0
 * @category models
 */
export interface Local extends BlockDevice {
  /** Forgets the migration data of these blocks (Silo's DirtyList); indices outside the device are ignored. */
  readonly dirtyBlocks: (blocks: Iterable<number>) => Effect.Effect<void>
  /** How many blocks have their migration data. */
  readonly availability: Effect.Effect<Availability>
  /**
   * A snapshot of the blocks that need nothing more from the source: their migration data arrived, or the
   * application wrote them here. A destination that reconnects announces these so they are not sent again.
   */
  readonly present: Effect.Effect<Bitfield>
  /** The blocks readers are waiting for now, ascending (their NeedAt may have to be sent again). */
  readonly waiting: Effect.Effect<ReadonlyArray<number>>
  /** A snapshot of the counters. */
  readonly metrics: Effect.Effect<Metrics>
}

/**
 * The migration's view: writes deliver source data; reads are not supported.
 *
 * @since 0.1.0
 * @category models
 */
export interface Remote extends BlockDevice {
  /**
   * Marks the blocks wholly inside the range as arrived without writing them (Silo's `available` event, which
   * is how YouAlreadyHave takes effect).
   */
  readonly markAvailable: (offset: number, length: number) => Effect.Effect<void, StorageError.StorageError>
}

/**
 * Both views of one device.
 *
 * @since 0.1.0
 * @category models
 */
export interface WaitingCache {
  readonly local: Local
  readonly remote: Remote
}

/** The missing blocks of one operation: those it must send `needAt` for, and every wait it must join. */
interface Gather {
  readonly needs: Array<number>
  readonly waits: Array<Deferred.Deferred<void, StorageError.StorageError>>
}

/** A write in flight over blocks `[first, end)`; `done` is made when someone has to wait for it. */
interface Flight {
  readonly first: number
  readonly end: number
  done: Deferred.Deferred<void> | undefined
}

/**
 * Builds the two views over `device`, closed with the current scope. Fails with `Unsupported` when the block
 * size is not a positive whole number (it may come from a peer's DevInfo).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fn("WaitingCache.make")(function*(
  device: BlockDevice,
  options: Options
): Effect.fn.Return<WaitingCache, StorageError.StorageError, Scope.Scope> {
  const { blockSize, dontNeedAt, needAt } = options
  const size = device.size
  const localName = `waiting-cache(${device.name})`
  const remoteName = `waiting-cache-remote(${device.name})`
  if (!(Number.isSafeInteger(blockSize) && blockSize > 0)) {
    return yield* StorageError.make(
      localName,
      new StorageError.Unsupported({ detail: `block size must be a positive whole number, got ${blockSize}` })
    )
  }
  const numBlocks = Blocks.count(size, blockSize)
  const localAvailable = new Bitfield(numBlocks)
  const remoteAvailable = new Bitfield(numBlocks)
  // Set once any block is local-available: until then a remote write needs no per-block check.
  let anyLocal = false
  const waiters = new Map<number, Deferred.Deferred<void, StorageError.StorageError>>()
  const remoteFlights = new Set<Flight>()
  const localFlights = new Set<Flight>()
  let closed = false
  const closedLocal = Effect.fail(StorageError.make(localName, new StorageError.Closed()))
  const closedRemote = Effect.fail(StorageError.make(remoteName, new StorageError.Closed()))
  const counters = {
    waitForBlock: 0,
    hadRemote: 0,
    hadLocal: 0,
    waitForBlockTimeNs: 0,
    lock: 0,
    lockDone: 0,
    markAvailableLocal: 0,
    markAvailableRemote: 0
  }

  yield* Effect.addFinalizer(() =>
    Effect.sync(() => {
      closed = true
      for (const waiter of waiters.values()) Deferred.doneUnsafe(waiter, closedLocal)
      waiters.clear()
    })
  )

  /** Releases the waiters of blocks `[first, end)`, which have just become available. */
  const wake = (first: number, end: number): void => {
    if (waiters.size === 0) return
    if (end - first <= waiters.size) {
      for (let block = first; block < end; block++) release(block)
    } else {
      for (const block of waiters.keys()) if (block >= first && block < end) release(block)
    }
  }
  const release = (block: number): void => {
    const waiter = waiters.get(block)
    if (waiter === undefined) return
    waiters.delete(block)
    counters.lockDone++
    Deferred.doneUnsafe(waiter, Effect.void)
  }

  const markRemote = (first: number, end: number): void => {
    if (end <= first) return
    remoteAvailable.setRange(first, end)
    counters.markAvailableRemote += end - first
    wake(first, end)
  }

  const waitFor = Effect.fnUntraced(function*(gather: Gather) {
    const start = yield* Clock.currentTimeNanos
    if (needAt !== undefined) {
      for (const block of gather.needs) yield* needAt(block * blockSize, blockSize)
    }
    for (const wait of gather.waits) yield* Deferred.await(wait)
    counters.waitForBlockTimeNs += Number((yield* Clock.currentTimeNanos) - start)
  })

  /**
   * Checks `block` and, in the same synchronous step as the caller's other checks (so no marking can slip in
   * between), joins or starts a wait for it when it is missing. Misses accumulate in `gather`, made on the first.
   */
  const check = (block: number, gather: Gather | undefined): Gather | undefined => {
    if (localAvailable.has(block)) {
      counters.hadLocal++
      return gather
    }
    if (remoteAvailable.has(block)) {
      counters.hadRemote++
      return gather
    }
    counters.waitForBlock++
    gather ??= { needs: [], waits: [] }
    let waiter = waiters.get(block)
    if (waiter === undefined) {
      waiter = Deferred.makeUnsafe<void, StorageError.StorageError>()
      waiters.set(block, waiter)
      counters.lock++
      gather.needs.push(block)
    }
    gather.waits.push(waiter)
    return gather
  }

  const isLocal = (block: number): boolean => {
    if (localAvailable.has(block)) return true
    for (const flight of localFlights) if (block >= flight.first && block < flight.end) return true
    return false
  }

  /**
   * The device writes of a remote write: the whole range when no block is local, otherwise one write per run
   * of blocks the application has not written, each cut to the bytes of the range inside that run.
   */
  const remoteWrites = (
    data: Uint8Array,
    offset: number,
    stop: number,
    first: number,
    end: number
  ): Effect.Effect<unknown, StorageError.StorageError> => {
    if (!anyLocal && localFlights.size === 0) return device.writeAt(data, offset)
    const writes: Array<Effect.Effect<number, StorageError.StorageError>> = []
    const run = (from: number, to: number) => {
      const start = Math.max(offset, from * blockSize)
      const finish = Math.min(stop, to * blockSize)
      writes.push(device.writeAt(data.subarray(start - offset, finish - offset), start))
    }
    let runStart = -1
    for (let block = first; block < end; block++) {
      if (isLocal(block)) {
        if (runStart >= 0) run(runStart, block)
        runStart = -1
      } else if (runStart < 0) {
        runStart = block
      }
    }
    if (runStart >= 0) run(runStart, end)
    if (writes.length === 1) return writes[0]!
    return Effect.forEach(writes, (write) => write, { discard: true })
  }

  const remote: Remote = {
    name: remoteName,
    size,
    readAt: () =>
      Effect.fail(
        StorageError.make(
          remoteName,
          new StorageError.Unsupported({ detail: "the migration side of a waiting cache cannot be read" })
        )
      ),
    writeAt: (data, offset) =>
      Effect.suspend((): Effect.Effect<number, StorageError.StorageError> => {
        if (closed) return closedRemote
        const clipped = clip(remoteName, size, offset, data.length)
        if (Result.isFailure(clipped)) return Effect.fail(clipped.failure)
        const n = clipped.success
        if (n === 0) return Effect.succeed(0)
        const { end, first } = Blocks.touched(offset, n, size, blockSize)
        const whole = Blocks.covered(offset, n, size, blockSize)
        const flight: Flight = { first, end, done: undefined }
        remoteFlights.add(flight)
        return remoteWrites(data, offset, offset + n, first, end).pipe(
          Effect.onExit((exit) =>
            Effect.sync(() => {
              remoteFlights.delete(flight)
              if (flight.done !== undefined) Deferred.doneUnsafe(flight.done, Effect.void)
              if (Exit.isSuccess(exit)) markRemote(whole.first, whole.end)
            })
          ),
          Effect.as(n)
        )
      }),
    flush: Effect.suspend(() => closed ? closedRemote : device.flush),
    cancelWrites: device.cancelWrites,
    markAvailable: (offset, length) =>
      Effect.suspend(() => {
        if (closed) return closedRemote
        const clipped = clip(remoteName, size, offset, length)
        if (Result.isFailure(clipped)) return Effect.fail(clipped.failure)
        const whole = Blocks.covered(offset, clipped.success, size, blockSize)
        markRemote(whole.first, whole.end)
        return Effect.void
      })
  }

  /** The device write of a local write, once its partial blocks are there. */
  const localWrite = (
    data: Uint8Array,
    offset: number,
    first: number,
    end: number,
    whole: { readonly first: number; readonly end: number }
  ): Effect.Effect<number, StorageError.StorageError> =>
    Effect.suspend(() => {
      const flight: Flight = { first, end, done: undefined }
      localFlights.add(flight)
      let conflicts: Array<Deferred.Deferred<void>> | undefined
      for (const other of remoteFlights) {
        if (other.first < end && first < other.end) (conflicts ??= []).push(other.done ??= Deferred.makeUnsafe())
      }
      const write = device.writeAt(data, offset)
      const written = (conflicts === undefined
        ? write
        : Effect.andThen(Effect.forEach(conflicts, Deferred.await, { discard: true }), write)).pipe(
          Effect.onExit((exit) =>
            Effect.sync(() => {
              // Marked in the same step as the flight ends, so no remote write can slip into these blocks.
              localFlights.delete(flight)
              if (Exit.isFailure(exit)) return
              localAvailable.setRange(first, end)
              anyLocal = true
              counters.markAvailableLocal += end - first
              wake(first, end)
            })
          )
        )
      return dontNeedAt === undefined || whole.end === whole.first
        ? written
        : Effect.tap(written, () => dontNeedAt(whole.first * blockSize, (whole.end - whole.first) * blockSize))
    })

  const local: Local = {
    name: localName,
    size,
    readAt: (buffer, offset) =>
      Effect.suspend((): Effect.Effect<number, StorageError.StorageError> => {
        if (closed) return closedLocal
        const clipped = clip(localName, size, offset, buffer.length)
        if (Result.isFailure(clipped)) return Effect.fail(clipped.failure)
        if (clipped.success === 0) return Effect.succeed(0)
        const { end, first } = Blocks.touched(offset, clipped.success, size, blockSize)
        let gather: Gather | undefined
        for (let block = first; block < end; block++) gather = check(block, gather)
        const read = device.readAt(buffer, offset)
        return gather === undefined ? read : Effect.andThen(waitFor(gather), read)
      }),
    writeAt: (data, offset) =>
      Effect.suspend((): Effect.Effect<number, StorageError.StorageError> => {
        if (closed) return closedLocal
        const clipped = clip(localName, size, offset, data.length)
        if (Result.isFailure(clipped)) return Effect.fail(clipped.failure)
        const n = clipped.success
        if (n === 0) return Effect.succeed(0)
        const { end, first } = Blocks.touched(offset, n, size, blockSize)
        const whole = Blocks.covered(offset, n, size, blockSize)
        // Touched but not covered: at most the first and the last block, whose other bytes come from the source.
        let gather: Gather | undefined
        if (first < whole.first || whole.first === whole.end) gather = check(first, gather)
        if (end - 1 !== first && (whole.end < end || whole.first === whole.end)) gather = check(end - 1, gather)
        const write = localWrite(data, offset, first, end, whole)
        return gather === undefined ? write : Effect.andThen(waitFor(gather), write)
      }),
    flush: Effect.suspend(() => closed ? closedLocal : device.flush),
    cancelWrites: device.cancelWrites,
    dirtyBlocks: (blocks) =>
      Effect.sync(() => {
        for (const block of blocks) {
          if (Number.isInteger(block) && block >= 0 && block < numBlocks) remoteAvailable.clear(block)
        }
      }),
    availability: Effect.sync(() => ({ available: remoteAvailable.count(), total: numBlocks })),
    present: Effect.sync(() => {
      const present = remoteAvailable.clone()
      for (let i = 0; i < present.words.length; i++) present.words[i] = present.words[i]! | localAvailable.words[i]!
      return present
    }),
    waiting: Effect.sync(() => [...waiters.keys()].toSorted((a, b) => a - b)),
    metrics: Effect.sync(() => ({
      ...counters,
      availableLocal: localAvailable.count(),
      availableRemote: remoteAvailable.count()
    }))
  }

  return { local, remote }
})
