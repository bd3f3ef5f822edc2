import { assert, describe, it } from "@effect/vitest"
import fc from "fast-check"
import * as CdmSlotstamp from "../src/CdmSlotstamp.ts"
import { failure, ok, slotstamp } from "./utils/T2Arbitraries.ts"

describe("CdmSlotstamp", () => {
  it("packs slot and stamp (§3.2)", () => {
    const ss = CdmSlotstamp.make(0x05, 0x5207ca)
    assert.strictEqual(ss, 0x055207ca)
    assert.strictEqual(CdmSlotstamp.slot(ss), 5)
    assert.strictEqual(CdmSlotstamp.stamp(ss), 0x5207ca)
    assert.strictEqual(CdmSlotstamp.make(0xff, 0xffffff), 0xffffffff)
  })

  it("stamps are 5-minute units of the creation time", () => {
    assert.strictEqual(CdmSlotstamp.stampOf(0), 0)
    assert.strictEqual(CdmSlotstamp.stampOf(299), 0)
    assert.strictEqual(CdmSlotstamp.stampOf(300), 1)
    assert.strictEqual(CdmSlotstamp.stampOf(0x5207ca * 300 + 17), 0x5207ca)
    // Rounding down to even seconds first never changes the result.
    fc.assert(
      fc.property(fc.nat(), (t) => assert.strictEqual(CdmSlotstamp.stampOf(t - (t % 2)), CdmSlotstamp.stampOf(t)))
    )
  })

  it("names files cdmss-SS-TTTTTT.mfz and parses them back", () => {
    assert.strictEqual(CdmSlotstamp.fileName(0x055207ca), "cdmss-05-5207ca.mfz")
    assert.strictEqual(CdmSlotstamp.fileName(0xa0000001), "cdmss-a0-000001.mfz")
    assert.strictEqual(ok(CdmSlotstamp.parseFileName("cdmss-05-5207ca.mfz")), 0x055207ca)
    fc.assert(
      fc.property(slotstamp, (ss) => assert.strictEqual(ok(CdmSlotstamp.parseFileName(CdmSlotstamp.fileName(ss))), ss))
    )
    assert.include(failure(CdmSlotstamp.parseFileName("cdmss-00-5207ca.mfz")).reason, "slot 00")
    assert.include(failure(CdmSlotstamp.parseFileName("cdmss-05-5207CA.mfz")).reason, "not of the form")
    assert.include(failure(CdmSlotstamp.parseFileName("cdmss-05-5207ca.mfz.bak")).reason, "not of the form")
  })

  it("newer stamps dominate only within a slot", () => {
    assert.isTrue(CdmSlotstamp.dominates(0x05000002, 0x05000001))
    assert.isFalse(CdmSlotstamp.dominates(0x05000001, 0x05000001))
    assert.isFalse(CdmSlotstamp.dominates(0x06000002, 0x05000001))
    assert.isTrue(CdmSlotstamp.isValid(0x01000000))
    assert.isFalse(CdmSlotstamp.isValid(0x00ffffff))
    assert.isFalse(CdmSlotstamp.isValid(2 ** 32))
  })
})
