/**
 * Incremental parsers for the two directions of an NBD connection, built on `StreamParser`: push chunks with any
 * boundaries, get whole messages.
 *
 * - `makeServerParser` reads what a client sends (used by servers): the client flags, option requests, then
 *   transmission requests with their WRITE data.
 * - `makeClientParser` reads what a server sends (used by clients): the greeting, option replies (or the
 *   `NBD_OPT_EXPORT_NAME` reply), then simple replies and structured reply chunks.
 *
 * NBD is not self-describing across phases, so each parser follows the conversation:
 *
 * - Server side: after the client flags come options. `NBD_OPT_EXPORT_NAME` cannot fail short of a disconnect,
 *   so transmission follows it at once. After `NBD_OPT_GO` or `NBD_OPT_STARTTLS` only the server knows what
 *   comes next, so the parser holds any further bytes (phase `"Held"`) until the server calls
 *   `resume("Transmission")` (GO answered with `NBD_REP_ACK`) or `resume("Options")` (an error reply). After a
 *   STARTTLS that succeeded, the TLS layer owns the socket: start a new parser with `initialPhase: "Options"` on
 *   the decrypted stream.
 * - Client side: the greeting, then option replies; an `NBD_REP_ACK` to `NBD_OPT_GO` enters transmission by
 *   itself, an `NBD_REP_ACK` to `NBD_OPT_STARTTLS` holds the bytes (TLS follows). The reply to
 *   `NBD_OPT_EXPORT_NAME` has no header, so call `expectExportNameReply` right after sending that option. A
 *   simple reply does not say whether data follows: the parser asks `readLength(cookie)`, which the client
 *   answers from its table of requests in flight (the READ's length, 0 for other commands, `undefined` for a
 *   cookie it never sent, which is a `DecodeError`).
 *
 * Caps are checked from the header alone, before any byte of the body is buffered: option data (64 KiB by
 * default, both directions), WRITE data (32 MiB) on the server side, READ data (32 MiB; any chunk payload is
 * capped at that plus 8 bytes) on the client side. A WRITE's data, an OFFSET_DATA's data and a simple READ
 * reply's data are views of the pushed chunk when they arrived inside one. Errors are sticky and located in the
 * stream, as with every `StreamParser`.
 *
 * @since 0.1.0
 */
import * as Result from "effect/Result"
import { type Decoded, fail } from "./DecodeError.ts"
import { u16be, u32be, view } from "./internal/bytes.ts"
import { EMPTY, hasMagic64, magic64 } from "./internal/nbd.ts"
import {
  Command,
  IHAVEOPT,
  Option,
  OPTION_REPLY_MAGIC,
  optionName,
  REQUEST_MAGIC,
  SIMPLE_REPLY_MAGIC,
  STRUCTURED_REPLY_MAGIC
} from "./NbdConstants.ts"
import * as NbdHandshake from "./NbdHandshake.ts"
import * as NbdTransmission from "./NbdTransmission.ts"
import * as StreamParser from "./StreamParser.ts"

const IHAVEOPT_64 = magic64(IHAVEOPT)
const REPLY_64 = magic64(OPTION_REPLY_MAGIC)

// -----------------------------------------------------------------------------
// server side: what the client sends
// -----------------------------------------------------------------------------

/**
 * An option request as framed on the wire: its number and a view of its data. Decode the body with
 * `NbdHandshake.decodeOptionData`; a failure there deserves `NBD_REP_ERR_INVALID`, not a disconnect.
 *
 * @since 0.1.0
 * @category models
 */
export interface OptionFrame {
  readonly _tag: "Option"
  readonly option: number
  readonly data: Uint8Array
}

/**
 * Everything a client sends.
 *
 * @since 0.1.0
 * @category models
 */
export type ClientMessage = NbdHandshake.ClientFlags | OptionFrame | NbdTransmission.Request

/**
 * Where the server-side parser is in the conversation.
 *
 * @since 0.1.0
 * @category models
 */
