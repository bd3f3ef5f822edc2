import { assert, describe, it } from "@effect/vitest"
import { Result } from "effect"
import fc from "fast-check"
import * as crypto from "node:crypto"
import * as CdmDeletions from "../src/CdmDeletions.ts"
import { bytes, failure, mutated, noThrow, ok, plain, refusedBy, toHex, u8 } from "./utils/T2Arbitraries.ts"

const ascii = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0))
const SIGNING = 0x015207ca

/** A map laid out by hand from the §3.10 offsets. */
const handMade = (signature?: Uint8Array): Uint8Array => {
  const b = new Uint8Array(signature === undefined ? 1072 : 1200)
  b.set(ascii("DMP10\n"), 0)
  b[6] = 0
  b.set([0x01, 0x52, 0x07, 0xca], 7)
  b.set([0x03, 0x52, 0x00, 0x00], 48 + 4 * 5) // slot 5: VALID|DELETED through 0x520000
  b.set([0x01, 0x52, 0x00, 0x00], 48 + 4 * 6) // slot 6: VALID only
  b.set([0x02, 0xff, 0xff, 0xff], 48 + 4 * 7) // slot 7: DELETED without VALID
  if (signature !== undefined) b.set(signature, 1072)
  return b
}

const refused = refusedBy(CdmDeletions.decode)

const edited = (edit: (b: Uint8Array) => void): Uint8Array => {
  const b = handMade()
  edit(b)
  return b
}

const deletions: fc.Arbitrary<CdmDeletions.CdmDeletions> = fc.integer({ min: 0, max: 0xffffff }).chain((signingStamp) =>
  fc.record({
    minor: fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c)),
    regnum: u8,
    slotstamp: fc.constant(0x0100_0000 + signingStamp),
    reserved: bytes(37, 37),
    entries: fc.array(
      fc.oneof(
        fc.record({ flags: u8.map((f) => f | 1), stamp: fc.integer({ min: 0, max: signingStamp }) }),
        fc.record({ flags: u8.map((f) => f & 0xfe), stamp: fc.integer({ min: 0, max: 0xffffff }) })
      ),
      { minLength: 256, maxLength: 256 }
    ),
    signature: fc.option(bytes(128, 128), { nil: undefined })
  })
)

