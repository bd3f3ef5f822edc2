/**
 * A link over a TCP or Unix stream, for tiles in separate processes. Each packet is framed as one length
 * byte (1..255) then the packet; a zero length byte is a framing error. The stream stands for the cable: it
 * is up while connected, and a broken stream or a framing error is the link going down (cause `'F'`), after
 * which this link stays down and the dialler makes a new one.
 *
 * The dialling side opens with a hello frame, the non-standard packet `"HT2L"` + its dir8 for the cable, so
 * the accepting side knows which of its neighbours the connection is (the opposite direction). Only one
 * side of a cable dials.
 *
 * `send` queues frames up to `bufferSize` bytes (default 1 KiB, as the PRU ring) and drops beyond; a writer
 * fiber hands queued frames to the socket in batches and reports `drain` as they leave.
 *
 * @since 0.1.0
 */
import type * as T2Direction from "@tessera/codec/T2Direction"
import type * as Address from "@tessera/protocol/Address"
import * as Transport from "@tessera/protocol/Transport"
import * as TransportError from "@tessera/protocol/TransportError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Pull from "effect/Pull"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Link from "./Link.ts"

/**
 * Default transmit buffer.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultBufferSize = 1024

const HELLO = [0x48, 0x54, 0x32, 0x4c] // "HT2L"

/**
 * The hello frame a dialler sends for a cable leaving it toward `dir`.
 *
 * @since 0.1.0
 * @category encoding
 */
export const hello = (dir: T2Direction.Dir8): Uint8Array => new Uint8Array([5, ...HELLO, dir])

const isHello = (packet: Uint8Array): T2Direction.Dir8 | undefined =>
  packet.length === 5 && HELLO.every((b, i) => packet[i] === b) && packet[4]! <= 7
    ? packet[4] as T2Direction.Dir8
    : undefined

/** Splits a byte stream into frames; reports a zero length as an error. */
class Deframer {
  private partial: Uint8Array | undefined
  private filled = 0

  /**
   * Consumes `chunk`, handing out complete frames; false on a zero length. With `one`, stops after the first
   * frame and returns the unread rest of the chunk instead.
   */
  push(chunk: Uint8Array, out: (packet: Uint8Array) => void, one = false): boolean | Uint8Array {
    let i = 0
    while (i < chunk.length) {
      if (this.partial === undefined) {
        const len = chunk[i++]!
        if (len === 0) return false
        this.partial = new Uint8Array(len)
        this.filled = 0
        continue
      }
      const n = Math.min(this.partial.length - this.filled, chunk.length - i)
      this.partial.set(chunk.subarray(i, i + n), this.filled)
      this.filled += n
      i += n
      if (this.filled === this.partial.length) {
        const packet = this.partial
        this.partial = undefined
        out(packet)
        if (one) return chunk.subarray(i)
      }
    }
    return true
  }
}

