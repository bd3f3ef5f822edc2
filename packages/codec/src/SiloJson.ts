/**
 * The JSON view of Silo packets and frames, used by `tessera inspect silo` and `tessera craft silo`. Names and
 * fields are exactly those of the golden vectors (`silo-packets.json`): `{ packet: NAME, fields: {...} }` with
 * snake_case fields, `*_hex` byte strings, decimal-string map keys, `type_name` on events, `write_type` on the
 * WriteAt family, `error` on responses, and the decompressed `data_hex` on compressed WriteAts.
 *
 * 64-bit offsets and sizes are JSON numbers. Opaque u64 ids are numbers when they fit a double exactly and
 * decimal strings otherwise; both forms are accepted on input.
 *
 * `fromJson` validates with `Schema` and refuses unknown fields (a typo must not silently become a zero), but
 * ignores extra keys beside `packet` and `fields`, so a vector entry or an annotated frame can be fed as is.
 *
 * @since 0.1.0
 */
import * as Hex from "effect/encoding/Hex"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import { type Decoded, fail } from "./DecodeError.ts"
import { utf8 } from "./internal/bytes.ts"
import * as SiloCompression from "./SiloCompression.ts"
import * as SiloFrame from "./SiloFrame.ts"
import * as SiloPacket from "./SiloPacket.ts"

/**
 * A JSON value.
 *
 * @since 0.1.0
 * @category models
 */
export type Json = null | boolean | number | string | ReadonlyArray<Json> | { readonly [key: string]: Json }

/**
 * A packet as JSON.
 *
 * @since 0.1.0
 * @category models
 */
export interface PacketJson {
  readonly packet: SiloPacket.PacketName
  readonly fields: { readonly [key: string]: Json }
}

/**
 * A frame as JSON: its header ids and its packet.
 *
 * @since 0.1.0
 * @category models
 */
export interface FrameJson extends PacketJson {
  readonly dev: number
  readonly id: number
}

// -----------------------------------------------------------------------------
// to JSON
// -----------------------------------------------------------------------------

const hex = (bytes: Uint8Array): string => Hex.encode(bytes)

const id = (value: bigint): number | string =>
  value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value.toString()

const devInfoFields = (d: SiloPacket.DevInfo): { readonly [key: string]: Json } => ({
  block_size: d.blockSize,
  name: d.name,
  schema: d.schema,
  size: d.size
})

const sortedEntries = <K extends number | bigint, V>(map: ReadonlyMap<K, V>): Array<[K, V]> =>
  [...map].toSorted(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))

const fieldsOf = (p: SiloPacket.Packet): { readonly [key: string]: Json } => {
  switch (p._tag) {
    case "ReadAt":
    case "NeedAt":
    case "DontNeedAt":
      return { length: p.length, offset: p.offset }
    case "ReadAtResponse":
      return { bytes: p.bytes, data_hex: hex(p.data), error: null }
    case "ReadAtResponseErr":
      return { error: SiloPacket.REMOTE_READ_ERROR }
    case "WriteAt":
      return {
        data_hex: hex(p.data),
        offset: p.offset,
        write_type: p.compression === "None"
          ? SiloPacket.WriteType.Data
          : SiloCompression.CompressionType[p.compression]
      }
    case "WriteAtHash":
      return {
        data_location: p.dataLocation,
        hash_hex: hex(p.hash),
        length: p.length,
        offset: p.offset,
        write_type: SiloPacket.WriteType.Hash
      }
    case "YouAlreadyHave":
      return { block_size: p.blockSize, blocks: p.blocks, write_type: SiloPacket.WriteType.YouAlreadyHave }
    case "WriteAtResponse":
      return { bytes: p.bytes, error: null }
    case "WriteAtResponseErr":
      return { error: SiloPacket.REMOTE_WRITE_ERROR }
    case "DirtyList":
      return { block_size: p.blockSize, blocks: p.blocks }
    case "DevInfo":
      return devInfoFields(p)
    case "Event":
      return p.custom === undefined
        ? { type: p.type, type_name: SiloPacket.eventTypeName(p.type) }
        : {
          custom_payload_hex: hex(p.custom.payload),
          custom_type: p.custom.type,
          type: p.type,
          type_name: SiloPacket.eventTypeName(p.type)
        }
    case "Hashes":
      return { hashes: Object.fromEntries(sortedEntries(p.hashes).map(([k, v]) => [String(k), hex(v)])) }
    case "WriteAtWithMap":
      return {
        data_hex: hex(p.data),
        id_map: Object.fromEntries(sortedEntries(p.idMap).map(([k, v]) => [k.toString(), id(v)])),
        offset: p.offset
      }
    case "RemoveFromMap":
      return { ids: p.ids.map(id) }
    case "AlternateSources":
      return {
        sources: p.sources.map((s) => ({
          hash_hex: hex(s.hash),
          length: s.length,
          location: s.location,
          offset: s.offset
        }))
      }
    case "DeviceGroupInfo":
      return { devices: Object.fromEntries(sortedEntries(p.devices).map(([k, v]) => [String(k), devInfoFields(v)])) }
    case "ReadByHash":
      return { hash_hex: hex(p.hash) }
    case "ReadByHashResponse":
      return { data_hex: hex(p.data), error: null }
    case "ReadByHashResponseErr":
      return { error: p.error }
    case "DirtyListResponse":
    case "EventResponse":
    case "HashesResponse":
    case "RemoveDev":
      return {}
  }
}

