import { assert, describe, it } from "@effect/vitest"
import { Result } from "effect"
import fc from "fast-check"
import * as CdmPacket from "../src/CdmPacket.ts"
import * as T2Direction from "../src/T2Direction.ts"
import {
  bytes,
  cdmPacket,
  failure,
  fromHex,
  mutated,
  noThrow,
  ok,
  plain,
  refusedBy,
  toHex,
  viewsOf
} from "./utils/T2Arbitraries.ts"

const EMPTY = new Uint8Array(0)
const decodeHex = (hex: string) => ok(CdmPacket.decode(fromHex(hex)))
const encodeHex = (packet: CdmPacket.CdmPacket) => toHex(ok(CdmPacket.encode(packet)))
const ascii = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0))

const refused = refusedBy(CdmPacket.decode)

// h = (h·2 XOR b XOR h >> 11) AND 0xFFFF, written with arithmetic instead of shifts.
const reference = (data: Uint8Array) => {
  let h = 0xfeed
  for (const b of data) h = ((h * 2) ^ b ^ Math.floor(h / 2048)) % 65536
  return h
}

const canonical = (input: Uint8Array) => {
  const result = noThrow(CdmPacket.decode, input)
  if (Result.isSuccess(result)) {
    assert.strictEqual(toHex(ok(CdmPacket.encode(result.success))), toHex(input))
    for (const view of viewsOf(result.success)) assert.strictEqual(view.buffer, input.buffer)
  }
}

