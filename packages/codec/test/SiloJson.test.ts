import { assert, describe, it } from "@effect/vitest"
import { Result } from "effect"
import * as fc from "fast-check"
import * as fs from "node:fs"
import type { DecodeError } from "../src/DecodeError.ts"
import * as SiloJson from "../src/SiloJson.ts"
import * as SiloPacket from "../src/SiloPacket.ts"
import { fixtureUrl, fromHex, packet, type PacketVector, sharedUrl, toHex, vectors } from "./utils/SiloArbitraries.ts"

/**
 * The fields `toJson(decode(hex))` must give for a vector. They equal the vector's fields except where the wire
 * drops what the Go value held: 0x82/0x84 carry no error text (Go substitutes a fixed one), and a non-custom
 * event carries no custom fields.
 */
const decodedFields = (v: PacketVector): { readonly [key: string]: unknown } => {
  switch (v.packet) {
    case "ReadAtResponseErr":
      return { error: SiloPacket.REMOTE_READ_ERROR }
    case "WriteAtResponseErr":
      return { error: SiloPacket.REMOTE_WRITE_ERROR }
    case "Event": {
      if (v.fields["type"] === SiloPacket.EventType.Custom) return v.fields
      const { custom_payload_hex: _payload, custom_type: _type, ...rest } = v.fields
      return rest
    }
    default:
      return v.fields
  }
}

const failure = (result: Result.Result<unknown, DecodeError>): DecodeError => {
  assert.isTrue(Result.isFailure(result), "expected a DecodeError")
  return (result as Result.Failure<unknown, DecodeError>).failure
}

const decodeHex = (hex: string): SiloPacket.Packet => Result.getOrThrow(SiloPacket.decode(fromHex(hex)))

