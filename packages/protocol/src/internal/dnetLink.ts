/**
 * The requesting side of one dnet connection (§3.3): requests get fresh transaction numbers, replies are
 * matched to them by `trans & ~REPLY`, every reply with MORE is kept and the first without MORE completes the
 * request. A reply for an unknown transaction is dropped. When the connection breaks, the peer sends something
 * that is not dnet, or the scope closes, every pending request fails and later ones fail at once.
 *
 * Big replies are received into buffers of a pool (see `dnetWire.makeReader`). `request` hands the replies over
 * for good (their buffers are not reused); `borrow` lends them to a function and reuses their buffers after it
 * returns, which is what lets a client read big objects again and again without fresh memory.
 */
import { CmdFlags, TRANS_REPLY } from "@tessera/codec/DnetConstants"
import type * as DnetPacket from "@tessera/codec/DnetPacket"
import { name as commandName } from "@tessera/codec/DnetPacket"
import * as Deferred from "effect/Deferred"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Pull from "effect/Pull"
import * as Result from "effect/Result"
import type * as Scope from "effect/Scope"
import * as DnetError from "../DnetError.ts"
import * as Transport from "../Transport.ts"
import { type BufferPool, encodeParts, makeReader } from "./dnetWire.ts"

/** A request before it is numbered: everything but the transaction. */
export type Outgoing = Omit<DnetPacket.Packet, "trans">

/** How a request is sent and awaited. */
export interface RequestOptions {
  /** How long to wait for the final reply, in milliseconds. */
  readonly timeoutMillis: number
}

/** One connection to a node. */
export interface Link {
  readonly address: string
  /** Sends a request and returns every reply to it, the final one last. */
  readonly request: (
    packet: Outgoing,
    options: RequestOptions
  ) => Effect.Effect<ReadonlyArray<DnetPacket.Packet>, DnetError.DnetError>
  /**
   * Sends a request and passes every reply to it to `use`; the replies' bytes are valid only until `use`
   * returns.
   */
  readonly borrow: <A>(
    packet: Outgoing,
    options: RequestOptions,
    use: (replies: ReadonlyArray<DnetPacket.Packet>) => A
  ) => Effect.Effect<A, DnetError.DnetError>
  /** Sends a packet that gets no reply (JOIN): it carries transaction 0. */
  readonly send: (packet: Outgoing) => Effect.Effect<void, DnetError.DnetError>
  /** Whether the connection still works. */
  readonly isOpen: () => boolean
  /** Completes when the connection has ended, for whatever reason. */
  readonly closed: Effect.Effect<void>
  /** Ends the connection; pending requests fail. */
  readonly close: Effect.Effect<void>
}

/**
 * A request waiting for its replies. The outcome is kept until the requester waits for it: a reply can beat the
 * end of a long write. One sweep timer per connection times requests out (a timer, let alone a fiber, per
 * request costs more than the request).
 */
interface Pending {
  readonly replies: Array<DnetPacket.Packet>
  /** Give the replies' buffers back for reuse. */
  readonly releases: Array<() => void>
  readonly deadline: number
  readonly timeout: () => DnetError.DnetError
  outcome: Exit.Exit<Pending, DnetError.DnetError> | undefined
  resume: ((exit: Exit.Exit<Pending, DnetError.DnetError>) => void) | undefined
}

/** How often a connection with requests in flight looks for ones past their deadline. */
const SWEEP_MILLIS = 100

const settle = (entry: Pending, exit: Exit.Exit<Pending, DnetError.DnetError>): void => {
  if (entry.resume !== undefined) entry.resume(exit)
  else entry.outcome ??= exit
}

