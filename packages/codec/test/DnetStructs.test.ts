import { assert, describe, it } from "@effect/vitest"
import { Result } from "effect"
import fc from "fast-check"
import type * as DecodeError from "../src/DecodeError.ts"
import * as DnetStructs from "../src/DnetStructs.ts"
import * as Arb from "./utils/DnetArbitraries.ts"

// Fixtures are written with a DataView at the offsets of the spec tables (dnet.md §1.2–1.6), independently of
// the codec, then decoded from inside a larger buffer (at BASE) and encoded back.
const BASE = 5

const fixture = (size: number, fill: (dv: DataView, bytes: Uint8Array) => void) => {
  const buffer = new Uint8Array(BASE + size + 3).fill(0xee)
  const struct = buffer.subarray(BASE, BASE + size)
  struct.fill(0)
  fill(new DataView(buffer.buffer, BASE, size), struct)
  return { buffer, struct }
}

const ramp = (length: number, from: number) => Uint8Array.from({ length }, (_, i) => (from + i) & 0xff)

const decodeOk = <A>(codec: DnetStructs.Codec<A>, bytes: Uint8Array, offset: number): A => {
  const result = codec.decode(bytes, offset)
  if (Result.isFailure(result)) assert.fail(result.failure.message)
  return result.success
}

/** A codec with its value type erased, so codecs of different structs fit in one table. */
interface AnyCodec {
  readonly name: string
  readonly size: number
  readonly decode: (bytes: Uint8Array, offset?: number) => Result.Result<unknown, DecodeError.DecodeError>
  /** Decodes and encodes back, or undefined when decoding fails. */
  readonly reencode: (bytes: Uint8Array, offset: number) => Uint8Array | undefined
}

const erase = <A>(codec: DnetStructs.Codec<A>): AnyCodec => ({
  name: codec.name,
  size: codec.size,
  decode: codec.decode,
  reencode: (bytes, offset) => {
    const result = codec.decode(bytes, offset)
    return Result.isSuccess(result) ? codec.encode(result.success) : undefined
  }
})

const codecs: ReadonlyArray<AnyCodec> = [
  erase(DnetStructs.Id),
  erase(DnetStructs.Cmd),
  erase(DnetStructs.Attr),
  erase(DnetStructs.IoAttr),
  erase(DnetStructs.Addr),
  erase(DnetStructs.AddrAttr),
  erase(DnetStructs.Time),
  erase(DnetStructs.FileInfo),
  erase(DnetStructs.Stat),
  erase(DnetStructs.NodeStatus),
  erase(DnetStructs.Auth)
]

const assertViewOf = (view: Uint8Array, buffer: Uint8Array) => assert.strictEqual(view.buffer, buffer.buffer)

describe("DnetStructs sizes", () => {
  it("match the spec", () => {
    assert.deepStrictEqual(codecs.map((codec) => [codec.name, codec.size]), [
      ["dnet_id", 72],
      ["dnet_cmd", 96],
      ["dnet_attr", 24],
      ["dnet_io_attr", 168],
      ["dnet_addr", 32],
      ["dnet_addr_attr", 40],
      ["dnet_time", 16],
      ["dnet_file_info", 200],
      ["dnet_stat", 392],
      ["dnet_node_status", 12],
      ["dnet_auth", 64]
    ])
  })
})

