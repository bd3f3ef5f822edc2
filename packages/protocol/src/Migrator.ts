/**
 * The migrator copies a live block device to a destination (Silo's `migrator`). It reads blocks from the
 * source through the dirty tracker's remote side, which arms tracking, so every block written after it was sent
 * shows up in the next dirty round; it writes them to any `BlockDevice` (a `ToProtocol` device, a waiting
 * cache's remote side, a memory device). A `BlockOrder` decides which block goes next.
 *
 * The canonical migration (`run`): hand every block out (`migrate`), wait for them (`waitForCompletion`), then
 * repeat dirty rounds (`getLatestDirty`, tell the destination, `migrateDirty`, wait) until a round finds nothing
 * dirty. That last round leaves the source locked, so nothing can change any more and the destination is exact.
 *
 * How the work runs: each block type (`BlockType`) has a lane with a semaphore of its concurrency limit. Handing
 * a block out takes a permit (waiting while the lane is full) and queues the block; a few worker fibers per lane,
 * at most its limit, take blocks off the queue one after another. So the number of fibers is bounded by the
 * limits, not by the device size, and `migrate` returns as soon as the blocks are handed out. One block is never
 * moved twice at the same time: a re-send waits for the send in flight, so the newer read lands last.
 *
 * Differences from Silo, on purpose:
 * - A block whose read fails or comes back short, or whose destination write fails or is cut short, is a
 *   `MigrationError` that `waitForCompletion` and `run` fail with (Silo only calls an error handler and always
 *   reports success). The first failure stops the migration: nothing more is handed out or started, because
 *   the destination is incomplete whatever happens next. Nothing is retried.
 * - `migrateDirty` with `dedupeWrites` skips a block whose re-send is still waiting to start and goes on with
 *   the rest of the list (Silo returns and drops the rest).
 * - `setMigratedBlock` also arms tracking for the block and takes it out of the order, so a block declared
 *   present at the destination is never sent in bulk yet is still re-sent once it is written.
 *
 * Time (progress rate limit, recent-write age, the final round's duration) comes from the `Clock` of the
 * context the migrator was made in.
 *
 * @since 0.1.0
 */
import { Bitfield } from "@tessera/storage/Bitfield"
import * as BlockOrder from "@tessera/storage/BlockOrder"
import * as Blocks from "@tessera/storage/Blocks"
import type * as DirtyTracker from "@tessera/storage/DirtyTracker"
import type { BlockDevice } from "@tessera/storage/Provider"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberSet from "effect/FiberSet"
import type * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import { createHash } from "node:crypto"
import * as MigrationError from "./MigrationError.ts"
import * as MigrationProgress from "./MigrationProgress.ts"

/**
 * The name of a block type, as used in `Options.concurrency`.
 *
 * @since 0.1.0
 * @category models
 */
export type BlockTypeName = keyof typeof BlockOrder.BlockType

