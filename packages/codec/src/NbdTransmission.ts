/**
 * The NBD transmission phase as pure functions: the 28-byte request (with its WRITE payload), the simple reply
 * and structured reply chunks with every payload the spec defines. Every field is big-endian.
 *
 * ```text
 * C: request       0x25609513 (4) | command flags (2) | type (2) | cookie (8) | offset (8) | length (4)
 *                  | length bytes of data, for NBD_CMD_WRITE only                                 28 (+ data)
 * S: simple reply  0x67446698 (4) | error (4) | cookie (8)
 *                  | the READ's length bytes of data, when the request was a READ and error is 0  16 (+ data)
 * S: chunk         0x668e33ef (4) | flags (2) | type (2) | cookie (8) | length (4) | payload (length)   20 (+ payload)
 *   NONE           (no payload)
 *   OFFSET_DATA    offset (8) | data (length - 8, at least 1)
 *   OFFSET_HOLE    offset (8) | hole size (4)
 *   BLOCK_STATUS   context id (4) | { extent length (4) | status flags (4) } x n, n >= 1
 *   ERROR          error (4) | message length (2) | message
 *   ERROR_OFFSET   error (4) | message length (2) | message | offset (8)
 * ```
 *
 * The cookie (the spec's older name: handle) is opaque: it decodes to a bigint (big-endian, so any 8 bytes map
 * to one value and back) and is echoed exactly. Offsets are u64 on the wire and numbers here; one above
 * 2^53 − 1 is a `DecodeError`. Lengths, errors and context ids are u32 numbers.
 *
 * Hot path: decoders read with shifts (no `DataView`); a WRITE's data and an OFFSET_DATA's data are views of the
 * input. For sending, `encodeSimpleReplyHeaderInto` and `encodeOffsetDataHeaderInto` write just the 16 / 28
 * header bytes (into a slab, or a new array with the non-`Into` forms) so the READ data goes out as its own
 * buffer, never copied; `encodeRequest`, `encodeSimpleReply` and `encodeChunk` build one whole buffer.
 *
 * Decoders check the layout: magics, exact lengths, and chunk lengths that fit their type (NONE 0, OFFSET_DATA at
 * least 9, OFFSET_HOLE 12, BLOCK_STATUS 4 + 8n with n ≥ 1, error chunks at least 6 with the message inside,
 * ERROR exactly 6 + message and ERROR_OFFSET exactly 14 + message). Rules about values (NONE must carry
 * `NBD_REPLY_FLAG_DONE`, errors and hole sizes and extent lengths must be nonzero, DISC and FLUSH have zero
 * offset and length, command flags valid for the command) are the protocol's to enforce: the values come through
 * unchanged. Unknown command types decode (the server answers `NBD_EINVAL`); an unknown chunk type decodes to
 * `UnknownChunk` (a client must then disconnect), an unknown error type to `UnknownErrorChunk` (the reply
 * failed; transmission may go on).
 *
 * @since 0.1.0
 */
import * as Result from "effect/Result"
import { type Decoded, fail } from "./DecodeError.ts"
import {
  putU16be,
  putU32be,
  putU64be,
  putU64beBig,
  u16be,
  u32be,
  u64be,
  u64beBig,
  utf8,
  view
} from "./internal/bytes.ts"
import { EMPTY, lenientUtf8 } from "./internal/nbd.ts"
import {
  ChunkType,
  chunkTypeName,
  Command,
  commandName,
  isErrorChunk,
  ReplyFlags,
  REQUEST_MAGIC,
  SIMPLE_REPLY_MAGIC,
  STRUCTURED_REPLY_MAGIC
} from "./NbdConstants.ts"

// -----------------------------------------------------------------------------
// sizes and caps
// -----------------------------------------------------------------------------

/**
 * Size of a request header.
 *
 * @since 0.1.0
 * @category constants
 */
export const REQUEST_HEADER_SIZE = 28

/**
 * Size of a simple reply header.
 *
 * @since 0.1.0
 * @category constants
 */
export const SIMPLE_REPLY_HEADER_SIZE = 16

/**
 * Size of a structured reply chunk header.
 *
 * @since 0.1.0
 * @category constants
 */
export const CHUNK_HEADER_SIZE = 20

/**
 * Size of an OFFSET_DATA chunk up to its data: the chunk header and the 8-byte offset.
 *
 * @since 0.1.0
 * @category constants
 */
