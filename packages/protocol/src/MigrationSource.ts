/**
 * The source of a device-group migration (Silo's device group on the `serve` side): several live devices moved
 * together over one packet connection, with the wire flow of Silo's device groups (DeviceGroupInfo on dev 0,
 * device i on dev i, Completed per device).
 *
 * Each device gets the writer chain of a migrating device: the application writes through `writer`, a
 * volatility monitor over a lock over the dirty tracker over the device. The monitor orders the bulk copy (least
 * written blocks first, behind the destination's NeedAt requests), the tracker finds what changed, and the lock
 * holds writers during the final round, so the destination ends exact.
 *
 * The destination may also read from the source (ReadAt); those reads go through the tracker too.
 *
 * Per device and connection: DirtyList of the blocks owed from a broken connection (empty on the first; its
 * acknowledgement also fences the destination's announcements), the blocks the destination says it has
 * (DontNeedAt) are left out, the rest is copied, then dirty rounds run with writers free until a round is small
 * (`finalRoundBlocks`) or `maxDirtyRounds` have passed; the last round runs with writers held, and Completed
 * follows. Writers stay held after Completed: the destination now has the device.
 *
 * Connection loss: `serve` waits up to `resumeTimeout` for the next connection and carries on where it was.
 * A block is left out on resume only when the destination has it and no dirty round that included it was cut
 * short, so the devices still end identical. A destination that does not come back is a `Disconnected` error.
 * A connection is established once the destination acknowledges its first DirtyList (the fence). One that
 * fails before that (bytes that are not Silo frames, a wrong answer, a peer that hangs up or says nothing for
 * `handshakeTimeout`: a port scanner, a TLS client, a destination that refuses the group) is refused: `onRefused` hears of it,
 * nothing about the devices changed, and `serve` takes the next connection, within the time left when it was
 * resuming. On an established connection, garbage from the peer breaks the connection like a loss does.
 *
 * @since 0.1.0
 */
import * as SiloPacket from "@tessera/codec/SiloPacket"
import { Bitfield } from "@tessera/storage/Bitfield"
import * as BlockOrder from "@tessera/storage/BlockOrder"
import * as Blocks from "@tessera/storage/Blocks"
import * as DirtyTracker from "@tessera/storage/DirtyTracker"
import * as Lockable from "@tessera/storage/Lockable"
import type { BlockDevice } from "@tessera/storage/Provider"
import * as VolatilityMonitor from "@tessera/storage/VolatilityMonitor"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Result from "effect/Result"
import type * as Scope from "effect/Scope"
import * as DeviceSchema from "./DeviceSchema.ts"
import * as MigrationError from "./MigrationError.ts"
import type * as MigrationProgress from "./MigrationProgress.ts"
import * as Migrator from "./Migrator.ts"
import type * as PacketConnection from "./PacketConnection.ts"
import * as ProtocolError from "./ProtocolError.ts"
import * as ToProtocol from "./ToProtocol.ts"

/**
 * A device to migrate.
 *
 * @since 0.1.0
 * @category models
 */
export interface SourceDevice {
  readonly name: string
  readonly device: BlockDevice
  /** The migration unit in bytes. */
  readonly blockSize: number
  /** What the schema sent to the destination says about the storage; default `memory`. */
  readonly system?: DeviceSchema.System | undefined
  readonly location?: string | undefined
}

/**
 * Options of `make`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Compression of the block data; default `"None"`. */
  readonly compression?: ToProtocol.Compression | undefined
  /**
   * Blocks in flight over all devices, split by device size as Silo does. Default: Silo's 100, or fewer when
   * the group's largest blocks would put more than 32 MiB in flight (32 blocks of 1 MiB): more does not move
   * data faster over one connection, and every block in flight is memory on both sides.
   */
  readonly concurrency?: number | undefined
  /** How long a write counts towards a block's volatility; default 30 minutes (Silo's device groups). */
  readonly volatilityExpiry?: Duration.Input | undefined
  /** Send the sha256 of every block after the bulk copy, for the destination to check; default false. */
  readonly integrity?: boolean | undefined
  /** Dirty rounds with writers free before the final round holds them; default 20. */
  readonly maxDirtyRounds?: number | undefined
  /** A dirty round of at most this many blocks is the final one; default the device's concurrency. */
  readonly finalRoundBlocks?: number | undefined
  /** Called with each device's progress, at most once per `progressInterval` per device. */
  readonly onProgress?: ((progress: Progress) => Effect.Effect<void>) | undefined
  readonly progressInterval?: Duration.Input | undefined
  /** Response timeout of every request; default the connection's. */
  readonly requestTimeout?: Duration.Input | undefined
}

