/**
 * Runs the `tessera` command as a process: one clear line on standard error for a failure (the full cause
 * with `--log-level debug`), and the exit codes of the CLI rules: 0 success, 1 the operation failed, 2 bad
 * usage or bad input.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as CliError from "effect/cli/CliError"
import * as Command from "effect/cli/Command"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Logger from "effect/Logger"
import * as Runtime from "effect/Runtime"
import * as Stdio from "effect/Stdio"
import * as Stream from "effect/Stream"
import { tessera } from "./Tessera.ts"

/**
 * The version `tessera --version` prints.
 *
 * @since 0.1.0
 * @category constants
 */
export const version = "0.1.0"

const isReported = (error: unknown): boolean =>
  CliError.isCliError(error) ||
  (typeof error === "object" && error !== null && "reported" in error && error.reported === true)

const describe = (error: unknown): string => (error instanceof Error ? error.message : String(error))

/**
 * Maps an exit to a process exit code; parse errors (already shown with the help text) are bad usage.
 *
 * @since 0.1.0
 * @category running
 */
export const exitCode = <E, A>(exit: Exit.Exit<A, E>): number => {
  if (Exit.isSuccess(exit)) return 0
  if (Cause.hasInterruptsOnly(exit.cause)) return 130
  const error = Cause.squash(exit.cause)
  return CliError.isCliError(error) ? 2 : Runtime.getErrorExitCode(error)
}

/**
 * The whole program: parse the arguments, run the command, report a failure once.
 *
 * @since 0.1.0
 * @category running
 */
export const program = Effect.gen(function*() {
  const stdio = yield* Stdio.Stdio
  const args = yield* stdio.args
  const debug = args.some((arg, i) => arg === "--log-level=debug" || (arg === "--log-level" && args[i + 1] === "debug"))
  return yield* Command.run(tessera, { version }).pipe(
    Effect.tapCause((cause) => {
      const error = Cause.squash(cause)
      if (Cause.hasInterruptsOnly(cause) || (isReported(error) && !debug)) return Effect.void
      const line = debug ? `${Cause.pretty(cause)}\n` : `tessera: ${describe(error)}\n`
      return Stream.make(line).pipe(Stream.run(stdio.stderr({ endOnDone: false })), Effect.ignore)
    }),
    // Logs are for people: stdout is kept for results and JSON lines.
    Effect.provideService(Logger.LogToStderr, true)
  )
})
