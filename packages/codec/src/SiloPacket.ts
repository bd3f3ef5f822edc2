/**
 * Silo packets (the payload of a frame): a tagged union of every request (0x01–0x0E) and response (0x81–0x89),
 * with one encoder and one decoder per packet plus `encode`/`decode` that dispatch on the command byte (and on
 * byte 1 for the WriteAt family, 0x02).
 *
 * Decoding never throws. Every check Go performs gives the same verdict (`invalid packet`, `invalid range in
 * compressed data`, `unknown compression type N`), and every place where Go indexes past the end and panics
 * (counted lists, DevInfo's schema length, RLE bodies, empty responses) is a `DecodeError` instead. Counts are
 * checked against the bytes present before any array is allocated. Byte fields are views into the payload.
 *
 * 64-bit offsets, lengths and sizes are JS numbers; a wire value outside the safe integer range is a
 * `DecodeError`. Opaque 64-bit ids (WriteAtWithMap's map, RemoveFromMap) are bigints.
 *
 * Encoders compute the exact size, allocate once and fill. They trust field ranges as documented on each type
 * (u32 fields are written modulo 2^32, as Go truncates), except where a wrong value would corrupt the framing of
 * the packet itself: a DevInfo name over 65535 UTF-8 bytes (Go truncates the u16 length and writes the whole
 * name) and sha256 fields that are not 32 bytes throw a `RangeError`.
 *
 * @since 0.1.0
 */
import * as Result from "effect/Result"
import { type Decoded, DecodeError, fail } from "./DecodeError.ts"
import {
  ByteWriter,
  fromUtf8,
  i32le,
  i64le,
  putI64le,
  u16le,
  u32le,
  u64le,
  u64leBig,
  utf8,
  view
} from "./internal/bytes.ts"
import * as SiloCompression from "./SiloCompression.ts"

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * Command bytes (payload byte 0). A response has bit 0x80 set.
 *
 * @since 0.1.0
 * @category constants
 */
export const Command = {
  ReadAt: 0x01,
  WriteAt: 0x02,
  NeedAt: 0x03,
  DontNeedAt: 0x04,
  DirtyList: 0x05,
  DevInfo: 0x06,
  Event: 0x07,
  Hashes: 0x08,
  WriteAtWithMap: 0x09,
  RemoveDev: 0x0a,
  RemoveFromMap: 0x0b,
  AlternateSources: 0x0c,
  DeviceGroupInfo: 0x0d,
  ReadByHash: 0x0e,
  ReadAtResponse: 0x81,
  ReadAtResponseErr: 0x82,
  WriteAtResponse: 0x83,
  WriteAtResponseErr: 0x84,
  EventResponse: 0x85,
  HashesResponse: 0x86,
  DirtyListResponse: 0x87,
  ReadByHashResponse: 0x88,
  ReadByHashResponseErr: 0x89
} as const

/**
 * WriteAt subtypes (payload byte 1 when byte 0 is 0x02).
 *
 * @since 0.1.0
 * @category constants
 */
export const WriteType = {
  Data: 0,
  Hash: 1,
  CompRLE: 2,
  YouAlreadyHave: 3,
  CompGzip: 4,
  CompZeroes: 5
} as const

/**
 * Event types. Values outside this table decode fine and are kept as they are.
 *
 * @since 0.1.0
 * @category constants
 */
export const EventType = {
  PreLock: 0,
  PostLock: 1,
  PreUnlock: 2,
  PostUnlock: 3,
  Completed: 4,
  Custom: 5
} as const

/**
 * Where a WriteAtHash's block can be fetched from.
 *
 * @since 0.1.0
 * @category constants
 */
export const DataLocation = { S3: 1, BaseImage: 2 } as const

/**
 * ReadAt (0x01): read `length` bytes at `offset` from the peer.
 *
 * @since 0.1.0
 * @category models
 */
export interface ReadAt {
  readonly _tag: "ReadAt"
  /** i64 byte offset. */
  readonly offset: number
  /** i32 byte count. */
  readonly length: number
}

/**
 * NeedAt (0x03): the destination asks for this range first. No response.
 *
 * @since 0.1.0
 * @category models
 */
export interface NeedAt {
  readonly _tag: "NeedAt"
  /** i64 byte offset. */
  readonly offset: number
  /** i32 byte count. */
  readonly length: number
}

/**
 * DontNeedAt (0x04): the destination wrote this range itself; do not send it. No response.
 *
 * @since 0.1.0
 * @category models
 */
export interface DontNeedAt {
  readonly _tag: "DontNeedAt"
  /** i64 byte offset. */
  readonly offset: number
  /** i32 byte count. */
  readonly length: number
}

/**
 * ReadAtResponse (0x81): `bytes` is the count the provider returned, independent of `data`, which is the whole
 * requested buffer.
 *
 * @since 0.1.0
 * @category models
 */
export interface ReadAtResponse {
  readonly _tag: "ReadAtResponse"
  /** u32. */
  readonly bytes: number
  readonly data: Uint8Array
}

/**
 * ReadAtResponseErr (0x82): the read failed. The error text is not transmitted; it reads as
 * {@link REMOTE_READ_ERROR}.
 *
 * @since 0.1.0
 * @category models
 */
export interface ReadAtResponseErr {
  readonly _tag: "ReadAtResponseErr"
}

/**
 * How a WriteAt's data travels: plain (subtype 0) or compressed (subtypes 2, 4, 5).
 *
 * @since 0.1.0
 * @category models
 */
export type WriteAtCompression = "None" | SiloCompression.Compression

