/**
 * An NBD server (the NBD project's `doc/proto.md`, fixed newstyle negotiation) over any `Transport`: several
 * exports, several connections per export, many requests in flight per connection.
 *
 * Negotiation: `NBD_OPT_EXPORT_NAME`, `GO`, `INFO` (with `NBD_INFO_BLOCK_SIZE` always sent, and the name and
 * description when asked), `LIST`, `ABORT`, `STRUCTURED_REPLY`, `LIST_META_CONTEXT` and `SET_META_CONTEXT`
 * with `base:allocation`. Unknown options and `STARTTLS` get `NBD_REP_ERR_UNSUP`, a malformed option body
 * `NBD_REP_ERR_INVALID`, an unknown export `NBD_REP_ERR_UNKNOWN` (for `EXPORT_NAME`, which cannot fail
 * otherwise, the connection is closed). Client flags the protocol does not define, a bad magic, an option or
 * write over the caps, or negotiation that takes longer than `handshakeTimeout` close the connection.
 *
 * Transmission: `READ`, `WRITE`, `FLUSH`, `TRIM`, `WRITE_ZEROES`, `CACHE`, `BLOCK_STATUS` and `DISC`.
 * Requests are handled concurrently and answered as they complete (the cookie pairs them), so a slow read does
 * not hold back the others; at most `maxInFlight` requests and `maxInFlightBytes` of read or write data are in
 * hand per connection, and at most 8 MiB of replies not yet handed to the OS, beyond which the server stops
 * reading from the socket until some are answered (so a client that does not read its replies stops itself).
 * Replies made in one turn of the event loop leave in one gather write; READ buffers are reused. Every
 * request is checked before it touches the device: flags the command does not take, a length over the
 * export's maximum payload, `BLOCK_STATUS` without a negotiated context or of length 0, and an unknown command
 * get `NBD_EINVAL`; a range past the end gets `NBD_ENOSPC` for `WRITE`, `WRITE_ZEROES` and `TRIM` and
 * `NBD_EINVAL` for the others; a write-class command on a read-only export gets `NBD_EPERM`. A write's data is
 * consumed with its header either way, so the stream stays in step, and nothing of a refused request is
 * written. With structured replies, `READ` answers with one `OFFSET_DATA` chunk (so `NBD_CMD_FLAG_DF` always
 * holds) and errors of `READ` and `BLOCK_STATUS` are `NBD_REPLY_TYPE_ERROR` chunks. `TRIM` is advisory and
 * leaves the data as it is; `FUA` flushes the device after the write; `CACHE` reads the range (a migration
 * destination fetches the blocks it lacks). `DISC` stops reading, answers every request in flight and closes.
 *
 * @since 0.1.0
 */
import * as NbdConstants from "@tessera/codec/NbdConstants"
import * as NbdHandshake from "@tessera/codec/NbdHandshake"
import * as NbdStream from "@tessera/codec/NbdStream"
import * as NbdTransmission from "@tessera/codec/NbdTransmission"
import type * as StorageError from "@tessera/storage/StorageError"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberSet from "effect/FiberSet"
import * as Result from "effect/Result"
import * as Scope from "effect/Scope"
import type * as Address from "./Address.ts"
import { NbdReader } from "./internal/nbdReader.ts"
import * as NbdError from "./NbdError.ts"
import * as NbdExport from "./NbdExport.ts"
import * as Transport from "./Transport.ts"
import type * as TransportError from "./TransportError.ts"

/**
 * Options of the server.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The exports, at least one; names must differ. The empty name reaches the first. */
  readonly exports: ReadonlyArray<NbdExport.NbdExport>
  /** Requests in hand per connection; default 64. */
  readonly maxInFlight?: number | undefined
  /** Bytes of READ and WRITE data in hand per connection; default 64 MiB (one request may exceed it alone). */
  readonly maxInFlightBytes?: number | undefined
  /** How long a client may take to negotiate; default 30 seconds. */
  readonly handshakeTimeout?: Duration.Input | undefined
}

/**
 * A running server.
 *
 * @since 0.1.0
 * @category models
 */
