/**
 * A `Transport.Connection` over a `node:net` socket (TCP or Unix), used directly rather than through Effect's
 * socket layer, which costs about half the throughput (stack.md §7.3).
 *
 * Reading: received chunks (big adjacent reads through `ReadRegions` where the runtime allows, else 'data'
 * events; `receiveInto` needs the former) are appended to a batch without copies, and a chunk that continues the previous one in memory is
 * joined to it by a view. When the batch holds `readBuffer` bytes the socket is paused, which stops reads from
 * the kernel, so the peer's sends block. A pull takes the whole batch and resumes the socket. A waiting reader
 * is woken once per turn of the event loop (`setImmediate`), not per read, so it gets everything that arrived
 * in that turn in one pull; or, with `readWake: "read"`, by the read itself (`Transport.ReadWake`).
 *
 * Writing: a batch is corked so Node hands it to the kernel as one writev; `write()`'s return value and
 * 'drain' give the back-pressure.
 */
import type * as Arr from "effect/Array"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import type * as Pull from "effect/Pull"
import type * as Scope from "effect/Scope"
import type * as Net from "node:net"
import type { Connection, ReadWake } from "../Transport.ts"
import * as TransportError from "../TransportError.ts"
import type { ReadRegions } from "./readRegions.ts"

const EMPTY = new Uint8Array(0)

type Resume<A> = (effect: Effect.Effect<A, TransportError.TransportError>) => void
type ReadResume = (effect: Pull.Pull<Arr.NonEmptyReadonlyArray<Uint8Array>, TransportError.TransportError>) => void

/**
 * Resumes every waiter once. The set is emptied first: a resumed fiber may run synchronously, write again and
 * register a new waiter, which must wait for the next event rather than be resumed by this one.
 */
const wakeAll = (waiters: Set<Resume<void>>, result: Effect.Effect<void, TransportError.TransportError>): void => {
  if (waiters.size === 0) return
  const waiting = [...waiters]
  waiters.clear()
  for (const resume of waiting) resume(result)
}

class NetConnection implements Connection {
  readonly read: Pull.Pull<Arr.NonEmptyReadonlyArray<Uint8Array>, TransportError.TransportError>
  readonly end: Effect.Effect<void, TransportError.TransportError>
  readonly close: Effect.Effect<void>
  readonly receiveInto: ((target: Uint8Array, position: number) => void) | undefined
  readonly written: Effect.Effect<void, TransportError.TransportError>

  #chunks: Array<Uint8Array> = []
  #buffered = 0
  #paused = false
  #eof = false
  #failure: TransportError.TransportError | undefined
  #reader: ReadResume | undefined
  #wakePending = false
  #closed = false
  readonly #drainWaiters = new Set<Resume<void>>()
  readonly #endWaiters = new Set<Resume<void>>()
  readonly #waitDrain: Effect.Effect<void, TransportError.TransportError>

  readonly socket: Net.Socket
  readonly remoteAddress: string
  readonly localAddress: string
  readonly #wakeInRead: boolean