describe("DnetStructs field offsets", () => {
  it("dnet_id", () => {
    const { buffer, struct } = fixture(72, (dv, b) => {
      b.set(ramp(64, 1), 0)
      dv.setUint32(64, 0xfedc_ba98, true)
      dv.setInt32(68, -1, true)
    })
    const id = decodeOk(DnetStructs.Id, buffer, BASE)
    assert.deepStrictEqual(id.id, ramp(64, 1))
    assertViewOf(id.id, buffer)
    assert.strictEqual(id.groupId, 0xfedc_ba98)
    assert.strictEqual(id.type, -1)
    assert.deepStrictEqual(DnetStructs.Id.encode(id), struct)
  })

  it("dnet_cmd", () => {
    const { buffer, struct } = fixture(96, (dv, b) => {
      b.set(ramp(64, 0x40), 0)
      dv.setUint32(64, 3, true)
      dv.setInt32(68, 1, true)
      dv.setUint32(72, 0x19, true)
      dv.setInt32(76, -2, true)
      dv.setBigUint64(80, 0x8000_0000_0000_0007n, true)
      dv.setBigUint64(88, 0x1_0000_0001n, true)
    })
    const cmd = decodeOk(DnetStructs.Cmd, buffer, BASE)
    assert.deepStrictEqual(cmd, {
      id: { id: struct.subarray(0, 64), groupId: 3, type: 1 },
      flags: 0x19,
      status: -2,
      trans: 0x8000_0000_0000_0007n,
      size: 0x1_0000_0001
    })
    assert.deepStrictEqual(DnetStructs.Cmd.encode(cmd), struct)
  })

  it("dnet_attr, with and without unused bytes", () => {
    const { buffer, struct } = fixture(24, (dv) => {
      dv.setBigUint64(0, 173n, true)
      dv.setUint32(8, 4, true)
      dv.setUint32(12, 0x8000_0001, true)
    })
    const attr = decodeOk(DnetStructs.Attr, buffer, BASE)
    assert.deepStrictEqual(attr, { size: 173, cmd: 4, flags: 0x8000_0001 })
    assert.deepStrictEqual(DnetStructs.Attr.encode(attr), struct)

    struct[16] = 1
    struct[23] = 0xff
    const withUnused = decodeOk(DnetStructs.Attr, buffer, BASE)
    assert.deepStrictEqual(withUnused.unused!, struct.subarray(16, 24))
    assert.deepStrictEqual(DnetStructs.Attr.encode(withUnused), struct)
  })

  it("dnet_io_attr", () => {
    const { buffer, struct } = fixture(168, (dv, b) => {
      b.set(ramp(64, 0x80), 0)
      b.set(ramp(64, 0xc0), 64)
      dv.setBigUint64(128, 3n, true)
      dv.setBigUint64(136, 14n, true)
      dv.setInt32(144, -1, true)
      dv.setUint32(148, 0x202, true)
      dv.setBigUint64(152, 0x12_3456_789an, true)
      dv.setBigUint64(160, 2n ** 53n - 1n, true)
    })
    const io = decodeOk(DnetStructs.IoAttr, buffer, BASE)
    assert.deepStrictEqual(io.parent, ramp(64, 0x80))
    assert.deepStrictEqual(io.id, ramp(64, 0xc0))
    assertViewOf(io.id, buffer)
    assert.strictEqual(io.start, 3)
    assert.strictEqual(io.num, 14)
    assert.strictEqual(io.type, -1)
    assert.strictEqual(io.flags, 0x202)
    assert.strictEqual(io.offset, 0x12_3456_789a)
    assert.strictEqual(io.size, Number.MAX_SAFE_INTEGER)
    assert.deepStrictEqual(DnetStructs.IoAttr.encode(io), struct)
  })

  it("dnet_addr and dnet_addr_attr", () => {
    const { buffer, struct } = fixture(40, (dv, b) => {
      dv.setUint16(0, 1, true)
      dv.setUint16(2, 2, true)
      dv.setUint32(4, 6, true)
      // sockaddr_in 127.0.0.1:1025 as a little-endian host lays it out
      b.set([2, 0, 0x04, 0x01, 127, 0, 0, 1], 8)
      dv.setUint32(36, 16, true)
    })
    const addrAttr = decodeOk(DnetStructs.AddrAttr, buffer, BASE)
    assert.strictEqual(addrAttr.sockType, 1)
    assert.strictEqual(addrAttr.family, 2)
    assert.strictEqual(addrAttr.proto, 6)
    assert.deepStrictEqual(addrAttr.addr.addr, struct.subarray(8, 36))
    assert.strictEqual(addrAttr.addr.addrLen, 16)
    assert.deepStrictEqual(DnetStructs.AddrAttr.encode(addrAttr), struct)
    assert.deepStrictEqual(decodeOk(DnetStructs.Addr, buffer, BASE + 8), addrAttr.addr)
  })

  it("dnet_file_info with its dnet_time fields", () => {
    const { buffer, struct } = fixture(200, (dv, b) => {
      dv.setInt32(0, 130, true)
      b.set(ramp(64, 7), 4)
      dv.setUint32(68, 1, true)
      dv.setBigUint64(72, 0o100644n, true)
      dv.setBigUint64(80, 0xffff_ffff_ffff_fffen, true)
      dv.setBigUint64(88, 0x803n, true)
      dv.setBigUint64(96, 0x8000_0000_0000_0001n, true)
      dv.setBigUint64(104, 1000n, true)
      dv.setBigUint64(112, 100n, true)
      dv.setBigUint64(120, 4096n, true)
      dv.setBigUint64(128, 8n, true)
      dv.setBigUint64(136, 4000n, true)
      dv.setBigUint64(144, 96n, true)
      dv.setBigUint64(152, 1_300_000_000n, true)
      dv.setBigUint64(160, 1n, true)
      dv.setBigUint64(168, 1_300_000_001n, true)
      dv.setBigUint64(176, 2n, true)
      dv.setBigUint64(184, 1_300_000_002n, true)
      dv.setBigUint64(192, 999_999_999n, true)
    })
    const info = decodeOk(DnetStructs.FileInfo, buffer, BASE)
    assert.deepStrictEqual(info, {
      flen: 130,
      checksum: ramp(64, 7),
      nlink: 1,
      mode: 0o100644,
      dev: 0xffff_ffff_ffff_fffen,
      rdev: 0x803n,
      ino: 0x8000_0000_0000_0001n,
      uid: 1000,
      gid: 100,
      blksize: 4096,
      blocks: 8,
      size: 4000,
      offset: 96,
      atime: { tsec: 1_300_000_000n, tnsec: 1n },
      ctime: { tsec: 1_300_000_001n, tnsec: 2n },
      mtime: { tsec: 1_300_000_002n, tnsec: 999_999_999n }
    })
    assert.deepStrictEqual(DnetStructs.FileInfo.encode(info), struct)
    assert.deepStrictEqual(decodeOk(DnetStructs.Time, buffer, BASE + 184), info.mtime)
  })

  it("dnet_stat", () => {
    const u64Fields = [8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 120, 128]
    const { buffer, struct } = fixture(392, (dv) => {
      dv.setUint16(0, 12, true)
      dv.setUint16(2, 34, true)
      dv.setUint16(4, 56, true)
      dv.setUint16(6, 255, true)
      u64Fields.forEach((offset, i) => dv.setBigUint64(offset, BigInt(i + 1) * 1000n, true))
      dv.setBigUint64(72, 0xdead_beef_dead_beefn, true)
    })
    const stat = decodeOk(DnetStructs.Stat, buffer, BASE)
    assert.deepStrictEqual(stat, {
      la: [12, 34, 56],
      namemax: 255,
      bsize: 1000,
      frsize: 2000,
      blocks: 3000,
      bfree: 4000,
      bavail: 5000,
      files: 6000,
      ffree: 7000,
      favail: 8000,
      fsid: 0xdead_beef_dead_beefn,
      flag: 10000n,
      vmActive: 11000,
      vmInactive: 12000,
      vmTotal: 13000,
      vmFree: 14000,
      vmCached: 15000,
      vmBuffers: 16000
    })
    assert.deepStrictEqual(DnetStructs.Stat.encode(stat), struct)

    struct[391] = 1
    const withReserved = decodeOk(DnetStructs.Stat, buffer, BASE)
    assert.strictEqual(withReserved.reserved!.length, 256)
    assert.deepStrictEqual(DnetStructs.Stat.encode(withReserved), struct)
  })

  it("dnet_node_status", () => {
    const { buffer, struct } = fixture(12, (dv) => {
      dv.setInt32(0, -1, true)
      dv.setInt32(4, 2, true)
      dv.setUint32(8, 0xffff_fff0, true)
    })
    const status = decodeOk(DnetStructs.NodeStatus, buffer, BASE)
    assert.deepStrictEqual(status, { nflags: -1, statusFlags: 2, logMask: 0xffff_fff0 })
    assert.deepStrictEqual(DnetStructs.NodeStatus.encode(status), struct)
  })

  it("dnet_auth", () => {
    const { buffer, struct } = fixture(64, (dv, b) => {
      b.set(new TextEncoder().encode("secret"), 0)
      dv.setBigUint64(32, 0xffn, true)
    })
    const auth = decodeOk(DnetStructs.Auth, buffer, BASE)
    assert.deepStrictEqual(auth.cookie.subarray(0, 7), new Uint8Array([...new TextEncoder().encode("secret"), 0]))
    assert.strictEqual(auth.cookie.length, 32)
    assert.strictEqual(auth.flags, 0xffn)
    assert.isUndefined(auth.unused)
    assert.deepStrictEqual(DnetStructs.Auth.encode(auth), struct)
  })
})