export interface NbdServer {
  /** Where it listens (a TCP port 0 replaced by the one the OS chose). */
  readonly address: Address.Address
  /** Connections being served now. */
  readonly connections: () => number
}

const MiB = 1024 * 1024
const DEFAULT_MAX_IN_FLIGHT = 64
const DEFAULT_MAX_IN_FLIGHT_BYTES = 64 * MiB
const DEFAULT_HANDSHAKE_TIMEOUT = Duration.seconds(30)
/** Options one connection may send before it is taken for abuse. */
const MAX_OPTIONS = 1024
/** The `base:allocation` context id this server hands out. */
const BASE_ALLOCATION_ID = 1
/** Extents in one BLOCK_STATUS reply at most (1 MiB of descriptors); a client asks again for the rest. */
const MAX_EXTENTS = 128 * 1024
/** Chunk of WRITE_ZEROES and CACHE work. */
const WORK_CHUNK = MiB
const ZEROES = new Uint8Array(WORK_CHUNK)

const C = NbdConstants.Command
const CF = NbdConstants.CommandFlags
const E = NbdConstants.Errno

const violation = (detail: string): NbdError.NbdError => NbdError.make(new NbdError.ProtocolViolation({ detail }))

const invalid = (detail: string) => NbdError.make(new NbdError.InvalidConfig({ detail }))

const transportFailed = (cause: TransportError.TransportError): NbdError.NbdError =>
  NbdError.make(new NbdError.TransportFailed({ cause }))

/** The NBD error value for a device failure. */
const errnoOf = (error: StorageError.StorageError): number => {
  switch (error.reason._tag) {
    case "OutOfRange":
      return E.EINVAL
    case "Closed":
      return E.ESHUTDOWN
    case "Unsupported":
      return E.ENOTSUP
    default:
      return E.EIO
  }
}

/** Flags each command accepts; FUA is accepted everywhere (it only has meaning for writes). */
const allowedFlags = (type: number, structured: boolean): number => {
  switch (type) {
    case C.READ:
      return CF.FUA | (structured ? CF.DF : 0)
    case C.WRITE_ZEROES:
      return CF.FUA | CF.NO_HOLE
    case C.BLOCK_STATUS:
      return CF.FUA | CF.REQ_ONE
    default:
      return CF.FUA
  }
}

/** Whether a context query names `base:allocation` (itself, or the whole `base:` namespace). */
const matchesBaseAllocation = (query: string): boolean => query === NbdConstants.BASE_ALLOCATION || query === "base:"

/** Runs `work` over `[offset, offset + length)` in chunks of at most WORK_CHUNK bytes, in order. */
const inChunks = (
  offset: number,
  length: number,
  work: (at: number, bytes: number) => Effect.Effect<unknown, StorageError.StorageError>
) =>
  Effect.suspend(function loop(done = 0): Effect.Effect<void, StorageError.StorageError> {
    if (done >= length) return Effect.void
    const bytes = Math.min(WORK_CHUNK, length - done)
    return Effect.andThen(work(offset + done, bytes), Effect.suspend(() => loop(done + bytes)))
  })

/**
 * Reply bytes not yet handed to the OS after which a connection takes no more requests: a few times what a
 * loopback socket buffers, so the socket never runs dry, and little enough that READ buffers come back soon.
 */
const MAX_BACKLOG = 8 * MiB

/** READ buffers a connection remembers until the OS has their bytes (beyond it, the oldest are left to GC). */
const SENT_BUFFERS = 1024

/** Bytes of free READ buffers a server keeps for reuse, over all its connections. */
const POOL_BYTES = 128 * MiB

/**
 * Free READ buffers by length, shared by the connections of one server (clients such as nbdcopy open several
 * connections for each copy, so a pool per connection would start empty every time).
 */
class BufferPool {
  readonly #free = new Map<number, Array<Uint8Array>>()
  #bytes = 0

  take(length: number): Uint8Array | undefined {
    const buffer = this.#free.get(length)?.pop()
    if (buffer !== undefined) this.#bytes -= length
    return buffer
  }

