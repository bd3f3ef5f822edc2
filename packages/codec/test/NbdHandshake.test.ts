import { assert, describe, it } from "@effect/vitest"
import { Result } from "effect"
import * as fc from "fast-check"
import type { DecodeError } from "../src/DecodeError.ts"
import { ClientFlags, HandshakeFlags, Info, Option, Reply, TransmissionFlags } from "../src/NbdConstants.ts"
import * as NbdHandshake from "../src/NbdHandshake.ts"
import { assertHex, fromHex, optionReply, optionRequest, plain, toHex } from "./utils/NbdArbitraries.ts"

const IHAVEOPT = "49484156454f5054"
const REPLY_MAGIC = "0003e889045565a9"

const ok = <A>(result: Result.Result<A, unknown>): A => Result.getOrThrow(result)

const failure = (result: Result.Result<unknown, { readonly reason: string; readonly offset: number }>) => {
  assert.isTrue(Result.isFailure(result))
  return Result.isFailure(result) ? result.failure : assert.fail("expected a failure")
}

const replyOf = (type: string, data: string) => {
  const body = fromHex(data)
  return NbdHandshake.decodeOptionReply(
    fromHex(REPLY_MAGIC, "00000007", type, body.length.toString(16).padStart(8, "0"), data)
  )
}