export const OFFSET_DATA_HEADER_SIZE = 28

/**
 * Default cap on the data of one WRITE request (server side) or one READ reply (client side): 32 MiB, the
 * spec's largest length that must not be taken for a denial of service.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_MAX_DATA_LENGTH = 32 * 1024 * 1024

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * The fields of a request header.
 *
 * @since 0.1.0
 * @category models
 */
export interface RequestHeader {
  /** `NbdConstants.CommandFlags`, 16 bits. */
  readonly flags: number
  /** `NbdConstants.Command`, 16 bits; unknown types decode too. */
  readonly type: number
  /** Opaque, echoed in every reply. */
  readonly cookie: bigint
  /** Byte offset (u64, at most 2^53 − 1 here). */
  readonly offset: number
  /** u32. */
  readonly length: number
}

/**
 * A transmission request. `data` is the WRITE payload (a view of the input; its length is `length`) and empty
 * for every other command.
 *
 * @since 0.1.0
 * @category models
 */
export interface Request extends RequestHeader {
  readonly _tag: "Request"
  readonly data: Uint8Array
}

/**
 * A simple reply. `data` is the READ payload when the request was a READ and `error` is 0, otherwise empty.
 *
 * @since 0.1.0
 * @category models
 */
export interface SimpleReply {
  readonly _tag: "SimpleReply"
  /** `NbdConstants.Errno`; 0 for success. */
  readonly error: number
  readonly cookie: bigint
  readonly data: Uint8Array
}

/**
 * The fields of a structured reply chunk header.
 *
 * @since 0.1.0
 * @category models
 */
export interface ChunkHeader {
  /** `NbdConstants.ReplyFlags`, 16 bits. */
  readonly flags: number
  /** `NbdConstants.ChunkType`, 16 bits. */
  readonly type: number
  readonly cookie: bigint
  /** Payload length, u32. */
  readonly length: number
}

/**
 * `NBD_REPLY_TYPE_NONE`: the end of a reply (successful if no error chunk came).
 *
 * @since 0.1.0
 * @category models
 */
export interface NoneChunk {
  readonly _tag: "None"
  readonly flags: number
  readonly cookie: bigint
}

/**
 * `NBD_REPLY_TYPE_OFFSET_DATA`: `data` read at `offset` (a view of the input).
 *
 * @since 0.1.0
 * @category models
 */
export interface OffsetDataChunk {
  readonly _tag: "OffsetData"
  readonly flags: number
  readonly cookie: bigint
  readonly offset: number
  readonly data: Uint8Array
}

/**
 * `NBD_REPLY_TYPE_OFFSET_HOLE`: `length` bytes at `offset` read as zeroes.
 *
 * @since 0.1.0
 * @category models
 */
export interface OffsetHoleChunk {
  readonly _tag: "OffsetHole"
  readonly flags: number
  readonly cookie: bigint
  readonly offset: number
  /** The hole size, u32. */
  readonly length: number
}

/**
 * One block status descriptor.
 *
 * @since 0.1.0
 * @category models
 */
export interface Extent {
  /** u32. */
  readonly length: number
  /** Status flags of the context (`NbdConstants.StateFlags` for `base:allocation`), u32. */
  readonly status: number
}

/**
 * `NBD_REPLY_TYPE_BLOCK_STATUS`: consecutive extents from the request's offset, for one metadata context.
 *
 * @since 0.1.0
 * @category models
 */
export interface BlockStatusChunk {
  readonly _tag: "BlockStatus"
  readonly flags: number
  readonly cookie: bigint
  readonly contextId: number
  /** At least one. */
  readonly extents: ReadonlyArray<Extent>
}

/**
 * `NBD_REPLY_TYPE_ERROR`: the request failed.
 *
 * @since 0.1.0
 * @category models
 */
export interface ErrorChunk {
  readonly _tag: "Error"
  readonly flags: number
  readonly cookie: bigint
  readonly error: number
  /** Empty when the server sent none (decoded leniently: U+FFFD for bad UTF-8). */
  readonly message: string
}

/**
 * `NBD_REPLY_TYPE_ERROR_OFFSET`: the request failed at `offset`.
 *
 * @since 0.1.0
 * @category models
 */
export interface ErrorOffsetChunk {
  readonly _tag: "ErrorOffset"
  readonly flags: number
  readonly cookie: bigint
  readonly error: number
  readonly message: string
  readonly offset: number
}