describe("CdmDeletions", () => {
  describe("layout (§3.10)", () => {
    it("decodes every field from its offset and encodes the same bytes", () => {
      const input = handMade()
      const map = ok(CdmDeletions.decode(input))
      assert.strictEqual(map.minor, "0")
      assert.strictEqual(map.regnum, 0)
      assert.strictEqual(map.slotstamp, SIGNING)
      assert.strictEqual(map.reserved.length, 37)
      assert.strictEqual(map.reserved.buffer, input.buffer)
      assert.strictEqual(map.entries.length, 256)
      assert.deepStrictEqual(map.entries[5], { flags: 3, stamp: 0x520000 })
      assert.deepStrictEqual(map.entries[6], { flags: 1, stamp: 0x520000 })
      assert.deepStrictEqual(map.entries[7], { flags: 2, stamp: 0xffffff })
      assert.deepStrictEqual(map.entries[8], { flags: 0, stamp: 0 })
      assert.isUndefined(map.signature)
      assert.strictEqual(toHex(ok(CdmDeletions.encode(map))), toHex(input))
    })

    it("keeps the signature of the signed form", () => {
      const signature = new Uint8Array(128).fill(0x77)
      const input = handMade(signature)
      const map = ok(CdmDeletions.decode(input))
      assert.deepStrictEqual(plain(map.signature), plain(signature))
      assert.strictEqual(toHex(ok(CdmDeletions.encode(map))), toHex(input))
      assert.deepStrictEqual(CdmDeletions.signedRange, { start: 0, end: 1072 })
      assert.strictEqual(CdmDeletions.signedPart(input).length, 1072)
    })

    it("verifies with a real RSA/SHA-512 signature over bytes 0..1071", () => {
      const { privateKey, publicKey } = crypto.generateKeyPairSync("rsa", { modulusLength: 1024 })
      const unsigned = handMade()
      const signature = new Uint8Array(crypto.sign("sha512", CdmDeletions.signedPart(unsigned), privateKey))
      const signed = ok(CdmDeletions.encode({ ...ok(CdmDeletions.decode(unsigned)), signature }))
      assert.strictEqual(signed.length, 1200)
      const map = ok(CdmDeletions.decode(signed))
      assert.isTrue(crypto.verify("sha512", CdmDeletions.signedPart(signed), publicKey, map.signature!))
    })
  })

  describe("isDeleted", () => {
    const map = ok(CdmDeletions.decode(handMade()))

    it("needs VALID and DELETED and a stamp at or below the entry's", () => {
      assert.isTrue(CdmDeletions.isDeleted(map, 0x05520000))
      assert.isTrue(CdmDeletions.isDeleted(map, 0x0551ffff))
      assert.isTrue(CdmDeletions.isDeleted(map, 0x05000000))
      assert.isFalse(CdmDeletions.isDeleted(map, 0x05520001))
      assert.isFalse(CdmDeletions.isDeleted(map, 0x06400000), "VALID without DELETED")
      assert.isFalse(CdmDeletions.isDeleted(map, 0x07000001), "DELETED without VALID")
      assert.isFalse(CdmDeletions.isDeleted(map, 0x08000000), "empty entry")
    })
  })

  describe("validation", () => {
    it("refuses malformed maps", () => {
      refused(new Uint8Array(1071), 1071, "expected 1072 or 1200")
      refused(new Uint8Array(1073), 1073, "expected 1072 or 1200")
      refused(edited((b) => (b[0] = 0x43)), 0, "magic")
      refused(edited((b) => (b[5] = 0x20)), 5, "magic")
      refused(edited((b) => (b[7] = 0x02)), 7, "slot is not 0x01")
      refused(edited((b) => b.set([0x01, 0x52, 0x07, 0xcb], 48 + 4 * 9)), 48 + 4 * 9, "newer than the map")
    })

    it("refuses models decode would refuse", () => {
      const map = ok(CdmDeletions.decode(handMade()))
      assert.include(failure(CdmDeletions.encode({ ...map, entries: map.entries.slice(1) })).reason, "256 needed")
      assert.include(failure(CdmDeletions.encode({ ...map, reserved: new Uint8Array(36) })).reason, "37 bytes")
      assert.include(failure(CdmDeletions.encode({ ...map, signature: new Uint8Array(127) })).reason, "128 bytes")
      assert.include(failure(CdmDeletions.encode({ ...map, slotstamp: 0x025207ca })).reason, "0x01")
      const entries = [...map.entries]
      entries[3] = { flags: 0x100, stamp: 0 }
      assert.include(failure(CdmDeletions.encode({ ...map, entries })).reason, "8 flag bits")
      entries[3] = { flags: 1, stamp: 0x5207cb }
      assert.include(failure(CdmDeletions.encode({ ...map, entries })).reason, "newer than the map")
    })
  })

  describe("properties", () => {
    it("decode(encode(m)) is m", () => {
      fc.assert(
        fc.property(deletions, (map) => {
          assert.deepStrictEqual(plain(ok(CdmDeletions.decode(ok(CdmDeletions.encode(map))))), plain(map))
        }),
        { numRuns: 200 }
      )
    })

    it("mutated maps never throw; whatever decodes is canonical", () => {
      fc.assert(
        fc.property(mutated(deletions.map((m) => ok(CdmDeletions.encode(m)))), (input) => {
          const result = noThrow(CdmDeletions.decode, input)
          if (Result.isSuccess(result)) assert.strictEqual(toHex(ok(CdmDeletions.encode(result.success))), toHex(input))
        }),
        { numRuns: 300 }
      )
    })
  })
})
