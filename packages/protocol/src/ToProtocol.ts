/**
 * The source side of a migration over a packet connection (Silo's `ToProtocol`): a `BlockDevice` for one
 * device id whose writes travel to the peer as WriteAt packets and whose reads are ReadAt requests, so a
 * `Migrator` can write into it directly; plus the control packets of the migration (DevInfo, DirtyList, Event,
 * Hashes, YouAlreadyHave, AlternateSources, RemoveDev, RemoveFromMap, WriteAtWithMap) and the handlers of the
 * destination's requests (NeedAt, DontNeedAt, ReadAt, ReadByHash).
 *
 * - `writeAt` follows Silo's decision list (spec §3.1): with `sendNoData` (swarming) every block goes as
 *   WriteAtHash with its sha256 and location S3 (as Silo sends it; the destination fetches it with ReadByHash,
 *   whatever the location says), never its data. Otherwise, when the first alternate source (the last list sent
 *   with `sendAlternateSources`) with exactly this offset and length has the sha256 of the data, a WriteAtHash
 *   carrying that hash replaces the data (the destination has the block, or fetches it, elsewhere); a hash that
 *   differs means the block changed since, so the data is sent. Otherwise a plain WriteAt, or a compressed one
 *   (RLE, zeroes or gzip) when `compression` says so. Then it waits for WriteAtResponse: its count is what
 *   `writeAt` returns; WriteAtResponseErr is an `IoFailure` ("remote write error"). A plain WriteAt copies nothing:
 *   its 9-byte prefix goes out with the caller's buffer as the frame's tail. `writeAtWithMap` is the same exchange for
 *   WriteAtWithMap, always with the data.
 * - `readAt` sends ReadAt and copies the data of ReadAtResponse into the buffer; ReadAtResponseErr is an
 *   `IoFailure` ("remote read error").
 * - Connection failures of the device operations are `IoFailure`s naming the operation; the `send*` calls fail
 *   with the `ProtocolError` itself, and with a `MalformedFrame` when the peer answers with the wrong packet.
 * - `handleNeedAt` / `handleDontNeedAt` take the destination's hints until the connection ends and hand each
 *   block the range touches (clipped to the device) to a callback, which prioritises it in (or removes it
 *   from) the migration's order. A malformed hint is logged, counted in `malformedPackets`, and skipped.
 * - `handleReadAt` / `handleReadByHash` answer the destination's reads (from a device, or by hash from a
 *   lookup) until the connection ends, each request in its own fiber so a slow read does not hold up the next,
 *   with urgent responses since a reader on the destination is waiting. A malformed or out-of-range request
 *   (counted in `malformedPackets`), and a read that fails, get the error response and are logged.
 *
 * @since 0.1.0
 */
import type { DecodeError } from "@tessera/codec/DecodeError"
import * as SiloCompression from "@tessera/codec/SiloCompression"
import * as SiloPacket from "@tessera/codec/SiloPacket"
import * as Blocks from "@tessera/storage/Blocks"
import { type BlockDevice, clip, clipEffect } from "@tessera/storage/Provider"
import * as StorageError from "@tessera/storage/StorageError"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Result from "effect/Result"
import { createHash } from "node:crypto"
import type * as PacketConnection from "./PacketConnection.ts"
import * as ProtocolError from "./ProtocolError.ts"

/**
 * How block data travels: plain, or compressed with one of Silo's compressions.
 *
 * @since 0.1.0
 * @category models
 */
export type Compression = SiloPacket.WriteAtCompression

/**
 * A block the destination can fetch elsewhere (offset, length, sha256, location), as AlternateSources sends it.
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
  /** Compression of the WriteAt packets; default `"None"`. Can be changed later with `setCompression`. */
  readonly compression?: Compression | undefined
  /** Response timeout of every request; default the connection's. */
  readonly timeout?: Duration.Input | undefined
  /** The device name in errors; default `to-protocol(dev)`. */
  readonly name?: string | undefined
  /**
   * Send every block as WriteAtHash and never its data (swarming, spec §3.9); default false. The destination
   * then fetches each block with ReadByHash, so run `handleReadByHash` next to the migration. Can be changed
   * later with `setSendNoData`.
   */
  readonly sendNoData?: boolean | undefined
}

/**
 * The source side of one device.
 *
 * @since 0.1.0
 * @category models
 */
