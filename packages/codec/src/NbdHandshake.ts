/**
 * The NBD handshake (fixed newstyle negotiation) as pure functions: the server greeting, the client flags,
 * option requests (header and typed bodies), option replies (header and typed bodies, `NBD_REP_INFO` items
 * included) and the reply to `NBD_OPT_EXPORT_NAME`. Every field is big-endian.
 *
 * ```text
 * S: greeting        NBDMAGIC (8) | IHAVEOPT (8) | handshake flags (2)                       18 bytes
 * C: client flags    flags (4)
 * C: option          IHAVEOPT (8) | option (4) | length (4) | data (length)
 * S: option reply    0x0003e889045565a9 (8) | option (4) | reply type (4) | length (4) | data (length)
 * S: EXPORT_NAME     export size (8) | transmission flags (2) | 124 zero bytes unless NO_ZEROES   134 or 10 bytes
 * ```
 *
 * Decoders check the layout: magics, every length against the bytes present, counts against the bytes left
 * before any array is allocated, option bodies with no data (`LIST`, `STARTTLS`, `STRUCTURED_REPLY`) and fixed
 * sizes (`NBD_REP_ACK` 0, `NBD_INFO_EXPORT` 12, `NBD_INFO_BLOCK_SIZE` 14). A malformed option body is a
 * `DecodeError` the server answers with `NBD_REP_ERR_INVALID`; the stream stays in sync because the option
 * header gave its length. Unknown options, reply types and information types decode to `Unknown*` values with
 * their bytes (a view), since the spec has servers answer `NBD_REP_ERR_UNSUP` and clients ignore unknown
 * information.
 *
 * Strings: names, queries and context names must be UTF-8 (a `DecodeError` otherwise), so they survive a round
 * trip byte for byte; text meant for people (error messages, descriptions, the details of `NBD_REP_SERVER`) is
 * decoded leniently, with U+FFFD for bad bytes. The spec's 4096-byte string limit and its ban on NUL are left
 * to the protocol layer (see `NbdConstants.MAX_STRING_LENGTH`). The 124 reserved bytes of the `EXPORT_NAME`
 * reply are skipped, not checked. An export size above 2^53 − 1 is a `DecodeError`.
 *
 * Encoders size the message exactly, allocate once and fill it. They trust field ranges (u16 / u32 fields are
 * written modulo 2^16 / 2^32) except where a value would break the framing: more than 65535 information requests
 * (a 16-bit count) is a `RangeError`.
 *
 * @since 0.1.0
 */
import * as Result from "effect/Result"
import { type Decoded, fail } from "./DecodeError.ts"
import { ByteWriter, putU16be, putU32be, putU64be, u16be, u32be, u64be, utf8, view } from "./internal/bytes.ts"
import { EMPTY, hasMagic64, lenientUtf8, magic64, putMagic64, strictUtf8 } from "./internal/nbd.ts"
import {
  CLISERV_MAGIC,
  IHAVEOPT,
  Info,
  isErrorReply,
  NBDMAGIC,
  Option,
  OPTION_REPLY_MAGIC,
  optionName,
  Reply,
  replyName
} from "./NbdConstants.ts"

const NBDMAGIC_64 = magic64(NBDMAGIC)
const IHAVEOPT_64 = magic64(IHAVEOPT)
const CLISERV_64 = magic64(CLISERV_MAGIC)
const REPLY_64 = magic64(OPTION_REPLY_MAGIC)

// -----------------------------------------------------------------------------
// sizes and caps
// -----------------------------------------------------------------------------

/**
 * Size of the newstyle server greeting.
 *
 * @since 0.1.0
 * @category constants
 */
export const GREETING_SIZE = 18

/**
 * Size of the client flags.
 *
 * @since 0.1.0
 * @category constants
 */
export const CLIENT_FLAGS_SIZE = 4

/**
 * Size of an option request header (magic, option, data length).
 *
 * @since 0.1.0
 * @category constants
 */
export const OPTION_HEADER_SIZE = 16

/**
 * Size of an option reply header (magic, option, reply type, data length).
 *
 * @since 0.1.0
 * @category constants
 */
export const OPTION_REPLY_HEADER_SIZE = 20

/**
 * Size of the `NBD_OPT_EXPORT_NAME` reply with its 124 reserved zero bytes.
 *
 * @since 0.1.0
 * @category constants
 */
export const EXPORT_NAME_REPLY_SIZE = 134

