/**
 * The fixed-layout structs of the elliptics `dnet` protocol, Era B: `dnet_id`, `dnet_cmd`, `dnet_attr`,
 * `dnet_io_attr`, `dnet_addr`, `dnet_addr_attr`, `dnet_time`, `dnet_file_info`, `dnet_stat`,
 * `dnet_node_status` and `dnet_auth`. All little-endian, at the offsets of the spec; none of them has padding
 * (the naturally aligned ones happen to be laid out without holes).
 *
 * Each struct has a {@link Codec}: `decode(bytes, offset)` reads with shifts from any position of a larger
 * buffer and returns byte arrays (IDs, addresses, checksums) as views of it, `write` fills a caller-sized
 * buffer, `encode` allocates exactly `size` bytes.
 *
 * Number or bigint, per 64-bit field:
 * - sizes, offsets, counts (`size`, `offset`, `start`, `num`, `blocks`, `uid`, ...) are numbers; a value above
 *   2^53 - 1 is a `DecodeError`, since no real file, object or filesystem reaches it;
 * - opaque words are bigints, so any value round-trips: `dnet_cmd.trans` (bit 63 is the reply marker),
 *   `dnet_auth.flags`, `dnet_stat.fsid` / `flag`, device and inode numbers, and the seconds and nanoseconds of
 *   `dnet_time`.
 *
 * Fields the spec calls unused or reserved are kept when non-zero (as a view) and omitted when all zero, so
 * every decodable input encodes back to the same bytes.
 *
 * @since 0.1.0
 */
import * as Result from "effect/Result"
import { type Decoded, DecodeError } from "./DecodeError.ts"
import { ADDR_SIZE, AUTH_COOKIE_SIZE, CSUM_SIZE, ID_SIZE } from "./DnetConstants.ts"
import {
  i32le,
  putI64le,
  putU16le,
  putU32le,
  putU64leBig,
  u16le,
  u32le,
  u64le,
  u64leBig,
  view
} from "./internal/bytes.ts"

/**
 * Encoder and decoder of one fixed-size struct.
 *
 * @since 0.1.0
 * @category models
 */
export interface Codec<A> {
  /** The C name, used in errors (`"dnet_cmd"`). */
  readonly name: string
  /** Bytes on the wire. */
  readonly size: number
  /** Reads the struct at `offset` (default 0); fails when fewer than `size` bytes are left or a field is invalid. */
  readonly decode: (bytes: Uint8Array, offset?: number) => Decoded<A>
  /** Writes the struct at `offset`; the caller guarantees `size` bytes of room. */
  readonly write: (bytes: Uint8Array, offset: number, value: A) => void
  /** Encodes into a new buffer of exactly `size` bytes. */
  readonly encode: (value: A) => Uint8Array
}

/**
 * `struct dnet_id` (72 bytes): the target of a command.
 *
 * @since 0.1.0
 * @category models
 */
export interface Id {
  /** `id[64]` at 0: the object or node ID, compared as unsigned bytes. */
  readonly id: Uint8Array
  /** `u32` at 64: the replica group. */
  readonly groupId: number
  /** `int` at 68: eblob column (0 data, 1 metadata, -1 all columns in DEL). */
  readonly type: number
}

/**
 * `struct dnet_cmd` (96 bytes): the main header of every packet.
 *
 * @since 0.1.0
 * @category models
 */
export interface Cmd {
  /** `dnet_id` at 0. */
  readonly id: Id
  /** `u32` at 72: `CmdFlags`. */
  readonly flags: number
  /** `int` at 76: 0 in requests; 0 or a negative errno in replies. */
  readonly status: number
  /** `u64` at 80: transaction number; bit 63 (`TRANS_REPLY`) marks a reply. */
  readonly trans: bigint
  /** `u64` at 88: bytes following the header. */
  readonly size: number
}

/**
 * `struct dnet_attr` (24 bytes): the header of one attribute (one command) inside a packet.
 *
 * @since 0.1.0
 * @category models
 */
