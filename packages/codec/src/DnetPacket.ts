/**
 * Whole elliptics `dnet` packets (Era B): a 96-byte `dnet_cmd` header followed by exactly `cmd.size` bytes
 * made of attributes, each a 24-byte `dnet_attr` plus `attr.size` payload bytes. For IO commands the payload
 * starts with a 168-byte `dnet_io_attr`.
 *
 * ```
 * | dnet_cmd (96) | dnet_attr (24) | payload (attr.size) | dnet_attr (24) | payload | ...
 *                                  \_ IO commands: dnet_io_attr (168) + data
 * ```
 *
 * A decoded {@link Packet} has no size fields: `encodePacket` computes `cmd.size` and every `attr.size` from
 * the contents, and `decodePacket` checks them with the server's rules (every attribute header fits, every
 * `attr.size` fits in what is left, an IO attribute holds a whole `dnet_io_attr`, and nothing is left over).
 * Size fields are compared with the bytes actually present before anything is read past them, and decoding
 * allocates nothing but the result objects: IDs and data are views of the input.
 *
 * `makeParser` cuts a byte stream into packets with `StreamParser`, refusing any header that announces more
 * than `maxPacketSize` bytes before buffering any of it.
 *
 * @since 0.1.0
 */
import * as Result from "effect/Result"
import { type Decoded, fail } from "./DecodeError.ts"
import { CmdFlags, Command, commandName, TRANS_REPLY } from "./DnetConstants.ts"
import { Attr, Cmd, type Id, IoAttr } from "./DnetStructs.ts"
import { u32le } from "./internal/bytes.ts"
import * as StreamParser from "./StreamParser.ts"

/**
 * One attribute: a command with its flags and payload.
 *
 * @since 0.1.0
 * @category models
 */
export interface Attribute {
  /** `dnet_attr.cmd`: a `Command` number. */
  readonly cmd: number
  /** `dnet_attr.flags`: `AttrFlags`. */
  readonly flags: number
  /** `dnet_attr.unused`, present only when not all zero. */
  readonly unused?: Uint8Array
  /** The IO header; present exactly when {@link carriesIoAttr} holds for `cmd` in this packet. */
  readonly io?: IoAttr
  /** The payload after the IO header (or the whole payload), a view of the decoded bytes. */
  readonly data: Uint8Array
}

/**
 * A packet: the `dnet_cmd` header fields except `size`, and its attributes. A bare header (no attributes) is
 * an ACK when it is a reply.
 *
 * @since 0.1.0
 * @category models
 */
export interface Packet {
  readonly id: Id
  /** `CmdFlags`. */
  readonly flags: number
  /** 0, or a negative errno in replies. */
  readonly status: number
  /** The raw 64-bit transaction word, reply bit included. */
  readonly trans: bigint
  readonly attrs: ReadonlyArray<Attribute>
}

/**
 * Bytes of the `dnet_cmd` header.
 *
 * @since 0.1.0
 * @category constants
 */
export const HEADER_SIZE = Cmd.size

/**
 * Bytes of a `dnet_attr` header.
 *
 * @since 0.1.0
 * @category constants
 */
export const ATTR_SIZE = Attr.size

/**
 * Bytes of a `dnet_io_attr`.
 *
 * @since 0.1.0
 * @category constants
 */
export const IO_ATTR_SIZE = IoAttr.size

/**
 * Default `maxPacketSize` of {@link makeParser}: a packet carrying 64 MiB of data in one IO attribute, with its
 * three headers. Well above the 10 MiB a client puts in one transaction, while a READ reply may carry a whole
 * object in one packet.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_MAX_PACKET_SIZE = 64 * 1024 * 1024 + HEADER_SIZE + ATTR_SIZE + IO_ATTR_SIZE

/**
 * Whether attributes of this command start with a `dnet_io_attr`: WRITE, READ, READ_RANGE, DEL_RANGE and
 * BULK_READ (requests and replies alike: range and bulk replies are READ attributes).
 *
 * @since 0.1.0
 * @category predicates
 */
