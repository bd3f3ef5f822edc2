/**
 * Silo's packet connection (`protocol.RW`) as a state machine over one or more duplex streams: frames
 * `dev u32 | id u32 | length u32 | payload` out and in, request ids, responses matched to their requests, and
 * incoming requests handed to whoever waits for their (device, command).
 *
 * Compatible with Silo on the wire; different where Silo can wedge or leak (spec silo.md §10 item 7):
 *
 * - **Streams.** Each frame goes to the stream with the fewest bytes queued (appended but not yet written,
 *   plus what the transport still holds), ties broken round robin. Silo picks at random; both keep order only
 *   within a stream, so a peer must not rely on order across streams (Silo's own flows acknowledge instead).
 * - **Ids.** One u32 counter for the whole connection, starting at 1 and wrapping to 1 (0 means "pick one"
 *   when sending). An id still awaiting a response on the same device is skipped.
 * - **Responses** (command byte with bit 0x80) are matched by (dev, id) to the `request` waiting for them. A
 *   response nobody waits for (unknown id, or its request timed out) is counted in `unmatchedResponses` and
 *   dropped: nothing is kept for it.
 * - **Requests** (no 0x80 bit) go to a bounded mailbox per (dev, command), created on first use, taken with
 *   `waitForCommand`. WriteAt and its subtypes share command 0x02, so one mailbox serves them all. When a
 *   mailbox is full (`mailboxCapacity` requests or `mailboxBytes` of payload, sized to absorb the bursts of a
 *   peer's in-flight requests) the request is dropped and counted in `droppedRequests`; the reader never
 *   waits. So a device (or one command of a device) whose handler stalls loses its own excess requests, whose
 *   senders then time out, while every other device and command keeps flowing. Silo instead blocks the
 *   reader, which after 32 unhandled packets stops the whole stream. Per-device back-pressure is not possible
 *   on a shared stream without unbounded buffering, which the design rules forbid.
 * - **New devices.** `onNewDevice` runs once per device id, in its own fiber, the first time the id is sent
 *   or received (not when it is only waited on), so it can start that device's handlers without stalling the
 *   reader or the sender. Requests that arrive before the handlers start wait in the mailbox.
 * - **Urgency and buffering.** A send that finds 64 KiB pending on its stream, an urgent send, and every send
 *   while the stream's previous write still waits for the transport to drain, writes now and returns once the
 *   transport accepted the frames (back-pressure). Other sends return at once and their frames leave together
 *   in one gather write at the end of the current task (the responses to one batch of requests, say). With
 *   `buffering`, that write waits instead until `maxBytes` are pending or `delay` passed since the first of
 *   them (Silo's BufferedWriter). Write errors end the connection, and every later call fails with them.
 *   `flush` and `close` make sure what was sent has been written; closing the scope does not.
 * - **Limits and time.** Frames over `maxFrameLength`, of length 0, or cut short by the end of a stream are
 *   a `MalformedFrame`: the connection is closed and nothing of that frame is delivered. A peer naming more
 *   than `maxDevices` devices closes it too. Every `request` has a timeout; `waitForCommand` takes one and is
 *   otherwise bounded by the connection's life: when the connection ends, every wait fails with the reason.
 * - **Zero copy.** A payload over 4 KiB is written by reference next to its 12-byte header (do not modify it
 *   after sending); smaller frames are packed together into one array per write. A received payload over 4 KiB
 *   is a view of the bytes the transport read (big adjacent reads make that the rule, not the exception);
 *   smaller ones are copied out so they do not pin the read buffer.
 *
 * The connection lives in the scope it was made in; closing the scope fails every wait and destroys the
 * streams. `close` ends it gracefully (flushes, half-closes every stream).
 *
 * @since 0.1.0
 */
import type { DecodeError } from "@tessera/codec/DecodeError"
import * as SiloFrame from "@tessera/codec/SiloFrame"
import type * as Arr from "effect/Array"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberSet from "effect/FiberSet"
import * as Pull from "effect/Pull"
import * as Result from "effect/Result"
import type * as Scope from "effect/Scope"
import { FrameReader } from "./internal/frameReader.ts"
import * as FrameWriter from "./internal/frameWriter.ts"
import { Mailbox } from "./internal/mailbox.ts"
import * as ProtocolError from "./ProtocolError.ts"
import type * as Transport from "./Transport.ts"
import type * as TransportError from "./TransportError.ts"

