/**
 * The destination of a device-group migration (Silo's device group on the `connect` side). The first
 * DeviceGroupInfo on dev 0 says which devices come (each with its schema as HCL); `options.device` makes the
 * storage for each, and each is served as a `FromProtocol` on its dev id, so the application can read and write
 * it through `local` while it arrives. Events on dev 0 are acknowledged after their handler ran: Custom type 0
 * is application data (`onCustomData`), others go to `onEvent` (Silo's receiver leaves those unanswered and
 * the sender hangs).
 *
 * The devices outlive connections. When the source comes back on a new connection it sends DeviceGroupInfo
 * again; if it names the same devices (index, name, size, block size) every device is served on the new
 * connection, which announces what is already here (see `FromProtocol.serve`), otherwise `receive` refuses it.
 *
 * @since 0.1.0
 */
import * as SiloPacket from "@tessera/codec/SiloPacket"
import type { BlockDevice } from "@tessera/storage/Provider"
import type * as StorageError from "@tessera/storage/StorageError"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Result from "effect/Result"
import * as Scope from "effect/Scope"
import * as DeviceSchema from "./DeviceSchema.ts"
import * as FromProtocol from "./FromProtocol.ts"
import * as MigrationError from "./MigrationError.ts"
import type * as PacketConnection from "./PacketConnection.ts"
import * as ProtocolError from "./ProtocolError.ts"
import * as TransportError from "./TransportError.ts"

/**
 * A device the source announced, with its parsed schema.
 *
 * @since 0.1.0
 * @category models
 */
export interface IncomingDevice {
  /** The device's index in the group (its dev id on the connection), from 1. */
  readonly index: number
  /** How many devices the group has. */
  readonly count: number
  readonly info: FromProtocol.DeviceInfo
  readonly schema: DeviceSchema.DeviceSchema
}

/**
 * Options of `make`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Makes the storage of one incoming device; it lives as long as the destination. */
  readonly device: (
    incoming: IncomingDevice
  ) => Effect.Effect<BlockDevice, StorageError.StorageError | MigrationError.MigrationError, Scope.Scope>
  /** Application data from the source (Event Custom type 0 on dev 0). */
  readonly onCustomData?: ((payload: Uint8Array) => Effect.Effect<void>) | undefined
  /** Any other event, on dev 0 (`index` 0) or on a device. */
  readonly onEvent?: ((index: number, event: SiloPacket.Event) => Effect.Effect<void>) | undefined
  /** How long to wait for DeviceGroupInfo on a new connection; default 30 seconds. */
  readonly groupTimeout?: Duration.Input | undefined
  /** How long to wait, once everything is complete, for the source to close the connection; default 10 seconds. */
  readonly closeTimeout?: Duration.Input | undefined
}

/**
 * A device group being received.
 *
 * @since 0.1.0
 * @category models
 */
export interface MigrationDestination {
  /** Completed with the devices once the first DeviceGroupInfo has set them up. */
  readonly devices: Deferred.Deferred<ReadonlyArray<FromProtocol.FromProtocol>>
  /**
   * Serves one connection: takes its DeviceGroupInfo, serves every device on it, and succeeds once Completed has
   * arrived for every device and the devices are flushed. Fails when the connection ends first (another
   * connection may resume), or when the group does not parse or does not match the one being received.
   */
  readonly receive: (
    connection: PacketConnection.PacketConnection
  ) => Effect.Effect<
    void,
    MigrationError.MigrationError | ProtocolError.ProtocolError | StorageError.StorageError
  >
  /**
   * Receives until every device has completed: takes a connection from `dial` and `receive`s on it; when the
   * connection breaks first, dials again (every `retryInterval`) for up to `resumeTimeout` and resumes.
   */
  readonly run: <E, R>(
    dial: Effect.Effect<PacketConnection.PacketConnection, E, R>,
    options?: RunOptions
  ) => Effect.Effect<
    void,
    MigrationError.MigrationError | ProtocolError.ProtocolError | StorageError.StorageError | E,
    Exclude<R, Scope.Scope>
  >
  /** Whether every device has completed. */
  readonly completed: Effect.Effect<boolean>
}

