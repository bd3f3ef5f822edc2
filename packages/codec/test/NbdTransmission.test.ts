import { assert, describe, it } from "@effect/vitest"
import { Result } from "effect"
import * as fc from "fast-check"
import type { DecodeError } from "../src/DecodeError.ts"
import * as Bytes from "../src/internal/bytes.ts"
import { ChunkType, Command, CommandFlags, Errno, ReplyFlags, StateFlags } from "../src/NbdConstants.ts"
import * as NbdTransmission from "../src/NbdTransmission.ts"
import { assertHex, chunk, cookie, fromHex, plain, request, simpleReply, toHex } from "./utils/NbdArbitraries.ts"

const COOKIE = 0x0102_0304_0506_0708n
const COOKIE_HEX = "0102030405060708"

const ok = <A>(result: Result.Result<A, unknown>): A => Result.getOrThrow(result)

const failure = (result: Result.Result<unknown, { readonly reason: string; readonly offset: number }>) => {
  assert.isTrue(Result.isFailure(result))
  return Result.isFailure(result) ? result.failure : assert.fail("expected a failure")
}

const chunkHeaderOf = (type: string, length: string) =>
  NbdTransmission.decodeChunkHeader(fromHex("668e33ef 0001", type, COOKIE_HEX, length))

const chunkOf = (type: string, payload: string) => {
  const body = fromHex(payload)
  return NbdTransmission.decodeChunk(
    fromHex("668e33ef 0001", type, COOKIE_HEX, body.length.toString(16).padStart(8, "0"), payload)
  )
}

