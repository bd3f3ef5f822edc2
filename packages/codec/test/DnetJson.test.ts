import { assert, describe, it } from "@effect/vitest"
import { Result } from "effect"
import fc from "fast-check"
import { AttrFlags, CmdFlags, Command, IoFlags, TRANS_REPLY } from "../src/DnetConstants.ts"
import * as DnetJson from "../src/DnetJson.ts"
import * as DnetPacket from "../src/DnetPacket.ts"
import * as Arb from "./utils/DnetArbitraries.ts"

const { io, key } = Arb
const keyHex = Array.from(key, (b) => b.toString(16).padStart(2, "0")).join("")
const zeroHex = "00".repeat(64)

const write: DnetPacket.Packet = {
  id: { id: key, groupId: 2, type: 0 },
  flags: CmdFlags.NEED_ACK | 0x40,
  status: 0,
  trans: 7n,
  attrs: [{
    cmd: Command.WRITE,
    flags: 0,
    io: io({ flags: IoFlags.APPEND | IoFlags.PLAIN_WRITE, size: 5 }),
    data: new TextEncoder().encode("hello")
  }]
}

const fromJsonOk = (value: unknown): Uint8Array => {
  const result = DnetJson.fromJson(value)
  if (Result.isFailure(result)) assert.fail(result.failure.message)
  return result.success
}

/** Through text, as the CLI does. */
const viaText = (packet: DnetPacket.Packet): unknown => JSON.parse(JSON.stringify(DnetJson.toJson(packet)))

/** The JSON of a one-attribute packet. */
const attrJsonOf = (command: number, flags: number, ioFlags?: number) =>
  DnetJson.toJson({
    ...write,
    attrs: [{
      cmd: command,
      flags,
      ...(ioFlags === undefined ? {} : { io: io({ flags: ioFlags }) }),
      data: new Uint8Array(0)
    }]
  }).attrs[0]!

describe("DnetJson shape", () => {
  it("a WRITE request", () => {
    assert.deepStrictEqual(DnetJson.toJson(write), {
      packet: "WRITE",
      cmd: {
        id_hex: keyHex,
        group_id: 2,
        type: 0,
        flags: ["NEED_ACK", "0x40"],
        status: 0,
        trans: 7,
        reply: false,
        size: 24 + 168 + 5
      },
      attrs: [{
        cmd: "WRITE",
        size: 168 + 5,
        flags: [],
        io: {
          parent_hex: zeroHex,
          id_hex: keyHex,
          start: 0,
          num: 0,
          type: 0,
          flags: ["APPEND", "PLAIN_WRITE"],
          offset: 0,
          size: 5
        },
        data_hex: "68656c6c6f"
      }]
    })
  })

  it("an ACK reply, a huge transaction number and unused bytes", () => {
    const json = DnetJson.toJson({
      id: { id: key, groupId: 1, type: -1 },
      flags: 0,
      status: -2,
      trans: TRANS_REPLY | (2n ** 62n),
      attrs: []
    })
    assert.strictEqual(json.packet, "ACK")
    assert.strictEqual(json.cmd.reply, true)
    assert.strictEqual(json.cmd.trans, (2n ** 62n).toString())
    assert.strictEqual(json.cmd.status, -2)
    assert.strictEqual(json.cmd.type, -1)
    assert.deepStrictEqual(json.attrs, [])

    const unused = DnetJson.toJson({
      ...write,
      attrs: [{ cmd: 99, flags: 0, unused: new Uint8Array([0, 0, 0, 0, 0, 0, 0, 1]), data: new Uint8Array(0) }]
    })
    assert.strictEqual(unused.packet, "CMD_99")
    assert.deepStrictEqual(unused.attrs[0], {
      cmd: "CMD_99",
      size: 0,
      flags: [],
      unused_hex: "0000000000000001",
      data_hex: ""
    })
  })

  it("names overloaded flag bits after the command", () => {
    assert.deepStrictEqual(attrJsonOf(Command.DEL, 1).flags, ["DELETE_HISTORY"])
    assert.deepStrictEqual(attrJsonOf(Command.STAT_COUNT, 1).flags, ["CNTR_GLOBAL"])
    assert.deepStrictEqual(attrJsonOf(Command.LIST, 1).flags, ["BULK_CHECK"])
    assert.deepStrictEqual(attrJsonOf(Command.STATUS, 1).flags, ["STATUS_CHANGE"])
    assert.deepStrictEqual(attrJsonOf(Command.LOOKUP, 0x1f).flags, ["0x1", "META_TIMES", "NOCSUM", "SORT", "NOLOCK"])
    assert.deepStrictEqual(attrJsonOf(Command.STAT, 0x8000_0000).flags, ["0x80000000"])
    assert.deepStrictEqual(attrJsonOf(Command.WRITE, 0, 1 << 9).io!.flags, ["PLAIN_WRITE"])
    assert.deepStrictEqual(attrJsonOf(Command.READ_RANGE, 0, (1 << 9) | 1).io!.flags, ["SKIP_SENDING", "NODATA"])
  })
})