/**
 * A link over a connected stream, alive in the current scope (closing it closes the connection).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  connection: Transport.Connection,
  options: { readonly bufferSize?: number | undefined } = {}
): Effect.Effect<Link.Link, never, Scope.Scope> => open(connection, options, new Deframer())

const open = (
  connection: Transport.Connection,
  options: { readonly bufferSize?: number | undefined },
  deframer: Deframer,
  rest: ReadonlyArray<Uint8Array> = []
): Effect.Effect<Link.Link, never, Scope.Scope> =>
  Effect.gen(function*() {
    const bufferSize = options.bufferSize ?? defaultBufferSize
    const stats = Link.emptyStats()
    const outbound = yield* Queue.unbounded<Uint8Array>()
    let handler: Link.Handler | undefined
    let up = true
    let queued = 0
    // Packets that arrive before a handler is attached wait here.
    const early: Array<Uint8Array> = []
    const down = Effect.suspend(() => {
      if (!up) return Effect.void
      up = false
      queued = 0
      handler?.status(false, "frame_error")
      return connection.close
    })
    const receive = (packet: Uint8Array) => {
      stats.packetsReceived++
      stats.bytesReceived += packet.length
      if (handler === undefined) early.push(packet)
      else handler.packet(packet)
    }
    const link: Link.Link = {
      isUp: () => up,
      room: () => (up ? Math.max(0, bufferSize - queued) : 0),
      send: (bytes) => {
        if (!Link.isValidLength(bytes.length)) return "invalid"
        if (!up) return "down"
        if (queued + bytes.length + 1 > bufferSize) {
          stats.overflows++
          return "dropped"
        }
        const frame = new Uint8Array(bytes.length + 1)
        frame[0] = bytes.length
        frame.set(bytes, 1)
        queued += frame.length
        stats.packetsSent++
        stats.bytesSent += bytes.length
        Queue.offerUnsafe(outbound, frame)
        return "queued"
      },
      attach: (h) => {
        handler = h
        if (up) h.status(true, "unspecified")
        for (const p of early.splice(0)) h.packet(p)
      },
      stats
    }
    const reader = Effect.gen(function*() {
      for (const chunk of rest) {
        if (deframer.push(chunk, receive) === false) return
      }
      const next = Pull.catchDone(connection.read, () => Effect.succeed(undefined))
      while (true) {
        const batch = yield* next
        if (batch === undefined) return
        for (const chunk of batch) {
          if (deframer.push(chunk, receive) === false) return
        }
      }
    })
    const writer = Effect.gen(function*() {
      while (true) {
        const frames = yield* Queue.takeAll(outbound)
        yield* connection.write(frames)
        if (!up) return
        for (const f of frames) queued -= f.length
        queued = Math.max(0, queued)
        handler?.drain()
      }
    })
    yield* reader.pipe(Effect.ignore, Effect.andThen(down), Effect.forkScoped)
    yield* writer.pipe(Effect.ignore, Effect.andThen(down), Effect.forkScoped)
    yield* Effect.addFinalizer(() => Effect.sync(() => (up = false)).pipe(Effect.andThen(connection.close)))
    return link
  })

/**
 * Dials `address` and opens a link for the cable leaving this tile toward `dir` (sends the hello).
 *
 * @since 0.1.0
 * @category constructors
 */
export const dial = (
  address: Address.Address | string,
  dir: T2Direction.Dir8,
  options: { readonly bufferSize?: number | undefined; readonly timeout?: Duration.Input | undefined } = {}
): Effect.Effect<Link.Link, TransportError.TransportError | Address.AddressError, Transport.Transport | Scope.Scope> =>
  Effect.gen(function*() {
    const connection = yield* Transport.dial(address, { timeout: options.timeout ?? Duration.seconds(5) })
    yield* connection.write([hello(dir)])
    return yield* make(connection, { bufferSize: options.bufferSize })
  })

/**
 * Reads the hello of an accepted connection (within `timeout`) and opens the link; `dir` is the direction the
 * dialler named, so this tile's side is its opposite. Fails with `Io` on a missing or malformed hello.
 *
 * @since 0.1.0
 * @category constructors
 */
export const accept = (
  connection: Transport.Connection,
  options: { readonly bufferSize?: number | undefined; readonly timeout?: Duration.Input | undefined } = {}
): Effect.Effect<
  { readonly dir: T2Direction.Dir8; readonly link: Link.Link },
  TransportError.TransportError,
  Scope.Scope
> =>
  Effect.gen(function*() {
    const deframer = new Deframer()
    const frames: Array<Uint8Array> = []
    const rest: Array<Uint8Array> = []
    const malformed = TransportError.make(
      connection.remoteAddress,
      new TransportError.Io({ operation: "read", cause: new Error("the peer did not open with a tile link hello") })
    )
    const next = Pull.catchDone(connection.read, () => Effect.succeed(undefined))
    while (frames.length === 0) {
      const batch = yield* next.pipe(
        Effect.timeoutOrElse({
          duration: options.timeout ?? Duration.seconds(5),
          orElse: () => Effect.succeed(undefined)
        })
      )
      if (batch === undefined) return yield* malformed
      for (const chunk of batch) {
        if (frames.length > 0) {
          rest.push(chunk)
          continue
        }
        const left = deframer.push(chunk, (p) => frames.push(p), true)
        if (left === false) return yield* malformed
        if (left instanceof Uint8Array && left.length > 0) rest.push(left)
      }
    }
    const dir = isHello(frames[0]!)
    if (dir === undefined) return yield* malformed
    // The deframer may hold the start of the next frame.
    const link = yield* open(connection, { bufferSize: options.bufferSize }, deframer, rest)
    return { dir, link }
  })
