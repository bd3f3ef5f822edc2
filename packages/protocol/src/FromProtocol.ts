/**
 * The destination side of a migration over a packet connection (Silo's `FromProtocol`), for one device id.
 * `open` makes the device from what DevInfo says and puts a `WaitingCache` over it: migration data goes to the
 * cache's remote side, and the application uses `local`, whose reads wait for blocks not yet arrived. `serve`
 * answers the source on one connection; the cache's hints go to that connection as NeedAt and DontNeedAt. `make`
 * does both for the single-device flow (it waits for DevInfo first).
 *
 * The device outlives its connections: when the source comes back on a new connection, `serve` first announces
 * every block already here (arrived, or written by the application) with DontNeedAt, so the source can leave
 * them out, and asks again (NeedAt) for the blocks readers are waiting for. It does that before it answers any
 * request of the new connection, so on one stream the announcements arrive ahead of the first response.
 *
 * Handlers, each running until the connection or the serving scope ends:
 * - WriteAt (every subtype on command 0x02): plain and compressed data (decompressed by the decoder) is
 *   written through the remote side, answered with WriteAtResponse (bytes written) or WriteAtResponseErr;
 *   YouAlreadyHave marks its blocks arrived and answers with `count × blockSize`; WriteAtHash is unsupported
 *   here and answered with WriteAtResponseErr. Writes are served concurrently.
 * - ReadAt: served from the device itself (not waiting for missing blocks), ReadAtResponse or ReadAtResponseErr.
 * - DirtyList: `local.dirtyBlocks`, the `onDirtyList` callback, then DirtyListResponse.
 * - Event: the `onEvent` callback, then EventResponse; `Completed` also completes `completed`.
 * - Hashes: compares every hash with the sha256 of that block on the device, records the mismatches, calls
 *   `onHashes`, then HashesResponse.
 * - RemoveDev: completes `removed`.
 *
 * A malformed packet is answered with its error response when it has one (WriteAt, ReadAt), logged, and
 * skipped; nothing is ever written from it, and the handler goes on with the next packet (Silo's handlers stop).
 *
 * @since 0.1.0
 */
import * as SiloPacket from "@tessera/codec/SiloPacket"
import * as Blocks from "@tessera/storage/Blocks"
import type { BlockDevice } from "@tessera/storage/Provider"
import type * as StorageError from "@tessera/storage/StorageError"
import * as WaitingCache from "@tessera/storage/WaitingCache"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Result from "effect/Result"
import type * as Scope from "effect/Scope"
import { createHash } from "node:crypto"
import type * as PacketConnection from "./PacketConnection.ts"
import type * as ProtocolError from "./ProtocolError.ts"

/**
 * What the destination knows about the device (DevInfo).
 *
 * @since 0.1.0
 * @category models
 */
export interface DeviceInfo {
  readonly size: number
  readonly blockSize: number
  readonly name: string
  readonly schema: string
}

/**
 * Options of `make`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Makes the device the data is written to, from what DevInfo said. */
  readonly device: (info: DeviceInfo) => Effect.Effect<BlockDevice, StorageError.StorageError, Scope.Scope>
  /** The device's info when no DevInfo is expected (device groups); by default the first DevInfo is awaited. */
  readonly info?: DeviceInfo | undefined
  /** Called with every Event before it is acknowledged. */
  readonly onEvent?: ((event: SiloPacket.Event) => Effect.Effect<void>) | undefined
  /** Called with every DirtyList's blocks after they were invalidated, before it is acknowledged. */
  readonly onDirtyList?: ((blocks: ReadonlyArray<number>) => Effect.Effect<void>) | undefined
  /** Called with the blocks whose hash did not match, for every Hashes packet, before it is acknowledged. */
  readonly onHashes?: ((mismatches: ReadonlyArray<number>) => Effect.Effect<void>) | undefined
  /** Send the waiting cache's hints as NeedAt / DontNeedAt; default true. */
  readonly hints?: boolean | undefined
}

