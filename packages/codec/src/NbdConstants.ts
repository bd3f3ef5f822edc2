/**
 * Numbers of the NBD protocol (NetworkBlockDevice `doc/proto.md`): magics, handshake / client / transmission
 * flags, option and option-reply codes, `NBD_INFO_*` types, command types and flags, structured reply types and
 * flags, error values and the `base:allocation` state bits. Every field on the wire is big-endian.
 *
 * Each table keeps the spec's names without their prefix (`NBD_OPT_GO` is `Option.GO`). The `*Name` functions
 * give the full spec name of a number, or `"<PREFIX>_<n>"` for a number the spec does not define.
 *
 * Extended headers (`NBD_OPT_EXTENDED_HEADERS`, 32-byte requests) are not covered: this package speaks the
 * 28-byte request header.
 *
 * @since 0.1.0
 */

/**
 * `NBDMAGIC` (`INIT_PASSWD`), the first 8 bytes the server sends.
 *
 * @since 0.1.0
 * @category constants
 */
export const NBDMAGIC = 0x4e42_444d_4147_4943n

/**
 * `IHAVEOPT`: the newstyle greeting's second magic, and the magic of every option request.
 *
 * @since 0.1.0
 * @category constants
 */
export const IHAVEOPT = 0x4948_4156_454f_5054n

/**
 * `cliserv_magic`: the oldstyle greeting's second magic (oldstyle is recognised only to refuse it).
 *
 * @since 0.1.0
 * @category constants
 */
export const CLISERV_MAGIC = 0x0042_0281_8612_53n

/**
 * The magic of every option reply during fixed newstyle negotiation.
 *
 * @since 0.1.0
 * @category constants
 */
export const OPTION_REPLY_MAGIC = 0x0003_e889_0455_65a9n

/**
 * `NBD_REQUEST_MAGIC`, the first 4 bytes of every transmission request.
 *
 * @since 0.1.0
 * @category constants
 */
export const REQUEST_MAGIC = 0x2560_9513

/**
 * `NBD_SIMPLE_REPLY_MAGIC` (formerly `NBD_REPLY_MAGIC`).
 *
 * @since 0.1.0
 * @category constants
 */
export const SIMPLE_REPLY_MAGIC = 0x6744_6698

/**
 * `NBD_STRUCTURED_REPLY_MAGIC`, the first 4 bytes of every structured reply chunk.
 *
 * @since 0.1.0
 * @category constants
 */
export const STRUCTURED_REPLY_MAGIC = 0x668e_33ef

/**
 * The IANA port for newstyle negotiation.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_PORT = 10809

/**
 * The longest string (export name, query, message) the spec allows, in UTF-8 bytes. The codec does not
 * enforce it (its caps are on whole messages); servers check names and queries against it.
 *
 * @since 0.1.0
 * @category constants
 */
export const MAX_STRING_LENGTH = 4096

/**
 * Handshake flags (16 bits, sent by the server in its greeting).
 *
 * @since 0.1.0
 * @category constants
 */
export const HandshakeFlags = {
  /** `NBD_FLAG_FIXED_NEWSTYLE`: the server speaks fixed newstyle. */
  FIXED_NEWSTYLE: 1 << 0,
  /** `NBD_FLAG_NO_ZEROES`: the server can omit the 124 zero bytes after `NBD_OPT_EXPORT_NAME`. */
  NO_ZEROES: 1 << 1
} as const

/**
 * Client flags (32 bits, the client's answer to the greeting). Any other bit is a reason for the server to
 * drop the connection.
 *
 * @since 0.1.0
 * @category constants
 */
export const ClientFlags = {
  /** `NBD_FLAG_C_FIXED_NEWSTYLE`. */
  FIXED_NEWSTYLE: 1 << 0,
  /** `NBD_FLAG_C_NO_ZEROES`: only when the server offered `NO_ZEROES`. */
  NO_ZEROES: 1 << 1
} as const

/**
 * Transmission flags (16 bits, per export: in the `NBD_OPT_EXPORT_NAME` reply and in `NBD_INFO_EXPORT`).
 *
 * @since 0.1.0
 * @category constants
 */
