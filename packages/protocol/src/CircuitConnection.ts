/**
 * A circuit as a `Transport.Connection`: a byte stream carried in fragments, so code written for a socket (the
 * Silo migration's `PacketConnection`, for one) runs unchanged over a circuit, sharing one connection with any
 * other traffic.
 *
 * Bytes go out as fragments of at most `chunkSize` (1 MiB by default; larger writes are cut into views, not
 * copied) with `fragOp` DATA; `end` sends one fragment with `fragOp` END, after which the other side reads the
 * end of the stream. Flow control and ordering are the circuit's; `queuedBytes` is what `write` took that has
 * not reached the carrying connection yet (waiting for credit or room). Closing the connection closes the
 * circuit.
 * A circuit closed by the other side reads as the end of the stream too (like a socket the peer closed); one
 * that ends otherwise (connection lost, protocol violation, closed here) fails reads with a `TransportError`
 * (`Io` for a lost connection, `Closed` otherwise), and writes after the end fail the same way.
 *
 * `serve` and `dial` set up the two ends through a `PeerService` host: a service whose instances hand their
 * incoming circuits to `accept`, and a local peer that opens circuits to it. `listener` and `dialer` do the same
 * with a host of their own, for programs that only want one circuit connection (`tessera migrate --via-circuit`).
 *
 * @since 0.1.0
 */
import type * as Arr from "effect/Array"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import type * as Pull from "effect/Pull"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as Circuit from "./Circuit.ts"
import type * as CircuitError from "./CircuitError.ts"
import * as PeerService from "./PeerService.ts"
import type * as Transport from "./Transport.ts"
import * as TransportError from "./TransportError.ts"

/**
 * `fragOp` of a fragment carrying stream bytes.
 *
 * @since 0.1.0
 * @category constants
 */
export const DATA = 1

/**
 * `fragOp` of the fragment that ends the stream (half-close).
 *
 * @since 0.1.0
 * @category constants
 */
export const END = 2

/**
 * Options of `make`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Largest payload per fragment; default 1 MiB. */
  readonly chunkSize?: number | undefined
}

const toTransportError = (address: string, error: CircuitError.CircuitError): TransportError.TransportError => {
  const reason = error.reason
  return TransportError.make(
    address,
    reason._tag === "ConnectionLost" || reason._tag === "ProtocolViolation" || reason._tag === "SendTimeout"
      ? new TransportError.Io({ operation: "read", cause: error })
      : new TransportError.Closed()
  )
}

/**
 * Wraps a circuit. The connection does not own a scope of its own: `close` (or closing the circuit) ends it.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (circuit: Circuit.Circuit, options?: Options): Transport.Connection => {
  const chunkSize = Math.max(1, options?.chunkSize ?? 1024 * 1024)
  const remoteAddress = circuit.url
  let ended = false
  const read: Pull.Pull<Arr.NonEmptyReadonlyArray<Uint8Array>, TransportError.TransportError> = Effect.suspend(
    function next(): Pull.Pull<Arr.NonEmptyReadonlyArray<Uint8Array>, TransportError.TransportError> {
      if (ended) return Cause.done()
      return Effect.flatMap(
        Effect.catch(
          circuit.read,
          (error): Pull.Pull<Circuit.Fragment, TransportError.TransportError> => {
            if (error.reason._tag !== "RemoteClose") return Effect.fail(toTransportError(remoteAddress, error))
            // Closed by the other side is the end of its stream, as a socket's orderly close is.
            ended = true
            return Cause.done()
          }
        ),
        (fragment) => {
          if (fragment.fragOp === END) {
            ended = true
            return Cause.done()
          }
          return fragment.payload.length === 0 ? next() : Effect.succeed([fragment.payload] as const)
        }
      )
    }
  )
  const send = (init: Circuit.FragmentInit) =>
    Effect.mapError(circuit.send(init), (error) => toTransportError(remoteAddress, error))
  // Bytes of the writes in progress not handed to the circuit yet; from then on the circuit counts them.
  let unsent = 0
  return {
    remoteAddress,
    localAddress: circuit.localPeer.url,
    read,
    write: (chunks) =>
      Effect.suspend(() => {
        const parts: Array<Uint8Array> = []
        for (const chunk of chunks) {
          if (chunk.length > chunkSize) {
            for (let at = 0; at < chunk.length; at += chunkSize) parts.push(chunk.subarray(at, at + chunkSize))
          } else if (chunk.length > 0) parts.push(chunk)
        }
        if (parts.length === 0) return Effect.void
        for (const part of parts) unsent += part.length
        let handed = 0
        return Effect.ensuring(
          Effect.forEach(parts, (payload) =>
            Effect.suspend(() => {
              handed++
              unsent -= payload.length
              return send({ fragOp: DATA, payload })
            }), { discard: true }),
          // A write that failed or was interrupted part-way takes back what it did not hand over.
          Effect.sync(() => {
            for (; handed < parts.length; handed++) unsent -= parts[handed]!.length
          })
        )
      }),
    queuedBytes: () => unsent + circuit.unwrittenBytes(),
    end: send({ fragOp: END }),
    close: circuit.close()
  }
}

/**
 * Registers `service` on the host so that every circuit opened to an instance of it comes out of the returned
 * `accept`, as a connection closed with the caller's scope. At most `backlog` wait; more are closed at once.
 *
 * @since 0.1.0
 * @category constructors
 */
