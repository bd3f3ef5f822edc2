import { assert, describe, it } from "@effect/vitest"
import { Result } from "effect"
import * as fc from "fast-check"
import type { DecodeError } from "../src/DecodeError.ts"
import * as SiloPacket from "../src/SiloPacket.ts"
import { fromHex, packet, packets, toHex, vectors } from "./utils/SiloArbitraries.ts"

type AnyDecoder = (bytes: Uint8Array) => Result.Result<SiloPacket.Packet, DecodeError>

/** Go's decoder names (as in `decode_cases`) mapped to ours. */
const decoders: { readonly [name: string]: AnyDecoder } = {
  DecodeReadAt: SiloPacket.decodeReadAt,
  DecodeReadAtResponse: SiloPacket.decodeReadAtResponse,
  DecodeWriteAt: SiloPacket.decodeWriteAtData,
  DecodeWriteAtResponse: SiloPacket.decodeWriteAtResponse,
  DecodeDirtyList: SiloPacket.decodeDirtyList,
  DecodeDevInfo: SiloPacket.decodeDevInfo,
  DecodeEvent: SiloPacket.decodeEvent,
  DecodeEventResponse: SiloPacket.decodeEventResponse,
  DecodeHashes: SiloPacket.decodeHashes,
  DecodeHashesResponse: SiloPacket.decodeHashesResponse,
  DecodeRemoveFromMap: SiloPacket.decodeRemoveFromMap,
  DecodeWriteAtWithMap: SiloPacket.decodeWriteAtWithMap,
  DecodeAlternateSources: SiloPacket.decodeAlternateSources,
  DecodeYouAlreadyHave: SiloPacket.decodeYouAlreadyHave,
  DecodeDeviceGroupInfo: SiloPacket.decodeDeviceGroupInfo,
  DecodeReadByHash: SiloPacket.decodeReadByHash,
  DecodeReadByHashResponse: SiloPacket.decodeReadByHashResponse,
  DecodeWriteAtHash: SiloPacket.decodeWriteAtHash,
  DecodeWriteAtComp: SiloPacket.decodeWriteAtComp,
  DecodeWriteAtCompRLE: SiloPacket.decodeWriteAtComp,
  DecodeWriteAtCompZeroes: SiloPacket.decodeWriteAtComp,
  DecodeWriteAtCompGzip: SiloPacket.decodeWriteAtComp
}

/** Go's own error texts; the port's reasons start with them. Gzip errors come from zlib instead. */
const GO_TEXTS = ["invalid packet", "invalid range in compressed data", "unknown compression type 7"]

const decodeOk = (hex: string): SiloPacket.Packet => Result.getOrThrow(SiloPacket.decode(fromHex(hex)))

const failure = (result: Result.Result<unknown, DecodeError>): DecodeError => {
  assert.isTrue(Result.isFailure(result), "expected a DecodeError")
  return (result as Result.Failure<unknown, DecodeError>).failure
}

/** A Hashes entry whose hash is 32 bytes of `fill`. */
const hashEntry = (index: number, fill: number) => [index, 0, 0, 0, ...new Array(32).fill(fill)]

const devInfo = (name: string): SiloPacket.DevInfo => ({ _tag: "DevInfo", size: 1, blockSize: 1, name, schema: "" })

const noThrow = (
  bytes: Uint8Array,
  options?: SiloPacket.DecodeOptions
): Result.Result<SiloPacket.Packet, DecodeError> => {
  try {
    return SiloPacket.decode(bytes, options)
  } catch (error) {
    assert.fail(`decode threw ${String(error)} on ${toHex(bytes)}`)
  }
}

