/**
 * The two ways a `tessera` command fails, each with its exit code: bad usage or bad input (2) and a failed
 * operation (1). `reported` marks a failure whose one line was already printed on stdout (the JSON error
 * line of `inspect` and `craft`), so the entry point prints nothing more.
 *
 * @since 0.1.0
 */
import type * as StorageError from "@tessera/storage/StorageError"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
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

/**
 * A parse of user input (a spec, a size, an address): its failure is bad input.
 *
 * @since 0.1.0
 * @category constructors
 */
export const parsed = <A>(result: Result.Result<A, { readonly message: string }>): Effect.Effect<A, BadInput> =>
  Effect.fromResult(Result.mapError(result, (error) => new BadInput({ message: error.message })))

/**
 * A storage failure as the command's: a device, file or directory the user named that is missing or cannot be
 * used that way is bad input (exit 2); anything else failed the operation (exit 1).
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromStorage = (error: StorageError.StorageError): BadInput | OperationFailed =>
  error.reason._tag === "NotFound" || error.reason._tag === "Unsupported"
    ? new BadInput({ message: error.message })
    : new OperationFailed({ message: error.message })