/**
 * Blocks moved at the same time, per block type (Silo's defaults). `Any` is for blocks an order hands out with
 * no particular type.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultConcurrency: Readonly<Record<BlockTypeName, number>> = {
  Any: 32,
  Standard: 32,
  Dirty: 100,
  Priority: 16
}

/**
 * How to build a migrator.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The source, as the dirty tracker's remote side: every block is read through it, which arms tracking. */
  readonly source: DirtyTracker.Remote
  /**
   * Where the blocks go; must be the size of the source. The buffer a block was written from is reused for
   * another block once `writeAt` succeeded, so the device must be done with it by then (as every device is).
   */
  readonly destination: BlockDevice
  /** Decides which block goes next; fill it (`addAll`) before `migrate`. */
  readonly order: BlockOrder.BlockOrder
  /** The migration unit in bytes; the last block of the device may be short. */
  readonly blockSize: number
  /** Blocks moved at the same time per block type; a type not given keeps its `defaultConcurrency`. */
  readonly concurrency?: Partial<Record<BlockTypeName, number>> | undefined
  /** Pauses writers on the source (for example `Lockable.lock` above the tracker); default: nothing. */
  readonly lock?: Effect.Effect<void> | undefined
  /** Lets writers on the source continue; default: nothing. */
  readonly unlock?: Effect.Effect<void> | undefined
  /** Keeps the sha256 of every block as sent, for `hashes` (Silo's `SendHashes`). Default false. */
  readonly integrity?: boolean | undefined
  /**
   * Before re-sending a dirty block whose last send succeeded within `recentWriteAge`, asks the destination to
   * cancel writes still in flight for it (they carry older data). Default false.
   */
  readonly cancelWrites?: boolean | undefined
  /** Skips a dirty block whose previous re-send has not started yet (it will read the newer data). Default false. */
  readonly dedupeWrites?: boolean | undefined
  /** How recent a send must be for `cancelWrites`. Default 1 minute. */
  readonly recentWriteAge?: Duration.Input | undefined
  /** Called with progress at most once per `progressInterval`, and always when `waitForCompletion` ends. */
  readonly onProgress?: ((progress: MigrationProgress.MigrationProgress) => Effect.Effect<void>) | undefined
  /** Minimum time between two progress reports. Default 100 ms. */
  readonly progressInterval?: Duration.Input | undefined
}

/**
 * A running migration.
 *
 * @since 0.1.0
 * @category models
 */
export interface Migrator {
  /** The migration unit in bytes. */
  readonly blockSize: number
  /** Blocks of the device. */
  readonly totalBlocks: number
  /**
   * Hands out up to `count` blocks from the order (fewer when the order runs out; `Infinity` for all of them),
   * waiting whenever a block type's lane is full, and returns once they are handed out, before they are moved.
   * Does nothing after a block has failed or the scope has closed.
   */
  readonly migrate: (count: number) => Effect.Effect<void>
  /**
   * Waits until every block handed out so far has been moved, reports progress, and fails with the first block
   * error of the migration (or `Closed` once the scope has closed). It waits as long as the destination's
   * writes take: a destination across a network bounds its own writes (a response timeout), or the caller adds
   * a timeout here.
   */
  readonly waitForCompletion: Effect.Effect<void, MigrationError.MigrationError>
  /**
   * Locks the source and takes the dirty set. When blocks are dirty, unlocks the source and returns them; when
   * none is, returns `undefined` and leaves the source locked: nothing is dirty and nothing can write.
   */
  readonly getLatestDirty: Effect.Effect<Bitfield | undefined>
  /**
   * Re-sends `blocks` as `Dirty` blocks, waiting while their lane is full, and returns once they are handed out.
   * Blocks outside the device are ignored.
   */
  readonly migrateDirty: (blocks: Iterable<number>) => Effect.Effect<void>
  /**
   * Declares `block` present at the destination without sending it (for a destination that starts with the
   * same bytes, such as zeros): takes it out of the order, arms tracking for it so a later write still makes it
   * dirty, and counts it as migrated. Call it before writers can change the block. Ignored outside the device.
   */
  readonly setMigratedBlock: (block: number) => Effect.Effect<void>
  /** Lets writers on the source continue (after the final round, when the migration is handed over). */
  readonly unlock: Effect.Effect<void>
  /** A snapshot of the counters. */
  readonly progress: Effect.Effect<MigrationProgress.MigrationProgress>
  /** The sha256 of each block as last sent; empty unless `integrity` is on. */
  readonly hashes: Effect.Effect<ReadonlyMap<number, Uint8Array>>
  /** A copy of the set of blocks sent at least once (or declared with `setMigratedBlock`). */
  readonly migratedBlocks: Effect.Effect<Bitfield>
}

/** The blocks of one block type: its permits, its queue and how many workers drain the queue now. */
interface Lane {
  readonly limit: number
  readonly permits: Semaphore.Semaphore
  readonly queue: Array<Job>
  workers: number
}

/** A block to move; `resend` when it came from `migrateDirty`. */
interface Job {
  readonly block: number
  readonly resend: boolean
}

