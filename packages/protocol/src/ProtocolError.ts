/**
 * The one error of a packet connection: a tagged `reason` says whether the peer broke the framing, a wait ran
 * out of time, the connection ended, or the transport underneath failed.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import { TransportError } from "./TransportError.ts"

const hex = (n: number): string => `0x${n.toString(16).padStart(2, "0")}`

/**
 * The peer sent bytes that are not a valid frame (a length of 0 or over the cap, or a stream that ended inside
 * a frame). The connection is closed; nothing of the bad frame was delivered.
 *
 * @since 0.1.0
 * @category errors
 */
export class MalformedFrame extends Schema.TaggedError<MalformedFrame>()("MalformedFrame", {
  stream: Schema.Number,
  offset: Schema.Number,
  detail: Schema.String
}) {
  override get message(): string {
    return `malformed frame from the peer on stream ${this.stream} at byte ${this.offset}: ${this.detail}`
  }
}

/**
 * A response or a request did not arrive in time.
 *
 * @since 0.1.0
 * @category errors
 */
export class Timeout extends Schema.TaggedError<Timeout>()("Timeout", {
  dev: Schema.Number,
  waitingFor: Schema.String,
  millis: Schema.Number
}) {
  override get message(): string {
    return `dev ${this.dev}: no ${this.waitingFor} within ${this.millis} ms`
  }
}

/**
 * The connection ended: closed on this side, by its scope, or by the peer ending every stream.
 *
 * @since 0.1.0
 * @category errors
 */
export class Closed extends Schema.TaggedError<Closed>()("Closed", {
  detail: Schema.String
}) {
  override get message(): string {
    return `connection closed: ${this.detail}`
  }
}

/**
 * More distinct device ids than the connection accepts. From the peer this closes the connection.
 *
 * @since 0.1.0
 * @category errors
 */
export class TooManyDevices extends Schema.TaggedError<TooManyDevices>()("TooManyDevices", {
  dev: Schema.Number,
  limit: Schema.Number
}) {
  override get message(): string {
    return `dev ${this.dev} would exceed the limit of ${this.limit} devices on one connection`
  }
}

/**
 * A call the protocol cannot carry out (an empty payload, a payload over the frame cap, waiting for a
 * response command as if it were a request).
 *
 * @since 0.1.0
 * @category errors
 */
export class BadArgument extends Schema.TaggedError<BadArgument>()("BadArgument", {
  detail: Schema.String
}) {
  override get message(): string {
    return this.detail
  }
}

/**
 * The transport under the connection failed; the connection is closed.
 *
 * @since 0.1.0
 * @category errors
 */
export class TransportFailed extends Schema.TaggedError<TransportFailed>()("TransportFailed", {
  cause: TransportError
}) {
  override get message(): string {
    return this.cause.message
  }
}

/**
 * What went wrong on a packet connection.
 *
 * @since 0.1.0
 * @category errors
 */
export class ProtocolError extends Schema.TaggedError<ProtocolError>()("ProtocolError", {
  reason: Schema.Union([MalformedFrame, Timeout, Closed, TooManyDevices, BadArgument, TransportFailed])
}) {
  override get message(): string {
    return this.reason.message
  }
}

/**
 * Builds a `ProtocolError` from one of the reasons.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (reason: ProtocolError["reason"]): ProtocolError => new ProtocolError({ reason })

/**
 * The `Timeout` text for a request's response, e.g. "response to id 7".
 *
 * @since 0.1.0
 * @category constructors
 */
export const responseTimeout = (dev: number, id: number, millis: number): ProtocolError =>
  make(new Timeout({ dev, waitingFor: `response to id ${id}`, millis }))

/**
 * The `Timeout` for a request with a given command, e.g. "request with command 0x02".
 *
 * @since 0.1.0
 * @category constructors
 */
export const commandTimeout = (dev: number, command: number, millis: number): ProtocolError =>
  make(new Timeout({ dev, waitingFor: `request with command ${hex(command)}`, millis }))

/**
 * The `ProtocolError` behind a failure, looking through the causes and reasons that device and migration errors
 * wrap around it; none behind a `Disconnected` reason (a migration that already gave up on its peer is final,
 * whatever broke the connection).
 *
 * @since 0.1.0
 * @category predicates
 */
export const find = (error: unknown): ProtocolError | undefined => {
  for (let at = error, depth = 0; at !== null && typeof at === "object" && depth < 8; depth++) {
    if (at instanceof ProtocolError) return at
    if ((at as { readonly _tag?: unknown })._tag === "Disconnected") return undefined
    const next = at as { readonly reason?: unknown; readonly cause?: unknown }
    at = next.reason !== undefined && typeof next.reason === "object" ? next.reason : next.cause
  }
  return undefined
}

/**
 * Whether a failure means the connection broke (closed, failed or timed out), so a new connection can carry
 * on, rather than a fault of either side's storage or setup. Looks through the causes and reasons that
 * device and migration errors wrap around a `ProtocolError` (see `find`).
 *
 * @since 0.1.0
 * @category predicates
 */
export const isConnectionLoss = (error: unknown): boolean => {
  const tag = find(error)?.reason._tag
  return tag === "Closed" || tag === "TransportFailed" || tag === "Timeout"
}

/**
 * Whether a failure means the connection is unusable because of the peer or the network: it broke (as
 * `isConnectionLoss` says), or the peer sent bytes that are not frames of the protocol or named too many
 * devices. Not a call this side got wrong (`BadArgument`), and not storage or setup.
 *
 * @since 0.1.0
 * @category predicates
 */
export const isConnectionFailure = (error: unknown): boolean => {
  const tag = find(error)?.reason._tag
  return tag !== undefined && tag !== "BadArgument"
}
