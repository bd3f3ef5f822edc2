/**
 * Wire helpers shared by the dnet node and client: packets laid out as byte arrays for a gather write (large
 * data by reference, never copied), a stream reader that tells a packet with a bad attribute (which can still be
 * answered, since its length is known) from a broken stream (which cannot), reply construction with the MORE
 * rule of §3.2, and the `dnet_addr_attr` form of transport addresses.
 */
import { CmdFlags, ID_SIZE, TRANS_REPLY } from "@tessera/codec/DnetConstants"
import * as DnetPacket from "@tessera/codec/DnetPacket"
import { AddrAttr, Attr, Cmd, type Id, IoAttr } from "@tessera/codec/DnetStructs"
import * as StreamParser from "@tessera/codec/StreamParser"
import * as Result from "effect/Result"
import { Buffer } from "node:buffer"
import * as Net from "node:net"
import * as Address from "../Address.ts"
import type * as DnetRing from "../DnetRing.ts"

/** Data above this size goes to the transport by reference next to its headers. */
const COPY_BELOW = 4096

/**
 * A zeroed array for packet bytes. Small ones come from Node's shared buffer pool, several times cheaper than
 * a typed array with its own memory (this is on every request's path).
 */
export const zeroed = (size: number): Uint8Array => Buffer.allocUnsafe(size).fill(0)

/** The byte arrays of one packet, in order: headers (and small data) copied together, large data by reference. */
export const encodeParts = (packet: DnetPacket.Packet): Array<Uint8Array> => {
  const attrs = packet.attrs
  let size = 0
  // Bytes of the first copied stretch: everything up to and including the first large data's headers.
  let first = DnetPacket.HEADER_SIZE
  let large = false
  for (const attribute of attrs) {
    const head = DnetPacket.ATTR_SIZE + (attribute.io === undefined ? 0 : DnetPacket.IO_ATTR_SIZE)
    size += head + attribute.data.length
    if (large) continue
    first += head
    if (attribute.data.length >= COPY_BELOW) large = true
    else first += attribute.data.length
  }
  const parts: Array<Uint8Array> = []
  let buffer = zeroed(first)
  Cmd.write(buffer, 0, { id: packet.id, flags: packet.flags, status: packet.status, trans: packet.trans, size })
  let at = DnetPacket.HEADER_SIZE
  for (let i = 0; i < attrs.length; i++) {
    const attribute = attrs[i]!
    Attr.write(
      buffer,
      at,
      attribute.unused === undefined ?
        {
          size: DnetPacket.attributeSize(attribute),
          cmd: attribute.cmd,
          flags: attribute.flags
        } :
        {
          size: DnetPacket.attributeSize(attribute),
          cmd: attribute.cmd,
          flags: attribute.flags,
          unused: attribute.unused
        }
    )
    at += DnetPacket.ATTR_SIZE
    if (attribute.io !== undefined) {
      IoAttr.write(buffer, at, attribute.io)
      at += DnetPacket.IO_ATTR_SIZE
    }
    if (attribute.data.length >= COPY_BELOW) {
      parts.push(at === buffer.length ? buffer : buffer.subarray(0, at), attribute.data)
      buffer = zeroed(stretch(attrs, i + 1))
      at = 0
    } else {
      buffer.set(attribute.data, at)
      at += attribute.data.length
    }
  }
  if (at > 0) parts.push(at === buffer.length ? buffer : buffer.subarray(0, at))
  return parts
}

/** Bytes copied from attribute `from` on: headers and small data, up to and including the next large data's headers. */
const stretch = (attrs: ReadonlyArray<DnetPacket.Attribute>, from: number): number => {
  let bytes = 0
  for (let i = from; i < attrs.length; i++) {
    const attribute = attrs[i]!
    bytes += DnetPacket.ATTR_SIZE + (attribute.io === undefined ? 0 : DnetPacket.IO_ATTR_SIZE)
    if (attribute.data.length >= COPY_BELOW) return bytes
    bytes += attribute.data.length
  }
  return bytes
}

/** One item of a packet stream: a whole packet, or a packet whose header is sound and whose body is not. */
export type Incoming =
  | {
    readonly _tag: "Packet"
    readonly packet: DnetPacket.Packet
    readonly size: number
    /** Whether the packet's bytes are a buffer of its own (a big packet): then `release` gives it back. */
    readonly owned: boolean
    /** Gives the packet's bytes back for reuse: call once nothing refers to them any more. */
    readonly release: () => void
  }
  | {
    readonly _tag: "Invalid"
    readonly id: Id
    readonly flags: number
    readonly trans: bigint
    readonly reason: string
    readonly size: number
    readonly release: () => void
  }

