/**
 * The two halves of `tessera demo`, each a process of its own: the source (a memory device of pseudo-random
 * bytes, written to while it migrates) and the destination (receives it, and reads it while it arrives). With
 * `json` each prints the JSON lines of `demoEvents.ts` on standard output for the parent demo; otherwise it
 * draws progress and prints a short result for a person running the halves by hand.
 */
import * as Address from "@tessera/protocol/Address"
import * as MigrationDestination from "@tessera/protocol/MigrationDestination"
import * as MigrationSource from "@tessera/protocol/MigrationSource"
import * as PacketConnection from "@tessera/protocol/PacketConnection"
import type * as ToProtocol from "@tessera/protocol/ToProtocol"
import * as Transport from "@tessera/protocol/Transport"
import * as Device from "@tessera/storage/Device"
import * as Memory from "@tessera/storage/Memory"
import type { BlockDevice } from "@tessera/storage/Provider"
import * as StorageError from "@tessera/storage/StorageError"
import type * as WaitingCache from "@tessera/storage/WaitingCache"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Hex from "effect/encoding/Hex"
import * as Fiber from "effect/Fiber"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import { OperationFailed } from "../CliFailure.ts"
import { formatBytes, lazyBar, Progress } from "../Progress.ts"
import * as Events from "./demoEvents.ts"

const MiB = 1024 * 1024

/** Bytes of one application write at the source. */
export const WRITE_SIZE = 4096
/** Bytes of one application read at the destination. */
export const READ_SIZE = 4096
/** Blocks in flight from the source. */
const CONCURRENCY = 8
/** A dirty round of at most this many blocks is the final, locked one. */
const FINAL_ROUND_BLOCKS = 4
/** Dirty rounds with writers free before the final round holds them whatever its size. */
const MAX_DIRTY_ROUNDS = 10
/** How often the halves report progress. */
const PROGRESS_INTERVAL = Duration.millis(200)
/** How long either half waits for the other to come back after the connection broke. */
const RESUME_TIMEOUT = Duration.seconds(10)

const failed = (error: { readonly message: string }) => new OperationFailed({ message: error.message })

/** A uniformly random offset for an access of `length` bytes inside a device of `size` bytes. */
const randomOffset = (size: number, length: number) => Math.floor(Math.random() * (size - length + 1))

/**
 * Repeats `effect` `rate` times a second (a positive rate) for ever: at a fixed cadence, so a slow run (a read
 * that waits for its block, a write held by the final round) is followed by the next at once, not a burst.
 */
const atRate = <E, R>(rate: number, effect: Effect.Effect<void, E, R>): Effect.Effect<never, E, R> =>
  Effect.andThen(Effect.repeat(effect, Schedule.fixed(Duration.millis(1000 / rate))), Effect.never)

/**
 * Options of the source half.
 */
export interface SourceOptions {
  readonly listen: Address.Address
  readonly size: number
  readonly blockSize: number
  readonly writeRate: number
  readonly compression: ToProtocol.Compression
  readonly seed: string
  readonly json: boolean
}

/**
 * The source half: fills a memory device from the seed, listens, migrates it to the first destination that
 * connects while a writer fiber writes `WRITE_SIZE` random bytes at random offsets `writeRate` times a second
 * through the migration's writer, then prints the sha256 of the device and what the migration did.
 */