  put(buffer: Uint8Array): void {
    if (this.#bytes + buffer.length > POOL_BYTES) return
    let list = this.#free.get(buffer.length)
    if (list === undefined) this.#free.set(buffer.length, list = [])
    list.push(buffer)
    this.#bytes += buffer.length
  }
}

/**
 * Reply headers cut from one slab (views, no backing store of their own): a slab is never written twice, a
 * full one is left to the writes that still refer to it.
 */
class HeaderSlab {
  #slab = new Uint8Array(64 * 1024)
  #at = 0

  take(length: number): Uint8Array {
    if (this.#at + length > this.#slab.length) {
      this.#slab = new Uint8Array(this.#slab.length)
      this.#at = 0
    }
    const header = this.#slab.subarray(this.#at, this.#at + length)
    this.#at += length
    return header
  }

  simple(error: number, cookie: bigint): Uint8Array {
    const header = this.take(NbdTransmission.SIMPLE_REPLY_HEADER_SIZE)
    NbdTransmission.encodeSimpleReplyHeaderInto(header, 0, error, cookie)
    return header
  }

  offsetData(cookie: bigint, offset: number, length: number): Uint8Array {
    const header = this.take(NbdTransmission.OFFSET_DATA_HEADER_SIZE)
    NbdTransmission.encodeOffsetDataHeaderInto(header, 0, NbdConstants.ReplyFlags.DONE, cookie, offset, length)
    return header
  }
}

/**
 * Writes replies: the replies made in one turn of the event loop leave together in one gather write at its end
 * (a write per reply costs a system call each, which on loopback is most of a small reply's cost). A handler
 * does not wait for its reply to be written, so the next requests are read from the device while earlier
 * replies drain; what bounds the replies not yet written is `backlog`, which the reader checks before it takes
 * another request. Counts the bytes, so that `handedOff` tells how many of them the OS has.
 */
class ReplyWriter {
  readonly #connection: Transport.Connection
  readonly #fork: (effect: Effect.Effect<void>) => void
  readonly #onWritten: () => void
  #outgoing: Array<Uint8Array> = []
  #outgoingBytes = 0
  #flushQueued = false
  #writing = 0
  /** Bytes given to `send` since transmission began, counting what the transport held then. */
  #written: number

  /** `onWritten` runs after each write, when the backlog may have room again. */
  constructor(connection: Transport.Connection, fork: (effect: Effect.Effect<void>) => void, onWritten: () => void) {
    this.#connection = connection
    this.#fork = fork
    this.#onWritten = onWritten
    this.#written = connection.queuedBytes()
  }

  /** Bytes sent that the OS has: neither waiting for the next write nor held by the transport. */
  handedOff(): number {
    return this.#written - this.#outgoingBytes - this.#connection.queuedBytes()
  }

  /** Bytes sent that the OS does not have yet. */
  backlog(): number {
    return this.#outgoingBytes + this.#connection.queuedBytes()
  }

  /** Whether every reply sent has been written (the transport accepted it, or drained). */
  idle(): boolean {
    return this.#outgoingBytes === 0 && this.#writing === 0 && !this.#flushQueued
  }

  /** Queues a reply for the next write; returns the stream position where it ends. */
  send(chunks: ReadonlyArray<Uint8Array>): number {
    for (const chunk of chunks) {
      this.#outgoing.push(chunk)
      this.#outgoingBytes += chunk.length
      this.#written += chunk.length
    }
    if (!this.#flushQueued) {
      this.#flushQueued = true
      setImmediate(this.#flush)
    }
    return this.#written
  }

  readonly #flush = (): void => {
    this.#flushQueued = false
    const chunks = this.#outgoing
    const bytes = this.#outgoingBytes
    if (chunks.length === 0) return
    this.#outgoing = []
    this.#writing++
    // The bytes stay counted as outgoing until the write has completed, when the transport counts any it still
    // holds: counted twice meanwhile, never not at all, so `handedOff` can lag but never runs ahead.
    // A failed write means the connection is gone; the read loop sees that too.
    this.#fork(
      Effect.ignore(Effect.suspend(() => this.#connection.write(chunks))).pipe(Effect.ensuring(Effect.sync(() => {
        this.#outgoingBytes -= bytes
        this.#writing--
        this.#onWritten()
      })))
    )
  }
}