/**
 * WriteAt (0x02, subtypes 0, 2, 4, 5): write `data` at `offset`. `data` is always the uncompressed bytes;
 * `compression` says how it is (or was) sent, so re-encoding a decoded packet gives the same subtype.
 *
 * @since 0.1.0
 * @category models
 */
export interface WriteAt {
  readonly _tag: "WriteAt"
  /** i64 byte offset. */
  readonly offset: number
  readonly data: Uint8Array
  readonly compression: WriteAtCompression
}

/**
 * WriteAtHash (0x02/1): the destination should fetch this block by its hash from `dataLocation`.
 *
 * @since 0.1.0
 * @category models
 */
export interface WriteAtHash {
  readonly _tag: "WriteAtHash"
  /** u8, see {@link DataLocation}. */
  readonly dataLocation: number
  /** i64 byte offset. */
  readonly offset: number
  /** i64 byte count. */
  readonly length: number
  /** The rest of the payload, no length prefix (a sha256 in practice; may be empty). */
  readonly hash: Uint8Array
}

/**
 * YouAlreadyHave (0x02/3): blocks the destination already holds (CoW-aware migration).
 *
 * @since 0.1.0
 * @category models
 */
export interface YouAlreadyHave {
  readonly _tag: "YouAlreadyHave"
  /** u64. */
  readonly blockSize: number
  /** u32 block indices. */
  readonly blocks: ReadonlyArray<number>
}

/**
 * WriteAtResponse (0x83): the write succeeded.
 *
 * @since 0.1.0
 * @category models
 */
export interface WriteAtResponse {
  readonly _tag: "WriteAtResponse"
  /** u32 bytes written. */
  readonly bytes: number
}

/**
 * WriteAtResponseErr (0x84): the write failed. The text is not transmitted; it reads as
 * {@link REMOTE_WRITE_ERROR}.
 *
 * @since 0.1.0
 * @category models
 */
export interface WriteAtResponseErr {
  readonly _tag: "WriteAtResponseErr"
}

/**
 * DirtyList (0x05): blocks the destination must invalidate (they will be re-sent).
 *
 * @since 0.1.0
 * @category models
 */
export interface DirtyList {
  readonly _tag: "DirtyList"
  /** u32 (the destination ignores it). */
  readonly blockSize: number
  /** u32 block indices. */
  readonly blocks: ReadonlyArray<number>
}

/**
 * DirtyListResponse (0x87).
 *
 * @since 0.1.0
 * @category models
 */
export interface DirtyListResponse {
  readonly _tag: "DirtyListResponse"
}

/**
 * DevInfo (0x06): a device's size, migration block size, name and schema. Also the body of each
 * DeviceGroupInfo entry.
 *
 * @since 0.1.0
 * @category models
 */
export interface DevInfo {
  readonly _tag: "DevInfo"
  /** u64 device size in bytes. */
  readonly size: number
  /** u32 migration block size. */
  readonly blockSize: number
  /** At most 65535 UTF-8 bytes. Invalid UTF-8 on the wire decodes with U+FFFD replacements. */
  readonly name: string
  /** HCL text in device groups; may be empty. */
  readonly schema: string
}

/**
 * The custom part of an Event of type Custom (5).
 *
 * @since 0.1.0
 * @category models
 */
export interface EventCustom {
  /** u8; the device group uses 0 on dev 0 for application data. */
  readonly type: number
  readonly payload: Uint8Array
}

/**
 * Event (0x07). `custom` is present when decoded with type Custom; the encoder writes it only for that type
 * (absent: custom type 0 and no payload), as Go does.
 *
 * @since 0.1.0
 * @category models
 */
export interface Event {
  readonly _tag: "Event"
  /** u8, see {@link EventType}; unknown values are kept. */
  readonly type: number
  readonly custom?: EventCustom
}

/**
 * EventResponse (0x85): sent after the destination handled the event.
 *
 * @since 0.1.0
 * @category models
 */
export interface EventResponse {
  readonly _tag: "EventResponse"
}

/**
 * Hashes (0x08): the sha256 (32 bytes) of each listed block.
 *
 * @since 0.1.0
 * @category models
 */
export interface Hashes {
  readonly _tag: "Hashes"
  /** u32 block index to 32-byte sha256. */
  readonly hashes: ReadonlyMap<number, Uint8Array>
}

/**
 * HashesResponse (0x86).
 *
 * @since 0.1.0
 * @category models
 */
export interface HashesResponse {
  readonly _tag: "HashesResponse"
}

/**
 * WriteAtWithMap (0x09): a write plus a map of opaque u64 block ids (MappedStorage).
 *
 * @since 0.1.0
 * @category models
 */
export interface WriteAtWithMap {
  readonly _tag: "WriteAtWithMap"
  /** i64 byte offset. */
  readonly offset: number
  /** u64 to u64. */
  readonly idMap: ReadonlyMap<bigint, bigint>
  readonly data: Uint8Array
}

/**
 * RemoveDev (0x0A).
 *
 * @since 0.1.0
 * @category models
 */
export interface RemoveDev {
  readonly _tag: "RemoveDev"
}

/**
 * RemoveFromMap (0x0B): opaque u64 ids to drop from the destination's map.
 *
 * @since 0.1.0
 * @category models
 */
export interface RemoveFromMap {
  readonly _tag: "RemoveFromMap"
  readonly ids: ReadonlyArray<bigint>
}

/**
 * One AlternateSources entry: a block the destination can fetch elsewhere.
 *
 * @since 0.1.0
 * @category models
 */