export interface Attr {
  /** `u64` at 0: payload bytes following this header. */
  readonly size: number
  /** `u32` at 8: `Command`. */
  readonly cmd: number
  /** `u32` at 12: `AttrFlags`, meaning per command. */
  readonly flags: number
  /** `u32[2]` at 16, zero on the wire; present only when some byte is not zero. */
  readonly unused?: Uint8Array
}

/**
 * `struct dnet_io_attr` (168 bytes): what an IO command reads or writes.
 *
 * @since 0.1.0
 * @category models
 */
export interface IoAttr {
  /** `u8[64]` at 0: owning object; end key of range requests; checksum for CAS. */
  readonly parent: Uint8Array
  /** `u8[64]` at 64: the record's key; start key of range requests. */
  readonly id: Uint8Array
  /** `u64` at 128: range LIMIT start. */
  readonly start: number
  /** `u64` at 136: range LIMIT count; bytes to reserve with PREPARE; records processed in a range trailer. */
  readonly num: number
  /** `int` at 144: column (the original never byte-swaps it; the same on little-endian). */
  readonly type: number
  /** `u32` at 148: `IoFlags`. */
  readonly flags: number
  /** `u64` at 152: byte offset inside the object. */
  readonly offset: number
  /** `u64` at 160: data bytes that follow (WRITE), wanted (READ, 0 = all) or returned (READ reply). */
  readonly size: number
}

/**
 * `struct dnet_addr` (32 bytes): a socket address.
 *
 * @since 0.1.0
 * @category models
 */
export interface Addr {
  /** `u8[28]` at 0: the `sockaddr` bytes as the host laid them out. */
  readonly addr: Uint8Array
  /** `u32` at 28: how many of them are meaningful. */
  readonly addrLen: number
}

/**
 * `struct dnet_addr_attr` (40 bytes): a node address with its socket parameters.
 *
 * @since 0.1.0
 * @category models
 */
export interface AddrAttr {
  /** `u16` at 0. */
  readonly sockType: number
  /** `u16` at 2: address family (2 IPv4, 10 IPv6). */
  readonly family: number
  /** `u32` at 4. */
  readonly proto: number
  /** `dnet_addr` at 8. */
  readonly addr: Addr
}

/**
 * `struct dnet_time` (16 bytes).
 *
 * @since 0.1.0
 * @category models
 */
export interface Time {
  /** `u64` at 0: seconds. */
  readonly tsec: bigint
  /** `u64` at 8: nanoseconds. */
  readonly tnsec: bigint
}

/**
 * `struct dnet_file_info` (200 bytes; `flen` bytes of file name follow it on the wire): what LOOKUP and WRITE
 * replies say about the stored object.
 *
 * @since 0.1.0
 * @category models
 */
export interface FileInfo {
  /** `int` at 0: length of the file name after the struct. */
  readonly flen: number
  /** `u8[64]` at 4. */
  readonly checksum: Uint8Array
  /** `u32` at 68. */
  readonly nlink: number
  /** `u64` at 72. */
  readonly mode: number
  /** `u64` at 80. */
  readonly dev: bigint
  /** `u64` at 88. */
  readonly rdev: bigint
  /** `u64` at 96. */
  readonly ino: bigint
  /** `u64` at 104. */
  readonly uid: number
  /** `u64` at 112. */
  readonly gid: number
  /** `u64` at 120. */
  readonly blksize: number
  /** `u64` at 128. */
  readonly blocks: number
  /** `u64` at 136: object size. */
  readonly size: number
  /** `u64` at 144: record offset within a blob. */
  readonly offset: number
  /** `dnet_time` at 152. */
  readonly atime: Time
  /** `dnet_time` at 168. */
  readonly ctime: Time
  /** `dnet_time` at 184. */
  readonly mtime: Time
}

/**
 * `struct dnet_stat` (392 bytes): the STAT reply.
 *
 * @since 0.1.0
 * @category models
 */