interface SentBuffer {
  readonly buffer: Uint8Array
  /** The stream position where the reply that sent it ends. */
  readonly end: number
}

/**
 * READ buffers for reuse. A fresh buffer costs more than the copy into it (zeroing and first-touch page faults:
 * about 1 s per GiB in 256 KiB buffers, against 0.1 s for the copy), so a buffer goes back to the pool once the
 * OS has every byte up to the end of the reply that sent it; until then it waits in a bounded list.
 */
class ReadBuffers {
  readonly #writer: ReplyWriter
  readonly #limit: number
  readonly #pool: BufferPool
  #sent: Array<SentBuffer> = []

  constructor(writer: ReplyWriter, limit: number, pool: BufferPool) {
    this.#writer = writer
    this.#limit = limit
    this.#pool = pool
  }

  take(length: number): Uint8Array {
    this.#reclaim()
    return this.#pool.take(length) ?? new Uint8Array(length)
  }

  /** Hands back a buffer whose reply ends at `end`; it is reused once the OS has those bytes. */
  give(buffer: Uint8Array, end: number): void {
    this.#sent.push({ buffer, end })
    if (this.#sent.length > this.#limit) this.#sent.shift()
    this.#reclaim()
  }

  #reclaim(): void {
    if (this.#sent.length === 0) return
    const handedOff = this.#writer.handedOff()
    const waiting: Array<SentBuffer> = []
    for (const entry of this.#sent) {
      if (entry.end > handedOff) waiting.push(entry)
      else this.#pool.put(entry.buffer)
    }
    this.#sent = waiting
  }
}

/** What negotiation chose: the export, and the transmission features. */
interface Chosen {
  readonly nbdExport: NbdExport.NbdExport
  readonly structured: boolean
  readonly baseAllocation: boolean
}

/**
 * Serves one client on `connection` until it disconnects, sends `DISC`, or violates the protocol (then the
 * connection is closed and the violation is the failure).
 *
 * @since 0.1.0
 * @category constructors
 */
export const serveConnection = (
  connection: Transport.Connection,
  options: Options
): Effect.Effect<void, NbdError.NbdError> => serveWith(connection, options, new BufferPool())

const serveWith = Effect.fn("NbdServer.serveConnection")(function*(
  connection: Transport.Connection,
  options: Options,
  pool: BufferPool
): Effect.fn.Return<void, NbdError.NbdError> {
  const exports = options.exports
  if (exports.length === 0) return yield* violation("the server has no exports")
  const byName = new Map(exports.map((e) => [e.name, e]))
  const lookup = (name: string) => byName.get(name) ?? (name === "" ? exports[0] : undefined)
  const parser = NbdStream.makeServerParser({ maxWriteLength: NbdTransmission.DEFAULT_MAX_DATA_LENGTH })
  const reader = new NbdReader(connection, parser)
  const send = (chunks: ReadonlyArray<Uint8Array>) => Effect.mapError(connection.write(chunks), transportFailed)

  const negotiated = yield* negotiate(reader, parser, send, lookup, exports).pipe(
    Effect.timeoutOrElse({
      duration: options.handshakeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT,
      orElse: () =>
        Effect.fail(NbdError.make(new NbdError.Disconnected({ detail: "the client did not finish negotiating" })))
    }),
    Effect.onError(() => connection.close)
  )
  if (negotiated === undefined) return yield* connection.close
  yield* Effect.ensuring(Effect.scoped(transmit(reader, connection, negotiated, options, pool)), connection.close)
})

type Send = (chunks: ReadonlyArray<Uint8Array>) => Effect.Effect<void, NbdError.NbdError>

/** Runs the option haggling; `undefined` when the client aborted or went away. */
const negotiate = Effect.fnUntraced(function*(
  reader: NbdReader<NbdStream.ClientMessage>,
  parser: NbdStream.ServerParser,
  send: Send,
  lookup: (name: string) => NbdExport.NbdExport | undefined,
  exports: ReadonlyArray<NbdExport.NbdExport>
) {
  const HF = NbdConstants.HandshakeFlags
  yield* send([NbdHandshake.encodeGreeting(HF.FIXED_NEWSTYLE | HF.NO_ZEROES)])
  const first = yield* reader.next
  if (first === undefined) return undefined
  if (first._tag !== "ClientFlags") return yield* violation("expected the client flags")
  const known = NbdConstants.ClientFlags.FIXED_NEWSTYLE | NbdConstants.ClientFlags.NO_ZEROES
  if ((first.flags & ~known) !== 0) {
    return yield* violation(`client flags 0x${first.flags.toString(16)} include bits the protocol does not define`)
  }
  const noZeroes = (first.flags & NbdConstants.ClientFlags.NO_ZEROES) !== 0
  let structured = false
  // The contexts chosen by SET_META_CONTEXT hold for the export it named only.
  let context: { readonly name: string; readonly baseAllocation: boolean } | undefined

  const reply = (replies: ReadonlyArray<NbdHandshake.OptionReply>) =>
    send(replies.map((r) => NbdHandshake.encodeOptionReply(r)))
  const refuse = (option: number, type: number, message: string) =>
    reply([{ _tag: "OptionError", option, type, message }])
  const R = NbdConstants.Reply

  for (let count = 0; count < MAX_OPTIONS; count++) {
    const message = yield* reader.next
    if (message === undefined) return undefined
    if (message._tag !== "Option") return yield* violation("expected an option")
    const { option } = message
    const held = option === NbdConstants.Option.GO || option === NbdConstants.Option.STARTTLS
    /** Leaves the held phase after a GO or STARTTLS that did not enter transmission. */
    const stayInOptions = () => {
      if (!held) return undefined
      return reader.prepend(parser.resume("Options"))
    }
    const decoded = NbdHandshake.decodeOptionData(option, message.data)
    if (Result.isFailure(decoded)) {
      // EXPORT_NAME has no error reply: the parser is in transmission already and only closing is left.
      if (option === NbdConstants.Option.EXPORT_NAME) return yield* violation(decoded.failure.message)
      const resumed = stayInOptions()
      if (resumed !== undefined) return yield* resumed
      yield* refuse(option, R.ERR_INVALID, decoded.failure.reason)
      continue
    }
    const request = decoded.success
    switch (request._tag) {
      case "ExportName": {
        const nbdExport = lookup(request.name)
        if (nbdExport === undefined) return yield* violation(`no export named ${JSON.stringify(request.name)}`)
        yield* send([
          NbdHandshake.encodeExportNameReply({
            size: nbdExport.device.size,
            transmissionFlags: NbdExport.transmissionFlags(nbdExport)
          }, noZeroes)
        ])
        return {
          nbdExport,
          structured,
          baseAllocation: structured && context?.name === request.name && context.baseAllocation
        } satisfies Chosen
      }
      case "Abort":
        yield* Effect.ignore(reply([{ _tag: "Ack", option }]))
        return undefined
      case "List":
        yield* reply([
          ...exports.map((e): NbdHandshake.OptionReply => ({
            _tag: "Server",
            option,
            name: e.name,
            details: e.description
          })),
          { _tag: "Ack", option }
        ])
        break
      case "StartTls": {
        const resumed = stayInOptions()
        if (resumed !== undefined) return yield* resumed
        yield* refuse(option, R.ERR_UNSUP, "TLS is not supported by this server")
        break
      }
      case "Info":
      case "Go": {
        const nbdExport = lookup(request.name)
        if (nbdExport === undefined) {
          const resumed = stayInOptions()
          if (resumed !== undefined) return yield* resumed
          yield* refuse(option, R.ERR_UNKNOWN, `no export named ${JSON.stringify(request.name)}`)
          break
        }
        const infos: Array<NbdHandshake.OptionReply> = [
          {
            _tag: "ExportInfo",
            option,
            info: {
              _tag: "Export",
              size: nbdExport.device.size,
              transmissionFlags: NbdExport.transmissionFlags(nbdExport)
            }
          },
          { _tag: "ExportInfo", option, info: { _tag: "BlockSize", ...nbdExport.blockSizes } }
        ]
        const I = NbdConstants.Info
        if (request.requests.includes(I.NAME)) {
          infos.push({ _tag: "ExportInfo", option, info: { _tag: "Name", name: nbdExport.name } })
        }
        if (request.requests.includes(I.DESCRIPTION) && nbdExport.description !== "") {
          infos.push({
            _tag: "ExportInfo",
            option,
            info: { _tag: "Description", description: nbdExport.description }
          })
        }
        infos.push({ _tag: "Ack", option })
        yield* reply(infos)
        if (request._tag === "Go") {
          const resumed = reader.prepend(parser.resume("Transmission"))
          if (resumed !== undefined) return yield* resumed
          return {
            nbdExport,
            structured,
            baseAllocation: structured && context?.name === request.name && context.baseAllocation
          } satisfies Chosen
        }
        break
      }
      case "StructuredReply":
        structured = true
        yield* reply([{ _tag: "Ack", option }])
        break
      case "ListMetaContext":
      case "SetMetaContext": {
        const set = request._tag === "SetMetaContext"
        if (set && !structured) {
          yield* refuse(option, R.ERR_INVALID, "metadata contexts need structured replies (NBD_OPT_STRUCTURED_REPLY)")
          break
        }
        if (lookup(request.name) === undefined) {
          yield* refuse(option, R.ERR_UNKNOWN, `no export named ${JSON.stringify(request.name)}`)
          break
        }
        const chosen = set ? request.queries.some(matchesBaseAllocation) : request.queries.length === 0 ||
          request.queries.some(matchesBaseAllocation)
        if (set) context = { name: request.name, baseAllocation: chosen }
        yield* reply([
          ...(chosen
            ? [{
              _tag: "MetaContext" as const,
              option,
              id: set ? BASE_ALLOCATION_ID : 0,
              name: NbdConstants.BASE_ALLOCATION
            }]
            : []),
          { _tag: "Ack", option }
        ])
        break
      }
      case "UnknownOption":
        yield* refuse(option, R.ERR_UNSUP, `${NbdConstants.optionName(option)} is not supported`)
        break
    }
  }
  return yield* violation(`more than ${MAX_OPTIONS} options`)
})

/** Serves requests until DISC, the end of the stream or a violation, then waits for the ones in hand. */
const transmit = Effect.fnUntraced(function*(
  reader: NbdReader<NbdStream.ClientMessage>,
  connection: Transport.Connection,
  chosen: Chosen,
  options: Options,
  pool: BufferPool
) {
  const { baseAllocation, nbdExport, structured } = chosen
  const device = nbdExport.device
  const size = device.size
  const maxPayload = nbdExport.blockSizes.maximum
  const maxInFlight = Math.max(1, options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT)
  const maxBytes = Math.max(1, options.maxInFlightBytes ?? DEFAULT_MAX_IN_FLIGHT_BYTES)
  const runFork = yield* FiberSet.makeRuntime<never, void, never>()

  let inFlight = 0
  let inFlightBytes = 0
  let room: Deferred.Deferred<void> | undefined
  const wake = () => {
    const waiting = room
    if (waiting !== undefined) {
      room = undefined
      Deferred.doneUnsafe(waiting, Exit.void)
    }
  }
  const writer = new ReplyWriter(connection, (effect) => runFork(effect), wake)
  const buffers = new ReadBuffers(writer, SENT_BUFFERS, pool)
  /**
   * Waits until there is room for a request carrying `bytes`: replies not yet written under `MAX_BACKLOG` (a
   * client that does not read holds back the server), and requests in hand under both bounds (one request alone
   * is always admitted).
   */
  const admit = (bytes: number): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (
        writer.backlog() < MAX_BACKLOG &&
        (inFlight === 0 || (inFlight < maxInFlight && inFlightBytes + bytes <= maxBytes))
      ) {
        inFlight++
        inFlightBytes += bytes
        return Effect.void
      }
      room ??= Deferred.makeUnsafe<void>()
      return Effect.andThen(Deferred.await(room), admit(bytes))
    })
  const release = (bytes: number) =>
    Effect.sync(() => {
      inFlight--
      inFlightBytes -= bytes
      wake()
    })
  /** Every request answered and every reply written. */
  const idle = Effect.suspend(function loop(): Effect.Effect<void> {
    if (inFlight === 0 && writer.idle()) return Effect.void
    room ??= Deferred.makeUnsafe<void>()
    return Effect.andThen(Deferred.await(room), Effect.suspend(loop))
  })

