/**
 * An elliptics `dnet` storage node (Era B, `specs/dnet.md`): it listens, parses every packet with the rules of
 * §1.1, runs each attribute against an `ObjectStore`, and answers as §3 says: replies carry the request's
 * transaction with the reply bit, statuses are negative errnos, data replies carry MORE while the transaction
 * stays open, and a request with NEED_ACK ends with an empty ACK carrying the status (a successful WRITE ends
 * with its file-info reply instead).
 *
 * Commands: LOOKUP, WRITE (APPEND, PREPARE, COMMIT, PLAIN_WRITE / OVERWRITE; COMPRESS and NOCSUM accepted and
 * ignored), READ (`check_get_size`: an offset at or past the end succeeds with no data), DEL (-ENOENT for a
 * missing key, as eblob answers), LIST (the ids held, Era A style), STAT, STAT_COUNT, STATUS, READ_RANGE / DEL_RANGE (LIMIT, NODATA), BULK_READ, AUTH,
 * NOTIFY, JOIN, ROUTE_LIST, REVERSE_LOOKUP. EXEC is refused with -ENOTSUP (no remote execution), and so is a
 * STATUS asking the node to exit. Column `type` must be 0 (-1 too for DEL): other columns are -ENOTSUP. With an
 * `authCookie`, JOIN and STATUS changes need a successful AUTH on the connection first (-EPERM otherwise). A
 * NOTIFY subscription keeps its transaction open: every later WRITE or DEL of the key sends it a NOTIFY reply
 * (`dnet_io_notification`, with MORE); unsubscribing (attribute flags not 0) ends it with its ACK.
 *
 * Bad input. A header announcing more than `maxPacketSize` bytes closes the connection before any of it is
 * buffered (past it the stream cannot be followed). A packet whose attributes do not parse, a WRITE whose
 * `io.size` is not its data, and a fixed-size payload of the wrong size get a -EINVAL final reply whether or
 * not they asked for an ACK; the whole packet is checked before any attribute runs, so nothing is written from
 * a bad packet. Other failures follow §3.1: the final ACK carries them when NEED_ACK was set. Requests for
 * another group get -ENXIO: this node serves only its own group, and never forwards (every request is handled
 * as if it carried DIRECT).
 *
 * Network (§4). The node owns `ids` on the ring of its `group`. With `join` it dials each seed, asks
 * REVERSE_LOOKUP and ROUTE_LIST, dials every node it learns of, and announces itself to each with JOIN; a node
 * that receives a JOIN first checks it can connect back to the announced address. A route lives as long as a
 * connection that taught it: when the peer dies its ids leave the ring, and a background round every
 * `reconnectInterval` dials the lost peers again, so a node that comes back is routed to again. Addresses in
 * routes are `dnet_addr_attr`s: TCP to an IP literal, or a Unix socket path of at most 26 bytes.
 *
 * Durability is the store's: each write is acknowledged once the store has it, and the store is flushed when
 * the node stops.
 *
 * Concurrency: each connection runs up to `maxInFlight` requests at once (and holds at most
 * `maxInFlightBytes` of them); changes to one key run one at a time in arrival order unless NOLOCK is set.
 *
 * @since 0.1.0
 */
import {
  AttrFlags,
  AUTH_COOKIE_SIZE,
  CmdFlags,
  Command,
  COMMAND_MAX,
  Counter,
  Errno,
  ID_SIZE,
  IoFlags,
  NodeStatusFlags,
  TRANS_REPLY
} from "@tessera/codec/DnetConstants"
import * as DnetPacket from "@tessera/codec/DnetPacket"
import {
  AddrAttr,
  Auth,
  FileInfo,
  type Id,
  IoAttr,
  type IoAttr as IoAttrT,
  NodeStatus,
  Stat
} from "@tessera/codec/DnetStructs"
import type * as ObjectStore from "@tessera/storage/ObjectStore"
import * as StorageError from "@tessera/storage/StorageError"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberSet from "effect/FiberSet"
import * as Pull from "effect/Pull"
import * as Result from "effect/Result"
import * as Scope from "effect/Scope"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as Address from "./Address.ts"
import * as DnetError from "./DnetError.ts"
import * as DnetRing from "./DnetRing.ts"
import * as Link from "./internal/dnetLink.ts"
import * as Locks from "./internal/dnetLocks.ts"
import {
  ackOf,
  addrAttrOf,
  addressOf,
  BufferPool,
  encodeParts,
  type Incoming,
  makeReader,
  needsAck,
  replyHeader,
  routeOf,
  splitIds,
  zeroed
} from "./internal/dnetWire.ts"
import * as Transport from "./Transport.ts"

/**
 * How a node is set up.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The objects this node serves. */
  readonly store: ObjectStore.Store
  /** Where to listen (`tcp://127.0.0.1:1025`; port 0 picks one). */
  readonly listen: Address.Address | string
  /** The replica group this node serves; default 1. */
  readonly group?: number | undefined
  /** This node's ring ids; default {@link DEFAULT_ID_COUNT} random ones. */
  readonly ids?: ReadonlyArray<Uint8Array> | undefined
  /** Nodes to join (any one reachable node of the network is enough). */
  readonly join?: ReadonlyArray<string> | undefined
  /** The cookie AUTH must present (at most 32 bytes); when set, JOIN and STATUS changes need it first. */
  readonly authCookie?: Uint8Array | undefined
  /** Where STAT measures the file system; default the current directory. */
  readonly statPath?: string | undefined
  /** Largest packet accepted, header included; default `DnetPacket.DEFAULT_MAX_PACKET_SIZE` (64 MiB of data). */
  readonly maxPacketSize?: number | undefined
  /** Data bytes in one READ reply; larger reads are split into several replies with MORE. Default 64 MiB. */
  readonly maxReplyData?: number | undefined
  /** Requests of one connection handled at once; default 32. */
  readonly maxInFlight?: number | undefined
  /** Bytes of requests of one connection held at once; default 256 MiB (one packet is always admitted). */
  readonly maxInFlightBytes?: number | undefined
  /** How often lost peers are dialled again; default 1 second. */
  readonly reconnectInterval?: Duration.Input | undefined
  /** Timeout of the node's own requests to peers (join, connect-back check); default 5 seconds. */
  readonly peerTimeout?: Duration.Input | undefined
}

/**
 * A running node.
 *
 * @since 0.1.0
 * @category models
 */
export interface DnetNode {
  /** The address it listens on, as a string (the port the OS chose for port 0). */
  readonly address: string
  readonly group: number
  readonly ids: ReadonlyArray<Uint8Array>
  /** This node and every peer it has a live connection with. */
  readonly routes: () => ReadonlyArray<DnetRing.Route>
  /** The rings of {@link DnetNode.routes}. */
  readonly ring: () => DnetRing.Ring
  /** Connections being served. */
  readonly connections: () => number
  /** Whether the node is read-only (a STATUS change sets it). */
  readonly readOnly: () => boolean
}