describe("DnetStructs encoding", () => {
  it("zero-pads short byte fields and truncates long ones", () => {
    const short = DnetStructs.Id.encode({ id: new Uint8Array([1, 2]), groupId: 0, type: 0 })
    assert.deepStrictEqual(short.subarray(0, 4), new Uint8Array([1, 2, 0, 0]))
    const long = DnetStructs.Addr.encode({ addr: new Uint8Array(40).fill(9), addrLen: 7 })
    assert.strictEqual(long.length, 32)
    assert.strictEqual(long[27], 9)
    assert.strictEqual(long[28], 7)
  })

  it("write overwrites stale bytes of a reused buffer", () => {
    const buffer = new Uint8Array(24).fill(0xaa)
    DnetStructs.Attr.write(buffer, 0, { size: 1, cmd: 2, flags: 3 })
    assert.deepStrictEqual(buffer, DnetStructs.Attr.encode({ size: 1, cmd: 2, flags: 3 }))
  })
})

describe("DnetStructs decoding failures", () => {
  it("a short buffer fails with the struct name and offset", () => {
    for (const codec of codecs) {
      const result = codec.decode(new Uint8Array(codec.size + 2), 3)
      assert.isTrue(Result.isFailure(result))
      if (Result.isFailure(result)) {
        assert.strictEqual(result.failure.protocol, "dnet")
        assert.strictEqual(result.failure.packet, codec.name)
        assert.strictEqual(result.failure.offset, 3)
        assert.include(result.failure.reason, `needs ${codec.size} bytes, ${codec.size - 1} left`)
      }
      assert.isTrue(Result.isFailure(codec.decode(new Uint8Array(codec.size), -1)))
    }
  })

  it("a size-like u64 above 2^53 - 1 fails at its offset", () => {
    const cases: Array<[AnyCodec, number, string]> = [
      [erase(DnetStructs.Cmd), 88, "dnet_cmd.size"],
      [erase(DnetStructs.Attr), 0, "dnet_attr.size"],
      [erase(DnetStructs.IoAttr), 128, "dnet_io_attr.start"],
      [erase(DnetStructs.IoAttr), 160, "dnet_io_attr.size"],
      [erase(DnetStructs.FileInfo), 136, "dnet_file_info.size"],
      [erase(DnetStructs.Stat), 128, "dnet_stat.vm_buffers"]
    ]
    for (const [codec, offset, field] of cases) {
      const bytes = new Uint8Array(codec.size + 10)
      new DataView(bytes.buffer).setBigUint64(10 + offset, 2n ** 60n, true)
      const result = codec.decode(bytes, 10)
      assert.isTrue(Result.isFailure(result), field)
      if (Result.isFailure(result)) {
        assert.strictEqual(result.failure.offset, 10 + offset)
        assert.include(result.failure.reason, `${field} is ${2n ** 60n}, above 2^53 - 1`)
      }
    }
  })

  it("random bytes never throw, and what decodes encodes back to the same bytes", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 420 }), fc.nat({ max: 40 }), (bytes, offset) => {
      const reencoded = codecs.map((codec) => codec.reencode(bytes, offset))
      const expected = codecs.map((codec, i) =>
        reencoded[i] === undefined ? undefined : bytes.subarray(offset, offset + codec.size)
      )
      assert.deepStrictEqual(reencoded, expected)
    }))
  })
})

