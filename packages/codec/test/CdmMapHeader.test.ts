import { assert, describe, it } from "@effect/vitest"
import { Result } from "effect"
import fc from "fast-check"
import * as crypto from "node:crypto"
import * as CdmMapHeader from "../src/CdmMapHeader.ts"
import { bytes, failure, mutated, noThrow, ok, plain, refusedBy, slotstamp, toHex, u8 } from "./utils/T2Arbitraries.ts"

const ascii = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0))
const filled = (length: number, value: number) => new Uint8Array(length).fill(value)

/** A header laid out by hand from the §4.2 offsets: 300 mapped bytes in 256-byte blocks, so 2 entries. */
const handMade = (): Uint8Array => {
  const b = new Uint8Array(1024)
  b.set(ascii("CDM10\n"), 0)
  b[6] = 8
  b[7] = 0
  b.set([0x05, 0x52, 0x07, 0xca], 8)
  b.set([0x00, 0x00, 0x01, 0x2c], 12)
  b.set(ascii("T2/base"), 16)
  b.set(filled(64, 0x11), 32)
  b.set(filled(8, 0x21), 96)
  b.set(filled(8, 0x22), 104)
  b.set(filled(128, 0x5a), 896)
  return b
}

const refused = refusedBy(CdmMapHeader.decode)

const edited = (edit: (b: Uint8Array) => void): Uint8Array => {
  const b = handMade()
  edit(b)
  return b
}

const sha512 = (data: Uint8Array) => new Uint8Array(crypto.createHash("sha512").update(data).digest())

const header: fc.Arbitrary<CdmMapHeader.CdmMapHeader> = fc.integer({ min: 8, max: 32 }).chain((bitsInBlock) =>
  fc.integer({ min: 0, max: Math.min(0xffff_ffff, 2 ** bitsInBlock * 100) }).chain((mappedLength) =>
    fc.record({
      minor: fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c)),
      bitsInBlock: fc.constant(bitsInBlock),
      regnum: u8,
      slotstamp,
      mappedLength: fc.constant(mappedLength),
      label: fc.string({
        unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
        maxLength: 16
      }),
      sha512: bytes(64, 64),
      checksums: fc.array(bytes(8, 8), {
        minLength: CdmMapHeader.entryCount(mappedLength, bitsInBlock),
        maxLength: CdmMapHeader.entryCount(mappedLength, bitsInBlock)
      }),
      signature: bytes(128, 128)
    })
  )
)