describe("SiloJson", () => {
  it.skipIf(!fs.existsSync(sharedUrl))("the fixture copy equals the shared vectors", () => {
    assert.strictEqual(fs.readFileSync(fixtureUrl, "utf8"), fs.readFileSync(sharedUrl, "utf8"))
  })

  describe("vectors", () => {
    for (const v of vectors.packets) {
      it(`${v.name}: decodes to its fields${v.canonical ? " and encodes byte-exact from them" : ""}`, () => {
        const json = SiloJson.toJson(decodeHex(v.hex))
        assert.strictEqual(json.packet, v.packet)
        assert.deepStrictEqual(json.fields, decodedFields(v))
        assert.strictEqual(v.hex.length / 2, v.length)

        // The whole vector entry is accepted: keys beside `packet` and `fields` are ignored.
        const fromFields = Result.getOrThrow(SiloJson.fromJson(v))
        const encoded = SiloPacket.encode(fromFields)
        if (v.canonical) assert.strictEqual(toHex(encoded), v.hex)
        else assert.deepStrictEqual(decodeHex(toHex(encoded)), decodeHex(v.hex))
      })
    }
  })

  it("round-trips any packet through JSON text", () => {
    fc.assert(
      fc.property(packet, (p) => {
        const text = JSON.stringify(SiloJson.toJson(p))
        assert.deepStrictEqual(Result.getOrThrow(SiloJson.fromJson(JSON.parse(text))), p)
      }),
      { numRuns: 2000 }
    )
  })

  describe("64-bit ids", () => {
    it("shows ids as numbers when safe and as decimal strings otherwise", () => {
      const json = SiloJson.toJson({
        _tag: "WriteAtWithMap",
        offset: 0,
        idMap: new Map([[(1n << 64n) - 1n, 1n << 60n], [3n, 9n]]),
        data: new Uint8Array(0)
      })
      assert.deepStrictEqual(json.fields["id_map"], { "3": 9, "18446744073709551615": "1152921504606846976" })
      assert.deepStrictEqual(SiloJson.toJson({ _tag: "RemoveFromMap", ids: [7n, 1n << 53n] }).fields, {
        ids: [7, "9007199254740992"]
      })
    })

    it("accepts both numbers and strings", () => {
      const p = Result.getOrThrow(
        SiloJson.fromJson({ packet: "RemoveFromMap", fields: { ids: [1, "18446744073709551615", "7"] } })
      )
      assert.deepStrictEqual(p, { _tag: "RemoveFromMap", ids: [1n, (1n << 64n) - 1n, 7n] })
    })
  })

  describe("bad shapes", () => {
    const cases: ReadonlyArray<readonly [string, unknown, string, string]> = [
      ["not an object", "nope", "Packet", "expected { packet, fields }"],
      ["unknown name", { packet: "Bogus", fields: {} }, "Bogus", "unknown packet name"],
      ["missing field", { packet: "ReadAt", fields: { offset: 1 } }, "ReadAt", "length"],
      ["misspelt field", { packet: "ReadAt", fields: { offset: 1, length: 1, lenght: 2 } }, "ReadAt", "lenght"],
      ["unsafe i64", { packet: "ReadAt", fields: { offset: 2 ** 53, length: 1 } }, "ReadAt", "offset"],
      ["i32 overflow", { packet: "NeedAt", fields: { offset: 1, length: 2 ** 31 } }, "NeedAt", "length"],
      ["odd hex", { packet: "WriteAt", fields: { offset: 0, data_hex: "abc" } }, "WriteAt", "data_hex"],
      ["non-hex", { packet: "WriteAt", fields: { offset: 0, data_hex: "zz" } }, "WriteAt", "data_hex"],
      [
        "wrong write_type",
        { packet: "WriteAt", fields: { offset: 0, data_hex: "", write_type: 2 } },
        "WriteAt",
        "write_type"
      ],
      ["short sha256", { packet: "ReadByHash", fields: { hash_hex: "00".repeat(31) } }, "ReadByHash", "hash_hex"],
      ["leading-zero key", { packet: "Hashes", fields: { hashes: { "01": "00".repeat(32) } } }, "Hashes", "01"],
      [
        "u32 key overflow",
        { packet: "Hashes", fields: { hashes: { "4294967296": "00".repeat(32) } } },
        "Hashes",
        "4294967296"
      ],
      [
        "u64 key overflow",
        { packet: "WriteAtWithMap", fields: { offset: 0, data_hex: "", id_map: { "18446744073709551616": 1 } } },
        "WriteAtWithMap",
        "18446744073709551616"
      ],
      [
        "u64 value overflow",
        { packet: "WriteAtWithMap", fields: { offset: 0, data_hex: "", id_map: { "1": "18446744073709551616" } } },
        "WriteAtWithMap",
        "id_map"
      ],
      ["unsafe id number", { packet: "RemoveFromMap", fields: { ids: [2 ** 53] } }, "RemoveFromMap", "ids"],
      ["negative id", { packet: "RemoveFromMap", fields: { ids: [-1] } }, "RemoveFromMap", "ids"],
      [
        "name over 65535 bytes",
        { packet: "DevInfo", fields: { size: 1, block_size: 1, name: "x".repeat(65536), schema: "" } },
        "DevInfo",
        "65535"
      ],
      ["event name mismatch", { packet: "Event", fields: { type: 4, type_name: "PreLock" } }, "Event", "Completed"],
      [
        "error on an ok response",
        { packet: "ReadAtResponse", fields: { bytes: 1, data_hex: "", error: "x" } },
        "ReadAtResponse",
        "error"
      ],
      ["missing error text", { packet: "ReadByHashResponseErr", fields: {} }, "ReadByHashResponseErr", "error"]
    ]
    for (const [title, value, packetName, mention] of cases) {
      it(`rejects ${title}`, () => {
        const e = failure(SiloJson.fromJson(value))
        assert.strictEqual(e.protocol, "silo")
        assert.strictEqual(e.packet, packetName)
        assert.strictEqual(e.offset, 0)
        assert.include(e.reason, mention)
        assert.notInclude(e.reason, "\n")
      })
    }

    it("accepts packets without fields when none are needed", () => {
      assert.deepStrictEqual(Result.getOrThrow(SiloJson.fromJson({ packet: "RemoveDev" })), { _tag: "RemoveDev" })
    })

    it("accepts an event by type without its name", () => {
      assert.deepStrictEqual(Result.getOrThrow(SiloJson.fromJson({ packet: "Event", fields: { type: 2 } })), {
        _tag: "Event",
        type: 2
      })
    })
  })

  describe("frames", () => {
    for (const conversation of vectors.conversations) {
      it(`${conversation.name}: frames to JSON and back`, () => {
        for (const frame of conversation.frames) {
          const json = Result.getOrThrow(
            SiloJson.frameToJson({ dev: frame.dev, id: frame.id, payload: fromHex(frame.payload_hex) })
          )
          assert.strictEqual(json.dev, frame.dev)
          assert.strictEqual(json.id, frame.id)
          assert.strictEqual(json.packet, frame.packet)
          // Conversation frames summarise WriteAt data as "N x 0xHH"; every other field is literal.
          for (const [key, value] of Object.entries(frame.fields)) {
            if (key === "data") {
              const [count, byte] = (value as string).split(" x ")
              assert.strictEqual(json.fields["data_hex"], byte!.slice(2).repeat(Number(count)))
            } else if (key === "length" && frame.packet === "WriteAt") {
              assert.strictEqual((json.fields["data_hex"] as string).length / 2, value)
            } else {
              assert.deepStrictEqual(json.fields[key], value, `${frame.seq} ${key}`)
            }
          }
          assert.strictEqual(
            toHex(Result.getOrThrow(SiloJson.frameFromJson(JSON.parse(JSON.stringify(json))))),
            frame.frame_hex
          )
        }
      })
    }

    it("fails on a bad payload or bad ids", () => {
      assert.strictEqual(
        failure(SiloJson.frameToJson({ dev: 1, id: 1, payload: Uint8Array.of(0x42) })).protocol,
        "silo"
      )
      assert.strictEqual(failure(SiloJson.frameFromJson({ id: 1, packet: "RemoveDev" })).packet, "frame")
      assert.include(failure(SiloJson.frameFromJson({ dev: 2 ** 32, id: 1, packet: "RemoveDev" })).reason, "dev")
      assert.strictEqual(failure(SiloJson.frameFromJson({ dev: 1, id: 1, packet: "Nope" })).packet, "Nope")
    })
  })
})
