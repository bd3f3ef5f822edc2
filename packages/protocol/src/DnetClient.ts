/**
 * A dnet client (`specs/dnet.md` §4): it learns the network from any one reachable node (REVERSE_LOOKUP, then
 * ROUTE_LIST), routes every key (SHA-512 of the name, `DnetRing.idOf`) to its owner in each group, writes to
 * every group, reads from one replica and falls through to the next group when a node fails or lacks the key.
 *
 * Every request sets NEED_ACK, so each transaction ends with a final reply: a WRITE's file-info reply, or the
 * ACK carrying the status. Writes larger than one packet (the node's `maxPacketSize`, 64 MiB of data by
 * default) are sent as consecutive writes at increasing offsets; a read's split replies are joined. The
 * original client split at 10 MiB (`MAX_TRANS_SIZE`); with the stores here every write of an object rewrites
 * it, so fewer, bigger pieces cost less.
 *
 * Connections are dialled on first use, one per node, and live in the client's scope; one that breaks is
 * dialled again by the next request that needs it.
 *
 * @since 0.1.0
 */
import { CmdFlags, Command, ID_SIZE, IoFlags } from "@tessera/codec/DnetConstants"
import * as DnetPacket from "@tessera/codec/DnetPacket"
import { AddrAttr, FileInfo, type IoAttr } from "@tessera/codec/DnetStructs"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Result from "effect/Result"
import * as Scope from "effect/Scope"
import * as DnetError from "./DnetError.ts"
import * as DnetRing from "./DnetRing.ts"
import * as Link from "./internal/dnetLink.ts"
import { BufferPool, routeOf } from "./internal/dnetWire.ts"
import type * as Transport from "./Transport.ts"

/**
 * How a client finds and talks to the network.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Nodes to learn the network from, tried in order until one answers. */
  readonly nodes: ReadonlyArray<string>
  /** The groups to write to and read from, in read order; default every group the route table knows. */
  readonly groups?: ReadonlyArray<number> | undefined
  /** Timeout of each request; default 30 seconds. */
  readonly timeout?: Duration.Input | undefined
  /** Largest packet sent or accepted, header included; default `DnetPacket.DEFAULT_MAX_PACKET_SIZE`. */
  readonly maxPacketSize?: number | undefined
}

/**
 * The result of one group's part of a write, remove or lookup: which node was asked and what it said.
 *
 * @since 0.1.0
 * @category models
 */
export interface Outcome<A> {
  readonly group: number
  /** The owner asked, or `undefined` when no node serves the group. */
  readonly node: string | undefined
  readonly result: Result.Result<A, DnetError.DnetError>
}

/**
 * What a node says about a stored object (its LOOKUP or WRITE reply).
 *
 * @since 0.1.0
 * @category models
 */
export interface Stored {
  readonly size: number
  /** Last modification, milliseconds since the epoch. */
  readonly modified: number
}

/**
 * Bytes read, and the replica they came from.
 *
 * @since 0.1.0
 * @category models
 */
export interface Read {
  readonly group: number
  readonly node: string
  readonly data: Uint8Array
}

/**
 * One object of a listing.
 *
 * @since 0.1.0
 * @category models
 */
export interface Listed {
  readonly key: Uint8Array
  readonly size: number
  readonly node: string
}

/**
 * A group's listing: every object its nodes hold, in key order, and the nodes that failed to answer.
 *
 * @since 0.1.0
 * @category models
 */
export interface Listing {
  readonly group: number
  readonly objects: ReadonlyArray<Listed>
  readonly failures: ReadonlyArray<DnetError.DnetError>
}

/**
 * Options of a write.
 *
 * @since 0.1.0
 * @category models
 */
export interface WriteOptions {
  /** Byte offset in the object; default 0, which replaces it. */
  readonly offset?: number | undefined
  /** Add the bytes at the end of the object. */
  readonly append?: boolean | undefined
  /** Groups to write to; default the client's. */
  readonly groups?: ReadonlyArray<number> | undefined
}

/**
 * Options of a read.
 *
 * @since 0.1.0
 * @category models
 */
export interface ReadOptions {
  readonly offset?: number | undefined
  /** Bytes wanted; 0 (the default) for the rest of the object, or for as much as fits in `into`. */
  readonly size?: number | undefined
  /**
   * Memory to read into: the read returns a view of its start instead of bytes in fresh memory, and reads at
   * most `into.length` bytes. Reading big objects again and again into one buffer saves a page fault per 4 KiB
   * of fresh memory, which costs more than the transfer itself.
   */
  readonly into?: Uint8Array | undefined
  /** Groups to try, in order; default the client's. */
  readonly groups?: ReadonlyArray<number> | undefined
}