/**
 * Size of the `NBD_OPT_EXPORT_NAME` reply when the client negotiated `NBD_FLAG_C_NO_ZEROES`.
 *
 * @since 0.1.0
 * @category constants
 */
export const EXPORT_NAME_REPLY_SIZE_NO_ZEROES = 10

/**
 * Default cap on the data length of one option request or option reply (64 KiB): far above any name, query
 * list or message the spec allows, far below what would hurt.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_MAX_OPTION_LENGTH = 64 * 1024

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * The newstyle server greeting.
 *
 * @since 0.1.0
 * @category models
 */
export interface Greeting {
  readonly _tag: "Greeting"
  /** `NbdConstants.HandshakeFlags`, 16 bits. */
  readonly handshakeFlags: number
}

/**
 * The client's answer to the greeting.
 *
 * @since 0.1.0
 * @category models
 */
export interface ClientFlags {
  readonly _tag: "ClientFlags"
  /** `NbdConstants.ClientFlags`, 32 bits. */
  readonly flags: number
}

/**
 * An option request header.
 *
 * @since 0.1.0
 * @category models
 */
export interface OptionHeader {
  /** `NbdConstants.Option`, 32 bits. */
  readonly option: number
  /** Data length in bytes. */
  readonly length: number
}

/**
 * `NBD_OPT_EXPORT_NAME`: choose an export (empty name: the default export) and enter transmission.
 *
 * @since 0.1.0
 * @category models
 */
export interface ExportName {
  readonly _tag: "ExportName"
  readonly name: string
}

/**
 * `NBD_OPT_ABORT`: end the negotiation. Any data is ignored when decoding, as the spec asks of servers.
 *
 * @since 0.1.0
 * @category models
 */
export interface Abort {
  readonly _tag: "Abort"
}

/**
 * `NBD_OPT_LIST`: list the exports (no data).
 *
 * @since 0.1.0
 * @category models
 */
export interface List {
  readonly _tag: "List"
}

/**
 * `NBD_OPT_STARTTLS`: upgrade the connection to TLS (no data).
 *
 * @since 0.1.0
 * @category models
 */
export interface StartTls {
  readonly _tag: "StartTls"
}

/**
 * `NBD_OPT_INFO`: describe an export without entering transmission.
 *
 * @since 0.1.0
 * @category models
 */
export interface InfoRequest {
  readonly _tag: "Info"
  readonly name: string
  /** `NbdConstants.Info` types, 16 bits each. */
  readonly requests: ReadonlyArray<number>
}

/**
 * `NBD_OPT_GO`: like `NBD_OPT_INFO`, then transmission when the server answers `NBD_REP_ACK`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Go {
  readonly _tag: "Go"
  readonly name: string
  /** `NbdConstants.Info` types, 16 bits each. */
  readonly requests: ReadonlyArray<number>
}

/**
 * `NBD_OPT_STRUCTURED_REPLY`: ask for structured replies (no data).
 *
 * @since 0.1.0
 * @category models
 */
export interface StructuredReply {
  readonly _tag: "StructuredReply"
}

/**
 * `NBD_OPT_LIST_META_CONTEXT`: list the metadata contexts of an export matching the queries (none: all).
 *
 * @since 0.1.0
 * @category models
 */
export interface ListMetaContext {
  readonly _tag: "ListMetaContext"
  readonly name: string
  readonly queries: ReadonlyArray<string>
}

/**
 * `NBD_OPT_SET_META_CONTEXT`: select the metadata contexts for `NBD_CMD_BLOCK_STATUS`.
 *
 * @since 0.1.0
 * @category models
 */
export interface SetMetaContext {
  readonly _tag: "SetMetaContext"
  readonly name: string
  readonly queries: ReadonlyArray<string>
}

/**
 * An option this codec has no body layout for (including the withdrawn `NBD_OPT_PEEK_EXPORT`); the server
 * answers `NBD_REP_ERR_UNSUP`.
 *
 * @since 0.1.0
 * @category models
 */
export interface UnknownOption {
  readonly _tag: "UnknownOption"
  readonly option: number
  /** A view of the option data. */
  readonly data: Uint8Array
}

/**
 * Every option request.
 *
 * @since 0.1.0
 * @category models
 */
export type OptionRequest =
  | ExportName
  | Abort
  | List
  | StartTls
  | InfoRequest
  | Go
  | StructuredReply
  | ListMetaContext
  | SetMetaContext
  | UnknownOption

/**
 * `NBD_INFO_EXPORT`: what the `EXPORT_NAME` reply says, without the zeroes.
 *
 * @since 0.1.0
 * @category models
 */