export interface Stat {
  /** `u16[3]` at 0: load averages x100. */
  readonly la: readonly [number, number, number]
  /** `u16` at 6. */
  readonly namemax: number
  /** `u64` at 8. */
  readonly bsize: number
  /** `u64` at 16. */
  readonly frsize: number
  /** `u64` at 24. */
  readonly blocks: number
  /** `u64` at 32. */
  readonly bfree: number
  /** `u64` at 40. */
  readonly bavail: number
  /** `u64` at 48. */
  readonly files: number
  /** `u64` at 56. */
  readonly ffree: number
  /** `u64` at 64. */
  readonly favail: number
  /** `u64` at 72: filesystem id, opaque. */
  readonly fsid: bigint
  /** `u64` at 80: mount flags, opaque. */
  readonly flag: bigint
  /** `u64` at 88, KiB. */
  readonly vmActive: number
  /** `u64` at 96, KiB. */
  readonly vmInactive: number
  /** `u64` at 104, KiB. */
  readonly vmTotal: number
  /** `u64` at 112, KiB. */
  readonly vmFree: number
  /** `u64` at 120, KiB. */
  readonly vmCached: number
  /** `u64` at 128, KiB. */
  readonly vmBuffers: number
  /** `u64[32]` at 136; present only when some byte is not zero. */
  readonly reserved?: Uint8Array
}

/**
 * `struct dnet_node_status` (12 bytes): STATUS request and reply; -1 in a request means "leave unchanged".
 *
 * @since 0.1.0
 * @category models
 */
export interface NodeStatus {
  /** `int` at 0. */
  readonly nflags: number
  /** `int` at 4: `NodeStatusFlags`. */
  readonly statusFlags: number
  /** `u32` at 8. */
  readonly logMask: number
}

/**
 * `struct dnet_auth` (64 bytes): the AUTH request.
 *
 * @since 0.1.0
 * @category models
 */
export interface Auth {
  /** `char[32]` at 0: the cookie, NUL-padded. */
  readonly cookie: Uint8Array
  /** `u64` at 32. */
  readonly flags: bigint
  /** `u64[3]` at 40; present only when some byte is not zero. */
  readonly unused?: Uint8Array
}

/**
 * Reads the fields of one struct relative to its start and remembers the first invalid one, so decoders read
 * every field in one expression and fail once at the end instead of throwing.
 */
class Fields {
  readonly bytes: Uint8Array
  readonly base: number
  readonly struct: string
  failure: DecodeError | undefined = undefined
  constructor(bytes: Uint8Array, base: number, struct: string) {
    this.bytes = bytes
    this.base = base
    this.struct = struct
  }
  u16(at: number): number {
    return u16le(this.bytes, this.base + at)
  }
  u32(at: number): number {
    return u32le(this.bytes, this.base + at)
  }
  i32(at: number): number {
    return i32le(this.bytes, this.base + at)
  }
  u64(at: number, field: string): number {
    const value = u64le(this.bytes, this.base + at)
    if (value !== undefined) return value
    this.failure ??= new DecodeError({
      protocol: "dnet",
      packet: this.struct,
      offset: this.base + at,
      reason: `${this.struct}.${field} is ${u64leBig(this.bytes, this.base + at)}, above 2^53 - 1`
    })
    return 0
  }
  u64Big(at: number): bigint {
    return u64leBig(this.bytes, this.base + at)
  }
  view(at: number, length: number): Uint8Array {
    return view(this.bytes, this.base + at, length)
  }
  /** A reserved region: undefined when all zero (the normal case), else a view of it. */
  reserved(at: number, length: number): Uint8Array | undefined {
    for (let i = this.base + at, end = i + length; i < end; i++) {
      if (this.bytes[i] !== 0) return this.view(at, length)
    }
    return undefined
  }
}