const typeNames = Object.keys(BlockOrder.BlockType) as ReadonlyArray<BlockTypeName>

const invalid = (detail: string) => MigrationError.make(new MigrationError.InvalidConfig({ detail }))

const sha256 = (bytes: Uint8Array): Uint8Array => new Uint8Array(createHash("sha256").update(bytes).digest())

/**
 * Builds a migrator over `options.source` and `options.destination`; its workers stop when the scope closes.
 * Fails with `InvalidConfig` when the block size or a concurrency limit is not a positive whole number, or when
 * the two devices differ in size.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fn("Migrator.make")(function*(
  options: Options
): Effect.fn.Return<Migrator, MigrationError.MigrationError, Scope.Scope> {
  const { blockSize, destination, order, source } = options
  if (!(Number.isSafeInteger(blockSize) && blockSize > 0)) {
    return yield* invalid(`block size must be a positive whole number, got ${blockSize}`)
  }
  if (destination.size !== source.size) {
    return yield* invalid(`the destination has ${destination.size} bytes, the source ${source.size}`)
  }
  const limits = { ...defaultConcurrency, ...options.concurrency }
  for (const name of typeNames) {
    if (!(Number.isSafeInteger(limits[name]) && limits[name] > 0)) {
      return yield* invalid(`concurrency for ${name} must be a positive whole number, got ${limits[name]}`)
    }
  }

  const clock = yield* Clock.Clock
  const workers = yield* FiberSet.make()
  // Forks synchronously, so a block can be queued and its worker started in one step.
  const spawn = yield* FiberSet.runtime(workers)<never>()
  const size = source.size
  const totalBlocks = Blocks.count(size, blockSize)
  const lock = options.lock ?? Effect.void
  const unlock = options.unlock ?? Effect.void
  const integrity = options.integrity ?? false
  const cancelWrites = options.cancelWrites ?? false
  const dedupeWrites = options.dedupeWrites ?? false
  const recentWriteAge = Duration.toMillis(options.recentWriteAge ?? Duration.minutes(1))
  const onProgress = options.onProgress
  const progressInterval = Duration.toMillis(options.progressInterval ?? Duration.millis(100))

  const lanes = new Map<BlockOrder.BlockType, Lane>()
  for (const name of typeNames) {
    const limit = limits[name]
    lanes.set(BlockOrder.BlockType[name], { limit, permits: yield* Semaphore.make(limit), queue: [], workers: 0 })
  }
  const laneOf = (type: BlockOrder.BlockType): Lane => lanes.get(type)!

  const migrated = new Bitfield(totalBlocks)
  const clean = new Bitfield(totalBlocks)
  // When each block was last sent successfully, only kept for `cancelWrites`.
  const lastSent = cancelWrites ? new Float64Array(totalBlocks).fill(Number.NEGATIVE_INFINITY) : undefined
  const hashes = new Map<number, Uint8Array>()
  // Blocks being moved now, each with the wait of a job that found it busy (made only when one does).
  const moving = new Map<number, Deferred.Deferred<void> | undefined>()
  // Re-sends handed over whose move has not started, per block: they will read the newest data anyway.
  const waitingResends = new Map<number, number>()
  const counters = { active: 0, canceled: 0, sent: 0, duplicated: 0 }
  // Blocks handed out (queued or waiting for a permit) and not yet finished, and whoever waits for none.
  let outstanding = 0
  let idle: Deferred.Deferred<void, MigrationError.MigrationError> | undefined
  let failure: Cause.Cause<MigrationError.MigrationError> | undefined
  let closed = false
  let lastReport = Number.NEGATIVE_INFINITY

  const closedError = MigrationError.make(new MigrationError.Closed())
  yield* Effect.addFinalizer(() =>
    Effect.sync(() => {
      closed = true
      const waiting = idle
      idle = undefined
      if (waiting !== undefined) Deferred.doneUnsafe(waiting, Effect.fail(closedError))
    })
  )

  const inside = (block: number) => Number.isInteger(block) && block >= 0 && block < totalBlocks
  const stopped = () => closed || failure !== undefined

  const snapshot = (): MigrationProgress.MigrationProgress => {
    const migratedBlocks = migrated.count()
    const readyBlocks = clean.count()
    return {
      blockSize,
      totalBlocks,
      migratedBlocks,
      migratedBlocksPerc: MigrationProgress.percent(migratedBlocks, totalBlocks),
      readyBlocks,
      readyBlocksPerc: MigrationProgress.percent(readyBlocks, totalBlocks),
      activeBlocks: counters.active,
      totalCanceledBlocks: counters.canceled,
      totalMigratedBlocks: counters.sent,
      totalDuplicatedBlocks: counters.duplicated
    }
  }

  const report = (force: boolean): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (onProgress === undefined) return Effect.void
      const now = clock.currentTimeMillisUnsafe()
      if (!force && now - lastReport < progressInterval) return Effect.void
      lastReport = now
      return onProgress(snapshot())
    })

  /** One handed-out block is finished (moved, failed, skipped or never queued). */
  const settle = () => {
    outstanding--
    if (outstanding === 0 && idle !== undefined) {
      // Detach before completing: completing can resume a waiter at once, and a waiter that starts the next round
      // and waits again must get a fresh Deferred, not this completed one.
      const done = idle
      idle = undefined
      Deferred.doneUnsafe(done, Effect.void)
    }
  }

  /** Keeps the first failure of the migration (a defect too); interruption is the scope closing, not a failure. */
  const record = (exit: Exit.Exit<unknown, MigrationError.MigrationError>) => {
    if (Exit.isFailure(exit) && failure === undefined && !Cause.hasInterruptsOnly(exit.cause)) failure = exit.cause
  }

  /** One waiting re-send of `block` has started or been given back. */
  const unwait = (block: number) => {
    const left = waitingResends.get(block)! - 1
    if (left === 0) waitingResends.delete(block)
    else waitingResends.set(block, left)
  }

  // Block buffers whose write was acknowledged, for the next moves: a fresh buffer per block costs zeroing,
  // first-touch page faults and garbage collection, which measured as about half of the source's CPU time. A
  // buffer is only given back after a successful write, when the destination no longer holds it (a ToProtocol
  // device sends it by reference, and the response proves it left); after a failure it is left to the collector.
  // At most as many buffers exist as blocks are moved at once.
  const freeBuffers: Array<Uint8Array> = []

  /** Reads the block through the tracker and writes it to the destination. */
  const move = (block: number): Effect.Effect<void, MigrationError.MigrationError> => {
    const { length, offset } = Blocks.range(block, size, blockSize)
    const pooled = length === blockSize
    const buffer = (pooled ? freeBuffers.pop() : undefined) ?? new Uint8Array(length)
    return source.readAt(buffer, offset).pipe(
      Effect.mapError((cause) => MigrationError.make(new MigrationError.ReadFailed({ block, cause }))),
      Effect.flatMap((read) =>
        read === length
          ? Effect.mapError(
            destination.writeAt(buffer, offset),
            (cause) => MigrationError.make(new MigrationError.WriteFailed({ block, cause }))
          )
          : Effect.fail(
            MigrationError.make(new MigrationError.ShortRead({ block, expected: length, actual: read }))
          )
      ),
      Effect.flatMap((written) => {
        if (written !== length) {
          return Effect.fail(
            MigrationError.make(new MigrationError.ShortWrite({ block, expected: length, actual: written }))
          )
        }
        counters.sent++
        migrated.set(block)
        // A re-send still waiting means a newer copy is on its way, so this one is not the latest.
        if (!waitingResends.has(block)) clean.set(block)
        if (lastSent !== undefined) lastSent[block] = clock.currentTimeMillisUnsafe()
        if (integrity) hashes.set(block, sha256(buffer))
        if (pooled) freeBuffers.push(buffer)
        return Effect.void
      })
    )
  }

  /** Moves one queued job, after any move of the same block in flight, and returns its lane's permit. */
  const runJob = (lane: Lane, job: Job): Effect.Effect<void> =>
    Effect.suspend((): Effect.Effect<void> => {
      const { block } = job
      if (moving.has(block)) {
        let done = moving.get(block)
        if (done === undefined) moving.set(block, done = Deferred.makeUnsafe())
        return Effect.andThen(Deferred.await(done), runJob(lane, job))
      }
      if (job.resend) unwait(block)
      if (stopped()) {
        settle()
        return lane.permits.release(1)
      }
      moving.set(block, undefined)
      counters.active++
      return move(block).pipe(
        Effect.onExit((exit) => {
          counters.active--
          const done = moving.get(block)
          moving.delete(block)
          if (done !== undefined) Deferred.doneUnsafe(done, Effect.void)
          record(exit)
          settle()
          return lane.permits.release(1)
        }),
        Effect.andThen(report(false)),
        // Outcomes are recorded, not raised: the worker goes on with its queue whatever happened, so no job is
        // stranded (after a failure the rest are only settled).
        Effect.onExit((exit) => Effect.sync(() => record(exit))),
        Effect.exit
      )
    })

  /** A lane's worker: moves queued jobs one after another and ends when the queue is empty. */
  const work = (lane: Lane): Effect.Effect<void> =>
    Effect.suspend(() => {
      const job = lane.queue.shift()
      if (job === undefined) {
        lane.workers--
        return Effect.void
      }
      return Effect.andThen(runJob(lane, job), work(lane))
    })

  /**
   * Takes a permit of `lane` for `job` and queues it, starting a worker when the lane has fewer than its limit.
   * If the wait for the permit is interrupted, `giveBack` undoes the hand-out.
   */
  const handOut = (lane: Lane, job: Job, giveBack: () => void): Effect.Effect<void> =>
    Effect.uninterruptibleMask((restore) => {
      outstanding++
      return Effect.onExit(restore(lane.permits.take(1)), (exit) =>
        Effect.sync(() => {
          if (Exit.isFailure(exit)) {
            giveBack()
            settle()
            return
          }
          lane.queue.push(job)
          if (lane.workers < lane.limit) {
            lane.workers++
            spawn(work(lane))
          }
        }))
    })

  const migrate = Effect.fn("Migrator.migrate")(function*(count: number) {
    for (let handed = 0; handed < count && !stopped(); handed++) {
      const { block, type } = order.next()
      if (block === BlockOrder.Finish.block) return
      yield* handOut(laneOf(type), { block, resend: false }, () => order.add(block))
    }
  })

  const dirtyLane = laneOf(BlockOrder.BlockType.Dirty)
  const migrateDirty = Effect.fn("Migrator.migrateDirty")(function*(blocks: Iterable<number>) {
    for (const block of blocks) {
      if (stopped()) return
      if (!inside(block)) continue
      if (lastSent !== undefined && clock.currentTimeMillisUnsafe() - lastSent[block]! < recentWriteAge) {
        const { length, offset } = Blocks.range(block, size, blockSize)
        yield* destination.cancelWrites(offset, length)
        counters.canceled++
      }
      if (dedupeWrites && waitingResends.has(block)) {
        counters.duplicated++
        continue
      }
      clean.clear(block)
      waitingResends.set(block, (waitingResends.get(block) ?? 0) + 1)
      yield* handOut(dirtyLane, { block, resend: true }, () => unwait(block))
    }
  })

  const waitForCompletion: Effect.Effect<void, MigrationError.MigrationError> = Effect.suspend(() => {
    if (closed) return Effect.fail(closedError)
    if (outstanding === 0) return Effect.void
    return Deferred.await(idle ??= Deferred.makeUnsafe())
  }).pipe(
    Effect.andThen(report(true)),
    Effect.andThen(Effect.suspend(() => failure === undefined ? Effect.void : Effect.failCause(failure))),
    Effect.withSpan("Migrator.waitForCompletion")
  )

  const getLatestDirty: Effect.Effect<Bitfield | undefined> = Effect.gen(function*() {
    yield* lock
    const dirty = yield* source.sync
    if (dirty.count() === 0) return undefined
    yield* unlock
    return dirty
  }).pipe(Effect.withSpan("Migrator.getLatestDirty"))

  const setMigratedBlock = Effect.fn("Migrator.setMigratedBlock")(function*(block: number) {
    if (!inside(block)) return
    const { length, offset } = Blocks.range(block, size, blockSize)
    yield* source.trackAt(offset, length)
    order.remove(block)
    migrated.set(block)
    clean.set(block)
  })

  const migrator: Migrator = {
    blockSize,
    totalBlocks,
    migrate,
    waitForCompletion,
    getLatestDirty,
    migrateDirty,
    setMigratedBlock,
    unlock,
    progress: Effect.sync(snapshot),
    hashes: Effect.sync(() => new Map(hashes)),
    migratedBlocks: Effect.sync(() => migrated.clone())
  }
  return migrator
})