export interface InfoExport {
  readonly _tag: "Export"
  /** Export size in bytes (u64, at most 2^53 − 1 here). */
  readonly size: number
  /** `NbdConstants.TransmissionFlags`, 16 bits. */
  readonly transmissionFlags: number
}

/**
 * `NBD_INFO_NAME`: the server's canonical name of the export.
 *
 * @since 0.1.0
 * @category models
 */
export interface InfoName {
  readonly _tag: "Name"
  readonly name: string
}

/**
 * `NBD_INFO_DESCRIPTION`: text about the export for a person.
 *
 * @since 0.1.0
 * @category models
 */
export interface InfoDescription {
  readonly _tag: "Description"
  readonly description: string
}

/**
 * `NBD_INFO_BLOCK_SIZE`: minimum, preferred and maximum block sizes (u32 each; their rules are the
 * protocol's to check).
 *
 * @since 0.1.0
 * @category models
 */
export interface InfoBlockSize {
  readonly _tag: "BlockSize"
  readonly minimum: number
  readonly preferred: number
  readonly maximum: number
}

/**
 * An information type the codec does not know; a client ignores it.
 *
 * @since 0.1.0
 * @category models
 */
export interface UnknownInfo {
  readonly _tag: "UnknownInfo"
  /** 16 bits. */
  readonly type: number
  /** A view of the bytes after the type. */
  readonly data: Uint8Array
}

/**
 * One `NBD_REP_INFO` item.
 *
 * @since 0.1.0
 * @category models
 */
export type InfoItem = InfoExport | InfoName | InfoDescription | InfoBlockSize | UnknownInfo

/**
 * `NBD_REP_ACK`: the option succeeded (or a list is complete). No data.
 *
 * @since 0.1.0
 * @category models
 */
export interface Ack {
  readonly _tag: "Ack"
  /** The option this answers. */
  readonly option: number
}

/**
 * `NBD_REP_SERVER`: one export of an `NBD_OPT_LIST`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Server {
  readonly _tag: "Server"
  readonly option: number
  readonly name: string
  /** Text after the name (empty when there is none). */
  readonly details: string
}

/**
 * `NBD_REP_INFO`: one item of information about the export of an `NBD_OPT_INFO` / `NBD_OPT_GO`.
 *
 * @since 0.1.0
 * @category models
 */
export interface ExportInfo {
  readonly _tag: "ExportInfo"
  readonly option: number
  readonly info: InfoItem
}

/**
 * `NBD_REP_META_CONTEXT`: one metadata context and its id (the id is 0 and meaningless in a list reply).
 *
 * @since 0.1.0
 * @category models
 */
export interface MetaContext {
  readonly _tag: "MetaContext"
  readonly option: number
  /** u32. */
  readonly id: number
  readonly name: string
}

/**
 * An error reply (`NBD_REP_ERR_*`, bit 31 set), with its optional message.
 *
 * @since 0.1.0
 * @category models
 */
export interface OptionError {
  readonly _tag: "OptionError"
  readonly option: number
  /** The reply type; bit 31 must be set for it to decode as an error again. */
  readonly type: number
  /** Empty when the server sent none. */
  readonly message: string
}

/**
 * A non-error reply type the codec does not know.
 *
 * @since 0.1.0
 * @category models
 */
export interface UnknownReply {
  readonly _tag: "UnknownReply"
  readonly option: number
  readonly type: number
  /** A view of the reply data. */
  readonly data: Uint8Array
}

/**
 * Every option reply.
 *
 * @since 0.1.0
 * @category models
 */
export type OptionReply = Ack | Server | ExportInfo | MetaContext | OptionError | UnknownReply

/**
 * The reply to `NBD_OPT_EXPORT_NAME` (the only option answered without a reply header).
 *
 * @since 0.1.0
 * @category models
 */
export interface ExportNameReply {
  readonly _tag: "ExportNameReply"
  /** Export size in bytes (u64, at most 2^53 − 1 here). */
  readonly size: number
  /** `NbdConstants.TransmissionFlags`, 16 bits. */
  readonly transmissionFlags: number
}

// -----------------------------------------------------------------------------
// greeting and client flags
// -----------------------------------------------------------------------------

