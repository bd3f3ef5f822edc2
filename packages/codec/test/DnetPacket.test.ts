import { assert, describe, it } from "@effect/vitest"
import { Result } from "effect"
import fc from "fast-check"
import type { DecodeError } from "../src/DecodeError.ts"
import { CmdFlags, Command, IoFlags, TRANS_REPLY } from "../src/DnetConstants.ts"
import * as DnetPacket from "../src/DnetPacket.ts"
import * as DnetStructs from "../src/DnetStructs.ts"
import { split } from "./utils/chunks.ts"
import * as Arb from "./utils/DnetArbitraries.ts"

const { io, key } = Arb
const id: DnetStructs.Id = { id: key, groupId: 2, type: 0 }

const decodeOk = (bytes: Uint8Array): DnetPacket.Packet => {
  const result = DnetPacket.decodePacket(bytes)
  if (Result.isFailure(result)) assert.fail(result.failure.message)
  return result.success
}

const decodeErr = (bytes: Uint8Array): DecodeError => {
  const result = DnetPacket.decodePacket(bytes)
  if (Result.isSuccess(result)) assert.fail("expected a decode failure")
  return result.failure
}

/** A raw header: `dnet_cmd` with the given size field, written at the spec offsets. */
const rawHeader = (size: bigint, total = 96): Uint8Array => {
  const bytes = new Uint8Array(total)
  new DataView(bytes.buffer).setBigUint64(88, size, true)
  return bytes
}