/**
 * Ring ids a node makes for itself when none are given. The original derived the count from free space (one
 * per 100 GiB, plus one); a fixed handful spreads keys more evenly over a few nodes.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_ID_COUNT = 8

/** Ids a JOIN may announce. */
const MAX_JOIN_IDS = 4096
/** Ids per LIST reply (1 MiB of ids). */
const LIST_IDS_PER_REPLY = 16384
/** NOTIFY subscriptions one connection may hold. */
const MAX_SUBSCRIPTIONS = 1024
/** Received bytes a connection holds before it stops reading: a quarter of a full-size WRITE. */
const READ_BUFFER = 16 * 1024 * 1024
const EMPTY = new Uint8Array(0)
const ZERO_ID = new Uint8Array(ID_SIZE)
const ZERO_CSUM = new Uint8Array(64)
const MIB = 1024 * 1024

/** A failure the node turns into a status. */
class Failed {
  readonly status: number
  /** A malformed request: the -EINVAL goes back even without NEED_ACK. */
  readonly malformed: boolean
  constructor(status: number, malformed = false) {
    this.status = status
    this.malformed = malformed
  }
}

const fail = (errno: number) => Effect.fail(new Failed(-errno))
const malformed = Effect.fail(new Failed(-Errno.EINVAL, true))

const statusOf = (error: StorageError.StorageError): number => {
  switch (error.reason._tag) {
    case "NotFound":
      return -Errno.ENOENT
    case "OutOfRange":
      return -Errno.EINVAL
    case "Unsupported":
      return -Errno.ENOTSUP
    case "Corrupt":
      return -Errno.EILSEQ
    default:
      return -DnetError.EIO
  }
}

const storage = <A>(effect: Effect.Effect<A, StorageError.StorageError>) =>
  Effect.mapError(effect, (error) => new Failed(statusOf(error)))

const badArgument = (detail: string) => DnetError.make(new DnetError.BadArgument({ detail }))

/** `dnet_file_info` of an empty object, written at time 0 (no checksum kept: NOCSUM). */
const EMPTY_FILE_INFO = FileInfo.encode({
  flen: 0,
  checksum: ZERO_CSUM,
  nlink: 1,
  mode: 0o100644,
  dev: 0n,
  rdev: 0n,
  ino: 0n,
  uid: 0,
  gid: 0,
  blksize: 4096,
  blocks: 0,
  size: 0,
  offset: 0,
  atime: { tsec: 0n, tnsec: 0n },
  ctime: { tsec: 0n, tnsec: 0n },
  mtime: { tsec: 0n, tnsec: 0n }
})

/** Where the fields that vary sit in `dnet_file_info`. */
const BLOCKS_AT = 128
const SIZE_AT = 136
const TIMES_AT = [152, 168, 184]

/** Writes a count below 2^53 as an unsigned 64-bit little-endian integer. */
const putCount = (view: DataView, at: number, value: number): void => {
  view.setUint32(at, value >>> 0, true)
  view.setUint32(at + 4, Math.floor(value / 0x1_0000_0000), true)
}

/**
 * The LOOKUP / WRITE reply payload for a stored object: `addrAttr` and the object's `dnet_file_info`, patched
 * into a copy of a template (this is on every write's path; encoding the struct field by field costs more).
 */
const storedPayload = (addrAttr: Uint8Array, info: ObjectStore.ObjectInfo): Uint8Array => {
  const out = zeroed(addrAttr.length + EMPTY_FILE_INFO.length)
  out.set(addrAttr)
  out.set(EMPTY_FILE_INFO, addrAttr.length)
  const view = new DataView(out.buffer, out.byteOffset + addrAttr.length)
  putCount(view, BLOCKS_AT, Math.ceil(info.size / 512))
  putCount(view, SIZE_AT, info.size)
  const seconds = Math.floor(info.modified / 1000)
  const nanos = Math.floor((info.modified % 1000) * 1_000_000)
  for (const at of TIMES_AT) {
    putCount(view, at, seconds)
    putCount(view, at + 8, nanos)
  }
  return out
}

/**
 * The arrays to write for reply parts of `bytes` in all: small replies (a READ and its ACK) joined into one, as
 * one plain write costs less than a gather write of several small ones.
 */
const joinSmall = (parts: Array<Uint8Array>, bytes: number): Array<Uint8Array> =>
  parts.length > 1 && bytes <= JOIN_BELOW ? [concat(parts)] : parts

const concat = (parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  let size = 0
  for (const part of parts) size += part.length
  const out = zeroed(size)
  let at = 0
  for (const part of parts) {
    out.set(part, at)
    at += part.length
  }
  return out
}

/** A key as the name of its entry in the node's maps (a one-byte string: cheaper to make than hex). */
const nameOf = (key: Uint8Array): string => Buffer.from(key.buffer, key.byteOffset, key.length).toString("latin1")

/** A reply to `request` with one attribute. */
const replyPacket = (
  request: Parameters<typeof replyHeader>[0],
  cmd: number,
  attrFlags: number,
  data: Uint8Array,
  more: boolean,
  io?: IoAttrT,
  id?: Id
): DnetPacket.Packet => ({
  ...replyHeader(request, more, id),
  attrs: [io === undefined ? { cmd, flags: attrFlags, data } : { cmd, flags: attrFlags, io, data }]
})

/** A request as the handlers see it: its header, with flags that WRITE may change. */
interface Request {
  readonly id: Id
  flags: number
  readonly trans: bigint
  /** Replies not yet written: a request's replies leave together, in one write, unless they add up. */
  readonly out: Array<Uint8Array>
  outBytes: number
  /**
   * Whether the packet's bytes are a buffer of its own holding this one attribute, which a WRITE may give to the
   * store (`adopt`).
   */
  readonly owned: boolean
  /** Whether they were given: then they must not go back to the node's pool. */
  adopted: boolean
  /** Bytes the store lent to replies (reads), given back once the replies have left. */
  readonly views: Array<Uint8Array>
}

/** Reply bytes a request holds before writing them out (what streams a READ_RANGE or a split READ). */
const FLUSH_BYTES = 256 * 1024
/** READ data a request answered at once may hold: bigger goes the usual way, given back once sent (`giveBack`). */
const ANSWER_NOW_BELOW = 1024 * 1024
/** Replies of a request up to this size leave as one array. */
const JOIN_BELOW = 16 * 1024
/** WRITE flags that make a write more than "these bytes at this offset" (see `writeObject`). */
const SPECIAL_WRITE = IoFlags.PREPARE | IoFlags.APPEND | IoFlags.PLAIN_WRITE | IoFlags.OVERWRITE | IoFlags.COMMIT

