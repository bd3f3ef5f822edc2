/**
 * JSON lines as `inspect` prints them and `craft` reads them.
 *
 * @since 0.1.0
 */
import * as Stream from "effect/Stream"
import { BadInput } from "./CliFailure.ts"

/**
 * One record as one line; bigints (64-bit ids) print as numbers when exact, otherwise as decimal strings.
 *
 * @since 0.1.0
 * @category formatting
 */
export const stringify = (record: unknown): string =>
  JSON.stringify(record, (_key, value) =>
    typeof value === "bigint"
      ? (value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER)
        ? Number(value)
        : value.toString())
      : value) + "\n"

/**
 * The JSON error line `{"error", "offset"}` that ends a run on bad input, followed by the failure that makes the
 * process exit with code 2 (marked as reported, so nothing more is printed).
 *
 * @since 0.1.0
 * @category formatting
 */
export const failWith = (message: string, offset: number): Stream.Stream<string, BadInput> =>
  Stream.concat(
    Stream.make(stringify({ error: message, offset })),
    Stream.fail(new BadInput({ message, reported: true }))
  )