export interface AlternateSource {
  /** i64 byte offset. */
  readonly offset: number
  /** i64 byte count. */
  readonly length: number
  /** 32-byte sha256 of the block. */
  readonly hash: Uint8Array
  /** Silo writes `"<endpoint> <bucket> <deviceName>"`. */
  readonly location: string
}

/**
 * AlternateSources (0x0C), in the order sent.
 *
 * @since 0.1.0
 * @category models
 */
export interface AlternateSources {
  readonly _tag: "AlternateSources"
  readonly sources: ReadonlyArray<AlternateSource>
}

/**
 * DeviceGroupInfo (0x0D): every device of a group, by u32 index (1..N in Silo).
 *
 * @since 0.1.0
 * @category models
 */
export interface DeviceGroupInfo {
  readonly _tag: "DeviceGroupInfo"
  readonly devices: ReadonlyMap<number, DevInfo>
}

/**
 * ReadByHash (0x0E): read the block whose sha256 is `hash`.
 *
 * @since 0.1.0
 * @category models
 */
export interface ReadByHash {
  readonly _tag: "ReadByHash"
  /** 32 bytes. */
  readonly hash: Uint8Array
}

/**
 * ReadByHashResponse (0x88).
 *
 * @since 0.1.0
 * @category models
 */
export interface ReadByHashResponse {
  readonly _tag: "ReadByHashResponse"
  readonly data: Uint8Array
}

/**
 * ReadByHashResponseErr (0x89): unlike the ReadAt and WriteAt errors, the text is transmitted.
 *
 * @since 0.1.0
 * @category models
 */
export interface ReadByHashResponseErr {
  readonly _tag: "ReadByHashResponseErr"
  readonly error: string
}

/**
 * Every Silo packet.
 *
 * @since 0.1.0
 * @category models
 */
export type Packet =
  | ReadAt
  | NeedAt
  | DontNeedAt
  | ReadAtResponse
  | ReadAtResponseErr
  | WriteAt
  | WriteAtHash
  | YouAlreadyHave
  | WriteAtResponse
  | WriteAtResponseErr
  | DirtyList
  | DirtyListResponse
  | DevInfo
  | Event
  | EventResponse
  | Hashes
  | HashesResponse
  | WriteAtWithMap
  | RemoveDev
  | RemoveFromMap
  | AlternateSources
  | DeviceGroupInfo
  | ReadByHash
  | ReadByHashResponse
  | ReadByHashResponseErr

/**
 * The Go name of a packet: its `_tag`, except that compressed WriteAts are `WriteAtCompRLE`, `WriteAtCompGzip`
 * and `WriteAtCompZeroes`.
 *
 * @since 0.1.0
 * @category models
 */
export type PacketName = Packet["_tag"] | `WriteAtComp${SiloCompression.Compression}`

/**
 * The error text Go gives a ReadAtResponseErr, whose own text is not transmitted.
 *
 * @since 0.1.0
 * @category constants
 */
export const REMOTE_READ_ERROR = "remote read error"

/**
 * The error text Go gives a WriteAtResponseErr, whose own text is not transmitted.
 *
 * @since 0.1.0
 * @category constants
 */
export const REMOTE_WRITE_ERROR = "remote write error"

/**
 * Decoder options.
 *
 * @since 0.1.0
 * @category models
 */
export type DecodeOptions = SiloCompression.DecompressOptions

/**
 * The Go name of a packet (see {@link PacketName}).
 *
 * @since 0.1.0
 * @category getters
 */
export const nameOf = (packet: Packet): PacketName =>
  packet._tag === "WriteAt" && packet.compression !== "None" ? `WriteAtComp${packet.compression}` : packet._tag

/**
 * The name of an event type, or `"Unknown"` for a value outside {@link EventType}.
 *
 * @since 0.1.0
 * @category getters
 */
export const eventTypeName = (type: number): string => EVENT_TYPE_NAMES[type] ?? "Unknown"

const EVENT_TYPE_NAMES = ["PreLock", "PostLock", "PreUnlock", "PostUnlock", "Completed", "Custom"]

// -----------------------------------------------------------------------------
// encoding
// -----------------------------------------------------------------------------

const HASH_SIZE = 32

const checkHash = (packet: string, hash: Uint8Array): void => {
  if (hash.length !== HASH_SIZE) {
    throw new RangeError(`${packet}: a sha256 hash is ${HASH_SIZE} bytes, got ${hash.length}`)
  }
}

const range = (command: number, offset: number, length: number): Uint8Array =>
  new ByteWriter(13).u8(command).i64le(offset).u32le(length).bytes

const one = (command: number): Uint8Array => new Uint8Array([command])

const blockList = (head: ByteWriter, blocks: ReadonlyArray<number>): Uint8Array => {
  head.u32le(blocks.length)
  for (const block of blocks) head.u32le(block)
  return head.bytes
}

interface DevInfoBytes {
  readonly info: DevInfo
  readonly name: Uint8Array
  readonly schema: Uint8Array
  readonly size: number
}

const devInfoBytes = (info: DevInfo): DevInfoBytes => {
  const name = utf8(info.name)
  if (name.length > 0xffff) {
    throw new RangeError(`DevInfo: the name is ${name.length} UTF-8 bytes; the wire format allows at most 65535`)
  }
  const schema = utf8(info.schema)
  return { info, name, schema, size: 19 + name.length + schema.length }
}

const writeDevInfo = (w: ByteWriter, d: DevInfoBytes): void => {
  w.u8(Command.DevInfo).i64le(d.info.size).u32le(d.info.blockSize).u16le(d.name.length).raw(d.name)
    .u32le(d.schema.length).raw(d.schema)
}