describe("DnetJson round trip", () => {
  it("toJson then fromJson reproduces the bytes", () => {
    fc.assert(fc.property(Arb.packet, (packet) => {
      assert.deepStrictEqual(fromJsonOk(viaText(packet)), DnetPacket.encodePacket(packet))
    }))
  })

  it("holds for any decodable bytes, including mutated ones", () => {
    const mutation = fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 })
    fc.assert(fc.property(Arb.packet, mutation, (packet, changes) => {
      const bytes = DnetPacket.encodePacket(packet)
      for (const [at, value] of changes) bytes[at % bytes.length] = value
      const decoded = DnetPacket.decodePacket(bytes)
      if (Result.isSuccess(decoded)) {
        assert.deepStrictEqual(fromJsonOk(viaText(decoded.success)), bytes)
      }
    }))
  })
})

describe("DnetJson hand-written input", () => {
  it("accepts numbers, aliases and omitted fields", () => {
    const bytes = fromJsonOk({
      cmd: { id_hex: keyHex.toUpperCase(), group_id: 2, flags: 0x41, trans: "7" },
      attrs: [{
        cmd: 4,
        io: { parent_hex: zeroHex, id_hex: keyHex, flags: ["APPEND", "NODATA"], size: 5 },
        data_hex: "68656C6C6F"
      }]
    })
    assert.deepStrictEqual(bytes, DnetPacket.encodePacket(write))
  })

  it("ignores annotations beside the packet keys", () => {
    assert.deepStrictEqual(
      fromJsonOk({ offset: 96, note: "x", ...viaText(write) as object }),
      DnetPacket.encodePacket(write)
    )
  })

  it("accepts matching derived fields and names any flag of the family", () => {
    const bytes = fromJsonOk({
      packet: "DEL",
      cmd: { id_hex: keyHex, group_id: 0, trans: 1, reply: true, size: 24 },
      attrs: [{ cmd: "DEL", size: 0, flags: ["STATUS_CHANGE", "SORT"], unused_hex: "0000000000000000" }]
    })
    const packet = Result.getOrThrow(DnetPacket.decodePacket(bytes))
    assert.strictEqual(packet.trans, 1n | TRANS_REPLY)
    assert.deepStrictEqual(packet.attrs, [{
      cmd: Command.DEL,
      flags: AttrFlags.DELETE_HISTORY | AttrFlags.SORT,
      data: new Uint8Array(0)
    }])
  })

  it("rejects bad input with a DecodeError at offset 0", () => {
    const base = DnetJson.toJson(write)
    const attr = base.attrs[0]!
    const { io: _, ...withoutIo } = attr
    const cases: Array<[unknown, string]> = [
      [null, "Expected object"],
      ["WRITE", "Expected object"],
      [{ attrs: [] }, "cmd: Missing key"],
      [{ ...base, cmd: { ...base.cmd, id_hex: "00" } }, "cmd.id_hex: Expected 128 hex digits"],
      [{ ...base, cmd: { ...base.cmd, group_id: -1 } }, "group_id"],
      [{ ...base, cmd: { ...base.cmd, trans: 1.5 } }, "trans"],
      [{ ...base, cmd: { ...base.cmd, trans: "9223372036854775808" } }, "cmd.trans: must be below 2^63"],
      [{ ...base, cmd: { ...base.cmd, flags: ["NEED_ACK", "BOGUS"] } }, "cmd.flags: unknown flag \"BOGUS\""],
      [{ ...base, cmd: { ...base.cmd, size: 1 } }, "cmd.size: is 1 but the attributes make it 197"],
      [{ ...base, packet: "READ" }, "packet: is \"READ\""],
      [{ ...base, cmd: { ...base.cmd, extra: 1 } }, "cmd.extra: Expected no excess property"],
      [{ ...base, attrs: [{ ...attr, data: "00" }] }, "attrs[0].data"],
      [{ ...base, attrs: [{ ...attr, cmd: "FETCH" }] }, "attrs[0].cmd: unknown command \"FETCH\""],
      [{ ...base, attrs: [withoutIo] }, "attrs[0]: WRITE needs \"io\""],
      [{ ...base, attrs: [{ ...attr, cmd: "LOOKUP" }] }, "attrs[0]: LOOKUP takes no \"io\""],
      // A WRITE reply is the stored object's addr_attr + file_info.
      [{ ...base, cmd: { ...base.cmd, reply: true } }, "attrs[0]: WRITE takes no \"io\""],
      [{ ...base, attrs: [{ ...attr, size: 5 }] }, "attrs[0].size: is 5 but the io header and data make it 173"],
      [{ ...base, attrs: [{ ...attr, data_hex: "abc" }] }, "attrs[0].data_hex: Expected hex digits"],
      [{ ...base, attrs: [{ ...attr, unused_hex: "00" }] }, "unused_hex"],
      [{ ...base, attrs: [{ ...attr, io: { ...attr.io, flags: ["0x100000000"] } }] }, "attrs[0].io.flags"]
    ]
    for (const [input, reason] of cases) {
      const result = DnetJson.fromJson(input)
      assert.isTrue(Result.isFailure(result), reason)
      if (Result.isFailure(result)) {
        assert.strictEqual(result.failure.protocol, "dnet")
        assert.strictEqual(result.failure.packet, "json")
        assert.strictEqual(result.failure.offset, 0)
        assert.include(result.failure.reason, reason)
      }
    }
  })
})
