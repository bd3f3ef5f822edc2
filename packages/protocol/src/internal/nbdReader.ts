/**
 * Messages of one direction of an NBD connection, one at a time: pulls batches from the transport, pushes each
 * chunk through the phase-aware parser, and hands out what it decoded. A parse failure or a stream that ends
 * inside a message is a `ProtocolViolation`; a clean end of the stream is `undefined`.
 */
import type { Decoded } from "@tessera/codec/DecodeError"
import type * as StreamParser from "@tessera/codec/StreamParser"
import * as Effect from "effect/Effect"
import * as Pull from "effect/Pull"
import * as Result from "effect/Result"
import * as NbdError from "../NbdError.ts"
import type { Connection } from "../Transport.ts"

const EMPTY = new Uint8Array(0)

const violation = (detail: string): NbdError.NbdError => NbdError.make(new NbdError.ProtocolViolation({ detail }))

/** Pulls messages of type `M` from `connection` through `parser`. */
export class NbdReader<M> {
  readonly #parser: StreamParser.StreamParser<M>
  #queue: Array<M> = []
  #head = 0
  #ended = false
  #failure: NbdError.NbdError | undefined
  readonly #pull: Effect.Effect<ReadonlyArray<Uint8Array> | undefined, NbdError.NbdError>

  constructor(connection: Connection, parser: StreamParser.StreamParser<M>) {
    this.#parser = parser
    this.#pull = Effect.mapError(
      Pull.catchDone(connection.read, () => Effect.succeed(undefined)),
      (cause) => NbdError.make(new NbdError.TransportFailed({ cause }))
    )
  }

  /** Messages decoded and not yet taken. */
  get queued(): number {
    return this.#queue.length - this.#head
  }

  /** Adds messages decoded outside `push` (the parser's `resume`) ahead of anything read later. */
  prepend(decoded: Decoded<ReadonlyArray<M>>): NbdError.NbdError | undefined {
    if (Result.isFailure(decoded)) return violation(decoded.failure.message)
    if (decoded.success.length > 0) this.#queue = [...decoded.success, ...this.#queue.slice(this.#head)]
    this.#head = 0
    return undefined
  }

  /** The next message, or `undefined` at a clean end of the stream. */
  readonly next: Effect.Effect<M | undefined, NbdError.NbdError> = Effect.suspend(() => {
    if (this.#head < this.#queue.length) return Effect.succeed(this.#take())
    if (this.#failure !== undefined) return Effect.fail(this.#failure)
    if (this.#ended) return Effect.succeed(undefined)
    return Effect.flatMap(this.#pull, (batch) => {
      if (batch === undefined) {
        this.#ended = true
        const end = this.#parser.end()
        return Result.isFailure(end) ? Effect.fail(violation(end.failure.message)) : Effect.succeed(undefined)
      }
      this.#feed(batch)
      return this.next
    })
  })

  #take(): M {
    const message = this.#queue[this.#head++]!
    if (this.#head === this.#queue.length) {
      this.#queue = []
      this.#head = 0
    }
    return message
  }

  /** Decodes a batch; the messages ahead of a failure are handed out first, then the failure. */
  #feed(batch: ReadonlyArray<Uint8Array>): void {
    for (const chunk of batch) {
      const parsed = this.#parser.push(chunk)
      if (Result.isFailure(parsed)) {
        this.#failure = violation(parsed.failure.message)
        return
      }
      for (const message of parsed.success) this.#queue.push(message)
    }
    // The parser reports a failure found after its last good message on the next push: ask for it now.
    const rest = this.#parser.push(EMPTY)
    if (Result.isFailure(rest)) this.#failure = violation(rest.failure.message)
  }
}