/**
 * Where one device is.
 *
 * @since 0.1.0
 * @category models
 */
export interface Progress {
  readonly device: string
  readonly phase: "copy" | "dirty" | "final" | "completed"
  readonly migration: MigrationProgress.MigrationProgress
}

/**
 * What happened to one device, over every connection.
 *
 * @since 0.1.0
 * @category models
 */
export interface DeviceSummary {
  readonly name: string
  readonly size: number
  /** Block writes of the bulk copies. */
  readonly blocksSent: number
  /** Block writes of the dirty rounds. */
  readonly blocksResent: number
  /** Blocks the destination already had after a reconnection, so they were not sent again. */
  readonly blocksSkipped: number
  /** Dirty rounds that re-sent something, the final one included. */
  readonly dirtyRounds: number
  /** The final round: from holding writers until its last block was acknowledged. */
  readonly finalRound: Duration.Duration
}

/**
 * What `serve` did.
 *
 * @since 0.1.0
 * @category models
 */
export interface Summary {
  readonly devices: ReadonlyArray<DeviceSummary>
  /** Connections established (refused ones are not counted), 1 when nothing broke. */
  readonly connections: number
}

/**
 * Options of `serve`.
 *
 * @since 0.1.0
 * @category models
 */
export interface ServeOptions {
  /** How long to wait for the destination to come back after a connection broke; default 30 seconds. */
  readonly resumeTimeout?: Duration.Input | undefined
  /**
   * How long a new connection may go without a frame from the peer before it is established (the destination
   * answered the first DirtyList): then it is refused, so a peer that connects and says nothing does not keep
   * the destination out; default 10 seconds.
   */
  readonly handshakeTimeout?: Duration.Input | undefined
  /**
   * Hears of a connection refused before it was established (see the module comment); by default a warning
   * is logged.
   */
  readonly onRefused?: ((error: ProtocolError.ProtocolError) => Effect.Effect<void>) | undefined
}

/**
 * A device group ready to migrate.
 *
 * @since 0.1.0
 * @category models
 */
export interface MigrationSource {
  /** The application's view of each device, in order: write here, not to the devices themselves. */
  readonly writers: ReadonlyArray<BlockDevice>
  /**
   * Migrates every device not yet completed over `connection`, ending when all are completed. A broken
   * connection fails it; calling it again with a new connection resumes.
   */
  readonly migrate: (
    connection: PacketConnection.PacketConnection
  ) => Effect.Effect<void, MigrationError.MigrationError | ProtocolError.ProtocolError>
  /**
   * Takes connections from `next` until every device is completed: the first at once, the later ones (after a
   * connection broke) within `resumeTimeout`.
   */
  readonly serve: <E, R>(
    next: Effect.Effect<PacketConnection.PacketConnection, E, R>,
    options?: ServeOptions
  ) => Effect.Effect<Summary, MigrationError.MigrationError | ProtocolError.ProtocolError | E, Exclude<R, Scope.Scope>>
  /** Sends application data to the destination (Event Custom, type 0, on dev 0) and waits for its ack. */
  readonly sendCustomData: (payload: Uint8Array) => Effect.Effect<void, ProtocolError.ProtocolError>
  /** A snapshot of what happened so far. */
  readonly summary: Effect.Effect<Summary>
}

/** One device's state, kept across connections. */
interface DeviceState {
  readonly index: number
  readonly source: SourceDevice
  readonly size: number
  readonly blockSize: number
  readonly totalBlocks: number
  readonly tracker: DirtyTracker.DirtyTracker
  readonly lockable: Lockable.Lockable
  readonly volatility: VolatilityMonitor.VolatilityMonitor
  readonly slots: number
  readonly schema: string
  /** Blocks of dirty rounds cut short: the destination may hold stale copies of them. */
  readonly owed: Bitfield
  completed: boolean
  blocksSent: number
  blocksResent: number
  blocksSkipped: number
  dirtyRounds: number
  finalRound: Duration.Duration
}

