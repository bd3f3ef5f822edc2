import { assert, describe, it } from "@effect/vitest"
import { Result } from "effect"
import * as fc from "fast-check"
import { concat } from "../src/internal/bytes.ts"
import { Command, Errno, HandshakeFlags, Info, Option, Reply, ReplyFlags } from "../src/NbdConstants.ts"
import * as NbdHandshake from "../src/NbdHandshake.ts"
import * as NbdStream from "../src/NbdStream.ts"
import * as NbdTransmission from "../src/NbdTransmission.ts"
import { split } from "./utils/chunks.ts"
import { chunk, optionRequest, plain, request } from "./utils/NbdArbitraries.ts"

const ok = <A>(result: Result.Result<A, unknown>): A => Result.getOrThrow(result)
const EMPTY = new Uint8Array(0)

const failure = (result: Result.Result<unknown, { readonly reason: string; readonly offset: number }>) => {
  assert.isTrue(Result.isFailure(result))
  return Result.isFailure(result) ? result.failure : assert.fail("expected a failure")
}

const option = (o: NbdHandshake.OptionRequest) => NbdHandshake.encodeOptionRequest(o)
const reply = (r: NbdHandshake.OptionReply) => NbdHandshake.encodeOptionReply(r)

const req = (type: number, cookie: bigint, offset: number, length: number, data = EMPTY): NbdTransmission.Request => ({
  _tag: "Request",
  flags: 0,
  type,
  cookie,
  offset,
  length,
  data
})

/** Feeds the parts to a server parser, resuming into `resumeWith` whenever it holds. */
const serverParse = (
  parts: ReadonlyArray<Uint8Array>,
  resumeWith: "Options" | "Transmission",
  options?: NbdStream.ServerParserOptions
) => {
  const parser = NbdStream.makeServerParser(options)
  const out: Array<NbdStream.ClientMessage> = []
  for (const part of parts) {
    out.push(...ok(parser.push(part)))
    if (parser.phase() === "Held") out.push(...ok(parser.resume(resumeWith)))
  }
  assert.isTrue(Result.isSuccess(parser.end()))
  return out
}

const clientParse = (parts: ReadonlyArray<Uint8Array>, options: NbdStream.ClientParserOptions) => {
  const parser = NbdStream.makeClientParser(options)
  const out: Array<NbdStream.ServerMessage> = []
  for (const part of parts) out.push(...ok(parser.push(part)))
  assert.isTrue(Result.isSuccess(parser.end()))
  return { out, parser }
}

const writeHeader = (length: number) =>
  NbdTransmission.encodeRequestHeader({ flags: 0, type: Command.WRITE, cookie: 9n, offset: 0, length })

const encodeServer = (m: NbdStream.ServerMessage): Uint8Array => {
  switch (m._tag) {
    case "Greeting":
      return NbdHandshake.encodeGreeting(m.handshakeFlags)
    case "ExportNameReply":
      return NbdHandshake.encodeExportNameReply(m, false)
    case "SimpleReply":
      return NbdTransmission.encodeSimpleReply(m)
    case "Ack":
    case "Server":
    case "ExportInfo":
    case "MetaContext":
    case "OptionError":
    case "UnknownReply":
      return reply(m)
    default:
      return NbdTransmission.encodeChunk(m)
  }
}

