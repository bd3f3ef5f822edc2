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
 *   YouAlreadyHave marks its blocks arrived and answers with `count × blockSize`. Writes are served concurrently.
 * - WriteAtHash (a WriteAt subtype): acknowledged at once with `length` (as Silo does: the source must not wait
 *   for a fetch), then the block is fetched, by default from the source with ReadByHash (swarming), or by the
 *   `onWriteAtHash` option (S3, a base image), at most `hashFetchConcurrency` at a time. Only bytes of the
 *   announced length whose sha256 is the hash are written; anything else is logged, counted in
 *   `failedHashWrites`, and the block stays missing (Silo panics). Since the cache marks a block only when its
 *   write lands, local reads of the block wait until then. A later write, WriteAtHash or DirtyList of one of its
 *   blocks supersedes a fetch still under way (its old bytes are dropped), and waits for one already being
 *   written, so old data never lands over new.
 * - WriteAtWithMap: the `onWriteAtWithMap` option, or by default the data is written as for WriteAt; then
 *   WriteAtResponse (the data length; bytes written by default) or WriteAtResponseErr.
 * - RemoveFromMap: the `onRemoveFromMap` option; no response.
 * - AlternateSources: kept (the latest list replaces the previous one, across connections) in
 *   `alternateSources`, and handed to `onAlternateSources`; no response.
 * - ReadAt: served from the device itself (not waiting for missing blocks), ReadAtResponse or ReadAtResponseErr.
 * - DirtyList: `local.dirtyBlocks`, the `onDirtyList` callback, then DirtyListResponse.
 * - Event: the `onEvent` callback, then EventResponse; `Completed` also completes `completed`.
 * - Hashes: compares every hash with the sha256 of that block on the device, records the mismatches, calls
 *   `onHashes`, then HashesResponse.
 * - RemoveDev: completes `removed`.
 *
 * `readAt` and `readByHash` are requests the other way, to the source (urgent, since a reader waits), on the
 * connection the device is served on now; they fail with a `SourceError` when there is none, when the source
 * answers with an error, or when the connection fails.
 *
 * A malformed packet is answered with its error response when it has one (WriteAt, WriteAtWithMap, ReadAt),
 * logged, counted in `malformedPackets`, and skipped; nothing is ever written from it, and the handler goes on
 * with the next packet (Silo's handlers stop).
 *
 * @since 0.1.0
 */
import * as SiloPacket from "@tessera/codec/SiloPacket"
import * as Blocks from "@tessera/storage/Blocks"
import { type BlockDevice, clip } from "@tessera/storage/Provider"
import type * as StorageError from "@tessera/storage/StorageError"
import * as WaitingCache from "@tessera/storage/WaitingCache"
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import { createHash } from "node:crypto"
import type * as PacketConnection from "./PacketConnection.ts"
import * as ProtocolError from "./ProtocolError.ts"

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
 * A block the destination can fetch elsewhere (offset, length, sha256, location), as AlternateSources says.
 *
 * @since 0.1.0
 * @category models
 */
export type AlternateSource = SiloPacket.AlternateSource

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
  /**
   * Handles WriteAtWithMap instead of writing its data (Silo's MappedStorage); a failure is answered with
   * WriteAtResponseErr. `data` is a view of the packet: copy it to keep it. Called in arrival order, one at a time.
   */
  readonly onWriteAtWithMap?:
    | ((offset: number, data: Uint8Array, idMap: ReadonlyMap<bigint, bigint>) => Effect.Effect<void, unknown>)
    | undefined
  /** Called with the ids of every RemoveFromMap. */
  readonly onRemoveFromMap?: ((ids: ReadonlyArray<bigint>) => Effect.Effect<void>) | undefined
  /** Called with every AlternateSources list, after it replaced the previous one. */
  readonly onAlternateSources?: ((sources: ReadonlyArray<AlternateSource>) => Effect.Effect<void>) | undefined
  /**
   * Fetches the block of a WriteAtHash (from S3, a base image, ...) instead of asking the source with ReadByHash.
   * `location` is the packet's `SiloPacket.DataLocation`. What it returns is checked against the hash and the
   * length before it is written; a failure leaves the block missing.
   */
  readonly onWriteAtHash?:
    | ((offset: number, length: number, hash: Uint8Array, location: number) => Effect.Effect<Uint8Array, unknown>)
    | undefined
  /** WriteAtHash fetches under way at once, at most; default 16 (each is a request the source must answer). */
  readonly hashFetchConcurrency?: number | undefined
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
  /** The latest AlternateSources list (empty until one arrives). */
  readonly alternateSources: Effect.Effect<ReadonlyArray<AlternateSource>>
  /** WriteAtHash packets whose block is still being fetched or written. */
  readonly pendingHashWrites: () => number
  /** WriteAtHash packets whose block could not be fetched, did not verify, or could not be written. */
  readonly failedHashWrites: () => number
  /**
   * Reads from the source (ReadAt, urgent) into `buffer` at `offset`, clipped to the device; returns the count
   * the source reported.
   */
  readonly readAt: (buffer: Uint8Array, offset: number) => Effect.Effect<number, SourceError>
  /** Asks the source for the block whose sha256 is `hash` (ReadByHash, urgent); the bytes are not verified. */
  readonly readByHash: (hash: Uint8Array) => Effect.Effect<Uint8Array, SourceError>
}