export const serve = Effect.fn("CircuitConnection.serve")(function*(
  host: PeerService.PeerServiceShape,
  service: string,
  options?: Options & { readonly backlog?: number | undefined }
) {
  const pending = yield* Queue.bounded<Circuit.Circuit>(options?.backlog ?? 16)
  yield* host.register(
    service,
    (_peer, circuits) =>
      Stream.runForEach(
        circuits,
        (circuit) => Queue.offerUnsafe(pending, circuit) ? Effect.void : circuit.close("backlog full")
      )
  )
  const accept: Effect.Effect<Transport.Connection, never, Scope.Scope> = Effect.flatMap(
    Queue.take(pending),
    (circuit) => Effect.acquireRelease(Effect.succeed(make(circuit, options)), (connection) => connection.close)
  )
  return accept
})

/**
 * Opens a circuit to the running instance of `service` on the host at `address` (one is started there if none
 * runs, so redials reach the same instance) from a local peer of `localService` (registered and started here if
 * needed), as a connection closed with the caller's scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const dial = Effect.fn("CircuitConnection.dial")(function*(
  host: PeerService.PeerServiceShape,
  address: string,
  service: string,
  options?: Options & { readonly localService?: string | undefined }
) {
  const localService = options?.localService ?? "circuit-connection"
  if (host.localPeers(localService).length === 0) yield* host.register(localService, () => Effect.never)
  const peer = yield* host.startLocalPeer(localService, { preferExisting: true })
  const circuit = yield* peer.startRemotePeerAndGetCircuit(service, address, { preferExisting: true })
  return yield* Effect.acquireRelease(Effect.succeed(make(circuit, options)), (connection) => connection.close)
})

/**
 * Options of `listener` and `dialer`: the host's security (plaintext by default, as the raw connections they
 * replace).
 *
 * @since 0.1.0
 * @category models
 */
export interface HostOptions extends Options {
  readonly security?: PeerService.Security | undefined
}

/**
 * A host of its own listening on `address`, whose `service` hands out its incoming circuits as connections.
 *
 * @since 0.1.0
 * @category constructors
 */
export const listener = Effect.fn("CircuitConnection.listener")(function*(
  address: string,
  service: string,
  options?: HostOptions
) {
  const host = yield* PeerService.make({ security: options?.security ?? { _tag: "Plaintext" } })
  const accept = yield* serve(host, service, options)
  const bound = yield* host.listen(address)
  return { address: bound, accept }
})

/**
 * A host of its own, and a dial that opens a circuit to `service` at an address and wraps it (each call a new
 * circuit, over the live connection if there is one).
 *
 * @since 0.1.0
 * @category constructors
 */
export const dialer = Effect.fn("CircuitConnection.dialer")(function*(service: string, options?: HostOptions) {
  const host = yield* PeerService.make({ security: options?.security ?? { _tag: "Plaintext" } })
  return (address: string) => dial(host, address, service, options)
})
