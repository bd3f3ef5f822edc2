// fast-check generators for valid T2 packet models and small helpers shared by the T2*, Cdm* and Flash* tests.
import { assert } from "@effect/vitest"
import { Result } from "effect"
import fc from "fast-check"
import type * as CdmPacket from "../../src/CdmPacket.ts"
import type { DecodeError } from "../../src/DecodeError.ts"
import type * as FlashPacket from "../../src/FlashPacket.ts"
import type { Dir8 } from "../../src/T2Direction.ts"
import type * as T2Packet from "../../src/T2Packet.ts"

export const fromHex = (hex: string): Uint8Array => Uint8Array.from(Buffer.from(hex.replace(/\s+/g, ""), "hex"))
export const toHex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex")

/** Replaces every Uint8Array by a plain array so views and copies with equal bytes compare equal. */
export const plain = (value: unknown): unknown => {
  if (value instanceof Uint8Array) return Array.from(value)
  if (Array.isArray(value)) return value.map(plain)
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]))
  }
  return value
}

/** Every Uint8Array held by a decoded value (one level deep, which is where the models keep them). */
export const viewsOf = (value: object): ReadonlyArray<Uint8Array> =>
  Object.values(value).flatMap((v) =>
    v instanceof Uint8Array ? [v] : Array.isArray(v) ? v.filter((x) => x instanceof Uint8Array) : []
  )

export const ok = <A>(result: Result.Result<A, DecodeError>): A => {
  if (Result.isFailure(result)) assert.fail(`unexpected DecodeError: ${result.failure.message}`)
  return result.success
}

export const failure = (result: Result.Result<unknown, DecodeError>): DecodeError => {
  if (Result.isSuccess(result)) assert.fail("expected a DecodeError")
  return result.failure
}

/** Asserts that `decode` refuses `input` (bytes, or hex) with a t2 DecodeError at `offset` whose reason names `reason`. */
export const refusedBy =
  <A>(decode: (bytes: Uint8Array) => Result.Result<A, DecodeError>) =>
  (input: Uint8Array | string, offset: number, reason: string): void => {
    const error = failure(decode(typeof input === "string" ? fromHex(input) : input))
    assert.strictEqual(error.protocol, "t2")
    assert.strictEqual(error.offset, offset, error.message)
    assert.include(error.reason, reason)
  }

/** Calls a decoder and fails the test (instead of the run) if it throws. */
export const noThrow = <A>(decode: (bytes: Uint8Array) => Result.Result<A, DecodeError>, bytes: Uint8Array) => {
  try {
    return decode(bytes)
  } catch (error) {
    assert.fail(`decoder threw ${String(error)} on ${toHex(bytes)}`)
  }
}

const EMPTY = new Uint8Array(0)

export const dir8 = fc.integer({ min: 0, max: 7 }) as fc.Arbitrary<Dir8>
export const linkDir = fc.constantFrom<Dir8>(1, 2, 3, 5, 6, 7)
export const u8 = fc.integer({ min: 0, max: 0xff })
export const u32 = fc.integer({ min: 0, max: 0xffff_ffff })
export const slotstamp = fc.integer({ min: 0x0100_0000, max: 0xffff_ffff })
export const bytes = (maxLength: number, minLength = 0) => fc.uint8Array({ minLength, maxLength })

// ---------------------------------------------------------------------------------------------------------
// CDM

export const cdmA: fc.Arbitrary<CdmPacket.CdmA> = fc.oneof(
  fc.record({ dir: dir8, tag: u8 }).map(({ dir, tag }) => ({
    _tag: "CdmA" as const,
    dir,
    tag,
    version: undefined,
    trailing: EMPTY
  })),
  fc.record({ dir: dir8, tag: u8, version: u8, trailing: bytes(250) }).map((r) => ({ _tag: "CdmA" as const, ...r }))
)

export const cdmF: fc.Arbitrary<CdmPacket.CdmF> = fc.record({
  dir: dir8,
  slotstamp,
  available: u32,
  trailing: bytes(240)
}).map((r) => ({ _tag: "CdmF" as const, ...r }))

export const cdmC: fc.Arbitrary<CdmPacket.CdmC> = fc.record({
  dir: dir8,
  slotstamp,
  position: u32,
  trailing: bytes(244)
}).map((r) => ({ _tag: "CdmC" as const, ...r }))

export const cdmD: fc.Arbitrary<CdmPacket.CdmD> = fc.record({
  dir: dir8,
  slotstamp,
  position: u32,
  data: bytes(180),
  trailing: bytes(61)
}).map((r) => ({ _tag: "CdmD" as const, ...r }))

export const cdmOther: fc.Arbitrary<CdmPacket.CdmOther> = fc.record({
  dir: dir8,
  command: u8.filter((c) => ![0x41, 0x43, 0x44, 0x46].includes(c)),
  body: bytes(252)
}).map((r) => ({ _tag: "CdmOther" as const, ...r }))

export const cdmPacket: fc.Arbitrary<CdmPacket.CdmPacket> = fc.oneof(cdmA, cdmF, cdmC, cdmD, cdmOther)

// ---------------------------------------------------------------------------------------------------------
// Flash

export const flash: fc.Arbitrary<FlashPacket.FlashPacket> = fc.record({
  dir: dir8,
  command: fc.integer({ min: 0, max: 0x7f }),
  index: u8,
  range: u8,
  argument: u32,
  ttl: u8,
  originX: fc.integer({ min: -128, max: 127 }),
  originY: fc.integer({ min: -128, max: 127 })
}).map((r) => ({ _tag: "Flash" as const, ...r }))