/**
 * A packet as JSON. ReadAtResponseErr and WriteAtResponseErr show the fixed text Go substitutes, since the wire
 * carries none.
 *
 * @since 0.1.0
 * @category encoding
 */
export const toJson = (packet: SiloPacket.Packet): PacketJson => ({
  packet: SiloPacket.nameOf(packet),
  fields: fieldsOf(packet)
})

/**
 * Decodes a frame's payload and shows it as JSON with the frame's ids.
 *
 * @since 0.1.0
 * @category encoding
 */
export const frameToJson = (
  frame: { readonly dev: number; readonly id: number; readonly payload: Uint8Array },
  options?: SiloPacket.DecodeOptions
): Decoded<FrameJson> =>
  Result.map(
    SiloPacket.decode(frame.payload, options),
    (packet) => ({ dev: frame.dev, id: frame.id, ...toJson(packet) })
  )

// -----------------------------------------------------------------------------
// from JSON
// -----------------------------------------------------------------------------

const U8 = Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 255 }))
const U32 = Schema.Number.check(Schema.isUint32())
const I32 = Schema.Number.check(Schema.isInt32())
/** i64 fields: any safe integer. */
const I64 = Schema.Int
/** u64 sizes: any non-negative safe integer. */
const U64 = Schema.Natural
const Bytes = Schema.Uint8ArrayFromHex
const Sha256 = Schema.Uint8ArrayFromHex.check(Schema.isBetweenLength(32, 32))

const MAX_U64 = (1n << 64n) - 1n
const DECIMAL = /^(0|[1-9][0-9]*)$/

/** An opaque u64 id: a safe JSON number, or a decimal string for any value up to 2^64 − 1. */
const Id = Schema.Union([
  U64,
  Schema.BigIntFromString.check(Schema.isBetweenBigInt({ minimum: 0n, maximum: MAX_U64 }))
])
const toBigInt = (value: number | bigint): bigint => (typeof value === "bigint" ? value : BigInt(value))

const isU32Key = (key: string): boolean => DECIMAL.test(key) && Number(key) <= 0xffff_ffff
const isU64Key = (key: string): boolean => DECIMAL.test(key) && key.length <= 20 && BigInt(key) <= MAX_U64

/**
 * A map with decimal-string keys. The keys are checked by a filter over the whole record rather than by the
 * record's key schema, which would report a bad key as an "excess property".
 */
const KeyedRecord = <V extends Schema.Top>(isKey: (key: string) => boolean, expected: string, value: V) =>
  Schema.Record(Schema.String, value).check(
    Schema.makeFilter((record: object) =>
      Object.keys(record).filter((key) => !isKey(key)).map((key) => ({ path: [key], issue: `Expected ${expected}` }))
    )
  )

const DevInfoFields = Schema.Struct({
  block_size: U32,
  name: Schema.String.check(
    Schema.makeFilter((s: string) => utf8(s).length <= 0xffff || "a name of at most 65535 UTF-8 bytes")
  ),
  schema: Schema.String,
  size: U64
})

const devInfo = (f: typeof DevInfoFields.Type): SiloPacket.DevInfo => ({
  _tag: "DevInfo",
  size: f.size,
  blockSize: f.block_size,
  name: f.name,
  schema: f.schema
})

/** Fields of the ok responses carry `error: null` in the vectors. */
const NoError = Schema.optionalKey(Schema.Null)
/** The 0x82/0x84 error text is never sent, so any text (or none) is accepted and dropped. */
const DroppedError = Schema.optionalKey(Schema.String)

/**
 * A packet's field schema and how to build the packet from the decoded fields. `builder` ties each `build` to its
 * own schema's type; `never` then erases it so one table can hold every packet.
 */
interface Builder {
  readonly schema: Schema.ConstraintDecoder<unknown>
  readonly build: (fields: never) => SiloPacket.Packet
}