  constructor(
    socket: Net.Socket,
    remoteAddress: string,
    localAddress: string,
    readBuffer: number,
    regions: ReadRegions | undefined,
    readWake: ReadWake
  ) {
    this.socket = socket
    this.#wakeInRead = readWake === "read"
    this.remoteAddress = remoteAddress
    this.localAddress = localAddress
    this.read = Effect.suspend(() => this.#pull())
    this.#waitDrain = Effect.callback<void, TransportError.TransportError>((resume) => {
      if (this.#failure !== undefined) return resume(Effect.fail(this.#failure))
      if (!socket.writableNeedDrain) return resume(Effect.void)
      this.#drainWaiters.add(resume)
      return Effect.sync(() => this.#drainWaiters.delete(resume))
    })
    this.end = Effect.callback<void, TransportError.TransportError>((resume) => {
      if (this.#failure !== undefined) return resume(Effect.fail(this.#failure))
      if (socket.writableFinished) return resume(Effect.void)
      this.#endWaiters.add(resume)
      socket.end()
      return Effect.sync(() => this.#endWaiters.delete(resume))
    })
    this.close = Effect.sync(() => this.#destroy())
    // Node counts a chunk in `writableLength` until the OS took all of it; an empty write's callback runs once
    // every earlier chunk is out.
    this.written = Effect.callback<void, TransportError.TransportError>((resume) => {
      if (this.#failure !== undefined) return resume(Effect.fail(this.#failure))
      if (socket.writableLength === 0) return resume(Effect.void)
      socket.write(EMPTY, (error) =>
        resume(
          error === undefined || error === null
            ? Effect.void
            : Effect.fail(this.#failure ?? this.#error(new TransportError.Io({ operation: "write", cause: error })))
        ))
    })

    // After `close` nothing more is delivered (some runtimes still emit buffered data or 'end' on destroy).
    const received = (chunk: Uint8Array) => {
      if (this.#closed) return
      const chunks = this.#chunks
      const last = chunks.length > 0 ? chunks[chunks.length - 1]! : undefined
      if (last !== undefined && last.buffer === chunk.buffer && last.byteOffset + last.length === chunk.byteOffset) {
        chunks[chunks.length - 1] = new Uint8Array(last.buffer, last.byteOffset, last.length + chunk.length)
      } else {
        chunks.push(chunk)
      }
      this.#buffered += chunk.length
      if (this.#buffered >= readBuffer && !this.#paused) {
        this.#paused = true
        socket.pause()
      }
      this.#wakeReader(true)
    }
    if (regions === undefined) socket.on("data", received)
    else regions.attach(received)
    this.receiveInto = regions === undefined ? undefined : (target, position) => regions.receiveInto(target, position)
    socket.on("end", () => {
      if (this.#closed) return
      this.#eof = true
      this.#wakeReader(true)
    })
    socket.on("drain", () => wakeAll(this.#drainWaiters, Effect.void))
    socket.on("finish", () => wakeAll(this.#endWaiters, Effect.void))
    socket.on("error", (cause: Error) => {
      this.#fail(
        new TransportError.Io({ operation: "syscall" in cause && cause.syscall === "read" ? "read" : "write", cause })
      )
    })
    // A close with neither an error nor the peer's end is our own destroy.
    socket.on("close", () => this.#fail(new TransportError.Closed()))
    if (socket.errored) this.#fail(new TransportError.Io({ operation: "read", cause: socket.errored }))
    else if (socket.destroyed) this.#fail(new TransportError.Closed())
    // An accepted socket starts paused (`pauseOnConnect`) so nothing is read before it is wrapped.
    else socket.resume()
  }

  queuedBytes(): number {
    return this.socket.writableLength
  }

  write(chunks: ReadonlyArray<Uint8Array>): Effect.Effect<void, TransportError.TransportError> {
    if (this.#failure !== undefined) return Effect.fail(this.#failure)
    const socket = this.socket
    if (socket.writableEnded) return Effect.fail(this.#error(new TransportError.Closed()))
    let accepted = true
    if (chunks.length === 1) {
      accepted = socket.write(chunks[0]!)
    } else if (chunks.length > 1) {
      socket.cork()
      for (const chunk of chunks) accepted = socket.write(chunk)
      socket.uncork()
    }
    return accepted ? Effect.void : this.#waitDrain
  }

  #pull(): Pull.Pull<Arr.NonEmptyReadonlyArray<Uint8Array>, TransportError.TransportError> {
    if (this.#chunks.length > 0) {
      const batch = this.#chunks as unknown as Arr.NonEmptyReadonlyArray<Uint8Array>
      this.#chunks = []
      this.#buffered = 0
      if (this.#paused && !this.#eof) {
        this.#paused = false
        this.socket.resume()
      }
      return Effect.succeed(batch)
    }
    if (this.#eof) return Cause.done()
    if (this.#failure !== undefined) return Effect.fail(this.#failure)
    return Effect.callback((resume) => {
      this.#reader = resume
      return Effect.sync(() => {
        if (this.#reader === resume) this.#reader = undefined
      })
    })
  }

  /**
   * `inRead`: called from a socket event (outside any fiber), where a `"read"` connection resumes its reader at
   * once. Our own `close` runs inside a fiber and always defers, so the closing fiber finishes first.
   */
  #wakeReader(inRead: boolean): void {
    if (this.#reader === undefined || this.#wakePending) return
    if (inRead && this.#wakeInRead) return this.#wake()
    this.#wakePending = true
    setImmediate(this.#wake)
  }

  readonly #wake = (): void => {
    this.#wakePending = false
    const resume = this.#reader
    if (resume !== undefined) {
      this.#reader = undefined
      resume(this.read)
    }
  }

  #error(reason: TransportError.TransportError["reason"]): TransportError.TransportError {
    return TransportError.make(this.remoteAddress, reason)
  }

  #fail(reason: TransportError.TransportError["reason"], inRead = true): void {
    if (this.#failure !== undefined) return
    const failure = this.#error(reason)
    this.#failure = failure
    this.#wakeReader(inRead)
    wakeAll(this.#drainWaiters, Effect.fail(failure))
    wakeAll(this.#endWaiters, Effect.fail(failure))
  }

  #destroy(): void {
    if (this.#closed) return
    this.#closed = true
    // Unread bytes are dropped and whatever ended the connection before is superseded: after `close`, every
    // operation fails with `Closed`.
    this.#chunks = []
    this.#eof = false
    this.#failure = undefined
    this.#fail(new TransportError.Closed(), false)
    this.socket.destroy()
  }
}

/**
 * Wraps a connected socket, reading through `regions` when they are installed on it; closing the scope
 * destroys it.
 */
export const make = (
  socket: Net.Socket,
  remoteAddress: string,
  localAddress: string,
  readBuffer: number,
  regions: ReadRegions | undefined,
  readWake: ReadWake
): Effect.Effect<Connection, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => new NetConnection(socket, remoteAddress, localAddress, readBuffer, regions, readWake)),
    (connection) => connection.close
  )