// ---------------------------------------------------------------------------------------------------------
// Other T2 packets

const nonStandard: fc.Arbitrary<T2Packet.NonStandard> = fc.record({
  command: fc.integer({ min: 0, max: 0x7f }),
  body: bytes(254)
}).map((r) => ({ _tag: "NonStandard" as const, ...r }))

const localText: fc.Arbitrary<T2Packet.LocalText> = fc.record({
  localType: fc.constantFrom<1 | 2>(1, 2),
  reserved: fc.boolean(),
  text: bytes(254)
}).map((r) => ({ _tag: "LocalText" as const, ...r }))

export const control: fc.Arbitrary<T2Packet.Control> = fc.record({
  reserved: fc.boolean(),
  code: fc.constantFrom<T2Packet.ControlCode>("P", "F", "T", "M"),
  pru: fc.constantFrom<0 | 1>(0, 1),
  prudir: fc.constantFrom<0 | 1 | 2 | 3>(0, 1, 2, 3),
  value: fc.oneof(fc.integer({ min: 0, max: 15 }), u32)
}).map((r) => ({
  _tag: "Control" as const,
  ...r,
  prudir: r.code === "M" ? r.prudir : (r.prudir % 3) as 0 | 1 | 2
}))

export const tileEvent: fc.Arbitrary<T2Packet.TileEvent> = fc.oneof(
  fc.record({ reserved: fc.boolean(), dir: linkDir, trailing: bytes(252) }).map((r) => ({
    _tag: "TileEvent" as const,
    event: "connect" as const,
    ...r
  })),
  fc.record({
    reserved: fc.boolean(),
    dir: linkDir,
    cause: fc.constantFrom<T2Packet.DisconnectCause>("unspecified", "frame_error", "timeout", "monitor"),
    trailing: bytes(251)
  }).map((r) => ({ _tag: "TileEvent" as const, event: "disconnect" as const, ...r }))
)

const localOther: fc.Arbitrary<T2Packet.LocalOther> = fc.record({
  localType: fc.oneof(fc.constant(0), fc.integer({ min: 5, max: 31 })),
  reserved: fc.boolean(),
  body: bytes(254)
}).map((r) => ({ _tag: "LocalOther" as const, ...r }))

const mfzid = fc.uint8Array({ minLength: 0, maxLength: 100, min: 1, max: 255 })

export const kitc: fc.Arbitrary<T2Packet.Kitc> = fc.oneof(
  fc.record({ dir: dir8, state: fc.constantFrom<T2Packet.KitcState>(0, 1, 2, 3, 4, 5, 7) }).map((r) => ({
    _tag: "Kitc" as const,
    ...r,
    token: undefined,
    mfzid: undefined
  })),
  fc.record({ dir: dir8, state: fc.constantFrom<T2Packet.KitcState>(9, 10), token: u8 }).map((r) => ({
    _tag: "Kitc" as const,
    ...r,
    mfzid: undefined
  })),
  fc.record({ dir: dir8, state: fc.constantFrom<T2Packet.KitcState>(6, 8), token: u8, mfzid }).map((r) => ({
    _tag: "Kitc" as const,
    ...r
  }))
)

const mfm: fc.Arbitrary<T2Packet.Mfm> = fc.record({
  dir: dir8,
  xitc: fc.integer({ min: 1, max: 7 }) as fc.Arbitrary<T2Packet.Xitc>,
  number: fc.integer({ min: 0, max: 31 }),
  body: bytes(253)
}).map((r) => ({ _tag: "Mfm" as const, ...r }))

const returned: fc.Arbitrary<T2Packet.Returned> = fc.record({
  dir: dir8,
  mfm: fc.boolean(),
  flags: fc.constantFrom([true, false], [false, true], [true, true]),
  body: bytes(254, 1)
}).map(({ flags, ...r }) => ({ _tag: "Returned" as const, ...r, overrun: flags[0]!, error: flags[1]! }))

const bulk: fc.Arbitrary<T2Packet.Bulk> = fc.record({
  dir: dir8,
  code: fc.integer({ min: 0, max: 0x7f }).filter((c) => c !== 3 && (c < 0x30 || c > 0x38)),
  body: bytes(253)
}).map((r) => ({ _tag: "Bulk" as const, ...r }))

const sourceRouted: fc.Arbitrary<T2Packet.SourceRouted> = fc.record({
  dir: dir8,
  to: fc.array(dir8, { maxLength: 50 }),
  from: fc.array(dir8, { maxLength: 50 }),
  command: u8,
  body: bytes(151)
}).map((r) => ({ _tag: "SourceRouted" as const, ...r }))

/** Every packet kind, each valid and within 255 bytes. */
export const t2Packet: fc.Arbitrary<T2Packet.T2Packet> = fc.oneof(
  nonStandard,
  localText,
  control,
  tileEvent,
  localOther,
  kitc,
  mfm,
  returned,
  bulk,
  sourceRouted,
  flash,
  cdmPacket
)

/** A byte string with a few bytes replaced, removed or appended. */
export const mutated = (base: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> =>
  fc.tuple(base, fc.array(fc.tuple(fc.nat(), u8), { minLength: 1, maxLength: 4 }), fc.integer({ min: -3, max: 3 }))
    .map(([input, edits, grow]) => {
      const out = new Uint8Array(Math.max(0, input.length + grow))
      out.set(input.subarray(0, out.length))
      for (const [at, value] of edits) if (out.length > 0) out[at % out.length] = value
      return out
    })