describe("CdmMapHeader", () => {
  describe("layout (§4.2)", () => {
    it("decodes every field from its offset and encodes the same 1024 bytes", () => {
      const input = handMade()
      const h = ok(CdmMapHeader.decode(input))
      assert.deepStrictEqual(
        plain(h),
        plain({
          minor: "0",
          bitsInBlock: 8,
          regnum: 0,
          slotstamp: 0x055207ca,
          mappedLength: 300,
          label: "T2/base",
          sha512: filled(64, 0x11),
          checksums: [filled(8, 0x21), filled(8, 0x22)],
          signature: filled(128, 0x5a)
        })
      )
      assert.strictEqual(toHex(ok(CdmMapHeader.encode(h))), toHex(input))
      assert.strictEqual(CdmMapHeader.blockSize(h), 256)
      assert.strictEqual(CdmMapHeader.totalLength(h), 1324)
      assert.deepStrictEqual(CdmMapHeader.checksumRange(h, 0), { start: 0, end: 256 })
      assert.deepStrictEqual(CdmMapHeader.checksumRange(h, 1), { start: 0, end: 300 })
      // Views, not copies.
      assert.strictEqual(h.signature.buffer, input.buffer)
      assert.strictEqual(h.checksums[1]!.byteOffset, 104)
    })

    it("exposes the signed range 0..895 and the signature after it", () => {
      assert.deepStrictEqual(CdmMapHeader.signedRange, { start: 0, end: 896 })
      assert.strictEqual(CdmMapHeader.signedRange.end + CdmMapHeader.signatureLength, CdmMapHeader.size)
      const input = handMade()
      const signed = CdmMapHeader.signedPart(input)
      assert.strictEqual(signed.length, 896)
      assert.strictEqual(signed.buffer, input.buffer)
    })

    it("reads the header at the start of a whole managed file", () => {
      const file = new Uint8Array(1324)
      file.set(handMade())
      file.fill(0xee, 1024)
      assert.strictEqual(ok(CdmMapHeader.decode(file)).mappedLength, 300)
    })

    it("accepts any minor version in CDM1?\\n", () => {
      assert.strictEqual(ok(CdmMapHeader.decode(edited((b) => (b[4] = 0x37)))).minor, "7")
    })
  })

  describe("block sizes and entry counts", () => {
    it("picks the smallest bitsInBlock ≥ 8 covering the file in 100 blocks", () => {
      assert.strictEqual(CdmMapHeader.bitsInBlockFor(0), 8)
      assert.strictEqual(CdmMapHeader.bitsInBlockFor(25600), 8)
      assert.strictEqual(CdmMapHeader.bitsInBlockFor(25601), 9)
      assert.strictEqual(CdmMapHeader.bitsInBlockFor(2_062_272), 15)
      assert.strictEqual(CdmMapHeader.bitsInBlockFor(0xffff_ffff), 26)
    })

    it("uses every entry i < 100 with i·B ≤ length (one extra on exact multiples)", () => {
      assert.strictEqual(CdmMapHeader.entryCount(0, 8), 1)
      assert.strictEqual(CdmMapHeader.entryCount(255, 8), 1)
      assert.strictEqual(CdmMapHeader.entryCount(256, 8), 2)
      assert.strictEqual(CdmMapHeader.entryCount(257, 8), 2)
      assert.strictEqual(CdmMapHeader.entryCount(512, 8), 3)
      assert.strictEqual(CdmMapHeader.entryCount(25599, 8), 100)
      assert.strictEqual(CdmMapHeader.entryCount(25600, 8), 100)
    })

    it("lays out real prefix checksums and a real RSA-1024/SHA-512 signature", () => {
      const mapped = new Uint8Array(crypto.randomBytes(512 * 3))
      const bitsInBlock = CdmMapHeader.bitsInBlockFor(mapped.length)
      const count = CdmMapHeader.entryCount(mapped.length, bitsInBlock)
      assert.deepStrictEqual([bitsInBlock, count], [8, 7])
      const draft: CdmMapHeader.CdmMapHeader = {
        minor: "0",
        bitsInBlock,
        regnum: 0,
        slotstamp: 0xa0000001,
        mappedLength: mapped.length,
        label: "Physics-a1",
        sha512: sha512(mapped),
        checksums: [],
        signature: new Uint8Array(128)
      }
      const checksums = Array.from(
        { length: count },
        (_, i) => sha512(mapped.subarray(0, CdmMapHeader.checksumRange(draft, i).end)).subarray(0, 8)
      )
      // Exact multiple of the block size: the extra last entry repeats the previous prefix.
      assert.strictEqual(toHex(checksums[6]!), toHex(checksums[5]!))
      const unsigned = ok(CdmMapHeader.encode({ ...draft, checksums }))
      const { privateKey, publicKey } = crypto.generateKeyPairSync("rsa", { modulusLength: 1024 })
      const signature = new Uint8Array(crypto.sign("sha512", CdmMapHeader.signedPart(unsigned), privateKey))
      assert.strictEqual(signature.length, 128)
      const signed = ok(CdmMapHeader.encode({ ...draft, checksums, signature }))
      assert.strictEqual(toHex(CdmMapHeader.signedPart(signed)), toHex(CdmMapHeader.signedPart(unsigned)))
      const decoded = ok(CdmMapHeader.decode(signed))
      assert.isTrue(crypto.verify("sha512", CdmMapHeader.signedPart(signed), publicKey, decoded.signature))
      const tampered = Uint8Array.from(signed)
      tampered[8] ^= 1
      assert.isFalse(crypto.verify("sha512", CdmMapHeader.signedPart(tampered), publicKey, decoded.signature))
    })
  })

  describe("validation", () => {
    it("refuses malformed headers", () => {
      refused(new Uint8Array(1023), 1023, "needs 1024")
      refused(edited((b) => (b[0] = 0x63)), 0, "magic")
      refused(edited((b) => (b[3] = 0x32)), 3, "magic")
      refused(edited((b) => (b[5] = 0x0d)), 5, "magic")
      refused(edited((b) => (b[6] = 7)), 6, "bitsInBlock 7")
      refused(edited((b) => (b[6] = 33)), 6, "bitsInBlock 33")
      // 25601 bytes do not fit 100 blocks of 256.
      refused(edited((b) => b.set([0, 0, 0x64, 0x01], 12)), 6, "more than 100")
      refused(edited((b) => (b[8] = 0)), 8, "slot 0")
      refused(edited((b) => (b[18] = 0x09)), 18, "not printable")
      refused(edited((b) => (b[30] = 0x41)), 30, "padding")
      refused(edited((b) => (b[112] = 1)), 112, "unused checksum")
      refused(edited((b) => (b[895] = 1)), 895, "unused checksum")
    })

    it("refuses models decode would refuse", () => {
      const h = ok(CdmMapHeader.decode(handMade()))
      assert.include(
        failure(CdmMapHeader.encode({ ...h, checksums: h.checksums.slice(1) })).reason,
        "1 checksum entries"
      )
      assert.include(failure(CdmMapHeader.encode({ ...h, label: "a".repeat(17) })).reason, "label")
      assert.include(failure(CdmMapHeader.encode({ ...h, label: "tab\t" })).reason, "label")
      assert.include(failure(CdmMapHeader.encode({ ...h, signature: new Uint8Array(127) })).reason, "signature")
      assert.include(failure(CdmMapHeader.encode({ ...h, sha512: new Uint8Array(32) })).reason, "SHA-512")
      assert.include(failure(CdmMapHeader.encode({ ...h, slotstamp: 0x00ffffff })).reason, "non-zero slot")
      assert.include(failure(CdmMapHeader.encode({ ...h, mappedLength: 25601 })).reason, "more than 100")
      assert.include(failure(CdmMapHeader.encode({ ...h, minor: "10" })).reason, "minor")
      assert.include(
        failure(CdmMapHeader.encode({ ...h, checksums: [h.checksums[0]!, new Uint8Array(7)] })).reason,
        "8 bytes"
      )
    })
  })

  describe("properties", () => {
    it("decode(encode(h)) is h", () => {
      fc.assert(
        fc.property(header, (h) => {
          const encoded = ok(CdmMapHeader.encode(h))
          assert.strictEqual(encoded.length, 1024)
          assert.deepStrictEqual(plain(ok(CdmMapHeader.decode(encoded))), plain(h))
        }),
        { numRuns: 300 }
      )
    })

    it("mutated headers never throw; whatever decodes is canonical", () => {
      fc.assert(
        fc.property(mutated(header.map((h) => ok(CdmMapHeader.encode(h)))), (input) => {
          const result = noThrow(CdmMapHeader.decode, input)
          if (Result.isSuccess(result)) {
            assert.strictEqual(toHex(ok(CdmMapHeader.encode(result.success))), toHex(input.subarray(0, 1024)))
          }
        }),
        { numRuns: 500 }
      )
    })
  })
})