/** Wraps a connection; the reader runs in the current scope. Big replies are received into `pool`'s buffers. */
export const make = Effect.fnUntraced(function*(
  connection: Transport.Connection,
  address: string,
  maxPacketSize: number,
  pool: BufferPool
): Effect.fn.Return<Link, never, Scope.Scope> {
  const pending = new Map<bigint, Pending>()
  const ended = Deferred.makeUnsafe<void>()
  let failure: DnetError.DnetError | undefined
  let nextTrans = 1n

  let sweeper: ReturnType<typeof setInterval> | undefined
  const sweep = () => {
    const now = Date.now()
    for (const [trans, entry] of pending) {
      if (entry.deadline > now) continue
      pending.delete(trans)
      settle(entry, Exit.fail(entry.timeout()))
    }
    if (pending.size === 0) {
      clearInterval(sweeper)
      sweeper = undefined
    }
  }

  const shutdown = (error: DnetError.DnetError): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (failure !== undefined) return Effect.void
      failure = error
      clearInterval(sweeper)
      sweeper = undefined
      for (const entry of pending.values()) settle(entry, Exit.fail(error))
      pending.clear()
      Deferred.doneUnsafe(ended, Exit.void)
      return connection.close
    })

  const unreachable = (detail: string) => DnetError.make(new DnetError.Unreachable({ node: address, detail }))

  const deliver = (packet: DnetPacket.Packet, release: () => void): void => {
    const entry = (packet.trans & TRANS_REPLY) === 0n
      ? undefined // requests are not served on a requesting connection
      : pending.get(packet.trans & ~TRANS_REPLY)
    if (entry === undefined) return release()
    const trans = packet.trans & ~TRANS_REPLY
    entry.replies.push(packet)
    entry.releases.push(release)
    if ((packet.flags & CmdFlags.MORE) === 0) {
      pending.delete(trans)
      settle(entry, Exit.succeed(entry))
    }
  }

  const readLoop = Effect.gen(function*() {
    const reader = makeReader(maxPacketSize, pool, connection.receiveInto)
    const next = Pull.catchDone(connection.read, () => Effect.succeed(undefined))
    const badReply = (detail: string) => shutdown(DnetError.make(new DnetError.BadReply({ node: address, detail })))
    while (true) {
      const batch = yield* next
      if (batch === undefined) break
      for (const chunk of batch) {
        const parsed = reader.push(chunk)
        if (Result.isFailure(parsed)) return yield* badReply(parsed.failure.message)
        for (const item of parsed.success) {
          if (item._tag === "Invalid") return yield* badReply(item.reason)
          deliver(item.packet, item.release)
        }
      }
    }
    yield* shutdown(unreachable("the node closed the connection"))
  }).pipe(Effect.catch((error) => shutdown(unreachable(error.message))))

  yield* Effect.addFinalizer(() => shutdown(unreachable("the connection was closed on this side")))
  yield* Effect.forkScoped(readLoop)

  const write = (packet: DnetPacket.Packet) =>
    Effect.catch(connection.write(encodeParts(packet)), (error) => {
      const failed = unreachable(error.message)
      return Effect.andThen(shutdown(failed), Effect.fail(failure ?? failed))
    })

  const exchange = (packet: Outgoing, options: RequestOptions) =>
    Effect.suspend(() => {
      if (failure !== undefined) return Effect.fail(failure)
      const trans = nextTrans++
      const entry: Pending = {
        replies: [],
        releases: [],
        deadline: Date.now() + options.timeoutMillis,
        timeout: () =>
          DnetError.make(
            new DnetError.Timeout({
              node: address,
              command: commandName({ ...packet, trans }),
              millis: options.timeoutMillis
            })
          ),
        outcome: undefined,
        resume: undefined
      }
      // Registered before the packet leaves, so no reply can miss it.
      pending.set(trans, entry)
      sweeper ??= setInterval(sweep, Math.min(SWEEP_MILLIS, options.timeoutMillis))
      const wait = Effect.callback<Pending, DnetError.DnetError>((resume) => {
        if (entry.outcome !== undefined) return resume(entry.outcome)
        entry.resume = resume
        return Effect.sync(() => {
          pending.delete(trans)
        })
      })
      return Effect.andThen(
        Effect.onError(write({ ...packet, trans }), () => Effect.sync(() => pending.delete(trans))),
        wait
      )
    })

  const request: Link["request"] = (packet, options) => Effect.map(exchange(packet, options), (entry) => entry.replies)

  const borrow: Link["borrow"] = (packet, options, use) =>
    Effect.map(exchange(packet, options), (entry) => {
      try {
        return use(entry.replies)
      } finally {
        for (const release of entry.releases) release()
      }
    })

  const send: Link["send"] = (packet) =>
    Effect.suspend(() => failure !== undefined ? Effect.fail(failure) : write({ ...packet, trans: 0n }))

  return {
    address,
    request,
    borrow,
    send,
    isOpen: () => failure === undefined,
    closed: Deferred.await(ended),
    close: shutdown(unreachable("the connection was closed on this side"))
  }
})

/** Dials a node and wraps the connection; dial failures are `Unreachable`. */
export const dial = (
  address: string,
  options: { readonly timeout: Duration.Input; readonly maxPacketSize: number; readonly pool: BufferPool }
): Effect.Effect<Link, DnetError.DnetError, Transport.Transport | Scope.Scope> =>
  // One request at a time is the common use: its caller resumes inside the read that brings the reply.
  Transport.dial(address, { timeout: options.timeout, readWake: "read" }).pipe(
    Effect.mapError((error) => DnetError.make(new DnetError.Unreachable({ node: address, detail: error.message }))),
    Effect.flatMap((connection) => make(connection, address, options.maxPacketSize, options.pool))
  )