/** Packets at least this big that arrive in pieces are assembled into pooled buffers. */
const POOL_FROM = 1024 * 1024

/**
 * Buffers for assembling big packets, reused: a fresh 64 MiB array costs a page fault per 4 KiB on first touch,
 * which is slower than the copy into it. Holds at most `maxBytes`; shared by every connection of a node.
 */
export class BufferPool {
  readonly maxBytes: number
  readonly #spare: ((size: number) => Uint8Array | undefined) | undefined
  #free: Array<ArrayBuffer> = []
  #bytes = 0
  /** `spare` is asked first: memory a store no longer needs (`ObjectStore.Store.spare`). */
  constructor(maxBytes: number, spare?: ((size: number) => Uint8Array | undefined) | undefined) {
    this.maxBytes = maxBytes
    this.#spare = spare
  }
  /** A buffer of `size` bytes (its contents are garbage). */
  take(size: number): Uint8Array {
    const spared = this.#spare?.(size)
    if (spared !== undefined) return spared
    const at = this.#free.findIndex((buffer) => buffer.byteLength >= size)
    if (at < 0) return new Uint8Array(size)
    const [buffer] = this.#free.splice(at, 1)
    this.#bytes -= buffer!.byteLength
    return new Uint8Array(buffer!, 0, size)
  }
  /** Takes a buffer back; dropped when the pool is full. */
  give(bytes: Uint8Array): void {
    const buffer = bytes.buffer as ArrayBuffer
    if (this.#bytes + buffer.byteLength > this.maxBytes) return
    this.#free.push(buffer)
    this.#bytes += buffer.byteLength
  }
}

const noRelease = (): void => {}

/**
 * A parser of a dnet stream into `Incoming` items. Only a header announcing more than `maxPacketSize` bytes (or
 * the end of the stream inside a packet) fails it: past such a header the stream cannot be followed. A packet
 * inside one received chunk is a view of it; a big one (from `POOL_FROM` bytes) is received into a buffer of
 * `pool`, given back by its `release`. With `receiveInto` (the connection's, when it has one) the rest of a big
 * packet is read from the OS straight into that buffer, so only what had already arrived is copied.
 */
export const makeReader = (
  maxPacketSize: number,
  pool: BufferPool,
  receiveInto?: ((target: Uint8Array, position: number) => void) | undefined
): StreamParser.StreamParser<Incoming> => {
  let assembled: Uint8Array | undefined
  const parser = StreamParser.make<Incoming>({
    protocol: "dnet",
    name: "packet",
    headerSize: DnetPacket.HEADER_SIZE,
    frameLength: (header) => DnetPacket.HEADER_SIZE + readSize(header),
    maxFrameLength: maxPacketSize,
    decodeFrame: ({ bytes }) => {
      const release = assembled === undefined ? noRelease : releaser(assembled)
      assembled = undefined
      const decoded = DnetPacket.decodePacket(bytes)
      if (Result.isSuccess(decoded)) {
        return Result.succeed({
          _tag: "Packet",
          packet: decoded.success,
          size: bytes.length,
          owned: release !== noRelease,
          release
        })
      }
      // The length was within the cap, so the header itself decodes; only the attributes are wrong.
      const header = Result.getOrThrow(Cmd.decode(bytes, 0))
      return Result.succeed({
        _tag: "Invalid",
        id: { ...header.id, id: header.id.id.slice() },
        flags: header.flags,
        trans: header.trans,
        reason: decoded.failure.reason,
        size: bytes.length,
        release
      })
    }
  })
  const releaser = (bytes: Uint8Array) => {
    let given = false
    return () => {
      if (given) return
      given = true
      pool.give(bytes)
    }
  }
  /** Stream bytes pushed so far. */
  let position = 0
  // The big packet being received, and how many of its bytes are in; once whole it goes to the parser as one
  // chunk, so the parser hands it out as a view.
  let big: Uint8Array | undefined
  let filled = 0
  const feed = (chunk: Uint8Array): ReturnType<typeof parser.push> => {
    const start = position
    position += chunk.length
    if (big === undefined) {
      // Between big packets: does this chunk (with what the parser holds) start one that spans chunks?
      if (parser.buffered() === 0 && chunk.length >= DnetPacket.HEADER_SIZE) {
        const length = DnetPacket.HEADER_SIZE + readSize(chunk)
        if (length >= POOL_FROM && length <= maxPacketSize && length > chunk.length) {
          big = pool.take(length)
          big.set(chunk)
          filled = chunk.length
          receiveInto?.(big, start)
          return Result.succeed([])
        }
      }
      return parser.push(chunk)
    }
    const n = Math.min(chunk.length, big.length - filled)
    const inPlace = chunk.buffer === big.buffer && chunk.byteOffset === big.byteOffset + filled
    if (!inPlace) big.set(n === chunk.length ? chunk : chunk.subarray(0, n), filled)
    filled += n
    if (filled < big.length) return Result.succeed([])
    assembled = big
    const first = parser.push(big)
    big = undefined
    if (Result.isFailure(first) || n === chunk.length) return first
    // The bytes after the packet start at their own stream position.
    position = start + n
    const more = feed(chunk.subarray(n))
    if (Result.isFailure(more)) return first.success.length > 0 ? first : more
    return Result.succeed([...first.success, ...more.success])
  }
  return {
    push: feed,
    end: () => {
      // A big packet cut short: hand what came of it to the parser, which says how much that was.
      if (big !== undefined) parser.push(big.subarray(0, filled))
      big = undefined
      filled = 0
      return parser.end()
    },
    buffered: () => parser.buffered() + (big === undefined ? 0 : filled)
  }
}

/** `dnet_cmd.size` as a double: exact below 2^53, and only compared as too big above it. */
const readSize = (header: Uint8Array): number =>
  (header[88]! | (header[89]! << 8) | (header[90]! << 16)) + header[91]! * 0x100_0000 +
  (header[92]! | (header[93]! << 8) | (header[94]! << 16)) * 0x1_0000_0000 + header[95]! * 0x100_0000_0000_0000

/** Whether a request asks for the final ACK. */
export const needsAck = (flags: number): boolean => (flags & CmdFlags.NEED_ACK) !== 0

/**
 * The header fields of a reply to `request` (§3.2): its transaction with the reply bit, its flags without
 * NEED_ACK and MORE, then MORE when the caller says more follow or the request wants the final ACK.
 */
export const replyHeader = (
  request: { readonly id: Id; readonly flags: number; readonly trans: bigint },
  more: boolean,
  id: Id = request.id
): { readonly id: Id; readonly flags: number; readonly status: number; readonly trans: bigint } => ({
  id,
  flags: ((request.flags & ~(CmdFlags.NEED_ACK | CmdFlags.MORE)) |
    (more || needsAck(request.flags) ? CmdFlags.MORE : 0)) >>> 0,
  status: 0,
  trans: request.trans | TRANS_REPLY
})

/** The final ACK of a request (§3.1 step 4). */
export const ackOf = (
  request: { readonly id: Id; readonly flags: number; readonly trans: bigint },
  status: number
): DnetPacket.Packet => ({
  id: request.id,
  flags: (request.flags & ~(CmdFlags.NEED_ACK | CmdFlags.MORE)) >>> 0,
  status,
  trans: request.trans | TRANS_REPLY,
  attrs: []
})

// --- addresses -------------------------------------------------------------------------------------------------

const AF_UNIX = 1
const AF_INET = 2
const AF_INET6 = 10
const SOCK_STREAM = 1
const IPPROTO_TCP = 6
/** `sun_path` bytes that fit in `dnet_addr.addr` after the 2-byte family. */
const MAX_UNIX_PATH = 26

/**
 * The `dnet_addr_attr` of a transport address: a Linux `sockaddr_in` / `sockaddr_in6` for TCP to an IP literal,
 * a `sockaddr_un` cut to its path for a Unix socket path of at most 26 bytes; `undefined` for anything else
 * (host names, long paths, memory pipes), which a route table cannot carry.
 */
export const addrAttrOf = (address: string): AddrAttr | undefined => {
  const parsed = Address.parse(address)
  if (Result.isFailure(parsed)) return undefined
  const a = parsed.success
  const addr = new Uint8Array(28)
  const view = new DataView(addr.buffer)
  if (a._tag === "Tcp") {
    const version = Net.isIP(a.host)
    if (version === 4) {
      view.setUint16(0, AF_INET, true)
      view.setUint16(2, a.port, false)
      addr.set(a.host.split(".").map(Number), 4)
      return { sockType: SOCK_STREAM, family: AF_INET, proto: IPPROTO_TCP, addr: { addr, addrLen: 16 } }
    }
    if (version === 6) {
      view.setUint16(0, AF_INET6, true)
      view.setUint16(2, a.port, false)
      addr.set(ipv6Bytes(a.host), 8)
      return { sockType: SOCK_STREAM, family: AF_INET6, proto: IPPROTO_TCP, addr: { addr, addrLen: 28 } }
    }
    return undefined
  }
  if (a._tag === "Unix") {
    const path = new TextEncoder().encode(a.path)
    if (path.length > MAX_UNIX_PATH) return undefined
    view.setUint16(0, AF_UNIX, true)
    addr.set(path, 2)
    return { sockType: SOCK_STREAM, family: AF_UNIX, proto: 0, addr: { addr, addrLen: 2 + path.length } }
  }
  return undefined
}

/** The transport address a `dnet_addr_attr` names, or `undefined` when it is not one `addrAttrOf` can make. */
export const addressOf = (attr: AddrAttr): string | undefined => {
  const { addr, addrLen } = attr.addr
  const view = new DataView(addr.buffer, addr.byteOffset, addr.length)
  switch (attr.family) {
    case AF_INET:
      if (addrLen !== 16) return undefined
      return Address.format(Address.tcp([...addr.subarray(4, 8)].join("."), view.getUint16(2, false)))
    case AF_INET6: {
      if (addrLen !== 28) return undefined
      const groups: Array<string> = []
      for (let i = 8; i < 24; i += 2) groups.push(view.getUint16(i, false).toString(16))
      return Address.format(Address.tcp(groups.join(":"), view.getUint16(2, false)))
    }
    case AF_UNIX: {
      if (addrLen <= 2 || addrLen > 2 + MAX_UNIX_PATH) return undefined
      const path = addr.subarray(2, addrLen)
      return path.includes(0) ? undefined : Address.format(Address.unix(new TextDecoder().decode(path)))
    }
    default:
      return undefined
  }
}

const ipv6Bytes = (host: string): Uint8Array => {
  // Expand "::" and an embedded IPv4 tail into eight 16-bit groups.
  const out = new Uint8Array(16)
  let text = host
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)
  if (v4 !== null) {
    const [a, b, c, d] = v4[1]!.split(".").map(Number)
    text = text.slice(0, v4.index) + `${((a! << 8) | b!).toString(16)}:${((c! << 8) | d!).toString(16)}`
  }
  const [head, tail] = text.includes("::") ? text.split("::") as [string, string] : [text, undefined]
  const left = head === "" ? [] : head.split(":")
  const right = tail === undefined || tail === "" ? [] : tail.split(":")
  const groups = tail === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill("0"), ...right]
  groups.forEach((group, i) => {
    const value = parseInt(group, 16)
    out[2 * i] = value >> 8
    out[2 * i + 1] = value & 0xff
  })
  return out
}

/** Raw ids laid end to end, as copies (they outlive the packet they came in). */
export const splitIds = (bytes: Uint8Array): Array<Uint8Array> => {
  const out: Array<Uint8Array> = []
  for (let at = 0; at + ID_SIZE <= bytes.length; at += ID_SIZE) out.push(bytes.slice(at, at + ID_SIZE))
  return out
}

/**
 * The route in a REVERSE_LOOKUP or ROUTE_LIST reply (`dnet_addr_attr` + ids, the group in the header);
 * `fallback` names a node whose address is blank or not one a route can hold.
 */
export const routeOf = (packet: DnetPacket.Packet, fallback?: string): DnetRing.Route | undefined => {
  const attr = packet.attrs[0]
  if (attr === undefined || attr.data.length < AddrAttr.size || (attr.data.length - AddrAttr.size) % ID_SIZE !== 0) {
    return undefined
  }
  const decoded = AddrAttr.decode(attr.data, 0)
  const address = (Result.isSuccess(decoded) ? addressOf(decoded.success) : undefined) ?? fallback
  if (address === undefined) return undefined
  return { address, group: packet.id.groupId, ids: splitIds(attr.data.subarray(AddrAttr.size)) }
}