const builder = <S extends Schema.ConstraintDecoder<unknown>>(
  schema: S,
  build: (fields: S["Type"]) => SiloPacket.Packet
): Builder => ({ schema, build })

const range = <T extends "ReadAt" | "NeedAt" | "DontNeedAt">(tag: T) =>
  builder(Schema.Struct({ length: I32, offset: I64 }), (f): SiloPacket.Packet => ({ _tag: tag, ...f }))

const bare = (packet: SiloPacket.Packet) => builder(Schema.Struct({}), () => packet)

const writeAt = (compression: SiloPacket.WriteAtCompression, writeType: number) =>
  builder(
    Schema.Struct({ data_hex: Bytes, offset: I64, write_type: Schema.optionalKey(Schema.Literal(writeType)) }),
    (f): SiloPacket.Packet => ({ _tag: "WriteAt", offset: f.offset, data: f.data_hex, compression })
  )

const EventFields = Schema.Struct({
  custom_payload_hex: Schema.optionalKey(Bytes),
  custom_type: Schema.optionalKey(U8),
  type: U8,
  type_name: Schema.optionalKey(Schema.String)
}).check(Schema.makeFilter((f) => {
  const expected = SiloPacket.eventTypeName(f.type)
  return f.type_name === undefined || f.type_name === expected ||
    { path: ["type_name"], issue: `type ${f.type} is "${expected}", not "${f.type_name}"` }
}))

const builders: { readonly [K in SiloPacket.PacketName]: Builder } = {
  ReadAt: range("ReadAt"),
  NeedAt: range("NeedAt"),
  DontNeedAt: range("DontNeedAt"),
  ReadAtResponse: builder(
    Schema.Struct({ bytes: U32, data_hex: Bytes, error: NoError }),
    (f) => ({ _tag: "ReadAtResponse", bytes: f.bytes, data: f.data_hex })
  ),
  ReadAtResponseErr: builder(Schema.Struct({ error: DroppedError }), () => ({ _tag: "ReadAtResponseErr" })),
  WriteAt: writeAt("None", SiloPacket.WriteType.Data),
  WriteAtCompRLE: writeAt("RLE", SiloPacket.WriteType.CompRLE),
  WriteAtCompGzip: writeAt("Gzip", SiloPacket.WriteType.CompGzip),
  WriteAtCompZeroes: writeAt("Zeroes", SiloPacket.WriteType.CompZeroes),
  WriteAtHash: builder(
    Schema.Struct({
      data_location: U8,
      hash_hex: Bytes,
      length: I64,
      offset: I64,
      write_type: Schema.optionalKey(Schema.Literal(SiloPacket.WriteType.Hash))
    }),
    (f) => ({
      _tag: "WriteAtHash",
      dataLocation: f.data_location,
      offset: f.offset,
      length: f.length,
      hash: f.hash_hex
    })
  ),
  YouAlreadyHave: builder(
    Schema.Struct({
      block_size: U64,
      blocks: Schema.Array(U32),
      write_type: Schema.optionalKey(Schema.Literal(SiloPacket.WriteType.YouAlreadyHave))
    }),
    (f) => ({ _tag: "YouAlreadyHave", blockSize: f.block_size, blocks: f.blocks })
  ),
  WriteAtResponse: builder(
    Schema.Struct({ bytes: U32, error: NoError }),
    (f) => ({ _tag: "WriteAtResponse", bytes: f.bytes })
  ),
  WriteAtResponseErr: builder(Schema.Struct({ error: DroppedError }), () => ({ _tag: "WriteAtResponseErr" })),
  DirtyList: builder(
    Schema.Struct({ block_size: U32, blocks: Schema.Array(U32) }),
    (f) => ({ _tag: "DirtyList", blockSize: f.block_size, blocks: f.blocks })
  ),
  DirtyListResponse: bare({ _tag: "DirtyListResponse" }),
  DevInfo: builder(DevInfoFields, devInfo),
  Event: builder(EventFields, (f): SiloPacket.Event =>
    // Go serialises the custom fields only for type Custom, so they are dropped for any other type.
    f.type === SiloPacket.EventType.Custom
      ? {
        _tag: "Event",
        type: f.type,
        custom: { type: f.custom_type ?? 0, payload: f.custom_payload_hex ?? new Uint8Array(0) }
      }
      : { _tag: "Event", type: f.type }),
  EventResponse: bare({ _tag: "EventResponse" }),
  Hashes: builder(
    Schema.Struct({ hashes: KeyedRecord(isU32Key, "a decimal u32 key", Sha256) }),
    (f) => ({ _tag: "Hashes", hashes: new Map(Object.entries(f.hashes).map(([k, v]) => [Number(k), v])) })
  ),
  HashesResponse: bare({ _tag: "HashesResponse" }),
  WriteAtWithMap: builder(
    Schema.Struct({ data_hex: Bytes, id_map: KeyedRecord(isU64Key, "a decimal u64 key", Id), offset: I64 }),
    (f) => ({
      _tag: "WriteAtWithMap",
      offset: f.offset,
      idMap: new Map(Object.entries(f.id_map).map(([k, v]) => [BigInt(k), toBigInt(v)])),
      data: f.data_hex
    })
  ),
  RemoveDev: bare({ _tag: "RemoveDev" }),
  RemoveFromMap: builder(
    Schema.Struct({ ids: Schema.Array(Id) }),
    (f) => ({ _tag: "RemoveFromMap", ids: f.ids.map(toBigInt) })
  ),
  AlternateSources: builder(
    Schema.Struct({
      sources: Schema.Array(Schema.Struct({ hash_hex: Sha256, length: I64, location: Schema.String, offset: I64 }))
    }),
    (f) => ({
      _tag: "AlternateSources",
      sources: f.sources.map((s) => ({ offset: s.offset, length: s.length, hash: s.hash_hex, location: s.location }))
    })
  ),
  DeviceGroupInfo: builder(
    Schema.Struct({ devices: KeyedRecord(isU32Key, "a decimal u32 key", DevInfoFields) }),
    (f) => ({
      _tag: "DeviceGroupInfo",
      devices: new Map(Object.entries(f.devices).map(([k, v]) => [Number(k), devInfo(v)]))
    })
  ),
  ReadByHash: builder(Schema.Struct({ hash_hex: Sha256 }), (f) => ({ _tag: "ReadByHash", hash: f.hash_hex })),
  ReadByHashResponse: builder(
    Schema.Struct({ data_hex: Bytes, error: NoError }),
    (f) => ({ _tag: "ReadByHashResponse", data: f.data_hex })
  ),
  ReadByHashResponseErr: builder(
    Schema.Struct({ error: Schema.String }),
    (f) => ({ _tag: "ReadByHashResponseErr", error: f.error })
  )
}