describe("NbdStream", () => {
  describe("server side", () => {
    const go: NbdHandshake.OptionRequest = { _tag: "Go", name: "disk", requests: [Info.BLOCK_SIZE] }
    const optionsPart: ReadonlyArray<NbdHandshake.OptionRequest> = [
      { _tag: "List" },
      { _tag: "StructuredReply" },
      { _tag: "SetMetaContext", name: "disk", queries: ["base:allocation"] },
      go
    ]
    const data = Uint8Array.from({ length: 1000 }, (_, i) => i & 0xff)
    const requests = [
      req(Command.READ, 1n, 0, 4096),
      req(Command.WRITE, 0xffff_ffff_ffff_ffffn, 4096, data.length, data),
      req(Command.BLOCK_STATUS, 2n, 0, 1 << 20),
      req(Command.FLUSH, 3n, 0, 0),
      req(Command.DISC, 4n, 0, 0)
    ]
    const stream = concat([
      NbdHandshake.encodeClientFlags(1),
      ...optionsPart.map(option),
      ...requests.map(NbdTransmission.encodeRequest)
    ])
    const expected = [
      { _tag: "ClientFlags", flags: 1 },
      ...optionsPart.map((o) => {
        const bytes = option(o)
        return { _tag: "Option", option: NbdHandshake.optionOf(o), data: bytes.subarray(16) }
      }),
      ...requests
    ]

    it("parses a whole conversation the same at any chunk boundaries", () => {
      assert.deepStrictEqual(plain(serverParse([stream], "Transmission")), plain(expected))
      fc.assert(fc.property(fc.array(fc.nat(), { maxLength: 40 }), (cuts) => {
        assert.deepStrictEqual(plain(serverParse(split(stream, cuts), "Transmission")), plain(expected))
      }))
    })

    it("option frames decode with NbdHandshake.decodeOptionData", () => {
      const messages = serverParse([stream], "Transmission")
      const decoded = messages.filter((m) => m._tag === "Option").map((m) =>
        ok(NbdHandshake.decodeOptionData(m.option, m.data))
      )
      assert.deepStrictEqual(decoded, optionsPart)
    })

    it("holds the bytes after GO until the server says which phase follows", () => {
      const parser = NbdStream.makeServerParser({ initialPhase: "Options" })
      const after = NbdTransmission.encodeRequest(requests[0]!)
      const first = ok(parser.push(concat([option(go), after])))
      assert.strictEqual(first.length, 1)
      assert.strictEqual(parser.phase(), "Held")
      assert.strictEqual(parser.buffered(), after.length)
      assert.deepStrictEqual(ok(parser.push(EMPTY)), [])
      assert.deepStrictEqual(plain(ok(parser.resume("Transmission"))), plain([requests[0]]))
      assert.strictEqual(parser.phase(), "Transmission")
    })

    it("goes back to options when GO failed, and straight to transmission after EXPORT_NAME", () => {
      const parser = NbdStream.makeServerParser({ initialPhase: "Options" })
      ok(parser.push(option(go)))
      assert.strictEqual(parser.phase(), "Held")
      assert.deepStrictEqual(ok(parser.resume("Options")), [])
      const messages = ok(
        parser.push(concat([option({ _tag: "ExportName", name: "" }), NbdTransmission.encodeRequest(requests[3]!)]))
      )
      assert.deepStrictEqual(
        plain(messages),
        plain([{ _tag: "Option", option: Option.EXPORT_NAME, data: EMPTY }, requests[3]])
      )
      assert.strictEqual(parser.phase(), "Transmission")
    })

    it("holds after STARTTLS too", () => {
      const parser = NbdStream.makeServerParser({ initialPhase: "Options" })
      ok(parser.push(option({ _tag: "StartTls" })))
      assert.strictEqual(parser.phase(), "Held")
      assert.isTrue(Result.isSuccess(parser.end()))
    })

    it("hands out WRITE data as a view of the pushed chunk", () => {
      const bytes = NbdTransmission.encodeRequest(requests[1]!)
      const [message] = ok(NbdStream.makeServerParser({ initialPhase: "Transmission" }).push(bytes))
      assert.strictEqual(message?._tag, "Request")
      if (message?._tag === "Request") {
        assert.strictEqual(message.data.buffer, bytes.buffer)
        assert.strictEqual(message.data.byteOffset, bytes.byteOffset + 28)
        assert.strictEqual(message.data.length, data.length)
      }
    })

    it("caps option data before buffering it (default 64 KiB)", () => {
      const parser = NbdStream.makeServerParser({ initialPhase: "Options" })
      const header = new Uint8Array(16)
      NbdHandshake.encodeOptionHeaderInto(header, 0, Option.GO, 64 * 1024 + 1)
      const error = failure(parser.push(header))
      assert.strictEqual(error.offset, 12)
      assert.match(error.reason, /option data length 65537 exceeds the maximum of 65536/)
      assert.isTrue(Result.isFailure(parser.push(EMPTY)))

      const small = NbdStream.makeServerParser({ initialPhase: "Options", maxOptionLength: 8 })
      assert.strictEqual(ok(small.push(option({ _tag: "ExportName", name: "12345678" }))).length, 1)
      const big = NbdStream.makeServerParser({ initialPhase: "Options", maxOptionLength: 8 })
      assert.isTrue(Result.isFailure(big.push(option({ _tag: "ExportName", name: "123456789" }).subarray(0, 16))))
    })

    it("caps WRITE data before buffering it (default 32 MiB)", () => {
      const parser = NbdStream.makeServerParser({ initialPhase: "Transmission" })
      const prefix = NbdTransmission.encodeRequest(requests[0]!)
      assert.strictEqual(ok(parser.push(concat([prefix, writeHeader(32 * 1024 * 1024 + 1)]))).length, 1)
      const error = failure(parser.push(EMPTY))
      assert.strictEqual(error.offset, prefix.length + 24)
      assert.match(error.reason, /write length 33554433 exceeds the maximum of 33554432/)

      const exactly = NbdStream.makeServerParser({ initialPhase: "Transmission" })
      assert.deepStrictEqual(ok(exactly.push(writeHeader(32 * 1024 * 1024))), [])
      assert.strictEqual(exactly.buffered(), 28)

      const small = NbdStream.makeServerParser({ initialPhase: "Transmission", maxWriteLength: 100 })
      const atCap = req(Command.WRITE, 1n, 0, 100, new Uint8Array(100))
      assert.strictEqual(ok(small.push(NbdTransmission.encodeRequest(atCap))).length, 1)
      assert.isTrue(Result.isFailure(small.push(writeHeader(101))))
      // A READ's length is not a payload: no cap applies.
      const read = NbdStream.makeServerParser({ initialPhase: "Transmission", maxWriteLength: 100 })
      assert.strictEqual(ok(read.push(NbdTransmission.encodeRequest(req(Command.READ, 1n, 0, 0xffff_ffff)))).length, 1)
    })

    it("delivers the messages ahead of a bad one, then fails at its stream offset and stays failed", () => {
      const parser = NbdStream.makeServerParser()
      const good = concat([NbdHandshake.encodeClientFlags(1), option({ _tag: "List" })])
      const result = ok(parser.push(concat([good, new Uint8Array(16)])))
      assert.strictEqual(result.length, 2)
      const error = failure(parser.push(EMPTY))
      assert.strictEqual(error.offset, good.length)
      assert.match(error.reason, /magic/)
      assert.isTrue(Result.isFailure(parser.push(option({ _tag: "List" }))))
      assert.isTrue(Result.isFailure(parser.end()))
    })

    it("reports a request offset above 2^53 - 1 and a stream that ends inside a request", () => {
      const far = NbdTransmission.encodeRequestHeader({ flags: 0, type: 0, cookie: 1n, offset: 0, length: 0 })
      far[16] = 0xff
      assert.strictEqual(failure(NbdStream.makeServerParser({ initialPhase: "Transmission" }).push(far)).offset, 16)
      const parser = NbdStream.makeServerParser({ initialPhase: "Transmission" })
      ok(parser.push(NbdTransmission.encodeRequest(requests[1]!).subarray(0, 40)))
      assert.match(failure(parser.end()).reason, /stream ended inside a request/)
    })

    it("random requests and options parse the same at any boundaries", () => {
      fc.assert(fc.property(
        fc.array(optionRequest.filter((o) => o._tag !== "ExportName" && o._tag !== "Go" && o._tag !== "StartTls"), {
          maxLength: 5
        }),
        fc.array(request(200), { maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        (options, sent, cuts) => {
          const bytes = concat([
            NbdHandshake.encodeClientFlags(3),
            ...options.map(option),
            option({ _tag: "ExportName", name: "x" }),
            ...sent.map(NbdTransmission.encodeRequest)
          ])
          const whole = serverParse([bytes], "Transmission")
          assert.deepStrictEqual(plain(serverParse(split(bytes, cuts), "Transmission")), plain(whole))
          assert.deepStrictEqual(plain(whole.slice(options.length + 2)), plain(sent))
        }
      ))
    })

    it("never throws on random streams, whatever the phase", () => {
      const phase = fc.constantFrom("ClientFlags" as const, "Options" as const, "Transmission" as const)
      fc.assert(
        fc.property(
          phase,
          fc.uint8Array({ maxLength: 300 }),
          fc.array(fc.nat(), { maxLength: 8 }),
          (initialPhase, bytes, cuts) => {
            const parser = NbdStream.makeServerParser({ initialPhase, maxOptionLength: 64, maxWriteLength: 128 })
            for (const part of split(bytes, cuts)) {
              const result = parser.push(part)
              if (Result.isFailure(result)) {
                assert.isTrue(
                  result.failure.offset >= 0 && result.failure.offset < bytes.length
                )
              }
              if (parser.phase() === "Held") parser.resume(bytes.length % 2 === 0 ? "Options" : "Transmission")
            }
            parser.end()
          }
        )
      )
    })
  })

  describe("client side", () => {
    const readData = Uint8Array.from({ length: 700 }, (_, i) => (i * 7) & 0xff)
    const inFlight = new Map<bigint, number>([[10n, readData.length], [11n, 0], [12n, 512], [13n, 0]])
    const readLength = (cookie: bigint) => inFlight.get(cookie)

    const negotiation: ReadonlyArray<NbdStream.ServerMessage> = [
      { _tag: "Greeting", handshakeFlags: HandshakeFlags.FIXED_NEWSTYLE | HandshakeFlags.NO_ZEROES },
      { _tag: "Server", option: Option.LIST, name: "disk", details: "the disk" },
      { _tag: "Ack", option: Option.LIST },
      { _tag: "Ack", option: Option.STRUCTURED_REPLY },
      { _tag: "MetaContext", option: Option.SET_META_CONTEXT, id: 1, name: "base:allocation" },
      { _tag: "Ack", option: Option.SET_META_CONTEXT },
      { _tag: "OptionError", option: Option.GO, type: Reply.ERR_UNKNOWN, message: "no such export" },
      { _tag: "ExportInfo", option: Option.GO, info: { _tag: "Export", size: 1 << 30, transmissionFlags: 1 } },
      {
        _tag: "ExportInfo",
        option: Option.GO,
        info: { _tag: "BlockSize", minimum: 1, preferred: 4096, maximum: 1 << 25 }
      },
      { _tag: "Ack", option: Option.GO }
    ]
    const transmission: ReadonlyArray<NbdStream.ServerMessage> = [
      { _tag: "SimpleReply", error: 0, cookie: 10n, data: readData },
      { _tag: "SimpleReply", error: 0, cookie: 11n, data: EMPTY },
      { _tag: "SimpleReply", error: Errno.EIO, cookie: 12n, data: EMPTY },
      { _tag: "OffsetData", flags: 0, cookie: 13n, offset: 0, data: readData.subarray(0, 300) },
      { _tag: "OffsetHole", flags: 0, cookie: 13n, offset: 300, length: 100 },
      { _tag: "None", flags: ReplyFlags.DONE, cookie: 13n },
      { _tag: "BlockStatus", flags: ReplyFlags.DONE, cookie: 14n, contextId: 1, extents: [{ length: 512, status: 3 }] },
      { _tag: "Error", flags: ReplyFlags.DONE, cookie: 15n, error: Errno.EINVAL, message: "bad" }
    ]
    const stream = concat([...negotiation, ...transmission].map(encodeServer))

    it("parses a whole conversation the same at any chunk boundaries; GO's ACK enters transmission", () => {
      const whole = clientParse([stream], { readLength })
      assert.strictEqual(whole.parser.phase(), "Transmission")
      assert.deepStrictEqual(plain(whole.out), plain([...negotiation, ...transmission]))
      fc.assert(fc.property(fc.array(fc.nat(), { maxLength: 40 }), (cuts) => {
        assert.deepStrictEqual(plain(clientParse(split(stream, cuts), { readLength }).out), plain(whole.out))
      }))
    })

    it("hands out simple READ data and OFFSET_DATA data as views of the pushed chunk", () => {
      const parser = NbdStream.makeClientParser({ readLength, initialPhase: "Transmission" })
      const bytes = concat(transmission.slice(0, 4).map(encodeServer))
      const [read, , , offsetData] = ok(parser.push(bytes))
      assert.isTrue(read?._tag === "SimpleReply" && read.data.buffer === bytes.buffer && read.data.byteOffset === 16)
      assert.isTrue(offsetData?._tag === "OffsetData" && offsetData.data.buffer === bytes.buffer)
    })

    it("NBD_OPT_EXPORT_NAME: the reply has no header, with or without the zeroes", () => {
      for (const noZeroes of [false, true]) {
        const parser = NbdStream.makeClientParser({ readLength, initialPhase: "Options" })
        const answer = NbdHandshake.encodeExportNameReply({ size: 4096, transmissionFlags: 1 }, noZeroes)
        parser.expectExportNameReply(noZeroes)
        assert.strictEqual(parser.phase(), "ExportName")
        const messages = ok(parser.push(concat([answer, encodeServer(transmission[1]!)])))
        assert.deepStrictEqual(
          plain(messages),
          plain([
            { _tag: "ExportNameReply", size: 4096, transmissionFlags: 1 },
            transmission[1]
          ])
        )
      }
    })

    it("holds after STARTTLS's ACK (TLS follows), not after its error", () => {
      const parser = NbdStream.makeClientParser({ readLength, initialPhase: "Options" })
      ok(parser.push(reply({ _tag: "OptionError", option: Option.STARTTLS, type: Reply.ERR_POLICY, message: "" })))
      assert.strictEqual(parser.phase(), "Options")
      ok(parser.push(concat([reply({ _tag: "Ack", option: Option.STARTTLS }), Uint8Array.of(0x16, 3, 1)])))
      assert.strictEqual(parser.phase(), "Held")
      assert.strictEqual(parser.buffered(), 3)
    })

    it("fails on a simple reply to a cookie not in flight", () => {
      const parser = NbdStream.makeClientParser({ readLength, initialPhase: "Transmission" })
      const error = failure(parser.push(NbdTransmission.encodeSimpleReplyHeader(0, 99n)))
      assert.strictEqual(error.offset, 8)
      assert.match(error.reason, /cookie 0x63/)
    })

    it("caps READ data and chunk payloads from the header alone", () => {
      const big = NbdStream.makeClientParser({
        readLength: () => 101,
        maxReadLength: 100,
        initialPhase: "Transmission"
      })
      assert.match(failure(big.push(NbdTransmission.encodeSimpleReplyHeader(0, 1n))).reason, /read length 101/)
      const chunky = NbdStream.makeClientParser({ readLength, maxReadLength: 100, initialPhase: "Transmission" })
      const header = NbdTransmission.encodeOffsetDataHeader(0, 1n, 0, 101)
      const error = failure(chunky.push(header.subarray(0, 20)))
      assert.strictEqual(error.offset, 16)
      assert.match(error.reason, /chunk length 109 exceeds the maximum of 108/)
      const fits = NbdStream.makeClientParser({ readLength, maxReadLength: 100, initialPhase: "Transmission" })
      const at = NbdTransmission.encodeChunk({
        _tag: "OffsetData",
        flags: 1,
        cookie: 1n,
        offset: 0,
        data: new Uint8Array(100)
      })
      assert.strictEqual(ok(fits.push(at)).length, 1)
      const replies = NbdStream.makeClientParser({ readLength, maxOptionLength: 4, initialPhase: "Options" })
      const long = reply({ _tag: "OptionError", option: 1, type: Reply.ERR_INVALID, message: "12345" })
      assert.match(failure(replies.push(long.subarray(0, 20))).reason, /option reply length 5 exceeds the maximum of 4/)
    })

    it("fails on bad magics and bad chunk lengths at their stream offsets", () => {
      const parser = NbdStream.makeClientParser({ readLength, initialPhase: "Transmission" })
      const good = encodeServer(transmission[1]!)
      assert.strictEqual(ok(parser.push(concat([good, Uint8Array.of(1, 2, 3, 4)]))).length, 1)
      assert.strictEqual(failure(parser.push(EMPTY)).offset, good.length)
      const hole = NbdStream.makeClientParser({ readLength, initialPhase: "Transmission" })
      const bad = NbdTransmission.encodeChunkHeader(0, 2, 1n, 13)
      assert.strictEqual(failure(hole.push(bad)).offset, 16)
      const greeting = NbdStream.makeClientParser({ readLength })
      assert.match(failure(greeting.push(new Uint8Array(18))).reason, /NBDMAGIC/)
    })

    it("reports a stream that ends inside a reply's body", () => {
      const parser = NbdStream.makeClientParser({ readLength, initialPhase: "Transmission" })
      ok(parser.push(encodeServer(transmission[0]!).subarray(0, 16)))
      const error = failure(parser.end())
      assert.strictEqual(error.offset, 16)
      assert.match(error.reason, /0 of 700 bytes/)
      const chunkParser = NbdStream.makeClientParser({ readLength, initialPhase: "Transmission" })
      ok(chunkParser.push(encodeServer(transmission[3]!).subarray(0, 25)))
      assert.match(failure(chunkParser.end()).reason, /5 of 308 bytes/)
    })

    it("random chunks parse the same at any boundaries", () => {
      fc.assert(
        fc.property(fc.array(chunk(300), { maxLength: 10 }), fc.array(fc.nat(), { maxLength: 20 }), (chunks, cuts) => {
          const bytes = concat(chunks.map(NbdTransmission.encodeChunk))
          const options = { readLength: () => 0, initialPhase: "Transmission" } as const
          const whole = clientParse([bytes], options).out
          assert.deepStrictEqual(plain(whole), plain(chunks))
          assert.deepStrictEqual(plain(clientParse(split(bytes, cuts), options).out), plain(whole))
        })
      )
    })

    it("never throws on random streams, whatever the phase", () => {
      const phase = fc.constantFrom("Greeting" as const, "Options" as const, "Transmission" as const)
      fc.assert(
        fc.property(
          phase,
          fc.uint8Array({ maxLength: 300 }),
          fc.array(fc.nat(), { maxLength: 8 }),
          (initialPhase, bytes, cuts) => {
            const parser = NbdStream.makeClientParser({
              initialPhase,
              maxOptionLength: 64,
              maxReadLength: 128,
              readLength: (cookie) => cookie % 3n === 0n ? undefined : Number(cookie % 200n)
            })
            for (const part of split(bytes, cuts)) {
              const result = parser.push(part)
              if (Result.isFailure(result)) {
                assert.isTrue(
                  result.failure.offset >= 0 && result.failure.offset < bytes.length
                )
              }
            }
            parser.end()
          }
        )
      )
    })
  })
})
