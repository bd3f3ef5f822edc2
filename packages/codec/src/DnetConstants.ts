/**
 * Numbers of the elliptics `dnet` protocol, Era B (the last layout with `dnet_cmd` + `dnet_attr` +
 * `dnet_io_attr`, as of 2012-06-03): command numbers, header / attribute / IO flag bits, the reply bit of the
 * transaction number, node status bits, statistics counter slots, the errno values carried in `status`, and
 * the sizes fixed at build time in the original (`DNET_ID_SIZE` = 64 and friends).
 *
 * Gotcha: several flag bits mean different things depending on the command (attribute bit 0 has four
 * meanings, IO bit 9 is both PLAIN_WRITE and NODATA); the tables below list every name, so two names may share
 * a value.
 *
 * @since 0.1.0
 */

/**
 * Command numbers (`DNET_CMD_*`), carried in `dnet_attr.cmd`: in Era B the header itself has no command field.
 *
 * @since 0.1.0
 * @category constants
 */
export const Command = {
  /** Where an ID lives, plus file info (size, mode, times). */
  LOOKUP: 1,
  /** A node's address and ring IDs. */
  REVERSE_LOOKUP: 2,
  /** Announce self (address + IDs) so the receiver adds it to its route table. */
  JOIN: 3,
  /** Store data: `dnet_io_attr` + data. */
  WRITE: 4,
  /** Read data: `dnet_io_attr` with offset / size. */
  READ: 5,
  /** Era B: metadata scan ("CHECK") used by recovery. */
  LIST: 6,
  /** Server-side script events. */
  EXEC: 7,
  /** The node's whole route table. */
  ROUTE_LIST: 8,
  /** VM, load-average and filesystem statistics. */
  STAT: 9,
  /** Subscribe to / unsubscribe from changes of an ID. */
  NOTIFY: 10,
  /** Remove an object. */
  DEL: 11,
  /** Per-command success / error counters. */
  STAT_COUNT: 12,
  /** Read or change node status (RO/RW, exit, log mask). */
  STATUS: 13,
  /** Read all keys in `[io.id, io.parent]` with LIMIT `(io.start, io.num)`. */
  READ_RANGE: 14,
  /** Delete all keys in a range. */
  DEL_RANGE: 15,
  /** Authentication-cookie check. */
  AUTH: 16,
  /** Read many IDs in one request. */
  BULK_READ: 17,
  /** Statistics slot for unknown commands. */
  UNKNOWN: 18
} as const

/**
 * A known command number.
 *
 * @since 0.1.0
 * @category models
 */
export type Command = typeof Command[keyof typeof Command]

/**
 * `__DNET_CMD_MAX`: one past the last command number; also the size of each half of the counter table.
 *
 * @since 0.1.0
 * @category constants
 */
export const COMMAND_MAX = 19

const commandNames: ReadonlyArray<string | undefined> = (() => {
  const names: Array<string | undefined> = []
  for (const [name, value] of Object.entries(Command)) names[value] = name
  return names
})()

/**
 * The name of a command number (`"WRITE"`), or `"CMD_<n>"` for a number Era B does not define, so every value
 * has a printable name that {@link commandFromName} turns back into the same number.
 *
 * @since 0.1.0
 * @category getters
 */
export const commandName = (cmd: number): string => commandNames[cmd] ?? `CMD_${cmd}`

/**
 * The command number for a name produced by {@link commandName} (`"WRITE"`, `"CMD_99"`), or `undefined`.
 *
 * @since 0.1.0
 * @category getters
 */
export const commandFromName = (name: string): number | undefined => {
  if (Object.hasOwn(Command, name)) return Command[name as keyof typeof Command]
  const match = /^CMD_(\d{1,10})$/.exec(name)
  if (match === null) return undefined
  const value = Number(match[1])
  return value <= 0xffff_ffff ? value : undefined
}

/**
 * Header flags (`DNET_FLAGS_*`, `dnet_cmd.flags`, 32 bits). Bits 5 and up have no Era B meaning.
 *
 * @since 0.1.0
 * @category constants
 */
export const CmdFlags = {
  /** The server must finish with an empty reply carrying the completion status. */
  NEED_ACK: 1 << 0,
  /** Replies: more replies for this transaction follow. */
  MORE: 1 << 1,
  /** Local only: the client library marks the last callback of a torn-down transaction with it. */
  DESTROY: 1 << 2,
  /** Process here, never forward. */
  DIRECT: 1 << 3,
  /** Skip the per-ID operation lock. */
  NOLOCK: 1 << 4
} as const

/**
 * Bit 63 of `dnet_cmd.trans` (`DNET_TRANS_REPLY`): set on replies, which carry the request's transaction
 * number in the other 63 bits. In Era B the reply marker lives here, not in the flags.
 *
 * @since 0.1.0
 * @category constants
 */
export const TRANS_REPLY = 0x8000_0000_0000_0000n

/**
 * Attribute flags (`DNET_ATTR_*`, `dnet_attr.flags`). Bit 0 means something different per command.
 *
 * @since 0.1.0
 * @category constants
 */
export const AttrFlags = {
  /** DEL: also remove history / metadata. */
  DELETE_HISTORY: 1 << 0,
  /** STAT_COUNT: node-wide counters. */
  CNTR_GLOBAL: 1 << 0,
  /** LIST: bulk check. */
  BULK_CHECK: 1 << 0,
  /** STATUS: apply the supplied status. */
  STATUS_CHANGE: 1 << 0,
  /** LOOKUP: fill ctime / mtime from metadata. */
  META_TIMES: 1 << 1,
  /** READ / LOOKUP: skip checksum verification. */
  NOCSUM: 1 << 2,
  /** READ_RANGE: sort keys ascending before replying. */
  SORT: 1 << 3,
  /** Any command: the client copies it into the header as NOLOCK. */
  NOLOCK: 1 << 4
} as const