export const runSource = Effect.fn("demo.source")(function*(options: SourceOptions) {
  const { blockSize, json, size } = options
  const progress = yield* Progress
  const emit = (event: Events.SourceEvent, text?: string) =>
    json ? Console.log(Events.encode(event)) : text === undefined ? Effect.void : progress.log(text)

  const device = yield* Memory.make(size, "demo-source")
  yield* Device.fillPseudoRandom(device, options.seed).pipe(Effect.mapError(failed))
  // The migration, with its progress bar, in a scope of its own: the bar is finished before the result prints.
  const completed = yield* Effect.scoped(Effect.gen(function*() {
    let writes = 0
    const bar = json ? undefined : yield* lazyBar({ label: "source", total: size })
    const source = yield* MigrationSource.make([{ name: "demo", device, blockSize }], {
      compression: options.compression,
      concurrency: CONCURRENCY,
      finalRoundBlocks: FINAL_ROUND_BLOCKS,
      maxDirtyRounds: MAX_DIRTY_ROUNDS,
      progressInterval: PROGRESS_INTERVAL,
      onProgress: ({ migration, phase }) =>
        bar === undefined
          ? emit({
            event: "progress",
            phase,
            ready: migration.readyBlocks,
            migrated: migration.migratedBlocks,
            total: migration.totalBlocks,
            sent: migration.totalMigratedBlocks,
            writes
          })
          : bar.update(
            Math.min(size, migration.migratedBlocks * blockSize),
            Events.sourceDetail(phase, migration.totalMigratedBlocks - migration.migratedBlocks, writes)
          )
    }).pipe(Effect.mapError(failed))

    const listener = yield* Transport.listen(options.listen).pipe(Effect.mapError(failed))
    const address = Address.format(listener.address)
    yield* emit(
      {
        event: "listening",
        address,
        size,
        blockSize,
        compression: options.compression,
        writeRate: options.writeRate
      },
      `source: ${formatBytes(size)} of pseudo-random bytes, listening on ${address}` +
        ` (run: tessera demo destination --from ${address})`
    )

    // The writer starts with the first connection and keeps going until the migration is complete (its writes
    // wait while the final round holds the writers, and after it).
    const connected = yield* Deferred.make<number>()
    const writer = source.writers[0]!
    const length = Math.min(WRITE_SIZE, size)
    const writeOnce = Effect.gen(function*() {
      const data = globalThis.crypto.getRandomValues(new Uint8Array(length))
      yield* writer.writeAt(data, randomOffset(size, length))
      writes++
    })
    const writing = yield* Effect.forkScoped(
      options.writeRate > 0
        ? Effect.andThen(
          Deferred.await(connected),
          atRate(options.writeRate, writeOnce)
        )
        : Effect.never
    )
    const next = Effect.flatMap(listener.accept, (stream) => PacketConnection.make([stream])).pipe(
      Effect.tap(() => Effect.flatMap(Clock.currentTimeMillis, (now) => Deferred.succeed(connected, now)))
    )
    // The writer never ends by itself: this is the migration, unless a write fails first.
    const summary = yield* Effect.raceFirst(
      source.serve(next, { resumeTimeout: RESUME_TIMEOUT }),
      Fiber.join(writing)
    ).pipe(Effect.mapError(failed))
    yield* Fiber.interrupt(writing)
    const seconds = ((yield* Clock.currentTimeMillis) - (yield* Deferred.await(connected))) / 1000
    const [summed] = summary.devices
    if (bar !== undefined) yield* bar.update(size, Events.sourceDetail("completed", summed!.blocksResent, writes))
    return {
      event: "completed",
      sha256: Hex.encode(yield* Device.sha256(device).pipe(Effect.mapError(failed))),
      size,
      blockSize,
      seconds,
      writes,
      blocksSent: summed!.blocksSent,
      blocksResent: summed!.blocksResent,
      dirtyRounds: summed!.dirtyRounds,
      finalRoundMillis: Duration.toMillis(summed!.finalRound),
      connections: summary.connections
    } as const
  }))
  if (json) return yield* emit(completed)
  const { seconds } = completed
  yield* Console.log(
    `migrated ${formatBytes(size)} in ${seconds.toFixed(2)} s (${(size / MiB / Math.max(seconds, 1e-3)).toFixed(1)}` +
      ` MiB/s) while writing ${completed.writes} times; ${completed.dirtyRounds} dirty round(s), final locked ` +
      `round ${completed.finalRoundMillis} ms, ${formatBytes(completed.blocksResent * blockSize)} sent again\n` +
      `sha256 ${completed.sha256}`
  )
})

/**
 * Options of the destination half.
 */
export interface DestinationOptions {
  readonly from: Address.Address
  readonly readRate: number
  readonly json: boolean
}

