import { assert, describe, it } from "@effect/vitest"
import { Result } from "effect"
import fc from "fast-check"
import * as T2Json from "../src/T2Json.ts"
import * as T2Packet from "../src/T2Packet.ts"
import { bytes, failure, fromHex, mutated, noThrow, ok, t2Packet, toHex } from "./utils/T2Arbitraries.ts"

/** Goes through JSON text, as the CLI does, so nothing non-JSON (undefined, typed arrays) can hide. */
const viaText = (value: unknown): unknown => JSON.parse(JSON.stringify(value))

// One example per kind: the bytes and the JSON view `toJson` gives for them.
const EXAMPLES: ReadonlyArray<readonly [string, T2Json.T2Json]> = [
  ["50 45 31", { packet: "non_standard", fields: { command: "P", body_hex: "4531" } }],
  ["c1 30 20 78", { packet: "local_text", fields: { local_type: 1, text: "0 x" } }],
  ["e2 ff", { packet: "local_text", fields: { local_type: 2, text: "\u00ff", reserved: true } }],
  ["c3 50 30 31 30 3a", { packet: "control", fields: { code: "P", pru: 0, prudir: 1, value: 0 } }],
  ["c3 54 31 30 46 3a 3030303031323346", {
    packet: "control",
    fields: { code: "T", pru: 1, prudir: 0, value: 0x123f }
  }],
  ["c4 01 02", { packet: "tile_event", fields: { event: "connect", dir: "ET" } }],
  ["c4 02 06 46 aa", {
    packet: "tile_event",
    fields: { event: "disconnect", dir: "WT", cause: "frame_error", trailing_hex: "aa" }
  }],
  ["c5 0102", { packet: "local_other", fields: { local_type: 5, body_hex: "0102" } }],
  ["a2 02", { packet: "kitc", fields: { dir: "ET", state: "lead" } }],
  ["a2 06 11 30332d6162 00", { packet: "kitc", fields: { dir: "ET", state: "config", token: 0x11, mfzid: "03-ab" } }],
  ["a6 09 11", { packet: "kitc", fields: { dir: "WT", state: "compatible", token: 0x11 } }],
  ["a1 43 fb 82 82", { packet: "mfm", fields: { dir: "NE", kind: "ring", number: 3, body_hex: "fb8282" } }],
  ["92 83 46 05", {
    packet: "returned",
    fields: { dir: "ET", mfm: false, overrun: true, error: false, body_hex: "834605" }
  }],
  ["82 85 0102", { packet: "bulk", fields: { dir: "ET", code: 5, body_hex: "0102" } }],
  ["82 b2 b1 b8 b6 00 44 0102", {
    packet: "source_routed",
    fields: { dir: "ET", to: ["ET", "NE"], from: ["WT"], command: "D", body_hex: "0102" }
  }],
  ["82 13 05 04 78 56 34 12 03 FE 00 D7", {
    packet: "flash",
    fields: {
      dir: "ET",
      command: "mfm:quit",
      index: 5,
      range: 4,
      argument: 0x12345678,
      ttl: 3,
      origin_x: -2,
      origin_y: 0
    }
  }],
  ["82 7f 00 00 00000000 00 00 00 fe", {
    packet: "flash",
    fields: { dir: "ET", command: 0x7f, index: 0, range: 0, argument: 0, ttl: 0, origin_x: 0, origin_y: 0 }
  }],
  ["83 83 41 01 02", { packet: "cdm_a", fields: { dir: "SE", tag: 1, version: 2 } }],
  ["83 83 41 01", { packet: "cdm_a", fields: { dir: "SE", tag: 1 } }],
  ["82 83 46 05 52 07 CA 00 00 14 00 05 52 13 CA", {
    packet: "cdm_f",
    fields: { dir: "ET", slotstamp: 0x055207ca, available: 5120 }
  }],
  ["82 83 43 05 52 07 CA 00 00 04 00", {
    packet: "cdm_c",
    fields: { dir: "ET", slotstamp: 0x055207ca, position: 1024 }
  }],
  ["87 83 44 05 52 07 ca 00 00 04 00 03 414243 f6f6 00", {
    packet: "cdm_d",
    fields: { dir: "NW", slotstamp: 0x055207ca, position: 1024, data_hex: "414243", trailing_hex: "00" }
  }],
  ["82 83 50 01", { packet: "cdm_other", fields: { dir: "ET", command: "P", body_hex: "01" } }]
]

const badShape = (value: unknown, reason: string, packet = "json") => {
  const error = failure(T2Json.fromJson(value))
  assert.strictEqual(error.protocol, "t2")
  assert.strictEqual(error.offset, 0)
  assert.strictEqual(error.packet, packet)
  assert.include(error.reason, reason)
  assert.notInclude(error.reason, "\n")
}

const roundTrip = (input: Uint8Array) => {
  const json = noThrow(T2Json.toJson, input)
  if (Result.isSuccess(json)) assert.strictEqual(toHex(ok(T2Json.fromJson(viaText(json.success)))), toHex(input))
}

