/**
 * The one error of the dnet node and client: a tagged `reason` says whether a node answered with an error
 * status, no node serves a group, a node could not be reached or timed out, a peer broke the protocol, or the
 * caller asked for something the protocol cannot carry.
 *
 * @since 0.1.0
 */
import { Errno } from "@tessera/codec/DnetConstants"
import * as Schema from "effect/Schema"

/**
 * `EIO`: the backend failed (an I/O error, a closed store). Not in the spec's list, which names the codes
 * elliptics tests rely on; the number is Linux's.
 *
 * @since 0.1.0
 * @category constants
 */
export const EIO = 5

const errnoNames: ReadonlyMap<number, string> = new Map([
  ...Object.entries(Errno).map(([name, value]) => [value, name] as const),
  [EIO, "EIO"]
])

/**
 * The name of a status (`-2` is `"ENOENT"`), or the number as text for one without a name.
 *
 * @since 0.1.0
 * @category getters
 */
export const statusName = (status: number): string => errnoNames.get(-status) ?? String(status)

/**
 * A node answered a request with a negative errno status.
 *
 * @since 0.1.0
 * @category errors
 */
export class Status extends Schema.TaggedError<Status>()("Status", {
  node: Schema.String,
  command: Schema.String,
  status: Schema.Number
}) {
  override get message(): string {
    return `${this.node}: ${this.command} failed with ${statusName(this.status)} (${this.status})`
  }
}

/**
 * No node of the route table serves the group (elliptics answers -ENXIO).
 *
 * @since 0.1.0
 * @category errors
 */
export class NoRoute extends Schema.TaggedError<NoRoute>()("NoRoute", {
  group: Schema.Number
}) {
  override get message(): string {
    return `no node serves group ${this.group}`
  }
}

/**
 * A node could not be dialled, or its connection broke before the reply.
 *
 * @since 0.1.0
 * @category errors
 */
export class Unreachable extends Schema.TaggedError<Unreachable>()("Unreachable", {
  node: Schema.String,
  detail: Schema.String
}) {
  override get message(): string {
    return `${this.node}: ${this.detail}`
  }
}

/**
 * A request got no final reply in time.
 *
 * @since 0.1.0
 * @category errors
 */
export class Timeout extends Schema.TaggedError<Timeout>()("Timeout", {
  node: Schema.String,
  command: Schema.String,
  millis: Schema.Number
}) {
  override get message(): string {
    return `${this.node}: no reply to ${this.command} within ${this.millis} ms`
  }
}

/**
 * A peer sent something that is not valid dnet (a malformed packet, a reply of the wrong shape). The
 * connection is closed.
 *
 * @since 0.1.0
 * @category errors
 */
export class BadReply extends Schema.TaggedError<BadReply>()("BadReply", {
  node: Schema.String,
  detail: Schema.String
}) {
  override get message(): string {
    return `${this.node}: ${this.detail}`
  }
}

/**
 * A call the protocol cannot carry out (an address a route table cannot hold, an empty group list, ...).
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
 * What failed in the dnet node or client.
 *
 * @since 0.1.0
 * @category errors
 */
export class DnetError extends Schema.TaggedError<DnetError>()("DnetError", {
  reason: Schema.Union([Status, NoRoute, Unreachable, Timeout, BadReply, BadArgument])
}) {
  override get message(): string {
    return this.reason.message
  }
}

/**
 * Builds a `DnetError` from one of the reasons.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (reason: DnetError["reason"]): DnetError => new DnetError({ reason })

/**
 * Whether the error is a node's -ENOENT: the object does not exist there.
 *
 * @since 0.1.0
 * @category predicates
 */
export const isNotFound = (error: DnetError): boolean =>
  error.reason._tag === "Status" && error.reason.status === -Errno.ENOENT