/** One read through the local view, timed; `needAt` when it had to wait for a block. */
const timedRead = (local: WaitingCache.Local, size: number, buffer: Uint8Array) =>
  Effect.gen(function*() {
    const offset = randomOffset(size, buffer.length)
    const before = (yield* local.metrics).waitForBlock
    const start = yield* Clock.currentTimeNanos
    yield* local.readAt(buffer, offset)
    const millis = Number((yield* Clock.currentTimeNanos) - start) / 1e6
    const needAt = (yield* local.metrics).waitForBlock > before
    return { offset, millis, needAt }
  })

/**
 * The destination half: dials the source, receives its one device into memory while a reader fiber reads
 * `READ_SIZE` bytes at random offsets `readRate` times a second through the device's local view (reads of
 * blocks not yet here wait for them, which sends NeedAt), then prints the sha256 of what arrived.
 */
export const runDestination = Effect.fn("demo.destination")(function*(options: DestinationOptions) {
  const { json } = options
  const progress = yield* Progress
  const emit = (event: Events.DestinationEvent, text?: string) =>
    json ? Console.log(Events.encode(event)) : text === undefined ? Effect.void : progress.log(text)
  let received: BlockDevice | undefined
  const destination = yield* MigrationDestination.make({
    device: (incoming): Effect.Effect<BlockDevice, StorageError.StorageError, Scope.Scope> =>
      incoming.count !== 1
        ? Effect.fail(StorageError.make(
          "demo destination",
          new StorageError.Unsupported({ detail: `receives one device, the source sends ${incoming.count}` })
        ))
        : Effect.tap(Memory.make(incoming.info.size, "demo-destination"), (device) =>
          Effect.sync(() => {
            received = device
          }))
  })
  let reads = 0
  let needAtReads = 0
  const start = yield* Clock.currentTimeMillis

  // The migration, with the reads and the progress bar, in a scope of its own that ends before the result.
  yield* Effect.scoped(Effect.gen(function*() {
    const watching = yield* Effect.forkScoped(Effect.gen(function*() {
      const [from] = yield* Deferred.await(destination.devices)
      const { blockSize, name, size } = from!.info
      const { local } = from!
      const total = (yield* local.availability).total
      yield* emit(
        { event: "device", name, size, blockSize },
        `destination: receiving ${formatBytes(size)} in blocks of ${formatBytes(blockSize)}`
      )
      const bar = json ? undefined : yield* lazyBar({ label: "destination", total: size })
      const report = Effect.gen(function*() {
        const { available } = yield* local.availability
        yield* bar === undefined
          ? emit({ event: "progress", present: available, total, reads })
          : bar.update(Math.min(size, available * blockSize), Events.destinationDetail(reads, needAtReads))
      })
      const buffer = new Uint8Array(Math.min(READ_SIZE, size))
      const reading = options.readRate <= 0 ? Effect.never : atRate(
        options.readRate,
        Effect.gen(function*() {
          const read = yield* timedRead(local, size, buffer)
          reads++
          if (read.needAt) needAtReads++
          if (json) yield* emit({ event: "read", length: buffer.length, ...read })
        })
      )
      yield* Effect.forkScoped(Effect.forever(Effect.andThen(report, Effect.sleep(PROGRESS_INTERVAL))))
      return yield* Effect.ensuring(reading, Effect.ignore(report))
    }))
    yield* destination.run(
      Effect.flatMap(Transport.dial(options.from), (stream) => PacketConnection.make([stream])),
      { resumeTimeout: RESUME_TIMEOUT }
    ).pipe(Effect.mapError(failed))
    yield* Fiber.interrupt(watching)
  }))
  const seconds = ((yield* Clock.currentTimeMillis) - start) / 1000
  const sha256 = Hex.encode(yield* Device.sha256(received!).pipe(Effect.mapError(failed)))
  yield* emit({ event: "completed", sha256, size: received!.size, seconds, reads, needAtReads })
  if (!json) {
    yield* Console.log(
      `received ${formatBytes(received!.size)} in ${seconds.toFixed(2)} s; ${reads} reads during the migration, ` +
        `${needAtReads} of them waited for a block (NeedAt)\nsha256 ${sha256}`
    )
  }
})