export interface ToProtocol extends BlockDevice {
  /** The device id on the connection. */
  readonly dev: number
  /** The compression of the next WriteAts. */
  readonly compression: () => Compression
  /** Sets the compression of the next WriteAts. */
  readonly setCompression: (compression: Compression) => void
  /** Sends DevInfo (size = this device's size); no response is expected. */
  readonly sendDevInfo: (
    name: string,
    blockSize: number,
    schema?: string
  ) => Effect.Effect<void, ProtocolError.ProtocolError>
  /** Sends an Event (a type of `SiloPacket.EventType`, or custom data) and waits for EventResponse. */
  readonly sendEvent: (
    type: number,
    custom?: SiloPacket.EventCustom
  ) => Effect.Effect<void, ProtocolError.ProtocolError>
  /** Sends the dirty blocks (in units of `blockSize`) and waits for DirtyListResponse. */
  readonly sendDirtyList: (
    blockSize: number,
    blocks: Iterable<number>
  ) => Effect.Effect<void, ProtocolError.ProtocolError>
  /** Sends per-block sha256 hashes and waits for HashesResponse. */
  readonly sendHashes: (hashes: ReadonlyMap<number, Uint8Array>) => Effect.Effect<void, ProtocolError.ProtocolError>
  /** Tells the destination it already has these blocks and waits for the WriteAt response. */
  readonly sendYouAlreadyHave: (
    blockSize: number,
    blocks: Iterable<number>
  ) => Effect.Effect<void, ProtocolError.ProtocolError>
  /** Sends RemoveDev; no response is expected. */
  readonly sendRemoveDev: Effect.Effect<void, ProtocolError.ProtocolError>
  /** Whether the next WriteAts send hashes instead of data (swarming). */
  readonly sendNoData: () => boolean
  /** Sets whether the next WriteAts send hashes instead of data (swarming). */
  readonly setSendNoData: (on: boolean) => void
  /**
   * Sends AlternateSources (urgent; no response is expected) and keeps the list for the WriteAtHash substitution
   * of `writeAt`, replacing the previous one. Every hash must be 32 bytes (a `BadArgument` otherwise).
   */
  readonly sendAlternateSources: (
    sources: ReadonlyArray<AlternateSource>
  ) => Effect.Effect<void, ProtocolError.ProtocolError>
  /** The alternate sources `writeAt` consults: the last list sent. */
  readonly alternateSources: () => ReadonlyArray<AlternateSource>
  /**
   * Writes `data` at `offset` as WriteAtWithMap with a map of opaque u64 ids (Silo's MappedStorage) and waits
   * for the response, as `writeAt` does.
   */
  readonly writeAtWithMap: (
    data: Uint8Array,
    offset: number,
    idMap: ReadonlyMap<bigint, bigint>
  ) => Effect.Effect<number, StorageError.StorageError>
  /** Sends RemoveFromMap with these ids (urgent); no response is expected. */
  readonly sendRemoveFromMap: (ids: Iterable<bigint>) => Effect.Effect<void, ProtocolError.ProtocolError>
  /**
   * Answers the destination's ReadAt requests from `device` until the connection ends (then succeeds), each in
   * its own fiber; fork it next to the migration.
   */
  readonly handleReadAt: (device: BlockDevice) => Effect.Effect<void>
  /**
   * Answers the destination's ReadByHash requests until the connection ends (then succeeds): `lookup` gives
   * the block with that sha256, or `undefined` when there is none (answered with ReadByHashResponseErr).
   */
  readonly handleReadByHash: (
    lookup: (hash: Uint8Array) => Effect.Effect<Uint8Array | undefined>
  ) => Effect.Effect<void>
  /** Malformed requests from the destination skipped so far (hints, ReadAt, ReadByHash). */
  readonly malformedPackets: () => number
  /**
   * Takes NeedAt hints until the connection ends (then succeeds) and calls `onBlock` for every block of
   * `blockSize` each one touches, in order; fork it next to the migration.
   */
  readonly handleNeedAt: (
    blockSize: number,
    onBlock: (block: number) => Effect.Effect<void>
  ) => Effect.Effect<void>
  /** The same for DontNeedAt hints. */
  readonly handleDontNeedAt: (
    blockSize: number,
    onBlock: (block: number) => Effect.Effect<void>
  ) => Effect.Effect<void>
}

const unexpected = (what: string, detail: string): ProtocolError.ProtocolError =>
  ProtocolError.make(new ProtocolError.MalformedFrame({ stream: -1, offset: 0, detail: `${what}: ${detail}` }))

/** A packet to send: the payload, and block data to send after it without copying. */
interface WritePacket {
  readonly payload: Uint8Array
  readonly tail?: Uint8Array | undefined
}

