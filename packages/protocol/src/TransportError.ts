/**
 * The one error of every transport: the address involved and a tagged `reason` saying which of the few things
 * went wrong, with the operating system's error kept as `cause`, so callers can match on the reason
 * (`Effect.catchReason`) and users read one clear line.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

const describe = (cause: unknown): string => cause instanceof Error ? cause.message : String(cause)

/**
 * A dial did not produce a connection: refused, unreachable, no listener on a memory address, or timed out.
 *
 * @since 0.1.0
 * @category errors
 */
export class ConnectFailed extends Schema.TaggedError<ConnectFailed>()("ConnectFailed", {
  cause: Schema.Defect()
}) {
  override get message(): string {
    return `connect failed: ${describe(this.cause)}`
  }
}

/**
 * A listener could not be bound (address in use, permission denied, bad path).
 *
 * @since 0.1.0
 * @category errors
 */
export class ListenFailed extends Schema.TaggedError<ListenFailed>()("ListenFailed", {
  cause: Schema.Defect()
}) {
  override get message(): string {
    return `listen failed: ${describe(this.cause)}`
  }
}

/**
 * The connection or listener was closed on this side (its scope ended or `close` was called) before or while
 * the operation ran.
 *
 * @since 0.1.0
 * @category errors
 */
export class Closed extends Schema.TaggedError<Closed>()("Closed", {}) {
  override get message(): string {
    return "closed"
  }
}

/**
 * Reading or writing failed (connection reset by the peer, broken pipe, ...).
 *
 * @since 0.1.0
 * @category errors
 */
export class Io extends Schema.TaggedError<Io>()("Io", {
  operation: Schema.Literals(["read", "write"]),
  cause: Schema.Defect()
}) {
  override get message(): string {
    return `${this.operation} failed: ${describe(this.cause)}`
  }
}

/**
 * The `Transport` in use has no implementation for the address's scheme (e.g. `tcp://` on a memory-only layer).
 *
 * @since 0.1.0
 * @category errors
 */
export class Unsupported extends Schema.TaggedError<Unsupported>()("Unsupported", {
  scheme: Schema.String
}) {
  override get message(): string {
    return `no transport for ${this.scheme} addresses in this program`
  }
}

/**
 * What failed, on which address.
 *
 * @since 0.1.0
 * @category errors
 */
export class TransportError extends Schema.TaggedError<TransportError>()("TransportError", {
  address: Schema.String,
  reason: Schema.Union([ConnectFailed, ListenFailed, Closed, Io, Unsupported])
}) {
  override get message(): string {
    return `${this.address}: ${this.reason.message}`
  }
}

/**
 * Builds a `TransportError` for `address` from one of the reasons.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (address: string, reason: TransportError["reason"]): TransportError =>
  new TransportError({ address, reason })