  const headers = new HeaderSlab()
  // A reply that cannot be written means the connection is gone; the read loop sees that too.
  const send = (chunks: ReadonlyArray<Uint8Array>) => Effect.sync(() => void writer.send(chunks))
  const fail = (request: NbdTransmission.Request, error: number, message: string) => {
    if (structured && (request.type === C.READ || request.type === C.BLOCK_STATUS)) {
      return send([
        NbdTransmission.encodeChunk({
          _tag: "Error",
          flags: NbdConstants.ReplyFlags.DONE,
          cookie: request.cookie,
          error,
          message: message.length > 1000 ? message.slice(0, 1000) : message
        })
      ])
    }
    return send([headers.simple(error, request.cookie)])
  }
  const ok = (request: NbdTransmission.Request) => send([headers.simple(0, request.cookie)])

  /** The error value for a request that must not run, or 0. */
  const refusal = (request: NbdTransmission.Request): number => {
    const { flags, length, offset, type } = request
    if ((flags & ~allowedFlags(type, structured)) !== 0) return E.EINVAL
    const past = offset + length > size
    switch (type) {
      case C.READ:
        return length > maxPayload || past ? E.EINVAL : 0
      case C.WRITE:
        return nbdExport.readOnly ? E.EPERM : length > maxPayload ? E.EINVAL : past ? E.ENOSPC : 0
      case C.WRITE_ZEROES:
      case C.TRIM:
        return nbdExport.readOnly ? E.EPERM : past ? E.ENOSPC : 0
      case C.FLUSH:
        return 0
      case C.CACHE:
        return past ? E.EINVAL : 0
      case C.BLOCK_STATUS:
        return !baseAllocation || length === 0 || past ? E.EINVAL : 0
      default:
        return E.EINVAL
    }
  }

