/**
 * The whole `tessera demo`: starts the source and the destination halves as two processes of this same
 * program, follows their JSON lines, draws their progress, and checks and reports the result.
 */
import * as Console from "effect/Console"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as ChildProcess from "effect/process/ChildProcess"
import * as ChildProcessSpawner from "effect/process/ChildProcessSpawner"
import * as Stream from "effect/Stream"
import { OperationFailed } from "../CliFailure.ts"
import { formatBytes, lazyBar, Progress } from "../Progress.ts"
import * as Events from "./demoEvents.ts"
import { READ_SIZE, WRITE_SIZE } from "./demoHalves.ts"
import { self } from "./demoProcess.ts"

const MiB = 1024 * 1024

/**
 * What the demo is asked to do.
 */
export interface Options {
  readonly size: number
  readonly blockSize: number
  readonly writeRate: number
  readonly readRate: number
  /** The `--compress` name, passed on to the source. */
  readonly compress: string
  readonly json: boolean
  readonly timeout: Duration.Duration
}

/**
 * What the demo found.
 */
export interface Result {
  readonly verified: boolean
  readonly size: number
  readonly blockSize: number
  readonly compression: string
  readonly seconds: number
  readonly throughputMiBps: number
  readonly writes: number
  readonly dirtyRounds: number
  readonly finalRoundMillis: number
  readonly blocksResent: number
  readonly resentBytes: number
  readonly reads: {
    readonly count: number
    readonly needAt: number
    readonly needAtMedianMillis: number
    readonly needAtMaxMillis: number
    readonly localMedianMillis: number
  }
  readonly sourceSha256: string
  readonly destinationSha256: string
}