/**
 * An error chunk of a type the codec does not know (bit 15 set): the reply failed, transmission may go on.
 *
 * @since 0.1.0
 * @category models
 */
export interface UnknownErrorChunk {
  readonly _tag: "UnknownErrorChunk"
  readonly flags: number
  readonly cookie: bigint
  readonly type: number
  readonly error: number
  readonly message: string
  /** A view of the bytes after the message. */
  readonly rest: Uint8Array
}

/**
 * A chunk of a type the codec does not know, without the error bit: a client must disconnect.
 *
 * @since 0.1.0
 * @category models
 */
export interface UnknownChunk {
  readonly _tag: "UnknownChunk"
  readonly flags: number
  readonly cookie: bigint
  readonly type: number
  /** A view of the payload. */
  readonly payload: Uint8Array
}

/**
 * Every structured reply chunk.
 *
 * @since 0.1.0
 * @category models
 */
export type Chunk =
  | NoneChunk
  | OffsetDataChunk
  | OffsetHoleChunk
  | BlockStatusChunk
  | ErrorChunk
  | ErrorOffsetChunk
  | UnknownErrorChunk
  | UnknownChunk

// -----------------------------------------------------------------------------
// requests
// -----------------------------------------------------------------------------

/**
 * Whether requests of this command type carry `length` bytes of data after the header (WRITE only).
 *
 * @since 0.1.0
 * @category predicates
 */
export const hasPayload = (type: number): boolean => type === Command.WRITE

/**
 * Writes a request header into `target` at `at`.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeRequestHeaderInto = (target: Uint8Array, at: number, header: RequestHeader): void => {
  putU32be(target, at, REQUEST_MAGIC)
  putU16be(target, at + 4, header.flags)
  putU16be(target, at + 6, header.type)
  putU64beBig(target, at + 8, header.cookie)
  putU64be(target, at + 16, header.offset)
  putU32be(target, at + 24, header.length)
}

/**
 * A request header as a new 28-byte array (a WRITE's data goes out after it as its own buffer).
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeRequestHeader = (header: RequestHeader): Uint8Array => {
  const out = new Uint8Array(REQUEST_HEADER_SIZE)
  encodeRequestHeaderInto(out, 0, header)
  return out
}

/**
 * A whole request in one buffer. Throws a `RangeError` when the data does not match the command (a WRITE
 * whose data is not `length` bytes, or data on any other command), which would break the stream's framing.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeRequest = (request: Omit<Request, "_tag">): Uint8Array => {
  const size = hasPayload(request.type) ? request.length : 0
  if (request.data.length !== size) {
    throw new RangeError(
      `${commandName(request.type)}: ${size} bytes of data expected, got ${request.data.length}`
    )
  }
  const out = new Uint8Array(REQUEST_HEADER_SIZE + size)
  encodeRequestHeaderInto(out, 0, request)
  out.set(request.data, REQUEST_HEADER_SIZE)
  return out
}

/**
 * Reads a request header at `at` (magic checked; an offset above 2^53 − 1 is refused).
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeRequestHeader = (bytes: Uint8Array, at = 0): Decoded<RequestHeader> => {
  if (!(at >= 0 && bytes.length - at >= REQUEST_HEADER_SIZE)) {
    return fail("nbd", "request", at, `a request header needs ${REQUEST_HEADER_SIZE} bytes`)
  }
  if (u32be(bytes, at) !== REQUEST_MAGIC) return fail("nbd", "request", at, "bad magic: expected 0x25609513")
  const type = u16be(bytes, at + 6)
  const offset = u64be(bytes, at + 16)
  if (offset === undefined) return fail("nbd", commandName(type), at + 16, "offset above 2^53 - 1 is not supported")
  return Result.succeed({
    flags: u16be(bytes, at + 4),
    type,
    cookie: u64beBig(bytes, at + 8),
    offset,
    length: u32be(bytes, at + 24)
  })
}

/**
 * Decodes a whole request: the header, then exactly the WRITE's data (a view of `bytes`) or nothing. This is
 * the server's per-request hot path: one object, no intermediate header.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeRequest = (bytes: Uint8Array): Decoded<Request> => {
  if (bytes.length < REQUEST_HEADER_SIZE) {
    return fail("nbd", "request", 0, `a request header needs ${REQUEST_HEADER_SIZE} bytes, got ${bytes.length}`)
  }
  if (u32be(bytes, 0) !== REQUEST_MAGIC) return fail("nbd", "request", 0, "bad magic: expected 0x25609513")
  const type = u16be(bytes, 6)
  const offset = u64be(bytes, 16)
  if (offset === undefined) return fail("nbd", commandName(type), 16, "offset above 2^53 - 1 is not supported")
  const length = u32be(bytes, 24)
  const size = type === Command.WRITE ? length : 0
  if (bytes.length - REQUEST_HEADER_SIZE !== size) {
    return fail(
      "nbd",
      commandName(type),
      REQUEST_HEADER_SIZE,
      `${size} bytes of data expected after the header, ${bytes.length - REQUEST_HEADER_SIZE} follow`
    )
  }
  return Result.succeed({
    _tag: "Request",
    flags: u16be(bytes, 4),
    type,
    cookie: u64beBig(bytes, 8),
    offset,
    length,
    data: size === 0 ? EMPTY : view(bytes, REQUEST_HEADER_SIZE, size)
  })
}

// -----------------------------------------------------------------------------
// simple replies
// -----------------------------------------------------------------------------

/**
 * Writes a simple reply header into `target` at `at`.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeSimpleReplyHeaderInto = (target: Uint8Array, at: number, error: number, cookie: bigint): void => {
  putU32be(target, at, SIMPLE_REPLY_MAGIC)
  putU32be(target, at + 4, error)
  putU64beBig(target, at + 8, cookie)
}

/**
 * A simple reply header as a new 16-byte array; a successful READ's data goes out after it as its own buffer.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeSimpleReplyHeader = (error: number, cookie: bigint): Uint8Array => {
  const out = new Uint8Array(SIMPLE_REPLY_HEADER_SIZE)
  encodeSimpleReplyHeaderInto(out, 0, error, cookie)
  return out
}

/**
 * A whole simple reply in one buffer. Throws a `RangeError` for data on an error reply (never sent).
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeSimpleReply = (reply: Omit<SimpleReply, "_tag">): Uint8Array => {
  if (reply.error !== 0 && reply.data.length > 0) {
    throw new RangeError(`a simple reply with error ${reply.error} carries no data, got ${reply.data.length} bytes`)
  }
  const out = new Uint8Array(SIMPLE_REPLY_HEADER_SIZE + reply.data.length)
  encodeSimpleReplyHeaderInto(out, 0, reply.error, reply.cookie)
  out.set(reply.data, SIMPLE_REPLY_HEADER_SIZE)
  return out
}

/**
 * The fields of a simple reply header.
 *
 * @since 0.1.0
 * @category models
 */