describe("DnetPacket layout", () => {
  it("a WRITE request is cmd + attr + io_attr + data at the spec offsets", () => {
    const data = new TextEncoder().encode("hello")
    const bytes = new Uint8Array(96 + 24 + 168 + 5)
    const dv = new DataView(bytes.buffer)
    bytes.set(key, 0)
    dv.setUint32(64, 2, true)
    dv.setUint32(72, CmdFlags.NEED_ACK, true)
    dv.setBigUint64(80, 7n, true)
    dv.setBigUint64(88, 24n + 168n + 5n, true)
    dv.setBigUint64(96, 168n + 5n, true)
    dv.setUint32(104, Command.WRITE, true)
    bytes.set(key, 120 + 64)
    dv.setUint32(120 + 148, IoFlags.APPEND, true)
    dv.setBigUint64(120 + 152, 10n, true)
    dv.setBigUint64(120 + 160, 5n, true)
    bytes.set(data, 288)

    const packet = decodeOk(bytes)
    assert.deepStrictEqual(packet, {
      id,
      flags: CmdFlags.NEED_ACK,
      status: 0,
      trans: 7n,
      attrs: [{ cmd: Command.WRITE, flags: 0, io: io({ flags: IoFlags.APPEND, offset: 10, size: 5 }), data }]
    })
    assert.strictEqual(packet.attrs[0]!.data.buffer, bytes.buffer, "data is a view")
    assert.strictEqual(DnetPacket.name(packet), "WRITE")
    assert.deepStrictEqual(DnetPacket.encodePacket(packet), bytes)
  })

  it("cmd.size is the sum of 24 + attr.size over several attributes", () => {
    const packet: DnetPacket.Packet = {
      id,
      flags: 0,
      status: 0,
      trans: 1n,
      attrs: [
        { cmd: Command.STAT, flags: 0, data: new Uint8Array(0) },
        { cmd: Command.READ, flags: 0, io: io({ size: 100 }), data: new Uint8Array(0) },
        { cmd: Command.STATUS, flags: 1, data: new Uint8Array(12) }
      ]
    }
    const bytes = DnetPacket.encodePacket(packet)
    assert.strictEqual(DnetPacket.payloadSize(packet), 24 + (24 + 168) + (24 + 12))
    assert.strictEqual(bytes.length, 96 + DnetPacket.payloadSize(packet))
    assert.deepStrictEqual(decodeOk(bytes), packet)
  })

  it("a READ request with NEED_ACK is answered by a MORE reply with the data, then an ACK (§3.2)", () => {
    const request: DnetPacket.Packet = {
      id,
      flags: CmdFlags.NEED_ACK,
      status: 0,
      trans: 42n,
      attrs: [{ cmd: Command.READ, flags: 0, io: io({ offset: 3 }), data: new Uint8Array(0) }]
    }
    const found = new TextEncoder().encode("210")
    const reply: DnetPacket.Packet = {
      id,
      flags: CmdFlags.MORE,
      status: 0,
      trans: request.trans | TRANS_REPLY,
      attrs: [{ cmd: Command.READ, flags: 0, io: io({ offset: 3, size: found.length }), data: found }]
    }
    const ack = DnetPacket.ack(request, 0)
    const replyBytes = DnetPacket.encodePacket(reply)
    const ackBytes = DnetPacket.encodePacket(ack)

    // reply: size = 24 + attr.size, attr.size = 168 + io.size
    const dv = new DataView(replyBytes.buffer)
    assert.strictEqual(dv.getBigUint64(88, true), 24n + 168n + 3n)
    assert.strictEqual(dv.getBigUint64(96, true), 168n + 3n)
    assert.strictEqual(dv.getBigUint64(80, true), 42n | TRANS_REPLY)
    // ACK: a bare header
    assert.strictEqual(ackBytes.length, 96)
    assert.deepStrictEqual(ack, { id, flags: 0, status: 0, trans: 42n | TRANS_REPLY, attrs: [] })
    assert.strictEqual(DnetPacket.name(ack), "ACK")
    assert.isTrue(DnetPacket.isReply(ack))
    assert.strictEqual(DnetPacket.transaction(ack), 42n)

    const parser = DnetPacket.makeParser()
    const stream = new Uint8Array([...replyBytes, ...ackBytes])
    const parsed = Result.getOrThrow(parser.push(stream))
    assert.deepStrictEqual(parsed.map((p) => [p.offset, DnetPacket.name(p.packet), p.packet.flags]), [
      [0, "READ", CmdFlags.MORE],
      [replyBytes.length, "ACK", 0]
    ])
  })

  it("an ACK keeps the request's other flags and carries the error status (§3.1)", () => {
    const request: DnetPacket.Packet = {
      id,
      flags: CmdFlags.NEED_ACK | CmdFlags.MORE | CmdFlags.DIRECT | CmdFlags.NOLOCK,
      status: 0,
      trans: 9n,
      attrs: [{ cmd: Command.DEL, flags: 0, data: new Uint8Array(0) }]
    }
    const ack = DnetPacket.ack(request, -2)
    assert.strictEqual(ack.flags, CmdFlags.DIRECT | CmdFlags.NOLOCK)
    assert.strictEqual(ack.status, -2)
    assert.strictEqual(ack.trans, 9n | TRANS_REPLY)
    assert.deepStrictEqual(decodeOk(DnetPacket.encodePacket(ack)), ack)
    assert.strictEqual(DnetPacket.name({ ...ack, trans: 9n }), "EMPTY")
  })

  it("a REVERSE_LOOKUP reply is a 160-byte dnet_addr_cmd followed by the node's raw IDs", () => {
    const addrAttr = DnetStructs.AddrAttr.encode({
      sockType: 1,
      family: 2,
      proto: 6,
      addr: { addr: new Uint8Array([2, 0, 4, 1, 127, 0, 0, 1]), addrLen: 16 }
    })
    const ids = new Uint8Array(3 * 64).fill(0xab)
    const reply: DnetPacket.Packet = {
      id,
      flags: 0,
      status: 0,
      trans: 1n | TRANS_REPLY,
      attrs: [{ cmd: Command.REVERSE_LOOKUP, flags: 0, data: new Uint8Array([...addrAttr, ...ids]) }]
    }
    const bytes = DnetPacket.encodePacket(reply)
    assert.strictEqual(bytes.length, 160 + 3 * 64)
    const decoded = Result.getOrThrow(DnetStructs.AddrAttr.decode(bytes, 96 + 24))
    assert.strictEqual(decoded.addr.addrLen, 16)
  })

  it("isIoCommand holds for the commands that carry a dnet_io_attr", () => {
    const ioCommands: ReadonlyArray<number> = [
      Command.WRITE,
      Command.READ,
      Command.READ_RANGE,
      Command.DEL_RANGE,
      Command.BULK_READ
    ]
    const all = Array.from({ length: 20 }, (_, cmd) => cmd)
    assert.deepStrictEqual(all.filter(DnetPacket.isIoCommand), ioCommands)
    // In replies too, but for WRITE, whose reply is the stored object's addr_attr + file_info (§1.7).
    assert.deepStrictEqual(all.filter((cmd) => DnetPacket.carriesIoAttr(cmd, false)), ioCommands)
    assert.deepStrictEqual(
      all.filter((cmd) => DnetPacket.carriesIoAttr(cmd, true)),
      ioCommands.filter((cmd) => cmd !== Command.WRITE)
    )
  })

  it("a WRITE reply decodes as addr_attr + file_info, with no dnet_io_attr; a WRITE request keeps its own", () => {
    const stored = new Uint8Array(DnetStructs.AddrAttr.size + DnetStructs.FileInfo.size).map((_, i) => i & 0xff)
    const request: DnetPacket.Packet = {
      id: { id: new Uint8Array(64).fill(7), groupId: 2, type: 0 },
      flags: 0,
      status: 0,
      trans: 9n,
      attrs: [{ cmd: Command.WRITE, flags: 0, io: Arb.io({ size: 3 }), data: new Uint8Array([1, 2, 3]) }]
    }
    const reply: DnetPacket.Packet = {
      ...request,
      trans: 9n | TRANS_REPLY,
      attrs: [{ cmd: Command.WRITE, flags: 0, data: stored }]
    }
    const decodedReply = Result.getOrThrow(DnetPacket.decodePacket(DnetPacket.encodePacket(reply)))
    assert.isUndefined(decodedReply.attrs[0]!.io)
    assert.deepStrictEqual([...decodedReply.attrs[0]!.data], [...stored])
    const decodedRequest = Result.getOrThrow(DnetPacket.decodePacket(DnetPacket.encodePacket(request)))
    assert.strictEqual(decodedRequest.attrs[0]!.io!.size, 3)
    assert.deepStrictEqual([...decodedRequest.attrs[0]!.data], [1, 2, 3])
  })
})

