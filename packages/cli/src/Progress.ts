/**
 * Progress of long work, drawn the way the terminal allows (the CLI rule: bars on a terminal, plain periodic
 * lines otherwise). A command asks the `Progress` service for bars and updates them; which display it gets is
 * chosen when the program is assembled:
 *
 * - `layerAnimated`: `cli-progress` bars on standard error, redrawn in place, one line per bar.
 * - `layerLines`: one plain line per bar on standard error at most every `interval`, and a last one when the
 *   bar ends, for logs and CI.
 * - `layerNone`: nothing at all (machine-readable output such as `--json`).
 * - `layer`: animated when `TerminalCapabilities.canAnimate` and standard error is a terminal, lines otherwise.
 *
 * A bar is a scoped resource: it appears when it is made and is drawn one last time, then left on the screen,
 * when its scope closes (also on failure or interruption, so the cursor and the terminal are always restored).
 *
 * @since 0.1.0
 */
import CliProgress from "cli-progress"
import * as TerminalCapabilities from "effect/cli/TerminalCapabilities"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import * as Stdio from "effect/Stdio"

/**
 * What a bar shows.
 *
 * @since 0.1.0
 * @category models
 */
export interface BarOptions {
  /** The name before the bar; bars of one display are aligned on the longest label. */
  readonly label: string
  /** The value of a full bar. */
  readonly total: number
  /** `"bytes"` prints values as KiB/MiB/GiB and a rate in MiB/s; any other word is the name of what is counted. */
  readonly unit?: string | undefined
}

/**
 * One bar.
 *
 * @since 0.1.0
 * @category models
 */
export interface Bar {
  /** Sets the bar's value (it may go down) and, optionally, the text shown after it. */
  readonly update: (value: number, detail?: string) => Effect.Effect<void>
}

/**
 * The operations of the `Progress` service.
 *
 * @since 0.1.0
 * @category models
 */
export interface ProgressShape {
  /** A bar that lives as long as the current scope. */
  readonly bar: (options: BarOptions) => Effect.Effect<Bar, never, Scope.Scope>
  /** A line of text for the user, printed above the bars (or as it is when nothing is animated). */
  readonly log: (line: string) => Effect.Effect<void>
}

const KiB = 1024
const MiB = 1024 * KiB
const GiB = 1024 * MiB

/**
 * Bytes in the largest unit that keeps the number at or above 1 (`512 bytes`, `1.5 KiB`, `256.0 MiB`).
 *
 * @since 0.1.0
 * @category formatting
 */
export const formatBytes = (bytes: number): string =>
  bytes >= GiB
    ? `${(bytes / GiB).toFixed(2)} GiB`
    : bytes >= MiB
    ? `${(bytes / MiB).toFixed(1)} MiB`
    : bytes >= KiB
    ? `${(bytes / KiB).toFixed(1)} KiB`
    : `${bytes} bytes`

/** A value and a total in the total's unit: `158.0/256.0 MiB`. */
const formatBytesOf = (value: number, total: number): string => {
  const [unit, name] = total >= GiB
    ? [GiB, "GiB"]
    : total >= MiB
    ? [MiB, "MiB"]
    : total >= KiB
    ? [KiB, "KiB"]
    : [1, "bytes"]
  const digits = unit === 1 ? 0 : unit === GiB ? 2 : 1
  return `${(value / unit).toFixed(digits)}/${(total / unit).toFixed(digits)} ${name}`
}

/** Seconds as `42s`, `3m05s`; `-` when unknown. */
const formatEta = (seconds: number): string => {
  if (!Number.isFinite(seconds) || seconds < 0) return "-"
  const whole = Math.ceil(seconds)
  return whole < 60 ? `${whole}s` : `${Math.floor(whole / 60)}m${String(whole % 60).padStart(2, "0")}s`
}

/** Time since `start`, frozen while the value is full: a finished bar keeps the rate it finished with. */
const stopwatch = (start: number, total: number) => {
  let fullAt: number | undefined
  return (value: number, now: number): number => {
    if (value < total) fullAt = undefined
    else fullAt ??= now
    return (fullAt ?? now) - start
  }
}

/** What both displays print about a bar: the amount, the average rate since the start and the time left. */
const describeBar = (options: BarOptions, value: number, elapsedMillis: number) => {
  const bytes = options.unit === undefined || options.unit === "bytes"
  const seconds = elapsedMillis / 1000
  const rate = seconds > 0 ? value / seconds : 0
  const total = Math.max(options.total, 0)
  const percent = total === 0 ? 100 : Math.min(100, Math.floor((value * 100) / total))
  return {
    percent: `${String(percent).padStart(3)}%`,
    amount: bytes ? formatBytesOf(value, total) : `${value}/${total} ${options.unit}`,
    rate: bytes ? `${(rate / MiB).toFixed(1)} MiB/s` : `${rate.toFixed(1)} ${options.unit}/s`,
    remaining: value >= total ? "0s" : formatEta(rate > 0 ? (total - value) / rate : Number.NaN)
  }
}

/**
 * The progress display a program draws on.
 *
 * @since 0.1.0
 * @category services
 */