export interface SimpleReplyHeader {
  readonly error: number
  readonly cookie: bigint
}

/**
 * Reads a simple reply header at `at` (magic checked).
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeSimpleReplyHeader = (bytes: Uint8Array, at = 0): Decoded<SimpleReplyHeader> => {
  if (!(at >= 0 && bytes.length - at >= SIMPLE_REPLY_HEADER_SIZE)) {
    return fail("nbd", "simple reply", at, `a simple reply header needs ${SIMPLE_REPLY_HEADER_SIZE} bytes`)
  }
  if (u32be(bytes, at) !== SIMPLE_REPLY_MAGIC) return fail("nbd", "simple reply", at, "bad magic: expected 0x67446698")
  return Result.succeed({ error: u32be(bytes, at + 4), cookie: u64beBig(bytes, at + 8) })
}

/**
 * Decodes a whole simple reply. `readLength` is the length of the READ it answers (0 for any other command):
 * the reply carries that much data exactly when `error` is 0, since the wire does not say.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeSimpleReply = (bytes: Uint8Array, readLength: number): Decoded<SimpleReply> => {
  const header = decodeSimpleReplyHeader(bytes)
  if (Result.isFailure(header)) return Result.fail(header.failure)
  const { cookie, error } = header.success
  const size = error === 0 ? readLength : 0
  if (bytes.length - SIMPLE_REPLY_HEADER_SIZE !== size) {
    return fail(
      "nbd",
      "simple reply",
      SIMPLE_REPLY_HEADER_SIZE,
      `${size} bytes of data expected after the header, ${bytes.length - SIMPLE_REPLY_HEADER_SIZE} follow`
    )
  }
  return Result.succeed({
    _tag: "SimpleReply",
    error,
    cookie,
    data: size === 0 ? EMPTY : view(bytes, SIMPLE_REPLY_HEADER_SIZE, size)
  })
}

// -----------------------------------------------------------------------------
// structured reply chunks
// -----------------------------------------------------------------------------

/**
 * The chunk type of a chunk.
 *
 * @since 0.1.0
 * @category getters
 */
