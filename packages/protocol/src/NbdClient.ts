/**
 * An NBD client that is a `BlockDevice`: any NBD server's export (nbdkit, qemu-nbd, nbd-server, this package's
 * `NbdServer`) becomes a device to migrate from or into, hash, or serve again.
 *
 * Negotiation (fixed newstyle): structured replies and the `base:allocation` context when the server has them,
 * then `NBD_OPT_GO` asking for the block sizes (`NBD_OPT_EXPORT_NAME` when the server does not know GO). A
 * server that refuses the export, or does not speak fixed newstyle, is a `Refused` error.
 *
 * Transmission: `readAt` and `writeAt` split a range into requests of at most `requestSize` bytes (and the
 * server's maximum), sent at once and answered in any order, with at most `maxInFlight` requests outstanding on
 * the connection. Requests are aligned to the server's minimum block size: an unaligned read reads the
 * surrounding blocks, an unaligned write reads them, merges and writes them back (not atomic against another
 * writer of the same blocks). `flush` is `NBD_CMD_FLUSH`; `allocation` is `NBD_CMD_BLOCK_STATUS` when the
 * server offers `base:allocation` (bytes reported as reading as zeros count as not allocated), and absent
 * otherwise. Writing a read-only export fails with `Unsupported`.
 *
 * A reply that breaks the protocol (an unknown cookie, a chunk outside its read, an unknown chunk type) closes
 * the connection, and so does a request not answered within `requestTimeout`; every request in flight and
 * every later call then fails. Device errors are `StorageError`s whose `IoFailure` cause is the `NbdError`.
 * Closing the scope sends `NBD_CMD_DISC` and closes the socket.
 *
 * @since 0.1.0
 */
import * as NbdConstants from "@tessera/codec/NbdConstants"
import * as NbdHandshake from "@tessera/codec/NbdHandshake"
import * as NbdStream from "@tessera/codec/NbdStream"
import * as NbdTransmission from "@tessera/codec/NbdTransmission"
import { type AllocationRun, type BlockDevice, clip } from "@tessera/storage/Provider"
import * as StorageError from "@tessera/storage/StorageError"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberSet from "effect/FiberSet"
import * as Pull from "effect/Pull"
import * as Result from "effect/Result"
import type * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import * as Address from "./Address.ts"
import { NbdReader } from "./internal/nbdReader.ts"
import { type Reply, ReplyReader } from "./internal/nbdReplies.ts"
import * as NbdError from "./NbdError.ts"
import type * as NbdExport from "./NbdExport.ts"
import * as Transport from "./Transport.ts"
import type * as TransportError from "./TransportError.ts"

/**
 * Options of `connect`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The export to use; default the server's default export (the empty name). */
  readonly exportName?: string | undefined
  /** Requests outstanding on the connection at most; default 64. */
  readonly maxInFlight?: number | undefined
  /** Largest request the client sends; default 1 MiB (and never above the server's maximum). */
  readonly requestSize?: number | undefined
  /** How long negotiation may take; default 30 seconds. */
  readonly connectTimeout?: Duration.Input | undefined
  /** How long one request may wait for its reply; default 60 seconds. */
  readonly requestTimeout?: Duration.Input | undefined
}

/**
 * A connected export.
 *
 * @since 0.1.0
 * @category models
 */
export interface NbdClient extends BlockDevice {
  readonly exportName: string
  /** The export's `NbdConstants.TransmissionFlags`. */
  readonly transmissionFlags: number
  readonly readOnly: boolean
  /** The server's constraints (minimum 1, preferred 4096, maximum 32 MiB when it sent none). */
  readonly blockSizes: NbdExport.BlockSizes
  /** Whether structured replies were negotiated. */
  readonly structured: boolean
}

const MiB = 1024 * 1024
const DEFAULT_REQUEST_SIZE = MiB
const DEFAULT_MAX_IN_FLIGHT = 64
const DEFAULT_CONNECT_TIMEOUT = Duration.seconds(30)
const DEFAULT_REQUEST_TIMEOUT = Duration.seconds(60)
/** Longest range one BLOCK_STATUS asks about (its length is a u32). */
const MAX_STATUS_LENGTH = 2 ** 31
const C = NbdConstants.Command
const EMPTY = new Uint8Array(0)