export type ServerPhase = "ClientFlags" | "Options" | "Held" | "Transmission"

/**
 * Server-side parser options.
 *
 * @since 0.1.0
 * @category models
 */
export interface ServerParserOptions {
  /** Largest option data length; default `NbdHandshake.DEFAULT_MAX_OPTION_LENGTH` (64 KiB). */
  readonly maxOptionLength?: number | undefined
  /** Largest WRITE data length; default `NbdTransmission.DEFAULT_MAX_DATA_LENGTH` (32 MiB). */
  readonly maxWriteLength?: number | undefined
  /** Where the stream starts; default `"ClientFlags"`. */
  readonly initialPhase?: "ClientFlags" | "Options" | "Transmission" | undefined
}

/**
 * The server's parser of a client stream.
 *
 * @since 0.1.0
 * @category models
 */
export interface ServerParser extends StreamParser.StreamParser<ClientMessage> {
  readonly phase: () => ServerPhase
  /**
   * Leaves the `"Held"` phase (after GO or STARTTLS) for the phase the server's reply chose, and returns the
   * messages decoded from bytes held meanwhile.
   */
  readonly resume: (phase: "Options" | "Transmission") => Decoded<ReadonlyArray<ClientMessage>>
}

const HELD = Number.POSITIVE_INFINITY

/**
 * Creates the server's parser of a client stream.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeServerParser = (options?: ServerParserOptions): ServerParser => {
  const maxOption = options?.maxOptionLength ?? NbdHandshake.DEFAULT_MAX_OPTION_LENGTH
  const maxWrite = options?.maxWriteLength ?? NbdTransmission.DEFAULT_MAX_DATA_LENGTH
  let phase: ServerPhase = options?.initialPhase ?? "ClientFlags"

  const decodeOption = (bytes: Uint8Array): Decoded<ClientMessage> => {
    if (!hasMagic64(bytes, 0, IHAVEOPT_64)) return fail("nbd", "option", 0, "bad magic: expected IHAVEOPT")
    const option = u32be(bytes, 8)
    const length = u32be(bytes, 12)
    if (length > maxOption) {
      return fail("nbd", optionName(option), 12, `option data length ${length} exceeds the maximum of ${maxOption}`)
    }
    if (option === Option.EXPORT_NAME) phase = "Transmission"
    else if (option === Option.GO || option === Option.STARTTLS) phase = "Held"
    return Result.succeed({
      _tag: "Option",
      option,
      data: length === 0 ? EMPTY : view(bytes, NbdHandshake.OPTION_HEADER_SIZE, length)
    })
  }

  const decodeRequest = (bytes: Uint8Array): Decoded<ClientMessage> => {
    if (bytes.length === NbdTransmission.REQUEST_HEADER_SIZE && u32be(bytes, 0) === REQUEST_MAGIC) {
      const length = u32be(bytes, 24)
      if (u16be(bytes, 6) === Command.WRITE && length > maxWrite) {
        return fail("nbd", "NBD_CMD_WRITE", 24, `write length ${length} exceeds the maximum of ${maxWrite}`)
      }
    }
    return NbdTransmission.decodeRequest(bytes)
  }

  const format: StreamParser.FrameFormat<ClientMessage> = {
    protocol: "nbd",
    get name() {
      return phase === "ClientFlags"
        ? "client flags field"
        : phase === "Transmission"
        ? "request"
        : "negotiation option"
    },
    get headerSize() {
      switch (phase) {
        case "ClientFlags":
          return NbdHandshake.CLIENT_FLAGS_SIZE
        case "Options":
          return NbdHandshake.OPTION_HEADER_SIZE
        case "Transmission":
          return NbdTransmission.REQUEST_HEADER_SIZE
        case "Held":
          return HELD
      }
    },
    get maxFrameLength() {
      return phase === "Options"
        ? NbdHandshake.OPTION_HEADER_SIZE + maxOption
        : NbdTransmission.REQUEST_HEADER_SIZE + maxWrite
    },
    // A header that is wrong or over a cap frames as the header alone, so decodeFrame reports it precisely and
    // nothing after it is buffered.
    frameLength: (header) => {
      if (phase === "Options") {
        const length = u32be(header, 12)
        return hasMagic64(header, 0, IHAVEOPT_64) && length <= maxOption
          ? NbdHandshake.OPTION_HEADER_SIZE + length
          : NbdHandshake.OPTION_HEADER_SIZE
      }
      if (phase === "Transmission") {
        const length = u32be(header, 24)
        return u32be(header, 0) === REQUEST_MAGIC && u16be(header, 6) === Command.WRITE && length <= maxWrite
          ? NbdTransmission.REQUEST_HEADER_SIZE + length
          : NbdTransmission.REQUEST_HEADER_SIZE
      }
      return NbdHandshake.CLIENT_FLAGS_SIZE
    },
    decodeFrame: ({ bytes }) => {
      switch (phase) {
        case "Transmission":
          return decodeRequest(bytes)
        case "Options":
          return decodeOption(bytes)
        default: {
          phase = "Options"
          return Result.succeed({ _tag: "ClientFlags", flags: u32be(bytes, 0) })
        }
      }
    }
  }

  const parser = StreamParser.make(format)
  return {
    ...parser,
    phase: () => phase,
    resume: (next) => {
      phase = next
      return parser.push(EMPTY)
    }
  }
}

// -----------------------------------------------------------------------------
// client side: what the server sends
// -----------------------------------------------------------------------------

/**
 * Everything a server sends.
 *
 * @since 0.1.0
 * @category models
 */