/**
 * The device is not being served on a connection, so there is nobody to ask.
 *
 * @since 0.1.0
 * @category errors
 */
export class NotConnected extends Schema.TaggedError<NotConnected>()("NotConnected", {}) {
  override get message(): string {
    return "not connected to the source"
  }
}

/**
 * The source answered with an error response (ReadAtResponseErr, or ReadByHashResponseErr and its text).
 *
 * @since 0.1.0
 * @category errors
 */
export class Refused extends Schema.TaggedError<Refused>()("Refused", {
  detail: Schema.String
}) {
  override get message(): string {
    return `the source answered with an error: ${this.detail}`
  }
}

/**
 * A request to the source (`readAt`, `readByHash`) failed: not connected, refused, or the connection failed
 * (a `ProtocolError`: timeout, closed, a malformed response, an argument the packet cannot carry).
 *
 * @since 0.1.0
 * @category errors
 */
export class SourceError extends Schema.TaggedError<SourceError>()("SourceError", {
  dev: Schema.Number,
  request: Schema.String,
  reason: Schema.Union([NotConnected, Refused, ProtocolError.ProtocolError])
}) {
  override get message(): string {
    return `dev ${this.dev}: ${this.request} from the source failed: ${this.reason.message}`
  }
}

const { Command } = SiloPacket

/**
 * One WriteAtHash whose block is being fetched; `landing` is set once its verified bytes are being written, and
 * `after` holds the landings of the older WriteAtHash writes of its blocks, which must land first.
 */
interface HashWrite {
  landing: Deferred.Deferred<void> | undefined
  readonly after: Array<Deferred.Deferred<void>>
}

/**
 * What `serve` needs besides the public fields: the options, the connection the hints and requests go to now,
 * and what outlives a connection (alternate sources, WriteAtHash fetches).
 */
interface Internals {
  readonly options: Options
  readonly mismatches: Set<number>
  malformed: number
  connection: PacketConnection.PacketConnection | undefined
  sources: ReadonlyArray<AlternateSource>
  /** Block → the WriteAtHash whose bytes it waits for. */
  readonly hashWrites: Map<number, HashWrite>
  readonly fetches: Semaphore.Semaphore
  pendingHash: number
  failedHash: number
}

const internals = new WeakMap<FromProtocol, Internals>()

const sha256 = (data: Uint8Array): Buffer => createHash("sha256").update(data).digest()

/** One line for a log: the error's message (an application callback may fail with anything). */
const describe = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  return error instanceof Error ? error.message : String(error)
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("hex")

