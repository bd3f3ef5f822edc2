// fast-check generators for Silo values and the golden vector file, shared by the Silo*.test.ts files.
import * as fc from "fast-check"
import * as fs from "node:fs"
import type * as SiloCompression from "../../src/SiloCompression.ts"
import type * as SiloPacket from "../../src/SiloPacket.ts"

// -----------------------------------------------------------------------------
// vectors
// -----------------------------------------------------------------------------

export interface PacketVector {
  readonly name: string
  readonly packet: string
  readonly command_byte: string
  readonly fields: { readonly [key: string]: unknown }
  readonly hex: string
  readonly length: number
  readonly canonical: boolean
  readonly notes?: string
}

export interface DecodeCase {
  readonly name: string
  readonly decoder: string
  readonly hex: string
  readonly outcome: "ok" | "error" | "panic"
  readonly detail: string
}

export interface ConversationFrame {
  readonly seq: number
  readonly direction: "src->dst" | "dst->src"
  readonly dev: number
  readonly id: number
  readonly packet: string
  readonly fields: { readonly [key: string]: unknown }
  readonly payload_hex: string
  readonly frame_hex: string
}

export interface Conversation {
  readonly name: string
  readonly frames: ReadonlyArray<ConversationFrame>
  readonly stream_src_to_dst_hex: string
  readonly stream_dst_to_src_hex: string
}

export interface Vectors {
  readonly packets: ReadonlyArray<PacketVector>
  readonly decode_cases: ReadonlyArray<DecodeCase>
  readonly conversations: ReadonlyArray<Conversation>
}

/** The repository's own copy, so a clean clone without ../shared runs the tests. */
export const fixtureUrl = new URL("../fixtures/silo-packets.json", import.meta.url)
/** The shared original beside the repository (/work/shared/vectors), when present. */
export const sharedUrl = new URL("../../../../../shared/vectors/silo-packets.json", import.meta.url)

export const vectors: Vectors = JSON.parse(fs.readFileSync(fixtureUrl, "utf8"))

/** Bytes from hex, given whole or in parts (one per wire field, for readable hand-built packets). */
export const fromHex = (...parts: ReadonlyArray<string>): Uint8Array =>
  Uint8Array.from(Buffer.from(parts.join(""), "hex"))
export const toHex = (bytes: Uint8Array): string =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("hex")

// -----------------------------------------------------------------------------
// scalars
// -----------------------------------------------------------------------------

export const u8 = fc.integer({ min: 0, max: 0xff })
export const u32 = fc.integer({ min: 0, max: 0xffff_ffff })
export const i32 = fc.integer({ min: -0x8000_0000, max: 0x7fff_ffff })
export const i64 = fc.oneof(fc.maxSafeInteger(), fc.integer({ min: -4096, max: 1 << 30 }))
export const u64 = fc.oneof(fc.maxSafeNat(), fc.integer({ min: 0, max: 1 << 30 }))
export const id64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })
export const bytes = (maxLength = 64) => fc.uint8Array({ maxLength })
export const hash = fc.uint8Array({ minLength: 32, maxLength: 32 })
export const text = fc.string({ unit: "grapheme", maxLength: 24 })

/** Block-like data: random bytes, runs of one byte and zero gaps, so every compression path is exercised. */
export const blockData: fc.Arbitrary<Uint8Array> = fc.array(
  fc.oneof(
    fc.uint8Array({ maxLength: 20 }),
    fc.tuple(u8, fc.integer({ min: 1, max: 40 })).map(([b, n]) => new Uint8Array(n).fill(b)),
    fc.integer({ min: 1, max: 40 }).map((n) => new Uint8Array(n))
  ),
  { maxLength: 12 }
).map((parts) => Uint8Array.from(parts.flatMap((p) => Array.from(p))))

export const compression: fc.Arbitrary<SiloCompression.Compression> = fc.constantFrom("RLE", "Gzip", "Zeroes")

/** Records with an ordinary prototype, as decoders build them (chai cannot sort null-prototype Map values). */
const record = <T>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }): fc.Arbitrary<T> =>
  fc.record(model, { noNullPrototype: true })

// -----------------------------------------------------------------------------
// packets (canonical values: decode(encode(x)) gives x back)
// -----------------------------------------------------------------------------

