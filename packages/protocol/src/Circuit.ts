/**
 * A circuit: a persistent, bidirectional, asynchronous stream of fragments between one local peer and one remote
 * peer, identified by a circuit ID. Many circuits share one connection; each has its own flow control, so a slow
 * reader on one circuit never stalls another.
 *
 * - **Reads and errors** are Streams (`reads`, `errors`); an error fragment (one sent with `err` set) arrives on
 *   `errors`, never on `reads`, and there is no ordering between the two. The first read of a circuit opened by
 *   the remote side is its opening fragment, with `kind` = `StartCircuit` (113).
 * - **Ordering**: fragments sent on one circuit from one fiber arrive in send order.
 * - **Sending** is asynchronous: `send` returns once the fragment is queued for the connection, not when the
 *   remote read it. It waits while the circuit has no flow-control credit (the receiver holds a window of unread
 *   bytes, 8 MiB by default) or the connection's send queue is full. With `sendTimeout` set it fails with
 *   `SendTimeout` after that long, and the fragment was not sent; it is never silently dropped.
 * - **Closing** (`close`) is idempotent and tells the remote side, whose circuit ends with `RemoteClose` once the
 *   fragments sent before the close were delivered. Closing the owning peer closes its circuits; losing the
 *   connection ends every circuit on it with `ConnectionLost`. Reads deliver what had arrived, then end (orderly
 *   close) or fail with the reason (connection loss, protocol violation).
 *
 * @since 0.1.0
 */
import * as CircuitFragment from "@tessera/codec/CircuitFragment"
import type * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import type * as Stream from "effect/Stream"
import * as CircuitError from "./CircuitError.ts"
import type * as Peer from "./Peer.ts"

/**
 * A received fragment: every field of the wire frame (`kind` is `Traffic`, `Error`, or `StartCircuit` for the
 * opening one). Its `payload` is a view of received bytes.
 *
 * @since 0.1.0
 * @category models
 */
export type Fragment = CircuitFragment.Fragment

/**
 * What a sender chooses of a fragment; addresses, IDs and service names are filled in from the circuit.
 *
 * @since 0.1.0
 * @category models
 */
export interface FragmentInit {
  readonly subject?: string | undefined
  /** A user opcode (32-bit integer). */
  readonly fragOp?: number | undefined
  /** A user part or sequence number (safe integer). */
  readonly fragPart?: number | undefined
  /** User args; keys must be non-empty and must not start with `#` (the system's namespace). */
  readonly args?: Readonly<Record<string, string>> | undefined
  readonly payload?: Uint8Array | undefined
  /** Non-empty makes this an error fragment, delivered on the remote `errors`. */
  readonly err?: string | undefined
}

/**
 * Options for opening a circuit.
 *
 * @since 0.1.0
 * @category models
 */
export interface OpenOptions {
  /** A human name for the circuit (travels as `#circuitName`). */
  readonly name?: string | undefined
  /** The opening fragment: the remote side's first read. */
  readonly fragment?: FragmentInit | undefined
  /** Free text carried in `#userString`. */
  readonly userString?: string | undefined
  /** Wait for the remote host to confirm (default true); a rejection then fails the open. */
  readonly waitForAck?: boolean | undefined
  /** How long to wait for the confirmation; default 10 seconds. */
  readonly timeout?: number | undefined
}

/**
 * One circuit.
 *
 * @since 0.1.0
 * @category models
 */
