/**
 * The one error of the NBD server and client: a tagged `reason` says whether the peer broke the protocol, the
 * server refused what the client asked for during negotiation, a request failed with an NBD error value, the
 * connection ended, or the transport underneath failed.
 *
 * @since 0.1.0
 */
import * as NbdConstants from "@tessera/codec/NbdConstants"
import * as Schema from "effect/Schema"
import * as ProtocolError from "./ProtocolError.ts"

/**
 * The peer sent something the protocol does not allow (bad magic, a length over a cap, an unknown chunk, a
 * reply to a request never sent). The connection is closed.
 *
 * @since 0.1.0
 * @category errors
 */
export class ProtocolViolation extends Schema.TaggedError<ProtocolViolation>()("ProtocolViolation", {
  detail: Schema.String
}) {
  override get message(): string {
    return `NBD protocol violation: ${this.detail}`
  }
}

/**
 * The server answered an option with an error reply (`NBD_REP_ERR_*`), or lacks something the client needs.
 *
 * @since 0.1.0
 * @category errors
 */
export class Refused extends Schema.TaggedError<Refused>()("Refused", {
  option: Schema.String,
  reply: Schema.String,
  detail: Schema.String
}) {
  override get message(): string {
    return `${this.option} refused (${this.reply})${this.detail === "" ? "" : `: ${this.detail}`}`
  }
}

/**
 * A transmission request failed: the server's reply carried an NBD error value.
 *
 * @since 0.1.0
 * @category errors
 */
export class RequestFailed extends Schema.TaggedError<RequestFailed>()("RequestFailed", {
  command: Schema.String,
  offset: Schema.Number,
  length: Schema.Number,
  error: Schema.Number,
  detail: Schema.String
}) {
  override get message(): string {
    return `${this.command} at ${this.offset} (${this.length} bytes) failed with ${NbdConstants.errnoName(this.error)}${
      this.detail === "" ? "" : `: ${this.detail}`
    }`
  }
}

/**
 * The connection ended (closed on this side, by its scope, or by the peer), or did not finish negotiating in
 * time.
 *
 * @since 0.1.0
 * @category errors
 */
export class Disconnected extends Schema.TaggedError<Disconnected>()("Disconnected", {
  detail: Schema.String
}) {
  override get message(): string {
    return `NBD connection ended: ${this.detail}`
  }
}

/**
 * The server or client was set up wrongly (no exports, two exports with one name, a bad address or spec).
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidConfig extends Schema.TaggedError<InvalidConfig>()("InvalidConfig", {
  detail: Schema.String
}) {
  override get message(): string {
    return this.detail
  }
}

/**
 * The transport under the connection failed: the same reason as a packet connection's.
 *
 * @since 0.1.0
 * @category errors
 */
export const TransportFailed = ProtocolError.TransportFailed

/**
 * @since 0.1.0
 * @category errors
 */
export type TransportFailed = ProtocolError.TransportFailed

/**
 * What went wrong on an NBD connection.
 *
 * @since 0.1.0
 * @category errors
 */
export class NbdError extends Schema.TaggedError<NbdError>()("NbdError", {
  reason: Schema.Union([ProtocolViolation, Refused, RequestFailed, Disconnected, InvalidConfig, TransportFailed])
}) {
  override get message(): string {
    return this.reason.message
  }
}

/**
 * Builds an `NbdError` from one of the reasons.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (reason: NbdError["reason"]): NbdError => new NbdError({ reason })