/** Copies `value` into a fixed-size array field, truncating or zero-padding it as the original does for IDs. */
const putFixed = (bytes: Uint8Array, offset: number, length: number, value: Uint8Array | undefined): void => {
  if (value === undefined) {
    bytes.fill(0, offset, offset + length)
  } else if (value.length === length) {
    bytes.set(value, offset) // the usual case: a full-size id, no padding to write
  } else if (value.length > length) {
    bytes.set(value.subarray(0, length), offset)
  } else {
    bytes.set(value, offset)
    bytes.fill(0, offset + value.length, offset + length)
  }
}

const make = <A>(
  name: string,
  size: number,
  read: (fields: Fields, at: number) => A,
  write: (bytes: Uint8Array, offset: number, value: A) => void
): Codec<A> => ({
  name,
  size,
  decode: (bytes, offset = 0) => {
    if (!(offset >= 0 && bytes.length - offset >= size)) {
      return Result.fail(
        new DecodeError({
          protocol: "dnet",
          packet: name,
          offset,
          reason: `${name} needs ${size} bytes, ${Math.max(0, bytes.length - offset)} left`
        })
      )
    }
    const fields = new Fields(bytes, offset, name)
    const value = read(fields, 0)
    return fields.failure === undefined ? Result.succeed(value) : Result.fail(fields.failure)
  },
  write,
  encode: (value) => {
    const bytes = new Uint8Array(size)
    write(bytes, 0, value)
    return bytes
  }
})

const readId = (f: Fields, at: number): Id => ({
  id: f.view(at, ID_SIZE),
  groupId: f.u32(at + 64),
  type: f.i32(at + 68)
})

const writeId = (b: Uint8Array, o: number, v: Id): void => {
  putFixed(b, o, ID_SIZE, v.id)
  putU32le(b, o + 64, v.groupId)
  putU32le(b, o + 68, v.type)
}

/**
 * Codec of `dnet_id`.
 *
 * @since 0.1.0
 * @category codecs
 */
export const Id: Codec<Id> = make<Id>("dnet_id", 72, readId, writeId)

/**
 * Codec of `dnet_cmd`.
 *
 * @since 0.1.0
 * @category codecs
 */
export const Cmd: Codec<Cmd> = make<Cmd>("dnet_cmd", 96, (f, at) => ({
  id: readId(f, at),
  flags: f.u32(at + 72),
  status: f.i32(at + 76),
  trans: f.u64Big(at + 80),
  size: f.u64(at + 88, "size")
}), (b, o, v) => {
  writeId(b, o, v.id)
  putU32le(b, o + 72, v.flags)
  putU32le(b, o + 76, v.status)
  putU64leBig(b, o + 80, v.trans)
  putI64le(b, o + 88, v.size)
})

/**
 * Codec of `dnet_attr`.
 *
 * @since 0.1.0
 * @category codecs
 */
export const Attr: Codec<Attr> = make<Attr>("dnet_attr", 24, (f, at) => {
  const size = f.u64(at, "size")
  const cmd = f.u32(at + 8)
  const flags = f.u32(at + 12)
  const unused = f.reserved(at + 16, 8)
  // Two literal shapes rather than a spread: this runs once per attribute on the hot path.
  return unused === undefined ? { size, cmd, flags } : { size, cmd, flags, unused }
}, (b, o, v) => {
  putI64le(b, o, v.size)
  putU32le(b, o + 8, v.cmd)
  putU32le(b, o + 12, v.flags)
  putFixed(b, o + 16, 8, v.unused)
})

/**
 * Codec of `dnet_io_attr`.
 *
 * @since 0.1.0
 * @category codecs
 */