const ascending = <K extends number | bigint>(map: ReadonlyMap<K, unknown>): Array<K> =>
  [...map.keys()].toSorted((a, b) => (a < b ? -1 : a > b ? 1 : 0))

/**
 * Bytes of a WriteAt payload in front of its data (command, subtype, offset).
 *
 * @since 0.1.0
 * @category encoding
 */
export const WRITE_AT_PREFIX_SIZE = 10

/**
 * Writes the 10-byte prefix of an uncompressed WriteAt at `at` of `target`. A sender puts it (after the frame
 * header) in a small slab and writes the block data as a separate view, so block bytes are never copied.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeWriteAtPrefixInto = (target: Uint8Array, at: number, offset: number): void => {
  target[at] = Command.WriteAt
  target[at + 1] = WriteType.Data
  putI64le(target, at + 2, offset)
}

const encodeWriteAt = (p: WriteAt): Uint8Array => {
  if (p.compression === "None") {
    const out = new Uint8Array(WRITE_AT_PREFIX_SIZE + p.data.length)
    encodeWriteAtPrefixInto(out, 0, p.offset)
    out.set(p.data, WRITE_AT_PREFIX_SIZE)
    return out
  }
  // The compressor leaves room in front of its body for this header, so the body is not copied again.
  const out = SiloCompression.compress(p.compression, p.data, WRITE_AT_PREFIX_SIZE)
  out[0] = Command.WriteAt
  out[1] = SiloCompression.CompressionType[p.compression]
  putI64le(out, 2, p.offset)
  return out
}

/**
 * Encodes a packet as frame payload bytes. Maps are written in ascending key order (Go writes them in random
 * map order; any order decodes the same). Throws a `RangeError` only for the corrupting inputs listed in the
 * module description.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encode = (packet: Packet): Uint8Array => {
  switch (packet._tag) {
    case "ReadAt":
      return range(Command.ReadAt, packet.offset, packet.length)
    case "NeedAt":
      return range(Command.NeedAt, packet.offset, packet.length)
    case "DontNeedAt":
      return range(Command.DontNeedAt, packet.offset, packet.length)
    case "ReadAtResponse":
      return new ByteWriter(5 + packet.data.length).u8(Command.ReadAtResponse).u32le(packet.bytes).raw(packet.data)
        .bytes
    case "ReadAtResponseErr":
      return one(Command.ReadAtResponseErr)
    case "WriteAt":
      return encodeWriteAt(packet)
    case "WriteAtHash":
      return new ByteWriter(19 + packet.hash.length).u8(Command.WriteAt).u8(WriteType.Hash).u8(packet.dataLocation)
        .i64le(packet.offset).i64le(packet.length).raw(packet.hash).bytes
    case "YouAlreadyHave":
      return blockList(
        new ByteWriter(14 + 4 * packet.blocks.length).u8(Command.WriteAt).u8(WriteType.YouAlreadyHave).i64le(
          packet.blockSize
        ),
        packet.blocks
      )
    case "WriteAtResponse":
      return new ByteWriter(5).u8(Command.WriteAtResponse).u32le(packet.bytes).bytes
    case "WriteAtResponseErr":
      return one(Command.WriteAtResponseErr)
    case "DirtyList":
      return blockList(
        new ByteWriter(9 + 4 * packet.blocks.length).u8(Command.DirtyList).u32le(packet.blockSize),
        packet.blocks
      )
    case "DirtyListResponse":
      return one(Command.DirtyListResponse)
    case "DevInfo": {
      const d = devInfoBytes(packet)
      const w = new ByteWriter(d.size)
      writeDevInfo(w, d)
      return w.bytes
    }
    case "Event": {
      if (packet.type !== EventType.Custom) return new Uint8Array([Command.Event, packet.type])
      const payload = packet.custom?.payload ?? EMPTY
      return new ByteWriter(3 + payload.length).u8(Command.Event).u8(packet.type).u8(packet.custom?.type ?? 0)
        .raw(payload).bytes
    }
    case "EventResponse":
      return one(Command.EventResponse)
    case "Hashes": {
      const w = new ByteWriter(1 + 36 * packet.hashes.size).u8(Command.Hashes)
      for (const index of ascending(packet.hashes)) {
        const hash = packet.hashes.get(index)!
        checkHash("Hashes", hash)
        w.u32le(index).raw(hash)
      }
      return w.bytes
    }
    case "HashesResponse":
      return one(Command.HashesResponse)
    case "WriteAtWithMap": {
      const w = new ByteWriter(13 + 16 * packet.idMap.size + packet.data.length).u8(Command.WriteAtWithMap)
        .i64le(packet.offset).u32le(packet.idMap.size)
      for (const key of ascending(packet.idMap)) w.u64leBig(key).u64leBig(packet.idMap.get(key)!)
      return w.raw(packet.data).bytes
    }
    case "RemoveDev":
      return one(Command.RemoveDev)
    case "RemoveFromMap": {
      const w = new ByteWriter(5 + 8 * packet.ids.length).u8(Command.RemoveFromMap).u32le(packet.ids.length)
      for (const id of packet.ids) w.u64leBig(id)
      return w.bytes
    }
    case "AlternateSources": {
      const locations = packet.sources.map((s) => utf8(s.location))
      let size = 5
      for (const location of locations) size += 52 + location.length
      const w = new ByteWriter(size).u8(Command.AlternateSources).u32le(packet.sources.length)
      packet.sources.forEach((s, i) => {
        checkHash("AlternateSources", s.hash)
        w.i64le(s.offset).i64le(s.length).raw(s.hash).u32le(locations[i]!.length).raw(locations[i]!)
      })
      return w.bytes
    }
    case "DeviceGroupInfo": {
      const entries = ascending(packet.devices).map((index) =>
        [index, devInfoBytes(packet.devices.get(index)!)] as const
      )
      let size = 1
      for (const [, d] of entries) size += 8 + d.size
      const w = new ByteWriter(size).u8(Command.DeviceGroupInfo)
      for (const [index, d] of entries) {
        w.u32le(index).u32le(d.size)
        writeDevInfo(w, d)
      }
      return w.bytes
    }
    case "ReadByHash":
      checkHash("ReadByHash", packet.hash)
      return new ByteWriter(33).u8(Command.ReadByHash).raw(packet.hash).bytes
    case "ReadByHashResponse":
      return new ByteWriter(5 + packet.data.length).u8(Command.ReadByHashResponse).u32le(packet.data.length)
        .raw(packet.data).bytes
    case "ReadByHashResponseErr": {
      const text = utf8(packet.error)
      return new ByteWriter(5 + text.length).u8(Command.ReadByHashResponseErr).u32le(text.length).raw(text).bytes
    }
  }
}

const EMPTY = new Uint8Array(0)

// -----------------------------------------------------------------------------
// decoding helpers
// -----------------------------------------------------------------------------

const invalid = (packet: string, offset: number, detail: string): Decoded<never> =>
  fail("silo", packet, offset, `invalid packet: ${detail}`)

const hex2 = (byte: number): string => `0x${byte.toString(16).padStart(2, "0")}`

/** Checks the command byte and the minimum length; `undefined` when both are fine. */
const header = (packet: string, bytes: Uint8Array, command: number, minLength: number): Decoded<never> | undefined => {
  if (bytes.length === 0) return invalid(packet, 0, "empty payload")
  if (bytes[0] !== command) return invalid(packet, 0, `command byte ${hex2(bytes[0]!)} is not ${hex2(command)}`)
  return tooShort(packet, bytes, minLength)
}

