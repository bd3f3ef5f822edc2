/**
 * The one error of peers and circuits: what failed and a tagged `reason`. A closed circuit also reports why it
 * closed with one of these reasons (`LocalClose`, `RemoteClose`, `PeerClosed`, `ConnectionLost`,
 * `ProtocolViolation`), so code can tell an orderly end from a lost connection.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/**
 * The circuit was closed on this side.
 *
 * @since 0.1.0
 * @category errors
 */
export class LocalClose extends Schema.TaggedError<LocalClose>()("LocalClose", { detail: Schema.String }) {
  override get message(): string {
    return this.detail === "" ? "closed" : `closed: ${this.detail}`
  }
}

/**
 * The other side closed the circuit (its reason in `detail`, if it gave one).
 *
 * @since 0.1.0
 * @category errors
 */
export class RemoteClose extends Schema.TaggedError<RemoteClose>()("RemoteClose", { detail: Schema.String }) {
  override get message(): string {
    return this.detail === "" ? "closed by the remote side" : `closed by the remote side: ${this.detail}`
  }
}

/**
 * The local peer that owns the circuit shut down (or the peer service host closed).
 *
 * @since 0.1.0
 * @category errors
 */
export class PeerClosed extends Schema.TaggedError<PeerClosed>()("PeerClosed", { peerId: Schema.String }) {
  override get message(): string {
    return `peer ${this.peerId} is closed`
  }
}

/**
 * The connection carrying the circuit broke or could not be made.
 *
 * @since 0.1.0
 * @category errors
 */
export class ConnectionLost extends Schema.TaggedError<ConnectionLost>()("ConnectionLost", {
  address: Schema.String,
  detail: Schema.String
}) {
  override get message(): string {
    return `connection to ${this.address} lost: ${this.detail}`
  }
}

/**
 * The remote side broke the protocol (undecodable frame, flow-control overrun, reused circuit ID).
 *
 * @since 0.1.0
 * @category errors
 */
export class ProtocolViolation extends Schema.TaggedError<ProtocolViolation>()("ProtocolViolation", {
  detail: Schema.String
}) {
  override get message(): string {
    return `protocol violation: ${this.detail}`
  }
}

/**
 * The remote host refused to start a peer or a circuit (unknown service, limit reached, ...). `args` are the
 * system args of its answer (e.g. `#LimitedServiceMax`, `#LimitedExistingPeerID_first_url`).
 *
 * @since 0.1.0
 * @category errors
 */
export class Rejected extends Schema.TaggedError<Rejected>()("Rejected", {
  detail: Schema.String,
  args: Schema.Record(Schema.String, Schema.String)
}) {
  override get message(): string {
    return `rejected by the remote host: ${this.detail}`
  }
}

/**
 * A service already runs as many instances as its limit allows.
 *
 * @since 0.1.0
 * @category errors
 */
export class LimitReached extends Schema.TaggedError<LimitReached>()("LimitReached", {
  service: Schema.String,
  max: Schema.Number
}) {
  override get message(): string {
    return `service ${this.service} is already at its limit of ${this.max} instance(s)`
  }
}

/**
 * No service of that name is registered on this host.
 *
 * @since 0.1.0
 * @category errors
 */
export class UnknownService extends Schema.TaggedError<UnknownService>()("UnknownService", {
  service: Schema.String
}) {
  override get message(): string {
    return `no service named ${JSON.stringify(this.service)} is registered`
  }
}

/**
 * A send waited longer than its timeout for room (flow-control credit or the connection's send queue); the
 * fragment was not sent.
 *
 * @since 0.1.0
 * @category errors
 */
export class SendTimeout extends Schema.TaggedError<SendTimeout>()("SendTimeout", { millis: Schema.Number }) {
  override get message(): string {
    return `send timed out after ${this.millis} ms waiting for room; the fragment was not sent`
  }
}

/**
 * No answer from the remote host in time.
 *
 * @since 0.1.0
 * @category errors
 */
export class Timeout extends Schema.TaggedError<Timeout>()("Timeout", {
  operation: Schema.String,
  millis: Schema.Number
}) {
  override get message(): string {
    return `${this.operation}: no answer within ${this.millis} ms`
  }
}

/**
 * An argument the caller gave cannot be used (bad URL, `#` user arg, payload over the limit, ...).
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidArgument extends Schema.TaggedError<InvalidArgument>()("InvalidArgument", {
  detail: Schema.String
}) {
  override get message(): string {
    return this.detail
  }
}

/**
 * The peer on the other end of a TLS connection presented a key the known-keys list does not allow.
 *
 * @since 0.1.0
 * @category errors
 */
export class Untrusted extends Schema.TaggedError<Untrusted>()("Untrusted", { detail: Schema.String }) {
  override get message(): string {
    return `untrusted peer: ${this.detail}`
  }
}

/**
 * Why a circuit ended.
 *
 * @since 0.1.0
 * @category models
 */
export type CloseReason = LocalClose | RemoteClose | PeerClosed | ConnectionLost | ProtocolViolation | Rejected

/**
 * What failed and why.
 *
 * @since 0.1.0
 * @category errors
 */
export class CircuitError extends Schema.TaggedError<CircuitError>()("CircuitError", {
  operation: Schema.String,
  reason: Schema.Union([
    LocalClose,
    RemoteClose,
    PeerClosed,
    ConnectionLost,
    ProtocolViolation,
    Rejected,
    LimitReached,
    UnknownService,
    SendTimeout,
    Timeout,
    InvalidArgument,
    Untrusted
  ])
}) {
  override get message(): string {
    return `${this.operation}: ${this.reason.message}`
  }
}

/**
 * Builds a `CircuitError`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (operation: string, reason: CircuitError["reason"]): CircuitError =>
  new CircuitError({ operation, reason })

/**
 * Whether a close reason is an orderly end (closed by either side or by its peer) rather than a failure.
 *
 * @since 0.1.0
 * @category predicates
 */
export const isOrderly = (reason: CloseReason): boolean =>
  reason._tag === "LocalClose" || reason._tag === "RemoteClose" || reason._tag === "PeerClosed"