const sha256 = (data: Uint8Array): Uint8Array => createHash("sha256").update(data).digest()

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a.buffer, a.byteOffset, a.length).equals(b)

const hex = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("hex")

/**
 * Makes the source side of device `dev` of `size` bytes on `connection`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  connection: PacketConnection.PacketConnection,
  dev: number,
  size: number,
  options: Options = {}
): ToProtocol => {
  const name = options.name ?? `to-protocol(${dev})`
  const requestOptions = options.timeout === undefined ? {} : { timeout: options.timeout }
  const urgent = { ...requestOptions, urgent: true }
  let compression: Compression = options.compression ?? "None"
  let sendNoData = options.sendNoData === true
  let alternateSources: ReadonlyArray<AlternateSource> = []
  // The first source of each exact (offset, length), which is the only one §3.1 considers.
  let alternateIndex = new Map<string, AlternateSource>()
  let malformed = 0

  const ioFailure = (operation: string, cause: unknown): StorageError.StorageError =>
    StorageError.make(name, new StorageError.IoFailure({ operation, cause }))

  const skip = (what: string, detail: string): Effect.Effect<void> =>
    Effect.suspend(() => {
      malformed++
      return Effect.logWarning(`${name}: skipping a malformed ${what}: ${detail}`)
    })

  /** Sends a request and checks that the response starts with `expected`. */
  const requestExpecting = (
    what: string,
    payload: Uint8Array,
    expected: number
  ): Effect.Effect<void, ProtocolError.ProtocolError> =>
    Effect.flatMap(connection.request(dev, payload, urgent), (response) =>
      response[0] === expected
        ? Effect.void
        : Effect.fail(
          unexpected(what, `expected response 0x${expected.toString(16)}, got 0x${(response[0] ?? 0).toString(16)}`)
        ))

  /** Sends a write of `length` bytes and turns its WriteAtResponse into the count written. */
  const awaitWrite = (
    { payload, tail }: WritePacket,
    length: number
  ): Effect.Effect<number, StorageError.StorageError> =>
    connection.request(dev, payload, tail === undefined ? requestOptions : { ...requestOptions, tail }).pipe(
      Effect.mapError((error) => ioFailure("write", error)),
      Effect.flatMap((response) => {
        const decoded = SiloPacket.decodeWriteAtResponse(response)
        if (Result.isFailure(decoded)) return Effect.fail(ioFailure("write", decoded.failure))
        const packet = decoded.success
        return packet._tag === "WriteAtResponseErr"
          ? Effect.fail(ioFailure("write", new Error(SiloPacket.REMOTE_WRITE_ERROR)))
          : Effect.succeed(Math.min(packet.bytes, length))
      })
    )

  /**
   * The packet `writeAt` sends for `body` at `offset` (spec §3.1's decision list). A plain WriteAt is its prefix
   * with the data as the frame's tail, so the block goes to the socket without being copied.
   */
  const writePacket = (body: Uint8Array, offset: number): WritePacket => {
    const length = body.length
    const hashOf = (hash: Uint8Array): WritePacket => ({
      payload: SiloPacket.encode({
        _tag: "WriteAtHash",
        dataLocation: SiloPacket.DataLocation.S3,
        offset,
        length,
        hash
      })
    })
    if (sendNoData) return hashOf(sha256(body))
    const source = alternateIndex.get(`${offset}:${length}`)
    if (source !== undefined && sameBytes(sha256(body), source.hash)) return hashOf(source.hash)
    if (compression !== "None") {
      return { payload: SiloPacket.encode({ _tag: "WriteAt", offset, data: body, compression }) }
    }
    const prefix = new Uint8Array(SiloPacket.WRITE_AT_PREFIX_SIZE)
    SiloPacket.encodeWriteAtPrefixInto(prefix, 0, offset)
    return { payload: prefix, tail: body }
  }

  const writeAt = (data: Uint8Array, offset: number): Effect.Effect<number, StorageError.StorageError> =>
    Effect.flatMap(clipEffect(name, size, offset, data.length), (length) => {
      if (length === 0) return Effect.succeed(0)
      const body = length === data.length ? data : data.subarray(0, length)
      return awaitWrite(writePacket(body, offset), length)
    })

  const writeAtWithMap = (
    data: Uint8Array,
    offset: number,
    idMap: ReadonlyMap<bigint, bigint>
  ): Effect.Effect<number, StorageError.StorageError> =>
    Effect.flatMap(clipEffect(name, size, offset, data.length), (length) => {
      const body = length === data.length ? data : data.subarray(0, length)
      return awaitWrite({ payload: SiloPacket.encode({ _tag: "WriteAtWithMap", offset, idMap, data: body }) }, length)
    })

  const readAt = (buffer: Uint8Array, offset: number): Effect.Effect<number, StorageError.StorageError> =>
    Effect.flatMap(clipEffect(name, size, offset, buffer.length), (length) => {
      if (length === 0) return Effect.succeed(0)
      return connection.request(dev, SiloPacket.encode({ _tag: "ReadAt", offset, length }), requestOptions).pipe(
        Effect.mapError((error) => ioFailure("read", error)),
        Effect.flatMap((response) => {
          const decoded = SiloPacket.decodeReadAtResponse(response)
          if (Result.isFailure(decoded)) return Effect.fail(ioFailure("read", decoded.failure))
          const packet = decoded.success
          if (packet._tag === "ReadAtResponseErr") {
            return Effect.fail(ioFailure("read", new Error(SiloPacket.REMOTE_READ_ERROR)))
          }
          const n = Math.min(packet.bytes, packet.data.length, length)
          buffer.set(packet.data.subarray(0, n))
          return Effect.succeed(n)
        })
      )
    })

  const sendAlternateSources = (
    sources: ReadonlyArray<AlternateSource>
  ): Effect.Effect<void, ProtocolError.ProtocolError> =>
    Effect.suspend(() => {
      const bad = sources.findIndex((source) => source.hash.length !== 32)
      if (bad !== -1) {
        return Effect.fail(ProtocolError.make(
          new ProtocolError.BadArgument({
            detail: `alternate source ${bad}: the hash is ${sources[bad]!.hash.length} bytes, must be 32`
          })
        ))
      }
      const index = new Map<string, AlternateSource>()
      for (const source of sources) {
        const key = `${source.offset}:${source.length}`
        if (!index.has(key)) index.set(key, source)
      }
      alternateSources = sources
      alternateIndex = index
      return Effect.asVoid(
        connection.send(dev, 0, SiloPacket.encode({ _tag: "AlternateSources", sources }), { urgent: true })
      )
    })

  /**
   * Takes requests for `command` until the connection ends (then succeeds), handing each to `handle` in its own
   * fiber; `handle` must not fail.
   */
  const serveEach = (
    command: number,
    handle: (request: PacketConnection.Request) => Effect.Effect<void>
  ): Effect.Effect<void> =>
    Effect.scoped(Effect.gen(function*() {
      const run = yield* FiberSet.makeRuntime<never, void, never>()
      // No yield between requests, as in FromProtocol: the responses of one read leave in one write.
      yield* Effect.ignore(Effect.forever(
        Effect.map(connection.waitForCommand(dev, command), (request) => {
          run(handle(request))
        }),
        { disableYield: true }
      ))
    }))

  const respond = (id: number, packet: SiloPacket.Packet): Effect.Effect<void> =>
    Effect.ignore(connection.respond(dev, id, SiloPacket.encode(packet), { urgent: true }))

  const handleReadAt = (device: BlockDevice): Effect.Effect<void> =>
    serveEach(SiloPacket.Command.ReadAt, (request) => {
      const refuse = respond(request.id, { _tag: "ReadAtResponseErr" })
      const decoded = SiloPacket.decodeReadAt(request.payload)
      if (Result.isFailure(decoded)) return Effect.andThen(skip("ReadAt", decoded.failure.message), refuse)
      const { length, offset } = decoded.success
      // The whole requested length is sent back (as Silo does), so it must fit the device.
      if (Result.isFailure(clip(device.name, device.size, offset, length)) || length > device.size) {
        return Effect.andThen(skip("ReadAt", `range ${offset}+${length} is outside 0..${device.size}`), refuse)
      }
      const buffer = new Uint8Array(length)
      return device.readAt(buffer, offset).pipe(
        Effect.matchEffect({
          onFailure: (error) => Effect.andThen(Effect.logWarning(`${name}: ReadAt failed: ${error.message}`), refuse),
          onSuccess: (bytes) => respond(request.id, { _tag: "ReadAtResponse", bytes, data: buffer })
        })
      )
    })

  const handleReadByHash = (
    lookup: (hash: Uint8Array) => Effect.Effect<Uint8Array | undefined>
  ): Effect.Effect<void> =>
    serveEach(SiloPacket.Command.ReadByHash, (request) => {
      const refuse = (error: string) => respond(request.id, { _tag: "ReadByHashResponseErr", error })
      const decoded = SiloPacket.decodeReadByHash(request.payload)
      if (Result.isFailure(decoded)) {
        return Effect.andThen(skip("ReadByHash", decoded.failure.message), refuse("invalid packet"))
      }
      const { hash } = decoded.success
      return lookup(hash).pipe(
        Effect.catchCause((cause) =>
          Effect.as(Effect.logWarning(`${name}: ReadByHash ${hex(hash)} failed`, cause), undefined)
        ),
        Effect.flatMap((data) =>
          data === undefined
            ? refuse(`no block with hash ${hex(hash)}`)
            : respond(request.id, { _tag: "ReadByHashResponse", data })
        )
      )
    })

  const handleHint = (
    command: number,
    what: "NeedAt" | "DontNeedAt",
    blockSize: number,
    onBlock: (block: number) => Effect.Effect<void>
  ): Effect.Effect<void> => {
    const decode = (
      bytes: Uint8Array
    ): Result.Result<{ readonly offset: number; readonly length: number }, DecodeError> =>
      what === "NeedAt" ? SiloPacket.decodeNeedAt(bytes) : SiloPacket.decodeDontNeedAt(bytes)
    const one = Effect.flatMap(connection.waitForCommand(dev, command), (request) => {
      const decoded = decode(request.payload)
      if (Result.isFailure(decoded)) return skip(what, decoded.failure.message)
      const { length, offset } = decoded.success
      if (offset < 0 || length <= 0 || offset >= size) return Effect.void
      const { end, first } = Blocks.touched(offset, length, size, blockSize)
      return Effect.gen(function*() {
        for (let block = first; block < end; block++) yield* onBlock(block)
      })
    })
    // The loop ends with the connection (every wait then fails).
    return Effect.ignore(Effect.forever(one))
  }

  return {
    name,
    size,
    dev,
    readAt,
    writeAt,
    flush: Effect.void,
    cancelWrites: () => Effect.void,
    compression: () => compression,
    setCompression: (next) => {
      compression = next
    },
    sendDevInfo: (deviceName, blockSize, schema = "") =>
      Effect.asVoid(
        connection.send(
          dev,
          0,
          SiloPacket.encode({ _tag: "DevInfo", size, blockSize, name: deviceName, schema }),
          { urgent: true }
        )
      ),
    sendEvent: (type, custom) =>
      requestExpecting(
        "Event",
        SiloPacket.encode(custom === undefined ? { _tag: "Event", type } : { _tag: "Event", type, custom }),
        SiloPacket.Command.EventResponse
      ),
    sendDirtyList: (blockSize, blocks) =>
      requestExpecting(
        "DirtyList",
        SiloPacket.encode({ _tag: "DirtyList", blockSize, blocks: [...blocks] }),
        SiloPacket.Command.DirtyListResponse
      ),
    sendHashes: (hashes) =>
      requestExpecting("Hashes", SiloPacket.encode({ _tag: "Hashes", hashes }), SiloPacket.Command.HashesResponse),
    sendYouAlreadyHave: (blockSize, blocks) =>
      requestExpecting(
        "YouAlreadyHave",
        SiloPacket.encode({ _tag: "YouAlreadyHave", blockSize, blocks: [...blocks] }),
        SiloPacket.Command.WriteAtResponse
      ),
    sendRemoveDev: Effect.asVoid(connection.send(dev, 0, SiloPacket.encode({ _tag: "RemoveDev" }), { urgent: true })),
    sendNoData: () => sendNoData,
    setSendNoData: (on) => {
      sendNoData = on
    },
    sendAlternateSources,
    alternateSources: () => alternateSources,
    writeAtWithMap,
    sendRemoveFromMap: (ids) =>
      Effect.asVoid(
        connection.send(dev, 0, SiloPacket.encode({ _tag: "RemoveFromMap", ids: [...ids] }), { urgent: true })
      ),
    handleNeedAt: (blockSize, onBlock) => handleHint(SiloPacket.Command.NeedAt, "NeedAt", blockSize, onBlock),
    handleDontNeedAt: (blockSize, onBlock) =>
      handleHint(SiloPacket.Command.DontNeedAt, "DontNeedAt", blockSize, onBlock),
    handleReadAt,
    handleReadByHash,
    malformedPackets: () => malformed
  }
}

/**
 * Every compression `setCompression` takes.
 *
 * @since 0.1.0
 * @category constants
 */
export const compressions: ReadonlyArray<Compression> = [
  "None",
  ...Object.keys(SiloCompression.CompressionType) as Array<SiloCompression.Compression>
]