/** A packet with one raw attribute header and `payload` zero bytes after it. */
const withAttr = (attrSize: bigint, cmd: number, payload: number) => {
  const bytes = rawHeader(24n + BigInt(payload), 96 + 24 + payload)
  const dv = new DataView(bytes.buffer)
  dv.setBigUint64(96, attrSize, true)
  dv.setUint32(104, cmd, true)
  return bytes
}

describe("DnetPacket validation (§1.1)", () => {
  it("a buffer shorter than the header fails in dnet_cmd", () => {
    const error = decodeErr(new Uint8Array(95))
    assert.strictEqual(error.packet, "dnet_cmd")
    assert.strictEqual(error.offset, 0)
  })

  it("cmd.size must match the bytes after the header", () => {
    for (const size of [0n, 10n, 11n]) {
      const bytes = rawHeader(size === 0n ? 1n : size, 96 + (size === 11n ? 10 : 0))
      const error = decodeErr(bytes)
      assert.strictEqual(error.offset, 88)
      assert.include(error.reason, "dnet_cmd.size says")
    }
  })

  it("a cmd.size of 2^60 fails fast at its field", () => {
    const error = decodeErr(rawHeader(2n ** 60n))
    assert.strictEqual(error.offset, 88)
    assert.include(error.reason, "above 2^53 - 1")
  })

  it("fewer than 24 bytes left for an attribute header fails", () => {
    const bytes = rawHeader(10n, 106)
    const error = decodeErr(bytes)
    assert.strictEqual(error.packet, "dnet_attr")
    assert.strictEqual(error.offset, 96)
    assert.include(error.reason, "needs 24 bytes, 10 are left")
  })

  it("attr.size beyond the packet fails with the command name", () => {
    const error = decodeErr(withAttr(11n, Command.LOOKUP, 10))
    assert.strictEqual(error.packet, "LOOKUP")
    assert.strictEqual(error.offset, 96)
    assert.include(error.reason, "dnet_attr.size 11 exceeds the 10 bytes left")
  })

  it("an attr.size of 2^60 fails fast", () => {
    const error = decodeErr(withAttr(2n ** 60n, Command.WRITE, 0))
    assert.strictEqual(error.packet, "dnet_attr")
    assert.strictEqual(error.offset, 96)
  })

  it("an IO attribute too small for dnet_io_attr fails", () => {
    const error = decodeErr(withAttr(167n, Command.WRITE, 167))
    assert.strictEqual(error.packet, "WRITE")
    assert.strictEqual(error.offset, 96)
    assert.include(error.reason, "cannot hold the 168-byte dnet_io_attr")
  })

  it("the second attribute's errors point at it", () => {
    const first = DnetPacket.encodePacket({
      id,
      flags: 0,
      status: 0,
      trans: 0n,
      attrs: [{ cmd: Command.STAT, flags: 0, data: new Uint8Array(4) }, {
        cmd: Command.STATUS,
        flags: 0,
        data: new Uint8Array(12)
      }]
    })
    new DataView(first.buffer).setBigUint64(96 + 28, 13n, true)
    const error = decodeErr(first)
    assert.strictEqual(error.packet, "STATUS")
    assert.strictEqual(error.offset, 96 + 28)
  })
})