const median = (values: ReadonlyArray<number>): number => {
  if (values.length === 0) return 0
  const sorted = values.toSorted((a, b) => a - b)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

/** The last line a half printed on standard error, without the `tessera: ` of its one-line failures. */
const lastLine = (lines: ReadonlyArray<string>): string => {
  const line = lines.findLast((l) => l.trim() !== "")
  return line === undefined ? "no message" : line.replace(/^tessera: /, "")
}

/**
 * Runs one half until it exits: every line it prints on standard output goes to `onLine`, its standard error
 * is kept for the failure message. Fails unless it exits 0; the process is killed when the scope this runs in
 * is interrupted (another half failed, a timeout, Ctrl-C).
 */
const half = Effect.fnUntraced(function*(
  name: string,
  args: ReadonlyArray<string>,
  onLine: (line: string) => Effect.Effect<void, OperationFailed>
) {
  const spawner = yield* ChildProcessSpawner.ChildProcessSpawner
  const { args: argv, command } = self(args)
  const spawnFailed = (error: { readonly message: string }) =>
    new OperationFailed({ message: `cannot run the ${name}: ${error.message}` })
  return yield* Effect.scoped(Effect.gen(function*() {
    const handle = yield* spawner.spawn(ChildProcess.make(command, argv, {
      stdin: "pipe",
      stdout: "pipe",
      stderr: "pipe",
      killSignal: "SIGTERM",
      forceKillAfter: Duration.seconds(3)
    })).pipe(Effect.mapError(spawnFailed))
    const stderr: Array<string> = []
    const errors = yield* Effect.forkScoped(
      handle.stderr.pipe(
        Stream.decodeText(),
        Stream.splitLines,
        Stream.runForEach((line) =>
          Effect.sync(() => {
            stderr.push(line)
            if (stderr.length > 50) stderr.shift()
          })
        ),
        Effect.ignore
      )
    )
    yield* handle.stdout.pipe(
      Stream.decodeText(),
      Stream.splitLines,
      Stream.mapError(spawnFailed),
      Stream.runForEach(onLine)
    )
    const code = yield* handle.exitCode.pipe(Effect.mapError(spawnFailed))
    yield* Fiber.await(errors)
    if (code !== 0) {
      return yield* new OperationFailed({
        message: `the ${name} failed (exit code ${code}): ${lastLine(stderr)}`
      })
    }
  }))
})

const ms = (millis: number) => `${millis.toFixed(millis < 1 ? 2 : 1)} ms`

/**
 * The arguments of a half: it speaks JSON lines to the parent, and stops when its standard input (a pipe from
 * the parent, never written) closes, so it cannot outlive a parent killed without a chance to clean up.
 */
const halfArgs = (more: ReadonlyArray<string>) => [...more, "--json", "--with-parent"]

/** The one JSON object or the few lines of text that end the demo. */
const report = (result: Result, json: boolean) => {
  if (json) return Console.log(JSON.stringify(result))
  const { reads } = result
  const rows: ReadonlyArray<readonly [string, string]> = [
    ["size", `${formatBytes(result.size)} in blocks of ${formatBytes(result.blockSize)}`],
    [
      "migration",
      `${result.seconds.toFixed(2)} s from connection to Completed, ${
        result.throughputMiBps.toFixed(1)
      } MiB/s (compression ${result.compression})`
    ],
    ["writes", `${result.writes} random ${formatBytes(WRITE_SIZE)} writes at the source while it migrated`],
    ["dirty rounds", `${result.dirtyRounds}, the final one locked for ${result.finalRoundMillis} ms`],
    ["sent again", `${formatBytes(result.resentBytes)} (${result.blocksResent} blocks written during the migration)`],
    [
      "NeedAt reads",
      reads.count === 0
        ? "none (no reads at the destination)"
        : `${reads.needAt} of ${reads.count} reads at the destination waited for their block: median ${
          ms(reads.needAtMedianMillis)
        }, max ${ms(reads.needAtMaxMillis)} (the others: median ${ms(reads.localMedianMillis)})`
    ],
    ["source", `sha256 ${result.sourceSha256}`],
    ["destination", `sha256 ${result.destinationSha256}`]
  ]
  const width = Math.max(...rows.map(([label]) => label.length))
  const lines = rows.map(([label, text]) => `  ${label.padEnd(width)}  ${text}`)
  lines.push(
    result.verified
      ? "verified: the destination holds exactly the source's bytes"
      : "NOT verified: the devices differ"
  )
  return Console.log(lines.join("\n"))
}

/**
 * Runs the demo: both halves, their progress, the report. Fails with `OperationFailed` when a half fails, the
 * devices differ or it takes longer than `options.timeout`.
 */
export const run = Effect.fn("demo")(function*(options: Options) {
  const { blockSize, size } = options
  const progress = yield* Progress
  const outcome = yield* Effect.scoped(Effect.gen(function*() {
    yield* progress.log(
      `tessera demo: migrating ${formatBytes(size)} of pseudo-random bytes from a source process to a ` +
        `destination process over TCP on 127.0.0.1`
    )
    const sourceBar = yield* lazyBar({ label: "source", total: size })
    const destinationBar = yield* lazyBar({ label: "destination", total: size })
    const listening = yield* Deferred.make<string, OperationFailed>()
    let sourceDone: Extract<Events.SourceEvent, { event: "completed" }> | undefined
    let destinationDone: Extract<Events.DestinationEvent, { event: "completed" }> | undefined
    const needAtMillis: Array<number> = []
    const localMillis: Array<number> = []

    const onSource = (line: string) =>
      Effect.suspend(() => {
        const event = Events.decodeSourceLine(line)
        if (event === undefined) return progress.log(`source: ${line}`)
        switch (event.event) {
          case "listening":
            return Effect.andThen(
              progress.log(
                `source: listening on ${event.address}, ${
                  options.writeRate > 0
                    ? `writing ${formatBytes(WRITE_SIZE)} at random offsets ${options.writeRate} times a second`
                    : "not writing"
                }`
              ),
              Deferred.succeed(listening, event.address)
            )
          case "progress":
            return sourceBar.update(
              Math.min(size, event.migrated * blockSize),
              Events.sourceDetail(event.phase, event.sent - event.migrated, event.writes)
            )
          case "completed":
            sourceDone = event
            return sourceBar.update(size, Events.sourceDetail("completed", event.blocksResent, event.writes))
        }
      })

    const onDestination = (line: string) =>
      Effect.suspend(() => {
        const event = Events.decodeDestinationLine(line)
        if (event === undefined) return progress.log(`destination: ${line}`)
        switch (event.event) {
          case "device":
            // The migration starts: both bars appear now, the source's first.
            return progress.log(
              `destination: connected, ${
                options.readRate > 0
                  ? `reading ${formatBytes(READ_SIZE)} at random offsets ${options.readRate} times a second`
                  : "not reading"
              }`
            ).pipe(
              Effect.andThen(sourceBar.update(0, Events.sourceDetail("copy", 0, 0))),
              Effect.andThen(destinationBar.update(0, Events.destinationDetail(0, 0)))
            )
          case "read":
            ;(event.needAt ? needAtMillis : localMillis).push(event.millis)
            return Effect.void
          case "progress":
            return destinationBar.update(
              Math.min(size, event.present * blockSize),
              Events.destinationDetail(needAtMillis.length + localMillis.length, needAtMillis.length)
            )
          case "completed":
            destinationDone = event
            return destinationBar.update(size, Events.destinationDetail(event.reads, event.needAtReads))
        }
      })

    yield* Effect.all([
      half(
        "source",
        halfArgs([
          "source",
          "--listen",
          "tcp://127.0.0.1:0",
          "--size",
          String(size),
          "--block-size",
          String(blockSize),
          "--write-rate",
          String(options.writeRate),
          "--compress",
          options.compress
        ]),
        onSource
      ).pipe(
        // Does nothing once the address is known; releases the destination's wait if the source never listened.
        Effect.ensuring(
          Deferred.fail(listening, new OperationFailed({ message: "the source ended before it was listening" }))
        )
      ),
      Effect.flatMap(
        Deferred.await(listening),
        (address) =>
          half(
            "destination",
            halfArgs(["destination", "--from", address, "--read-rate", String(options.readRate)]),
            onDestination
          )
      )
    ], { concurrency: "unbounded", discard: true })
    if (sourceDone === undefined) return yield* new OperationFailed({ message: "the source ended without a result" })
    if (destinationDone === undefined) {
      return yield* new OperationFailed({ message: "the destination ended without a result" })
    }
    return { source: sourceDone, destination: destinationDone, needAtMillis, localMillis }
  })).pipe(
    Effect.timeoutOrElse({
      duration: options.timeout,
      orElse: () =>
        Effect.fail(
          new OperationFailed({ message: `the demo did not finish within ${Duration.format(options.timeout)}` })
        )
    })
  )

  const { destination, source } = outcome
  const result: Result = {
    verified: source.sha256 === destination.sha256,
    size,
    blockSize,
    compression: options.compress,
    seconds: source.seconds,
    throughputMiBps: size / MiB / Math.max(source.seconds, 1e-3),
    writes: source.writes,
    dirtyRounds: source.dirtyRounds,
    finalRoundMillis: source.finalRoundMillis,
    blocksResent: source.blocksResent,
    resentBytes: source.blocksResent * blockSize,
    reads: {
      count: outcome.needAtMillis.length + outcome.localMillis.length,
      needAt: outcome.needAtMillis.length,
      needAtMedianMillis: median(outcome.needAtMillis),
      needAtMaxMillis: outcome.needAtMillis.reduce((max, millis) => Math.max(max, millis), 0),
      localMedianMillis: median(outcome.localMillis)
    },
    sourceSha256: source.sha256,
    destinationSha256: destination.sha256
  }
  yield* report(result, options.json)
  if (!result.verified) {
    return yield* new OperationFailed({
      message: `not verified: the source's sha256 is ${source.sha256}, the destination's ${destination.sha256}`
    })
  }
  return result
})
