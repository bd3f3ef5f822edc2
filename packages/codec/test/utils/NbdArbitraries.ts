// fast-check generators for NBD values, shared by the Nbd*.test.ts files.
import { assert } from "@effect/vitest"
import * as fc from "fast-check"
import { ChunkType, Command, Info, REPLY_ERROR_BIT } from "../../src/NbdConstants.ts"
import type * as NbdHandshake from "../../src/NbdHandshake.ts"
import type * as NbdTransmission from "../../src/NbdTransmission.ts"

export const fromHex = (...parts: ReadonlyArray<string>): Uint8Array =>
  Uint8Array.from(Buffer.from(parts.join("").replace(/\s+/g, ""), "hex"))
export const toHex = (bytes: Uint8Array): string =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("hex")

/** Plain arrays instead of typed-array views, so values compare by content whatever buffer they sit in. */
export const plain = (value: unknown): unknown => {
  if (value instanceof Uint8Array) return { bytes: Array.from(value) }
  if (Array.isArray(value)) return value.map(plain)
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]))
  }
  return value
}

// -----------------------------------------------------------------------------
// scalars
// -----------------------------------------------------------------------------

export const u16 = fc.integer({ min: 0, max: 0xffff })
export const u32 = fc.integer({ min: 0, max: 0xffff_ffff })
export const cookie = fc.oneof(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.bigInt({ min: 0n, max: 0xffffn }))
export const offset = fc.oneof(fc.maxSafeNat(), fc.integer({ min: 0, max: 1 << 30 }))
export const text = fc.string({ unit: "grapheme", maxLength: 24 })
export const bytes = (minLength = 0, maxLength = 64) => fc.uint8Array({ minLength, maxLength })
const errorType = fc.integer({ min: REPLY_ERROR_BIT, max: 0xffff_ffff })

// -----------------------------------------------------------------------------
// handshake
// -----------------------------------------------------------------------------

const exportRequest = <T extends "Info" | "Go">(tag: T) =>
  fc.record({ _tag: fc.constant(tag), name: text, requests: fc.array(u16, { maxLength: 6 }) })

const metaContextRequest = <T extends "ListMetaContext" | "SetMetaContext">(tag: T) =>
  fc.record({ _tag: fc.constant(tag), name: text, queries: fc.array(text, { maxLength: 4 }) })

export const optionRequest: fc.Arbitrary<NbdHandshake.OptionRequest> = fc.oneof(
  fc.record({ _tag: fc.constant("ExportName" as const), name: text }),
  fc.constant({ _tag: "Abort" as const }),
  fc.constant({ _tag: "List" as const }),
  fc.constant({ _tag: "StartTls" as const }),
  exportRequest("Info"),
  exportRequest("Go"),
  fc.constant({ _tag: "StructuredReply" as const }),
  metaContextRequest("ListMetaContext"),
  metaContextRequest("SetMetaContext"),
  fc.record({
    _tag: fc.constant("UnknownOption" as const),
    option: fc.oneof(fc.constant(4), fc.integer({ min: 11, max: 0xffff_ffff })),
    data: bytes()
  })
)

export const infoItem: fc.Arbitrary<NbdHandshake.InfoItem> = fc.oneof(
  fc.record({ _tag: fc.constant("Export" as const), size: offset, transmissionFlags: u16 }),
  fc.record({ _tag: fc.constant("Name" as const), name: text }),
  fc.record({ _tag: fc.constant("Description" as const), description: text }),
  fc.record({ _tag: fc.constant("BlockSize" as const), minimum: u32, preferred: u32, maximum: u32 }),
  fc.record({
    _tag: fc.constant("UnknownInfo" as const),
    type: fc.integer({ min: Info.BLOCK_SIZE + 1, max: 0xffff }),
    data: bytes()
  })
)

const option = fc.oneof(fc.integer({ min: 1, max: 10 }), u32)

export const optionReply: fc.Arbitrary<NbdHandshake.OptionReply> = fc.oneof(
  fc.record({ _tag: fc.constant("Ack" as const), option }),
  fc.record({ _tag: fc.constant("Server" as const), option, name: text, details: text }),
  fc.record({ _tag: fc.constant("ExportInfo" as const), option, info: infoItem }),
  fc.record({ _tag: fc.constant("MetaContext" as const), option, id: u32, name: text }),
  fc.record({ _tag: fc.constant("OptionError" as const), option, type: errorType, message: text }),
  fc.record({
    _tag: fc.constant("UnknownReply" as const),
    option,
    type: fc.integer({ min: 5, max: REPLY_ERROR_BIT - 1 }),
    data: bytes()
  })
)

// -----------------------------------------------------------------------------
// transmission
// -----------------------------------------------------------------------------

export const request = (maxData = 64): fc.Arbitrary<NbdTransmission.Request> =>
  fc.record({
    flags: u16,
    type: fc.oneof(fc.integer({ min: 0, max: 8 }), u16),
    cookie,
    offset,
    length: u32,
    data: bytes(0, maxData)
  }).map((r) =>
    r.type === Command.WRITE
      ? { _tag: "Request", ...r, length: r.data.length }
      : { _tag: "Request", ...r, data: new Uint8Array(0) }
  )

export const simpleReply = (maxData = 64): fc.Arbitrary<NbdTransmission.SimpleReply> =>
  fc.record({ error: fc.oneof(fc.constant(0), u32), cookie, data: bytes(0, maxData) }).map((r) => ({
    _tag: "SimpleReply",
    ...r,
    data: r.error === 0 ? r.data : new Uint8Array(0)
  }))

const base = { flags: u16, cookie }

export const chunk = (maxData = 64): fc.Arbitrary<NbdTransmission.Chunk> =>
  fc.oneof(
    fc.record({ _tag: fc.constant("None" as const), ...base }),
    fc.record({ _tag: fc.constant("OffsetData" as const), ...base, offset, data: bytes(1, maxData) }),
    fc.record({ _tag: fc.constant("OffsetHole" as const), ...base, offset, length: u32 }),
    fc.record({
      _tag: fc.constant("BlockStatus" as const),
      ...base,
      contextId: u32,
      extents: fc.array(fc.record({ length: u32, status: u32 }), { minLength: 1, maxLength: 6 })
    }),
    fc.record({ _tag: fc.constant("Error" as const), ...base, error: u32, message: text }),
    fc.record({ _tag: fc.constant("ErrorOffset" as const), ...base, error: u32, message: text, offset }),
    fc.record({
      _tag: fc.constant("UnknownErrorChunk" as const),
      ...base,
      type: fc.integer({ min: ChunkType.ERROR_OFFSET + 1, max: 0xffff }),
      error: u32,
      message: text,
      rest: bytes()
    }),
    fc.record({
      _tag: fc.constant("UnknownChunk" as const),
      ...base,
      type: fc.constantFrom(3, 4, 6, 100, 0x7fff),
      payload: bytes()
    })
  )

/** Compares hex strings ignoring whitespace (expected values are spaced per wire field). */
export const assertHex = (actual: string, expected: string): void =>
  assert.strictEqual(actual, expected.replace(/\s+/g, ""))