export const isIoCommand = (cmd: number): boolean =>
  cmd === Command.WRITE || cmd === Command.READ || cmd === Command.READ_RANGE || cmd === Command.DEL_RANGE ||
  cmd === Command.BULK_READ

/**
 * Whether an attribute of command `cmd` starts with a `dnet_io_attr` in a request (`reply` false) or a reply:
 * the IO commands, except in a WRITE reply, whose payload is the stored object's `dnet_addr_attr` and
 * `dnet_file_info` (`specs/dnet.md` §1.7).
 *
 * @since 0.1.0
 * @category predicates
 */
export const carriesIoAttr = (cmd: number, reply: boolean): boolean =>
  isIoCommand(cmd) && !(reply && cmd === Command.WRITE)

/**
 * Whether the packet is a reply (bit 63 of `trans`).
 *
 * @since 0.1.0
 * @category predicates
 */
export const isReply = (packet: Packet): boolean => (packet.trans & TRANS_REPLY) !== 0n

/**
 * The transaction number without the reply bit.
 *
 * @since 0.1.0
 * @category getters
 */
export const transaction = (packet: Packet): bigint => packet.trans & ~TRANS_REPLY

/**
 * A name for the packet: its first attribute's command (`"WRITE"`), or `"ACK"` / `"EMPTY"` for a bare
 * reply / request header.
 *
 * @since 0.1.0
 * @category getters
 */
export const name = (packet: Packet): string =>
  packet.attrs.length > 0 ? commandName(packet.attrs[0]!.cmd) : isReply(packet) ? "ACK" : "EMPTY"

/**
 * `dnet_attr.size` of an attribute: its IO header, if any, plus its data.
 *
 * @since 0.1.0
 * @category getters
 */
export const attributeSize = (attribute: Attribute): number =>
  (attribute.io === undefined ? 0 : IO_ATTR_SIZE) + attribute.data.length

/**
 * `dnet_cmd.size` of a packet: every attribute with its header.
 *
 * @since 0.1.0
 * @category getters
 */
export const payloadSize = (packet: Packet): number => {
  let size = 0
  for (const attribute of packet.attrs) size += ATTR_SIZE + attributeSize(attribute)
  return size
}