/**
 * A client.
 *
 * @since 0.1.0
 * @category models
 */
export interface DnetClient {
  /** The nodes the client knows of. */
  readonly routes: () => ReadonlyArray<DnetRing.Route>
  readonly ring: () => DnetRing.Ring
  /** The groups it writes to and reads from. */
  readonly groups: () => ReadonlyArray<number>
  /** Learns the network again from the first node of `nodes` (or of the route table) that answers. */
  readonly refresh: Effect.Effect<void, DnetError.DnetError>
  /** Stores `data` under `key` in every group; one outcome per group. */
  readonly write: (
    key: Uint8Array,
    data: Uint8Array,
    options?: WriteOptions
  ) => Effect.Effect<ReadonlyArray<Outcome<Stored>>>
  /** Reads from the first group whose owner answers; fails with the last group's error when none does. */
  readonly read: (key: Uint8Array, options?: ReadOptions) => Effect.Effect<Read, DnetError.DnetError>
  /** Removes `key` from every group. */
  readonly remove: (
    key: Uint8Array,
    groups?: ReadonlyArray<number>
  ) => Effect.Effect<ReadonlyArray<Outcome<void>>>
  /** LOOKUP in every group. */
  readonly lookup: (
    key: Uint8Array,
    groups?: ReadonlyArray<number>
  ) => Effect.Effect<ReadonlyArray<Outcome<Stored>>>
  /** Lists what the nodes of each group hold (READ_RANGE over the whole key space, statistics only). */
  readonly list: (groups?: ReadonlyArray<number>) => Effect.Effect<ReadonlyArray<Listing>>
  /** Sends one request to a node and returns every reply, the final one last (for tools and tests). */
  readonly request: (
    node: string,
    packet: Link.Outgoing
  ) => Effect.Effect<ReadonlyArray<DnetPacket.Packet>, DnetError.DnetError>
}

const EMPTY = new Uint8Array(0)
const LOWEST = new Uint8Array(ID_SIZE)
const HIGHEST = new Uint8Array(ID_SIZE).fill(0xff)

const ioOf = (key: Uint8Array, fields: Partial<IoAttr>): IoAttr => ({
  parent: key,
  id: key,
  start: 0,
  num: 0,
  type: 0,
  flags: 0,
  offset: 0,
  size: 0,
  ...fields
})

/** The error the final reply's status stands for, if any. */
const failureOf = (
  node: string,
  command: string,
  replies: ReadonlyArray<DnetPacket.Packet>
): DnetError.DnetError | undefined => {
  const last = replies[replies.length - 1]
  if (last === undefined) return DnetError.make(new DnetError.BadReply({ node, detail: `no reply to ${command}` }))
  return last.status < 0 ? DnetError.make(new DnetError.Status({ node, command, status: last.status })) : undefined
}

/** The data of a READ's replies, in order. */
const piecesOf = (replies: ReadonlyArray<DnetPacket.Packet>): Array<Uint8Array> => {
  const pieces: Array<Uint8Array> = []
  for (const packet of replies) {
    for (const attr of packet.attrs) if (attr.cmd === Command.READ) pieces.push(attr.data)
  }
  return pieces
}

/** The final reply's status as an error, or the replies. */
const checked = (node: string, command: string, replies: ReadonlyArray<DnetPacket.Packet>) => {
  const failure = failureOf(node, command, replies)
  return failure === undefined ? Effect.succeed(replies) : Effect.fail(failure)
}

const badReply = (node: string, detail: string) => DnetError.make(new DnetError.BadReply({ node, detail }))

const header = (cmd: number, data = EMPTY): Link.Outgoing => ({
  id: { id: LOWEST, groupId: 0, type: 0 },
  flags: CmdFlags.NEED_ACK | CmdFlags.DIRECT | CmdFlags.NOLOCK,
  status: 0,
  attrs: [{ cmd, flags: 0, data }]
})

/** Unsigned 64-bit little-endian at `at`, as a double (exact below 2^53). */
const u64At = (bytes: Uint8Array, at: number): number =>
  (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16)) + bytes[at + 3]! * 0x100_0000 +
  ((bytes[at + 4]! | (bytes[at + 5]! << 8) | (bytes[at + 6]! << 16)) + bytes[at + 7]! * 0x100_0000) * 0x1_0000_0000

/** `dnet_file_info` offsets inside a LOOKUP / WRITE reply payload (after the 40-byte `dnet_addr_attr`). */
const SIZE_AT = AddrAttr.size + 136
const MTIME_AT = AddrAttr.size + 184
const STORED_BYTES = AddrAttr.size + FileInfo.size