  const fua = (request: NbdTransmission.Request) => (request.flags & CF.FUA) !== 0 ? device.flush : Effect.void

  const read = (request: NbdTransmission.Request) =>
    Effect.suspend(() => {
      const { cookie, length, offset } = request
      if (length === 0) {
        return structured
          ? send([NbdTransmission.encodeChunk({ _tag: "None", flags: NbdConstants.ReplyFlags.DONE, cookie })])
          : ok(request)
      }
      const data = buffers.take(length)
      return Effect.flatMap(device.readAt(data, offset), (n) => {
        if (n !== length) return fail(request, E.EIO, `short read: ${n} of ${length} bytes`)
        const chunks = [
          structured ? headers.offsetData(cookie, offset, length) : headers.simple(0, cookie),
          data
        ]
        return Effect.sync(() => buffers.give(data, writer.send(chunks)))
      })
    })

  const blockStatus = (request: NbdTransmission.Request) =>
    Effect.suspend(() => {
      const { cookie, flags, length, offset } = request
      const runs = device.allocation === undefined
        ? Effect.succeed([{ length, allocated: true }])
        : device.allocation(offset, length)
      return Effect.flatMap(runs, (found) => {
        const extents: Array<NbdTransmission.Extent> = []
        const hole = NbdConstants.StateFlags.HOLE | NbdConstants.StateFlags.ZERO
        const limit = (flags & CF.REQ_ONE) !== 0 ? 1 : MAX_EXTENTS
        for (const run of found) {
          if (run.length <= 0) continue
          extents.push({ length: run.length, status: run.allocated ? 0 : hole })
          if (extents.length >= limit) break
        }
        if (extents.length === 0) extents.push({ length, status: 0 })
        return send([
          NbdTransmission.encodeChunk({
            _tag: "BlockStatus",
            flags: NbdConstants.ReplyFlags.DONE,
            cookie,
            contextId: BASE_ALLOCATION_ID,
            extents
          })
        ])
      })
    })