const tooShort = (packet: string, bytes: Uint8Array, minLength: number): Decoded<never> | undefined =>
  bytes.length < minLength
    ? invalid(packet, bytes.length, `the payload is ${bytes.length} bytes, needs at least ${minLength}`)
    : undefined

const writeHeader = (
  packet: string,
  bytes: Uint8Array,
  type: number,
  minLength: number
): Decoded<never> | undefined => {
  const bad = header(packet, bytes, Command.WriteAt, 2)
  if (bad) return bad
  if (bytes[1] !== type) return invalid(packet, 1, `WriteAt subtype ${bytes[1]} is not ${type}`)
  return tooShort(packet, bytes, minLength)
}

const unsafe = (packet: string, offset: number, field: string): Decoded<never> =>
  fail("silo", packet, offset, `invalid packet: ${field} is outside the safe integer range (±2^53 − 1)`)

const count = (
  packet: string,
  bytes: Uint8Array,
  at: number,
  entrySize: number
): Decoded<number> => {
  const n = u32le(bytes, at)
  const room = bytes.length - at - 4
  return n > room / entrySize
    ? invalid(packet, at, `count ${n} needs at least ${n * entrySize} bytes of entries, ${room} remain`)
    : Result.succeed(n)
}

const blocksAt = (bytes: Uint8Array, at: number, n: number): Array<number> => {
  const blocks = new Array<number>(n)
  for (let i = 0; i < n; i++) blocks[i] = u32le(bytes, at + 4 * i)
  return blocks
}

// -----------------------------------------------------------------------------
// per-packet decoders
// -----------------------------------------------------------------------------

const decodeRange =
  <T extends "ReadAt" | "NeedAt" | "DontNeedAt">(tag: T, command: number) =>
  (bytes: Uint8Array): Decoded<{ readonly _tag: T; readonly offset: number; readonly length: number }> => {
    const bad = header(tag, bytes, command, 13)
    if (bad) return bad
    const offset = i64le(bytes, 1)
    if (offset === undefined) return unsafe(tag, 1, "offset")
    return Result.succeed({ _tag: tag, offset, length: i32le(bytes, 9) })
  }