/**
 * Hooks for `run`.
 *
 * @since 0.1.0
 * @category models
 */
export interface RunOptions<E> {
  /**
   * Called with each round's dirty blocks before they are re-sent (Silo's DirtyList): a destination behind a
   * waiting cache must forget them first, so that its readers wait for the fresh copies. Its failure ends `run`.
   */
  readonly onDirty?: ((blocks: Bitfield) => Effect.Effect<void, E>) | undefined
}

/**
 * What `run` did.
 *
 * @since 0.1.0
 * @category models
 */
export interface RunSummary {
  /** Block writes of the bulk copy. */
  readonly blocksSent: number
  /** Block writes of the dirty rounds. */
  readonly blocksResent: number
  /** Dirty rounds that found something to re-send. */
  readonly dirtyRounds: number
  /**
   * The final round: from taking the lock for the round that found nothing dirty until its last block landed.
   * The source stays locked from then on, so this is the writers' pause at the end of the migration.
   */
  readonly finalRound: Duration.Duration
}

/**
 * The canonical migration: hands out every block of the order, waits for them, then runs dirty rounds
 * (`getLatestDirty`, `onDirty`, `migrateDirty`, wait) until a round finds nothing dirty, and waits for the last
 * blocks. The source is left locked; call `migrator.unlock` to let writers continue.
 *
 * Each round waits for its re-sends before the next one locks, so the final lock finds nothing in flight and
 * holds writers for as short a time as possible. The rounds end only once writers let a round go by without a
 * write; bound the whole run with a timeout where writers may never pause.
 *
 * @since 0.1.0
 * @category combinators
 */
export const run: <E = never>(
  migrator: Migrator,
  options?: RunOptions<E>
) => Effect.Effect<RunSummary, MigrationError.MigrationError | E> = Effect.fn("Migrator.run")(
  function*<E>(migrator: Migrator, options?: RunOptions<E>) {
    yield* migrator.migrate(Number.POSITIVE_INFINITY)
    yield* migrator.waitForCompletion
    const blocksSent = (yield* migrator.progress).totalMigratedBlocks
    let dirtyRounds = 0
    for (;;) {
      const start = yield* Clock.currentTimeMillis
      const dirty = yield* migrator.getLatestDirty
      if (dirty === undefined) {
        yield* migrator.waitForCompletion
        const end = yield* Clock.currentTimeMillis
        const blocksResent = (yield* migrator.progress).totalMigratedBlocks - blocksSent
        return { blocksSent, blocksResent, dirtyRounds, finalRound: Duration.millis(end - start) }
      }
      dirtyRounds++
      if (options?.onDirty !== undefined) yield* options.onDirty(dirty)
      yield* migrator.migrateDirty(dirty)
      yield* migrator.waitForCompletion
    }
  }
)