  const run = (request: NbdTransmission.Request): Effect.Effect<void, StorageError.StorageError> => {
    const { data, length, offset } = request
    switch (request.type) {
      case C.READ:
        return read(request)
      case C.WRITE:
        return Effect.andThen(
          Effect.andThen(length === 0 ? Effect.void : device.writeAt(data, offset), fua(request)),
          ok(request)
        )
      case C.WRITE_ZEROES:
        return Effect.andThen(
          Effect.andThen(
            inChunks(offset, length, (at, bytes) => device.writeAt(ZEROES.subarray(0, bytes), at)),
            fua(request)
          ),
          ok(request)
        )
      case C.TRIM:
        return Effect.andThen(fua(request), ok(request))
      case C.FLUSH:
        return Effect.andThen(device.flush, ok(request))
      case C.CACHE: {
        const scratch = new Uint8Array(Math.min(WORK_CHUNK, length))
        return Effect.andThen(
          inChunks(offset, length, (at, bytes) => device.readAt(scratch.subarray(0, bytes), at)),
          ok(request)
        )
      }
      default:
        return blockStatus(request)
    }
  }

  const handle = (request: NbdTransmission.Request): Effect.Effect<void> => {
    const refused = refusal(request)
    if (refused !== 0) {
      return fail(request, refused, `${NbdConstants.commandName(request.type)} refused`)
    }
    return Effect.catch(run(request), (error) => fail(request, errnoOf(error), error.message))
  }