describe("CdmPacket", () => {
  describe("worked examples (§3.3)", () => {
    it("F toward ET for slot 0x05, stamp 0x5207CA, available 5120", () => {
      const f = CdmPacket.announce(T2Direction.ET, 0x055207ca, 5120)
      assert.strictEqual(encodeHex(f), "828346055207ca00001400055213ca")
      assert.deepStrictEqual(plain(decodeHex("82 83 46 05 52 07 CA 00 00 14 00 05 52 13 CA")), plain(f))
    })

    it("the east neighbour reads the same F arriving from its WT", () => {
      const received = decodeHex("86 83 46 05 52 07 CA 00 00 14 00 05 52 13 CA")
      assert.deepStrictEqual(plain(received), plain(CdmPacket.announce(T2Direction.WT, 0x055207ca, 5120)))
      assert.strictEqual(T2Direction.opposite(T2Direction.ET), received.dir)
    })

    it("C for the same file at position 1024", () => {
      const c = CdmPacket.request(T2Direction.ET, 0x055207ca, 1024)
      assert.strictEqual(encodeHex(c), "828343055207ca00000400")
      assert.deepStrictEqual(plain(decodeHex("82 83 43 05 52 07 CA 00 00 04 00")), plain(c))
    })

    it("hack16 vectors", () => {
      assert.strictEqual(CdmPacket.hack16(EMPTY), 0xfeed)
      assert.strictEqual(CdmPacket.hack16(ascii("A")), 0xfd84)
      assert.strictEqual(CdmPacket.hack16(ascii("ABC")), 0xf6f6)
      assert.strictEqual(CdmPacket.hack16(new Uint8Array(180)), 0x7ee5)
    })
  })

  describe("layouts", () => {
    it("A carries a rolling tag and the protocol version", () => {
      const a = CdmPacket.alive(T2Direction.SE, 42)
      assert.strictEqual(encodeHex(a), "8383412a03")
      assert.strictEqual(CdmPacket.versionOf(a), 3)
      // A v1 sender omits the version byte.
      const v1 = decodeHex("83 83 41 2a")
      assert.deepStrictEqual(plain(v1), plain({ _tag: "CdmA", dir: 3, tag: 42, version: undefined, trailing: EMPTY }))
      assert.strictEqual(CdmPacket.versionOf(v1 as CdmPacket.CdmA), 1)
    })

    it("D carries n data bytes and their hack16", () => {
      const d = CdmPacket.chunk(T2Direction.NW, 0x055207ca, 1024, ascii("ABC"))
      assert.strictEqual(encodeHex(d), "878344055207ca0000040003414243f6f6")
      assert.deepStrictEqual(plain(decodeHex("878344055207ca0000040003414243f6f6")), plain(d))
      const full = CdmPacket.chunk(T2Direction.ET, 0x01000001, 0, new Uint8Array(180))
      const encoded = ok(CdmPacket.encode(full))
      assert.strictEqual(encoded.length, 194)
      assert.strictEqual(toHex(encoded.subarray(192)), "7ee5")
    })

    it("keeps bytes after the last field (v3 ignores them)", () => {
      const f = decodeHex("82 83 46 05 52 07 CA 00 00 14 00 05 52 13 CA 99 98")
      assert.deepStrictEqual(Array.from((f as CdmPacket.CdmF).trailing), [0x99, 0x98])
      assert.strictEqual(encodeHex(f), "828346055207ca00001400055213ca9998")
      const d = decodeHex("878344055207ca0000040003414243f6f6 01")
      assert.deepStrictEqual(Array.from((d as CdmPacket.CdmD).trailing), [1])
    })

    it("keeps commands other than A/F/C/D whole", () => {
      const p = decodeHex("82 83 50 0102")
      assert.deepStrictEqual(plain(p), plain({ _tag: "CdmOther", dir: 2, command: 0x50, body: Uint8Array.of(1, 2) }))
      assert.strictEqual(encodeHex(p), "8283500102")
    })

    it("returns views of the packet, not copies", () => {
      const input = fromHex("878344055207ca0000040003414243f6f6")
      const d = ok(CdmPacket.decode(input)) as CdmPacket.CdmD
      assert.strictEqual(d.data.buffer, input.buffer)
      assert.strictEqual(d.data.byteOffset, 12)
    })
  })

  describe("validation", () => {
    it("refuses what v3 discards", () => {
      refused("82 83", 2, "command byte")
      refused("92 83 46 05 52 07 CA 00 00 14 00 05 52 13 CA", 0, "0x80..0x87")
      refused("a2 83 41 00", 0, "0x80..0x87")
      refused("82 84 41 00", 1, "not 0x83")
      refused("82 83 41", 3, "tag byte")
      refused("82 83 46 05 52 07 CA 00 00 14 00 05 52 13", 14, "at least 15")
      refused("82 83 46 00 00 00 00 00 00 14 00 00 00 14 00", 3, "zero")
      refused("82 83 46 05 52 07 CA 00 00 14 00 05 52 13 CB", 11, "check word")
      refused("82 83 43 00 00 00 00 00 00 04 00", 3, "zero")
      refused("82 83 43 05 52 07 CA 00 00 04", 10, "at least 11")
      refused("878344055207ca00000400b5", 11, "exceeds 180")
      refused("878344055207ca0000040003414243f6", 16, "needs 17 bytes")
      refused("878344055207ca0000040003414243f6f7", 15, "hack16")
      refused("878344055207ca0000040003414244f6f6", 15, "hack16")
      refused(`8283${"00".repeat(254)}`, 255, "at most 255")
    })

    it("refuses models that do not fit their bytes", () => {
      const f = CdmPacket.announce(T2Direction.ET, 0x055207ca, 5120)
      assert.include(failure(CdmPacket.encode({ ...f, slotstamp: 0 })).reason, "non-zero")
      assert.include(failure(CdmPacket.encode({ ...f, slotstamp: 0x1_0000_0000 })).reason, "non-zero 32-bit")
      assert.include(failure(CdmPacket.encode({ ...f, available: -1 })).reason, "available")
      assert.include(failure(CdmPacket.encode({ ...f, dir: 8 as T2Direction.Dir8 })).reason, "0..7")
      const d = CdmPacket.chunk(T2Direction.ET, 0x055207ca, 0, new Uint8Array(181))
      assert.include(failure(CdmPacket.encode(d)).reason, "exceeds 180")
      const a = CdmPacket.alive(T2Direction.ET, 1)
      assert.include(
        failure(CdmPacket.encode({ ...a, version: undefined, trailing: Uint8Array.of(1) })).reason,
        "version byte"
      )
      assert.include(failure(CdmPacket.encode({ ...a, tag: 256 })).reason, "tag")
      const other: CdmPacket.CdmOther = { _tag: "CdmOther", dir: 2, command: 0x46, body: EMPTY }
      assert.include(failure(CdmPacket.encode(other)).reason, "outside A/F/C/D")
      const long = failure(CdmPacket.encode({ ...f, trailing: new Uint8Array(241) }))
      assert.strictEqual(long.offset, 255)
    })
  })

  describe("properties", () => {
    it("decode(encode(p)) is p", () => {
      fc.assert(
        fc.property(cdmPacket, (packet) => {
          assert.deepStrictEqual(plain(ok(CdmPacket.decode(ok(CdmPacket.encode(packet))))), plain(packet))
        }),
        { numRuns: 1000 }
      )
    })

    it("hack16 follows the spec's arithmetic form", () => {
      fc.assert(fc.property(bytes(255), (data) => assert.strictEqual(CdmPacket.hack16(data), reference(data))))
    })

    it("random and mutated bytes never throw; whatever decodes is canonical", () => {
      fc.assert(
        fc.property(
          fc.tuple(fc.integer({ min: 0x80, max: 0x87 }), fc.constantFrom(0x41, 0x43, 0x44, 0x46, 0x50), bytes(260)),
          ([b0, command, rest]) => {
            const input = new Uint8Array(rest.length + 3)
            input.set([b0, 0x83, command])
            input.set(rest, 3)
            canonical(input)
          }
        ),
        { numRuns: 3000 }
      )
      fc.assert(fc.property(mutated(cdmPacket.map((p) => ok(CdmPacket.encode(p)))), canonical), { numRuns: 3000 })
    })
  })
})
