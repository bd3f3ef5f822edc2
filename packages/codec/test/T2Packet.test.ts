import { assert, describe, it } from "@effect/vitest"
import { Result } from "effect"
import fc from "fast-check"
import * as T2Direction from "../src/T2Direction.ts"
import * as T2Packet from "../src/T2Packet.ts"
import {
  bytes,
  failure,
  fromHex,
  kitc,
  mutated,
  noThrow,
  ok,
  plain,
  refusedBy,
  t2Packet,
  toHex,
  viewsOf
} from "./utils/T2Arbitraries.ts"

const decodeHex = (hex: string) => ok(T2Packet.decode(fromHex(hex)))
const encodeHex = (packet: T2Packet.T2Packet) => toHex(ok(T2Packet.encode(packet)))
const ascii = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0))

/** Decodes, checks the value, and checks it encodes back to the same bytes. */
const fixture = (hex: string, expected: T2Packet.T2Packet) => {
  const packet = decodeHex(hex)
  assert.deepStrictEqual(plain(packet), plain(expected))
  assert.strictEqual(encodeHex(packet), hex.replace(/\s+/g, "").toLowerCase())
}

const refused = refusedBy(T2Packet.decode)

const canonical = (input: Uint8Array) => {
  const result = noThrow(T2Packet.decode, input)
  if (input.length === 0 || input.length > 255) assert.isTrue(Result.isFailure(result))
  if (Result.isSuccess(result)) {
    // Whatever decodes re-encodes to the same bytes, and payloads are views of the input (no copies).
    assert.strictEqual(toHex(ok(T2Packet.encode(result.success))), toHex(input))
    for (const view of viewsOf(result.success)) assert.strictEqual(view.buffer, input.buffer)
  } else {
    assert.isAtLeast(result.failure.offset, 0)
    assert.isAtMost(result.failure.offset, Math.min(input.length, 255))
  }
}