const again = <A>(codec: DnetStructs.Codec<A>, value: A): A => decodeOk(codec, codec.encode(value), 0)

describe("DnetStructs round trips", () => {
  it("dnet_id", () => fc.assert(fc.property(Arb.id, (v) => assert.deepStrictEqual(again(DnetStructs.Id, v), v))))
  it("dnet_cmd", () => fc.assert(fc.property(Arb.cmd, (v) => assert.deepStrictEqual(again(DnetStructs.Cmd, v), v))))
  it("dnet_attr", () => fc.assert(fc.property(Arb.attr, (v) => assert.deepStrictEqual(again(DnetStructs.Attr, v), v))))
  it("dnet_io_attr", () =>
    fc.assert(fc.property(Arb.ioAttr, (v) => assert.deepStrictEqual(again(DnetStructs.IoAttr, v), v))))
  it("dnet_addr", () => fc.assert(fc.property(Arb.addr, (v) => assert.deepStrictEqual(again(DnetStructs.Addr, v), v))))
  it("dnet_addr_attr", () =>
    fc.assert(fc.property(Arb.addrAttr, (v) => assert.deepStrictEqual(again(DnetStructs.AddrAttr, v), v))))
  it("dnet_time", () => fc.assert(fc.property(Arb.time, (v) => assert.deepStrictEqual(again(DnetStructs.Time, v), v))))
  it("dnet_file_info", () =>
    fc.assert(fc.property(Arb.fileInfo, (v) => assert.deepStrictEqual(again(DnetStructs.FileInfo, v), v))))
  it("dnet_stat", () => fc.assert(fc.property(Arb.stat, (v) => assert.deepStrictEqual(again(DnetStructs.Stat, v), v))))
  it("dnet_node_status", () =>
    fc.assert(fc.property(Arb.nodeStatus, (v) => assert.deepStrictEqual(again(DnetStructs.NodeStatus, v), v))))
  it("dnet_auth", () => fc.assert(fc.property(Arb.auth, (v) => assert.deepStrictEqual(again(DnetStructs.Auth, v), v))))
})