export const IoAttr: Codec<IoAttr> = make<IoAttr>("dnet_io_attr", 168, (f, at) => ({
  parent: f.view(at, ID_SIZE),
  id: f.view(at + 64, ID_SIZE),
  start: f.u64(at + 128, "start"),
  num: f.u64(at + 136, "num"),
  type: f.i32(at + 144),
  flags: f.u32(at + 148),
  offset: f.u64(at + 152, "offset"),
  size: f.u64(at + 160, "size")
}), (b, o, v) => {
  putFixed(b, o, ID_SIZE, v.parent)
  putFixed(b, o + 64, ID_SIZE, v.id)
  putI64le(b, o + 128, v.start)
  putI64le(b, o + 136, v.num)
  putU32le(b, o + 144, v.type)
  putU32le(b, o + 148, v.flags)
  putI64le(b, o + 152, v.offset)
  putI64le(b, o + 160, v.size)
})

const readAddr = (f: Fields, at: number): Addr => ({ addr: f.view(at, ADDR_SIZE), addrLen: f.u32(at + 28) })

const writeAddr = (b: Uint8Array, o: number, v: Addr): void => {
  putFixed(b, o, ADDR_SIZE, v.addr)
  putU32le(b, o + 28, v.addrLen)
}

/**
 * Codec of `dnet_addr`.
 *
 * @since 0.1.0
 * @category codecs
 */
export const Addr: Codec<Addr> = make<Addr>("dnet_addr", 32, readAddr, writeAddr)

/**
 * Codec of `dnet_addr_attr`.
 *
 * @since 0.1.0
 * @category codecs
 */
export const AddrAttr: Codec<AddrAttr> = make<AddrAttr>("dnet_addr_attr", 40, (f, at) => ({
  sockType: f.u16(at),
  family: f.u16(at + 2),
  proto: f.u32(at + 4),
  addr: readAddr(f, at + 8)
}), (b, o, v) => {
  putU16le(b, o, v.sockType)
  putU16le(b, o + 2, v.family)
  putU32le(b, o + 4, v.proto)
  writeAddr(b, o + 8, v.addr)
})

const readTime = (f: Fields, at: number): Time => ({ tsec: f.u64Big(at), tnsec: f.u64Big(at + 8) })

const writeTime = (b: Uint8Array, o: number, v: Time): void => {
  putU64leBig(b, o, v.tsec)
  putU64leBig(b, o + 8, v.tnsec)
}

/**
 * Codec of `dnet_time`.
 *
 * @since 0.1.0
 * @category codecs
 */
export const Time: Codec<Time> = make<Time>("dnet_time", 16, readTime, writeTime)

/**
 * Codec of `dnet_file_info` (the fixed part; the `flen`-byte name that follows is the caller's).
 *
 * @since 0.1.0
 * @category codecs
 */
export const FileInfo: Codec<FileInfo> = make<FileInfo>("dnet_file_info", 200, (f, at) => ({
  flen: f.i32(at),
  checksum: f.view(at + 4, CSUM_SIZE),
  nlink: f.u32(at + 68),
  mode: f.u64(at + 72, "mode"),
  dev: f.u64Big(at + 80),
  rdev: f.u64Big(at + 88),
  ino: f.u64Big(at + 96),
  uid: f.u64(at + 104, "uid"),
  gid: f.u64(at + 112, "gid"),
  blksize: f.u64(at + 120, "blksize"),
  blocks: f.u64(at + 128, "blocks"),
  size: f.u64(at + 136, "size"),
  offset: f.u64(at + 144, "offset"),
  atime: readTime(f, at + 152),
  ctime: readTime(f, at + 168),
  mtime: readTime(f, at + 184)
}), (b, o, v) => {
  putU32le(b, o, v.flen)
  putFixed(b, o + 4, CSUM_SIZE, v.checksum)
  putU32le(b, o + 68, v.nlink)
  putI64le(b, o + 72, v.mode)
  putU64leBig(b, o + 80, v.dev)
  putU64leBig(b, o + 88, v.rdev)
  putU64leBig(b, o + 96, v.ino)
  putI64le(b, o + 104, v.uid)
  putI64le(b, o + 112, v.gid)
  putI64le(b, o + 120, v.blksize)
  putI64le(b, o + 128, v.blocks)
  putI64le(b, o + 136, v.size)
  putI64le(b, o + 144, v.offset)
  writeTime(b, o + 152, v.atime)
  writeTime(b, o + 168, v.ctime)
  writeTime(b, o + 184, v.mtime)
})