const isPacketName = (name: string): name is SiloPacket.PacketName => Object.hasOwn(builders, name)

const PacketEnvelope = Schema.Struct({ packet: Schema.String, fields: Schema.optionalKey(Schema.Unknown) })
const FrameEnvelope = Schema.Struct({ dev: U32, id: U32 })

const decodePacketEnvelope = Schema.decodeUnknownResult(PacketEnvelope)
const decodeFrameEnvelope = Schema.decodeUnknownResult(FrameEnvelope)
const FIELD_OPTIONS = { errors: "all", onExcessProperty: "error" } as const

/** Schema messages put each issue and its path on separate lines; a DecodeError reason is one line. */
const oneLine = (message: string): string => message.replace(/\n\s+at /g, " at ").replace(/\n/g, "; ")

/**
 * Reads a packet from its JSON view. Any malformed shape is a `DecodeError` (protocol `silo`, the packet name,
 * offset 0) whose reason says which field is wrong and why.
 *
 * @since 0.1.0
 * @category decoding
 */
export const fromJson = (value: unknown): Decoded<SiloPacket.Packet> => {
  const envelope = decodePacketEnvelope(value)
  if (Result.isFailure(envelope)) {
    return fail("silo", "Packet", 0, `expected { packet, fields }: ${oneLine(envelope.failure.message)}`)
  }
  const { packet, fields } = envelope.success
  if (!isPacketName(packet)) return fail("silo", packet, 0, `unknown packet name "${packet}"`)
  const { build, schema } = builders[packet]
  const decoded = Schema.decodeUnknownResult(schema)(fields ?? {}, FIELD_OPTIONS)
  return Result.isFailure(decoded)
    ? fail("silo", packet, 0, `invalid fields: ${oneLine(decoded.failure.message)}`)
    : Result.succeed(build(decoded.success as never))
}

/**
 * Reads a frame from its JSON view (`{ dev, id, packet, fields }`) and encodes it, header included.
 *
 * @since 0.1.0
 * @category decoding
 */
export const frameFromJson = (value: unknown): Decoded<Uint8Array> => {
  const ids = decodeFrameEnvelope(value)
  if (Result.isFailure(ids)) {
    return fail("silo", "frame", 0, `expected { dev, id, packet, fields }: ${oneLine(ids.failure.message)}`)
  }
  return Result.map(
    fromJson(value),
    (packet) => SiloFrame.encode(ids.success.dev, ids.success.id, SiloPacket.encode(packet))
  )
}