/**
 * Options of `run`.
 *
 * @since 0.1.0
 * @category models
 */
export interface RunOptions {
  /** How long to keep dialling after a connection broke; default 30 seconds. */
  readonly resumeTimeout?: Duration.Input | undefined
  /** Time between two dials; default 250 ms. */
  readonly retryInterval?: Duration.Input | undefined
}

const isDialFailure = (error: unknown): boolean => error instanceof TransportError.TransportError

const mismatch = (detail: string) =>
  MigrationError.make(new MigrationError.InvalidConfig({ detail: `device group: ${detail}` }))

/** Checks that a resumed connection names the devices being received. */
const checkSameGroup = (group: SiloPacket.DeviceGroupInfo, current: ReadonlyArray<FromProtocol.FromProtocol>) => {
  if (group.devices.size !== current.length) {
    return Effect.fail(mismatch(`the source now sends ${group.devices.size} devices, not ${current.length}`))
  }
  for (const from of current) {
    const info = group.devices.get(from.dev)
    if (
      info === undefined || info.name !== from.info.name || info.size !== from.info.size ||
      info.blockSize !== from.info.blockSize
    ) {
      return Effect.fail(mismatch(`device ${from.dev} (${from.info.name}) differs from the one being received`))
    }
  }
  return Effect.void
}