describe("T2Json", () => {
  describe("examples", () => {
    for (const [hex, json] of EXAMPLES) {
      it(`${json.packet}: ${hex}`, () => {
        assert.deepStrictEqual(viaText(ok(T2Json.toJson(fromHex(hex)))), json)
        assert.strictEqual(toHex(ok(T2Json.fromJson(viaText(json)))), toHex(fromHex(hex)))
      })
    }

    it("covers every packet kind", () => {
      assert.deepStrictEqual(new Set(EXAMPLES.map(([, j]) => j.packet)), new Set(T2Json.packetNames))
    })

    it("lets crafted packets omit defaults and spell commands by number", () => {
      assert.strictEqual(
        toHex(
          ok(
            T2Json.fromJson({
              packet: "flash",
              fields: {
                dir: "ET",
                command: 0x13,
                index: 5,
                range: 4,
                argument: 0x12345678,
                ttl: 3,
                origin_x: -2,
                origin_y: 0
              }
            })
          )
        ),
        "821305047856341203fe00d7"
      )
      assert.strictEqual(
        toHex(
          ok(
            T2Json.fromJson({
              packet: "tile_event",
              fields: { event: "connect", dir: "NE", reserved: false, trailing_hex: "" }
            })
          )
        ),
        "c40101"
      )
    })

    it("names packets by kind", () => {
      assert.strictEqual(T2Json.packetName(T2Packet.connect(2)), "tile_event")
    })
  })

  describe("failures", () => {
    it("passes decode failures through", () => {
      const error = failure(T2Json.toJson(fromHex("82 83 46 05 52 07 CA 00 00 14 00 05 52 13 CB")))
      assert.strictEqual(error.packet, "cdm_f")
      assert.strictEqual(error.offset, 11)
    })

    it("refuses values of the wrong shape at offset 0 with a one-line reason", () => {
      badShape(42, "Expected")
      badShape(null, "Expected")
      badShape({ packet: "cdm_z", fields: {} }, "packet")
      badShape({ packet: "cdm_f", fields: {}, extra: 1 }, "excess")
      badShape({ packet: "cdm_f" }, "fields")
      badShape({ packet: "cdm_f", fields: { dir: "ET", slotstamp: 1 } }, "available", "cdm_f")
      badShape({ packet: "cdm_f", fields: { dir: "XX", slotstamp: 1, available: 2 } }, "dir", "cdm_f")
      badShape({ packet: "cdm_f", fields: { dir: "ET", slotstamp: 1.5, available: 2 } }, "integer", "cdm_f")
      badShape({ packet: "cdm_f", fields: { dir: "ET", slotstamp: 2 ** 32, available: 2 } }, "between", "cdm_f")
      badShape({ packet: "cdm_f", fields: { dir: "ET", slotstamp: 1, available: 2, avail: 2 } }, "avail", "cdm_f")
      badShape({ packet: "bulk", fields: { dir: "ET", code: 5, body_hex: "abc" } }, "hexadecimal", "bulk")
      badShape({ packet: "bulk", fields: { dir: "ET", code: 5, body_hex: "00".repeat(256) } }, "at most 510", "bulk")
      badShape({ packet: "local_text", fields: { local_type: 1, text: "\u0100" } }, "U+00ff", "local_text")
      badShape({ packet: "non_standard", fields: { command: "\u0080", body_hex: "" } }, "U+007f", "non_standard")
      badShape({ packet: "non_standard", fields: { command: "PQ", body_hex: "" } }, "length", "non_standard")
      badShape(
        {
          packet: "flash",
          fields: { dir: "ET", command: "mfm:jump", index: 0, range: 0, argument: 0, ttl: 0, origin_x: 0, origin_y: 0 }
        },
        "command",
        "flash"
      )
      badShape(
        { packet: "tile_event", fields: { event: "connect", dir: "ET", cause: "timeout" } },
        "Expected",
        "tile_event"
      )
      badShape({ packet: "kitc", fields: { dir: "ET", state: "running" } }, "state", "kitc")
    })

    it("reports fields the packet cannot hold at their byte offset", () => {
      const tooMuch = failure(T2Json.fromJson({
        packet: "cdm_d",
        fields: { dir: "ET", slotstamp: 1 << 24, position: 0, data_hex: "00".repeat(181) }
      }))
      assert.strictEqual(tooMuch.offset, 11)
      assert.include(tooMuch.reason, "exceeds 180")
      const zero = failure(T2Json.fromJson({ packet: "cdm_c", fields: { dir: "ET", slotstamp: 0, position: 0 } }))
      assert.strictEqual(zero.offset, 3)
      const lead = failure(T2Json.fromJson({ packet: "kitc", fields: { dir: "ET", state: "lead", token: 1 } }))
      assert.include(lead.reason, "carries no token")
    })
  })

  describe("properties", () => {
    it("fromJson(toJson(bytes)) is bytes for every packet kind", () => {
      fc.assert(
        fc.property(t2Packet, (packet) => {
          const encoded = ok(T2Packet.encode(packet))
          const json = viaText(ok(T2Json.toJson(encoded)))
          assert.strictEqual(toHex(ok(T2Json.fromJson(json))), toHex(encoded))
        }),
        { numRuns: 2000 }
      )
    })

    it("random and mutated bytes never throw; whatever has a JSON view round-trips", () => {
      fc.assert(fc.property(bytes(300), roundTrip), { numRuns: 3000 })
      fc.assert(fc.property(mutated(t2Packet.map((p) => ok(T2Packet.encode(p)))), roundTrip), { numRuns: 3000 })
    })

    it("arbitrary JSON never throws", () => {
      fc.assert(fc.property(fc.jsonValue(), (value) => {
        const result = T2Json.fromJson(value)
        assert.isTrue(Result.isFailure(result))
      }))
      fc.assert(fc.property(fc.constantFrom(...T2Json.packetNames), fc.jsonValue(), (packet, fields) => {
        try {
          T2Json.fromJson({ packet, fields })
        } catch (error) {
          assert.fail(`fromJson threw ${String(error)}`)
        }
      }))
    })
  })
})