export type ServerMessage =
  | NbdHandshake.Greeting
  | NbdHandshake.OptionReply
  | NbdHandshake.ExportNameReply
  | NbdTransmission.SimpleReply
  | NbdTransmission.Chunk

/**
 * Where the client-side parser is in the conversation.
 *
 * @since 0.1.0
 * @category models
 */
export type ClientPhase = "Greeting" | "Options" | "ExportName" | "Held" | "Transmission"

/**
 * Client-side parser options.
 *
 * @since 0.1.0
 * @category models
 */
export interface ClientParserOptions {
  /**
   * How many bytes of data follow a successful simple reply with this cookie: the length of the READ in flight
   * with it, 0 for any other command in flight, `undefined` for a cookie not in flight (a `DecodeError`). A
   * client that only gets structured replies to READs answers 0 for every cookie it has in flight.
   */
  readonly readLength: (cookie: bigint) => number | undefined
  /** Largest option reply data length; default `NbdHandshake.DEFAULT_MAX_OPTION_LENGTH` (64 KiB). */
  readonly maxOptionLength?: number | undefined
  /**
   * Largest READ data in a simple reply or an OFFSET_DATA chunk; any chunk payload may be 8 bytes more. Default
   * `NbdTransmission.DEFAULT_MAX_DATA_LENGTH` (32 MiB).
   */
  readonly maxReadLength?: number | undefined
  /** Where the stream starts; default `"Greeting"`. */
  readonly initialPhase?: "Greeting" | "Options" | "Transmission" | undefined
}

/**
 * The client's parser of a server stream.
 *
 * @since 0.1.0
 * @category models
 */
export interface ClientParser extends StreamParser.StreamParser<ServerMessage> {
  readonly phase: () => ClientPhase
  /**
   * Says the next bytes are the reply to `NBD_OPT_EXPORT_NAME`: 10 bytes when `noZeroes` (the client sent
   * `NBD_FLAG_C_NO_ZEROES`), else 134. Call it after sending the option and before pushing the answer.
   */
  readonly expectExportNameReply: (noZeroes: boolean) => void
}

/** Marks a frame that completed a header whose body is still to come; filtered out of every push. */
const PENDING = { _tag: "Pending" } as const
type Parsed = ServerMessage | typeof PENDING