  while (true) {
    const message = yield* Effect.onError(reader.next, () => idle)
    if (message === undefined) break
    if (message._tag !== "Request") return yield* violation("expected a transmission request")
    if (message.type === C.DISC) break
    const bytes = message.type === C.READ || message.type === C.WRITE ? message.length : 0
    yield* admit(bytes)
    runFork(Effect.ensuring(handle(message), release(bytes)))
  }
  yield* idle
})

/**
 * Accepts connections from `listener` for as long as the scope lives, serving each in its own fiber and scope
 * (a connection that fails is logged and closed; the others go on).
 *
 * @since 0.1.0
 * @category constructors
 */
export const serve = Effect.fn("NbdServer.serve")(function*(
  listener: Transport.Listener,
  options: Options,
  onConnection?: (active: number) => void
): Effect.fn.Return<never, TransportError.TransportError, Scope.Scope> {
  const scope = yield* Scope.Scope
  const runFork = yield* FiberSet.makeRuntime<never, void, never>()
  const pool = new BufferPool()
  let active = 0
  while (true) {
    const child = yield* Scope.fork(scope)
    const connection = yield* Effect.onError(Scope.provide(listener.accept, child), () => Scope.close(child, Exit.void))
    active++
    onConnection?.(active)
    runFork(
      serveWith(connection, options, pool).pipe(
        Effect.catch((error) => Effect.logDebug(`NBD client ${connection.remoteAddress}: ${error.message}`)),
        Effect.ensuring(Effect.suspend(() => {
          active--
          onConnection?.(active)
          return Scope.close(child, Exit.void)
        }))
      )
    )
  }
})

/**
 * Listens on `address` and serves the exports until the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fn("NbdServer.make")(function*(
  address: Address.Address | string,
  options: Options
): Effect.fn.Return<
  NbdServer,
  TransportError.TransportError | Address.AddressError | NbdError.NbdError,
  Transport.Transport | Scope.Scope
> {
  if (options.exports.length === 0) return yield* invalid("an NBD server needs at least one export")
  const names = new Set<string>()
  for (const e of options.exports) {
    if (names.has(e.name)) return yield* invalid(`two exports are named ${JSON.stringify(e.name)}`)
    names.add(e.name)
  }
  const listener = yield* Transport.listen(address)
  let active = 0
  yield* Effect.forkScoped(
    Effect.catch(
      serve(listener, options, (n) => (active = n)),
      (error) => Effect.logWarning(`NBD server on ${listener.address._tag}: ${error.message}`)
    )
  )
  return { address: listener.address, connections: () => active }
})