/**
 * Decodes a ReadAt (0x01). Trailing bytes are ignored, as in Go.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeReadAt: (bytes: Uint8Array) => Decoded<ReadAt> = decodeRange("ReadAt", Command.ReadAt)

/**
 * Decodes a NeedAt (0x03). Trailing bytes are ignored, as in Go.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeNeedAt: (bytes: Uint8Array) => Decoded<NeedAt> = decodeRange("NeedAt", Command.NeedAt)

/**
 * Decodes a DontNeedAt (0x04). Trailing bytes are ignored, as in Go.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeDontNeedAt: (bytes: Uint8Array) => Decoded<DontNeedAt> = decodeRange(
  "DontNeedAt",
  Command.DontNeedAt
)

/**
 * Decodes the answer to a ReadAt: 0x81 (`bytes` and data) or 0x82 (error; trailing bytes ignored).
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeReadAtResponse = (bytes: Uint8Array): Decoded<ReadAtResponse | ReadAtResponseErr> => {
  if (bytes[0] === Command.ReadAtResponseErr) return Result.succeed({ _tag: "ReadAtResponseErr" })
  const bad = header("ReadAtResponse", bytes, Command.ReadAtResponse, 5)
  if (bad) return bad
  return Result.succeed({ _tag: "ReadAtResponse", bytes: u32le(bytes, 1), data: bytes.subarray(5) })
}

/**
 * Decodes the answer to a WriteAt or WriteAtWithMap: 0x83 (bytes written) or 0x84 (error).
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeWriteAtResponse = (bytes: Uint8Array): Decoded<WriteAtResponse | WriteAtResponseErr> => {
  if (bytes[0] === Command.WriteAtResponseErr) return Result.succeed({ _tag: "WriteAtResponseErr" })
  const bad = header("WriteAtResponse", bytes, Command.WriteAtResponse, 5)
  if (bad) return bad
  return Result.succeed({ _tag: "WriteAtResponse", bytes: u32le(bytes, 1) })
}

/**
 * Decodes a plain WriteAt (0x02/0, Go's `DecodeWriteAt`); any other subtype is `invalid packet`.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeWriteAtData = (bytes: Uint8Array): Decoded<WriteAt> => {
  const bad = writeHeader("WriteAt", bytes, WriteType.Data, 10)
  if (bad) return bad
  const offset = i64le(bytes, 2)
  if (offset === undefined) return unsafe("WriteAt", 2, "offset")
  return Result.succeed({ _tag: "WriteAt", offset, data: view(bytes, 10, bytes.length - 10), compression: "None" })
}

/**
 * Decodes a compressed WriteAt (0x02 with subtype 2, 4 or 5) into its decompressed data. Another subtype is
 * `unknown compression type N`.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeWriteAtComp = (bytes: Uint8Array, options?: DecodeOptions): Decoded<WriteAt> => {
  const compression = SiloCompression.fromType(bytes[1]!)
  const P = compression === undefined ? "WriteAtComp" : `WriteAtComp${compression}`
  const bad = header(P, bytes, Command.WriteAt, 10)
  if (bad) return bad
  if (compression === undefined) return fail("silo", P, 1, `unknown compression type ${bytes[1]}`)
  const offset = i64le(bytes, 2)
  if (offset === undefined) return unsafe(P, 2, "offset")
  return Result.map(
    SiloCompression.decompress(compression, bytes, 10, options),
    (data): WriteAt => ({ _tag: "WriteAt", offset, data, compression })
  )
}

/**
 * Decodes a WriteAtHash (0x02/1). An empty hash is accepted, as in Go.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeWriteAtHash = (bytes: Uint8Array): Decoded<WriteAtHash> => {
  const bad = writeHeader("WriteAtHash", bytes, WriteType.Hash, 19)
  if (bad) return bad
  const offset = i64le(bytes, 3)
  if (offset === undefined) return unsafe("WriteAtHash", 3, "offset")
  const length = i64le(bytes, 11)
  if (length === undefined) return unsafe("WriteAtHash", 11, "length")
  return Result.succeed({ _tag: "WriteAtHash", dataLocation: bytes[2]!, offset, length, hash: bytes.subarray(19) })
}

/**
 * Decodes a YouAlreadyHave (0x02/3). Trailing bytes after the counted indices are ignored.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeYouAlreadyHave = (bytes: Uint8Array): Decoded<YouAlreadyHave> => {
  const bad = writeHeader("YouAlreadyHave", bytes, WriteType.YouAlreadyHave, 14)
  if (bad) return bad
  const blockSize = u64le(bytes, 2)
  if (blockSize === undefined) return unsafe("YouAlreadyHave", 2, "blockSize")
  return Result.map(
    count("YouAlreadyHave", bytes, 10, 4),
    (n): YouAlreadyHave => ({ _tag: "YouAlreadyHave", blockSize, blocks: blocksAt(bytes, 14, n) })
  )
}

/**
 * Decodes a DirtyList (0x05). Trailing bytes after the counted indices are ignored, as in Go.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeDirtyList = (bytes: Uint8Array): Decoded<DirtyList> => {
  const bad = header("DirtyList", bytes, Command.DirtyList, 9)
  if (bad) return bad
  return Result.map(
    count("DirtyList", bytes, 5, 4),
    (n): DirtyList => ({ _tag: "DirtyList", blockSize: u32le(bytes, 1), blocks: blocksAt(bytes, 9, n) })
  )
}

/**
 * Decodes a DevInfo (0x06). Trailing bytes are ignored, as in Go.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeDevInfo = (bytes: Uint8Array): Decoded<DevInfo> => {
  const bad = header("DevInfo", bytes, Command.DevInfo, 19)
  if (bad) return bad
  const size = u64le(bytes, 1)
  if (size === undefined) return unsafe("DevInfo", 1, "size")
  const nameEnd = 15 + u16le(bytes, 13)
  // Go checks only that the name fits, then reads the u32 schema length past the end and panics.
  if (nameEnd + 4 > bytes.length) {
    return invalid(
      "DevInfo",
      13,
      `name length ${nameEnd - 15} and the schema length field need ${
        nameEnd + 4
      } bytes, the payload is ${bytes.length}`
    )
  }
  const schemaLength = u32le(bytes, nameEnd)
  if (schemaLength > bytes.length - nameEnd - 4) {
    return invalid("DevInfo", nameEnd, `schema length ${schemaLength} overruns the ${bytes.length}-byte payload`)
  }
  return Result.succeed({
    _tag: "DevInfo",
    size,
    blockSize: u32le(bytes, 9),
    name: fromUtf8(bytes.subarray(15, nameEnd)),
    schema: fromUtf8(bytes.subarray(nameEnd + 4, nameEnd + 4 + schemaLength))
  })
}

/**
 * Decodes an Event (0x07). Unknown types decode fine; trailing bytes on a non-custom event are ignored.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeEvent = (bytes: Uint8Array): Decoded<Event> => {
  const bad = header("Event", bytes, Command.Event, 2)
  if (bad) return bad
  const type = bytes[1]!
  if (type !== EventType.Custom) return Result.succeed({ _tag: "Event", type })
  if (bytes.length < 3) return invalid("Event", 2, "a Custom event needs its custom type byte")
  return Result.succeed({ _tag: "Event", type, custom: { type: bytes[2]!, payload: bytes.subarray(3) } })
}

/**
 * Decodes a Hashes (0x08). A repeated block index keeps the last hash, as in Go.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeHashes = (bytes: Uint8Array): Decoded<Hashes> => {
  const bad = header("Hashes", bytes, Command.Hashes, 1)
  if (bad) return bad
  const partial = (bytes.length - 1) % 36
  if (partial !== 0) {
    return invalid("Hashes", bytes.length - partial, `a partial ${partial}-byte entry (entries are 36 bytes)`)
  }
  const hashes = new Map<number, Uint8Array>()
  for (let at = 1; at < bytes.length; at += 36) hashes.set(u32le(bytes, at), bytes.subarray(at + 4, at + 36))
  return Result.succeed({ _tag: "Hashes", hashes })
}

/**
 * Decodes a WriteAtWithMap (0x09). A repeated key keeps the last value.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeWriteAtWithMap = (bytes: Uint8Array): Decoded<WriteAtWithMap> => {
  const bad = header("WriteAtWithMap", bytes, Command.WriteAtWithMap, 13)
  if (bad) return bad
  const offset = i64le(bytes, 1)
  if (offset === undefined) return unsafe("WriteAtWithMap", 1, "offset")
  return Result.map(count("WriteAtWithMap", bytes, 9, 16), (n): WriteAtWithMap => {
    const idMap = new Map<bigint, bigint>()
    const end = 13 + 16 * n
    for (let at = 13; at < end; at += 16) idMap.set(u64leBig(bytes, at), u64leBig(bytes, at + 8))
    return { _tag: "WriteAtWithMap", offset, idMap, data: bytes.subarray(end) }
  })
}

/**
 * Decodes a RemoveFromMap (0x0B). Trailing bytes after the counted ids are ignored.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeRemoveFromMap = (bytes: Uint8Array): Decoded<RemoveFromMap> => {
  const bad = header("RemoveFromMap", bytes, Command.RemoveFromMap, 5)
  if (bad) return bad
  return Result.map(count("RemoveFromMap", bytes, 1, 8), (n): RemoveFromMap => {
    const ids = new Array<bigint>(n)
    for (let i = 0; i < n; i++) ids[i] = u64leBig(bytes, 5 + 8 * i)
    return { _tag: "RemoveFromMap", ids }
  })
}

/**
 * Decodes an AlternateSources (0x0C), keeping the entry order. Trailing bytes after the counted entries are
 * ignored.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeAlternateSources = (bytes: Uint8Array): Decoded<AlternateSources> => {
  const P = "AlternateSources"
  const bad = header(P, bytes, Command.AlternateSources, 5)
  if (bad) return bad
  // Each entry is at least 52 bytes, which bounds the count before the loop.
  const n = count(P, bytes, 1, 52)
  if (Result.isFailure(n)) return Result.fail(n.failure)
  const sources: Array<AlternateSource> = []
  let at = 5
  for (let i = 0; i < n.success; i++) {
    if (bytes.length - at < 52) return invalid(P, at, `entry ${i} needs 52 bytes, ${bytes.length - at} remain`)
    const offset = i64le(bytes, at)
    if (offset === undefined) return unsafe(P, at, `entry ${i} offset`)
    const length = i64le(bytes, at + 8)
    if (length === undefined) return unsafe(P, at + 8, `entry ${i} length`)
    const locationLength = u32le(bytes, at + 48)
    if (locationLength > bytes.length - at - 52) {
      return invalid(P, at + 48, `entry ${i} location length ${locationLength} overruns the payload`)
    }
    sources.push({
      offset,
      length,
      hash: bytes.subarray(at + 16, at + 48),
      location: fromUtf8(bytes.subarray(at + 52, at + 52 + locationLength))
    })
    at += 52 + locationLength
  }
  return Result.succeed({ _tag: P, sources })
}

/**
 * Decodes a DeviceGroupInfo (0x0D): entries `{u32 index, u32 length, DevInfo payload}` until the end. A repeated
 * index keeps the last device.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeDeviceGroupInfo = (bytes: Uint8Array): Decoded<DeviceGroupInfo> => {
  const P = "DeviceGroupInfo"
  const bad = header(P, bytes, Command.DeviceGroupInfo, 1)
  if (bad) return bad
  const devices = new Map<number, DevInfo>()
  for (let at = 1; at < bytes.length;) {
    if (bytes.length - at < 8) return invalid(P, at, `an entry header needs 8 bytes, ${bytes.length - at} remain`)
    const index = u32le(bytes, at)
    const length = u32le(bytes, at + 4)
    if (length > bytes.length - at - 8) {
      return invalid(P, at + 4, `device ${index} length ${length} overruns the payload`)
    }
    const info = decodeDevInfo(bytes.subarray(at + 8, at + 8 + length))
    if (Result.isFailure(info)) {
      const e = info.failure
      return Result.fail(
        new DecodeError({
          protocol: "silo",
          packet: P,
          offset: at + 8 + e.offset,
          reason: `${e.reason} (in the DevInfo of device ${index})`
        })
      )
    }
    devices.set(index, info.success)
    at += 8 + length
  }
  return Result.succeed({ _tag: P, devices })
}

/**
 * Decodes a ReadByHash (0x0E). Trailing bytes are ignored, as in Go.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeReadByHash = (bytes: Uint8Array): Decoded<ReadByHash> => {
  const bad = header("ReadByHash", bytes, Command.ReadByHash, 33)
  if (bad) return bad
  return Result.succeed({ _tag: "ReadByHash", hash: bytes.subarray(1, 33) })
}

/**
 * Decodes the answer to a ReadByHash: 0x88 (data) or 0x89 (error text). Bytes after the counted data or text
 * are ignored.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeReadByHashResponse = (bytes: Uint8Array): Decoded<ReadByHashResponse | ReadByHashResponseErr> => {
  const isErr = bytes[0] === Command.ReadByHashResponseErr
  const P = isErr ? "ReadByHashResponseErr" : "ReadByHashResponse"
  const bad = header(P, bytes, isErr ? Command.ReadByHashResponseErr : Command.ReadByHashResponse, 5)
  if (bad) return bad
  const length = u32le(bytes, 1)
  if (length > bytes.length - 5) return invalid(P, 1, `length ${length} overruns the ${bytes.length}-byte payload`)
  const body = bytes.subarray(5, 5 + length)
  return Result.succeed(
    isErr ? { _tag: "ReadByHashResponseErr", error: fromUtf8(body) } : { _tag: "ReadByHashResponse", data: body }
  )
}

const decodeBare =
  <T extends Packet["_tag"]>(tag: T, command: number, exact: boolean) =>
  (bytes: Uint8Array): Decoded<{ readonly _tag: T }> => {
    const bad = header(tag, bytes, command, 1)
    if (bad) return bad
    if (exact && bytes.length !== 1) return invalid(tag, 1, `the payload is ${bytes.length} bytes, must be exactly 1`)
    return Result.succeed({ _tag: tag })
  }

/**
 * Decodes a DirtyListResponse (0x87); trailing bytes are ignored, as in Go.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeDirtyListResponse: (bytes: Uint8Array) => Decoded<DirtyListResponse> = decodeBare(
  "DirtyListResponse",
  Command.DirtyListResponse,
  false
)

/**
 * Decodes an EventResponse (0x85); trailing bytes are ignored.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeEventResponse: (bytes: Uint8Array) => Decoded<EventResponse> = decodeBare(
  "EventResponse",
  Command.EventResponse,
  false
)

/**
 * Decodes a HashesResponse (0x86), which Go requires to be exactly 1 byte.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeHashesResponse: (bytes: Uint8Array) => Decoded<HashesResponse> = decodeBare(
  "HashesResponse",
  Command.HashesResponse,
  true
)

/**
 * Decodes a RemoveDev (0x0A); trailing bytes are ignored.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeRemoveDev: (bytes: Uint8Array) => Decoded<RemoveDev> = decodeBare(
  "RemoveDev",
  Command.RemoveDev,
  false
)

/**
 * Decodes any packet, dispatching on the command byte and, for 0x02, on the WriteAt subtype.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decode = (bytes: Uint8Array, options?: DecodeOptions): Decoded<Packet> => {
  switch (bytes[0]) {
    case Command.ReadAt:
      return decodeReadAt(bytes)
    case Command.WriteAt:
      switch (bytes[1]) {
        case WriteType.Data:
          return decodeWriteAtData(bytes)
        case WriteType.Hash:
          return decodeWriteAtHash(bytes)
        case WriteType.YouAlreadyHave:
          return decodeYouAlreadyHave(bytes)
        case WriteType.CompRLE:
        case WriteType.CompGzip:
        case WriteType.CompZeroes:
          return decodeWriteAtComp(bytes, options)
        default:
          return bytes.length < 2
            ? invalid("WriteAt", 1, "the subtype byte is missing")
            : invalid("WriteAt", 1, `unknown WriteAt subtype ${bytes[1]}`)
      }
    case Command.NeedAt:
      return decodeNeedAt(bytes)
    case Command.DontNeedAt:
      return decodeDontNeedAt(bytes)
    case Command.DirtyList:
      return decodeDirtyList(bytes)
    case Command.DevInfo:
      return decodeDevInfo(bytes)
    case Command.Event:
      return decodeEvent(bytes)
    case Command.Hashes:
      return decodeHashes(bytes)
    case Command.WriteAtWithMap:
      return decodeWriteAtWithMap(bytes)
    case Command.RemoveDev:
      return decodeRemoveDev(bytes)
    case Command.RemoveFromMap:
      return decodeRemoveFromMap(bytes)
    case Command.AlternateSources:
      return decodeAlternateSources(bytes)
    case Command.DeviceGroupInfo:
      return decodeDeviceGroupInfo(bytes)
    case Command.ReadByHash:
      return decodeReadByHash(bytes)
    case Command.ReadAtResponse:
    case Command.ReadAtResponseErr:
      return decodeReadAtResponse(bytes)
    case Command.WriteAtResponse:
    case Command.WriteAtResponseErr:
      return decodeWriteAtResponse(bytes)
    case Command.EventResponse:
      return decodeEventResponse(bytes)
    case Command.HashesResponse:
      return decodeHashesResponse(bytes)
    case Command.DirtyListResponse:
      return decodeDirtyListResponse(bytes)
    case Command.ReadByHashResponse:
    case Command.ReadByHashResponseErr:
      return decodeReadByHashResponse(bytes)
    default:
      return bytes.length === 0
        ? invalid("Packet", 0, "empty payload")
        : invalid("Packet", 0, `unknown command byte ${hex2(bytes[0]!)}`)
  }
}