describe("DnetPacket properties", () => {
  it("decode(encode(packet)) is the packet", () => {
    fc.assert(fc.property(Arb.packet, (packet) => {
      const bytes = DnetPacket.encodePacket(packet)
      assert.strictEqual(bytes.length, DnetPacket.HEADER_SIZE + DnetPacket.payloadSize(packet))
      assert.deepStrictEqual(decodeOk(bytes), packet)
    }))
  })

  it("random bytes never throw, and what decodes encodes back to the same bytes", () => {
    // A header whose size field is small, and half the time right, so the attribute rules get exercised.
    const header = fc.tuple(Arb.bytes(88), fc.uint8Array({ maxLength: 400 }), fc.option(fc.nat({ max: 400 }))).map(
      ([head, rest, size]) => {
        const bytes = new Uint8Array([...head, ...new Uint8Array(8), ...rest])
        new DataView(bytes.buffer).setUint32(88, size ?? rest.length, true)
        return bytes
      }
    )
    fc.assert(fc.property(fc.oneof(fc.uint8Array({ maxLength: 500 }), header), (bytes) => {
      const result = DnetPacket.decodePacket(bytes)
      if (Result.isSuccess(result)) {
        assert.deepStrictEqual(DnetPacket.encodePacket(result.success), bytes)
      }
    }))
  })

  it("mutated packets never throw, and what decodes encodes back to the same bytes", () => {
    const mutation = fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 })
    fc.assert(fc.property(Arb.packet, mutation, (packet, changes) => {
      const bytes = DnetPacket.encodePacket(packet)
      for (const [at, value] of changes) bytes[at % bytes.length] = value
      const result = DnetPacket.decodePacket(bytes)
      if (Result.isSuccess(result)) {
        assert.deepStrictEqual(DnetPacket.encodePacket(result.success), bytes)
      } else {
        assert.isTrue(result.failure.offset >= 0 && result.failure.offset < bytes.length)
      }
    }))
  })
})

const stream = (packets: ReadonlyArray<DnetPacket.Packet>) => {
  const encoded = packets.map(DnetPacket.encodePacket)
  return { encoded, all: new Uint8Array(encoded.flatMap((bytes) => [...bytes])) }
}