const violation = (detail: string): NbdError.NbdError => NbdError.make(new NbdError.ProtocolViolation({ detail }))

const transportFailed = (cause: TransportError.TransportError): NbdError.NbdError =>
  NbdError.make(new NbdError.TransportFailed({ cause }))

/** A request waiting for its reply. */
interface Pending {
  readonly type: number
  readonly offset: number
  readonly length: number
  /** Where a READ's data goes (its `length` bytes). */
  readonly target: Uint8Array
  readonly done: Deferred.Deferred<void, NbdError.NbdError>
  /** Extents of a BLOCK_STATUS reply. */
  readonly extents: Array<NbdTransmission.Extent>
  /** The first error chunk of a structured reply (the reply fails once it is done). */
  error: NbdError.NbdError | undefined
}

/** The display name of an export address, like the device specs that reach it. */
const nameOf = (address: Address.Address, exportName: string): string =>
  address._tag === "Tcp"
    ? `nbd://${address.host.includes(":") ? `[${address.host}]` : address.host}:${address.port}/${exportName}`
    : address._tag === "Unix"
    ? `nbd+unix:///${exportName}?socket=${address.path}`
    : `nbd+memory:${address.name}/${exportName}`

/**
 * Connects to an export over the current `Transport` and negotiates; the connection lives in the current scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const connect = Effect.fn("NbdClient.connect")(function*(
  address: Address.Address | string,
  options: Options = {}
): Effect.fn.Return<
  NbdClient,
  NbdError.NbdError | TransportError.TransportError | Address.AddressError,
  Transport.Transport | Scope.Scope
> {
  const parsed = typeof address === "string" ? yield* Address.parseEffect(address) : address
  const exportName = options.exportName ?? ""
  const name = nameOf(parsed, exportName)
  const connection = yield* Transport.dial(parsed)
  const pending = new Map<bigint, Pending>()
  const parser = NbdStream.makeClientParser({
    readLength: (cookie) => {
      const request = pending.get(cookie)
      return request === undefined ? undefined : request.type === C.READ ? request.length : 0
    }
  })
  const reader = new NbdReader(connection, parser)
  const send = (chunks: ReadonlyArray<Uint8Array>) => Effect.mapError(connection.write(chunks), transportFailed)

  const negotiated = yield* negotiate(reader, parser, send, exportName).pipe(
    Effect.timeoutOrElse({
      duration: options.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT,
      orElse: () => Effect.fail(NbdError.make(new NbdError.Disconnected({ detail: `${name}: negotiation timed out` })))
    })
  )
  const { baseAllocation, blockSizes, size, structured, transmissionFlags } = negotiated
  const readOnly = (transmissionFlags & NbdConstants.TransmissionFlags.READ_ONLY) !== 0
  const canFlush = (transmissionFlags & NbdConstants.TransmissionFlags.SEND_FLUSH) !== 0
  const requestSize = Math.max(
    blockSizes.minimum,
    Math.min(options.requestSize ?? DEFAULT_REQUEST_SIZE, blockSizes.maximum)
  )
  // Requests must stay multiples of the minimum block size.
  const chunkSize = requestSize - (requestSize % blockSizes.minimum)
  const inFlight = yield* Semaphore.make(Math.max(1, options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT))
  const requestTimeout = options.requestTimeout ?? DEFAULT_REQUEST_TIMEOUT
  let nextCookie = 1n
  let ended: NbdError.NbdError | undefined

  /** Ends the connection once: every request in flight fails with `error`. */
  const shutdown = (error: NbdError.NbdError): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (ended !== undefined) return Effect.void
      ended = error
      for (const request of pending.values()) Deferred.doneUnsafe(request.done, Exit.fail(error))
      pending.clear()
      return connection.close
    })

  yield* Effect.addFinalizer(() =>
    Effect.suspend(() => {
      if (ended !== undefined) return Effect.void
      const disc = NbdTransmission.encodeRequestHeader({ flags: 0, type: C.DISC, cookie: 0n, offset: 0, length: 0 })
      return Effect.andThen(
        Effect.ignore(Effect.timeoutOption(Effect.andThen(connection.write([disc]), connection.end), "2 seconds")),
        shutdown(NbdError.make(new NbdError.Disconnected({ detail: `${name}: closed` })))
      )
    })
  )

  /** Applies one reply event to its request; a string is a protocol violation. */
  const deliver = (reply: Reply): string | undefined => {
    const cookie = reply._tag === "Chunk" ? reply.chunk.cookie : reply.cookie
    const request = pending.get(cookie)
    if (request === undefined) return `a reply for cookie ${cookie}, which is not in flight`
    const finish = (error: NbdError.NbdError | undefined) => {
      pending.delete(cookie)
      Deferred.doneUnsafe(request.done, error === undefined ? Exit.void : Exit.fail(error))
      return undefined
    }
    const failed = (error: number, detail: string) =>
      NbdError.make(
        new NbdError.RequestFailed({
          command: NbdConstants.commandName(request.type),
          offset: request.offset,
          length: request.length,
          error,
          detail
        })
      )
    if (reply._tag === "Simple") return finish(reply.error === 0 ? undefined : failed(reply.error, ""))
    if (reply._tag === "Data") return NbdTransmission.isDone(reply) ? finish(request.error) : undefined
    const chunk = reply.chunk
    switch (chunk._tag) {
      case "OffsetData":
      case "OffsetHole": {
        if (request.type !== C.READ) return `${chunk._tag} chunk in reply to a non-READ`
        const length = chunk._tag === "OffsetData" ? chunk.data.length : chunk.length
        const at = chunk.offset - request.offset
        if (at < 0 || at + length > request.length) {
          return `${chunk._tag} chunk at ${chunk.offset} (${length} bytes) lies outside its READ`
        }
        if (chunk._tag === "OffsetData") request.target.set(chunk.data, at)
        else request.target.fill(0, at, at + length)
        break
      }
      case "BlockStatus":
        if (request.type !== C.BLOCK_STATUS) return "BLOCK_STATUS chunk in reply to another command"
        if (chunk.contextId === baseAllocation) request.extents.push(...chunk.extents)
        break
      case "Error":
      case "ErrorOffset":
      case "UnknownErrorChunk":
        request.error ??= failed(chunk.error, chunk.message)
        break
      case "None":
        break
      case "UnknownChunk":
        return `unknown structured reply chunk type ${chunk.type}`
    }
    return NbdTransmission.isDone(chunk) ? finish(request.error) : undefined
  }

  // Transmission replies are read without the negotiation parser, so READ data goes straight into its buffer.
  if (parser.buffered() !== 0 || reader.queued !== 0) {
    return yield* violation("the server sent bytes before any request")
  }
  const replies = new ReplyReader((cookie) => pending.get(cookie), NbdTransmission.DEFAULT_MAX_DATA_LENGTH)
  const pull = Pull.catchDone(connection.read, () => Effect.succeed(undefined))
  yield* Effect.forkScoped(
    Effect.suspend(function loop(): Effect.Effect<void, NbdError.NbdError> {
      return Effect.flatMap(Effect.mapError(pull, transportFailed), (batch) => {
        if (batch === undefined) {
          return Effect.fail(NbdError.make(
            new NbdError.Disconnected({
              detail: `${name}: the server closed${replies.atBoundary ? "" : " in the middle of a reply"}`
            })
          ))
        }
        for (const chunk of batch) {
          const problem = replies.push(chunk, deliver)
          if (problem !== undefined) return Effect.fail(violation(problem))
        }
        return loop()
      })
    }).pipe(Effect.catch(shutdown))
  )

  // Requests made in one turn of the event loop leave in one gather write at its end (a write per request
  // costs a system call each). The arrays are kept by reference until then.
  const runFork = yield* FiberSet.makeRuntime<never, void, never>()
  let outgoing: Array<Uint8Array> = []
  let flushQueued = false
  const flushOutgoing = () => {
    flushQueued = false
    const chunks = outgoing
    outgoing = []
    if (chunks.length > 0 && ended === undefined) {
      runFork(Effect.catch(send(chunks), shutdown))
    }
  }
  const enqueue = (header: Uint8Array, data: Uint8Array) => {
    outgoing.push(header)
    if (data.length > 0) outgoing.push(data)
    if (!flushQueued) {
      flushQueued = true
      setImmediate(flushOutgoing)
    }
  }

  /** Sends one request and waits for its reply. */
  const request = (
    type: number,
    offset: number,
    length: number,
    target: Uint8Array,
    data: Uint8Array
  ): Effect.Effect<Pending, NbdError.NbdError> =>
    inFlight.withPermit(Effect.suspend(() => {
      if (ended !== undefined) return Effect.fail(ended)
      const cookie = nextCookie++
      const entry: Pending = {
        type,
        offset,
        length,
        target,
        done: Deferred.makeUnsafe(),
        extents: [],
        error: undefined
      }
      pending.set(cookie, entry)
      enqueue(NbdTransmission.encodeRequestHeader({ flags: 0, type, cookie, offset, length }), data)
      return Deferred.await(entry.done).pipe(
        Effect.timeoutOrElse({
          duration: requestTimeout,
          orElse: () => {
            const error = NbdError.make(
              new NbdError.Disconnected({
                detail: `${name}: no reply to ${NbdConstants.commandName(type)} within ${
                  Duration.format(Duration.fromInputUnsafe(requestTimeout))
                }`
              })
            )
            return Effect.andThen(shutdown(error), Effect.fail(error))
          }
        }),
        Effect.onError(() => Effect.sync(() => pending.delete(cookie))),
        Effect.as(entry)
      )
    }))

  const storageError = (operation: string) => (cause: NbdError.NbdError) =>
    StorageError.make(name, new StorageError.IoFailure({ operation, cause }))

  /** Runs `part` for each request-sized piece of `[offset, offset + length)`, all at once. */
  const pieces = (
    offset: number,
    length: number,
    part: (at: number, bytes: number) => Effect.Effect<unknown, NbdError.NbdError>
  ): Effect.Effect<void, NbdError.NbdError> => {
    if (length <= chunkSize) return Effect.asVoid(part(offset, length))
    const starts: Array<number> = []
    for (let at = 0; at < length; at += chunkSize) starts.push(at)
    return Effect.forEach(starts, (at) => part(offset + at, Math.min(chunkSize, length - at)), {
      concurrency: "unbounded",
      discard: true
    })
  }

  const readAligned = (buffer: Uint8Array, offset: number): Effect.Effect<void, NbdError.NbdError> =>
    pieces(
      offset,
      buffer.length,
      (at, bytes) => request(C.READ, at, bytes, buffer.subarray(at - offset, at - offset + bytes), EMPTY)
    )

  const writeAligned = (data: Uint8Array, offset: number): Effect.Effect<void, NbdError.NbdError> =>
    pieces(offset, data.length, (at, bytes) => {
      const part = data.subarray(at - offset, at - offset + bytes)
      return request(C.WRITE, at, bytes, EMPTY, part)
    })

  const minimum = blockSizes.minimum
  /** The block-aligned span around `[offset, offset + length)`, cut at the end of the export. */
  const span = (offset: number, length: number) => {
    const start = offset - (offset % minimum)
    const end = Math.min(size, Math.ceil((offset + length) / minimum) * minimum)
    return { start, end }
  }
  const isAligned = (offset: number, length: number) =>
    minimum === 1 || (offset % minimum === 0 && (length % minimum === 0 || offset + length === size))

  const readAt: BlockDevice["readAt"] = (buffer, offset) =>
    Effect.suspend(() => {
      const clipped = clip(name, size, offset, buffer.length)
      if (Result.isFailure(clipped)) return Effect.fail(clipped.failure)
      const n = clipped.success
      if (n === 0) return Effect.succeed(0)
      const target = buffer.subarray(0, n)
      if (isAligned(offset, n)) return Effect.as(Effect.mapError(readAligned(target, offset), storageError("read")), n)
      const { end, start } = span(offset, n)
      const bounce = new Uint8Array(end - start)
      return Effect.mapError(readAligned(bounce, start), storageError("read")).pipe(
        Effect.map(() => {
          target.set(bounce.subarray(offset - start, offset - start + n))
          return n
        })
      )
    })

  const writeAt: BlockDevice["writeAt"] = (data, offset) =>
    Effect.suspend(() => {
      if (readOnly) {
        return Effect.fail(
          StorageError.make(name, new StorageError.Unsupported({ detail: "the NBD export is read-only" }))
        )
      }
      const clipped = clip(name, size, offset, data.length)
      if (Result.isFailure(clipped)) return Effect.fail(clipped.failure)
      const n = clipped.success
      if (n === 0) return Effect.succeed(0)
      const source = data.subarray(0, n)
      if (isAligned(offset, n)) {
        return Effect.as(Effect.mapError(writeAligned(source, offset), storageError("write")), n)
      }
      const { end, start } = span(offset, n)
      const merged = new Uint8Array(end - start)
      return readAligned(merged, start).pipe(
        Effect.andThen(Effect.suspend(() => {
          merged.set(source, offset - start)
          return writeAligned(merged, start)
        })),
        Effect.mapError(storageError("write")),
        Effect.as(n)
      )
    })

  const flush: BlockDevice["flush"] = canFlush
    ? Effect.asVoid(Effect.mapError(request(C.FLUSH, 0, 0, EMPTY, EMPTY), storageError("flush")))
    : Effect.suspend(() => ended === undefined ? Effect.void : Effect.fail(storageError("flush")(ended)))

  /** BLOCK_STATUS over the range, asking again from where each reply stopped. */
  const allocation = (offset: number, length: number) =>
    Effect.gen(function*() {
      const n = yield* Effect.fromResult(clip(name, size, offset, length))
      const runs: Array<{ length: number; allocated: boolean }> = []
      const stop = offset + n
      let at = offset
      while (at < stop) {
        const { end, start } = span(at, Math.min(MAX_STATUS_LENGTH, stop - at))
        const reply = yield* Effect.mapError(
          request(C.BLOCK_STATUS, start, end - start, EMPTY, EMPTY),
          storageError("block status")
        )
        let position = start
        for (const extent of reply.extents) {
          if (extent.length === 0 || position >= stop) break
          const from = Math.max(position, at)
          const to = Math.min(position + extent.length, stop)
          position += extent.length
          if (to <= from) continue
          const allocated = (extent.status & NbdConstants.StateFlags.ZERO) === 0
          const last = runs.at(-1)
          if (last !== undefined && last.allocated === allocated) last.length += to - from
          else runs.push({ length: to - from, allocated })
        }
        if (position <= at) {
          return yield* storageError("block status")(violation("BLOCK_STATUS reply made no progress"))
        }
        at = Math.min(position, stop)
      }
      return runs as ReadonlyArray<AllocationRun>
    })

  return {
    name,
    size,
    readAt,
    writeAt,
    flush,
    cancelWrites: () => Effect.void,
    ...(baseAllocation === undefined ? {} : { allocation }),
    exportName,
    transmissionFlags,
    readOnly,
    blockSizes,
    structured
  }
})