export const chunkTypeOf = (chunk: Chunk): number => {
  switch (chunk._tag) {
    case "None":
      return ChunkType.NONE
    case "OffsetData":
      return ChunkType.OFFSET_DATA
    case "OffsetHole":
      return ChunkType.OFFSET_HOLE
    case "BlockStatus":
      return ChunkType.BLOCK_STATUS
    case "Error":
      return ChunkType.ERROR
    case "ErrorOffset":
      return ChunkType.ERROR_OFFSET
    case "UnknownErrorChunk":
    case "UnknownChunk":
      return chunk.type
  }
}

/**
 * Whether the chunk is the last of its reply (`NBD_REPLY_FLAG_DONE`).
 *
 * @since 0.1.0
 * @category predicates
 */
export const isDone = (chunk: { readonly flags: number }): boolean => (chunk.flags & ReplyFlags.DONE) !== 0

/**
 * Writes a chunk header into `target` at `at`.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeChunkHeaderInto = (
  target: Uint8Array,
  at: number,
  flags: number,
  type: number,
  cookie: bigint,
  length: number
): void => {
  putU32be(target, at, STRUCTURED_REPLY_MAGIC)
  putU16be(target, at + 4, flags)
  putU16be(target, at + 6, type)
  putU64beBig(target, at + 8, cookie)
  putU32be(target, at + 16, length)
}

/**
 * A chunk header as a new 20-byte array.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeChunkHeader = (flags: number, type: number, cookie: bigint, length: number): Uint8Array => {
  const out = new Uint8Array(CHUNK_HEADER_SIZE)
  encodeChunkHeaderInto(out, 0, flags, type, cookie, length)
  return out
}

/**
 * Writes the first 28 bytes of an OFFSET_DATA chunk (header and offset) into `target` at `at`; `dataLength`
 * bytes of data must follow on the wire.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeOffsetDataHeaderInto = (
  target: Uint8Array,
  at: number,
  flags: number,
  cookie: bigint,
  offset: number,
  dataLength: number
): void => {
  encodeChunkHeaderInto(target, at, flags, ChunkType.OFFSET_DATA, cookie, 8 + dataLength)
  putU64be(target, at + CHUNK_HEADER_SIZE, offset)
}

/**
 * The first 28 bytes of an OFFSET_DATA chunk as a new array, for sending the data as its own buffer.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeOffsetDataHeader = (
  flags: number,
  cookie: bigint,
  offset: number,
  dataLength: number
): Uint8Array => {
  const out = new Uint8Array(OFFSET_DATA_HEADER_SIZE)
  encodeOffsetDataHeaderInto(out, 0, flags, cookie, offset, dataLength)
  return out
}

const messageBytes = (chunk: { readonly message: string }, name: string): Uint8Array => {
  const message = utf8(chunk.message)
  if (message.length > 0xffff) {
    throw new RangeError(`${name}: the message is ${message.length} UTF-8 bytes; its length field holds 65535`)
  }
  return message
}

/**
 * A whole chunk in one buffer. Throws a `RangeError` for a chunk the layout cannot carry: OFFSET_DATA without
 * data, BLOCK_STATUS without extents, a message over 65535 UTF-8 bytes.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeChunk = (chunk: Chunk): Uint8Array => {
  const type = chunkTypeOf(chunk)
  switch (chunk._tag) {
    case "None":
      return encodeChunkHeader(chunk.flags, type, chunk.cookie, 0)
    case "OffsetData": {
      if (chunk.data.length === 0) throw new RangeError("NBD_REPLY_TYPE_OFFSET_DATA needs at least one byte of data")
      const out = new Uint8Array(OFFSET_DATA_HEADER_SIZE + chunk.data.length)
      encodeOffsetDataHeaderInto(out, 0, chunk.flags, chunk.cookie, chunk.offset, chunk.data.length)
      out.set(chunk.data, OFFSET_DATA_HEADER_SIZE)
      return out
    }
    case "OffsetHole": {
      const out = new Uint8Array(CHUNK_HEADER_SIZE + 12)
      encodeChunkHeaderInto(out, 0, chunk.flags, type, chunk.cookie, 12)
      putU64be(out, CHUNK_HEADER_SIZE, chunk.offset)
      putU32be(out, CHUNK_HEADER_SIZE + 8, chunk.length)
      return out
    }
    case "BlockStatus": {
      if (chunk.extents.length === 0) throw new RangeError("NBD_REPLY_TYPE_BLOCK_STATUS needs at least one extent")
      const length = 4 + 8 * chunk.extents.length
      const out = new Uint8Array(CHUNK_HEADER_SIZE + length)
      encodeChunkHeaderInto(out, 0, chunk.flags, type, chunk.cookie, length)
      putU32be(out, CHUNK_HEADER_SIZE, chunk.contextId)
      let at = CHUNK_HEADER_SIZE + 4
      for (const extent of chunk.extents) {
        putU32be(out, at, extent.length)
        putU32be(out, at + 4, extent.status)
        at += 8
      }
      return out
    }
    case "Error":
    case "ErrorOffset":
    case "UnknownErrorChunk": {
      const message = messageBytes(chunk, chunkTypeName(type))
      const tail = chunk._tag === "ErrorOffset" ? 8 : chunk._tag === "UnknownErrorChunk" ? chunk.rest.length : 0
      const length = 6 + message.length + tail
      const out = new Uint8Array(CHUNK_HEADER_SIZE + length)
      encodeChunkHeaderInto(out, 0, chunk.flags, type, chunk.cookie, length)
      putU32be(out, CHUNK_HEADER_SIZE, chunk.error)
      putU16be(out, CHUNK_HEADER_SIZE + 4, message.length)
      out.set(message, CHUNK_HEADER_SIZE + 6)
      const tailAt = CHUNK_HEADER_SIZE + 6 + message.length
      if (chunk._tag === "ErrorOffset") putU64be(out, tailAt, chunk.offset)
      else if (chunk._tag === "UnknownErrorChunk") out.set(chunk.rest, tailAt)
      return out
    }
    case "UnknownChunk": {
      const out = new Uint8Array(CHUNK_HEADER_SIZE + chunk.payload.length)
      encodeChunkHeaderInto(out, 0, chunk.flags, type, chunk.cookie, chunk.payload.length)
      out.set(chunk.payload, CHUNK_HEADER_SIZE)
      return out
    }
  }
}

/** Why a payload length cannot be right for the chunk type, or undefined when it can. */
const lengthProblem = (type: number, length: number): string | undefined => {
  switch (type) {
    case ChunkType.NONE:
      return length === 0 ? undefined : `length must be 0, got ${length}`
    case ChunkType.OFFSET_DATA:
      return length >= 9 ? undefined : `length must be at least 9, got ${length}`
    case ChunkType.OFFSET_HOLE:
      return length === 12 ? undefined : `length must be 12, got ${length}`
    case ChunkType.BLOCK_STATUS:
      return length >= 12 && (length - 4) % 8 === 0
        ? undefined
        : `length must be 4 + a positive multiple of 8, got ${length}`
    case ChunkType.ERROR_OFFSET:
      return length >= 14 ? undefined : `length must be at least 14, got ${length}`
    default:
      return isErrorChunk(type) && length < 6 ? `length must be at least 6, got ${length}` : undefined
  }
}