/** `readAt` and `readByHash`: requests to the source on the connection the device is served on now. */
const sourceRequests = (
  dev: number,
  size: number,
  state: Internals
): Pick<FromProtocol, "readAt" | "readByHash"> => {
  const failure = (request: string, reason: SourceError["reason"]) => new SourceError({ dev, request, reason })
  const badArgument = (request: string, detail: string) =>
    Effect.fail(failure(request, ProtocolError.make(new ProtocolError.BadArgument({ detail }))))
  const malformed = (request: string, detail: string) =>
    failure(request, ProtocolError.make(new ProtocolError.MalformedFrame({ stream: -1, offset: 0, detail })))
  const ask = (request: string, payload: Uint8Array): Effect.Effect<Uint8Array, SourceError> =>
    Effect.suspend(() => {
      const connection = state.connection
      if (connection === undefined) return Effect.fail(failure(request, new NotConnected()))
      return Effect.mapError(connection.request(dev, payload, { urgent: true }), (error) => failure(request, error))
    })
  return {
    readAt: (buffer, offset) =>
      Effect.suspend(() => {
        const clipped = clip(`from-protocol(${dev})`, size, offset, buffer.length)
        if (Result.isFailure(clipped)) return badArgument("ReadAt", clipped.failure.message)
        const length = clipped.success
        if (length === 0) return Effect.succeed(0)
        if (length > 0x7fffffff) return badArgument("ReadAt", `a ReadAt carries at most 2^31 - 1 bytes, not ${length}`)
        return Effect.flatMap(ask("ReadAt", SiloPacket.encode({ _tag: "ReadAt", offset, length })), (response) => {
          const decoded = SiloPacket.decodeReadAtResponse(response)
          if (Result.isFailure(decoded)) return Effect.fail(malformed("ReadAt", decoded.failure.message))
          const packet = decoded.success
          if (packet._tag === "ReadAtResponseErr") {
            return Effect.fail(failure("ReadAt", new Refused({ detail: SiloPacket.REMOTE_READ_ERROR })))
          }
          const n = Math.min(packet.bytes, packet.data.length, length)
          buffer.set(packet.data.subarray(0, n))
          return Effect.succeed(n)
        })
      }),
    readByHash: (hash) =>
      Effect.suspend(() => {
        if (hash.length !== 32) return badArgument("ReadByHash", `a sha256 is 32 bytes, not ${hash.length}`)
        return Effect.flatMap(ask("ReadByHash", SiloPacket.encode({ _tag: "ReadByHash", hash })), (response) => {
          const decoded = SiloPacket.decodeReadByHashResponse(response)
          if (Result.isFailure(decoded)) return Effect.fail(malformed("ReadByHash", decoded.failure.message))
          const packet = decoded.success
          return packet._tag === "ReadByHashResponseErr"
            ? Effect.fail(failure("ReadByHash", new Refused({ detail: packet.error })))
            : Effect.succeed(packet.data)
        })
      })
  }
}

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
  const state: Internals = {
    options,
    mismatches: new Set(),
    malformed: 0,
    connection: undefined,
    sources: [],
    hashWrites: new Map(),
    fetches: Semaphore.makeUnsafe(Math.max(1, options.hashFetchConcurrency ?? 16)),
    pendingHash: 0,
    failedHash: 0
  }
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
    malformedPackets: () => state.malformed,
    alternateSources: Effect.sync(() => state.sources),
    pendingHashWrites: () => state.pendingHash,
    failedHashWrites: () => state.failedHash,
    ...sourceRequests(dev, info.size, state)
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

  /**
   * Takes requests for `command` until the connection ends; `handle` must not fail. The loop does not yield
   * between requests (it suspends when the mailbox is empty, and the mailbox is bounded), so the responses to
   * every request that arrived in one read are produced in the same turn of the event loop and leave in one
   * write; yielding after each one cost a system call per response.
   */
  const takeEach = (command: number, handle: (request: PacketConnection.Request) => Effect.Effect<void>) =>
    run(Effect.ignore(
      Effect.forever(Effect.flatMap(connection.waitForCommand(dev, command), handle), { disableYield: true })
    ))

  // --- WriteAt -----------------------------------------------------------------------------------------------

  /**
   * Drops the WriteAtHash fetches `blocks` wait for, since newer data is coming (the write that calls this, or a
   * DirtyList), and waits for those whose bytes are already being written, so they land first.
   */
  const supersede = (blocks: Iterable<number>): Effect.Effect<void> =>
    Effect.suspend(() => {
      let landings: Set<Deferred.Deferred<void>> | undefined
      for (const block of blocks) {
        const write = state.hashWrites.get(block)
        if (write === undefined) continue
        state.hashWrites.delete(block)
        if (write.landing !== undefined) (landings ??= new Set()).add(write.landing)
      }
      return landings === undefined ? Effect.void : Effect.forEach(landings, Deferred.await, { discard: true })
    })

  function* touched(offset: number, length: number): Generator<number> {
    if (state.hashWrites.size === 0) return
    const { end, first } = Blocks.touched(offset, length, size, blockSize)
    for (let block = first; block < end; block++) yield block
  }

  /** Writes migration data through the remote side; answers with the bytes written, or WriteAtResponseErr. */
  const writeData = (id: number, data: Uint8Array, offset: number) =>
    supersede(touched(offset, data.length)).pipe(
      Effect.andThen(cache.remote.writeAt(data, offset)),
      Effect.matchEffect({
        onFailure: (error) =>
          Effect.andThen(
            Effect.logWarning(`from-protocol(${dev}): write at ${offset} failed: ${error.message}`),
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

  /** Fetches, verifies and writes the block of an acknowledged WriteAtHash; never fails. */
  const landHash = (packet: SiloPacket.WriteAtHash, write: HashWrite, blocks: ReadonlyArray<number>) => {
    const { dataLocation, hash, length, offset } = packet
    const where = `WriteAtHash at ${offset}+${length} (${hex(hash)})`
    const failed = (detail: string) =>
      Effect.suspend(() => {
        state.failedHash++
        return Effect.logWarning(`from-protocol(${dev}): ${where}: ${detail}; the block stays missing`)
      })
    const fetch: Effect.Effect<Uint8Array, unknown> = options.onWriteAtHash === undefined
      ? from.readByHash(hash)
      : options.onWriteAtHash(offset, length, hash, dataLocation)
    const current = () => blocks.every((block) => state.hashWrites.get(block) === write)
    return state.fetches.withPermits(1)(Effect.suspend(() => current() ? fetch : Effect.succeed(undefined))).pipe(
      Effect.matchCauseEffect({
        onFailure: (cause) => failed(`fetching failed: ${describe(cause)}`),
        onSuccess: (data) =>
          Effect.suspend(() => {
            if (data === undefined || !current()) return Effect.void
            if (data.length !== length) return failed(`${data.length} bytes came back`)
            if (!sha256(data).equals(hash)) return failed("the bytes that came back have another sha256")
            // Set in the same step as the check, so a write that supersedes this one from now on waits for it.
            const landing = Deferred.makeUnsafe<void>()
            write.landing = landing
            return Effect.forEach(write.after, Deferred.await, { discard: true }).pipe(
              Effect.andThen(cache.remote.writeAt(data, offset)),
              Effect.catch((error) => failed(`writing failed: ${error.message}`)),
              Effect.ensuring(Deferred.succeed(landing, undefined))
            )
          })
      }),
      Effect.ensuring(Effect.sync(() => {
        state.pendingHash--
        for (const block of blocks) if (state.hashWrites.get(block) === write) state.hashWrites.delete(block)
      }))
    )
  }

  const writeAtHash = (id: number, packet: SiloPacket.WriteAtHash) =>
    Effect.suspend(() => {
      const { hash, length, offset } = packet
      if (hash.length !== 32) {
        return Effect.andThen(skip("WriteAtHash", `the hash is ${hash.length} bytes, not 32`), writeError(id))
      }
      if (!(offset >= 0 && length > 0 && length <= size - offset && length <= 0xffffffff)) {
        return Effect.andThen(
          skip("WriteAtHash", `range ${offset}+${length} is outside 0..${size}`),
          writeError(id)
        )
      }
      const write: HashWrite = { landing: undefined, after: [] }
      const blocks: Array<number> = []
      const { end, first } = Blocks.touched(offset, length, size, blockSize)
      for (let block = first; block < end; block++) {
        const older = state.hashWrites.get(block)?.landing
        if (older !== undefined && !write.after.includes(older)) write.after.push(older)
        blocks.push(block)
        state.hashWrites.set(block, write)
      }
      state.pendingHash++
      run(landHash(packet, write, blocks))
      return respond(id, { _tag: "WriteAtResponse", bytes: length })
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
        return Effect.sync(() => void run(writeData(request.id, packet.data, packet.offset)))
      case "YouAlreadyHave":
        return youAlreadyHave(request.id, packet)
      case "WriteAtHash":
        return writeAtHash(request.id, packet)
      default:
        return Effect.andThen(skip("WriteAt", `unexpected ${packet._tag}`), writeError(request.id))
    }
  })

  // --- WriteAtWithMap, RemoveFromMap, AlternateSources ----------------------------------------------------------

  takeEach(Command.WriteAtWithMap, (request) => {
    const decoded = SiloPacket.decodeWriteAtWithMap(request.payload)
    if (Result.isFailure(decoded)) {
      return Effect.andThen(skip("WriteAtWithMap", decoded.failure.message), writeError(request.id))
    }
    const { data, idMap, offset } = decoded.success
    const handler = options.onWriteAtWithMap
    if (handler === undefined) return Effect.sync(() => void run(writeData(request.id, data, offset)))
    return handler(offset, data, idMap).pipe(
      Effect.matchCauseEffect({
        onFailure: (cause) =>
          Effect.andThen(
            Effect.logWarning(`from-protocol(${dev}): WriteAtWithMap at ${offset} failed: ${describe(cause)}`),
            writeError(request.id)
          ),
        onSuccess: () => respond(request.id, { _tag: "WriteAtResponse", bytes: data.length })
      })
    )
  })

  takeEach(Command.RemoveFromMap, (request) => {
    const decoded = SiloPacket.decodeRemoveFromMap(request.payload)
    if (Result.isFailure(decoded)) return skip("RemoveFromMap", decoded.failure.message)
    return options.onRemoveFromMap?.(decoded.success.ids) ?? Effect.void
  })

  takeEach(Command.AlternateSources, (request) => {
    // A copy, so the kept list does not pin (or alias) the transport's read buffer.
    const decoded = SiloPacket.decodeAlternateSources(request.payload.slice())
    if (Result.isFailure(decoded)) return skip("AlternateSources", decoded.failure.message)
    const { sources } = decoded.success
    state.sources = sources
    return options.onAlternateSources?.(sources) ?? Effect.void
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
      yield* supersede(blocks)
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
