/**
 * A `Transport.Listener` over a `node:net` server (TCP or Unix) and the dial that goes with it.
 *
 * Accepted sockets wait in a bounded queue until `accept` takes them; a socket that arrives when the queue is
 * full is destroyed at once (the peer sees a reset), so a flood of connections cannot grow memory.
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Net from "node:net"
import type * as Address from "../Address.ts"
import type { Connection, DialOptions, Listener, ListenOptions } from "../Transport.ts"
import * as TransportError from "../TransportError.ts"
import * as defaults from "./defaults.ts"
import * as NetConnection from "./netConnection.ts"
import * as ReadRegions from "./readRegions.ts"

const DEFAULT_DIAL_TIMEOUT = Duration.seconds(10)

/**
 * How a socket family names its endpoints.
 */
export interface Family<A extends Address.Address> {
  /** The options `net.connect` and `server.listen` take for the address. */
  readonly endpoint: (address: A) => Net.NetConnectOpts & Net.ListenOptions
  /** The address a listening server is actually bound to. */
  readonly bound: (server: Net.Server, requested: A) => A
  /** Display names of a socket's two ends; `address` is the one dialled or listened on. */
  readonly names: (
    socket: Net.Socket,
    address: A,
    side: "dial" | "accept"
  ) => { readonly remote: string; readonly local: string }
  readonly format: (address: A) => string
}

/**
 * Connects; an interrupted or timed-out connect destroys its socket, a connected one is destroyed with the scope.
 */
export const dial = <A extends Address.Address>(
  family: Family<A>,
  address: A,
  options: DialOptions
): Effect.Effect<Connection, TransportError.TransportError, Scope.Scope> => {
  const name = family.format(address)
  const timeout = options.timeout ?? DEFAULT_DIAL_TIMEOUT
  const regions = new ReadRegions.ReadRegions()
  const connect = Effect.callback<Net.Socket, TransportError.TransportError>((resume) => {
    const socket = Net.connect({
      ...family.endpoint(address),
      allowHalfOpen: true,
      noDelay: true,
      ...(ReadRegions.supported ? { onread: regions.onread } : {})
    })
    const onError = (cause: Error) =>
      resume(Effect.fail(TransportError.make(name, new TransportError.ConnectFailed({ cause }))))
    socket.once("error", onError)
    socket.once("connect", () => {
      socket.off("error", onError)
      resume(Effect.succeed(socket))
    })
    return Effect.sync(() => socket.destroy())
  }).pipe(
    Effect.timeoutOrElse({
      duration: timeout,
      orElse: () =>
        Effect.fail(
          TransportError.make(
            name,
            new TransportError.ConnectFailed({
              cause: new Error(`timed out after ${Duration.format(Duration.fromInputUnsafe(timeout))}`)
            })
          )
        )
    })
  )
  // The socket is wrapped (and its destroy registered) without a gap in which an interruption could leak it.
  return Effect.uninterruptibleMask((restore) =>
    Effect.flatMap(restore(connect), (socket) => {
      const names = family.names(socket, address, "dial")
      return NetConnection.make(
        socket,
        names.remote,
        names.local,
        options.readBuffer ?? defaults.READ_BUFFER,
        ReadRegions.isActive(socket, regions) ? regions : undefined,
        options.readWake ?? "turn"
      )
    })
  )
}

/**
 * Binds a server; closing the scope closes it and destroys every socket still waiting to be accepted.
 */
export const listen = <A extends Address.Address>(
  family: Family<A>,
  address: A,
  options: ListenOptions
): Effect.Effect<Listener, TransportError.TransportError, Scope.Scope> =>
  Effect.gen(function*() {
    const name = family.format(address)
    const readBuffer = options.readBuffer ?? defaults.READ_BUFFER
    const pending = yield* Queue.bounded<Net.Socket, TransportError.TransportError>(options.backlog ?? defaults.BACKLOG)
    const server = yield* Effect.acquireRelease(
      Effect.callback<Net.Server, TransportError.TransportError>((resume) => {
        // Paused on connect: an accepted socket reads nothing until `accept` wraps it.
        const created = Net.createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true })
        const onError = (cause: Error) => {
          created.close()
          resume(Effect.fail(TransportError.make(name, new TransportError.ListenFailed({ cause }))))
        }
        created.once("error", onError)
        created.listen({ ...family.endpoint(address), backlog: options.backlog ?? defaults.BACKLOG }, () => {
          created.off("error", onError)
          resume(Effect.succeed(created))
        })
      }),
      (bound) =>
        Effect.sync(() => {
          bound.close()
          for (let taken = Queue.takeUnsafe(pending); taken !== undefined; taken = Queue.takeUnsafe(pending)) {
            if (Exit.isSuccess(taken)) taken.value.destroy()
            else break
          }
          Queue.failCauseUnsafe(pending, Cause.fail(TransportError.make(name, new TransportError.Closed())))
        })
    )
    server.on("connection", (socket: Net.Socket) => {
      // Until `accept` wraps it, a reset from the peer must not become an unhandled 'error' event.
      socket.on("error", () => {})
      if (!Queue.offerUnsafe(pending, socket)) socket.destroy()
    })
    // Errors after binding (e.g. EMFILE on accept) are per-connection and leave the listener usable.
    server.on("error", () => {})
    const bound = family.bound(server, address)
    const accept: Effect.Effect<Connection, TransportError.TransportError, Scope.Scope> = Effect.uninterruptibleMask(
      (restore) =>
        Effect.flatMap(restore(Queue.take(pending)), (socket) => {
          const names = family.names(socket, bound, "accept")
          return NetConnection.make(
            socket,
            names.remote,
            names.local,
            readBuffer,
            ReadRegions.install(socket),
            options.readWake ?? "turn"
          )
        })
    )
    return { address: bound, accept } satisfies Listener
  })