/**
 * The destination side of one device.
 *
 * @since 0.1.0
 * @category models
 */
export interface FromProtocol {
  readonly dev: number
  readonly info: DeviceInfo
  /** The device the data lands on. */
  readonly device: BlockDevice
  /** The application's view: reads wait for blocks that have not arrived. */
  readonly local: WaitingCache.Local
  /** The migration's view, written by the WriteAt handler. */
  readonly remote: WaitingCache.Remote
  /** Completed by the Completed event. */
  readonly completed: Deferred.Deferred<void>
  /** Completed by RemoveDev. */
  readonly removed: Deferred.Deferred<void>
  /** Every block a Hashes packet found different so far, ascending. */
  readonly hashMismatches: Effect.Effect<ReadonlyArray<number>>
  /** Malformed packets skipped so far. */
  readonly malformedPackets: () => number
}

const { Command } = SiloPacket

/** What `serve` needs besides the public fields: the options and the connection the hints go to now. */
interface Internals {
  readonly options: Options
  readonly mismatches: Set<number>
  malformed: number
  connection: PacketConnection.PacketConnection | undefined
}

const internals = new WeakMap<FromProtocol, Internals>()

/**
 * Makes the device for `info` and the waiting cache over it, for the current scope. Nothing is served until
 * `serve` runs on a connection; until then (and between connections) the cache's hints are dropped.
 *
 * @since 0.1.0
 * @category constructors
 */
export const open = Effect.fn("FromProtocol.open")(function*(
  dev: number,
  info: DeviceInfo,
  options: Options
): Effect.fn.Return<FromProtocol, StorageError.StorageError, Scope.Scope> {
  const device = yield* options.device(info)
  const state: Internals = { options, mismatches: new Set(), malformed: 0, connection: undefined }
  const hint = (packet: SiloPacket.NeedAt | SiloPacket.DontNeedAt): Effect.Effect<void> =>
    Effect.suspend(() =>
      state.connection === undefined
        ? Effect.void
        : Effect.ignore(state.connection.send(dev, 0, SiloPacket.encode(packet), { urgent: true }))
    )
  const hints = options.hints !== false
  const cache = yield* WaitingCache.make(device, {
    blockSize: info.blockSize,
    needAt: hints ? (offset, length) => hint({ _tag: "NeedAt", offset, length }) : undefined,
    dontNeedAt: hints ? (offset, length) => hint({ _tag: "DontNeedAt", offset, length }) : undefined
  })
  const from: FromProtocol = {
    dev,
    info,
    device,
    local: cache.local,
    remote: cache.remote,
    completed: yield* Deferred.make<void>(),
    removed: yield* Deferred.make<void>(),
    hashMismatches: Effect.sync(() => [...state.mismatches].toSorted((a, b) => a - b)),
    malformedPackets: () => state.malformed
  }
  internals.set(from, state)
  return from
})

/**
 * Waits for DevInfo on `dev` (unless `options.info` is given), opens the device and serves it on `connection`
 * in the current scope. Fails only when the connection ends before DevInfo, or the device cannot be made.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fn("FromProtocol.make")(function*(
  connection: PacketConnection.PacketConnection,
  dev: number,
  options: Options
): Effect.fn.Return<FromProtocol, ProtocolError.ProtocolError | StorageError.StorageError, Scope.Scope> {
  let info = options.info
  let skipped = 0
  while (info === undefined) {
    const request = yield* connection.waitForCommand(dev, Command.DevInfo)
    const decoded = SiloPacket.decodeDevInfo(request.payload)
    if (Result.isFailure(decoded)) {
      skipped++
      yield* Effect.logWarning(`from-protocol(${dev}): skipping a malformed DevInfo: ${decoded.failure.message}`)
    } else {
      const { blockSize, name, schema, size } = decoded.success
      info = { size, blockSize, name, schema }
    }
  }
  const from = yield* open(dev, info, options)
  internals.get(from)!.malformed += skipped
  yield* serve(from, connection)
  return from
})

/**
 * Answers the source on `connection` until it ends or the current scope closes: announces the blocks already
 * here and re-asks for the awaited ones (see the module notes), then starts the handlers and returns.
 *
 * @since 0.1.0
 * @category combinators
 */