describe("DnetPacket stream parser", () => {
  it("chunked parsing equals whole parsing, with stream offsets", () => {
    fc.assert(
      fc.property(
        fc.array(Arb.packet, { maxLength: 5 }),
        fc.array(fc.nat({ max: 300 }), { maxLength: 30 }),
        (packets, lengths) => {
          const { all, encoded } = stream(packets)
          const whole = DnetPacket.makeParser()
          const expected = Result.getOrThrow(whole.push(all))
          assert.isTrue(Result.isSuccess(whole.end()))

          const chunked = DnetPacket.makeParser()
          const got: Array<DnetPacket.ParsedPacket> = []
          for (const part of split(all, lengths)) got.push(...Result.getOrThrow(chunked.push(part)))
          assert.isTrue(Result.isSuccess(chunked.end()))

          assert.deepStrictEqual(got, expected)
          assert.deepStrictEqual(got.map((p) => p.packet), packets)
          let offset = 0
          got.forEach((p, i) => {
            assert.strictEqual(p.offset, offset)
            assert.deepStrictEqual(p.bytes, encoded[i]!)
            offset += encoded[i]!.length
          })
        }
      )
    )
  })

  it("refuses a 2^60-byte packet as soon as its header is complete, without buffering it", () => {
    const parser = DnetPacket.makeParser()
    assert.deepStrictEqual(Result.getOrThrow(parser.push(rawHeader(2n ** 60n).subarray(0, 95))), [])
    const result = parser.push(rawHeader(2n ** 60n).subarray(95))
    assert.isTrue(Result.isFailure(result))
    if (Result.isFailure(result)) {
      assert.strictEqual(result.failure.protocol, "dnet")
      assert.strictEqual(result.failure.offset, 0)
      assert.include(result.failure.reason, "exceeds the maximum")
    }
    assert.isAtMost(parser.buffered(), 96)
    assert.isTrue(Result.isFailure(parser.push(new Uint8Array(10))), "stays failed")
  })

  it("honours maxPacketSize at the packet's stream offset", () => {
    const small = DnetPacket.encodePacket(DnetPacket.ack({ id, flags: 0, status: 0, trans: 1n, attrs: [] }, 0))
    const big = DnetPacket.encodePacket({
      id,
      flags: 0,
      status: 0,
      trans: 2n,
      attrs: [{ cmd: Command.STAT, flags: 0, data: new Uint8Array(100) }]
    })
    const parser = DnetPacket.makeParser({ maxPacketSize: 200 })
    // The good packet ahead of the oversized one is delivered; the error follows on the next call.
    assert.strictEqual(Result.getOrThrow(parser.push(new Uint8Array([...small, ...big]))).length, 1)
    const result = parser.push(new Uint8Array(0))
    assert.isTrue(Result.isFailure(result))
    if (Result.isFailure(result)) assert.strictEqual(result.failure.offset, 96)
    assert.strictEqual(DnetPacket.DEFAULT_MAX_PACKET_SIZE, 64 * 1024 * 1024 + 96 + 24 + 168)
  })

  it("reports a malformed packet body at its stream offset and stays failed", () => {
    const good = DnetPacket.encodePacket({ id, flags: 0, status: 0, trans: 1n, attrs: [] })
    const bad = rawHeader(10n, 106)
    const parser = DnetPacket.makeParser()
    assert.strictEqual(Result.getOrThrow(parser.push(new Uint8Array([...good, ...bad]))).length, 1)
    const result = parser.push(new Uint8Array(0))
    assert.isTrue(Result.isFailure(result))
    if (Result.isFailure(result)) {
      assert.strictEqual(result.failure.packet, "dnet_attr")
      assert.strictEqual(result.failure.offset, 96 + 96)
    }
    assert.isTrue(Result.isFailure(parser.push(good)))
    assert.isTrue(Result.isFailure(parser.end()))
  })

  it("fails at end of stream inside a packet", () => {
    const parser = DnetPacket.makeParser()
    const bytes = DnetPacket.encodePacket({ id, flags: 0, status: 0, trans: 1n, attrs: [] })
    assert.deepStrictEqual(Result.getOrThrow(parser.push(bytes.subarray(0, 50))), [])
    assert.strictEqual(parser.buffered(), 50)
    assert.isTrue(Result.isFailure(parser.end()))
  })

  it("returns views of the pushed chunk", () => {
    const bytes = DnetPacket.encodePacket({
      id,
      flags: 0,
      status: 0,
      trans: 1n,
      attrs: [{ cmd: Command.STAT, flags: 0, data: new Uint8Array(8) }]
    })
    const [parsed] = Result.getOrThrow(DnetPacket.makeParser().push(bytes))
    assert.strictEqual(parsed!.bytes.buffer, bytes.buffer)
    assert.strictEqual(parsed!.packet.attrs[0]!.data.buffer, bytes.buffer)
  })
})
