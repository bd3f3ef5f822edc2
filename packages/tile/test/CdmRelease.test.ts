import { assert, describe, it } from "@effect/vitest"
import { CdmMapHeader, CdmSlotstamp } from "@tessera/codec"
import { Result } from "effect"
import * as CdmKeys from "../src/CdmKeys.ts"
import * as CdmRelease from "../src/CdmRelease.ts"
import * as Mfz from "../src/Mfz.ts"
import { keyOf, payload, release } from "./utils/release.ts"

const T0 = 1_700_000_000
const rsa = keyOf("t2-keymaster-release-10")
const ed = keyOf("t2-modern-keymaster", "ed25519")
const ring = CdmKeys.keyring([[0, rsa], [7, ed]])

const reason = <A>(r: Result.Result<A, { reason: { _tag: string } }>): string =>
  Result.isFailure(r) ? r.failure.reason._tag : "ok"

describe("CdmKeys", () => {
  it("key files are [MFM-Handle:h] + PKCS#1 PEM for RSA-1024, and round-trip", () => {
    assert.match(rsa.publicText, /^\[MFM-Handle:t2-keymaster-release-10\]\n-----BEGIN RSA PUBLIC KEY-----\n/)
    const priv = CdmKeys.privateText(rsa)!
    assert.match(priv, /^\[MFM-Handle:t2-keymaster-release-10\]\n-----BEGIN RSA PRIVATE KEY-----\n/)
    const back = Result.getOrThrow(CdmKeys.parse(priv))
    assert.strictEqual(back.publicText, rsa.publicText)
    const sig = CdmKeys.sign(back, new Uint8Array([1, 2, 3]))!
    assert.strictEqual(sig.length, 128)
    assert.isTrue(CdmKeys.verify(rsa, new Uint8Array([1, 2, 3]), sig))
    assert.isFalse(CdmKeys.verify(rsa, new Uint8Array([1, 2, 4]), sig))
    assert.match(ed.publicText, /-----BEGIN PUBLIC KEY-----/)
    assert.strictEqual(CdmKeys.escapeHandle("t2-keymaster-release-10"), "t2%2dkeymaster%2drelease%2d10")
    assert.match(CdmKeys.fingerprint(rsa.publicText), /^[0-9a-f]{4}-[0-9a-f]{3}-[0-9a-f]{4}$/)
  })

  it("refuses bad key files and handles", () => {
    assert.strictEqual(reason(CdmKeys.parse("no header\n")), "InvalidKey")
    assert.strictEqual(reason(CdmKeys.parse("[MFM-Handle:9bad]\nxx")), "InvalidKey")
    assert.strictEqual(
      reason(CdmKeys.parse("[MFM-Handle:ok]\n-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")),
      "InvalidKey"
    )
    assert.strictEqual(reason(CdmKeys.generate("-x")), "InvalidKey")
  })
})

describe("CdmKeys.fromSeed", () => {
  it("the same seed is the same Ed25519 key and the same signatures; a seed must be 32 bytes", () => {
    const seed = Uint8Array.from({ length: 32 }, (_, i) => i * 7)
    const a = Result.getOrThrow(CdmKeys.fromSeed("seeded", seed))
    const b = Result.getOrThrow(CdmKeys.fromSeed("seeded", seed))
    const other = Result.getOrThrow(CdmKeys.fromSeed("seeded", seed.map((x) => x ^ 1)))
    assert.strictEqual(a.type, "ed25519")
    assert.strictEqual(a.publicText, b.publicText)
    assert.notStrictEqual(a.publicText, other.publicText)
    const data = new TextEncoder().encode("release bytes")
    const signature = CdmKeys.sign(a, data)!
    assert.deepStrictEqual(CdmKeys.sign(b, data), signature)
    assert.isTrue(CdmKeys.verify(CdmKeys.toPublic(b), data, signature))
    assert.isFalse(CdmKeys.verify(other, data, signature))
    assert.isTrue(Result.isFailure(CdmKeys.fromSeed("seeded", seed.subarray(1))))
    assert.isTrue(Result.isFailure(CdmKeys.fromSeed("", seed)))
  })
})