export const TransmissionFlags = {
  /** `NBD_FLAG_HAS_FLAGS`: always set. */
  HAS_FLAGS: 1 << 0,
  READ_ONLY: 1 << 1,
  SEND_FLUSH: 1 << 2,
  SEND_FUA: 1 << 3,
  ROTATIONAL: 1 << 4,
  SEND_TRIM: 1 << 5,
  SEND_WRITE_ZEROES: 1 << 6,
  /** Don't-fragment for structured READ replies. */
  SEND_DF: 1 << 7,
  CAN_MULTI_CONN: 1 << 8,
  /** Experimental `RESIZE` extension. */
  SEND_RESIZE: 1 << 9,
  SEND_CACHE: 1 << 10,
  SEND_FAST_ZERO: 1 << 11
} as const

/**
 * Option codes (`NBD_OPT_*`, 32 bits).
 *
 * @since 0.1.0
 * @category constants
 */
export const Option = {
  /** Choose an export and enter transmission; no reply header, no way to fail but closing. */
  EXPORT_NAME: 1,
  ABORT: 2,
  LIST: 3,
  /** Withdrawn; not in use. */
  PEEK_EXPORT: 4,
  STARTTLS: 5,
  INFO: 6,
  /** Like `INFO`, then transmission on `NBD_REP_ACK`. */
  GO: 7,
  STRUCTURED_REPLY: 8,
  LIST_META_CONTEXT: 9,
  SET_META_CONTEXT: 10
} as const

/**
 * A known option code.
 *
 * @since 0.1.0
 * @category models
 */
export type Option = typeof Option[keyof typeof Option]

/**
 * Bit 31 of an option reply type: the reply is an error.
 *
 * @since 0.1.0
 * @category constants
 */
export const REPLY_ERROR_BIT = 0x8000_0000

/**
 * Option reply types (`NBD_REP_*`, 32 bits). Errors have bit 31 set and may carry a message.
 *
 * @since 0.1.0
 * @category constants
 */
export const Reply = {
  ACK: 1,
  SERVER: 2,
  INFO: 3,
  META_CONTEXT: 4,
  ERR_UNSUP: REPLY_ERROR_BIT + 1,
  ERR_POLICY: REPLY_ERROR_BIT + 2,
  ERR_INVALID: REPLY_ERROR_BIT + 3,
  ERR_PLATFORM: REPLY_ERROR_BIT + 4,
  ERR_TLS_REQD: REPLY_ERROR_BIT + 5,
  ERR_UNKNOWN: REPLY_ERROR_BIT + 6,
  ERR_SHUTDOWN: REPLY_ERROR_BIT + 7,
  ERR_BLOCK_SIZE_REQD: REPLY_ERROR_BIT + 8,
  ERR_TOO_BIG: REPLY_ERROR_BIT + 9
} as const

/**
 * Information types (`NBD_INFO_*`, 16 bits) requested by `NBD_OPT_INFO` / `NBD_OPT_GO` and carried by
 * `NBD_REP_INFO`.
 *
 * @since 0.1.0
 * @category constants
 */
export const Info = {
  /** Export size and transmission flags; mandatory before a successful `NBD_REP_ACK`. */
  EXPORT: 0,
  NAME: 1,
  DESCRIPTION: 2,
  BLOCK_SIZE: 3
} as const

/**
 * Command types (`NBD_CMD_*`, 16 bits) of transmission requests.
 *
 * @since 0.1.0
 * @category constants
 */
export const Command = {
  READ: 0,
  /** The only request followed by a payload (`length` bytes). */
  WRITE: 1,
  /** Disconnect; no reply. */
  DISC: 2,
  FLUSH: 3,
  TRIM: 4,
  CACHE: 5,
  WRITE_ZEROES: 6,
  BLOCK_STATUS: 7,
  /** Experimental `RESIZE` extension. */
  RESIZE: 8
} as const

/**
 * A known command type.
 *
 * @since 0.1.0
 * @category models
 */
export type Command = typeof Command[keyof typeof Command]

/**
 * Command flags (`NBD_CMD_FLAG_*`, 16 bits).
 *
 * @since 0.1.0
 * @category constants
 */
export const CommandFlags = {
  FUA: 1 << 0,
  /** `NBD_CMD_WRITE_ZEROES`: do not punch a hole. */
  NO_HOLE: 1 << 1,
  /** `NBD_CMD_READ`: at most one content chunk. */
  DF: 1 << 2,
  /** `NBD_CMD_BLOCK_STATUS`: one extent per context. */
  REQ_ONE: 1 << 3,
  /** `NBD_CMD_WRITE_ZEROES`: fail with `ENOTSUP` unless faster than a write. */
  FAST_ZERO: 1 << 4
} as const