describe("T2Packet", () => {
  describe("byte 0 classification (§1.2)", () => {
    it("splits non-standard, local standard and routed", () => {
      for (let b = 0; b < 256; b++) {
        const expected = b < 0x80 ? "non_standard" : b >= 0xc0 ? "local" : "routed"
        assert.strictEqual(T2Packet.classifyByte0(b), expected, `0x${b.toString(16)}`)
      }
    })

    it("reads and rebuilds every routed header byte", () => {
      assert.deepStrictEqual(T2Packet.routedHeader(0xb5), { dir: 5, mfm: true, overrun: true, error: false })
      assert.deepStrictEqual(T2Packet.routedHeader(0x8a), { dir: 2, mfm: false, overrun: false, error: true })
      for (let b = 0x80; b < 0xc0; b++) assert.strictEqual(T2Packet.routedByte0(T2Packet.routedHeader(b)), b)
    })

    it("uses the masks of the LKM", () => {
      assert.deepStrictEqual(
        [
          T2Packet.STANDARD,
          T2Packet.LOCAL,
          T2Packet.MFM,
          T2Packet.OVERRUN,
          T2Packet.ERROR,
          T2Packet.DIR,
          T2Packet.LOCAL_TYPE
        ],
        [0x80, 0x40, 0x20, 0x10, 0x08, 0x07, 0x1f]
      )
    })
  })

  describe("byte 1 classification (§1.4)", () => {
    it("selects flash, CDM, source routes and other bulk", () => {
      for (let b = 0; b < 0x80; b++) assert.strictEqual(T2Packet.serviceClass(b), "flash")
      assert.strictEqual(T2Packet.serviceClass(0x83), "cdm")
      for (let b = 0xb0; b <= 0xb8; b++) assert.strictEqual(T2Packet.serviceClass(b), "source_routed")
      for (const b of [0x80, 0x82, 0x84, 0xaf, 0xb9, 0xff]) assert.strictEqual(T2Packet.serviceClass(b), "bulk")
    })

    it("names the XITC kinds and KITC states", () => {
      assert.deepStrictEqual(T2Packet.xitcNames, [
        "kitc",
        "itc_command",
        "ring",
        "answer",
        "busy",
        "drop",
        "talk",
        "hang_up"
      ])
      assert.strictEqual(T2Packet.kitcStateNames[9], "compatible")
      assert.strictEqual(T2Packet.kitcStateNames.length, 11)
    })

    it("dispatches service packets to the flash and CDM codecs", () => {
      assert.strictEqual(decodeHex("82 13 05 04 78 56 34 12 03 FE 00 D7")._tag, "Flash")
      assert.strictEqual(decodeHex("82 83 46 05 52 07 CA 00 00 14 00 05 52 13 CA")._tag, "CdmF")
      assert.strictEqual(decodeHex("82 83 50 01")._tag, "CdmOther")
    })
  })

  describe("non-standard and local packets (§1.5)", () => {
    it("keeps an LKM↔PRU command whole", () => {
      fixture("50 45 31", { _tag: "NonStandard", command: 0x50, body: ascii("E1") })
      fixture("2a", { _tag: "NonStandard", command: 0x2a, body: new Uint8Array(0) })
    })

    it("decodes free-text diagnostics (types 1 and 2)", () => {
      fixture("c1 303030303030324120636f756e74", {
        _tag: "LocalText",
        localType: 1,
        reserved: false,
        text: ascii("0000002A count")
      })
      fixture("e2 6869", { _tag: "LocalText", localType: 2, reserved: true, text: ascii("hi") })
    })

    it("keeps illegal and reserved local types whole", () => {
      fixture("c0", { _tag: "LocalOther", localType: 0, reserved: false, body: new Uint8Array(0) })
      fixture("df", { _tag: "LocalOther", localType: 31, reserved: false, body: new Uint8Array(0) })
      fixture("ff 0102", { _tag: "LocalOther", localType: 31, reserved: true, body: Uint8Array.of(1, 2) })
    })

    it("decodes control reports P, F, T and M (0xC3)", () => {
      // 'P' from PRU 0 prudir 1: packet sync acquired on SE.
      const p = decodeHex("c3 50 30 31 30 3a")
      fixture("c3 50 30 31 30 3a", { _tag: "Control", reserved: false, code: "P", pru: 0, prudir: 1, value: 0 })
      assert.strictEqual(T2Packet.controlDirection(p as T2Packet.Control), T2Direction.SE)
      fixture("c3 46 31 32 37 3a", { _tag: "Control", reserved: false, code: "F", pru: 1, prudir: 2, value: 7 })
      // A value above 15 also comes as 8 hex digits after the colon.
      fixture("c3 54 31 30 46 3a 3030303031323346", {
        _tag: "Control",
        reserved: false,
        code: "T",
        pru: 1,
        prudir: 0,
        value: 0x123f
      })
      // 'M' from PRU 1's Linux thread: prudirs 0 and 2 are not clocking.
      const m = decodeHex("c3 4d 31 33 35 3a")
      fixture("c3 4d 31 33 35 3a", { _tag: "Control", reserved: false, code: "M", pru: 1, prudir: 3, value: 5 })
      assert.isUndefined(T2Packet.controlDirection(m as T2Packet.Control))
      fixture("e3 50 30 30 30 3a", { _tag: "Control", reserved: true, code: "P", pru: 0, prudir: 0, value: 0 })
    })

    it("maps each PRU link report to its direction", () => {
      const seen = new Set<number>()
      for (const pru of [0, 1] as const) {
        for (const prudir of [0, 1, 2] as const) {
          const control: T2Packet.Control = { _tag: "Control", reserved: false, code: "P", pru, prudir, value: 0 }
          const dir = T2Packet.controlDirection(control)!
          assert.deepStrictEqual(T2Direction.pruLink(dir), { pru, prudir })
          seen.add(dir)
        }
      }
      assert.deepStrictEqual(seen, new Set([1, 2, 3, 5, 6, 7]))
    })

    it("refuses malformed control reports", () => {
      refused("c3 50 30 31 30", 5, "needs 6 bytes")
      refused("c3 58 30 31 30 3a", 1, "not P, F, T or M")
      refused("c3 50 32 31 30 3a", 2, "PRU number")
      refused("c3 50 30 33 30 3a", 3, "prudir")
      refused("c3 50 30 31 66 3a", 4, "0-9 or A-F")
      refused("c3 50 30 31 30 2e", 5, "':'")
      refused("c3 50 30 31 30 3a 30 30", 6, "expected 6, or 14")
      refused("c3 50 30 31 35 3a 3030303030303035", 6, "above 15")
      refused("c3 50 30 31 35 3a 3030303030303136", 4, "disagrees")
      refused("c3 50 30 31 36 3a 30303030303031 67", 13, "full value digit")
    })
  })

  describe("Tile Event Packets (0xC4, our layout)", () => {
    it("decodes connect and disconnect", () => {
      fixture("c4 01 02", { _tag: "TileEvent", event: "connect", reserved: false, dir: 2, trailing: new Uint8Array(0) })
      fixture("c4 02 06 46", {
        _tag: "TileEvent",
        event: "disconnect",
        reserved: false,
        dir: 6,
        cause: "frame_error",
        trailing: new Uint8Array(0)
      })
      fixture("c4 02 01 00", T2Packet.disconnect(T2Direction.NE, "unspecified"))
      fixture("c4 02 07 54", T2Packet.disconnect(T2Direction.NW, "timeout"))
      fixture("c4 02 05 4d", T2Packet.disconnect(T2Direction.SW, "monitor"))
      assert.strictEqual(encodeHex(T2Packet.connect(T2Direction.ET)), "c40102")
    })

    it("keeps appended bytes (packets grow only by appending fields)", () => {
      fixture("e4 01 03 aabb", {
        _tag: "TileEvent",
        event: "connect",
        reserved: true,
        dir: 3,
        trailing: Uint8Array.of(0xaa, 0xbb)
      })
    })

    it("refuses illegal, reserved and incomplete events", () => {
      refused("c4", 1, "needs an event type")
      refused("c4 00", 1, "illegal")
      refused("c4 03 02", 1, "reserved")
      refused("c4 01", 2, "needs a direction")
      refused("c4 01 00", 2, "not a linked direction")
      refused("c4 01 04", 2, "not a linked direction")
      refused("c4 01 08", 2, "not a linked direction")
      refused("c4 02 02", 3, "needs a cause")
      refused("c4 02 02 58", 3, "cause")
    })
  })

  describe("KITC (§2.3)", () => {
    it("decodes each state's payload", () => {
      fixture("a2 02", { _tag: "Kitc", dir: 2, state: 2, token: undefined, mfzid: undefined })
      fixture("a6 04", { _tag: "Kitc", dir: 6, state: 4, token: undefined, mfzid: undefined })
      fixture(`a2 06 11 ${toHex(ascii("03-5a3b1c-a0-5a3b1d"))} 00`, {
        _tag: "Kitc",
        dir: 2,
        state: 6,
        token: 0x11,
        mfzid: ascii("03-5a3b1c-a0-5a3b1d")
      })
      fixture("a6 08 ff 00", { _tag: "Kitc", dir: 6, state: 8, token: 0xff, mfzid: new Uint8Array(0) })
      fixture("a2 09 11", { _tag: "Kitc", dir: 2, state: 9, token: 0x11, mfzid: undefined })
      fixture("a2 0a 12", { _tag: "Kitc", dir: 2, state: 10, token: 0x12, mfzid: undefined })
    })

    it("refuses unknown states and wrong payloads", () => {
      refused("a2 0b", 1, "not a KITC state")
      refused("a2 1f", 1, "not a KITC state")
      refused("a2 02 00", 2, "carries no payload")
      refused("a2 09", 2, "keepalive is 3 bytes")
      refused("a2 09 11 00", 3, "keepalive is 3 bytes")
      refused("a2 06 11", 3, "NUL-terminated")
      refused("a2 06 11 41 42", 5, "not NUL-terminated")
      refused("a2 06 11 41 00 42", 5, "after the mfzid terminator")
      refused(`a2 06 11 ${"41".repeat(101)} 00`, 3, "at most 100")
      assert.isTrue(Result.isSuccess(T2Packet.decode(fromHex(`a2 06 11 ${"41".repeat(100)} 00`))))
    })

    it("refuses payloads the state does not carry when encoding", () => {
      const lead: T2Packet.Kitc = { _tag: "Kitc", dir: 2, state: 2, token: 1, mfzid: undefined }
      assert.include(failure(T2Packet.encode(lead)).reason, "carries no token")
      assert.include(failure(T2Packet.encode({ ...lead, state: 9, token: undefined })).reason, "needs a token")
      assert.include(failure(T2Packet.encode({ ...lead, state: 6 })).reason, "needs an mfzid")
      assert.include(failure(T2Packet.encode({ ...lead, state: 9, mfzid: ascii("x") })).reason, "no mfzid")
      assert.include(failure(T2Packet.encode({ ...lead, state: 6, mfzid: Uint8Array.of(0x41, 0) })).reason, "NUL")
    })
  })

  describe("other routed packets", () => {
    it("keeps MFM circuit packets whole", () => {
      // A ring (XITC 2) for circuit 3 toward NE: CTRX -5, CTRY -126, yoink + radius code 2.
      fixture("a1 43 fb 82 82", { _tag: "Mfm", dir: 1, xitc: 2, number: 3, body: Uint8Array.of(0xfb, 0x82, 0x82) })
      fixture("a7 ff", { _tag: "Mfm", dir: 7, xitc: 7, number: 31, body: new Uint8Array(0) })
    })

    it("decodes OVR/ERR bounces as returned sends, whatever they carried", () => {
      fixture("92 83 46 05", {
        _tag: "Returned",
        dir: 2,
        mfm: false,
        overrun: true,
        error: false,
        body: Uint8Array.of(0x83, 0x46, 0x05)
      })
      fixture("b9 02", { _tag: "Returned", dir: 1, mfm: true, overrun: true, error: true, body: Uint8Array.of(2) })
      fixture("8d 13", { _tag: "Returned", dir: 5, mfm: false, overrun: false, error: true, body: Uint8Array.of(0x13) })
    })

    it("keeps other bulk codes whole", () => {
      fixture("82 85 0102", { _tag: "Bulk", dir: 2, code: 5, body: Uint8Array.of(1, 2) })
      fixture("87 ff", { _tag: "Bulk", dir: 7, code: 0x7f, body: new Uint8Array(0) })
    })

    it("decodes CDM source routes (§3.12)", () => {
      // To ET then NE, back via WT; command D with its fields kept whole.
      fixture("82 b2 b1 b8 b6 00 44 0102", {
        _tag: "SourceRouted",
        dir: 2,
        to: [2, 1],
        from: [6],
        command: 0x44,
        body: Uint8Array.of(1, 2)
      })
      // Empty to-part: deliver here.
      fixture("86 b8 b2 00 43", {
        _tag: "SourceRouted",
        dir: 6,
        to: [],
        from: [2],
        command: 0x43,
        body: new Uint8Array(0)
      })
      refused("82 b2 b8", 3, "not terminated")
      refused("82 b2 b1 00 43", 3, "no separator")
      refused("82 b8 b2 b8 00 43", 3, "second separator")
      refused("82 b2 41 00 43", 2, "not 0xB0..0xB8")
      refused("82 b8 00", 3, "command byte")
    })
  })

  describe("limits", () => {
    it("refuses empty, oversized and one-byte routed packets", () => {
      refused("", 0, "empty")
      const error = failure(T2Packet.decode(new Uint8Array(1 << 20)))
      assert.strictEqual(error.offset, 255)
      refused("82", 1, "needs byte 1")
    })

    it("refuses to encode what would decode as another kind or overflow 255 bytes", () => {
      const body = new Uint8Array(0)
      assert.include(failure(T2Packet.encode({ _tag: "Bulk", dir: 2, code: 3, body })).reason, "outside CDM")
      assert.include(failure(T2Packet.encode({ _tag: "Bulk", dir: 2, code: 0x34, body })).reason, "source routes")
      assert.include(
        failure(
          T2Packet.encode({
            _tag: "Returned",
            dir: 2,
            mfm: false,
            overrun: false,
            error: false,
            body: Uint8Array.of(1)
          })
        )
          .reason,
        "OVR or ERR"
      )
      assert.include(
        failure(T2Packet.encode({ _tag: "LocalOther", localType: 3, reserved: false, body })).reason,
        "0 or 5..31"
      )
      assert.include(failure(T2Packet.encode({ _tag: "NonStandard", command: 0x80, body })).reason, "0..127")
      const long = failure(T2Packet.encode({ _tag: "NonStandard", command: 0x41, body: new Uint8Array(255) }))
      assert.strictEqual(long.offset, 255)
      assert.include(
        failure(T2Packet.encode({ ...T2Packet.connect(T2Direction.ET), dir: T2Direction.ST })).reason,
        "linked direction"
      )
    })
  })

  describe("properties", () => {
    it("decode(encode(p)) is p for every packet kind", () => {
      fc.assert(
        fc.property(t2Packet, (packet) => {
          const encoded = ok(T2Packet.encode(packet))
          assert.isAtMost(encoded.length, 255)
          assert.deepStrictEqual(plain(ok(T2Packet.decode(encoded))), plain(packet))
        }),
        { numRuns: 2000 }
      )
    })

    it("KITC packets round-trip through every state", () => {
      fc.assert(fc.property(kitc, (packet) => {
        assert.deepStrictEqual(plain(ok(T2Packet.decode(ok(T2Packet.encode(packet))))), plain(packet))
      }))
    })

    it("random bytes never throw, and whatever decodes is canonical", () => {
      fc.assert(fc.property(bytes(300), canonical), { numRuns: 5000 })
      // Bias toward routed service packets, where most layouts live.
      fc.assert(
        fc.property(fc.tuple(fc.integer({ min: 0x80, max: 0x87 }), bytes(40)), ([b0, rest]) => {
          const input = new Uint8Array(rest.length + 1)
          input[0] = b0
          input.set(rest, 1)
          canonical(input)
        }),
        { numRuns: 3000 }
      )
    })

    it("mutated valid packets never throw, and whatever decodes is canonical", () => {
      fc.assert(
        fc.property(mutated(t2Packet.map((p) => ok(T2Packet.encode(p)))), canonical),
        { numRuns: 3000 }
      )
    })
  })
})
