// fast-check generators for dnet values, shared by the Dnet*.test.ts files.
import fc from "fast-check"
import { TRANS_REPLY } from "../../src/DnetConstants.ts"
import * as DnetPacket from "../../src/DnetPacket.ts"
import type * as DnetStructs from "../../src/DnetStructs.ts"

export const bytes = (length: number) => fc.uint8Array({ minLength: length, maxLength: length })
export const u16 = fc.integer({ min: 0, max: 0xffff })
export const u32 = fc.integer({ min: 0, max: 0xffff_ffff })
export const i32 = fc.integer({ min: -0x8000_0000, max: 0x7fff_ffff })
export const safeU64 = fc.oneof(fc.maxSafeNat(), fc.integer({ min: 0, max: 1000 }))
export const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })

/** A reserved region as the decoder reports it: absent when zero, else a non-zero array. */
const reserved = (length: number) => fc.option(bytes(length).filter((b) => b.some((x) => x !== 0)), { nil: undefined })

/** Drops keys whose value is undefined, as the decoders leave absent optional fields out. */
const defined = <A>(value: object): A =>
  Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as A

export const id: fc.Arbitrary<DnetStructs.Id> = fc.record({ id: bytes(64), groupId: u32, type: i32 })

export const cmd: fc.Arbitrary<DnetStructs.Cmd> = fc.record({ id, flags: u32, status: i32, trans: u64, size: safeU64 })

export const attr: fc.Arbitrary<DnetStructs.Attr> = fc.record({
  size: safeU64,
  cmd: u32,
  flags: u32,
  unused: reserved(8)
})
  .map(defined<DnetStructs.Attr>)

export const ioAttr: fc.Arbitrary<DnetStructs.IoAttr> = fc.record({
  parent: bytes(64),
  id: bytes(64),
  start: safeU64,
  num: safeU64,
  type: i32,
  flags: u32,
  offset: safeU64,
  size: safeU64
})

export const addr: fc.Arbitrary<DnetStructs.Addr> = fc.record({ addr: bytes(28), addrLen: u32 })

export const addrAttr: fc.Arbitrary<DnetStructs.AddrAttr> = fc.record({ sockType: u16, family: u16, proto: u32, addr })

export const time: fc.Arbitrary<DnetStructs.Time> = fc.record({ tsec: u64, tnsec: u64 })

export const fileInfo: fc.Arbitrary<DnetStructs.FileInfo> = fc.record({
  flen: i32,
  checksum: bytes(64),
  nlink: u32,
  mode: safeU64,
  dev: u64,
  rdev: u64,
  ino: u64,
  uid: safeU64,
  gid: safeU64,
  blksize: safeU64,
  blocks: safeU64,
  size: safeU64,
  offset: safeU64,
  atime: time,
  ctime: time,
  mtime: time
})

export const stat: fc.Arbitrary<DnetStructs.Stat> = fc.record({
  la: fc.tuple(u16, u16, u16),
  namemax: u16,
  bsize: safeU64,
  frsize: safeU64,
  blocks: safeU64,
  bfree: safeU64,
  bavail: safeU64,
  files: safeU64,
  ffree: safeU64,
  favail: safeU64,
  fsid: u64,
  flag: u64,
  vmActive: safeU64,
  vmInactive: safeU64,
  vmTotal: safeU64,
  vmFree: safeU64,
  vmCached: safeU64,
  vmBuffers: safeU64,
  reserved: reserved(256)
}).map(defined<DnetStructs.Stat>)

export const nodeStatus: fc.Arbitrary<DnetStructs.NodeStatus> = fc.record({
  nflags: i32,
  statusFlags: i32,
  logMask: u32
})

export const auth: fc.Arbitrary<DnetStructs.Auth> = fc.record({ cookie: bytes(32), flags: u64, unused: reserved(24) })
  .map(defined<DnetStructs.Auth>)

/** Mostly Era B commands (IO and not), sometimes any 32-bit number. */
const command = fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 0, max: 20 }) }, { weight: 1, arbitrary: u32 })

/** An attribute of a request (`reply` false) or of a reply: with an IO header exactly where one belongs. */
export const attribute = (reply: boolean): fc.Arbitrary<DnetPacket.Attribute> =>
  command.chain((number) =>
    fc.record({
      cmd: fc.constant(number),
      flags: u32,
      unused: reserved(8),
      io: DnetPacket.carriesIoAttr(number, reply) ? ioAttr : fc.constant(undefined),
      data: fc.uint8Array({ maxLength: 80 })
    }).map(defined<DnetPacket.Attribute>)
  )

export const packet: fc.Arbitrary<DnetPacket.Packet> = u64.chain((trans) =>
  fc.record({
    id,
    flags: u32,
    status: i32,
    trans: fc.constant(trans),
    attrs: fc.array(attribute((trans & TRANS_REPLY) !== 0n), { maxLength: 4 })
  })
)

/** A 64-byte key 00 01 02 … 3f for hand-built packets. */
export const key = Uint8Array.from({ length: 64 }, (_, i) => i)

/** An io_attr for `key` with every other field zero unless given. */
export const io = (fields: Partial<DnetStructs.IoAttr>): DnetStructs.IoAttr => ({
  parent: new Uint8Array(64),
  id: key,
  start: 0,
  num: 0,
  type: 0,
  flags: 0,
  offset: 0,
  size: 0,
  ...fields
})