/**
 * Reads a chunk header at `at`: magic checked, and the payload length checked against the type (so a parser can
 * refuse a bad chunk before buffering its payload).
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeChunkHeader = (bytes: Uint8Array, at = 0): Decoded<ChunkHeader> => {
  if (!(at >= 0 && bytes.length - at >= CHUNK_HEADER_SIZE)) {
    return fail("nbd", "structured reply", at, `a chunk header needs ${CHUNK_HEADER_SIZE} bytes`)
  }
  if (u32be(bytes, at) !== STRUCTURED_REPLY_MAGIC) {
    return fail("nbd", "structured reply", at, "bad magic: expected 0x668e33ef")
  }
  const type = u16be(bytes, at + 6)
  const length = u32be(bytes, at + 16)
  const problem = lengthProblem(type, length)
  if (problem !== undefined) return fail("nbd", chunkTypeName(type), at + 16, problem)
  return Result.succeed({ flags: u16be(bytes, at + 4), type, cookie: u64beBig(bytes, at + 8), length })
}

/** Decodes the payload in `bytes[start, start + header.length)`; error offsets are positions in `bytes`. */
const decodePayload = (header: ChunkHeader, bytes: Uint8Array, start: number): Decoded<Chunk> => {
  const { cookie, flags, length, type } = header
  const name = chunkTypeName(type)
  const problem = lengthProblem(type, length)
  if (problem !== undefined) return fail("nbd", name, start, problem)
  switch (type) {
    case ChunkType.NONE:
      return Result.succeed({ _tag: "None", flags, cookie })
    case ChunkType.OFFSET_DATA:
    case ChunkType.OFFSET_HOLE: {
      const offset = u64be(bytes, start)
      if (offset === undefined) return fail("nbd", name, start, "offset above 2^53 - 1 is not supported")
      return Result.succeed(
        type === ChunkType.OFFSET_DATA
          ? { _tag: "OffsetData", flags, cookie, offset, data: view(bytes, start + 8, length - 8) }
          : { _tag: "OffsetHole", flags, cookie, offset, length: u32be(bytes, start + 8) }
      )
    }
    case ChunkType.BLOCK_STATUS: {
      const extents: Array<Extent> = []
      for (let at = start + 4; at < start + length; at += 8) {
        extents.push({ length: u32be(bytes, at), status: u32be(bytes, at + 4) })
      }
      return Result.succeed({ _tag: "BlockStatus", flags, cookie, contextId: u32be(bytes, start), extents })
    }
    default: {
      if (!isErrorChunk(type)) {
        return Result.succeed({ _tag: "UnknownChunk", flags, cookie, type, payload: view(bytes, start, length) })
      }
      const error = u32be(bytes, start)
      const messageLength = u16be(bytes, start + 4)
      const tail = type === ChunkType.ERROR ? 0 : type === ChunkType.ERROR_OFFSET ? 8 : undefined
      const room = length - 6 - (tail ?? 0)
      if (messageLength > room || (tail !== undefined && messageLength !== room)) {
        return fail(
          "nbd",
          name,
          start + 4,
          tail === undefined
            ? `message length ${messageLength} exceeds the ${room} bytes of the payload`
            : `message length ${messageLength} does not fill the payload: ${length} = 6 + message${
              tail > 0 ? " + 8" : ""
            } expected`
        )
      }
      const message = lenientUtf8(view(bytes, start + 6, messageLength))
      const tailAt = start + 6 + messageLength
      if (type === ChunkType.ERROR) return Result.succeed({ _tag: "Error", flags, cookie, error, message })
      if (type === ChunkType.ERROR_OFFSET) {
        const offset = u64be(bytes, tailAt)
        if (offset === undefined) return fail("nbd", name, tailAt, "offset above 2^53 - 1 is not supported")
        return Result.succeed({ _tag: "ErrorOffset", flags, cookie, error, message, offset })
      }
      return Result.succeed({
        _tag: "UnknownErrorChunk",
        flags,
        cookie,
        type,
        error,
        message,
        rest: view(bytes, tailAt, start + length - tailAt)
      })
    }
  }
}

/**
 * Decodes a chunk's payload (exactly `header.length` bytes) given its header. Error offsets are relative to
 * `payload`; views in the result point into it.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeChunkPayload = (header: ChunkHeader, payload: Uint8Array): Decoded<Chunk> =>
  payload.length !== header.length
    ? fail(
      "nbd",
      chunkTypeName(header.type),
      0,
      `payload is ${payload.length} bytes, the header says ${header.length}`
    )
    : decodePayload(header, payload, 0)

/**
 * Decodes a whole chunk: the header, then exactly `length` bytes of payload.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeChunk = (bytes: Uint8Array): Decoded<Chunk> => {
  const header = decodeChunkHeader(bytes)
  if (Result.isFailure(header)) return Result.fail(header.failure)
  if (bytes.length - CHUNK_HEADER_SIZE !== header.success.length) {
    return fail(
      "nbd",
      chunkTypeName(header.success.type),
      16,
      `payload length ${header.success.length}, but ${bytes.length - CHUNK_HEADER_SIZE} follow`
    )
  }
  return decodePayload(header.success, bytes, CHUNK_HEADER_SIZE)
}