/**
 * A request received from the peer: answer it with `respond(dev, id, ...)`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Request {
  readonly dev: number
  readonly id: number
  /** The whole payload, command byte included. */
  readonly payload: Uint8Array
}

/**
 * Counters since the connection was made (Silo's RW metrics plus what this port adds).
 *
 * @since 0.1.0
 * @category models
 */
export interface Metrics {
  /** Frames handed to a stream writer, and their bytes (12 + payload each). */
  readonly packetsSent: number
  readonly bytesSent: number
  /** The urgent part of the above (Silo declares these counters but never fills them). */
  readonly urgentPacketsSent: number
  readonly urgentBytesSent: number
  /** Well-formed frames received, and their bytes (12 + payload each). */
  readonly packetsReceived: number
  readonly bytesReceived: number
  /** Frames appended whose write the transport has not accepted yet. */
  readonly activePacketsSending: number
  /** Requests waiting for their response. */
  readonly waitingForId: number
  /** Gather writes issued to the streams, and the ones that failed. */
  readonly writes: number
  readonly writeErrors: number
  /** Responses that matched no waiting request, dropped. */
  readonly unmatchedResponses: number
  /** Requests dropped because their (dev, command) mailbox was full. */
  readonly droppedRequests: number
  /** Distinct device ids seen. */
  readonly devices: number
}

/**
 * Write coalescing (Silo's BufferedWriter).
 *
 * @since 0.1.0
 * @category models
 */
export interface Buffering {
  /** Pending bytes on a stream that trigger a write at once; default 1 MiB. */
  readonly maxBytes?: number | undefined
  /** Longest time a normal frame waits for others to join its write; default 2 ms. */
  readonly delay?: Duration.Input | undefined
}

/**
 * Options of `make`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Largest payload accepted from the peer (and sent); default `SiloFrame.DEFAULT_MAX_FRAME_LENGTH` (32 MiB). */
  readonly maxFrameLength?: number | undefined
  /** Timeout of `request` when the call gives none; default 30 seconds. */
  readonly requestTimeout?: Duration.Input | undefined
  /**
   * Requests held per (dev, command) until taken; default 256. Keep it above the number of requests the peer
   * has in flight for one (dev, command) (Silo's migrator: up to 148 per device), or bursts are dropped.
   */
  readonly mailboxCapacity?: number | undefined
  /** Payload bytes held per (dev, command) until taken; default 256 MiB. */
  readonly mailboxBytes?: number | undefined
  /** Distinct device ids accepted; default 4096. */
  readonly maxDevices?: number | undefined
  /** Coalesce normal sends; off by default (every send is written at once). */
  readonly buffering?: Buffering | undefined
  /** Runs once per device id, in its own fiber, when the id is first sent or received. */
  readonly onNewDevice?: ((dev: number, connection: PacketConnection) => Effect.Effect<void>) | undefined
}

/**
 * Options of `send` and `respond`.
 *
 * @since 0.1.0
 * @category models
 */
export interface SendOptions {
  /** Flush this frame's stream at once, with whatever was buffered before it. */
  readonly urgent?: boolean | undefined
  /**
   * Bytes that follow `payload` in the same frame, written by reference and never copied (block data behind a
   * small packet prefix). Leave it unchanged until the call returns (for `request`, until the response).
   */
  readonly tail?: Uint8Array | undefined
}

/**
 * Options of `request`.
 *
 * @since 0.1.0
 * @category models
 */
export interface RequestOptions extends SendOptions {
  /** How long to wait for the response, sending included; default the connection's `requestTimeout`. */
  readonly timeout?: Duration.Input | undefined
}

/**
 * Options of `waitForCommand`.
 *
 * @since 0.1.0
 * @category models
 */