/**
 * Makes a destination whose devices live in the current scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fn("MigrationDestination.make")(function*(
  options: Options
): Effect.fn.Return<MigrationDestination, never, Scope.Scope> {
  const scope = yield* Scope.Scope
  const devices = yield* Deferred.make<ReadonlyArray<FromProtocol.FromProtocol>>()
  let opened: ReadonlyArray<FromProtocol.FromProtocol> | undefined
  const groupTimeout = options.groupTimeout ?? Duration.seconds(30)
  const closeTimeout = options.closeTimeout ?? Duration.seconds(10)

  /** Parses the group and makes its devices, in the destination's scope. */
  const open = Effect.fnUntraced(function*(group: SiloPacket.DeviceGroupInfo) {
    const opening: Array<FromProtocol.FromProtocol> = []
    for (const [index, info] of [...group.devices].toSorted(([a], [b]) => a - b)) {
      if (index === 0) return yield* mismatch("device index 0 is the group's own channel")
      const deviceInfo = { size: info.size, blockSize: info.blockSize, name: info.name, schema: info.schema }
      const schema = info.schema === ""
        ? { name: info.name, size: info.size, system: "memory" as const, blockSize: info.blockSize }
        : yield* Effect.mapError(DeviceSchema.parse(info.schema), (error) => mismatch(error.detail))
      if (schema.size !== info.size) {
        return yield* mismatch(`${info.name}: the schema says ${schema.size} bytes, DevInfo ${info.size}`)
      }
      const device = yield* Scope.provide(
        options.device({ index, count: group.devices.size, info: deviceInfo, schema }),
        scope
      )
      const onEvent = options.onEvent
      opening.push(
        yield* Scope.provide(
          FromProtocol.open(index, deviceInfo, {
            device: () => Effect.succeed(device),
            onEvent: onEvent === undefined ? undefined : (event) => onEvent(index, event)
          }),
          scope
        )
      )
    }
    if (opening.length === 0) return yield* mismatch("no devices")
    return opening
  })

  /** Acknowledges every event on dev 0 after its handler, until the connection ends. */
  const groupEvents = (connection: PacketConnection.PacketConnection) =>
    Effect.forever(Effect.flatMap(connection.waitForCommand(0, SiloPacket.Command.Event), (request) => {
      const decoded = SiloPacket.decodeEvent(request.payload)
      const handled = Result.isFailure(decoded)
        ? Effect.logWarning(`device group: skipping a malformed Event: ${decoded.failure.message}`)
        : decoded.success.type === SiloPacket.EventType.Custom && decoded.success.custom?.type === 0
        ? options.onCustomData?.(decoded.success.custom.payload) ?? Effect.void
        : options.onEvent?.(0, decoded.success) ?? Effect.void
      return Effect.andThen(
        handled,
        connection.respond(0, request.id, SiloPacket.encode({ _tag: "EventResponse" }), { urgent: true })
      )
    }))

  const receive: MigrationDestination["receive"] = Effect.fn("MigrationDestination.receive")(
    function*(connection) {
      const request = yield* connection.waitForCommand(0, SiloPacket.Command.DeviceGroupInfo, {
        timeout: groupTimeout
      })
      const decoded = SiloPacket.decodeDeviceGroupInfo(request.payload)
      if (Result.isFailure(decoded)) return yield* mismatch(decoded.failure.message)
      if (opened === undefined) {
        opened = yield* open(decoded.success)
        yield* Deferred.succeed(devices, opened)
      } else {
        yield* checkSameGroup(decoded.success, opened)
      }
      const group = opened
      for (const from of group) yield* FromProtocol.serve(from, connection)
      yield* Effect.forkScoped(Effect.ignore(groupEvents(connection)))

      const everyCompleted = Effect.forEach(group, (from) => Deferred.await(from.completed), { discard: true })
      const ended = Effect.andThen(
        connection.await,
        Effect.fail(ProtocolError.make(new ProtocolError.Closed({ detail: "the source ended the connection" })))
      )
      yield* Effect.raceFirst(everyCompleted, ended)
      yield* Effect.forEach(group, (from) => from.local.flush, { discard: true })
      // The last Completed is acknowledged after its Deferred is done: let the source read that ack and close.
      yield* Effect.ignore(Effect.timeoutOption(connection.await, closeTimeout))
    },
    Effect.scoped
  )

  const completed: Effect.Effect<boolean> = Effect.suspend(() =>
    opened === undefined
      ? Effect.succeed(false)
      : Effect.map(Effect.forEach(opened, (from) => Deferred.isDone(from.completed)), (done) => done.every(Boolean))
  )

  const run: MigrationDestination["run"] = Effect.fn("MigrationDestination.run")(function*<E, R>(
    dial: Effect.Effect<PacketConnection.PacketConnection, E, R>,
    runOptions?: RunOptions
  ) {
    const resumeTimeout = Duration.fromInputUnsafe(runOptions?.resumeTimeout ?? Duration.seconds(30))
    const retryInterval = runOptions?.retryInterval ?? Duration.millis(250)
    const once = Effect.scoped(Effect.flatMap(dial, receive))
    let exit = yield* Effect.exit(once)
    // Set once a connection broke: until then a failed dial is the user's (a wrong address), not an outage.
    let lost: { readonly error: unknown; readonly deadline: number } | undefined
    while (Exit.isFailure(exit)) {
      const error = Cause.squash(exit.cause)
      const now = yield* Clock.currentTimeMillis
      if (ProtocolError.isConnectionLoss(error) && !(yield* completed)) {
        lost = { error, deadline: now + Duration.toMillis(resumeTimeout) }
        yield* Effect.logWarning(
          `migration: connection lost (${(error as Error).message}); reconnecting for up to ${
            Duration.format(resumeTimeout)
          }`
        )
      } else if (lost === undefined || !isDialFailure(error)) {
        return yield* Effect.failCause(exit.cause)
      } else if (now >= lost.deadline) {
        return yield* MigrationError.make(
          new MigrationError.Disconnected({
            detail: `the source went away (${(lost.error as Error).message}) and did not come back within ${
              Duration.format(resumeTimeout)
            }`,
            cause: lost.error
          })
        )
      }
      yield* Effect.sleep(retryInterval)
      exit = yield* Effect.exit(once)
    }
  })

  return {
    devices,
    receive,
    run,
    completed
  }
})