export class Progress extends Context.Service<Progress, ProgressShape>()("@tessera/cli/Progress") {
  /** Draws nothing. */
  static readonly layerNone: Layer.Layer<Progress> = Layer.succeed(Progress, {
    bar: () => Effect.succeed({ update: () => Effect.void }),
    log: () => Effect.void
  })

  /**
   * Plain lines on standard error: each bar prints at most once per `interval` when it changes, and once more
   * when it ends.
   */
  static readonly layerLines = (interval: Duration.Input = Duration.seconds(1)): Layer.Layer<Progress> =>
    Layer.sync(Progress, () => {
      const every = Duration.toMillis(Duration.fromInputUnsafe(interval))
      return {
        log: (line) => Console.error(line),
        bar: (options) =>
          Effect.gen(function*() {
            const elapsed = stopwatch(yield* Clock.currentTimeMillis, options.total)
            const state = { value: 0, detail: "", printed: Number.NEGATIVE_INFINITY, changed: false }
            const print = (now: number) => {
              const d = describeBar(options, state.value, elapsed(state.value, now))
              state.printed = now
              state.changed = false
              const detail = state.detail === "" ? "" : ` ${state.detail}`
              return Console.error(
                `${options.label}: ${d.percent.trimStart()} ${d.amount} ${d.rate} ETA ${d.remaining}${detail}`
              )
            }
            // The last state, unless it is already on screen.
            yield* Effect.addFinalizer(() =>
              Effect.flatMap(Clock.currentTimeMillis, (now) => state.changed ? print(now) : Effect.void)
            )
            return {
              update: (value, detail) =>
                Effect.flatMap(Clock.currentTimeMillis, (now) => {
                  state.changed ||= value !== state.value || (detail !== undefined && detail !== state.detail)
                  state.value = value
                  if (detail !== undefined) state.detail = detail
                  return state.changed && now - state.printed >= every ? print(now) : Effect.void
                })
            }
          })
      }
    })

  /**
   * `cli-progress` bars on standard error, redrawn in place. The bars made while others are on screen join
   * them; when the last one ends, every bar is drawn once more and left on the screen.
   */
  static readonly layerAnimated: Layer.Layer<Progress> = Layer.sync(Progress, () => {
    let multi: CliProgress.MultiBar | undefined
    let active = 0
    let width = 0
    const open = () => (multi ??= new CliProgress.MultiBar({
      format: "{label} {bar} {percent} {amount} {rate} ETA {remaining}  {detail}",
      barsize: 24,
      hideCursor: true,
      // Interruption restores the terminal through the bar's finalizer; no signal handlers of its own.
      gracefulExit: false,
      linewrap: true,
      fps: 10
    }, CliProgress.Presets.shades_classic))
    return {
      log: (line) =>
        Effect.suspend(() => {
          if (multi === undefined) return Console.error(line)
          multi.log(`${line}\n`)
          return Effect.void
        }),
      bar: (options) =>
        Effect.acquireRelease(
          Effect.flatMap(Clock.currentTimeMillis, (start) =>
            Effect.sync(() => {
              width = Math.max(width, options.label.length)
              active++
              const elapsed = stopwatch(start, options.total)
              const payload = (value: number, detail: string, now: number) => ({
                label: options.label.padEnd(width),
                detail,
                ...describeBar(options, value, elapsed(value, now))
              })
              const bar = open().create(Math.max(options.total, 0), 0, payload(0, "", start))
              let detail = ""
              const update: Bar["update"] = (value, next) =>
                Effect.flatMap(Clock.currentTimeMillis, (now) =>
                  Effect.sync(() => {
                    if (next !== undefined) detail = next
                    bar.update(value, payload(value, detail, now))
                  }))
              return { update }
            })),
          () =>
            Effect.sync(() => {
              active--
              if (active === 0 && multi !== undefined) {
                // Flushes lines logged since the last redraw, then draws the bars a last time and stops.
                multi.update()
                multi.stop()
                multi = undefined
              }
            })
        )
    }
  })

  /** Animated bars when the terminal can show them (see `TerminalCapabilities`), plain lines otherwise. */
  static readonly layer: Layer.Layer<Progress, never, Stdio.Stdio> = Layer.unwrap(Effect.gen(function*() {
    const capabilities = yield* TerminalCapabilities.TerminalCapabilities
    const stderr = yield* Effect.flatMap(Stdio.Stdio, (stdio) => stdio.stderrIsTerminal)
    return capabilities.canAnimate && stderr ? Progress.layerAnimated : Progress.layerLines()
  }))
}

/**
 * A bar of the current `Progress` that appears with its first update, so its rate and ETA count from when the
 * work started rather than from when the bar was asked for. It lives as long as the current scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const lazyBar = (options: BarOptions): Effect.Effect<Bar, never, Progress | Scope.Scope> =>
  Effect.gen(function*() {
    const progress = yield* Progress
    const scope = yield* Scope.Scope
    const made = yield* Effect.cached(Scope.provide(progress.bar(options), scope))
    return { update: (value, detail) => Effect.flatMap(made, (bar) => bar.update(value, detail)) }
  })