/**
 * The newstyle greeting: `NBDMAGIC`, `IHAVEOPT`, handshake flags.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeGreeting = (handshakeFlags: number): Uint8Array => {
  const out = new Uint8Array(GREETING_SIZE)
  putMagic64(out, 0, NBDMAGIC_64)
  putMagic64(out, 8, IHAVEOPT_64)
  putU16be(out, 16, handshakeFlags)
  return out
}

/**
 * Reads a newstyle greeting (exactly 18 bytes). An oldstyle greeting is refused by name.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeGreeting = (bytes: Uint8Array): Decoded<Greeting> => {
  if (bytes.length !== GREETING_SIZE) {
    return fail("nbd", "greeting", 0, `the greeting is ${GREETING_SIZE} bytes, got ${bytes.length}`)
  }
  if (!hasMagic64(bytes, 0, NBDMAGIC_64)) return fail("nbd", "greeting", 0, "bad magic: expected NBDMAGIC")
  if (hasMagic64(bytes, 8, CLISERV_64)) {
    return fail("nbd", "greeting", 8, "oldstyle negotiation (cliserv_magic) is not supported")
  }
  if (!hasMagic64(bytes, 8, IHAVEOPT_64)) return fail("nbd", "greeting", 8, "bad magic: expected IHAVEOPT")
  return Result.succeed({ _tag: "Greeting", handshakeFlags: u16be(bytes, 16) })
}

/**
 * The 4-byte client flags.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeClientFlags = (flags: number): Uint8Array => {
  const out = new Uint8Array(CLIENT_FLAGS_SIZE)
  putU32be(out, 0, flags)
  return out
}

/**
 * Reads the client flags (exactly 4 bytes). Unknown bits are kept: refusing them is the server's call.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeClientFlags = (bytes: Uint8Array): Decoded<ClientFlags> =>
  bytes.length !== CLIENT_FLAGS_SIZE
    ? fail("nbd", "client flags", 0, `the client flags are ${CLIENT_FLAGS_SIZE} bytes, got ${bytes.length}`)
    : Result.succeed({ _tag: "ClientFlags", flags: u32be(bytes, 0) })

// -----------------------------------------------------------------------------
// option requests
// -----------------------------------------------------------------------------

/**
 * The option number of a request.
 *
 * @since 0.1.0
 * @category getters
 */
export const optionOf = (request: OptionRequest): number => {
  switch (request._tag) {
    case "ExportName":
      return Option.EXPORT_NAME
    case "Abort":
      return Option.ABORT
    case "List":
      return Option.LIST
    case "StartTls":
      return Option.STARTTLS
    case "Info":
      return Option.INFO
    case "Go":
      return Option.GO
    case "StructuredReply":
      return Option.STRUCTURED_REPLY
    case "ListMetaContext":
      return Option.LIST_META_CONTEXT
    case "SetMetaContext":
      return Option.SET_META_CONTEXT
    case "UnknownOption":
      return request.option
  }
}

