/**
 * The source side of a migration over a packet connection (Silo's `ToProtocol`): a `BlockDevice` for one
 * device id whose writes travel to the peer as WriteAt packets and whose reads are ReadAt requests, so a
 * `Migrator` can write into it directly; plus the control packets of the migration (DevInfo, DirtyList, Event,
 * Hashes, YouAlreadyHave, RemoveDev) and the handlers of the destination's hints (NeedAt, DontNeedAt).
 *
 * - `writeAt` sends a plain WriteAt, or a compressed one (RLE, zeroes or gzip) when `compression` says so, and
 *   waits for WriteAtResponse: its count is what `writeAt` returns; WriteAtResponseErr is an `IoFailure`
 *   ("remote write error"). A plain WriteAt costs one copy of the data, into the packet (a packet connection
 *   sends one contiguous payload per frame; the connection itself writes payloads over 4 KiB by reference).
 * - `readAt` sends ReadAt and copies the data of ReadAtResponse into the buffer; ReadAtResponseErr is an
 *   `IoFailure` ("remote read error").
 * - Connection failures of the device operations are `IoFailure`s naming the operation; the `send*` calls fail
 *   with the `ProtocolError` itself, and with a `MalformedFrame` when the peer answers with the wrong packet.
 * - `handleNeedAt` / `handleDontNeedAt` take the destination's hints until the connection ends and hand each
 *   block the range touches (clipped to the device) to a callback, which prioritises it in (or removes it
 *   from) the migration's order. A malformed hint is logged and skipped.
 *
 * @since 0.1.0
 */
import type { DecodeError } from "@tessera/codec/DecodeError"
import * as SiloCompression from "@tessera/codec/SiloCompression"
import * as SiloPacket from "@tessera/codec/SiloPacket"
import * as Blocks from "@tessera/storage/Blocks"
import { type BlockDevice, clipEffect } from "@tessera/storage/Provider"
import * as StorageError from "@tessera/storage/StorageError"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
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

  const ioFailure = (operation: string, cause: unknown): StorageError.StorageError =>
    StorageError.make(name, new StorageError.IoFailure({ operation, cause }))

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

  const writeAt = (data: Uint8Array, offset: number): Effect.Effect<number, StorageError.StorageError> =>
    Effect.flatMap(clipEffect(name, size, offset, data.length), (length) => {
      if (length === 0) return Effect.succeed(0)
      const body = length === data.length ? data : data.subarray(0, length)
      let payload: Uint8Array
      if (compression === "None") {
        payload = new Uint8Array(SiloPacket.WRITE_AT_PREFIX_SIZE + length)
        SiloPacket.encodeWriteAtPrefixInto(payload, 0, offset)
        payload.set(body, SiloPacket.WRITE_AT_PREFIX_SIZE)
      } else {
        payload = SiloPacket.encode({ _tag: "WriteAt", offset, data: body, compression })
      }
      return connection.request(dev, payload, requestOptions).pipe(
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
      if (Result.isFailure(decoded)) {
        return Effect.logWarning(`${name}: skipping a malformed ${what}: ${decoded.failure.message}`)
      }
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
    handleNeedAt: (blockSize, onBlock) => handleHint(SiloPacket.Command.NeedAt, "NeedAt", blockSize, onBlock),
    handleDontNeedAt: (blockSize, onBlock) =>
      handleHint(SiloPacket.Command.DontNeedAt, "DontNeedAt", blockSize, onBlock)
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