export interface WaitOptions {
  /** How long to wait; by default until a request arrives or the connection ends. */
  readonly timeout?: Duration.Input | undefined
}

/**
 * A packet connection.
 *
 * @since 0.1.0
 * @category models
 */
export interface PacketConnection {
  /** Number of streams the connection runs over. */
  readonly streams: number
  /** Sends a frame that expects no response; `id` 0 takes a fresh id. Returns the id used. */
  readonly send: (
    dev: number,
    id: number,
    payload: Uint8Array,
    options?: SendOptions
  ) => Effect.Effect<number, ProtocolError.ProtocolError>
  /** Sends a request under a fresh id and waits for the response with that id. */
  readonly request: (
    dev: number,
    payload: Uint8Array,
    options?: RequestOptions
  ) => Effect.Effect<Uint8Array, ProtocolError.ProtocolError>
  /** Answers request `id` of `dev`. */
  readonly respond: (
    dev: number,
    id: number,
    payload: Uint8Array,
    options?: SendOptions
  ) => Effect.Effect<void, ProtocolError.ProtocolError>
  /** Takes the next request for (dev, command); `command` must not have the 0x80 response bit. */
  readonly waitForCommand: (
    dev: number,
    command: number,
    options?: WaitOptions
  ) => Effect.Effect<Request, ProtocolError.ProtocolError>
  /**
   * Takes the next request for (dev, command) if one has already arrived, without waiting: frames received before
   * a response arrived can be drained in order with it.
   */
  readonly pollCommand: (
    dev: number,
    command: number
  ) => Effect.Effect<Request | undefined, ProtocolError.ProtocolError>
  /** Writes every buffered frame now. */
  readonly flush: Effect.Effect<void, ProtocolError.ProtocolError>
  /** Flushes, half-closes every stream, and ends the connection; waits fail with `Closed`. */
  readonly close: Effect.Effect<void>
  /** Waits until the connection ends: succeeds when it was closed or the peer ended it cleanly. */
  readonly await: Effect.Effect<void, ProtocolError.ProtocolError>
  /** A snapshot of the counters. */
  readonly metrics: () => Metrics
}

/**
 * Whether a command byte is a response (bit 0x80 set).
 *
 * @since 0.1.0
 * @category predicates
 */
export const isResponse = (command: number): boolean => (command & 0x80) !== 0

const DEFAULT_REQUEST_TIMEOUT = Duration.seconds(30)
const DEFAULT_MAILBOX_CAPACITY = 256
const DEFAULT_MAILBOX_BYTES = 256 * 1024 * 1024
const DEFAULT_MAX_DEVICES = 4096
const DEFAULT_BUFFER_BYTES = 1024 * 1024
const DEFAULT_BUFFER_DELAY = Duration.millis(2)
/** Without buffering, small frames of one task are written together up to this many bytes. */
const COALESCE_BYTES = 64 * 1024
/** Received payloads up to this size are copied rather than kept as views of the read buffer. */
const COPY_BELOW = 4096
const EMPTY = new Uint8Array(0)

/** A request waiting for its response, and when it gives up. */
interface Waiter {
  readonly response: Deferred.Deferred<Uint8Array, ProtocolError.ProtocolError>
  readonly deadline: number
  readonly millis: number
}

class Device {
  announced = false
  readonly pending = new Map<number, Waiter>()
  readonly mailboxes = new Map<number, Mailbox<Request, ProtocolError.ProtocolError>>()
}

/** The counters kept here; the write counters live in the stream writers. */
type Counters = {
  -readonly [K in Exclude<keyof Metrics, "writes" | "writeErrors" | "activePacketsSending">]: Metrics[K]
}

const malformed = (stream: number, error: DecodeError): ProtocolError.ProtocolError =>
  ProtocolError.make(new ProtocolError.MalformedFrame({ stream, offset: error.offset, detail: error.reason }))

const transportFailed = (cause: TransportError.TransportError): ProtocolError.ProtocolError =>
  ProtocolError.make(new ProtocolError.TransportFailed({ cause }))

const requestSize = (request: Request): number => request.payload.length