/**
 * Writes an option request header into `target` at `at`.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeOptionHeaderInto = (target: Uint8Array, at: number, option: number, length: number): void => {
  putMagic64(target, at, IHAVEOPT_64)
  putU32be(target, at + 8, option)
  putU32be(target, at + 12, length)
}

/**
 * Reads an option request header at `offset` (magic checked).
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeOptionHeader = (bytes: Uint8Array, offset = 0): Decoded<OptionHeader> => {
  if (!(offset >= 0 && bytes.length - offset >= OPTION_HEADER_SIZE)) {
    return fail("nbd", "option", offset, `an option header needs ${OPTION_HEADER_SIZE} bytes`)
  }
  if (!hasMagic64(bytes, offset, IHAVEOPT_64)) return fail("nbd", "option", offset, "bad magic: expected IHAVEOPT")
  return Result.succeed({ option: u32be(bytes, offset + 8), length: u32be(bytes, offset + 12) })
}

const listSize = (strings: ReadonlyArray<Uint8Array>): number => {
  let size = 0
  for (const s of strings) size += 4 + s.length
  return size
}

const optionBody = (request: OptionRequest): Uint8Array => {
  switch (request._tag) {
    case "ExportName":
      return utf8(request.name)
    case "Abort":
    case "List":
    case "StartTls":
    case "StructuredReply":
      return EMPTY
    case "Info":
    case "Go": {
      if (request.requests.length > 0xffff) {
        throw new RangeError(`${request._tag}: at most 65535 information requests fit, got ${request.requests.length}`)
      }
      const name = utf8(request.name)
      const w = new ByteWriter(4 + name.length + 2 + 2 * request.requests.length)
      w.u32be(name.length).raw(name).u16be(request.requests.length)
      for (const info of request.requests) w.u16be(info)
      return w.bytes
    }
    case "ListMetaContext":
    case "SetMetaContext": {
      const name = utf8(request.name)
      const queries = request.queries.map(utf8)
      const w = new ByteWriter(4 + name.length + 4 + listSize(queries))
      w.u32be(name.length).raw(name).u32be(queries.length)
      for (const query of queries) w.u32be(query.length).raw(query)
      return w.bytes
    }
    case "UnknownOption":
      return request.data
  }
}

/**
 * A whole option request: header and data.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeOptionRequest = (request: OptionRequest): Uint8Array => {
  const body = optionBody(request)
  const out = new Uint8Array(OPTION_HEADER_SIZE + body.length)
  encodeOptionHeaderInto(out, 0, optionOf(request), body.length)
  out.set(body, OPTION_HEADER_SIZE)
  return out
}

const noData = <A>(packet: string, start: number, end: number, value: A): Decoded<A> =>
  end === start
    ? Result.succeed(value)
    : fail("nbd", packet, start, `the option carries no data, got ${end - start} bytes`)

const decodeName = (packet: string, bytes: Uint8Array, at: number, length: number, what: string): Decoded<string> => {
  const text = strictUtf8(view(bytes, at, length))
  return text === undefined ? fail("nbd", packet, at, `${what} is not valid UTF-8`) : Result.succeed(text)
}

const decodeExportRequest = <T extends "Info" | "Go">(
  tag: T,
  bytes: Uint8Array,
  start: number,
  end: number
): Decoded<{ readonly _tag: T; readonly name: string; readonly requests: ReadonlyArray<number> }> => {
  const packet = tag === "Go" ? "NBD_OPT_GO" : "NBD_OPT_INFO"
  const size = end - start
  if (size < 6) return fail("nbd", packet, start, `option data of ${size} bytes is shorter than the 6-byte minimum`)
  const nameLength = u32be(bytes, start)
  if (nameLength > size - 6) {
    return fail("nbd", packet, start, `name length ${nameLength} exceeds the option data length - 6 (${size - 6})`)
  }
  const name = decodeName(packet, bytes, start + 4, nameLength, "the export name")
  if (Result.isFailure(name)) return Result.fail(name.failure)
  const at = start + 4 + nameLength
  const count = u16be(bytes, at)
  if (end - at - 2 !== 2 * count) {
    return fail("nbd", packet, at, `${count} information requests need ${2 * count} bytes, ${end - at - 2} follow`)
  }
  const requests: Array<number> = []
  for (let i = 0; i < count; i++) requests.push(u16be(bytes, at + 2 + 2 * i))
  return Result.succeed({ _tag: tag, name: name.success, requests })
}

const decodeMetaContextRequest = <T extends "ListMetaContext" | "SetMetaContext">(
  tag: T,
  bytes: Uint8Array,
  start: number,
  end: number
): Decoded<{ readonly _tag: T; readonly name: string; readonly queries: ReadonlyArray<string> }> => {
  const packet = tag === "ListMetaContext" ? "NBD_OPT_LIST_META_CONTEXT" : "NBD_OPT_SET_META_CONTEXT"
  if (end - start < 8) {
    return fail("nbd", packet, start, `option data of ${end - start} bytes is shorter than the 8-byte minimum`)
  }
  const nameLength = u32be(bytes, start)
  if (nameLength > end - start - 8) {
    return fail(
      "nbd",
      packet,
      start,
      `name length ${nameLength} exceeds the option data length - 8 (${end - start - 8})`
    )
  }
  const name = decodeName(packet, bytes, start + 4, nameLength, "the export name")
  if (Result.isFailure(name)) return Result.fail(name.failure)
  let at = start + 4 + nameLength
  const count = u32be(bytes, at)
  at += 4
  // Each query takes at least its 4-byte length: refuse a count the data cannot hold before building anything.
  if (count > (end - at) / 4) {
    return fail("nbd", packet, at - 4, `${count} queries cannot fit in the ${end - at} bytes that follow`)
  }
  const queries: Array<string> = []
  for (let i = 0; i < count; i++) {
    if (end - at < 4) return fail("nbd", packet, at, `query ${i} has no room for its length`)
    const length = u32be(bytes, at)
    if (length > end - at - 4) {
      return fail("nbd", packet, at, `query ${i} length ${length} exceeds the ${end - at - 4} bytes left`)
    }
    const query = decodeName(packet, bytes, at + 4, length, `query ${i}`)
    if (Result.isFailure(query)) return Result.fail(query.failure)
    queries.push(query.success)
    at += 4 + length
  }
  if (at !== end) return fail("nbd", packet, at, `${end - at} bytes follow the last query`)
  return Result.succeed({ _tag: tag, name: name.success, queries })
}

const decodeOptionBody = (option: number, bytes: Uint8Array, start: number, end: number): Decoded<OptionRequest> => {
  switch (option) {
    case Option.EXPORT_NAME:
      return Result.map(
        decodeName("NBD_OPT_EXPORT_NAME", bytes, start, end - start, "the export name"),
        (name): ExportName => ({ _tag: "ExportName", name })
      )
    case Option.ABORT:
      return Result.succeed({ _tag: "Abort" })
    case Option.LIST:
      return noData("NBD_OPT_LIST", start, end, { _tag: "List" })
    case Option.STARTTLS:
      return noData("NBD_OPT_STARTTLS", start, end, { _tag: "StartTls" })
    case Option.INFO:
      return decodeExportRequest("Info", bytes, start, end)
    case Option.GO:
      return decodeExportRequest("Go", bytes, start, end)
    case Option.STRUCTURED_REPLY:
      return noData("NBD_OPT_STRUCTURED_REPLY", start, end, { _tag: "StructuredReply" })
    case Option.LIST_META_CONTEXT:
      return decodeMetaContextRequest("ListMetaContext", bytes, start, end)
    case Option.SET_META_CONTEXT:
      return decodeMetaContextRequest("SetMetaContext", bytes, start, end)
    default:
      return Result.succeed({ _tag: "UnknownOption", option, data: view(bytes, start, end - start) })
  }
}

/**
 * Decodes an option's data (what the server's stream parser hands out with the option number). Error offsets
 * are relative to `data`. Views in the result point into `data`.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeOptionData = (option: number, data: Uint8Array): Decoded<OptionRequest> =>
  decodeOptionBody(option, data, 0, data.length)

/**
 * Decodes a whole option request: header, then exactly `length` bytes of data.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeOptionRequest = (bytes: Uint8Array): Decoded<OptionRequest> => {
  const header = decodeOptionHeader(bytes)
  if (Result.isFailure(header)) return Result.fail(header.failure)
  const { length, option } = header.success
  if (bytes.length - OPTION_HEADER_SIZE !== length) {
    return fail("nbd", optionName(option), 12, `data length ${length}, but ${bytes.length - OPTION_HEADER_SIZE} follow`)
  }
  return decodeOptionBody(option, bytes, OPTION_HEADER_SIZE, bytes.length)
}

// -----------------------------------------------------------------------------
// option replies
// -----------------------------------------------------------------------------

/**
 * The reply type of a reply.
 *
 * @since 0.1.0
 * @category getters
 */