/**
 * The final reply that ends a transaction: the request's ID, `trans | TRANS_REPLY`, the request's flags
 * without NEED_ACK and MORE, the given status, no attributes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const ack = (request: Packet, status: number): Packet => ({
  id: request.id,
  flags: (request.flags & ~(CmdFlags.NEED_ACK | CmdFlags.MORE)) >>> 0,
  status,
  trans: request.trans | TRANS_REPLY,
  attrs: []
})

/**
 * Encodes a packet into one buffer of exactly its size, computing `cmd.size` and every `attr.size`.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodePacket = (packet: Packet): Uint8Array => {
  const size = payloadSize(packet)
  const bytes = new Uint8Array(HEADER_SIZE + size)
  Cmd.write(bytes, 0, { id: packet.id, flags: packet.flags, status: packet.status, trans: packet.trans, size })
  let at = HEADER_SIZE
  for (const attribute of packet.attrs) {
    Attr.write(bytes, at, {
      size: attributeSize(attribute),
      cmd: attribute.cmd,
      flags: attribute.flags,
      ...(attribute.unused && { unused: attribute.unused })
    })
    at += ATTR_SIZE
    if (attribute.io !== undefined) {
      IoAttr.write(bytes, at, attribute.io)
      at += IO_ATTR_SIZE
    }
    bytes.set(attribute.data, at)
    at += attribute.data.length
  }
  return bytes
}

/**
 * Decodes exactly one packet. Errors carry the offset in `bytes` of the field that is wrong and, once an
 * attribute header is read, its command as the packet name.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodePacket = (bytes: Uint8Array): Decoded<Packet> => {
  const header = Cmd.decode(bytes, 0)
  if (Result.isFailure(header)) return Result.fail(header.failure)
  const cmd = header.success
  const end = bytes.length
  if (cmd.size !== end - HEADER_SIZE) {
    return fail(
      "dnet",
      "dnet_cmd",
      88,
      `dnet_cmd.size says ${cmd.size} bytes follow the header, ${end - HEADER_SIZE} do`
    )
  }
  const attrs: Array<Attribute> = []
  const reply = (cmd.trans & TRANS_REPLY) !== 0n
  let at = HEADER_SIZE
  while (at < end) {
    if (end - at < ATTR_SIZE) {
      return fail("dnet", "dnet_attr", at, `an attribute header needs ${ATTR_SIZE} bytes, ${end - at} are left`)
    }
    const decoded = Attr.decode(bytes, at)
    if (Result.isFailure(decoded)) return Result.fail(decoded.failure)
    const attr = decoded.success
    const command = commandName(attr.cmd)
    const start = at + ATTR_SIZE
    if (attr.size > end - start) {
      return fail(
        "dnet",
        command,
        at,
        `dnet_attr.size ${attr.size} exceeds the ${end - start} bytes left in the packet`
      )
    }
    const stop = start + attr.size
    let io: IoAttr | undefined
    let dataStart = start
    if (carriesIoAttr(attr.cmd, reply)) {
      if (attr.size < IO_ATTR_SIZE) {
        return fail(
          "dnet",
          command,
          at,
          `dnet_attr.size ${attr.size} cannot hold the ${IO_ATTR_SIZE}-byte dnet_io_attr`
        )
      }
      const decodedIo = IoAttr.decode(bytes, start)
      if (Result.isFailure(decodedIo)) return Result.fail(decodedIo.failure)
      io = decodedIo.success
      dataStart += IO_ATTR_SIZE
    }
    attrs.push({
      cmd: attr.cmd,
      flags: attr.flags,
      ...(attr.unused && { unused: attr.unused }),
      ...(io && { io }),
      data: bytes.subarray(dataStart, stop)
    })
    at = stop
  }
  return Result.succeed({ id: cmd.id, flags: cmd.flags, status: cmd.status, trans: cmd.trans, attrs })
}

/**
 * A packet found in a stream: its stream offset, its bytes (a view when it arrived in one chunk) and its
 * decoded form (whose data are views of those bytes).
 *
 * @since 0.1.0
 * @category models
 */
export interface ParsedPacket {
  readonly offset: number
  readonly bytes: Uint8Array
  readonly packet: Packet
}

/**
 * An incremental packet parser over one stream; error offsets are stream offsets. After an error it stays
 * failed; packets completed before the error are still delivered (see `StreamParser`).
 *
 * @since 0.1.0
 * @category models
 */
export type Parser = StreamParser.StreamParser<ParsedPacket>

/**
 * Creates a stream parser. `maxPacketSize` (header included, default {@link DEFAULT_MAX_PACKET_SIZE}) is
 * checked against `96 + cmd.size` as soon as a header is complete, so a hostile size costs nothing.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeParser = (options?: { readonly maxPacketSize?: number }): Parser =>
  StreamParser.make({
    protocol: "dnet",
    name: "packet",
    headerSize: HEADER_SIZE,
    // A double is exact below 2^53 and only needs to compare as too big above it.
    frameLength: (header) => HEADER_SIZE + u32le(header, 88) + u32le(header, 92) * 0x1_0000_0000,
    maxFrameLength: options?.maxPacketSize ?? DEFAULT_MAX_PACKET_SIZE,
    decodeFrame: ({ bytes, offset }) =>
      Result.map(decodePacket(bytes), (packet): ParsedPacket => ({ offset, bytes, packet }))
  })