describe("SiloPacket", () => {
  describe("decode_cases", () => {
    for (const c of vectors.decode_cases) {
      it(`${c.name}: ${c.outcome}`, () => {
        const decoder = decoders[c.decoder]
        assert.isDefined(decoder, `no decoder for ${c.decoder}`)
        const bytes = fromHex(c.hex)
        const result = decoder!(bytes)
        if (c.outcome === "ok") {
          assert.isTrue(Result.isSuccess(result), Result.isFailure(result) ? result.failure.message : "")
          return
        }
        const e = failure(result)
        assert.strictEqual(e.protocol, "silo")
        assert.isAtLeast(e.offset, 0)
        assert.isAtMost(e.offset, bytes.length)
        if (c.outcome === "panic") assert.match(e.reason, /^invalid packet/)
        else if (GO_TEXTS.includes(c.detail)) assert.isTrue(e.reason.startsWith(c.detail), e.reason)
        else assert.match(e.reason, /^gzip: /)
        // The generic decoder never throws on them either.
        noThrow(bytes)
      })
    }

    it("decodes the 'ok' cases to Go's values", () => {
      assert.deepStrictEqual(decodeOk("820909"), { _tag: "ReadAtResponseErr" })
      assert.deepStrictEqual(decodeOk("84"), { _tag: "WriteAtResponseErr" })
      assert.deepStrictEqual(decodeOk("0763"), { _tag: "Event", type: 99 })
      assert.strictEqual(SiloPacket.eventTypeName(99), "Unknown")
      assert.deepStrictEqual(decodeOk("0704aa"), { _tag: "Event", type: 4 })
      assert.deepStrictEqual(decodeOk("05001000000100000001000000ee"), {
        _tag: "DirtyList",
        blockSize: 4096,
        blocks: [1]
      })
      const hash = decodeOk("02010100000000000000000100000000000000")
      assert.strictEqual(hash._tag === "WriteAtHash" && hash.hash.length, 0)
    })
  })

  describe("vectors", () => {
    it("decodes every packet vector to a packet of its name, and re-encodes canonical ones byte-exact", () => {
      for (const v of vectors.packets) {
        const p = decodeOk(v.hex)
        assert.strictEqual(SiloPacket.nameOf(p), v.packet, v.name)
        assert.strictEqual(toHex(SiloPacket.encode(p)).slice(0, 2), v.command_byte.slice(2), v.name)
        // 0x82/0x84 carry no text and custom event fields on a non-custom event are dropped: both are canonical
        // because the wire keeps none of it, so re-encoding the decoded value gives the same bytes.
        if (v.canonical) assert.strictEqual(toHex(SiloPacket.encode(p)), v.hex, v.name)
      }
    })

    it("decodes the non-canonical vectors to values whose canonical encoding decodes the same", () => {
      for (const v of vectors.packets.filter((vector) => !vector.canonical)) {
        const p = decodeOk(v.hex)
        assert.deepStrictEqual(decodeOk(toHex(SiloPacket.encode(p))), p, v.name)
      }
    })

    it("writes maps in ascending key order whatever the insertion order", () => {
      const h1 = new Uint8Array(32).fill(1)
      const h2 = new Uint8Array(32).fill(2)
      const forward = SiloPacket.encode({ _tag: "Hashes", hashes: new Map([[1, h1], [2, h2]]) })
      const backward = SiloPacket.encode({ _tag: "Hashes", hashes: new Map([[2, h2], [1, h1]]) })
      assert.strictEqual(toHex(backward), toHex(forward))
      const idMap = SiloPacket.encode({
        _tag: "WriteAtWithMap",
        offset: 0,
        idMap: new Map([[1n << 63n, 1n], [5n, 2n]]),
        data: new Uint8Array(0)
      })
      assert.strictEqual(toHex(idMap.subarray(13, 21)), "0500000000000000")
    })

    it("keeps the last of repeated map keys", () => {
      const p = Result.getOrThrow(SiloPacket.decodeHashes(Uint8Array.from([8, ...hashEntry(3, 1), ...hashEntry(3, 2)])))
      assert.strictEqual(p.hashes.size, 1)
      assert.strictEqual(p.hashes.get(3)![0], 2)
    })
  })

  describe("round trips", () => {
    for (const [tag, arbitrary] of Object.entries(packets)) {
      it(`${tag}: decode(encode(x)) equals x`, () => {
        fc.assert(
          fc.property(arbitrary as fc.Arbitrary<SiloPacket.Packet>, (p) => {
            const bytes = SiloPacket.encode(p)
            assert.deepStrictEqual(Result.getOrThrow(SiloPacket.decode(bytes)), p)
          }),
          { numRuns: 200 }
        )
      })
    }
  })

  describe("views and ranges", () => {
    it("returns data fields as views into the payload", () => {
      const payload = SiloPacket.encode({
        _tag: "WriteAt",
        offset: 1,
        data: Uint8Array.of(1, 2, 3),
        compression: "None"
      })
      const p = Result.getOrThrow(SiloPacket.decodeWriteAtData(payload))
      assert.strictEqual(p.data.buffer, payload.buffer)
      assert.strictEqual(p.data.byteOffset, 10)
      const response = SiloPacket.encode({ _tag: "ReadAtResponse", bytes: 3, data: Uint8Array.of(1, 2, 3) })
      const r = Result.getOrThrow(SiloPacket.decodeReadAtResponse(response))
      assert.strictEqual(r._tag === "ReadAtResponse" && r.data.buffer, response.buffer)
    })

    it("encodes negative i64/i32 fields as two's complement", () => {
      assert.strictEqual(toHex(SiloPacket.encode({ _tag: "ReadAt", offset: -1, length: -1 })), "01" + "ff".repeat(12))
      assert.deepStrictEqual(decodeOk("01" + "ff".repeat(12)), { _tag: "ReadAt", offset: -1, length: -1 })
    })

    it("handles the safe-integer boundaries and refuses values beyond them", () => {
      const max = Number.MAX_SAFE_INTEGER
      for (const offset of [max, -max]) {
        assert.deepStrictEqual(decodeOk(toHex(SiloPacket.encode({ _tag: "NeedAt", offset, length: 1 }))), {
          _tag: "NeedAt",
          offset,
          length: 1
        })
      }
      const beyond = fromHex("03", "0000000000002000", "01000000") // offset 2^53
      assert.include(failure(SiloPacket.decode(beyond)).reason, "safe integer range")
      const hugeSize = fromHex("06", "ff".repeat(8), "00000000", "0000", "00000000")
      const e = failure(SiloPacket.decode(hugeSize))
      assert.strictEqual(e.packet, "DevInfo")
      assert.strictEqual(e.offset, 1)
    })

    it("keeps full-range u64 ids as bigints", () => {
      const ids = [0n, (1n << 64n) - 1n, 1n << 53n]
      assert.deepStrictEqual(decodeOk(toHex(SiloPacket.encode({ _tag: "RemoveFromMap", ids }))), {
        _tag: "RemoveFromMap",
        ids
      })
    })
  })

  describe("encoder guards", () => {
    it("refuses a DevInfo name over 65535 UTF-8 bytes instead of corrupting the packet", () => {
      assert.strictEqual(SiloPacket.encode(devInfo("x".repeat(65535))).length, 19 + 65535)
      assert.throws(() => SiloPacket.encode(devInfo("x".repeat(65536))), RangeError)
      assert.throws(() => SiloPacket.encode(devInfo("é".repeat(32768))), RangeError)
      assert.throws(
        () => SiloPacket.encode({ _tag: "DeviceGroupInfo", devices: new Map([[1, devInfo("x".repeat(70000))]]) }),
        RangeError
      )
    })

    it("refuses sha256 fields that are not 32 bytes", () => {
      assert.throws(() => SiloPacket.encode({ _tag: "ReadByHash", hash: new Uint8Array(31) }), RangeError)
      assert.throws(
        () => SiloPacket.encode({ _tag: "Hashes", hashes: new Map([[1, new Uint8Array(33)]]) }),
        RangeError
      )
      assert.throws(
        () =>
          SiloPacket.encode({
            _tag: "AlternateSources",
            sources: [{ offset: 0, length: 1, hash: new Uint8Array(0), location: "" }]
          }),
        RangeError
      )
    })

    it("writes a Custom event without custom fields as custom type 0 and no payload", () => {
      assert.strictEqual(toHex(SiloPacket.encode({ _tag: "Event", type: 5 })), "070500")
    })
  })

  describe("malformed input", () => {
    it("fails on empty payloads, unknown commands and unknown WriteAt subtypes", () => {
      assert.match(failure(SiloPacket.decode(new Uint8Array(0))).reason, /^invalid packet/)
      assert.include(failure(SiloPacket.decode(Uint8Array.of(0x42))).reason, "unknown command byte 0x42")
      assert.include(failure(SiloPacket.decode(Uint8Array.of(0x02))).reason, "subtype")
      assert.include(failure(SiloPacket.decode(fromHex("02070000000000000000"))).reason, "unknown WriteAt subtype 7")
    })

    it("fails fast on counts far beyond the payload", () => {
      const payloads = [
        fromHex("05", "00100000", "ffffffff"),
        fromHex("0b", "ffffffff"),
        fromHex("0c", "ffffffff"),
        fromHex("09", "00".repeat(8), "ffffffff")
      ]
      for (const payload of payloads) {
        const e = failure(SiloPacket.decode(payload))
        assert.match(e.reason, /^invalid packet: count 4294967295/)
      }
    })

    it("reports the failing DevInfo inside a DeviceGroupInfo at its offset", () => {
      const e = failure(SiloPacket.decode(fromHex("0d", "07000000", "01000000", "06")))
      assert.strictEqual(e.packet, "DeviceGroupInfo")
      assert.strictEqual(e.offset, 9 + 1)
      assert.include(e.reason, "device 7")
    })

    it("never throws on random bytes, and decompressed data never exceeds the cap", () => {
      const interesting = fc.oneof(
        fc.uint8Array({ maxLength: 120 }),
        fc.tuple(fc.integer({ min: 0, max: 0x8a }), fc.uint8Array({ maxLength: 120 })).map(([c, rest]) =>
          Uint8Array.of(c, ...rest)
        ),
        fc.tuple(fc.integer({ min: 0, max: 7 }), fc.uint8Array({ maxLength: 120 })).map(([t, rest]) =>
          Uint8Array.of(2, t, ...rest)
        )
      )
      fc.assert(
        fc.property(interesting, (bytes) => {
          const result = noThrow(bytes, { maxDecompressedLength: 512 })
          assert.isTrue(Result.isResult(result))
          const p = Result.isSuccess(result) ? result.success : undefined
          if (p?._tag === "WriteAt" && p.compression !== "None") assert.isAtMost(p.data.length, 512)
        }),
        { numRuns: 5000 }
      )
    })

    it("never throws on mutated, truncated or extended valid packets", () => {
      const mutation = fc.record({
        flips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { maxLength: 4 }),
        cut: fc.option(fc.nat()),
        extra: fc.uint8Array({ maxLength: 8 })
      })
      fc.assert(
        fc.property(packet, mutation, (p, m) => {
          const bytes = SiloPacket.encode(p).slice()
          for (const [at, x] of m.flips) if (bytes.length > 0) bytes[at % bytes.length]! ^= x
          const cut = m.cut === null ? bytes : bytes.subarray(0, m.cut % (bytes.length + 1))
          assert.isTrue(
            Result.isResult(noThrow(Uint8Array.from([...cut, ...m.extra]), { maxDecompressedLength: 4096 }))
          )
          assert.isTrue(Result.isResult(noThrow(cut, { maxDecompressedLength: 4096 })))
        }),
        { numRuns: 3000 }
      )
    })

    it("fails fast on a zeroes WriteAt claiming 2^40 bytes", () => {
      const payload = fromHex("0205", "0000000000000000", "0000000000010000")
      const started = performance.now()
      const e = failure(SiloPacket.decode(payload))
      assert.isBelow(performance.now() - started, 1000)
      assert.strictEqual(e.packet, "WriteAtCompZeroes")
      assert.include(e.reason, "exceeds the maximum of 33554432")
    })
  })
})