export const replyTypeOf = (reply: OptionReply): number => {
  switch (reply._tag) {
    case "Ack":
      return Reply.ACK
    case "Server":
      return Reply.SERVER
    case "ExportInfo":
      return Reply.INFO
    case "MetaContext":
      return Reply.META_CONTEXT
    case "OptionError":
    case "UnknownReply":
      return reply.type
  }
}

/**
 * The information type of an `NBD_REP_INFO` item.
 *
 * @since 0.1.0
 * @category getters
 */
export const infoTypeOf = (info: InfoItem): number => {
  switch (info._tag) {
    case "Export":
      return Info.EXPORT
    case "Name":
      return Info.NAME
    case "Description":
      return Info.DESCRIPTION
    case "BlockSize":
      return Info.BLOCK_SIZE
    case "UnknownInfo":
      return info.type
  }
}

/**
 * Writes an option reply header into `target` at `at`.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeOptionReplyHeaderInto = (
  target: Uint8Array,
  at: number,
  option: number,
  type: number,
  length: number
): void => {
  putMagic64(target, at, REPLY_64)
  putU32be(target, at + 8, option)
  putU32be(target, at + 12, type)
  putU32be(target, at + 16, length)
}

/**
 * Header of an option reply.
 *
 * @since 0.1.0
 * @category models
 */
export interface OptionReplyHeader {
  readonly option: number
  readonly type: number
  readonly length: number
}

