/**
 * The two ways a `tessera` command fails, each with its exit code: bad usage or bad input (2) and a failed
 * operation (1). `reported` marks a failure whose one line was already printed on stdout (the JSON error
 * line of `inspect` and `craft`), so the entry point prints nothing more.
 *
 * @since 0.1.0
 */
import * as Runtime from "effect/Runtime"
import * as Schema from "effect/Schema"

/**
 * Bad usage or bad input: exit code 2.
 *
 * @since 0.1.0
 * @category errors
 */
export class BadInput extends Schema.TaggedError<BadInput>()("BadInput", {
  message: Schema.String,
  reported: Schema.optionalKey(Schema.Boolean)
}) {
  override readonly [Runtime.errorExitCode] = 2
}

/**
 * The operation itself failed (I/O, a peer, a timeout): exit code 1.
 *
 * @since 0.1.0
 * @category errors
 */
export class OperationFailed extends Schema.TaggedError<OperationFailed>()("OperationFailed", {
  message: Schema.String
}) {
  override readonly [Runtime.errorExitCode] = 1
}