describe("NbdTransmission", () => {
  describe("the spec's byte layouts", () => {
    it("READ request: magic, flags, type, cookie, offset, length; no data", () => {
      const header = { flags: 0, type: Command.READ, cookie: COOKIE, offset: 4096, length: 512 }
      const bytes = NbdTransmission.encodeRequestHeader(header)
      assertHex(toHex(bytes), "25609513 0000 0000" + COOKIE_HEX + "0000000000001000 00000200")
      assert.deepStrictEqual(ok(NbdTransmission.decodeRequestHeader(bytes)), header)
      assertHex(toHex(NbdTransmission.encodeRequest({ ...header, data: new Uint8Array(0) })), toHex(bytes))
      assert.deepStrictEqual(ok(NbdTransmission.decodeRequest(bytes)), {
        _tag: "Request",
        ...header,
        data: new Uint8Array(0)
      })
    })

    it("WRITE request: the header, then length bytes of data, decoded as a view", () => {
      const data = Uint8Array.of(0xde, 0xad, 0xbe, 0xef)
      const bytes = NbdTransmission.encodeRequest({
        flags: CommandFlags.FUA,
        type: Command.WRITE,
        cookie: COOKIE,
        offset: 0x1_0000_0000,
        length: 4,
        data
      })
      assertHex(
        toHex(bytes),
        "25609513 0001 0001" + COOKIE_HEX + "0000000100000000 00000004 deadbeef"
      )
      const decoded = ok(NbdTransmission.decodeRequest(bytes))
      assert.deepStrictEqual(Array.from(decoded.data), Array.from(data))
      assert.strictEqual(decoded.data.buffer, bytes.buffer)
      assert.strictEqual(decoded.data.byteOffset, bytes.byteOffset + 28)
    })

    it("requests: bad magic, short, wrong data length, offset above 2^53 - 1", () => {
      assert.match(failure(NbdTransmission.decodeRequest(new Uint8Array(28))).reason, /magic/)
      assert.isTrue(Result.isFailure(NbdTransmission.decodeRequest(new Uint8Array(27))))
      const write = fromHex("25609513 0000 0001", COOKIE_HEX, "0000000000000000 00000004 aabbcc")
      assert.strictEqual(failure(NbdTransmission.decodeRequest(write)).offset, 28)
      const read = fromHex("25609513 0000 0000", COOKIE_HEX, "0000000000000000 00000004 aa")
      assert.strictEqual(failure(NbdTransmission.decodeRequest(read)).offset, 28)
      const far = fromHex("25609513 0000 0000", COOKIE_HEX, "0020000000000000 00000200")
      const error = failure(NbdTransmission.decodeRequest(far))
      assert.strictEqual(error.offset, 16)
      assert.match(error.reason, /2\^53/)
      assert.strictEqual(failure(NbdTransmission.decodeRequestHeader(far)).offset, 16)
      // The largest safe offset is fine.
      const max = fromHex("25609513 0000 0000", COOKIE_HEX, "001fffffffffffff 00000200")
      assert.strictEqual(ok(NbdTransmission.decodeRequest(max)).offset, Number.MAX_SAFE_INTEGER)
    })

    it("unknown command types and flags decode unchanged (the server answers EINVAL)", () => {
      const bytes = fromHex("25609513 8000 1234", COOKIE_HEX, "0000000000000000 00000010")
      const decoded = ok(NbdTransmission.decodeRequest(bytes))
      assert.strictEqual(decoded.type, 0x1234)
      assert.strictEqual(decoded.flags, 0x8000)
      assert.strictEqual(decoded.data.length, 0)
    })

    it("refuses to encode data that does not match the command", () => {
      const header = { flags: 0, cookie: 1n, offset: 0, length: 2 }
      assert.throws(
        () => NbdTransmission.encodeRequest({ ...header, type: Command.WRITE, data: new Uint8Array(1) }),
        RangeError
      )
      assert.throws(
        () => NbdTransmission.encodeRequest({ ...header, type: Command.READ, data: new Uint8Array(2) }),
        RangeError
      )
    })

    it("simple reply: magic, error, cookie, then the READ's data when error is 0", () => {
      const header = NbdTransmission.encodeSimpleReplyHeader(0, COOKIE)
      assertHex(toHex(header), "67446698 00000000" + COOKIE_HEX)
      const data = Uint8Array.of(1, 2, 3)
      const whole = NbdTransmission.encodeSimpleReply({ error: 0, cookie: COOKIE, data })
      assertHex(toHex(whole), toHex(header) + "010203")
      const decoded = ok(NbdTransmission.decodeSimpleReply(whole, 3))
      assert.deepStrictEqual(plain(decoded), plain({ _tag: "SimpleReply", error: 0, cookie: COOKIE, data }))
      assert.strictEqual(decoded.data.buffer, whole.buffer)
      const failed = NbdTransmission.encodeSimpleReply({ error: Errno.EIO, cookie: COOKIE, data: new Uint8Array(0) })
      assertHex(toHex(failed), "67446698 00000005" + COOKIE_HEX)
      // An error reply to a READ carries no data.
      assert.strictEqual(ok(NbdTransmission.decodeSimpleReply(failed, 3)).data.length, 0)
      assert.isTrue(Result.isFailure(NbdTransmission.decodeSimpleReply(header, 3)))
      assert.match(failure(NbdTransmission.decodeSimpleReplyHeader(new Uint8Array(16))).reason, /magic/)
      assert.throws(() => NbdTransmission.encodeSimpleReply({ error: 5, cookie: 1n, data: data }), RangeError)
    })

    it("writes headers into a slab at any offset", () => {
      const slab = new Uint8Array(80).fill(0xee)
      NbdTransmission.encodeSimpleReplyHeaderInto(slab, 3, 22, COOKIE)
      NbdTransmission.encodeOffsetDataHeaderInto(slab, 19, ReplyFlags.DONE, COOKIE, 512, 4096)
      NbdTransmission.encodeRequestHeaderInto(slab, 47, { flags: 0, type: 3, cookie: 0n, offset: 0, length: 0 })
      assert.strictEqual(slab[2], 0xee)
      assertHex(toHex(slab.subarray(3, 19)), "67446698 00000016" + COOKIE_HEX)
      assertHex(
        toHex(slab.subarray(19, 47)),
        "668e33ef 0001 0001" + COOKIE_HEX + "00001008 0000000000000200"
      )
      assertHex(toHex(slab.subarray(47, 75)), "25609513 0000 0003" + "00".repeat(20))
      assert.strictEqual(slab[75], 0xee)
      assertHex(
        toHex(NbdTransmission.encodeOffsetDataHeader(ReplyFlags.DONE, COOKIE, 512, 4096)),
        toHex(slab.subarray(19, 47))
      )
    })

    it("structured chunks: every payload layout", () => {
      const done = ReplyFlags.DONE
      const cases: ReadonlyArray<readonly [NbdTransmission.Chunk, string]> = [
        [{ _tag: "None", flags: done, cookie: COOKIE }, "0001 0000" + COOKIE_HEX + "00000000"],
        [
          { _tag: "OffsetData", flags: 0, cookie: COOKIE, offset: 4096, data: Uint8Array.of(0xde, 0xad, 0xbe, 0xef) },
          "0000 0001" + COOKIE_HEX + "0000000c 0000000000001000 deadbeef"
        ],
        [
          { _tag: "OffsetHole", flags: done, cookie: COOKIE, offset: 8192, length: 4096 },
          "0001 0002" + COOKIE_HEX + "0000000c 0000000000002000 00001000"
        ],
        [
          {
            _tag: "BlockStatus",
            flags: done,
            cookie: COOKIE,
            contextId: 1,
            extents: [{ length: 4096, status: 0 }, { length: 8192, status: StateFlags.HOLE | StateFlags.ZERO }]
          },
          "0001 0005" + COOKIE_HEX + "00000014 00000001 00001000 00000000 00002000 00000003"
        ],
        [
          { _tag: "Error", flags: done, cookie: COOKIE, error: Errno.EIO, message: "bad" },
          "0001 8001" + COOKIE_HEX + "00000009 00000005 0003 626164"
        ],
        [
          { _tag: "ErrorOffset", flags: 0, cookie: COOKIE, error: Errno.EIO, message: "", offset: 1024 },
          "0000 8002" + COOKIE_HEX + "0000000e 00000005 0000 0000000000000400"
        ],
        [
          {
            _tag: "UnknownErrorChunk",
            flags: 0,
            cookie: COOKIE,
            type: 0x8009,
            error: 1,
            message: "x",
            rest: Uint8Array.of(7)
          },
          "0000 8009" + COOKIE_HEX + "00000008 00000001 0001 78 07"
        ],
        [
          { _tag: "UnknownChunk", flags: 0, cookie: COOKIE, type: 3, payload: Uint8Array.of(9) },
          "0000 0003" + COOKIE_HEX + "00000001 09"
        ]
      ]
      for (const [value, hex] of cases) {
        const bytes = NbdTransmission.encodeChunk(value)
        assertHex(toHex(bytes), "668e33ef" + hex.replace(/ /g, ""))
        assert.deepStrictEqual(plain(ok(NbdTransmission.decodeChunk(bytes))), plain(value))
        assert.strictEqual(NbdTransmission.isDone(value), (value.flags & 1) === 1)
      }
    })

    it("chunk lengths that cannot fit the type are refused from the header", () => {
      for (
        const [type, length] of [
          ["0000", "00000001"],
          ["0001", "00000008"],
          ["0002", "0000000b"],
          ["0005", "00000004"],
          ["0005", "00000010"],
          ["8001", "00000005"],
          ["8002", "0000000d"],
          ["8123", "00000005"]
        ] as const
      ) {
        assert.strictEqual(failure(chunkHeaderOf(type, length)).offset, 16, `${type} ${length}`)
      }
      assert.isTrue(Result.isSuccess(chunkHeaderOf("0003", "00000000")))
      assert.match(failure(NbdTransmission.decodeChunkHeader(new Uint8Array(20))).reason, /magic/)
    })

    it("error chunks: the message must fit, and ERROR / ERROR_OFFSET must be filled exactly", () => {
      assert.strictEqual(failure(chunkOf("8001", "00000005 0004 626164")).offset, 24)
      assert.strictEqual(failure(chunkOf("8001", "00000005 0002 626164")).offset, 24)
      assert.strictEqual(failure(chunkOf("8002", "00000005 0001 6162 0000000000000000")).offset, 24)
      assert.strictEqual(failure(chunkOf("8007", "00000005 0004 626164")).offset, 24)
      assert.strictEqual(ok(chunkOf("8007", "00000005 0002 626164"))._tag, "UnknownErrorChunk")
      assert.match(failure(chunkOf("0001", "0020000000000000 00")).reason, /2\^53/)
      assert.match(failure(chunkOf("8002", "00000005 0000 0020000000000000")).reason, /2\^53/)
    })

    it("decodeChunkPayload reports offsets within the payload", () => {
      const header = { flags: 0, type: ChunkType.ERROR, cookie: 1n, length: 7 }
      assert.strictEqual(failure(NbdTransmission.decodeChunkPayload(header, fromHex("00000001 0002 61"))).offset, 4)
      assert.isTrue(Result.isFailure(NbdTransmission.decodeChunkPayload(header, new Uint8Array(6))))
    })

    it("refuses to encode chunks the layout cannot carry", () => {
      assert.throws(
        () =>
          NbdTransmission.encodeChunk({ _tag: "OffsetData", flags: 0, cookie: 1n, offset: 0, data: new Uint8Array(0) }),
        RangeError
      )
      assert.throws(
        () => NbdTransmission.encodeChunk({ _tag: "BlockStatus", flags: 0, cookie: 1n, contextId: 0, extents: [] }),
        RangeError
      )
      assert.throws(
        () =>
          NbdTransmission.encodeChunk({ _tag: "Error", flags: 0, cookie: 1n, error: 5, message: "x".repeat(65536) }),
        RangeError
      )
    })
  })

  describe("properties", () => {
    it("cookies are any 8 bytes, echoed exactly", () => {
      fc.assert(fc.property(cookie, fc.uint8Array({ minLength: 8, maxLength: 8 }), (value, raw) => {
        const buffer = new Uint8Array(8)
        Bytes.putU64beBig(buffer, 0, value)
        assert.strictEqual(Bytes.u64beBig(buffer, 0), value)
        assert.strictEqual(new DataView(buffer.buffer).getBigUint64(0), value)
        const read = Bytes.u64beBig(raw, 0)
        Bytes.putU64beBig(buffer, 0, read)
        assertHex(toHex(buffer), toHex(raw))
      }))
    })

    it("requests round-trip", () => {
      fc.assert(fc.property(request(), (value) => {
        const bytes = NbdTransmission.encodeRequest(value)
        const decoded = ok(NbdTransmission.decodeRequest(bytes))
        assert.deepStrictEqual(plain(decoded), plain(value))
        assertHex(toHex(NbdTransmission.encodeRequest(decoded)), toHex(bytes))
      }))
    })

    it("simple replies round-trip", () => {
      fc.assert(fc.property(simpleReply(), (value) => {
        const bytes = NbdTransmission.encodeSimpleReply(value)
        const decoded = ok(NbdTransmission.decodeSimpleReply(bytes, value.data.length))
        assert.deepStrictEqual(plain(decoded), plain(value))
      }))
    })

    it("chunks round-trip", () => {
      fc.assert(fc.property(chunk(), (value) => {
        const bytes = NbdTransmission.encodeChunk(value)
        const decoded = ok(NbdTransmission.decodeChunk(bytes))
        assert.deepStrictEqual(plain(decoded), plain(value))
        assert.strictEqual(NbdTransmission.chunkTypeOf(decoded), NbdTransmission.chunkTypeOf(value))
      }))
    })

    it("random bytes never throw; what decodes re-encodes to something that decodes the same", () => {
      const chunkLike = fc.tuple(
        fc.integer({ min: 0, max: 0xffff }),
        fc.integer({ min: 0, max: 0xffff }),
        fc.uint8Array({ maxLength: 60 })
      )
        .map(([flags, type, payload]) =>
          NbdTransmission.encodeChunk({ _tag: "UnknownChunk", flags, cookie: 7n, type, payload })
        )
      fc.assert(
        fc.property(
          fc.oneof(fc.uint8Array({ maxLength: 100 }), chunkLike),
          fc.nat({ max: 64 }),
          (bytes, readLength) => {
            const c = NbdTransmission.decodeChunk(bytes)
            if (Result.isSuccess(c)) {
              assert.deepStrictEqual(
                plain(ok(NbdTransmission.decodeChunk(NbdTransmission.encodeChunk(c.success)))),
                plain(c.success)
              )
            }
            const r = NbdTransmission.decodeRequest(bytes)
            if (Result.isSuccess(r)) assertHex(toHex(NbdTransmission.encodeRequest(r.success)), toHex(bytes))
            const s = NbdTransmission.decodeSimpleReply(bytes, readLength)
            if (Result.isSuccess(s)) {
              assertHex(
                toHex(NbdTransmission.encodeSimpleReply(s.success)),
                toHex(bytes)
              )
            }
            NbdTransmission.decodeRequestHeader(bytes)
            NbdTransmission.decodeSimpleReplyHeader(bytes)
            NbdTransmission.decodeChunkHeader(bytes)
          }
        )
      )
    })

    it("mutated messages never throw and fail inside the message", () => {
      const mutation = fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 })
      fc.assert(fc.property(request(), chunk(), mutation, (r, c, changes) => {
        const requestBytes = NbdTransmission.encodeRequest(r)
        const chunkBytes = NbdTransmission.encodeChunk(c)
        for (const bytes of [requestBytes, chunkBytes]) {
          for (const [at, value] of changes) bytes[at % bytes.length] = value
        }
        const results: ReadonlyArray<readonly [Result.Result<unknown, DecodeError>, number]> = [
          [NbdTransmission.decodeRequest(requestBytes), requestBytes.length],
          [NbdTransmission.decodeChunk(chunkBytes), chunkBytes.length]
        ]
        for (const [result, size] of results) {
          if (Result.isFailure(result)) assert.isTrue(result.failure.offset >= 0 && result.failure.offset <= size)
        }
        const decoded = NbdTransmission.decodeChunk(chunkBytes)
        if (Result.isSuccess(decoded)) {
          assert.deepStrictEqual(
            plain(ok(NbdTransmission.decodeChunk(NbdTransmission.encodeChunk(decoded.success)))),
            plain(decoded.success)
          )
        }
      }))
    })
  })
})