describe("CdmRelease", () => {
  it("builds a cdmss file whose header, checksums and inner MFZ verify (RSA, CDM10)", () => {
    const r = release(rsa, { slot: 0xa1, time: T0, size: 70_000, label: "Physics-a1" })
    assert.strictEqual(r.fileName, CdmSlotstamp.fileName(r.slotstamp))
    assert.strictEqual(CdmSlotstamp.stamp(r.slotstamp), Math.floor(T0 / 300))
    assert.strictEqual(new TextDecoder().decode(r.bytes.subarray(0, 6)), "CDM10\n")
    const v = Result.getOrThrow(CdmRelease.verify(r.bytes, ring))
    assert.strictEqual(v.header.label, "Physics-a1")
    assert.strictEqual(v.header.bitsInBlock, CdmMapHeader.bitsInBlockFor(r.bytes.length - 1024))
    assert.strictEqual(v.mfz.handle, "t2-keymaster-release-10")
    assert.strictEqual(v.mfz.name, r.fileName)
    assert.strictEqual(v.mfz.innerTimestamp, T0)
    assert.deepStrictEqual(v.mfz.files.map((f) => f.path), ["home/t2/payload.bin"])
    assert.deepStrictEqual(v.mfz.files[0]!.bytes, payload(70_000, 1))
  })

  it("Ed25519 signs as minor version 1 (CDM11) and verifies", () => {
    const r = release(ed, { slot: 0xa2, time: T0, size: 5_000, regnum: 7 })
    assert.strictEqual(new TextDecoder().decode(r.bytes.subarray(0, 6)), "CDM11\n")
    assert.isTrue(Result.isSuccess(CdmRelease.verify(r.bytes, ring)))
    assert.isTrue(r.bytes.subarray(896 + 64, 1024).every((b) => b === 0))
    // The same header claimed under the RSA regnum does not pass as an RSA signature.
    const other = r.bytes.slice()
    other[7] = 0
    assert.strictEqual(reason(CdmRelease.verifyHeader(other, ring)), "BadSignature")
  })

  it("refuses tampering anywhere: header, a block, the end, an unknown signer", () => {
    const r = release(rsa, { slot: 0xa1, time: T0, size: 40_000 })
    const label = r.bytes.slice()
    label[17] ^= 1
    assert.strictEqual(reason(CdmRelease.verify(label, ring)), "BadSignature")
    const block = r.bytes.slice()
    block[1024 + 500] ^= 0x40
    assert.strictEqual(reason(CdmRelease.verify(block, ring)), "BadSignature")
    assert.strictEqual(reason(CdmRelease.verify(r.bytes.subarray(0, r.bytes.length - 1), ring)), "InvalidRelease")
    assert.strictEqual(reason(CdmRelease.verify(r.bytes, CdmKeys.keyring([[0, ed]]))), "BadSignature")
    assert.strictEqual(reason(CdmRelease.verify(r.bytes, CdmKeys.keyring([[3, rsa]]))), "Untrusted")
    assert.strictEqual(reason(CdmRelease.verify(new Uint8Array(10), ring)), "InvalidRelease")
  })

  it("the inner MFZ must be signed by a trusted handle", () => {
    const stranger = keyOf("someone-else")
    const mapped = Result.getOrThrow(Mfz.make({ key: stranger, name: "x.mfz", time: T0, files: [] }))
    assert.isTrue(Result.getOrThrow(Mfz.parse(mapped)).signatureOk)
    assert.strictEqual(reason(Mfz.verify(mapped, ring)), "Untrusted")
    const trusting = CdmKeys.keyring([[0, stranger]])
    assert.isTrue(Mfz.verify(mapped, trusting)._tag === "Success")
    // Flipping a byte of the signed inner archive breaks the ZIP or the signature.
    for (const at of [Math.floor(mapped.length / 2), Math.floor(mapped.length / 2) + 7]) {
      const broken = mapped.slice()
      broken[at] ^= 0xff
      assert.notStrictEqual(reason(Mfz.verify(broken, trusting)), "ok", `byte ${at}`)
    }
    assert.strictEqual(reason(Mfz.parse(new TextEncoder().encode("MFZ(1.0)\nPK\x03\x04garbage"))), "InvalidRelease")
  })

  it("deletion maps are signed and read back", () => {
    const map = Result.getOrThrow(
      CdmRelease.makeDeletions({ key: rsa, regnum: 0, time: T0, deletions: [{ slot: 0xa3, through: 5 }] })
    )
    const s01 = Result.getOrThrow(CdmRelease.make({
      key: rsa,
      regnum: 0,
      slot: 1,
      label: "deletions",
      time: T0,
      files: [{ path: "cdm/cdmss-deleted.map", bytes: map, mtime: T0 }]
    }))
    const read = Result.getOrThrow(CdmRelease.readDeletions(s01.bytes, ring))
    assert.strictEqual(read.entries[0xa3]!.stamp, 5)
    const forged = map.slice()
    forged[48 + 4 * 0xa4] = 3
    const bad = Result.getOrThrow(CdmRelease.make({
      key: rsa,
      regnum: 0,
      slot: 1,
      label: "deletions",
      time: T0,
      files: [{ path: "cdm/cdmss-deleted.map", bytes: forged, mtime: T0 }]
    }))
    assert.strictEqual(reason(CdmRelease.readDeletions(bad.bytes, ring)), "BadSignature")
  })
})