const DEFAULT_CONCURRENCY = 100
const DEFAULT_BYTES_IN_FLIGHT = 32 * 1024 * 1024
const DEFAULT_MAX_DIRTY_ROUNDS = 20
const DEFAULT_RESUME_TIMEOUT = Duration.seconds(30)
const DEFAULT_HANDSHAKE_TIMEOUT = Duration.seconds(10)

const invalid = (detail: string) => MigrationError.make(new MigrationError.InvalidConfig({ detail }))

/**
 * Slots per device: at least one each, the rest shared in proportion to size (Silo's `MigrateAll`).
 */
const shareSlots = (sizes: ReadonlyArray<number>, concurrency: number): ReadonlyArray<number> => {
  const spare = Math.max(concurrency, sizes.length) - sizes.length
  const total = sizes.reduce((sum, size) => sum + size, 0)
  return sizes.map((size) => 1 + (total === 0 ? 0 : Math.floor((spare * size) / total)))
}

/**
 * Builds the writer chains of `devices` in the current scope. Fails with `InvalidConfig` for an empty group, a
 * block size or concurrency that is not a positive whole number.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fn("MigrationSource.make")(function*(
  devices: ReadonlyArray<SourceDevice>,
  options: Options = {}
): Effect.fn.Return<MigrationSource, MigrationError.MigrationError, Scope.Scope> {
  if (devices.length === 0) return yield* invalid("a device group needs at least one device")
  // A bad block size is reported below, per device; here it only must not turn the default into NaN.
  const largestBlock = Math.max(1, ...devices.map((d) => d.blockSize).filter((size) => size > 0))
  const concurrency = options.concurrency ??
    Math.max(1, Math.min(DEFAULT_CONCURRENCY, Math.floor(DEFAULT_BYTES_IN_FLIGHT / largestBlock)))
  if (!(Number.isSafeInteger(concurrency) && concurrency > 0)) {
    return yield* invalid(`concurrency must be a positive whole number, got ${concurrency}`)
  }
  const maxDirtyRounds = options.maxDirtyRounds ?? DEFAULT_MAX_DIRTY_ROUNDS
  const expiry = options.volatilityExpiry ?? Duration.minutes(30)
  const slots = shareSlots(devices.map((d) => d.device.size), concurrency)

  const states: Array<DeviceState> = []
  for (const [i, source] of devices.entries()) {
    const { blockSize, device } = source
    if (!(Number.isSafeInteger(blockSize) && blockSize > 0)) {
      return yield* invalid(`block size of ${source.name} must be a positive whole number, got ${blockSize}`)
    }
    const tracker = yield* DirtyTracker.make(device, blockSize)
    const lockable = yield* Lockable.make(tracker.local)
    const volatility = yield* VolatilityMonitor.make(lockable, blockSize, expiry)
    const totalBlocks = Blocks.count(device.size, blockSize)
    states.push({
      index: i + 1,
      source,
      size: device.size,
      blockSize,
      totalBlocks,
      tracker,
      lockable,
      volatility,
      slots: slots[i]!,
      schema: DeviceSchema.encode({
        name: source.name,
        size: device.size,
        system: source.system ?? "memory",
        blockSize,
        location: source.location
      }),
      owed: new Bitfield(totalBlocks),
      completed: false,
      blocksSent: 0,
      blocksResent: 0,
      blocksSkipped: 0,
      dirtyRounds: 0,
      finalRound: Duration.zero
    })
  }

  let connections = 0
  let current: PacketConnection.PacketConnection | undefined
  /** The last connection whose destination acknowledged a fence. */
  let established: PacketConnection.PacketConnection | undefined
  const requestOptions = options.requestTimeout === undefined ? {} : { timeout: options.requestTimeout }

  const summary: Effect.Effect<Summary> = Effect.sync(() => ({
    connections,
    devices: states.map((state) => ({
      name: state.source.name,
      size: state.size,
      blocksSent: state.blocksSent,
      blocksResent: state.blocksResent,
      blocksSkipped: state.blocksSkipped,
      dirtyRounds: state.dirtyRounds,
      finalRound: state.finalRound
    }))
  }))

  /** The blocks the destination announced with DontNeedAt before acknowledging the fence. */
  const announced = Effect.fnUntraced(function*(connection: PacketConnection.PacketConnection, state: DeviceState) {
    const blocks = new Bitfield(state.totalBlocks)
    for (;;) {
      const request = yield* connection.pollCommand(state.index, SiloPacket.Command.DontNeedAt)
      if (request === undefined) return blocks
      const decoded = SiloPacket.decodeDontNeedAt(request.payload)
      if (Result.isFailure(decoded)) continue
      const { length, offset } = decoded.success
      if (offset < 0 || length <= 0 || offset >= state.size) continue
      const { end, first } = Blocks.touched(offset, length, state.size, state.blockSize)
      blocks.setRange(first, end)
    }
  })

  /** One device over one connection, from the fence to Completed. */
  const migrateDevice = Effect.fnUntraced(function*(
    connection: PacketConnection.PacketConnection,
    state: DeviceState
  ) {
    const { blockSize, lockable, tracker, volatility } = state
    const name = state.source.name
    const to = ToProtocol.make(connection, state.index, state.size, {
      compression: options.compression,
      timeout: options.requestTimeout,
      name
    })
    yield* to.sendDirtyList(blockSize, state.owed)
    // The destination answered: the connection is established (counted once, by its first device).
    if (established !== connection) {
      established = connection
      connections++
    }
    const present = yield* announced(connection, state)

    const order = BlockOrder.makePriority(state.totalBlocks, volatility)
    order.addAll()
    let phase: Progress["phase"] = "copy"
    const onProgress = options.onProgress
    const migrator = yield* Migrator.make({
      source: tracker.remote,
      destination: to,
      order,
      blockSize,
      concurrency: { Any: state.slots, Standard: state.slots, Priority: state.slots, Dirty: state.slots },
      integrity: options.integrity,
      progressInterval: options.progressInterval,
      onProgress: onProgress === undefined ? undefined : (migration) => onProgress({ device: name, phase, migration })
    })
    for (const block of present) {
      if (state.owed.has(block)) continue
      yield* migrator.setMigratedBlock(block)
      state.blocksSkipped++
    }
    yield* Effect.forkScoped(to.handleNeedAt(blockSize, (block) => Effect.sync(() => order.prioritise(block))))
    yield* Effect.forkScoped(to.handleDontNeedAt(blockSize, (block) => Effect.sync(() => order.remove(block))))
    // Through the tracker, as the migrator reads: a block the destination read is tracked from then on.
    yield* Effect.forkScoped(to.handleReadAt(tracker.remote))

    const sent = () => Effect.map(migrator.progress, (progress) => progress.totalMigratedBlocks)
    yield* migrator.migrate(Number.POSITIVE_INFINITY)
    yield* migrator.waitForCompletion
    state.owed.clearAll()
    state.blocksSent += yield* sent()
    const copied = yield* sent()
    if (options.integrity === true) yield* to.sendHashes(yield* migrator.hashes)

    const finalRoundBlocks = options.finalRoundBlocks ?? state.slots
    for (let round = 1;; round++) {
      const start = yield* Clock.currentTimeMillis
      yield* lockable.lock
      const dirty = yield* tracker.remote.sync
      const count = dirty.count()
      const final = count <= finalRoundBlocks || round > maxDirtyRounds
      if (!final) yield* lockable.unlock
      if (count > 0) {
        phase = final ? "final" : "dirty"
        for (const block of dirty) state.owed.set(block)
        yield* to.sendDirtyList(blockSize, dirty)
        yield* migrator.migrateDirty(dirty)
        yield* migrator.waitForCompletion
        state.owed.clearAll()
        state.dirtyRounds++
      }
      if (final) {
        state.finalRound = Duration.millis((yield* Clock.currentTimeMillis) - start)
        break
      }
    }
    state.blocksResent += (yield* sent()) - copied
    yield* to.sendEvent(SiloPacket.EventType.Completed)
    state.completed = true
    phase = "completed"
    if (onProgress !== undefined) yield* onProgress({ device: name, phase, migration: yield* migrator.progress })
  }, Effect.scoped)

  const migrate: MigrationSource["migrate"] = Effect.fn("MigrationSource.migrate")(function*(connection) {
    current = connection
    const group = new Map(states.map((state) => [state.index, {
      _tag: "DevInfo" as const,
      size: state.size,
      blockSize: state.blockSize,
      name: state.source.name,
      schema: state.schema
    }]))
    yield* connection.send(0, 0, SiloPacket.encode({ _tag: "DeviceGroupInfo", devices: group }), { urgent: true })
    yield* Effect.forEach(
      states.filter((state) => !state.completed),
      (state) =>
        // A device whose round broke must not keep its writers held while the destination is away.
        Effect.onError(migrateDevice(connection, state), () => state.lockable.unlock),
      { concurrency: "unbounded", discard: true }
    )
  })

  const serve: MigrationSource["serve"] = Effect.fn("MigrationSource.serve")(function*<E, R>(
    next: Effect.Effect<PacketConnection.PacketConnection, E, R>,
    serveOptions?: ServeOptions
  ) {
    const resumeTimeout = Duration.fromInputUnsafe(serveOptions?.resumeTimeout ?? DEFAULT_RESUME_TIMEOUT)
    const handshakeTimeout = Duration.fromInputUnsafe(serveOptions?.handshakeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT)
    const onRefused = serveOptions?.onRefused ??
      ((error: ProtocolError.ProtocolError) =>
        Effect.logWarning(`migration: refused a connection (${error.message}); waiting for the destination`))
    // Set once an established connection broke: the next one must come by the deadline.
    let lost: { readonly error: unknown; readonly deadline: number } | undefined
    for (;;) {
      const before = connections
      const gone = lost
      const exit = yield* Effect.exit(Effect.scoped(Effect.gen(function*() {
        const connection = gone === undefined ? yield* next : yield* Effect.timeoutOrElse(next, {
          duration: Math.max(0, gone.deadline - (yield* Clock.currentTimeMillis)),
          orElse: () =>
            Effect.fail(MigrationError.make(
              new MigrationError.Disconnected({
                detail: `the destination went away (${(gone.error as Error).message}) and did not come back within ${
                  Duration.format(resumeTimeout)
                }`,
                cause: gone.error
              })
            ))
        })
        // Refused when the peer sends nothing for a whole `handshakeTimeout` before it is established (a
        // destination announcing many blocks it has keeps sending); once it is, this no longer applies.
        const handshake = Effect.gen(function*() {
          let seen = connection.metrics().bytesReceived
          while (true) {
            yield* Effect.sleep(handshakeTimeout)
            if (connections !== before) return yield* Effect.never
            const received = connection.metrics().bytesReceived
            if (received === seen) {
              return yield* ProtocolError.make(
                new ProtocolError.Timeout({
                  dev: 0,
                  waitingFor: "answer to the first DirtyList (nor any other frame)",
                  millis: Duration.toMillis(handshakeTimeout)
                })
              )
            }
            seen = received
          }
        })
        yield* Effect.raceFirst(migrate(connection), handshake)
        yield* connection.close
      })))
      if (Exit.isSuccess(exit)) return yield* summary
      const error = exit.cause.reasons.find((reason) => reason._tag === "Fail")?.error
      if (!ProtocolError.isConnectionFailure(error)) return yield* Effect.failCause(exit.cause)
      if (connections === before && error instanceof ProtocolError.ProtocolError) {
        // Not (yet) a destination: nothing changed, so wait on as before.
        yield* onRefused(error)
        continue
      }
      lost = { error, deadline: (yield* Clock.currentTimeMillis) + Duration.toMillis(resumeTimeout) }
      yield* Effect.logWarning(
        `migration: connection lost (${(error as Error).message}); waiting up to ${
          Duration.format(resumeTimeout)
        } for the destination to come back`
      )
    }
  })

  const sendCustomData: MigrationSource["sendCustomData"] = (payload) =>
    Effect.suspend(() => {
      if (current === undefined) {
        return Effect.fail(ProtocolError.make(new ProtocolError.Closed({ detail: "not connected" })))
      }
      const event = SiloPacket.encode({
        _tag: "Event",
        type: SiloPacket.EventType.Custom,
        custom: { type: 0, payload }
      })
      return Effect.flatMap(current.request(0, event, { ...requestOptions, urgent: true }), (response) =>
        response[0] === SiloPacket.Command.EventResponse
          ? Effect.void
          : Effect.fail(ProtocolError.make(
            new ProtocolError.MalformedFrame({ stream: -1, offset: 0, detail: "expected EventResponse" })
          )))
    })

  return {
    writers: states.map((state) => state.volatility),
    migrate,
    serve,
    sendCustomData,
    summary
  }
})
