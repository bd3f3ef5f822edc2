import { assert, describe, it } from "@effect/vitest"
import { Result } from "effect"
import fc from "fast-check"
import * as FlashPacket from "../src/FlashPacket.ts"
import * as T2Direction from "../src/T2Direction.ts"
import { bytes, failure, flash, fromHex, mutated, noThrow, ok, refusedBy, toHex } from "./utils/T2Arbitraries.ts"

const refused = refusedBy(FlashPacket.decode)

const canonical = (input: Uint8Array) => {
  const result = noThrow(FlashPacket.decode, input)
  if (Result.isSuccess(result)) assert.strictEqual(toHex(ok(FlashPacket.encode(result.success))), toHex(input))
}

describe("FlashPacket", () => {
  describe("worked example (§5.4)", () => {
    const launched = FlashPacket.launch(T2Direction.ET, FlashPacket.commands["mfm:quit"], 5, 4, 0x12345678)

    it("the launch form has TTL 4, origin (0,0) and checksum 0x36", () => {
      assert.strictEqual(toHex(ok(FlashPacket.encode(launched))), "821305047856341204000036")
    })

    it("the form written toward ET has TTL 3, origin (-2,0) and checksum 0xD7", () => {
      const forwarded = FlashPacket.forward(launched, T2Direction.ET)!
      assert.deepStrictEqual(forwarded, { ...launched, ttl: 3, originX: -2, originY: 0 })
      assert.strictEqual(toHex(ok(FlashPacket.encode(forwarded))), "821305047856341203fe00d7")
      assert.deepStrictEqual(ok(FlashPacket.decode(fromHex("82 13 05 04 78 56 34 12 03 FE 00 D7"))), forwarded)
      assert.strictEqual(FlashPacket.checksum(fromHex("82 13 05 04 78 56 34 12 03 FE 00 00")), 0xd7)
    })

    it("names the command", () => {
      assert.strictEqual(FlashPacket.commandName(0x13), "mfm:quit")
      assert.isUndefined(FlashPacket.commandName(0x7f))
    })
  })

  describe("commands", () => {
    it("are category·16 + number", () => {
      const categories = { t2t: 0, mfm: 1, phy: 2, dsp: 3 } as const
      for (const [name, command] of Object.entries(FlashPacket.commands)) {
        const category = name.split(":")[0] as keyof typeof categories
        assert.strictEqual(command >> 4, categories[category], name)
        assert.strictEqual(FlashPacket.commandName(command), name)
      }
      assert.strictEqual(FlashPacket.commands["t2t:boot"], 0x00)
      assert.strictEqual(FlashPacket.commands["dsp:draw"], 0x36)
      assert.strictEqual(Object.keys(FlashPacket.commands).length, 21)
    })
  })

  describe("forwarding", () => {
    it("stops when the TTL is spent or the origin would leave ±120", () => {
      const base = FlashPacket.launch(T2Direction.ET, 0x10, 1, 200, 0)
      assert.isUndefined(FlashPacket.forward({ ...base, ttl: 0 }, T2Direction.ET))
      assert.isUndefined(FlashPacket.forward({ ...base, originX: -119 }, T2Direction.ET))
      assert.strictEqual(FlashPacket.forward({ ...base, originX: -118 }, T2Direction.ET)!.originX, -120)
      assert.isUndefined(FlashPacket.forward({ ...base, originY: 120 }, T2Direction.SE))
      assert.deepStrictEqual(
        FlashPacket.forward({ ...base, originX: 5, originY: -3 }, T2Direction.NW),
        { ...base, dir: T2Direction.NW, ttl: 199, originX: 6, originY: -4 }
      )
    })

    it("moves the origin by the opposite of the hop, so a round trip returns it", () => {
      fc.assert(fc.property(flash, fc.constantFrom(...T2Direction.links), (packet, d) => {
        const there = FlashPacket.forward({ ...packet, ttl: 2, originX: 0, originY: 0 }, d)!
        const back = FlashPacket.forward(there, T2Direction.opposite(d))!
        assert.deepStrictEqual([back.originX, back.originY, back.ttl], [0, 0, 0])
      }))
    })
  })

  describe("validation", () => {
    it("refuses wrong lengths, headers, bulk bit and checksum", () => {
      refused("82 13 05 04 78 56 34 12 03 FE 00", 11, "expected 12")
      refused("82 13 05 04 78 56 34 12 03 FE 00 D7 00", 12, "expected 12")
      refused("92 13 05 04 78 56 34 12 03 FE 00 D7", 0, "0x80..0x87")
      refused("82 93 05 04 78 56 34 12 03 FE 00 D7", 1, "bulk bit")
      refused("82 13 05 04 78 56 34 12 03 FE 00 D8", 11, "checksum")
      refused("82 13 05 04 78 56 34 12 02 FE 00 D7", 11, "checksum")
    })

    it("refuses fields that do not fit", () => {
      const p = FlashPacket.launch(T2Direction.ET, 0x13, 5, 4, 0x12345678)
      assert.include(failure(FlashPacket.encode({ ...p, command: 0x80 })).reason, "0..127")
      assert.include(failure(FlashPacket.encode({ ...p, originX: 128 })).reason, "origin x")
      assert.include(failure(FlashPacket.encode({ ...p, originY: -129 })).reason, "origin y")
      assert.include(failure(FlashPacket.encode({ ...p, argument: 2 ** 32 })).reason, "argument")
      assert.include(failure(FlashPacket.encode({ ...p, ttl: 256 })).reason, "ttl")
    })
  })

  describe("properties", () => {
    it("decode(encode(p)) is p", () => {
      fc.assert(
        fc.property(flash, (packet) => {
          const encoded = ok(FlashPacket.encode(packet))
          assert.strictEqual(encoded.length, 12)
          assert.deepStrictEqual(ok(FlashPacket.decode(encoded)), packet)
        }),
        { numRuns: 1000 }
      )
    })

    it("random and mutated bytes never throw; whatever decodes is canonical", () => {
      fc.assert(fc.property(bytes(20), canonical), { numRuns: 2000 })
      fc.assert(fc.property(mutated(flash.map((p) => ok(FlashPacket.encode(p)))), canonical), { numRuns: 2000 })
    })
  })
})