const badArgument = (detail: string): ProtocolError.ProtocolError =>
  ProtocolError.make(new ProtocolError.BadArgument({ detail }))

/**
 * Runs the protocol over `streams` (at least one; the peer must use the same number only if it cares about
 * balance, since frames may arrive on any stream). The readers start at once.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fn("PacketConnection.make")(function*(
  streams: Arr.NonEmptyReadonlyArray<Transport.Connection>,
  options: Options = {}
): Effect.fn.Return<PacketConnection, never, Scope.Scope> {
  const maxFrameLength = options.maxFrameLength ?? SiloFrame.DEFAULT_MAX_FRAME_LENGTH
  const requestTimeout = options.requestTimeout ?? DEFAULT_REQUEST_TIMEOUT
  const requestMillis = Duration.toMillis(requestTimeout)
  const mailboxCapacity = options.mailboxCapacity ?? DEFAULT_MAILBOX_CAPACITY
  const mailboxBytes = options.mailboxBytes ?? DEFAULT_MAILBOX_BYTES
  const maxDevices = options.maxDevices ?? DEFAULT_MAX_DEVICES
  const buffering = options.buffering
  const maxBufferBytes = buffering?.maxBytes ?? DEFAULT_BUFFER_BYTES
  const bufferDelay = buffering?.delay ?? DEFAULT_BUFFER_DELAY
  const onNewDevice = options.onNewDevice

  const runFork = yield* FiberSet.makeRuntime<never, void, never>()
  const clock = yield* Clock.Clock
  const done = Deferred.makeUnsafe<void, ProtocolError.ProtocolError>()
  const writerHooks: FrameWriter.Hooks<ProtocolError.ProtocolError> = {
    // A failed background flush has already ended the connection, which is where the error surfaces.
    fork: (flush) => runFork(Effect.ignore(flush)),
    failed: (cause) => {
      const error = transportFailed(cause)
      return Effect.map(shutdown(error, false), () => ended ?? error)
    }
  }
  const writers = streams.map((stream) => new FrameWriter.FrameWriter(stream, writerHooks))
  const devices = new Map<number, Device>()
  const counters: Counters = {
    packetsSent: 0,
    bytesSent: 0,
    urgentPacketsSent: 0,
    urgentBytesSent: 0,
    packetsReceived: 0,
    bytesReceived: 0,
    waitingForId: 0,
    unmatchedResponses: 0,
    droppedRequests: 0,
    devices: 0
  }
  let ended: ProtocolError.ProtocolError | undefined
  let nextId = 1
  let nextStream = 0
  let streamsAtEnd = 0

  // --- lifecycle -------------------------------------------------------------------------------------------

  /** Ends the connection once: every wait fails with `error`, the streams are destroyed. */
  const shutdown = (error: ProtocolError.ProtocolError, clean: boolean): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (ended !== undefined) return Effect.void
      ended = error
      const failed = Exit.fail(error)
      for (const device of devices.values()) {
        for (const waiter of device.pending.values()) Deferred.doneUnsafe(waiter.response, failed)
        device.pending.clear()
        for (const mailbox of device.mailboxes.values()) mailbox.fail(error)
      }
      for (const writer of writers) writer.close(error)
      Deferred.doneUnsafe(done, clean ? Exit.void : failed)
      return Effect.forEach(streams, (stream) => stream.close, { discard: true })
    })

  yield* Effect.addFinalizer(() =>
    shutdown(ProtocolError.make(new ProtocolError.Closed({ detail: "its scope was closed" })), true)
  )

  // --- devices ---------------------------------------------------------------------------------------------

  const deviceOf = (dev: number): Device | ProtocolError.ProtocolError => {
    const known = devices.get(dev)
    if (known !== undefined) return known
    if (devices.size >= maxDevices) {
      return ProtocolError.make(new ProtocolError.TooManyDevices({ dev, limit: maxDevices }))
    }
    const device = new Device()
    devices.set(dev, device)
    counters.devices++
    return device
  }

  const announce = (dev: number, device: Device): void => {
    device.announced = true
    if (onNewDevice !== undefined) runFork(onNewDevice(dev, connection))
  }

  // --- sending ---------------------------------------------------------------------------------------------

  /** The stream with the fewest queued bytes, starting the search at the next one in turn. */
  const pickWriter = (): FrameWriter.FrameWriter<ProtocolError.ProtocolError> => {
    const count = writers.length
    if (count === 1) return writers[0]!
    const first = nextStream
    nextStream = (nextStream + 1) % count
    let best = writers[first]!
    let bestLoad = best.pendingBytes + best.connection.queuedBytes()
    for (let k = 1; k < count && bestLoad > 0; k++) {
      const writer = writers[(first + k) % count]!
      const load = writer.pendingBytes + writer.connection.queuedBytes()
      if (load < bestLoad) {
        best = writer
        bestLoad = load
      }
    }
    return best
  }

  /** Appends one frame to a stream and writes it now or later according to urgency and buffering. */
  const sendFrame = (
    dev: number,
    id: number,
    payload: Uint8Array,
    sendOptions: SendOptions | undefined
  ): Effect.Effect<void, ProtocolError.ProtocolError> => {
    if (ended !== undefined) return Effect.fail(ended)
    const urgent = sendOptions?.urgent === true
    const tail = sendOptions?.tail
    const length = payload.length + (tail?.length ?? 0)
    if (length === 0) return Effect.fail(badArgument("a frame needs a non-empty payload (the command byte)"))
    if (length > maxFrameLength) {
      return Effect.fail(badArgument(`payload of ${length} bytes exceeds the frame cap of ${maxFrameLength}`))
    }
    const device = deviceOf(dev)
    if (device instanceof ProtocolError.ProtocolError) return Effect.fail(device)
    if (!device.announced) announce(dev, device)
    const writer = pickWriter()
    writer.append(dev, id, payload, tail)
    counters.packetsSent++
    counters.bytesSent += SiloFrame.HEADER_SIZE + length
    if (urgent) {
      counters.urgentPacketsSent++
      counters.urgentBytesSent += SiloFrame.HEADER_SIZE + length
    }
    // Write now, and wait until the transport accepted it, when asked to, when enough is pending, or when a
    // write is already under way (back-pressure). Otherwise return at once and write at the end of this task,
    // together with the other frames of the same burst, or, when buffering, after the delay.
    if (
      urgent || writer.writing || writer.pendingBytes >= (buffering === undefined ? COALESCE_BYTES : maxBufferBytes)
    ) {
      return writer.flush
    }
    if (buffering === undefined) writer.flushSoon()
    else writer.flushAfter(bufferDelay)
    return Effect.void
  }

  // Request timeouts: one sweeper fiber, asleep until the earliest deadline, fails the requests whose time
  // is up. A timer fiber per request (`Effect.timeout`) costs a fork and an interruption per frame.
  let sweeper: Fiber.Fiber<void> | undefined
  let sweepAt = Number.POSITIVE_INFINITY

  const sweep = Effect.suspend(() => {
    sweeper = undefined
    sweepAt = Number.POSITIVE_INFINITY
    const now = clock.currentTimeMillisUnsafe()
    let next = Number.POSITIVE_INFINITY
    for (const [dev, device] of devices) {
      for (const [id, waiter] of device.pending) {
        if (waiter.deadline <= now) {
          device.pending.delete(id)
          Deferred.doneUnsafe(waiter.response, Exit.fail(ProtocolError.responseTimeout(dev, id, waiter.millis)))
        } else if (waiter.deadline < next) {
          next = waiter.deadline
        }
      }
    }
    if (next !== Number.POSITIVE_INFINITY) sweepBy(next)
    return Effect.void
  })

  /** Makes sure the sweeper wakes by `deadline`. */
  const sweepBy = (deadline: number): void => {
    if (deadline >= sweepAt || ended !== undefined) return
    sweeper?.interruptUnsafe()
    sweepAt = deadline
    sweeper = runFork(Effect.andThen(Effect.sleep(Math.max(0, deadline - clock.currentTimeMillisUnsafe())), sweep))
  }

  /** The next request id, skipping 0 and any id still awaiting a response on this device. */
  const allocateId = (device: Device): number => {
    let id: number
    do {
      id = nextId
      nextId = nextId === 0xffff_ffff ? 1 : nextId + 1
    } while (device.pending.has(id))
    return id
  }

  const send: PacketConnection["send"] = (dev, id, payload, sendOptions) =>
    Effect.suspend(() => {
      if (id !== 0) return Effect.as(sendFrame(dev, id, payload, sendOptions), id)
      const device = deviceOf(dev)
      if (device instanceof ProtocolError.ProtocolError) return Effect.fail(device)
      const fresh = allocateId(device)
      return Effect.as(sendFrame(dev, fresh, payload, sendOptions), fresh)
    })

  const respond: PacketConnection["respond"] = (dev, id, payload, sendOptions) =>
    Effect.suspend(() => sendFrame(dev, id, payload, sendOptions))

  const request: PacketConnection["request"] = (dev, payload, requestOptions) =>
    Effect.suspend(() => {
      if (ended !== undefined) return Effect.fail(ended)
      const device = deviceOf(dev)
      if (device instanceof ProtocolError.ProtocolError) return Effect.fail(device)
      const id = allocateId(device)
      const millis = requestOptions?.timeout === undefined ? requestMillis : Duration.toMillis(requestOptions.timeout)
      const waiter: Waiter = {
        response: Deferred.makeUnsafe(),
        deadline: clock.currentTimeMillisUnsafe() + millis,
        millis
      }
      // Registered before the frame leaves, so a response can never beat its waiter.
      device.pending.set(id, waiter)
      counters.waitingForId++
      sweepBy(waiter.deadline)
      return Effect.onExit(
        Effect.andThen(sendFrame(dev, id, payload, requestOptions), Deferred.await(waiter.response)),
        () =>
          Effect.sync(() => {
            counters.waitingForId--
            if (device.pending.get(id) === waiter) device.pending.delete(id)
          })
      )
    })

  /** The mailbox of requests for (dev, command), or why there is none. */
  const requestsOf = (
    dev: number,
    command: number
  ): Mailbox<Request, ProtocolError.ProtocolError> | ProtocolError.ProtocolError => {
    if (isResponse(command)) {
      return badArgument(`command 0x${command.toString(16)} is a response: use request to get it`)
    }
    const device = deviceOf(dev)
    return device instanceof ProtocolError.ProtocolError ? device : mailboxOf(device, command)
  }

  const waitForCommand: PacketConnection["waitForCommand"] = (dev, command, waitOptions) =>
    Effect.suspend(() => {
      const mailbox = requestsOf(dev, command)
      if (mailbox instanceof ProtocolError.ProtocolError) return Effect.fail(mailbox)
      const timeout = waitOptions?.timeout
      return timeout === undefined ? mailbox.take : Effect.timeoutOrElse(mailbox.take, {
        duration: timeout,
        orElse: () => Effect.fail(ProtocolError.commandTimeout(dev, command, Duration.toMillis(timeout)))
      })
    })

  const pollCommand: PacketConnection["pollCommand"] = (dev, command) =>
    Effect.suspend(() => {
      const mailbox = requestsOf(dev, command)
      return mailbox instanceof ProtocolError.ProtocolError ? Effect.fail(mailbox) : Effect.succeed(mailbox.poll())
    })

  const flush: Effect.Effect<void, ProtocolError.ProtocolError> = Effect.suspend(() =>
    ended !== undefined ? Effect.fail(ended) : Effect.forEach(writers, (writer) => writer.flush, { discard: true })
  )

  // --- receiving -------------------------------------------------------------------------------------------

  const mailboxOf = (device: Device, command: number): Mailbox<Request, ProtocolError.ProtocolError> => {
    let mailbox = device.mailboxes.get(command)
    if (mailbox === undefined) {
      mailbox = new Mailbox(mailboxCapacity, mailboxBytes, requestSize)
      if (ended !== undefined) mailbox.fail(ended)
      device.mailboxes.set(command, mailbox)
    }
    return mailbox
  }

  /** Routes one well-formed frame; the only error is a device over the limit. */
  const dispatch = (frame: SiloFrame.Frame): ProtocolError.ProtocolError | undefined => {
    const { dev, id } = frame
    // A small payload is copied out of the (up to 4 MiB) read buffer it is a view of, so a few small
    // requests waiting in a mailbox cannot keep many big buffers alive.
    const payload = frame.payload.length <= COPY_BELOW ? frame.payload.slice() : frame.payload
    counters.packetsReceived++
    counters.bytesReceived += SiloFrame.HEADER_SIZE + payload.length
    const device = deviceOf(dev)
    if (device instanceof ProtocolError.ProtocolError) return device
    if (!device.announced) announce(dev, device)
    const command = payload[0]!
    if (isResponse(command)) {
      const waiter = device.pending.get(id)
      if (waiter === undefined) {
        counters.unmatchedResponses++
      } else {
        device.pending.delete(id)
        Deferred.doneUnsafe(waiter.response, Exit.succeed(payload))
      }
    } else if (!mailboxOf(device, command).offer({ dev, id, payload })) {
      counters.droppedRequests++
    }
    return undefined
  }

  /** Parses and routes one batch of chunks; frames after a bad one are never routed. */
  const deliver = (
    stream: number,
    parser: FrameReader,
    batch: Arr.NonEmptyReadonlyArray<Uint8Array>
  ): ProtocolError.ProtocolError | undefined => {
    for (const chunk of batch) {
      const parsed = parser.push(chunk)
      if (Result.isFailure(parsed)) return malformed(stream, parsed.failure)
      const frames = parsed.success
      for (let i = 0; i < frames.length; i++) {
        if (ended !== undefined) return ended
        const error = dispatch(frames[i]!)
        if (error !== undefined) return error
      }
    }
    // The parser reports an error found after the last good frame on the next push; ask for it now.
    const rest = parser.push(EMPTY)
    return Result.isFailure(rest) ? malformed(stream, rest.failure) : undefined
  }

  const readLoop = Effect.fnUntraced(function*(index: number) {
    const stream = streams[index]!
    const parser = new FrameReader({ maxFrameLength })
    const next = Pull.catchDone(stream.read, () => Effect.succeed(undefined))
    while (true) {
      const batch = yield* next
      if (batch === undefined) break
      const error = deliver(index, parser, batch)
      if (error !== undefined) return yield* shutdown(error, false)
    }
    const atEnd = parser.end()
    if (Result.isFailure(atEnd)) return yield* shutdown(malformed(index, atEnd.failure), false)
    // The connection ends cleanly once the peer has ended every stream (later frames may still be in
    // flight on the others).
    if (++streamsAtEnd === streams.length) {
      yield* shutdown(ProtocolError.make(new ProtocolError.Closed({ detail: "the peer ended every stream" })), true)
    }
  }, (effect) => Effect.catch(effect, (error) => shutdown(transportFailed(error), false)))

  const close: Effect.Effect<void> = Effect.suspend(() => {
    if (ended !== undefined) return Effect.void
    const graceful = Effect.andThen(
      flush,
      Effect.forEach(streams, (stream) => Effect.ignore(stream.end), { discard: true, concurrency: "unbounded" })
    )
    return Effect.andThen(
      Effect.ignore(Effect.timeoutOption(graceful, requestTimeout)),
      shutdown(ProtocolError.make(new ProtocolError.Closed({ detail: "closed on this side" })), true)
    )
  })

  const connection: PacketConnection = {
    streams: streams.length,
    send,
    request,
    respond,
    waitForCommand,
    pollCommand,
    flush,
    close,
    await: Deferred.await(done),
    metrics: () => {
      let writes = 0
      let writeErrors = 0
      let activePacketsSending = 0
      for (const writer of writers) {
        writes += writer.writes
        writeErrors += writer.writeErrors
        activePacketsSending += writer.activeFrames
      }
      return { ...counters, writes, writeErrors, activePacketsSending }
    }
  }

  for (let index = 0; index < streams.length; index++) runFork(readLoop(index))
  return connection
})
