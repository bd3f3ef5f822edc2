/**
 * The one error every decoder in this package returns for malformed input.
 *
 * Decoders never throw: a short buffer, an overrunning count, a bad length field or a value outside what the
 * port supports all become a `DecodeError` naming the protocol, the packet, the byte offset where decoding
 * stopped and a reason in words.
 *
 * @since 0.1.0
 */
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"

/**
 * The wire formats this package decodes.
 *
 * @since 0.1.0
 * @category models
 */
export const Protocol = Schema.Literals(["silo", "dnet", "t2", "nbd", "circuit"])

/**
 * @since 0.1.0
 * @category models
 */
export type Protocol = typeof Protocol.Type

/**
 * Malformed input: which protocol and packet, where it stopped and why.
 *
 * @since 0.1.0
 * @category errors
 */
export class DecodeError extends Schema.TaggedError<DecodeError>()("DecodeError", {
  protocol: Protocol,
  packet: Schema.String,
  offset: Schema.Number,
  reason: Schema.String
}) {
  override get message(): string {
    return `${this.protocol} ${this.packet}: ${this.reason} (at byte ${this.offset})`
  }
}

/**
 * The result of every decoder: the value, or a `DecodeError`.
 *
 * @since 0.1.0
 * @category models
 */
export type Decoded<A> = Result.Result<A, DecodeError>

/**
 * Builds a failed `Decoded` in one call.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fail = (protocol: Protocol, packet: string, offset: number, reason: string): Decoded<never> =>
  Result.fail(new DecodeError({ protocol, packet, offset, reason }))