interface Negotiated {
  readonly size: number
  readonly transmissionFlags: number
  readonly blockSizes: NbdExport.BlockSizes
  readonly structured: boolean
  /** The id of `base:allocation`, when the server set it. */
  readonly baseAllocation: number | undefined
}

const DEFAULT_BLOCK_SIZES: NbdExport.BlockSizes = {
  minimum: 1,
  preferred: 4096,
  maximum: NbdTransmission.DEFAULT_MAX_DATA_LENGTH
}

const refused = (option: number, reply: NbdHandshake.OptionReply | undefined, detail: string) =>
  NbdError.make(
    new NbdError.Refused({
      option: NbdConstants.optionName(option),
      reply: reply === undefined ? "none" : NbdConstants.replyName(NbdHandshake.replyTypeOf(reply)),
      detail
    })
  )

const negotiate = Effect.fnUntraced(function*(
  reader: NbdReader<NbdStream.ServerMessage>,
  parser: NbdStream.ClientParser,
  send: (chunks: ReadonlyArray<Uint8Array>) => Effect.Effect<void, NbdError.NbdError>,
  exportName: string
) {
  const O = NbdConstants.Option
  const next = Effect.flatMap(reader.next, (message) =>
    message === undefined
      ? Effect.fail(NbdError.make(new NbdError.Disconnected({ detail: "the server closed during negotiation" })))
      : Effect.succeed(message))
  /** Replies to `option` up to and including its ACK or error. */
  const replies = Effect.fnUntraced(function*(option: number) {
    const got: Array<NbdHandshake.OptionReply> = []
    while (true) {
      const message = yield* next
      if (!("option" in message)) {
        return yield* violation(`expected a reply to ${NbdConstants.optionName(option)}, got ${message._tag}`)
      }
      if (message.option !== option) {
        return yield* violation(
          `a reply to ${NbdConstants.optionName(message.option)} while ${NbdConstants.optionName(option)} waits`
        )
      }
      got.push(message)
      if (message._tag === "Ack" || message._tag === "OptionError") return got
    }
  })
  const option = (request: NbdHandshake.OptionRequest) => send([NbdHandshake.encodeOptionRequest(request)])

  const greeting = yield* next
  if (greeting._tag !== "Greeting") return yield* violation(`expected the greeting, got ${greeting._tag}`)
  const HF = NbdConstants.HandshakeFlags
  if ((greeting.handshakeFlags & HF.FIXED_NEWSTYLE) === 0) {
    return yield* refused(0, undefined, "the server does not speak fixed newstyle negotiation")
  }
  const noZeroes = (greeting.handshakeFlags & HF.NO_ZEROES) !== 0
  const CFl = NbdConstants.ClientFlags
  yield* send([NbdHandshake.encodeClientFlags(CFl.FIXED_NEWSTYLE | (noZeroes ? CFl.NO_ZEROES : 0))])

  yield* option({ _tag: "StructuredReply" })
  const structured = (yield* replies(O.STRUCTURED_REPLY)).at(-1)!._tag === "Ack"

  let baseAllocation: number | undefined
  if (structured) {
    yield* option({ _tag: "SetMetaContext", name: exportName, queries: [NbdConstants.BASE_ALLOCATION] })
    for (const reply of yield* replies(O.SET_META_CONTEXT)) {
      if (reply._tag === "MetaContext" && reply.name === NbdConstants.BASE_ALLOCATION) baseAllocation = reply.id
    }
  }

  yield* option({ _tag: "Go", name: exportName, requests: [NbdConstants.Info.BLOCK_SIZE] })
  const go = yield* replies(O.GO)
  const last = go.at(-1)!
  if (last._tag === "OptionError") {
    if (last.type !== NbdConstants.Reply.ERR_UNSUP) {
      return yield* refused(O.GO, last, last.message === "" ? `export ${JSON.stringify(exportName)}` : last.message)
    }
    // An old server: EXPORT_NAME, which it answers with the export or by closing.
    parser.expectExportNameReply(noZeroes)
    yield* option({ _tag: "ExportName", name: exportName })
    const reply = yield* next
    if (reply._tag !== "ExportNameReply") return yield* violation(`expected the EXPORT_NAME reply, got ${reply._tag}`)
    return {
      size: reply.size,
      transmissionFlags: reply.transmissionFlags,
      blockSizes: DEFAULT_BLOCK_SIZES,
      structured,
      baseAllocation
    } satisfies Negotiated
  }
  let info: { size: number; transmissionFlags: number } | undefined
  let blockSizes = DEFAULT_BLOCK_SIZES
  for (const reply of go) {
    if (reply._tag !== "ExportInfo") continue
    if (reply.info._tag === "Export") info = reply.info
    else if (reply.info._tag === "BlockSize") {
      const { maximum, minimum, preferred } = reply.info
      if (!(minimum >= 1 && minimum <= 65536 && preferred >= minimum && maximum >= minimum)) {
        return yield* violation(`block sizes ${minimum}/${preferred}/${maximum} break the protocol's rules`)
      }
      blockSizes = { minimum, preferred, maximum: Math.min(maximum, NbdTransmission.DEFAULT_MAX_DATA_LENGTH) }
    }
  }
  if (info === undefined) return yield* violation("NBD_OPT_GO succeeded without NBD_INFO_EXPORT")
  return {
    size: info.size,
    transmissionFlags: info.transmissionFlags,
    blockSizes,
    structured,
    baseAllocation
  } satisfies Negotiated
})