/**
 * Structured reply flags (16 bits).
 *
 * @since 0.1.0
 * @category constants
 */
export const ReplyFlags = {
  /** `NBD_REPLY_FLAG_DONE`: the last chunk of this reply. */
  DONE: 1 << 0
} as const

/**
 * Bit 15 of a structured reply type: an error chunk (payload starts with error, message length, message).
 *
 * @since 0.1.0
 * @category constants
 */
export const CHUNK_ERROR_BIT = 0x8000

/**
 * Structured reply chunk types (`NBD_REPLY_TYPE_*`, 16 bits).
 *
 * @since 0.1.0
 * @category constants
 */
export const ChunkType = {
  NONE: 0,
  OFFSET_DATA: 1,
  OFFSET_HOLE: 2,
  BLOCK_STATUS: 5,
  ERROR: CHUNK_ERROR_BIT + 1,
  ERROR_OFFSET: CHUNK_ERROR_BIT + 2
} as const

/**
 * Error values of replies (`NBD_E*`, 32 bits). A client treats any other value as `EINVAL`.
 *
 * @since 0.1.0
 * @category constants
 */
export const Errno = {
  EPERM: 1,
  EIO: 5,
  ENOMEM: 12,
  EINVAL: 22,
  ENOSPC: 28,
  EOVERFLOW: 75,
  ENOTSUP: 95,
  ESHUTDOWN: 108
} as const

/**
 * The one metadata context the spec defines.
 *
 * @since 0.1.0
 * @category constants
 */
export const BASE_ALLOCATION = "base:allocation"

/**
 * Status flags of `base:allocation` block status descriptors (`NBD_STATE_*`).
 *
 * @since 0.1.0
 * @category constants
 */
export const StateFlags = {
  /** Not allocated: writes may fail with `ENOSPC`. */
  HOLE: 1 << 0,
  /** Reads as zeroes. */
  ZERO: 1 << 1
} as const

const namer = (prefix: string, table: Readonly<Record<string, number>>, unknown = prefix) => {
  const names = new Map<number, string>()
  for (const [name, value] of Object.entries(table)) names.set(value, `${prefix}_${name}`)
  return (value: number): string => names.get(value) ?? `${unknown}_${value}`
}

/**
 * `NBD_OPT_GO` for 7; `NBD_OPT_<n>` for an unknown option.
 *
 * @since 0.1.0
 * @category getters
 */
export const optionName: (option: number) => string = namer("NBD_OPT", Option)

/**
 * `NBD_REP_ERR_UNSUP` for 2^31 + 1; `NBD_REP_<n>` for an unknown reply type.
 *
 * @since 0.1.0
 * @category getters
 */
export const replyName: (type: number) => string = namer("NBD_REP", Reply)

/**
 * `NBD_INFO_EXPORT` for 0; `NBD_INFO_<n>` for an unknown information type.
 *
 * @since 0.1.0
 * @category getters
 */
export const infoName: (type: number) => string = namer("NBD_INFO", Info)

/**
 * `NBD_CMD_WRITE` for 1; `NBD_CMD_<n>` for an unknown command.
 *
 * @since 0.1.0
 * @category getters
 */
export const commandName: (type: number) => string = namer("NBD_CMD", Command)

/**
 * `NBD_REPLY_TYPE_OFFSET_DATA` for 1; `NBD_REPLY_TYPE_<n>` for an unknown chunk type.
 *
 * @since 0.1.0
 * @category getters
 */
export const chunkTypeName: (type: number) => string = namer("NBD_REPLY_TYPE", ChunkType)

/**
 * `NBD_EINVAL` for 22; `NBD_ERRNO_<n>` for a value the spec does not define.
 *
 * @since 0.1.0
 * @category getters
 */
export const errnoName: (value: number) => string = namer("NBD", Errno, "NBD_ERRNO")

/**
 * Whether an option reply type is an error (bit 31).
 *
 * @since 0.1.0
 * @category predicates
 */
export const isErrorReply = (type: number): boolean => type >= REPLY_ERROR_BIT

/**
 * Whether a structured reply chunk type is an error chunk (bit 15).
 *
 * @since 0.1.0
 * @category predicates
 */
export const isErrorChunk = (type: number): boolean => (type & CHUNK_ERROR_BIT) !== 0
