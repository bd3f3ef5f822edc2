/**
 * Where a command reads its input: a file, standard input (`-` or no argument) or a hex string given on the
 * command line. Every failure to read becomes a `BadInput` naming the file.
 *
 * @since 0.1.0
 */
import * as Argument from "effect/cli/Argument"
import * as Effect from "effect/Effect"
import * as Hex from "effect/encoding/Hex"
import * as FileSystem from "effect/FileSystem"
import * as Option from "effect/Option"
import type * as PlatformError from "effect/PlatformError"
import * as Result from "effect/Result"
import * as Stdio from "effect/Stdio"
import * as Stream from "effect/Stream"
import { BadInput } from "./CliFailure.ts"

/**
 * Decodes a hex string, ignoring whitespace and an optional `0x` prefix.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromHex = (text: string): Result.Result<Uint8Array, BadInput> => {
  const compact = text.replace(/\s+/g, "").replace(/^0x/i, "")
  return Result.mapError(Hex.decode(compact), () => new BadInput({ message: `not valid hex: ${abbreviate(text)}` }))
}

/**
 * The optional FILE argument of commands that read input; `-` or nothing means standard input.
 *
 * @since 0.1.0
 * @category arguments
 */
export const fileArgument = (what: string) =>
  Argument.String("file").pipe(
    Argument.withDescription(`${what} file, or - for standard input (the default)`),
    Argument.optional
  )

/**
 * The input bytes of a command: `--hex` wins, then FILE, then standard input.
 *
 * @since 0.1.0
 * @category constructors
 */
export const read = (
  file: Option.Option<string>,
  hex: Option.Option<string>
): Stream.Stream<Uint8Array, BadInput, FileSystem.FileSystem | Stdio.Stdio> => {
  if (Option.isSome(hex)) {
    return Stream.fromEffect(Result.match(fromHex(hex.value), { onSuccess: Effect.succeed, onFailure: Effect.fail }))
  }
  if (Option.isNone(file) || file.value === "-") {
    return Stream.unwrap(Effect.gen(function*() {
      return (yield* Stdio.Stdio).stdin
    })).pipe(
      Stream.mapError((error) => new BadInput({ message: `cannot read standard input: ${error.message}` }))
    )
  }
  const path = file.value
  return Stream.unwrap(Effect.gen(function*() {
    return (yield* FileSystem.FileSystem).stream(path)
  })).pipe(
    Stream.mapError((error) => new BadInput({ message: `cannot read ${path}: ${describe(error)}` }))
  )
}

/**
 * One short phrase for a file-system failure, without the module and method names a user does not need.
 *
 * @since 0.1.0
 * @category formatting
 */
export const describe = (error: PlatformError.PlatformError): string => {
  const reason = error.reason
  if (reason._tag === "BadArgument") return reason.message
  switch (reason._tag) {
    case "NotFound":
      return "no such file or directory"
    case "PermissionDenied":
      return "permission denied"
    default:
      return reason.description ?? reason._tag
  }
}

const abbreviate = (text: string): string => (text.length > 40 ? `${text.slice(0, 40)}…` : text)