/**
 * Reads an option reply header at `offset` (magic checked).
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeOptionReplyHeader = (bytes: Uint8Array, offset = 0): Decoded<OptionReplyHeader> => {
  if (!(offset >= 0 && bytes.length - offset >= OPTION_REPLY_HEADER_SIZE)) {
    return fail("nbd", "option reply", offset, `an option reply header needs ${OPTION_REPLY_HEADER_SIZE} bytes`)
  }
  if (!hasMagic64(bytes, offset, REPLY_64)) {
    return fail("nbd", "option reply", offset, "bad magic: expected 0x0003e889045565a9")
  }
  return Result.succeed({
    option: u32be(bytes, offset + 8),
    type: u32be(bytes, offset + 12),
    length: u32be(bytes, offset + 16)
  })
}

const infoBody = (info: InfoItem): Uint8Array => {
  switch (info._tag) {
    case "Export": {
      const out = new Uint8Array(12)
      putU16be(out, 0, Info.EXPORT)
      putU64be(out, 2, info.size)
      putU16be(out, 10, info.transmissionFlags)
      return out
    }
    case "Name":
    case "Description": {
      const text = utf8(info._tag === "Name" ? info.name : info.description)
      return new ByteWriter(2 + text.length).u16be(infoTypeOf(info)).raw(text).bytes
    }
    case "BlockSize":
      return new ByteWriter(14).u16be(Info.BLOCK_SIZE).u32be(info.minimum).u32be(info.preferred).u32be(info.maximum)
        .bytes
    case "UnknownInfo":
      return new ByteWriter(2 + info.data.length).u16be(info.type).raw(info.data).bytes
  }
}

const replyBody = (reply: OptionReply): Uint8Array => {
  switch (reply._tag) {
    case "Ack":
      return EMPTY
    case "Server": {
      const name = utf8(reply.name)
      const details = utf8(reply.details)
      return new ByteWriter(4 + name.length + details.length).u32be(name.length).raw(name).raw(details).bytes
    }
    case "ExportInfo":
      return infoBody(reply.info)
    case "MetaContext": {
      const name = utf8(reply.name)
      return new ByteWriter(4 + name.length).u32be(reply.id).raw(name).bytes
    }
    case "OptionError":
      return utf8(reply.message)
    case "UnknownReply":
      return reply.data
  }
}

/**
 * A whole option reply: header and data.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeOptionReply = (reply: OptionReply): Uint8Array => {
  const body = replyBody(reply)
  const out = new Uint8Array(OPTION_REPLY_HEADER_SIZE + body.length)
  encodeOptionReplyHeaderInto(out, 0, reply.option, replyTypeOf(reply), body.length)
  out.set(body, OPTION_REPLY_HEADER_SIZE)
  return out
}

const decodeInfo = (option: number, bytes: Uint8Array, start: number, end: number): Decoded<ExportInfo> => {
  const packet = "NBD_REP_INFO"
  const size = end - start
  if (size < 2) return fail("nbd", packet, start, `reply data of ${size} bytes has no room for the information type`)
  const type = u16be(bytes, start)
  const at = start + 2
  let info: InfoItem
  switch (type) {
    case Info.EXPORT: {
      if (size !== 12) return fail("nbd", "NBD_INFO_EXPORT", start, `length must be 12, got ${size}`)
      const exportSize = u64be(bytes, at)
      if (exportSize === undefined) {
        return fail("nbd", "NBD_INFO_EXPORT", at, "export size above 2^53 - 1 is not supported")
      }
      info = { _tag: "Export", size: exportSize, transmissionFlags: u16be(bytes, at + 8) }
      break
    }
    case Info.NAME: {
      const name = decodeName("NBD_INFO_NAME", bytes, at, end - at, "the export name")
      if (Result.isFailure(name)) return Result.fail(name.failure)
      info = { _tag: "Name", name: name.success }
      break
    }
    case Info.DESCRIPTION:
      info = { _tag: "Description", description: lenientUtf8(view(bytes, at, end - at)) }
      break
    case Info.BLOCK_SIZE:
      if (size !== 14) return fail("nbd", "NBD_INFO_BLOCK_SIZE", start, `length must be 14, got ${size}`)
      info = {
        _tag: "BlockSize",
        minimum: u32be(bytes, at),
        preferred: u32be(bytes, at + 4),
        maximum: u32be(bytes, at + 8)
      }
      break
    default:
      info = { _tag: "UnknownInfo", type, data: view(bytes, at, end - at) }
  }
  return Result.succeed({ _tag: "ExportInfo", option, info })
}

const decodeReplyBody = (
  option: number,
  type: number,
  bytes: Uint8Array,
  start: number,
  end: number
): Decoded<OptionReply> => {
  const size = end - start
  switch (type) {
    case Reply.ACK:
      return size === 0
        ? Result.succeed({ _tag: "Ack", option })
        : fail("nbd", "NBD_REP_ACK", start, `an ACK carries no data, got ${size} bytes`)
    case Reply.SERVER: {
      if (size < 4) return fail("nbd", "NBD_REP_SERVER", start, `reply data of ${size} bytes cannot hold a name length`)
      const nameLength = u32be(bytes, start)
      if (nameLength > size - 4) {
        return fail(
          "nbd",
          "NBD_REP_SERVER",
          start,
          `name length ${nameLength} exceeds the reply length - 4 (${size - 4})`
        )
      }
      const name = decodeName("NBD_REP_SERVER", bytes, start + 4, nameLength, "the export name")
      if (Result.isFailure(name)) return Result.fail(name.failure)
      const detailsAt = start + 4 + nameLength
      return Result.succeed({
        _tag: "Server",
        option,
        name: name.success,
        details: lenientUtf8(view(bytes, detailsAt, end - detailsAt))
      })
    }
    case Reply.INFO:
      return decodeInfo(option, bytes, start, end)
    case Reply.META_CONTEXT: {
      if (size < 4) {
        return fail("nbd", "NBD_REP_META_CONTEXT", start, `reply data of ${size} bytes cannot hold a context id`)
      }
      const name = decodeName("NBD_REP_META_CONTEXT", bytes, start + 4, size - 4, "the context name")
      if (Result.isFailure(name)) return Result.fail(name.failure)
      return Result.succeed({ _tag: "MetaContext", option, id: u32be(bytes, start), name: name.success })
    }
    default:
      return isErrorReply(type)
        ? Result.succeed({ _tag: "OptionError", option, type, message: lenientUtf8(view(bytes, start, size)) })
        : Result.succeed({ _tag: "UnknownReply", option, type, data: view(bytes, start, size) })
  }
}

/**
 * Decodes an option reply's data, given the option and reply type from its header. Error offsets are relative
 * to `data`; views in the result point into it.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeOptionReplyData = (option: number, type: number, data: Uint8Array): Decoded<OptionReply> =>
  decodeReplyBody(option, type, data, 0, data.length)

/**
 * Decodes a whole option reply: header, then exactly `length` bytes of data.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeOptionReply = (bytes: Uint8Array): Decoded<OptionReply> => {
  const header = decodeOptionReplyHeader(bytes)
  if (Result.isFailure(header)) return Result.fail(header.failure)
  const { length, option, type } = header.success
  if (bytes.length - OPTION_REPLY_HEADER_SIZE !== length) {
    return fail(
      "nbd",
      replyName(type),
      16,
      `data length ${length}, but ${bytes.length - OPTION_REPLY_HEADER_SIZE} follow`
    )
  }
  return decodeReplyBody(option, type, bytes, OPTION_REPLY_HEADER_SIZE, bytes.length)
}

// -----------------------------------------------------------------------------
// NBD_OPT_EXPORT_NAME reply
// -----------------------------------------------------------------------------

/**
 * The reply to `NBD_OPT_EXPORT_NAME`: size, transmission flags and, unless `noZeroes` (the client set
 * `NBD_FLAG_C_NO_ZEROES`), 124 zero bytes.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeExportNameReply = (
  reply: Omit<ExportNameReply, "_tag">,
  noZeroes: boolean
): Uint8Array => {
  const out = new Uint8Array(noZeroes ? EXPORT_NAME_REPLY_SIZE_NO_ZEROES : EXPORT_NAME_REPLY_SIZE)
  putU64be(out, 0, reply.size)
  putU16be(out, 8, reply.transmissionFlags)
  return out
}

/**
 * Reads the reply to `NBD_OPT_EXPORT_NAME`: exactly 10 bytes when `noZeroes`, else 134 (the reserved bytes are
 * not checked).
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeExportNameReply = (bytes: Uint8Array, noZeroes: boolean): Decoded<ExportNameReply> => {
  const expected = noZeroes ? EXPORT_NAME_REPLY_SIZE_NO_ZEROES : EXPORT_NAME_REPLY_SIZE
  if (bytes.length !== expected) {
    return fail("nbd", "NBD_OPT_EXPORT_NAME reply", 0, `the reply is ${expected} bytes, got ${bytes.length}`)
  }
  const size = u64be(bytes, 0)
  if (size === undefined) {
    return fail("nbd", "NBD_OPT_EXPORT_NAME reply", 0, "export size above 2^53 - 1 is not supported")
  }
  return Result.succeed({ _tag: "ExportNameReply", size, transmissionFlags: u16be(bytes, 8) })
}
