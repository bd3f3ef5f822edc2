/**
 * In-process duplex connections: two one-way pipes, each holding the written arrays by reference (no copies)
 * up to a capacity in bytes. A write that fills a pipe waits until the reader takes the batch, which is the
 * same contract as a socket whose OS buffer is full, so memory stays bounded by the capacity plus one batch.
 *
 * Destroying one end ends the other end's input (it reads what was already written, then the end of the
 * stream) and breaks its output (later writes fail as on a reset TCP connection).
 */
import type * as Arr from "effect/Array"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import type * as Pull from "effect/Pull"
import type * as Scope from "effect/Scope"
import type { Connection } from "../Transport.ts"
import * as TransportError from "../TransportError.ts"

/**
 * One direction of a connection.
 */
export class Pipe {
  chunks: Array<Uint8Array> = []
  bytes = 0
  /** The writer half-closed or was destroyed: the reader sees the end after the chunks. */
  ended = false
  /** The reader was destroyed: writes fail. */
  broken = false
  wakeReader: (() => void) | undefined
  readonly wakeWriters = new Set<() => void>()
  readonly capacity: number
  constructor(capacity: number) {
    this.capacity = capacity
  }

  notifyReader(): void {
    const wake = this.wakeReader
    if (wake !== undefined) {
      this.wakeReader = undefined
      wake()
    }
  }

  notifyWriters(): void {
    if (this.wakeWriters.size === 0) return
    const waiting = [...this.wakeWriters]
    this.wakeWriters.clear()
    for (const wake of waiting) wake()
  }

  /** What a destroyed reader does to the pipe: drop the unread bytes, fail the writer. */
  break(): void {
    this.broken = true
    this.chunks = []
    this.bytes = 0
    this.notifyWriters()
  }

  /** What a destroyed or half-closing writer does to the pipe. */
  end(): void {
    this.ended = true
    this.notifyReader()
  }
}

class PipeConnection implements Connection {
  readonly read: Pull.Pull<Arr.NonEmptyReadonlyArray<Uint8Array>, TransportError.TransportError>
  readonly end: Effect.Effect<void, TransportError.TransportError>
  readonly close: Effect.Effect<void>
  readonly #waitWritable: Effect.Effect<void, TransportError.TransportError>
  readonly inbound: Pipe
  readonly outbound: Pipe
  readonly remoteAddress: string
  readonly localAddress: string
  #closed = false

  constructor(inbound: Pipe, outbound: Pipe, remoteAddress: string, localAddress: string) {
    this.inbound = inbound
    this.outbound = outbound
    this.remoteAddress = remoteAddress
    this.localAddress = localAddress
    this.read = Effect.suspend(() => this.#pull())
    this.#waitWritable = Effect.suspend(() => {
      const failure = this.#writeFailure()
      if (failure !== undefined) return Effect.fail(failure)
      if (outbound.bytes < outbound.capacity) return Effect.void
      return Effect.callback<void, TransportError.TransportError>((resume) => {
        const wake = () => resume(this.#waitWritable)
        outbound.wakeWriters.add(wake)
        return Effect.sync(() => outbound.wakeWriters.delete(wake))
      })
    })
    this.end = Effect.suspend(() => {
      if (this.#closed) return Effect.fail(this.#error(new TransportError.Closed()))
      outbound.end()
      return Effect.void
    })
    this.close = Effect.sync(() => {
      if (this.#closed) return
      this.#closed = true
      inbound.break()
      outbound.end()
      // Wake our own waiters so they see `Closed`.
      inbound.notifyReader()
      outbound.notifyWriters()
    })
  }

  queuedBytes(): number {
    return this.outbound.bytes
  }

  write(chunks: ReadonlyArray<Uint8Array>): Effect.Effect<void, TransportError.TransportError> {
    const failure = this.#writeFailure()
    if (failure !== undefined) return Effect.fail(failure)
    const outbound = this.outbound
    for (const chunk of chunks) {
      if (chunk.length === 0) continue
      outbound.chunks.push(chunk)
      outbound.bytes += chunk.length
    }
    outbound.notifyReader()
    return outbound.bytes < outbound.capacity ? Effect.void : this.#waitWritable
  }

  #writeFailure(): TransportError.TransportError | undefined {
    if (this.#closed || this.outbound.ended) return this.#error(new TransportError.Closed())
    if (this.outbound.broken) {
      return this.#error(new TransportError.Io({ operation: "write", cause: new Error("connection reset by peer") }))
    }
    return undefined
  }

  #pull(): Pull.Pull<Arr.NonEmptyReadonlyArray<Uint8Array>, TransportError.TransportError> {
    if (this.#closed) return Effect.fail(this.#error(new TransportError.Closed()))
    const inbound = this.inbound
    if (inbound.chunks.length > 0) {
      const batch = inbound.chunks as unknown as Arr.NonEmptyReadonlyArray<Uint8Array>
      inbound.chunks = []
      inbound.bytes = 0
      inbound.notifyWriters()
      return Effect.succeed(batch)
    }
    if (inbound.ended) return Cause.done()
    return Effect.callback((resume) => {
      const wake = () => resume(this.read)
      inbound.wakeReader = wake
      return Effect.sync(() => {
        if (inbound.wakeReader === wake) inbound.wakeReader = undefined
      })
    })
  }

  #error(reason: TransportError.TransportError["reason"]): TransportError.TransportError {
    return TransportError.make(this.remoteAddress, reason)
  }
}

/**
 * One end of a pipe pair as a connection; closing the scope destroys it.
 */
export const connect = (
  inbound: Pipe,
  outbound: Pipe,
  remoteAddress: string,
  localAddress: string
): Effect.Effect<Connection, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => new PipeConnection(inbound, outbound, remoteAddress, localAddress)),
    (connection) => connection.close
  )