type Stage = Exclude<ClientPhase, "Transmission"> | "Reply" | "SimpleData" | "ChunkPayload"

/**
 * Creates the client's parser of a server stream.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeClientParser = (options: ClientParserOptions): ClientParser => {
  const maxOption = options.maxOptionLength ?? NbdHandshake.DEFAULT_MAX_OPTION_LENGTH
  const maxRead = options.maxReadLength ?? NbdTransmission.DEFAULT_MAX_DATA_LENGTH
  const initial = options.initialPhase ?? "Greeting"
  let stage: Stage = initial === "Transmission" ? "Reply" : initial
  let noZeroes = false
  // The header whose body the next frame is, and where that body starts in the stream.
  let simpleCookie = 0n
  let chunkHeader: NbdTransmission.ChunkHeader | undefined
  let bodyLength = 0
  let bodyAt = 0
  let pending = 0

  const expectBody = (length: number, at: number): Decoded<Parsed> => {
    bodyLength = length
    bodyAt = at
    pending++
    return Result.succeed(PENDING)
  }

  const decodeOptionReply = (bytes: Uint8Array): Decoded<Parsed> => {
    const length = u32be(bytes, 16)
    if (hasMagic64(bytes, 0, REPLY_64) && length > maxOption) {
      return fail("nbd", "option reply", 16, `option reply length ${length} exceeds the maximum of ${maxOption}`)
    }
    const reply = NbdHandshake.decodeOptionReply(bytes)
    if (Result.isSuccess(reply) && reply.success._tag === "Ack") {
      if (reply.success.option === Option.GO) stage = "Reply"
      else if (reply.success.option === Option.STARTTLS) stage = "Held"
    }
    return reply
  }

  const decodeReplyHeader = (bytes: Uint8Array, offset: number): Decoded<Parsed> => {
    if (bytes.length === NbdTransmission.SIMPLE_REPLY_HEADER_SIZE) {
      const header = NbdTransmission.decodeSimpleReplyHeader(bytes)
      if (Result.isFailure(header)) return Result.fail(header.failure)
      const { cookie, error } = header.success
      const length = options.readLength(cookie)
      if (length === undefined) {
        return fail("nbd", "simple reply", 8, `no request is in flight with cookie 0x${cookie.toString(16)}`)
      }
      if (error !== 0 || length === 0) return Result.succeed({ _tag: "SimpleReply", error, cookie, data: EMPTY })
      if (!(length <= maxRead)) {
        return fail("nbd", "simple reply", 8, `read length ${length} exceeds the maximum of ${maxRead}`)
      }
      simpleCookie = cookie
      stage = "SimpleData"
      return expectBody(length, offset + bytes.length)
    }
    if (bytes.length === NbdTransmission.CHUNK_HEADER_SIZE) {
      const header = NbdTransmission.decodeChunkHeader(bytes)
      if (Result.isFailure(header)) return Result.fail(header.failure)
      if (header.success.length > maxRead + 8) {
        return fail(
          "nbd",
          "structured reply",
          16,
          `chunk length ${header.success.length} exceeds the maximum of ${maxRead + 8}`
        )
      }
      if (header.success.length === 0) return NbdTransmission.decodeChunkPayload(header.success, EMPTY)
      chunkHeader = header.success
      stage = "ChunkPayload"
      return expectBody(header.success.length, offset + bytes.length)
    }
    return fail("nbd", "reply", 0, "bad magic: expected 0x67446698 (simple) or 0x668e33ef (structured)")
  }

  const format: StreamParser.FrameFormat<Parsed> = {
    protocol: "nbd",
    get name() {
      switch (stage) {
        case "Greeting":
          return "greeting"
        case "ExportName":
          return "NBD_OPT_EXPORT_NAME reply"
        case "SimpleData":
          return "simple reply data"
        case "ChunkPayload":
          return "chunk payload"
        case "Reply":
          return "reply"
        default:
          return "negotiation reply"
      }
    },
    get headerSize() {
      switch (stage) {
        case "Greeting":
          return NbdHandshake.GREETING_SIZE
        case "Options":
          return NbdHandshake.OPTION_REPLY_HEADER_SIZE
        case "ExportName":
          return noZeroes ? NbdHandshake.EXPORT_NAME_REPLY_SIZE_NO_ZEROES : NbdHandshake.EXPORT_NAME_REPLY_SIZE
        case "Held":
          return HELD
        case "Reply":
          return 4
        case "SimpleData":
        case "ChunkPayload":
          return 1
      }
    },
    get maxFrameLength() {
      switch (stage) {
        case "Options":
          return NbdHandshake.OPTION_REPLY_HEADER_SIZE + maxOption
        case "SimpleData":
          return maxRead
        case "ChunkPayload":
          return maxRead + 8
        default:
          return NbdHandshake.EXPORT_NAME_REPLY_SIZE
      }
    },
    frameLength: (header) => {
      switch (stage) {
        case "Options": {
          const length = u32be(header, 16)
          return hasMagic64(header, 0, REPLY_64) && length <= maxOption
            ? NbdHandshake.OPTION_REPLY_HEADER_SIZE + length
            : NbdHandshake.OPTION_REPLY_HEADER_SIZE
        }
        case "Reply": {
          const magic = u32be(header, 0)
          return magic === SIMPLE_REPLY_MAGIC
            ? NbdTransmission.SIMPLE_REPLY_HEADER_SIZE
            : magic === STRUCTURED_REPLY_MAGIC
            ? NbdTransmission.CHUNK_HEADER_SIZE
            : 4
        }
        case "SimpleData":
        case "ChunkPayload":
          return bodyLength
        default:
          return header.length
      }
    },
    decodeFrame: ({ bytes, offset }): Decoded<Parsed> => {
      switch (stage) {
        case "Reply":
          return decodeReplyHeader(bytes, offset)
        case "SimpleData":
          stage = "Reply"
          return Result.succeed({ _tag: "SimpleReply", error: 0, cookie: simpleCookie, data: bytes })
        case "ChunkPayload":
          stage = "Reply"
          return NbdTransmission.decodeChunkPayload(chunkHeader!, bytes)
        case "Options":
          return decodeOptionReply(bytes)
        case "Greeting": {
          const greeting = NbdHandshake.decodeGreeting(bytes)
          if (Result.isSuccess(greeting)) stage = "Options"
          return greeting
        }
        default: {
          const reply = NbdHandshake.decodeExportNameReply(bytes, noZeroes)
          if (Result.isSuccess(reply)) stage = "Reply"
          return reply
        }
      }
    }
  }

  const parser = StreamParser.make(format)
  const push = (chunk: Uint8Array): Decoded<ReadonlyArray<ServerMessage>> => {
    pending = 0
    const parsed = parser.push(chunk)
    if (Result.isFailure(parsed) || pending === 0) return parsed as Decoded<ReadonlyArray<ServerMessage>>
    return Result.succeed(parsed.success.filter((m): m is ServerMessage => m !== PENDING))
  }
  const end = (): Decoded<void> => {
    if (stage !== "SimpleData" && stage !== "ChunkPayload") return parser.end()
    // The header was consumed, so the inner parser may hold nothing; the failure names the body it waited for.
    const failed = parser.push(EMPTY)
    if (Result.isFailure(failed)) return Result.fail(failed.failure)
    return fail(
      "nbd",
      format.name,
      bodyAt,
      `stream ended inside a reply's body (${parser.buffered()} of ${bodyLength} bytes received)`
    )
  }
  return {
    push,
    end,
    buffered: parser.buffered,
    phase: () => stage === "Reply" || stage === "SimpleData" || stage === "ChunkPayload" ? "Transmission" : stage,
    expectExportNameReply: (zeroesOmitted) => {
      noZeroes = zeroesOmitted
      stage = "ExportName"
    }
  }
}