/**
 * Codec of `dnet_stat`.
 *
 * @since 0.1.0
 * @category codecs
 */
export const Stat: Codec<Stat> = make<Stat>("dnet_stat", 392, (f, at) => {
  const reserved = f.reserved(at + 136, 256)
  return {
    la: [f.u16(at), f.u16(at + 2), f.u16(at + 4)],
    namemax: f.u16(at + 6),
    bsize: f.u64(at + 8, "bsize"),
    frsize: f.u64(at + 16, "frsize"),
    blocks: f.u64(at + 24, "blocks"),
    bfree: f.u64(at + 32, "bfree"),
    bavail: f.u64(at + 40, "bavail"),
    files: f.u64(at + 48, "files"),
    ffree: f.u64(at + 56, "ffree"),
    favail: f.u64(at + 64, "favail"),
    fsid: f.u64Big(at + 72),
    flag: f.u64Big(at + 80),
    vmActive: f.u64(at + 88, "vm_active"),
    vmInactive: f.u64(at + 96, "vm_inactive"),
    vmTotal: f.u64(at + 104, "vm_total"),
    vmFree: f.u64(at + 112, "vm_free"),
    vmCached: f.u64(at + 120, "vm_cached"),
    vmBuffers: f.u64(at + 128, "vm_buffers"),
    ...(reserved && { reserved })
  }
}, (b, o, v) => {
  putU16le(b, o, v.la[0])
  putU16le(b, o + 2, v.la[1])
  putU16le(b, o + 4, v.la[2])
  putU16le(b, o + 6, v.namemax)
  putI64le(b, o + 8, v.bsize)
  putI64le(b, o + 16, v.frsize)
  putI64le(b, o + 24, v.blocks)
  putI64le(b, o + 32, v.bfree)
  putI64le(b, o + 40, v.bavail)
  putI64le(b, o + 48, v.files)
  putI64le(b, o + 56, v.ffree)
  putI64le(b, o + 64, v.favail)
  putU64leBig(b, o + 72, v.fsid)
  putU64leBig(b, o + 80, v.flag)
  putI64le(b, o + 88, v.vmActive)
  putI64le(b, o + 96, v.vmInactive)
  putI64le(b, o + 104, v.vmTotal)
  putI64le(b, o + 112, v.vmFree)
  putI64le(b, o + 120, v.vmCached)
  putI64le(b, o + 128, v.vmBuffers)
  putFixed(b, o + 136, 256, v.reserved)
})

/**
 * Codec of `dnet_node_status`.
 *
 * @since 0.1.0
 * @category codecs
 */
export const NodeStatus: Codec<NodeStatus> = make<NodeStatus>("dnet_node_status", 12, (f, at) => ({
  nflags: f.i32(at),
  statusFlags: f.i32(at + 4),
  logMask: f.u32(at + 8)
}), (b, o, v) => {
  putU32le(b, o, v.nflags)
  putU32le(b, o + 4, v.statusFlags)
  putU32le(b, o + 8, v.logMask)
})

/**
 * Codec of `dnet_auth`.
 *
 * @since 0.1.0
 * @category codecs
 */
export const Auth: Codec<Auth> = make<Auth>("dnet_auth", 64, (f, at) => {
  const unused = f.reserved(at + 40, 24)
  return {
    cookie: f.view(at, AUTH_COOKIE_SIZE),
    flags: f.u64Big(at + 32),
    ...(unused && { unused })
  }
}, (b, o, v) => {
  putFixed(b, o, AUTH_COOKIE_SIZE, v.cookie)
  putU64leBig(b, o + 32, v.flags)
  putFixed(b, o + 40, 24, v.unused)
})