export interface Circuit {
  readonly id: string
  readonly name: string
  /** The local peer this circuit belongs to. */
  readonly localPeer: Peer.LocalPeer
  /** The remote peer; its ID may be learnt only from the remote host's confirmation. */
  readonly remote: Peer.RemotePeer
  /** This circuit's URL: the remote peer's URL plus the circuit ID. */
  readonly url: string
  readonly userString: string
  /** Fragments received on this circuit, in order; ends after an orderly close, fails on a broken one. */
  readonly reads: Stream.Stream<Fragment, CircuitError.CircuitError>
  /** Error fragments received on this circuit. */
  readonly errors: Stream.Stream<Fragment, CircuitError.CircuitError>
  /** The next fragment of `reads`; after the end fails with the close reason. */
  readonly read: Effect.Effect<Fragment, CircuitError.CircuitError>
  /** Queues a fragment (see the module notes for the waiting policy). */
  readonly send: (fragment: FragmentInit) => Effect.Effect<void, CircuitError.CircuitError>
  /** Sends an error fragment. */
  readonly sendError: (message: string, fragment?: FragmentInit) => Effect.Effect<void, CircuitError.CircuitError>
  /** Opens another circuit to the same remote peer. */
  readonly newCircuit: (options?: OpenOptions) => Effect.Effect<Circuit, CircuitError.CircuitError>
  /** Closes this circuit here and on the remote side; idempotent. */
  readonly close: (reason?: string) => Effect.Effect<void>
  readonly isClosed: () => boolean
  /**
   * Payload bytes of this circuit's sends not yet written to the connection: waiting for flow-control credit
   * or for room in the connection's send queue, or queued behind other frames. (What the connection's socket
   * holds is shared by its circuits and not counted.)
   */
  readonly unwrittenBytes: () => number
  /** Waits until the circuit ends, and says why. */
  readonly closed: Effect.Effect<CircuitError.CloseReason>
}

const I32 = 0x8000_0000

const bad = (detail: string) => Result.fail(new CircuitError.InvalidArgument({ detail }))

const MAX_TEXT = 16_000
const TOO_LONG = `subject, err and args are limited to ${MAX_TEXT} characters`
const NO_KEYS: ReadonlyArray<string> = []
const tooLong = (text: string | undefined): boolean => text !== undefined && text.length > MAX_TEXT

/**
 * Checks what a user put in a fragment before it is sent: `#` arg keys, number ranges, string sizes, the
 * payload limit.
 *
 * @since 0.1.0
 * @category validation
 */
export const validate = (
  fragment: FragmentInit,
  maxPayload: number
): Result.Result<void, CircuitError.InvalidArgument> => {
  const args = fragment.args
  const keys = args === undefined ? NO_KEYS : Object.keys(args)
  for (const key of keys) {
    if (key === "") return bad("a user arg key must not be empty")
    if (key.startsWith("#")) return bad(`user arg ${JSON.stringify(key)}: keys starting with # are the system's`)
  }
  const { fragOp = 0, fragPart = 0 } = fragment
  if (!Number.isInteger(fragOp) || fragOp < -I32 || fragOp >= I32) return bad("fragOp must be a 32-bit integer")
  if (!Number.isSafeInteger(fragPart)) return bad("fragPart must be a safe integer")
  const payload = fragment.payload?.length ?? 0
  if (payload > maxPayload) return bad(`payload of ${payload} bytes is over the limit of ${maxPayload}`)
  if (tooLong(fragment.subject) || tooLong(fragment.err)) return bad(TOO_LONG)
  for (const key of keys) if (tooLong(key) || tooLong(args![key])) return bad(TOO_LONG)
  return Result.void
}

/**
 * The user args of a fragment (those not starting with `#`).
 *
 * @since 0.1.0
 * @category accessors
 */
export const userArgs = (fragment: Fragment): Record<string, string> =>
  Object.fromEntries(Object.entries(fragment.args).filter(([key]) => !key.startsWith("#")))

/**
 * A system arg of a fragment (`name` without the `#`), or `undefined`.
 *
 * @since 0.1.0
 * @category accessors
 */
export const sysArg = (fragment: Fragment, name: string): string | undefined =>
  Object.hasOwn(fragment.args, `#${name}`) ? fragment.args[`#${name}`] : undefined

/**
 * The kind numbers fragments carry (rpc25519's CallType values).
 *
 * @since 0.1.0
 * @category constants
 */
export const Kind = CircuitFragment.Kind