/**
 * IO flags (`DNET_IO_FLAGS_*`, `dnet_io_attr.flags`). Bit 9 is PLAIN_WRITE on writes and NODATA on range
 * requests.
 *
 * @since 0.1.0
 * @category constants
 */
export const IoFlags = {
  /** Server-internal: do not actually send the read reply. */
  SKIP_SENDING: 1 << 0,
  /** Write at the end of the object. */
  APPEND: 1 << 1,
  COMPRESS: 1 << 2,
  /** Metadata IO. */
  META: 1 << 3,
  /** eblob: reserve `io.num` bytes. */
  PREPARE: 1 << 4,
  /** eblob: finalise the record with size `io.num`. */
  COMMIT: 1 << 5,
  REMOVED: 1 << 6,
  OVERWRITE: 1 << 7,
  /** Do not checksum. */
  NOCSUM: 1 << 8,
  /** WRITE: write at offset without prepare / commit. */
  PLAIN_WRITE: 1 << 9,
  /** Range requests: send statistics only. */
  NODATA: 1 << 9
} as const

/**
 * `dnet_node_status.status_flags` bits (STATUS payload).
 *
 * @since 0.1.0
 * @category constants
 */
export const NodeStatusFlags = {
  EXIT: 1 << 0,
  /** Read-only: WRITE and DEL fail with -EROFS. */
  RO: 1 << 1
} as const

/**
 * Slots of the STAT_COUNT global counter table after the per-command slots (`DNET_CNTR_*`). Slots
 * `0 .. COMMAND_MAX - 1` count commands from joined server peers, `COMMAND_MAX .. 2 * COMMAND_MAX - 1` the same
 * commands from plain clients.
 *
 * @since 0.1.0
 * @category constants
 */
export const Counter = {
  LA1: 38,
  LA5: 39,
  LA15: 40,
  BSIZE: 41,
  FRSIZE: 42,
  BLOCKS: 43,
  BFREE: 44,
  BAVAIL: 45,
  FILES: 46,
  FFREE: 47,
  FAVAIL: 48,
  FSID: 49,
  VM_ACTIVE: 50,
  VM_INACTIVE: 51,
  VM_TOTAL: 52,
  VM_FREE: 53,
  VM_CACHED: 54,
  VM_BUFFERS: 55,
  NODE_FILES: 56,
  NODE_LAST_MERGE: 57,
  NODE_CHECK_COPY: 58,
  DBR_NOREC: 59,
  DBR_SYSTEM: 60,
  DBR_ERROR: 61,
  DBW_SYSTEM: 62,
  DBW_ERROR: 63,
  UNKNOWN: 64,
  MAX: 65
} as const

/**
 * Linux errno numbers seen in `dnet_cmd.status`, which carries them negated (`status = -Errno.ENOENT`).
 *
 * @since 0.1.0
 * @category constants
 */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  /** No node for the requested group. */
  ENXIO: 6,
  E2BIG: 7,
  ENOMEM: 12,
  EINVAL: 22,
  EROFS: 30,
  /** Checksum mismatch. */
  EILSEQ: 84,
  ENOTSUP: 95,
  ECONNRESET: 104,
  ETIMEDOUT: 110
} as const

/**
 * `DNET_ID_SIZE`: bytes of an object or node ID (SHA-512 sized). The original could be rebuilt with another
 * size; this codec supports only the default.
 *
 * @since 0.1.0
 * @category constants
 */
export const ID_SIZE = 64

/**
 * `DNET_ADDR_SIZE`: bytes reserved for a socket address in `dnet_addr`.
 *
 * @since 0.1.0
 * @category constants
 */
export const ADDR_SIZE = 28

/**
 * `DNET_CSUM_SIZE`: bytes of a checksum (SHA-512).
 *
 * @since 0.1.0
 * @category constants
 */
export const CSUM_SIZE = 64

/**
 * `DNET_AUTH_COOKIE_SIZE`: bytes of the authentication cookie.
 *
 * @since 0.1.0
 * @category constants
 */
export const AUTH_COOKIE_SIZE = 32

/**
 * `DNET_MAX_NAME_LEN`.
 *
 * @since 0.1.0
 * @category constants
 */
export const MAX_NAME_LEN = 64

/**
 * `DNET_MAX_TRANS_SIZE`: the most data a client puts in one transaction (10 MiB); larger writes are split.
 *
 * @since 0.1.0
 * @category constants
 */
export const MAX_TRANS_SIZE = 10 * 1024 * 1024

/**
 * `DNET_COPY_IO_SIZE`: below this many data bytes the client copies the data next to the headers and sends
 * everything in one write.
 *
 * @since 0.1.0
 * @category constants
 */
export const COPY_IO_SIZE = 512

/**
 * `DNET_DEFAULT_CHECK_TIMEOUT_SEC`.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_CHECK_TIMEOUT_SEC = 60

/**
 * `DNET_DEFAULT_STALL_TRANSACTIONS`: rounds with timed-out transactions before a connection is reset.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_STALL_TRANSACTIONS = 5

/**
 * `DNET_DEFAULT_NOTIFY_HASH_SIZE`.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_NOTIFY_HASH_SIZE = 256

/**
 * `DNET_HISTORY_SUFFIX`: suffix of the Era A file backend's history files.
 *
 * @since 0.1.0
 * @category constants
 */
export const HISTORY_SUFFIX = ".history"