const devInfo: fc.Arbitrary<SiloPacket.DevInfo> = record({
  _tag: fc.constant("DevInfo" as const),
  size: u64,
  blockSize: u32,
  name: text,
  schema: text
})

const map = <K, V>(key: fc.Arbitrary<K>, value: fc.Arbitrary<V>): fc.Arbitrary<Map<K, V>> =>
  fc.uniqueArray(fc.tuple(key, value), { selector: ([k]) => k, maxLength: 8 }).map((entries) => new Map(entries))

export const packets: {
  readonly [K in SiloPacket.Packet["_tag"]]: fc.Arbitrary<Extract<SiloPacket.Packet, { _tag: K }>>
} = {
  ReadAt: record({ _tag: fc.constant("ReadAt" as const), offset: i64, length: i32 }),
  NeedAt: record({ _tag: fc.constant("NeedAt" as const), offset: i64, length: i32 }),
  DontNeedAt: record({ _tag: fc.constant("DontNeedAt" as const), offset: i64, length: i32 }),
  ReadAtResponse: record({ _tag: fc.constant("ReadAtResponse" as const), bytes: u32, data: bytes() }),
  ReadAtResponseErr: fc.constant({ _tag: "ReadAtResponseErr" as const }),
  WriteAt: record({
    _tag: fc.constant("WriteAt" as const),
    offset: i64,
    data: blockData,
    compression: fc.constantFrom("None" as const, "RLE" as const, "Gzip" as const, "Zeroes" as const)
  }),
  WriteAtHash: record({
    _tag: fc.constant("WriteAtHash" as const),
    dataLocation: u8,
    offset: i64,
    length: i64,
    hash: bytes(40)
  }),
  YouAlreadyHave: record({
    _tag: fc.constant("YouAlreadyHave" as const),
    blockSize: u64,
    blocks: fc.array(u32, { maxLength: 16 })
  }),
  WriteAtResponse: record({ _tag: fc.constant("WriteAtResponse" as const), bytes: u32 }),
  WriteAtResponseErr: fc.constant({ _tag: "WriteAtResponseErr" as const }),
  DirtyList: record({
    _tag: fc.constant("DirtyList" as const),
    blockSize: u32,
    blocks: fc.array(u32, { maxLength: 16 })
  }),
  DirtyListResponse: fc.constant({ _tag: "DirtyListResponse" as const }),
  DevInfo: devInfo,
  Event: fc.oneof(
    record({ _tag: fc.constant("Event" as const), type: u8.filter((t) => t !== 5) }),
    record({
      _tag: fc.constant("Event" as const),
      type: fc.constant(5),
      custom: record({ type: u8, payload: bytes() })
    })
  ),
  EventResponse: fc.constant({ _tag: "EventResponse" as const }),
  Hashes: record({ _tag: fc.constant("Hashes" as const), hashes: map(u32, hash) }),
  HashesResponse: fc.constant({ _tag: "HashesResponse" as const }),
  WriteAtWithMap: record({
    _tag: fc.constant("WriteAtWithMap" as const),
    offset: i64,
    idMap: map(id64, id64),
    data: bytes()
  }),
  RemoveDev: fc.constant({ _tag: "RemoveDev" as const }),
  RemoveFromMap: record({ _tag: fc.constant("RemoveFromMap" as const), ids: fc.array(id64, { maxLength: 8 }) }),
  AlternateSources: record({
    _tag: fc.constant("AlternateSources" as const),
    sources: fc.array(record({ offset: i64, length: i64, hash, location: text }), { maxLength: 4 })
  }),
  DeviceGroupInfo: record({ _tag: fc.constant("DeviceGroupInfo" as const), devices: map(u32, devInfo) }),
  ReadByHash: record({ _tag: fc.constant("ReadByHash" as const), hash }),
  ReadByHashResponse: record({ _tag: fc.constant("ReadByHashResponse" as const), data: bytes() }),
  ReadByHashResponseErr: record({ _tag: fc.constant("ReadByHashResponseErr" as const), error: text })
}

export const packet: fc.Arbitrary<SiloPacket.Packet> = fc.oneof(
  ...Object.values(packets) as Array<fc.Arbitrary<SiloPacket.Packet>>
)