export const serve = Effect.fn("FromProtocol.serve")(function*(
  from: FromProtocol,
  connection: PacketConnection.PacketConnection
): Effect.fn.Return<void, never, Scope.Scope> {
  const state = internals.get(from)!
  const { options } = state
  const { dev, device, info } = from
  const { blockSize, size } = info
  const cache = { local: from.local, remote: from.remote }
  const { completed, removed } = from
  const mismatches = state.mismatches
  const skip = (what: string, detail: string) =>
    Effect.suspend(() => {
      state.malformed++
      return Effect.logWarning(`from-protocol(${dev}): skipping a malformed ${what}: ${detail}`)
    })

  state.connection = connection
  yield* Effect.addFinalizer(() =>
    Effect.sync(() => {
      if (state.connection === connection) state.connection = undefined
    })
  )
  if (options.hints !== false) {
    const announce = (packet: SiloPacket.NeedAt | SiloPacket.DontNeedAt) =>
      Effect.ignore(connection.send(dev, 0, SiloPacket.encode(packet), { urgent: true }))
    const present = yield* cache.local.present
    for (let first = present.next(0); first !== -1;) {
      let end = first + 1
      while (end < present.size && present.has(end)) end++
      const { offset } = Blocks.range(first, size, blockSize)
      const last = Blocks.range(end - 1, size, blockSize)
      yield* announce({ _tag: "DontNeedAt", offset, length: last.offset + last.length - offset })
      first = end < present.size ? present.next(end) : -1
    }
    for (const block of yield* cache.local.waiting) {
      const { length, offset } = Blocks.range(block, size, blockSize)
      yield* announce({ _tag: "NeedAt", offset, length })
    }
  }
  const run = yield* FiberSet.makeRuntime<never, void, never>()

  const respond = (id: number, packet: SiloPacket.Packet, urgent = false) =>
    Effect.ignore(connection.respond(dev, id, SiloPacket.encode(packet), { urgent }))
  const writeError = (id: number) => respond(id, { _tag: "WriteAtResponseErr" })

  /** Takes requests for `command` until the connection ends; `handle` must not fail. */
  const takeEach = (command: number, handle: (request: PacketConnection.Request) => Effect.Effect<void>) =>
    run(Effect.ignore(Effect.forever(Effect.flatMap(connection.waitForCommand(dev, command), handle))))

  // --- WriteAt -----------------------------------------------------------------------------------------------

  const writeData = (id: number, packet: SiloPacket.WriteAt) =>
    cache.remote.writeAt(packet.data, packet.offset).pipe(
      Effect.matchEffect({
        onFailure: (error) =>
          Effect.andThen(
            Effect.logWarning(`from-protocol(${dev}): write at ${packet.offset} failed: ${error.message}`),
            writeError(id)
          ),
        onSuccess: (bytes) => respond(id, { _tag: "WriteAtResponse", bytes })
      })
    )

  const youAlreadyHave = (id: number, packet: SiloPacket.YouAlreadyHave) =>
    Effect.gen(function*() {
      const bs = packet.blockSize
      if (!(bs > 0)) return yield* Effect.andThen(skip("YouAlreadyHave", `block size ${bs}`), writeError(id))
      for (const block of packet.blocks) {
        const offset = block * bs
        if (offset >= size) continue
        yield* Effect.ignore(cache.remote.markAvailable(offset, Math.min(bs, size - offset)))
      }
      yield* respond(id, { _tag: "WriteAtResponse", bytes: (packet.blocks.length * bs) >>> 0 }, true)
    })

  takeEach(Command.WriteAt, (request) => {
    const decoded = SiloPacket.decode(request.payload)
    if (Result.isFailure(decoded)) {
      return Effect.andThen(skip("WriteAt", decoded.failure.message), writeError(request.id))
    }
    const packet = decoded.success
    switch (packet._tag) {
      case "WriteAt":
        // Concurrent: the migrator keeps many writes in flight, and never two for one block.
        return Effect.sync(() => void run(writeData(request.id, packet)))
      case "YouAlreadyHave":
        return youAlreadyHave(request.id, packet)
      case "WriteAtHash":
        return Effect.andThen(
          Effect.logWarning(`from-protocol(${dev}): WriteAtHash is not supported; answering with an error`),
          writeError(request.id)
        )
      default:
        return Effect.andThen(skip("WriteAt", `unexpected ${packet._tag}`), writeError(request.id))
    }
  })

  // --- ReadAt ------------------------------------------------------------------------------------------------

  takeEach(Command.ReadAt, (request) => {
    const decoded = SiloPacket.decodeReadAt(request.payload)
    const readError = respond(request.id, { _tag: "ReadAtResponseErr" }, true)
    if (Result.isFailure(decoded)) return Effect.andThen(skip("ReadAt", decoded.failure.message), readError)
    const { length, offset } = decoded.success
    if (length < 0 || length > size) return Effect.andThen(skip("ReadAt", `length ${length}`), readError)
    const buffer = new Uint8Array(length)
    return Effect.sync(() =>
      void run(
        device.readAt(buffer, offset).pipe(
          Effect.matchEffect({
            onFailure: () => readError,
            onSuccess: (bytes) => respond(request.id, { _tag: "ReadAtResponse", bytes, data: buffer }, true)
          })
        )
      )
    )
  })

  // --- DirtyList, Event, Hashes, RemoveDev -------------------------------------------------------------------

  takeEach(Command.DirtyList, (request) => {
    const decoded = SiloPacket.decodeDirtyList(request.payload)
    if (Result.isFailure(decoded)) return skip("DirtyList", decoded.failure.message)
    const { blocks } = decoded.success
    return Effect.gen(function*() {
      yield* cache.local.dirtyBlocks(blocks)
      if (options.onDirtyList !== undefined) yield* options.onDirtyList(blocks)
      yield* respond(request.id, { _tag: "DirtyListResponse" }, true)
    })
  })

  takeEach(Command.Event, (request) => {
    const decoded = SiloPacket.decodeEvent(request.payload)
    if (Result.isFailure(decoded)) return skip("Event", decoded.failure.message)
    const event = decoded.success
    return Effect.gen(function*() {
      if (options.onEvent !== undefined) yield* options.onEvent(event)
      if (event.type === SiloPacket.EventType.Completed) yield* Deferred.succeed(completed, undefined)
      yield* respond(request.id, { _tag: "EventResponse" }, true)
    })
  })

  takeEach(Command.Hashes, (request) => {
    const decoded = SiloPacket.decodeHashes(request.payload)
    if (Result.isFailure(decoded)) return skip("Hashes", decoded.failure.message)
    return Effect.gen(function*() {
      const found: Array<number> = []
      for (const [block, hash] of decoded.success.hashes) {
        const { length, offset } = Blocks.range(block, size, blockSize)
        const buffer = new Uint8Array(length)
        const actual = length === 0 ? undefined : yield* device.readAt(buffer, offset).pipe(
          Effect.map(() => createHash("sha256").update(buffer).digest()),
          Effect.catch(() => Effect.succeed(undefined))
        )
        if (actual === undefined || !actual.equals(hash)) {
          found.push(block)
          mismatches.add(block)
        }
      }
      if (options.onHashes !== undefined) yield* options.onHashes(found)
      yield* respond(request.id, { _tag: "HashesResponse" }, true)
    })
  })

  takeEach(Command.RemoveDev, () => Deferred.succeed(removed, undefined))
})