describe("NbdHandshake", () => {
  describe("the spec's byte layouts", () => {
    it("greeting: NBDMAGIC, IHAVEOPT, 16-bit handshake flags", () => {
      const bytes = NbdHandshake.encodeGreeting(HandshakeFlags.FIXED_NEWSTYLE | HandshakeFlags.NO_ZEROES)
      assertHex(toHex(bytes), "4e42444d41474943" + IHAVEOPT + "0003")
      assert.deepStrictEqual(ok(NbdHandshake.decodeGreeting(bytes)), { _tag: "Greeting", handshakeFlags: 3 })
    })

    it("refuses an oldstyle greeting by name, and bad magics", () => {
      const oldstyle = fromHex("4e42444d41474943", "0000420281861253", "0000")
      assert.match(failure(NbdHandshake.decodeGreeting(oldstyle)).reason, /oldstyle/)
      assert.strictEqual(failure(NbdHandshake.decodeGreeting(new Uint8Array(18))).offset, 0)
      assert.strictEqual(failure(NbdHandshake.decodeGreeting(fromHex("4e42444d41474943", "00".repeat(10)))).offset, 8)
      assert.isTrue(Result.isFailure(NbdHandshake.decodeGreeting(new Uint8Array(17))))
    })

    it("client flags: 32 bits", () => {
      const bytes = NbdHandshake.encodeClientFlags(ClientFlags.FIXED_NEWSTYLE | ClientFlags.NO_ZEROES)
      assertHex(toHex(bytes), "00000003")
      assert.deepStrictEqual(ok(NbdHandshake.decodeClientFlags(bytes)), { _tag: "ClientFlags", flags: 3 })
      assert.isTrue(Result.isFailure(NbdHandshake.decodeClientFlags(new Uint8Array(3))))
    })

    it("NBD_OPT_EXPORT_NAME: the name is the whole data; empty is the default export", () => {
      const bytes = NbdHandshake.encodeOptionRequest({ _tag: "ExportName", name: "disk" })
      assertHex(toHex(bytes), IHAVEOPT + "00000001 00000004 6469736b")
      assert.deepStrictEqual(ok(NbdHandshake.decodeOptionRequest(bytes)), { _tag: "ExportName", name: "disk" })
      assertHex(
        toHex(NbdHandshake.encodeOptionRequest({ _tag: "ExportName", name: "" })),
        IHAVEOPT + "00000001 00000000"
      )
    })

    it("NBD_OPT_GO: name length, name, count, information requests", () => {
      const request = { _tag: "Go", name: "disk", requests: [Info.NAME, Info.BLOCK_SIZE] } as const
      const bytes = NbdHandshake.encodeOptionRequest(request)
      assertHex(
        toHex(bytes),
        IHAVEOPT + "00000007 0000000e 00000004 6469736b 0002 0001 0003".replace(/ /g, "")
      )
      assert.deepStrictEqual(ok(NbdHandshake.decodeOptionRequest(bytes)), request)
      assert.deepStrictEqual(ok(NbdHandshake.decodeOptionData(Option.INFO, bytes.subarray(16))), {
        ...request,
        _tag: "Info"
      })
    })

    it("NBD_OPT_GO: a name longer than the data - 6, or a count that does not fill the rest, is refused", () => {
      // Name length 5 with 10 bytes of data: 5 > 10 - 6.
      const long = failure(
        NbdHandshake.decodeOptionData(Option.GO, fromHex("00000005 6469736b00 00".replace(/ /g, "")))
      )
      assert.strictEqual(long.offset, 0)
      assert.match(long.reason, /exceeds the option data length - 6/)
      const count = failure(NbdHandshake.decodeOptionData(Option.GO, fromHex("00000000", "0002", "0001")))
      assert.strictEqual(count.offset, 4)
      assert.isTrue(Result.isFailure(NbdHandshake.decodeOptionData(Option.GO, fromHex("0000000000"))))
    })

    it("NBD_OPT_SET_META_CONTEXT / LIST_META_CONTEXT: name, query count, length-prefixed queries", () => {
      const request = { _tag: "SetMetaContext", name: "disk", queries: ["base:allocation"] } as const
      const bytes = NbdHandshake.encodeOptionRequest(request)
      assertHex(
        toHex(bytes),
        IHAVEOPT + "0000000a 0000001f 00000004 6469736b 00000001 0000000f" +
          toHex(new TextEncoder().encode("base:allocation"))
      )
      assert.deepStrictEqual(ok(NbdHandshake.decodeOptionRequest(bytes)), request)
      const list = NbdHandshake.encodeOptionRequest({ _tag: "ListMetaContext", name: "", queries: [] })
      assertHex(toHex(list), IHAVEOPT + "00000009 00000008 00000000 00000000")
    })

    it("meta context requests: a count the data cannot hold is refused before any query is read", () => {
      const huge = failure(NbdHandshake.decodeOptionData(Option.LIST_META_CONTEXT, fromHex("00000000", "ffffffff")))
      assert.strictEqual(huge.offset, 4)
      assert.match(huge.reason, /cannot fit/)
      const overrun = fromHex("00000000", "00000001", "00000005", "6162")
      assert.strictEqual(failure(NbdHandshake.decodeOptionData(Option.SET_META_CONTEXT, overrun)).offset, 8)
      const trailing = fromHex("00000000", "00000000", "00")
      assert.strictEqual(failure(NbdHandshake.decodeOptionData(Option.SET_META_CONTEXT, trailing)).offset, 8)
    })

    it("LIST, STARTTLS and STRUCTURED_REPLY carry no data; ABORT's data is ignored", () => {
      for (const option of [Option.LIST, Option.STARTTLS, Option.STRUCTURED_REPLY]) {
        assert.isTrue(Result.isSuccess(NbdHandshake.decodeOptionData(option, new Uint8Array(0))))
        assert.match(failure(NbdHandshake.decodeOptionData(option, new Uint8Array(1))).reason, /no data/)
      }
      assert.deepStrictEqual(ok(NbdHandshake.decodeOptionData(Option.ABORT, new Uint8Array(3))), { _tag: "Abort" })
    })

    it("unknown options (and PEEK_EXPORT) keep their data as a view", () => {
      const data = Uint8Array.of(1, 2, 3)
      const decoded = ok(NbdHandshake.decodeOptionData(Option.PEEK_EXPORT, data))
      assert.strictEqual(decoded._tag, "UnknownOption")
      if (decoded._tag === "UnknownOption") assert.strictEqual(decoded.data.buffer, data.buffer)
    })

    it("names must be UTF-8 (a byte-order mark survives)", () => {
      const bad = failure(NbdHandshake.decodeOptionData(Option.EXPORT_NAME, Uint8Array.of(0x61, 0xff)))
      assert.match(bad.reason, /UTF-8/)
      const bom = ok(NbdHandshake.decodeOptionData(Option.EXPORT_NAME, Uint8Array.of(0xef, 0xbb, 0xbf, 0x61)))
      assert.deepStrictEqual(bom, { _tag: "ExportName", name: "\ufeffa" })
    })

    it("option request header: magic checked, length must match the data", () => {
      assert.deepStrictEqual(ok(NbdHandshake.decodeOptionHeader(fromHex("00", IHAVEOPT, "00000007", "00000010"), 1)), {
        option: 7,
        length: 16
      })
      assert.match(failure(NbdHandshake.decodeOptionHeader(new Uint8Array(16))).reason, /magic/)
      assert.strictEqual(
        failure(NbdHandshake.decodeOptionRequest(fromHex(IHAVEOPT, "00000003", "00000001"))).offset,
        12
      )
    })

    it("option replies: ACK, SERVER, INFO (EXPORT, NAME, DESCRIPTION, BLOCK_SIZE), META_CONTEXT, errors", () => {
      const cases: ReadonlyArray<readonly [NbdHandshake.OptionReply, string]> = [
        [{ _tag: "Ack", option: Option.GO }, "00000007 00000001 00000000"],
        [
          { _tag: "Server", option: Option.LIST, name: "disk", details: "" },
          "00000003 00000002 00000008 00000004 6469736b"
        ],
        [
          { _tag: "Server", option: Option.LIST, name: "a", details: "b" },
          "00000003 00000002 00000006 00000001 61 62"
        ],
        [
          {
            _tag: "ExportInfo",
            option: Option.GO,
            info: {
              _tag: "Export",
              size: 1 << 30,
              transmissionFlags: TransmissionFlags.HAS_FLAGS | TransmissionFlags.SEND_FLUSH
            }
          },
          "00000007 00000003 0000000c 0000 0000000040000000 0005"
        ],
        [
          { _tag: "ExportInfo", option: Option.INFO, info: { _tag: "Name", name: "disk" } },
          "00000006 00000003 00000006 0001 6469736b"
        ],
        [
          { _tag: "ExportInfo", option: Option.INFO, info: { _tag: "Description", description: "" } },
          "00000006 00000003 00000002 0002"
        ],
        [
          {
            _tag: "ExportInfo",
            option: Option.GO,
            info: { _tag: "BlockSize", minimum: 512, preferred: 4096, maximum: 32 * 1024 * 1024 }
          },
          "00000007 00000003 0000000e 0003 00000200 00001000 02000000"
        ],
        [
          { _tag: "MetaContext", option: Option.SET_META_CONTEXT, id: 1, name: "base:allocation" },
          "0000000a 00000004 00000013 00000001" + toHex(new TextEncoder().encode("base:allocation"))
        ],
        [
          { _tag: "OptionError", option: Option.GO, type: Reply.ERR_UNKNOWN, message: "no" },
          "00000007 80000006 00000002 6e6f"
        ],
        [{ _tag: "OptionError", option: 99, type: Reply.ERR_UNSUP, message: "" }, "00000063 80000001 00000000"]
      ]
      for (const [reply, hex] of cases) {
        const bytes = NbdHandshake.encodeOptionReply(reply)
        assertHex(toHex(bytes), REPLY_MAGIC + hex.replace(/ /g, ""))
        assert.deepStrictEqual(ok(NbdHandshake.decodeOptionReply(bytes)), reply)
      }
    })

    it("option replies: fixed sizes and name lengths are checked", () => {
      assert.match(failure(replyOf("00000001", "00")).reason, /no data/)
      assert.match(failure(replyOf("00000003", "0000 00")).reason, /12/)
      assert.match(failure(replyOf("00000003", "0003 00000200")).reason, /14/)
      assert.match(failure(replyOf("00000003", "00")).reason, /information type/)
      assert.match(failure(replyOf("00000002", "00000005 61")).reason, /exceeds the reply length - 4/)
      assert.match(failure(replyOf("00000004", "000000")).reason, /context id/)
      assert.match(failure(replyOf("00000003", "0000 0020000000000000 0001")).reason, /2\^53/)
      assert.deepStrictEqual(ok(replyOf("00000003", "0009 aabb")), {
        _tag: "ExportInfo",
        option: 7,
        info: { _tag: "UnknownInfo", type: 9, data: Uint8Array.of(0xaa, 0xbb) }
      })
      assert.strictEqual(ok(replyOf("00000010", "aa"))._tag, "UnknownReply")
      assert.match(failure(NbdHandshake.decodeOptionReply(new Uint8Array(20))).reason, /magic/)
    })

    it("error messages are decoded leniently", () => {
      const decoded = ok(NbdHandshake.decodeOptionReplyData(Option.GO, Reply.ERR_POLICY, Uint8Array.of(0x61, 0xff)))
      assert.deepStrictEqual(decoded, { _tag: "OptionError", option: 7, type: Reply.ERR_POLICY, message: "a\ufffd" })
    })

    it("NBD_OPT_EXPORT_NAME reply: size, flags, then 124 zeroes unless NO_ZEROES", () => {
      const reply = { size: 1 << 30, transmissionFlags: 0x0003 }
      const full = NbdHandshake.encodeExportNameReply(reply, false)
      assertHex(toHex(full), "0000000040000000 0003" + "00".repeat(124))
      const short = NbdHandshake.encodeExportNameReply(reply, true)
      assertHex(toHex(short), "00000000400000000003")
      assert.deepStrictEqual(ok(NbdHandshake.decodeExportNameReply(full, false)), { _tag: "ExportNameReply", ...reply })
      assert.deepStrictEqual(ok(NbdHandshake.decodeExportNameReply(short, true)), { _tag: "ExportNameReply", ...reply })
      assert.isTrue(Result.isFailure(NbdHandshake.decodeExportNameReply(short, false)))
      assert.isTrue(Result.isFailure(NbdHandshake.decodeExportNameReply(fromHex("ffffffffffffffff0000"), true)))
    })
  })

  describe("properties", () => {
    it("option requests round-trip", () => {
      fc.assert(fc.property(optionRequest, (request) => {
        const bytes = NbdHandshake.encodeOptionRequest(request)
        const decoded = ok(NbdHandshake.decodeOptionRequest(bytes))
        assert.deepStrictEqual(plain(decoded), plain(request))
        assertHex(toHex(NbdHandshake.encodeOptionRequest(decoded)), toHex(bytes))
        assert.strictEqual(NbdHandshake.optionOf(decoded), NbdHandshake.optionOf(request))
      }))
    })

    it("option replies round-trip", () => {
      fc.assert(fc.property(optionReply, (reply) => {
        const bytes = NbdHandshake.encodeOptionReply(reply)
        const decoded = ok(NbdHandshake.decodeOptionReply(bytes))
        assert.deepStrictEqual(plain(decoded), plain(reply))
        assertHex(toHex(NbdHandshake.encodeOptionReply(decoded)), toHex(bytes))
      }))
    })

    it("greetings, client flags and EXPORT_NAME replies round-trip", () => {
      fc.assert(fc.property(
        fc.integer({ min: 0, max: 0xffff }),
        fc.integer({ min: 0, max: 0xffff_ffff }),
        fc.maxSafeNat(),
        fc.boolean(),
        (handshakeFlags, flags, size, noZeroes) => {
          assert.strictEqual(
            ok(NbdHandshake.decodeGreeting(NbdHandshake.encodeGreeting(handshakeFlags))).handshakeFlags,
            handshakeFlags
          )
          assert.strictEqual(ok(NbdHandshake.decodeClientFlags(NbdHandshake.encodeClientFlags(flags))).flags, flags)
          const reply = { size, transmissionFlags: handshakeFlags }
          assert.deepStrictEqual(
            ok(NbdHandshake.decodeExportNameReply(NbdHandshake.encodeExportNameReply(reply, noZeroes), noZeroes)),
            { _tag: "ExportNameReply", ...reply }
          )
        }
      ))
    })

    it("random option data never throws; what decodes re-encodes to something that decodes the same", () => {
      fc.assert(fc.property(fc.integer({ min: 0, max: 12 }), fc.uint8Array({ maxLength: 80 }), (option, data) => {
        const decoded = NbdHandshake.decodeOptionData(option, data)
        if (Result.isSuccess(decoded)) {
          const again = ok(NbdHandshake.decodeOptionRequest(NbdHandshake.encodeOptionRequest(decoded.success)))
          assert.deepStrictEqual(plain(again), plain(decoded.success))
        } else {
          assert.isTrue(decoded.failure.offset >= 0 && decoded.failure.offset <= data.length)
        }
      }))
    })

    it("random reply data never throws; what decodes re-encodes to something that decodes the same", () => {
      const type = fc.oneof(fc.integer({ min: 0, max: 6 }), fc.integer({ min: 0x8000_0000, max: 0x8000_000a }))
      fc.assert(fc.property(type, fc.uint8Array({ maxLength: 80 }), (replyType, data) => {
        const decoded = NbdHandshake.decodeOptionReplyData(7, replyType, data)
        if (Result.isSuccess(decoded)) {
          const again = ok(NbdHandshake.decodeOptionReply(NbdHandshake.encodeOptionReply(decoded.success)))
          assert.deepStrictEqual(plain(again), plain(decoded.success))
        } else {
          assert.isTrue(decoded.failure.offset >= 0 && decoded.failure.offset <= data.length)
        }
      }))
    })

    it("mutated requests and replies never throw", () => {
      const mutation = fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 })
      fc.assert(fc.property(optionRequest, optionReply, mutation, (request, reply, changes) => {
        for (const bytes of [NbdHandshake.encodeOptionRequest(request), NbdHandshake.encodeOptionReply(reply)]) {
          for (const [at, value] of changes) bytes[at % bytes.length] = value
          const results: ReadonlyArray<Result.Result<unknown, DecodeError>> = [
            NbdHandshake.decodeOptionRequest(bytes),
            NbdHandshake.decodeOptionReply(bytes)
          ]
          for (const result of results) {
            if (Result.isFailure(result)) {
              assert.isTrue(result.failure.offset >= 0 && result.failure.offset <= bytes.length)
              assert.strictEqual(result.failure.protocol, "nbd")
            }
          }
        }
      }))
    })

    it("random bytes never throw in any whole-message decoder", () => {
      fc.assert(fc.property(fc.uint8Array({ maxLength: 160 }), fc.boolean(), (bytes, noZeroes) => {
        NbdHandshake.decodeGreeting(bytes)
        NbdHandshake.decodeClientFlags(bytes)
        NbdHandshake.decodeOptionHeader(bytes)
        NbdHandshake.decodeOptionRequest(bytes)
        NbdHandshake.decodeOptionReplyHeader(bytes)
        NbdHandshake.decodeOptionReply(bytes)
        NbdHandshake.decodeExportNameReply(bytes, noZeroes)
      }))
    })
  })

  it("refuses to encode more information requests than a 16-bit count holds", () => {
    assert.throws(
      () => NbdHandshake.encodeOptionRequest({ _tag: "Go", name: "", requests: new Array(65536).fill(0) }),
      RangeError
    )
  })
})
