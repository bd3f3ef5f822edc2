/**
 * Peers: a `LocalPeer` is one running instance of a registered peer service (a random PeerID, its service
 * function on its own fiber); a `RemotePeer` is the local view of an instance on the other side of a connection.
 * The same service function runs on a listening or a dialling host: which side dialled is invisible to it.
 *
 * A service function receives its local peer and the Stream of circuits that remote peers open to it. When the
 * function returns (or fails), the peer closes: its circuits close (and tell their remote sides), and the remote
 * peers it talked to are told it shut down. Closing the peer interrupts the function.
 *
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type * as Circuit from "./Circuit.ts"
import type * as CircuitError from "./CircuitError.ts"

/**
 * The local view of a peer on the other side of a circuit.
 *
 * @since 0.1.0
 * @category models
 */
export interface RemotePeer {
  /** Its PeerID; empty until the remote host confirmed a circuit opened to a service rather than an ID. */
  readonly peerId: string
  readonly peerName: string
  readonly service: string
  readonly serviceVersion: string
  /** Its URL as it announced it (or as reached). */
  readonly url: string
}

/**
 * Options for starting a circuit together with the remote peer it goes to.
 *
 * @since 0.1.0
 * @category models
 */
export interface StartRemoteOptions extends Circuit.OpenOptions {
  /** The remote service's version string, carried for the remote's information. */
  readonly serviceVersion?: string | undefined
  /** Reuse the single running instance of the service if there is one (start one if none); default false. */
  readonly preferExisting?: boolean | undefined
}

/**
 * A running instance of a peer service.
 *
 * @since 0.1.0
 * @category models
 */
export interface LocalPeer {
  readonly id: string
  readonly name: string
  readonly service: string
  readonly serviceVersion: string
  /** `<host address>/<service>/<peerId>`. */
  readonly url: string
  /** Circuits remote peers opened to this one, as they arrive. */
  readonly circuits: Stream.Stream<Circuit.Circuit>
  /** Opens a circuit to a peer URL; an empty peerId in it starts a new remote instance. */
  readonly openCircuit: (
    peerUrl: string,
    options?: Circuit.OpenOptions
  ) => Effect.Effect<Circuit.Circuit, CircuitError.CircuitError>
  /**
   * Starts (or with `preferExisting` finds) an instance of `service` on the host at `address` and opens a circuit
   * to it in one round trip; the circuit knows the remote PeerID once the confirmation arrived.
   */
  readonly startRemotePeerAndGetCircuit: (
    service: string,
    address: string,
    options?: StartRemoteOptions
  ) => Effect.Effect<Circuit.Circuit, CircuitError.CircuitError>
  /** Circuits of this peer that are open now (0 once it is closed). */
  readonly openCircuitCount: () => number
  /** Closes the peer, its circuits and its service function; idempotent. */
  readonly close: (reason?: string) => Effect.Effect<void>
  readonly isClosed: () => boolean
  /** Waits until the peer is closed. */
  readonly closed: Effect.Effect<void>
}

/**
 * A peer service: what a local peer runs. It lives in the peer's scope.
 *
 * @since 0.1.0
 * @category models
 */
export type PeerServiceFunc = (
  peer: LocalPeer,
  circuits: Stream.Stream<Circuit.Circuit>
) => Effect.Effect<unknown, unknown, Scope.Scope>