/** What a LOOKUP or WRITE reply (`dnet_addr_attr` + `dnet_file_info`) says about the object, read in place. */
const storedOf = (node: string, command: string, replies: ReadonlyArray<DnetPacket.Packet>) => {
  const data = replies.find((packet) => packet.attrs.length > 0)?.attrs[0]?.data
  if (data === undefined || data.length < STORED_BYTES) {
    return Effect.fail(badReply(node, `a ${command} reply without file info`))
  }
  const modified = u64At(data, MTIME_AT) * 1000 + Math.floor(u64At(data, MTIME_AT + 8) / 1e6)
  return Effect.succeed<Stored>({ size: u64At(data, SIZE_AT), modified })
}

/**
 * Connects to the network through the first of `config.nodes` that answers; connections close with the scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fn("DnetClient.make")(function*(
  config: Options
): Effect.fn.Return<DnetClient, DnetError.DnetError, Transport.Transport | Scope.Scope> {
  const scope = yield* Scope.Scope
  const context = yield* Effect.context<Transport.Transport>()
  const timeout = config.timeout ?? Duration.seconds(30)
  const requestOptions = { timeoutMillis: Duration.toMillis(Duration.fromInputUnsafe(timeout)) }
  const maxPacketSize = config.maxPacketSize ?? DnetPacket.DEFAULT_MAX_PACKET_SIZE
  const maxWrite = maxPacketSize - DnetPacket.HEADER_SIZE - DnetPacket.ATTR_SIZE - DnetPacket.IO_ATTR_SIZE
  if (config.nodes.length === 0) {
    return yield* DnetError.make(new DnetError.BadArgument({ detail: "a client needs at least one node to ask" }))
  }
  if (maxWrite < 1) {
    return yield* DnetError.make(new DnetError.BadArgument({ detail: `maxPacketSize ${maxPacketSize} is too small` }))
  }

  const links = new Map<string, Link.Link>()
  // Big replies that `into` reads copy out are received into reused buffers (one full-size packet's worth).
  const pool = new BufferPool(maxPacketSize)
  let routes: ReadonlyArray<DnetRing.Route> = []
  let ring = DnetRing.make([])
  let ringGroups: ReadonlyArray<number> = []

  const linkTo = (node: string): Effect.Effect<Link.Link, DnetError.DnetError> =>
    Effect.suspend(() => {
      const known = links.get(node)
      if (known !== undefined && known.isOpen()) return Effect.succeed(known)
      return Effect.gen(function*() {
        const child = yield* Scope.fork(scope)
        const link = yield* Link.dial(node, { timeout, maxPacketSize, pool }).pipe(
          Scope.provide(child),
          Effect.provideContext(context),
          Effect.onError(() => Scope.close(child, Exit.void))
        )
        links.set(node, link)
        yield* Effect.forkIn(
          Effect.andThen(
            link.closed,
            Effect.suspend(() => {
              if (links.get(node) === link) links.delete(node)
              return Scope.close(child, Exit.void)
            })
          ),
          scope
        )
        return link
      })
    })

  /** Runs `f` on the link to `node`; the connection is there almost always, and then used without an extra step. */
  const onLink = <A>(node: string, f: (link: Link.Link) => Effect.Effect<A, DnetError.DnetError>) => {
    const known = links.get(node)
    return known !== undefined && known.isOpen() ? f(known) : Effect.flatMap(linkTo(node), f)
  }

  const request: DnetClient["request"] = (node, packet) => onLink(node, (link) => link.request(packet, requestOptions))

  /** A request whose replies are only valid inside `use` (see `Link.borrow`). */
  const borrow = <A>(node: string, packet: Link.Outgoing, use: (replies: ReadonlyArray<DnetPacket.Packet>) => A) =>
    onLink(node, (link) => link.borrow(packet, requestOptions, use))

  const call = (node: string, command: string, packet: Link.Outgoing) =>
    Effect.flatMap(request(node, packet), (replies) => checked(node, command, replies))

  const learnFrom = (node: string) =>
    Effect.gen(function*() {
      const reverse = yield* call(node, "REVERSE_LOOKUP", header(Command.REVERSE_LOOKUP))
      const answer = reverse.find((packet) => packet.attrs.length > 0)
      const self = answer === undefined ? undefined : routeOf(answer, node)
      const listed = yield* call(node, "ROUTE_LIST", header(Command.ROUTE_LIST))
      const found = new Map<string, DnetRing.Route>()
      if (self !== undefined) found.set(self.address, self)
      for (const packet of listed) {
        if (packet.attrs.length === 0) continue
        const route = routeOf(packet, undefined)
        if (route === undefined) return yield* badReply(node, "a ROUTE_LIST reply without a usable address")
        found.set(route.address, route)
      }
      // The node was dialled at `node`; route to it there even if it calls itself something else.
      if (self !== undefined && self.address !== node && !found.has(node)) {
        found.delete(self.address)
        found.set(node, { ...self, address: node })
      }
      routes = [...found.values()]
      ring = DnetRing.make(routes)
      ringGroups = DnetRing.groups(ring)
    })

  const refresh: Effect.Effect<void, DnetError.DnetError> = Effect.suspend(() => {
    const candidates = [...new Set([...config.nodes, ...routes.map((route) => route.address)])]
    const attempt = (i: number): Effect.Effect<void, DnetError.DnetError> =>
      Effect.catch(
        learnFrom(candidates[i]!),
        (error) => (i + 1 < candidates.length ? attempt(i + 1) : Effect.fail(error))
      )
    return attempt(0)
  })

  yield* refresh

  const groupsOf = (wanted: ReadonlyArray<number> | undefined) => wanted ?? config.groups ?? ringGroups

  /** Runs `run` against the owner of `key` in each group, all groups at once. */
  const perGroup = <A>(
    key: Uint8Array,
    groups: ReadonlyArray<number>,
    run: (group: number, node: string) => Effect.Effect<A, DnetError.DnetError>
  ): Effect.Effect<ReadonlyArray<Outcome<A>>> => {
    const one = (group: number): Effect.Effect<Outcome<A>> => {
      const node = DnetRing.owner(ring, group, key)
      if (node === undefined) {
        return Effect.succeed<Outcome<A>>({
          group,
          node,
          result: Result.fail(DnetError.make(new DnetError.NoRoute({ group })))
        })
      }
      return Effect.map(Effect.result(run(group, node)), (result): Outcome<A> => ({ group, node, result }))
    }
    // One group (the common benchmark and single-node case) needs no fibers.
    return groups.length === 1
      ? Effect.map(one(groups[0]!), (outcome) => [outcome])
      : Effect.forEach(groups, one, { concurrency: "unbounded" })
  }

  /** One WRITE of `piece` at `at` (relative to the write's offset), answered by the node's file info. */
  const writePiece = (
    key: Uint8Array,
    piece: Uint8Array,
    at: number,
    group: number,
    node: string,
    options: WriteOptions
  ) => {
    // Later pieces continue the object: appended, or written in place after the earlier ones.
    const append = options.append === true
    return Effect.flatMap(
      call(node, "WRITE", {
        id: { id: key, groupId: group, type: 0 },
        flags: CmdFlags.NEED_ACK,
        status: 0,
        attrs: [{
          cmd: Command.WRITE,
          flags: 0,
          io: ioOf(key, {
            flags: append ? IoFlags.APPEND : 0,
            offset: append ? 0 : (options.offset ?? 0) + at,
            size: piece.length
          }),
          data: piece
        }]
      }),
      (replies) => storedOf(node, "WRITE", replies)
    )
  }

  const writeGroup = (key: Uint8Array, data: Uint8Array, group: number, node: string, options: WriteOptions) => {
    if (data.length <= maxWrite) return writePiece(key, data, 0, group, node, options)
    return Effect.gen(function*() {
      let stored: Stored | undefined
      for (let at = 0; at < data.length; at += maxWrite) {
        stored = yield* writePiece(
          key,
          data.subarray(at, Math.min(data.length, at + maxWrite)),
          at,
          group,
          node,
          options
        )
      }
      return stored!
    })
  }

  const write: DnetClient["write"] = (key, data, writeOptions = {}) =>
    perGroup(key, groupsOf(writeOptions.groups), (group, node) => writeGroup(key, data, group, node, writeOptions))

  const readGroup = (
    key: Uint8Array,
    group: number,
    node: string,
    readOptions: ReadOptions
  ): Effect.Effect<Uint8Array, DnetError.DnetError> => {
    const into = readOptions.into
    const size = readOptions.size ?? 0
    const packet: Link.Outgoing = {
      id: { id: key, groupId: group, type: 0 },
      flags: CmdFlags.NEED_ACK,
      status: 0,
      attrs: [{
        cmd: Command.READ,
        flags: 0,
        io: ioOf(key, { offset: readOptions.offset ?? 0, size: into !== undefined && size === 0 ? into.length : size }),
        data: EMPTY
      }]
    }
    if (into === undefined) {
      return Effect.map(call(node, "READ", packet), (replies) => {
        const pieces = piecesOf(replies)
        return pieces.length === 1 ? pieces[0]! : new Uint8Array(Buffer.concat(pieces))
      })
    }
    if (size > into.length) {
      return Effect.fail(DnetError.make(
        new DnetError.BadArgument({ detail: `a read of ${size} bytes does not fit into ${into.length} bytes` })
      ))
    }
    // An empty `into` asks for nothing: size 0 on the wire would ask for the whole object.
    if (into.length === 0) return Effect.succeed(into)
    return Effect.flatten(borrow(node, packet, (replies) => {
      const failure = failureOf(node, "READ", replies)
      if (failure !== undefined) return Effect.fail(failure)
      let at = 0
      for (const piece of piecesOf(replies)) {
        if (at + piece.length > into.length) {
          return Effect.fail(badReply(node, "a READ reply with more bytes than asked for"))
        }
        into.set(piece, at)
        at += piece.length
      }
      return Effect.succeed(into.subarray(0, at))
    }))
  }

  const read: DnetClient["read"] = (key, readOptions = {}) =>
    Effect.suspend(() => {
      const groups = groupsOf(readOptions.groups)
      const attempt = (i: number, last: DnetError.DnetError | undefined): Effect.Effect<Read, DnetError.DnetError> => {
        if (i >= groups.length) {
          return Effect.fail(last ?? DnetError.make(new DnetError.BadArgument({ detail: "no group to read from" })))
        }
        const group = groups[i]!
        const node = DnetRing.owner(ring, group, key)
        if (node === undefined) return attempt(i + 1, last ?? DnetError.make(new DnetError.NoRoute({ group })))
        return readGroup(key, group, node, readOptions).pipe(
          Effect.map((data): Read => ({ group, node, data })),
          // A missing key beats a dead node as the final answer: it says more about the object.
          Effect.catch((error) =>
            attempt(
              i + 1,
              last !== undefined && DnetError.isNotFound(last) && !DnetError.isNotFound(error) ? last : error
            )
          )
        )
      }
      return attempt(0, undefined)
    })

  const remove: DnetClient["remove"] = (key, groups) =>
    perGroup(key, groupsOf(groups), (group, node) =>
      Effect.asVoid(call(node, "DEL", {
        id: { id: key, groupId: group, type: 0 },
        flags: CmdFlags.NEED_ACK,
        status: 0,
        attrs: [{ cmd: Command.DEL, flags: 0, data: EMPTY }]
      })))

  const lookup: DnetClient["lookup"] = (key, groups) =>
    perGroup(key, groupsOf(groups), (group, node) =>
      Effect.flatMap(
        call(node, "LOOKUP", {
          id: { id: key, groupId: group, type: 0 },
          flags: CmdFlags.NEED_ACK,
          status: 0,
          attrs: [{ cmd: Command.LOOKUP, flags: 0, data: EMPTY }]
        }),
        (replies) => storedOf(node, "LOOKUP", replies)
      ))

  const listNode = (group: number, node: string) =>
    Effect.map(
      call(node, "READ_RANGE", {
        id: { id: LOWEST, groupId: group, type: 0 },
        flags: CmdFlags.NEED_ACK,
        status: 0,
        attrs: [{
          cmd: Command.READ_RANGE,
          flags: 0,
          io: { parent: HIGHEST, id: LOWEST, start: 0, num: 0, type: 0, flags: IoFlags.NODATA, offset: 0, size: 0 },
          data: EMPTY
        }]
      }),
      (replies) => {
        const objects: Array<Listed> = []
        // Record replies, then the trailer (the count) and the ACK.
        for (const packet of replies.slice(0, -2)) {
          const io = packet.attrs[0]?.io
          if (io !== undefined) objects.push({ key: io.id.slice(), size: io.size, node })
        }
        return objects
      }
    )

  const list: DnetClient["list"] = (groups) =>
    Effect.forEach(groupsOf(groups), (group) =>
      Effect.map(
        Effect.forEach(DnetRing.nodes(ring, group), (node) => Effect.result(listNode(group, node)), {
          concurrency: "unbounded"
        }),
        (results): Listing => {
          const objects = results.flatMap((result) => (Result.isSuccess(result) ? result.success : []))
          objects.sort((a, b) => DnetRing.compareIds(a.key, b.key))
          return {
            group,
            objects,
            failures: results.flatMap((result) => (Result.isFailure(result) ? [result.failure] : []))
          }
        }
      ))

  return {
    routes: () => routes,
    ring: () => ring,
    groups: () => groupsOf(undefined),
    refresh,
    write,
    read,
    remove,
    lookup,
    list,
    request
  }
})