/** One NOTIFY subscription: replies go to its transaction on its connection. */
interface Subscription {
  readonly key: string
  readonly request: Request
  readonly session: Session
}

/** What the node keeps per served connection. */
interface Session {
  readonly connection: Transport.Connection
  authenticated: boolean
  /** The route this connection announced with JOIN, if any: its requests count as a server peer's. */
  joined: string | undefined
  readonly subscriptions: Set<Subscription>
}

/** A peer route and the connections that vouch for it; it leaves the ring when the last one ends. */
interface Peer {
  route: DnetRing.Route
  readonly sources: Set<object>
}

/**
 * Starts a node: listens, joins the network if asked (waiting for the first round of joins; unreachable seeds
 * are retried in the background), and serves until the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fn("DnetNode.make")(function*(
  options: Options
): Effect.fn.Return<DnetNode, DnetError.DnetError, Transport.Transport | Scope.Scope> {
  const store = options.store
  const group = options.group ?? 1
  if (!(Number.isInteger(group) && group >= 0 && group <= 0xffff_ffff)) {
    return yield* badArgument(`the group must be an integer from 0 to 4294967295, got ${group}`)
  }
  const ids = options.ids ?? DnetRing.randomIds(DEFAULT_ID_COUNT)
  if (ids.length === 0 || ids.some((id) => id.length !== ID_SIZE)) {
    return yield* badArgument(`a node needs at least one ring id of ${ID_SIZE} bytes`)
  }
  const cookie = new Uint8Array(AUTH_COOKIE_SIZE)
  if (options.authCookie !== undefined) {
    if (options.authCookie.length > AUTH_COOKIE_SIZE) {
      return yield* badArgument(`the auth cookie is at most ${AUTH_COOKIE_SIZE} bytes`)
    }
    cookie.set(options.authCookie)
  }
  const needsAuth = options.authCookie !== undefined
  const maxPacketSize = options.maxPacketSize ?? DnetPacket.DEFAULT_MAX_PACKET_SIZE
  const maxReplyData = Math.max(1, options.maxReplyData ?? 64 * MIB)
  const maxInFlight = Math.max(1, options.maxInFlight ?? 32)
  const maxInFlightBytes = Math.max(1, options.maxInFlightBytes ?? 256 * MIB)
  const reconnectInterval = options.reconnectInterval ?? Duration.seconds(1)
  const peerTimeout = options.peerTimeout ?? Duration.seconds(5)
  const statPath = options.statPath ?? "."
  const transport = yield* Transport.Transport
  const scope = yield* Scope.Scope

  const listener = yield* Effect.mapError(
    // Requests are answered inside the read that brings them (see `answerNow`): no turn of the loop in between.
    transport.listen(options.listen, { readBuffer: READ_BUFFER, readWake: "read" }),
    (error) => DnetError.make(new DnetError.Unreachable({ node: String(options.listen), detail: error.message }))
  )
  const address = Address.format(listener.address)
  // Acknowledged writes are made durable when the node stops (finalizers run before the store's own close).
  yield* Effect.addFinalizer(() => Effect.ignore(store.flush))
  const selfAttr = addrAttrOf(address)
  if (selfAttr === undefined && (options.join?.length ?? 0) > 0) {
    return yield* badArgument(
      `${address} cannot be announced to other nodes (use TCP to an IP address, or a Unix path of at most 26 bytes)`
    )
  }
  const selfAddrAttr = AddrAttr.encode(
    selfAttr ?? { sockType: 0, family: 0, proto: 0, addr: { addr: new Uint8Array(28), addrLen: 0 } }
  )
  const selfIds = concat(ids)
  const selfRoute: DnetRing.Route = { address, group, ids }

  let readOnly = false
  let nodeFlags = 0
  let logMask = 0
  const locks = Locks.make()
  // Big packets are received into reused buffers: two full-size packets' worth, shared by all connections.
  const pool = new BufferPool(2 * maxPacketSize, store.spare)
  const sessions = new Set<Session>()
  const subscriptions = new Map<string, Set<Subscription>>()
  // Slots 0..COMMAND_MAX-1 for joined peers, COMMAND_MAX.. for clients: [count, errors].
  const counters = Array.from({ length: 2 * COMMAND_MAX }, () => [0, 0] as [number, number])

  // --- routes ------------------------------------------------------------------------------------------------

  const peers = new Map<string, Peer>()
  let ring = DnetRing.make([selfRoute])
  const rebuild = () => {
    ring = DnetRing.make([selfRoute, ...[...peers.values()].map((peer) => peer.route)])
  }
  const addRoute = (route: DnetRing.Route, source: object) => {
    if (route.address === address) return
    const peer = peers.get(route.address)
    if (peer === undefined) peers.set(route.address, { route, sources: new Set([source]) })
    else {
      peer.route = route
      peer.sources.add(source)
    }
    rebuild()
  }
  const dropSource = (source: object) => {
    let changed = false
    for (const [key, peer] of peers) {
      if (peer.sources.delete(source) && peer.sources.size === 0) {
        peers.delete(key)
        changed = true
      }
    }
    if (changed) rebuild()
  }
  const routes = (): ReadonlyArray<DnetRing.Route> => [selfRoute, ...[...peers.values()].map((peer) => peer.route)]

  // --- replies -----------------------------------------------------------------------------------------------

  // A connection that failed is closed by its read loop; its replies have nowhere to go.
  const write = (session: Session, parts: ReadonlyArray<Uint8Array>) => Effect.ignore(session.connection.write(parts))

  /** Writes out what a request holds (see `joinSmall`). */
  const flush = (session: Session, request: Request) =>
    Effect.suspend(() => {
      if (request.out.length === 0) return Effect.void
      const parts = joinSmall(request.out.splice(0), request.outBytes)
      request.outBytes = 0
      return write(session, parts)
    })

  /** Adds a packet to a request's replies, writing them out when they add up to `FLUSH_BYTES`. */
  const push = (session: Session, request: Request, packet: DnetPacket.Packet) => {
    for (const part of encodeParts(packet)) {
      request.out.push(part)
      request.outBytes += part.length
    }
    return request.outBytes >= FLUSH_BYTES ? flush(session, request) : Effect.void
  }

  const reply = (
    session: Session,
    request: Request,
    cmd: number,
    attrFlags: number,
    data: Uint8Array,
    more: boolean,
    io?: IoAttrT,
    id?: Id
  ) => push(session, request, replyPacket(request, cmd, attrFlags, data, more, io, id))

  /** Sends `bytes` read at `io.offset` as READ replies of at most `maxReplyData` each (§3.2). */
  const sendRead = (
    session: Session,
    request: Request,
    attrFlags: number,
    io: IoAttrT,
    bytes: Uint8Array,
    alwaysMore: boolean
  ): Effect.Effect<void> => {
    const id: Id = { id: io.id, groupId: request.id.groupId, type: request.id.type }
    if (bytes.length <= maxReplyData) {
      // The usual case: one reply (none for an empty read, which succeeds with no data).
      return bytes.length === 0
        ? Effect.void
        : reply(session, request, Command.READ, attrFlags, bytes, alwaysMore, { ...io, size: bytes.length }, id)
    }
    return Effect.gen(function*() {
      for (let at = 0; at < bytes.length; at += maxReplyData) {
        const piece = bytes.subarray(at, Math.min(bytes.length, at + maxReplyData))
        const last = at + piece.length >= bytes.length
        yield* reply(session, request, Command.READ, attrFlags, piece, alwaysMore || !last, {
          ...io,
          offset: io.offset + at,
          size: piece.length
        }, id)
      }
    })
  }

  /**
   * Gives views back to the store once the connection has copied out every byte written so far (big replies go
   * by reference). Without a way to know that, or when the connection failed, they are kept: the store then
   * only cannot reuse that memory (the memory store copies such an object on its next write).
   */
  const giveBack = (session: Session, views: ReadonlyArray<Uint8Array>) => {
    const release = store.release
    const written = session.connection.written
    if (release === undefined || written === undefined) return Effect.void
    return Effect.ignore(Effect.andThen(written, Effect.sync(() => views.forEach(release))))
  }

  const notify = (key: Uint8Array, io: IoAttrT) =>
    Effect.suspend(() => {
      const subscribers = subscriptions.get(nameOf(key))
      if (subscribers === undefined) return Effect.void
      const data = concat([selfAddrAttr, IoAttr.encode(io)])
      return Effect.forEach(
        [...subscribers],
        (sub) => write(sub.session, encodeParts(replyPacket(sub.request, Command.NOTIFY, 0, data, true))),
        { discard: true }
      )
    })

  const unsubscribe = (sub: Subscription) => {
    sub.session.subscriptions.delete(sub)
    const set = subscriptions.get(sub.key)
    set?.delete(sub)
    if (set !== undefined && set.size === 0) subscriptions.delete(sub.key)
  }

  /** The status refusing a request for another group or a change on a read-only node, or 0. */
  const refusal = (request: Request, change: boolean): number =>
    request.id.groupId !== group ? -Errno.ENXIO : change && readOnly ? -Errno.EROFS : 0

  const lockFor = <A, E>(request: Request, key: Uint8Array, effect: Effect.Effect<A, E>) =>
    (request.flags & CmdFlags.NOLOCK) !== 0 ? effect : locks.with(nameOf(key), effect)

  // --- commands ----------------------------------------------------------------------------------------------

  /** WRITE with the IO flags of §2.5, as one change of the object. */
  const writeObject = (io: IoAttrT, data: Uint8Array) =>
    Effect.gen(function*() {
      const key = io.id
      const flags = io.flags
      let info: ObjectStore.ObjectInfo
      if ((flags & IoFlags.PREPARE) !== 0) {
        // A prepared record starts afresh; the reservation itself is only a size hint here.
        if (io.offset === 0) info = yield* storage(store.write(key, data))
        else {
          yield* storage(store.write(key, EMPTY))
          info = yield* storage(store.write(key, data, { offset: io.offset }))
        }
      } else if ((flags & IoFlags.APPEND) !== 0) {
        info = yield* storage(store.write(key, data, { append: true }))
      } else if ((flags & (IoFlags.PLAIN_WRITE | IoFlags.OVERWRITE | IoFlags.COMMIT)) !== 0 && io.offset === 0) {
        // In place at offset 0: the bytes after the written ones stay (a store write at 0 replaces).
        const old = yield* Effect.option(storage(store.stat(key)))
        if (old._tag === "Some" && old.value.size > data.length) {
          const tail = yield* storage(store.read(key, data.length, 0))
          const joined = concat([data, tail])
          store.release?.(tail)
          info = yield* storage(store.write(key, joined))
        } else {
          info = yield* storage(store.write(key, data))
        }
      } else {
        info = yield* storage(store.write(key, data, { offset: io.offset }))
      }
      if ((flags & IoFlags.COMMIT) !== 0 && info.size !== io.num) {
        // COMMIT fixes the record's final size at io.num.
        info = info.size > io.num
          ? yield* storage(Effect.flatMap(store.read(key, 0, io.num), (kept) =>
            Effect.ensuring(
              store.write(key, kept),
              Effect.sync(() => store.release?.(kept))
            )))
          : yield* storage(store.write(key, EMPTY, { offset: io.num }))
      }
      return info
    })

  const runAttribute = (
    session: Session,
    request: Request,
    attr: DnetPacket.Attribute
  ): Effect.Effect<void, Failed> => {
    const cmd = attr.cmd
    const io = attr.io
    switch (cmd) {
      case Command.LOOKUP:
        return Effect.gen(function*() {
          if (request.id.groupId !== group) return yield* fail(Errno.ENXIO)
          const info = yield* storage(store.stat(request.id.id))
          if (info.size === 0) return yield* fail(Errno.ENOENT)
          yield* reply(session, request, cmd, attr.flags, storedPayload(selfAddrAttr, info), false)
        })
      case Command.WRITE: {
        if (io!.size !== attr.data.length) return malformed
        const refused = refusal(request, true)
        if (refused !== 0) return Effect.fail(new Failed(refused))
        if (io!.type !== 0 || (io!.flags & IoFlags.META) !== 0) return fail(Errno.ENOTSUP)
        // The file-info reply is the final one (§3.1): NEED_ACK comes back only if the write fails.
        const wantedAck = needsAck(request.flags)
        request.flags &= ~CmdFlags.NEED_ACK
        // A big replacing write of a packet of its own goes to a store that keeps objects in memory by handing
        // it the received bytes themselves (they were received into memory it lent, see the pool).
        const adopt = request.owned && store.spare !== undefined && (io!.flags & SPECIAL_WRITE) === 0 &&
          io!.offset === 0
        if (adopt) request.adopted = true
        const change = (io!.flags & SPECIAL_WRITE) === 0
          ? storage(store.write(io!.id, attr.data, adopt ? { offset: 0, adopt } : { offset: io!.offset }))
          : writeObject(io!, attr.data)
        return lockFor(request, io!.id, change).pipe(
          Effect.matchEffect({
            onFailure: (failed) => {
              if (wantedAck) request.flags |= CmdFlags.NEED_ACK
              return Effect.fail(failed)
            },
            onSuccess: (info) =>
              Effect.andThen(
                reply(
                  session,
                  request,
                  cmd,
                  attr.flags | AttrFlags.NOCSUM,
                  storedPayload(selfAddrAttr, info),
                  false
                ),
                subscriptions.size === 0 ? Effect.void : notify(io!.id, { ...io!, size: attr.data.length })
              )
          })
        )
      }
      case Command.READ: {
        // Written without a generator: this and WRITE are the hot path.
        if (request.id.groupId !== group) return fail(Errno.ENXIO)
        if (io!.type !== 0 || (io!.flags & IoFlags.META) !== 0) return fail(Errno.ENOTSUP)
        return Effect.flatMap(
          storage(store.read(io!.id, io!.offset, io!.size)),
          (bytes) => {
            request.views.push(bytes)
            return (io!.flags & IoFlags.SKIP_SENDING) !== 0
              ? Effect.void
              : sendRead(session, request, attr.flags, io!, bytes, false)
          }
        )
      }
      case Command.DEL:
        return Effect.gen(function*() {
          const refused = refusal(request, true)
          if (refused !== 0) return yield* Effect.fail(new Failed(refused))
          if (request.id.type !== 0 && request.id.type !== -1) return yield* fail(Errno.ENOTSUP)
          const key = request.id.id
          const removed = yield* lockFor(request, key, storage(store.remove(key)))
          if (!removed) return yield* fail(Errno.ENOENT)
          yield* notify(key, {
            parent: ZERO_ID,
            id: key,
            start: 0,
            num: 0,
            type: 0,
            flags: IoFlags.REMOVED,
            offset: 0,
            size: 0
          })
        })
      case Command.LIST:
        return Effect.gen(function*() {
          const all = yield* storage(store.list())
          for (let at = 0; at < all.length; at += LIST_IDS_PER_REPLY) {
            const chunk = all.slice(at, at + LIST_IDS_PER_REPLY)
            yield* reply(session, request, cmd, attr.flags, concat(chunk.map((info) => info.key)), true)
          }
        })
      case Command.STAT:
        return Effect.gen(function*() {
          const fsStat = yield* Effect.option(Effect.tryPromise(() => Fs.statfs(statPath)))
          const la = Os.loadavg().map((value) => Math.min(0xffff, Math.round(value * 100)))
          const fs = fsStat._tag === "Some" ? fsStat.value : undefined
          const data = Stat.encode({
            la: [la[0]!, la[1]!, la[2]!],
            namemax: 255,
            bsize: fs?.bsize ?? 0,
            frsize: fs?.bsize ?? 0,
            blocks: fs?.blocks ?? 0,
            bfree: fs?.bfree ?? 0,
            bavail: fs?.bavail ?? 0,
            files: fs?.files ?? 0,
            ffree: fs?.ffree ?? 0,
            favail: fs?.ffree ?? 0,
            fsid: 0n,
            flag: 0n,
            vmActive: 0,
            vmInactive: 0,
            vmTotal: Math.floor(Os.totalmem() / 1024),
            vmFree: Math.floor(Os.freemem() / 1024),
            vmCached: 0,
            vmBuffers: 0
          })
          yield* reply(session, request, cmd, attr.flags, data, false)
        })
      case Command.NOTIFY:
        return Effect.gen(function*() {
          const key = nameOf(request.id.id)
          if (attr.flags === 0) {
            if (session.subscriptions.size >= MAX_SUBSCRIPTIONS) return yield* fail(Errno.ENOMEM)
            // The subscription's transaction stays open: notifications carry MORE, no ACK ends it now.
            // A copy of the id: the packet's bytes are reused once this request is done.
            const id = { ...request.id, id: request.id.id.slice() }
            const sub: Subscription = {
              key,
              request: { ...request, id, out: [], outBytes: 0, owned: false, adopted: false, views: [] },
              session
            }
            session.subscriptions.add(sub)
            let set = subscriptions.get(key)
            if (set === undefined) subscriptions.set(key, set = new Set())
            set.add(sub)
            request.flags &= ~CmdFlags.NEED_ACK
            return
          }
          for (const sub of session.subscriptions) {
            if (sub.key !== key) continue
            unsubscribe(sub)
            if (needsAck(sub.request.flags)) yield* push(session, request, ackOf(sub.request, 0))
          }
        })
      case Command.STAT_COUNT:
        return Effect.gen(function*() {
          const global = (attr.flags & AttrFlags.CNTR_GLOBAL) !== 0
          const slots: Array<readonly [number, number]> = counters.map((c) => [c[0], c[1]] as const)
          if (global) {
            const la = Os.loadavg()
            const fsStat = yield* Effect.option(Effect.tryPromise(() => Fs.statfs(statPath)))
            const fs = fsStat._tag === "Some" ? fsStat.value : undefined
            const stats = yield* Effect.option(storage(store.stats))
            const extra: Record<number, number> = {
              [Counter.LA1]: Math.round(la[0]! * 100),
              [Counter.LA5]: Math.round(la[1]! * 100),
              [Counter.LA15]: Math.round(la[2]! * 100),
              [Counter.BSIZE]: fs?.bsize ?? 0,
              [Counter.FRSIZE]: fs?.bsize ?? 0,
              [Counter.BLOCKS]: fs?.blocks ?? 0,
              [Counter.BFREE]: fs?.bfree ?? 0,
              [Counter.BAVAIL]: fs?.bavail ?? 0,
              [Counter.FILES]: fs?.files ?? 0,
              [Counter.FFREE]: fs?.ffree ?? 0,
              [Counter.FAVAIL]: fs?.ffree ?? 0,
              [Counter.VM_TOTAL]: Math.floor(Os.totalmem() / 1024),
              [Counter.VM_FREE]: Math.floor(Os.freemem() / 1024),
              [Counter.NODE_FILES]: stats._tag === "Some" ? stats.value.objects : 0
            }
            for (let slot = 2 * COMMAND_MAX; slot < Counter.MAX; slot++) slots.push([extra[slot] ?? 0, 0])
          }
          const data = new Uint8Array(40 + 16 * slots.length)
          const view = new DataView(data.buffer)
          data.set(selfAddrAttr.subarray(8, 40), 0) // the dnet_addr part of this node's address
          view.setInt32(32, slots.length, true)
          view.setInt32(36, COMMAND_MAX, true)
          slots.forEach(([count, err], i) => {
            view.setBigUint64(40 + 16 * i, BigInt(count), true)
            view.setBigUint64(48 + 16 * i, BigInt(err), true)
          })
          yield* reply(session, request, cmd, attr.flags, data, true)
        })
      case Command.STATUS:
        return Effect.gen(function*() {
          if (attr.data.length !== NodeStatus.size) return yield* malformed
          if ((attr.flags & AttrFlags.STATUS_CHANGE) !== 0) {
            if (!session.authenticated) return yield* fail(Errno.EPERM)
            const wanted = Result.getOrThrow(NodeStatus.decode(attr.data))
            // Remote shutdown is not offered.
            if (wanted.statusFlags !== -1 && (wanted.statusFlags & NodeStatusFlags.EXIT) !== 0) {
              return yield* fail(Errno.EPERM)
            }
            if (wanted.statusFlags !== -1) readOnly = (wanted.statusFlags & NodeStatusFlags.RO) !== 0
            if (wanted.nflags !== -1) nodeFlags = wanted.nflags
            if (wanted.logMask !== 0xffff_ffff) logMask = wanted.logMask
          }
          const current = NodeStatus.encode({
            nflags: nodeFlags,
            statusFlags: readOnly ? NodeStatusFlags.RO : 0,
            logMask
          })
          yield* reply(session, request, cmd, attr.flags, current, true)
        })
      case Command.READ_RANGE:
      case Command.DEL_RANGE:
        return Effect.gen(function*() {
          const refused = refusal(request, cmd === Command.DEL_RANGE)
          if (refused !== 0) return yield* Effect.fail(new Failed(refused))
          if (io!.type !== 0) return yield* fail(Errno.ENOTSUP)
          const found = DnetRing.compareIds(io!.id, io!.parent) > 0 ? [] : yield* storage(store.list({
            start: io!.id,
            end: io!.parent,
            skip: io!.start,
            ...(io!.num > 0 && { limit: io!.num })
          }))
          let count = 0
          for (const info of found) {
            if (cmd === Command.DEL_RANGE) {
              const removed = yield* lockFor(request, info.key, storage(store.remove(info.key)))
              if (removed) count++
              continue
            }
            const record: IoAttrT = {
              parent: io!.parent,
              id: info.key,
              start: 0,
              num: 0,
              type: 0,
              flags: io!.flags,
              offset: 0,
              size: info.size
            }
            if ((io!.flags & IoFlags.NODATA) !== 0) {
              // Statistics only: the record's size without its bytes.
              yield* reply(session, request, Command.READ, attr.flags, EMPTY, true, record, {
                id: info.key,
                groupId: request.id.groupId,
                type: 0
              })
              count++
              continue
            }
            const bytes = yield* Effect.option(storage(store.read(info.key)))
            if (bytes._tag === "None") continue // removed since it was listed
            request.views.push(bytes.value)
            yield* sendRead(session, request, attr.flags, record, bytes.value, true)
            count++
          }
          yield* reply(session, request, Command.READ, attr.flags, EMPTY, true, {
            parent: io!.parent,
            id: io!.id,
            start: io!.start,
            num: count,
            type: 0,
            flags: io!.flags,
            offset: 0,
            size: 0
          })
        })
      case Command.AUTH:
        return Effect.gen(function*() {
          if (attr.data.length !== Auth.size) return yield* malformed
          const given = attr.data.subarray(0, AUTH_COOKIE_SIZE)
          if (Buffer.compare(given, cookie) !== 0) return yield* fail(Errno.EPERM)
          session.authenticated = true
        })
      case Command.BULK_READ:
        return Effect.gen(function*() {
          const data = attr.data
          if (io!.size !== data.length || data.length % IoAttr.size !== 0) return yield* malformed
          const wanted: Array<IoAttrT> = []
          for (let at = 0; at < data.length; at += IoAttr.size) {
            const decoded = IoAttr.decode(data, at)
            if (Result.isFailure(decoded)) return yield* malformed
            wanted.push(decoded.success)
          }
          if (request.id.groupId !== group) return yield* fail(Errno.ENXIO)
          let first: Failed | undefined
          let succeeded = 0
          for (const one of wanted) {
            const bytes = yield* Effect.result(storage(store.read(one.id, one.offset, one.size)))
            if (Result.isFailure(bytes)) {
              first ??= bytes.failure
              continue
            }
            succeeded++
            request.views.push(bytes.success)
            yield* sendRead(session, request, attr.flags, one, bytes.success, true)
          }
          if (succeeded === 0 && first !== undefined) return yield* Effect.fail(first)
        })
      case Command.JOIN:
        return Effect.gen(function*() {
          const data = attr.data
          const count = (data.length - AddrAttr.size) / ID_SIZE
          if (!(Number.isInteger(count) && count >= 1 && count <= MAX_JOIN_IDS)) return yield* malformed
          const peerAddress = addressOf(Result.getOrThrow(AddrAttr.decode(data, 0)))
          if (peerAddress === undefined) return yield* malformed
          if (!session.authenticated) return yield* fail(Errno.EPERM)
          // The receiver must be able to reach the joiner before routing to it.
          const reachable = yield* Effect.scoped(transport.dial(peerAddress, { timeout: peerTimeout })).pipe(
            Effect.as(true),
            Effect.catch(() => Effect.succeed(false))
          )
          if (!reachable) return yield* fail(Errno.ENXIO)
          session.joined = peerAddress
          addRoute(
            { address: peerAddress, group: request.id.groupId, ids: splitIds(data.subarray(AddrAttr.size)) },
            session
          )
        })
      case Command.ROUTE_LIST:
        return Effect.forEach(routes(), (route) => {
          const attrOf = route.address === address ? selfAttr : addrAttrOf(route.address)
          if (attrOf === undefined) return Effect.void // not an address another node could dial
          return reply(session, request, cmd, 0, concat([AddrAttr.encode(attrOf), ...route.ids]), true, undefined, {
            id: route.ids[0]!,
            groupId: route.group,
            type: 0
          })
        }, { discard: true })
      case Command.REVERSE_LOOKUP:
        return reply(session, request, cmd, attr.flags, concat([selfAddrAttr, selfIds]), false, undefined, {
          id: ids[0]!,
          groupId: group,
          type: 0
        })
      case Command.EXEC:
        return fail(Errno.ENOTSUP)
      default:
        return fail(Errno.EINVAL)
    }
  }

  /**
   * Writes the replies of a request answered at once, joined into one array when small (see `flush`). `lent`,
   * data the store lent, is given back when the replies hold a copy of it.
   */
  const replyNow = (
    session: Session,
    packets: ReadonlyArray<DnetPacket.Packet>,
    lent?: Uint8Array
  ): Effect.Effect<void> => {
    const out: Array<Uint8Array> = []
    let bytes = 0
    for (const packet of packets) {
      for (const part of encodeParts(packet)) {
        out.push(part)
        bytes += part.length
      }
    }
    const parts = joinSmall(out, bytes)
    // One array holds everything, copied: large data would be a part of its own.
    if (lent !== undefined && parts.length === 1) store.release?.(lent)
    return write(session, parts)
  }

  /** The end of a request answered at once whose store operation failed: the ACK with the status, if asked. */
  const failedNow = (session: Session, packet: DnetPacket.Packet, error: StorageError.StorageError) => {
    countRequest(session, packet.attrs[0]!.cmd, true)
    return needsAck(packet.flags) ? replyNow(session, [ackOf(packet, statusOf(error))]) : Effect.void
  }

  /**
   * Answers a request of one plain WRITE or READ attribute at once, inside the read that brought it, when the
   * store can do it synchronously (`writeNow`, `readNow`) and nothing else is involved (no lock held on the
   * key, no NOTIFY subscribers, not a big packet a write could adopt): the same replies as `handle` sends, with
   * none of a handler's fiber and Effect steps, which cost more than the store's work. Returns the write of the
   * replies, or `undefined` when nothing was done and the request goes the usual way.
   */
  const answerNow = (session: Session, packet: DnetPacket.Packet, owned: boolean): Effect.Effect<void> | undefined => {
    const attrs = packet.attrs
    if (attrs.length !== 1 || packet.id.groupId !== group) return undefined
    const attr = attrs[0]!
    const io = attr.io
    if (io === undefined || io.type !== 0 || (io.flags & IoFlags.META) !== 0) return undefined
    const cmd = attr.cmd
    if (cmd === Command.WRITE) {
      const writeNow = store.writeNow
      if (
        writeNow === undefined || owned || readOnly || subscriptions.size > 0 || io.size !== attr.data.length ||
        (io.flags & SPECIAL_WRITE) !== 0 || ((packet.flags & CmdFlags.NOLOCK) === 0 && locks.isHeld(nameOf(io.id)))
      ) return undefined
      const stored = writeNow(io.id, attr.data, { offset: io.offset })
      if (stored === undefined) return undefined
      if (stored instanceof StorageError.StorageError) return failedNow(session, packet, stored)
      countRequest(session, cmd, false)
      // The file-info reply is the final one (§3.1).
      const request = { id: packet.id, flags: packet.flags & ~CmdFlags.NEED_ACK, trans: packet.trans }
      const payload = storedPayload(selfAddrAttr, stored)
      return replyNow(session, [replyPacket(request, cmd, attr.flags | AttrFlags.NOCSUM, payload, false)])
    }
    if (cmd !== Command.READ || store.readNow === undefined) return undefined
    const bytes = store.readNow(io.id, io.offset, io.size)
    if (bytes === undefined) return undefined
    if (bytes instanceof StorageError.StorageError) return failedNow(session, packet, bytes)
    // Big data is lent and given back once written, or split: the usual way does that.
    if (bytes.length >= ANSWER_NOW_BELOW || bytes.length > maxReplyData) {
      store.release?.(bytes)
      return undefined
    }
    countRequest(session, cmd, false)
    const replies: Array<DnetPacket.Packet> = []
    if (bytes.length > 0 && (io.flags & IoFlags.SKIP_SENDING) === 0) {
      const id: Id = { id: io.id, groupId: packet.id.groupId, type: packet.id.type }
      replies.push(replyPacket(packet, cmd, attr.flags, bytes, false, { ...io, size: bytes.length }, id))
    }
    if (needsAck(packet.flags)) replies.push(ackOf(packet, 0))
    return replyNow(session, replies, bytes)
  }

  const countRequest = (session: Session, cmd: number, failed: boolean) => {
    const slot = (session.joined === undefined ? COMMAND_MAX : 0) + (cmd < COMMAND_MAX ? cmd : Command.UNKNOWN)
    const counter = counters[slot]!
    counter[0]++
    if (failed) counter[1]++
  }

  /** Runs every attribute of a request in turn, stopping at the first failure, then the final ACK (§3.1). */
  const handle = (session: Session, packet: DnetPacket.Packet, request: Request): Effect.Effect<void> => {
    const attrs = packet.attrs
    const finish = (status: number, forced: boolean) =>
      Effect.suspend(() =>
        needsAck(request.flags) || forced
          ? Effect.andThen(push(session, request, ackOf(request, status)), flush(session, request))
          : flush(session, request)
      )
    const from = (i: number): Effect.Effect<void> => {
      if (i >= attrs.length) return finish(0, false)
      const attr = attrs[i]!
      return Effect.matchEffect(runAttribute(session, request, attr), {
        onFailure: (failed) => {
          countRequest(session, attr.cmd, true)
          return finish(failed.status, failed.malformed)
        },
        onSuccess: () => {
          countRequest(session, attr.cmd, false)
          return from(i + 1)
        }
      })
    }
    return from(0).pipe(
      Effect.catchCause((cause) =>
        Cause.hasInterruptsOnly(cause) ? Effect.failCause(cause) : Effect.andThen(
          Effect.logWarning(`dnet node ${address}: request failed unexpectedly`, Cause.pretty(cause)),
          needsAck(packet.flags) ? write(session, encodeParts(ackOf(packet, -DnetError.EIO))) : Effect.void
        )
      )
    )
  }

  // --- connections -------------------------------------------------------------------------------------------

  const runFork = yield* FiberSet.makeRuntime<never, void, never>()

  const serveConnection = (connection: Transport.Connection) =>
    Effect.gen(function*() {
      const session: Session = { connection, authenticated: !needsAuth, joined: undefined, subscriptions: new Set() }
      sessions.add(session)
      // Requests being handled, and their bytes; the reader waits for room (which back-pressures the peer).
      let inFlight = 0
      let inFlightBytes = 0
      let onDone: (() => void) | undefined
      const until = (ready: () => boolean) =>
        Effect.callback<void>((resume) => {
          const check = () => {
            if (!ready()) return
            onDone = undefined
            resume(Effect.void)
          }
          onDone = check
          check()
          return Effect.sync(() => {
            if (onDone === check) onDone = undefined
          })
        })
      const room = (cost: number) => () =>
        inFlight === 0 || (inFlight < maxInFlight && inFlightBytes + cost <= maxInFlightBytes)
      const finished = (cost: number) =>
        Effect.sync(() => {
          inFlight--
          inFlightBytes -= cost
          onDone?.()
        })
      const reader = makeReader(maxPacketSize, pool, connection.receiveInto)
      const next = Pull.catchDone(connection.read, () => Effect.succeed(undefined))
      const start = (packet: DnetPacket.Packet, cost: number, owned: boolean, release: () => void) => {
        inFlight++
        inFlightBytes += cost
        const request: Request = {
          id: packet.id,
          flags: packet.flags,
          trans: packet.trans,
          out: [],
          outBytes: 0,
          owned: owned && packet.attrs.length === 1,
          adopted: false,
          views: []
        }
        // The packet's bytes are free once its handler is done, unless the store adopted them: nothing else it
        // stores keeps a view of them.
        const done = Effect.suspend(() => {
          if (!request.adopted) release()
          return request.views.length === 0 ? Effect.void : giveBack(session, request.views)
        })
        runFork(Effect.ensuring(handle(session, packet, request), Effect.andThen(done, finished(cost))))
      }
      /** Starts handling one item; returns what the reader must wait for first, if anything. */
      const dispatch = (item: Incoming): Effect.Effect<void> | undefined => {
        if (item._tag === "Invalid") {
          item.release()
          if ((item.trans & TRANS_REPLY) !== 0n) return undefined // a malformed reply: nothing to answer
          return write(session, encodeParts(ackOf(item, -Errno.EINVAL)))
        }
        const packet = item.packet
        if (DnetPacket.isReply(packet)) { // replies to nothing this node asked: dropped
          item.release()
          return undefined
        }
        const now = answerNow(session, packet, item.owned)
        if (now !== undefined) {
          item.release()
          return now
        }
        const cost = item.size
        const ready = room(cost)
        if (ready()) {
          start(packet, cost, item.owned, item.release)
          return undefined
        }
        return Effect.andThen(until(ready), Effect.sync(() => start(packet, cost, item.owned, item.release)))
      }
      const loop = Effect.gen(function*() {
        while (true) {
          const batch = yield* next
          if (batch === undefined) {
            const atEnd = reader.end()
            if (Result.isFailure(atEnd)) {
              return yield* Effect.logDebug(
                `dnet node ${address}: ${connection.remoteAddress}: ${atEnd.failure.message}`
              )
            }
            // The peer is done sending, not necessarily done reading: finish its requests before closing.
            return yield* until(() => inFlight === 0)
          }
          for (const chunk of batch) {
            const parsed = reader.push(chunk)
            if (Result.isFailure(parsed)) {
              return yield* Effect.logDebug(
                `dnet node ${address}: ${connection.remoteAddress}: ${parsed.failure.message}`
              )
            }
            for (const item of parsed.success) {
              const wait = dispatch(item)
              if (wait !== undefined) yield* wait
            }
          }
          const rest = reader.push(EMPTY)
          if (Result.isFailure(rest)) {
            return yield* Effect.logDebug(`dnet node ${address}: ${connection.remoteAddress}: ${rest.failure.message}`)
          }
        }
      })
      yield* loop.pipe(
        Effect.catch((error) => Effect.logDebug(`dnet node ${address}: ${connection.remoteAddress}: ${error.message}`)),
        Effect.ensuring(Effect.sync(() => {
          sessions.delete(session)
          for (const sub of session.subscriptions) unsubscribe(sub)
          dropSource(session)
        })),
        Effect.ensuring(connection.close)
      )
    })

  yield* Effect.forkScoped(
    Effect.gen(function*() {
      while (true) {
        const child = yield* Scope.fork(scope)
        const connection = yield* Effect.onError(
          Scope.provide(listener.accept, child),
          () => Scope.close(child, Exit.void)
        )
        runFork(Effect.ensuring(serveConnection(connection), Scope.close(child, Exit.void)))
      }
    }).pipe(Effect.catch((error) => Effect.logWarning(`dnet node ${address}: ${error.message}`)))
  )

  // --- joining -----------------------------------------------------------------------------------------------

  const known = new Set<string>(options.join ?? [])
  const links = new Map<string, Link.Link>()
  const requestOptions = { timeoutMillis: Duration.toMillis(Duration.fromInputUnsafe(peerTimeout)) }
  const header = (cmd: number, flags: number, data: Uint8Array, id: Id = { id: ids[0]!, groupId: group, type: 0 }) => ({
    id,
    flags,
    status: 0,
    attrs: [{ cmd, flags: 0, data }]
  })

  /** Dials a peer, learns its route and the nodes it knows, and announces this node with JOIN. */
  const connectPeer = (peerAddress: string) =>
    Effect.gen(function*() {
      const linkScope = yield* Scope.fork(scope)
      const link = yield* Scope.provide(
        Link.dial(peerAddress, { timeout: peerTimeout, maxPacketSize, pool }),
        linkScope
      ).pipe(Effect.onError(() => Scope.close(linkScope, Exit.void)))
      const setUp = Effect.gen(function*() {
        if (needsAuth) {
          const auth = Auth.encode({ cookie, flags: 0n })
          const replies = yield* link.request(
            header(Command.AUTH, CmdFlags.NEED_ACK | CmdFlags.DIRECT, auth),
            requestOptions
          )
          const status = replies[replies.length - 1]!.status
          if (status < 0) {
            return yield* DnetError.make(new DnetError.Status({ node: peerAddress, command: "AUTH", status }))
          }
        }
        const reverse = yield* link.request(
          header(Command.REVERSE_LOOKUP, CmdFlags.NEED_ACK | CmdFlags.DIRECT | CmdFlags.NOLOCK, EMPTY),
          requestOptions
        )
        const own = reverse.length > 0 ? routeOf(reverse[0]!, peerAddress) : undefined
        const listed = yield* link.request(
          header(Command.ROUTE_LIST, CmdFlags.NEED_ACK | CmdFlags.DIRECT | CmdFlags.NOLOCK, EMPTY),
          requestOptions
        )
        for (const packet of listed) {
          const route = routeOf(packet)
          if (route !== undefined && route.address !== address) known.add(route.address)
        }
        yield* link.send(header(Command.JOIN, CmdFlags.DIRECT | CmdFlags.NOLOCK, concat([selfAddrAttr, selfIds])))
        if (own !== undefined && own.ids.length > 0) {
          // Routed by the address it was dialled at: that is the one known to work from here.
          addRoute({ ...own, address: peerAddress }, link)
        }
      })
      yield* Effect.onError(setUp, () => Scope.close(linkScope, Exit.void))
      links.set(peerAddress, link)
      runFork(
        Effect.andThen(
          link.closed,
          Effect.sync(() => {
            links.delete(peerAddress)
            dropSource(link)
          })
        ).pipe(Effect.ensuring(Scope.close(linkScope, Exit.void)))
      )
    })

  /** One round: dial every known node this node has no live link to. */
  const joinRound = Effect.suspend(() =>
    Effect.forEach(
      [...known].filter((peer) => peer !== address && !links.has(peer)),
      (peer) =>
        Effect.catch(connectPeer(peer), (error) =>
          Effect.logDebug(`dnet node ${address}: join ${peer}: ${error.message}`)),
      { discard: true }
    )
  )

  if (known.size > 0) {
    // Two rounds: the first learns the network from the seeds, the second joins what it learned.
    yield* joinRound
    yield* joinRound
    yield* Effect.forkScoped(Effect.forever(Effect.andThen(Effect.sleep(reconnectInterval), joinRound)))
  }

  return {
    address,
    group,
    ids,
    routes,
    ring: () => ring,
    connections: () => sessions.size,
    readOnly: () => readOnly
  }
})
