/**
 * `tessera demo` (what `npm start` runs): a live migration between two processes, with no configuration. It
 * starts `tessera demo source` and `tessera demo destination` as two processes of this same program, connected
 * over TCP on 127.0.0.1. The source fills a memory device (256 MiB by default) with pseudo-random bytes and
 * keeps writing to it while it migrates; the destination reads from its copy while it arrives, so reads of
 * blocks not yet there wait for them and ask the source for them first (NeedAt). The demo draws both sides'
 * progress, then prints the throughput, the dirty rounds, how long the final locked round held the writers, the
 * bytes sent again, the NeedAt reads' latency and the sha256 of both devices. It exits 0 only when the hashes
 * are equal and both halves exited 0; otherwise it prints one line and exits 1.
 *
 * The halves are ordinary subcommands: run `tessera demo source --listen tcp://0.0.0.0:5170` on one machine and
 * `tessera demo destination --from tcp://HOST:5170` on another to watch the same migration across a network.
 * With `--json` they print the JSON lines the parent demo reads.
 *
 * @since 0.1.0
 */
import * as Address from "@tessera/protocol/Address"
import type * as ToProtocol from "@tessera/protocol/ToProtocol"
import * as Transport from "@tessera/protocol/Transport"
import * as DeviceSpec from "@tessera/storage/DeviceSpec"
import * as Command from "effect/cli/Command"
import * as Flag from "effect/cli/Flag"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { BadInput, OperationFailed, parsed } from "./CliFailure.ts"
import * as DemoHalves from "./internal/demoHalves.ts"
import * as DemoProcess from "./internal/demoProcess.ts"
import * as DemoRun from "./internal/demoRun.ts"
import { Progress } from "./Progress.ts"

const KiB = 1024
const MiB = 1024 * KiB
const GiB = 1024 * MiB

const compressionNames = { none: "None", rle: "RLE", zeroes: "Zeroes", gzip: "Gzip" } as const satisfies Record<
  string,
  ToProtocol.Compression
>

/** A `--flag` size within `[min, max]` bytes. */
const sizeWithin = (flag: string, input: string, min: number, max: number) =>
  Effect.flatMap(parsed(DeviceSpec.parseSize(input)), (bytes) =>
    bytes >= min && bytes <= max
      ? Effect.succeed(bytes)
      : Effect.fail(
        new BadInput({ message: `--${flag} must be between ${sizeText(min)} and ${sizeText(max)}, got ${input}` })
      ))

const sizeText = (bytes: number) =>
  bytes >= GiB && bytes % GiB === 0
    ? `${bytes / GiB}GiB`
    : bytes >= MiB && bytes % MiB === 0
    ? `${bytes / MiB}MiB`
    : bytes >= KiB && bytes % KiB === 0
    ? `${bytes / KiB}KiB`
    : `${bytes} bytes`

/** A `--flag` rate per second within `[0, 10000]`. */
const rate = (flag: string, value: number) =>
  Number.isSafeInteger(value) && value >= 0 && value <= 10_000
    ? Effect.succeed(value)
    : Effect.fail(new BadInput({ message: `--${flag} must be a whole number from 0 to 10000, got ${value}` }))

const MAX_SIZE = 4 * GiB
const MIN_BLOCK = 512
const MAX_BLOCK = 16 * MiB

const sizeFlag = Flag.String("size").pipe(
  Flag.withDescription("Size of the migrated device (held in memory by both processes); default 256MiB"),
  Flag.withDefault("256MiB")
)
const blockSizeFlag = Flag.String("block-size").pipe(
  Flag.withDescription("Migration block size, e.g. 64KiB; default 1MiB"),
  Flag.withDefault("1MiB")
)
const writeRateFlag = Flag.Int("write-rate").pipe(
  Flag.withDescription("Random 4 KiB writes per second at the source during the migration (0: none); default 50"),
  Flag.withDefault(50)
)
const readRateFlag = Flag.Int("read-rate").pipe(
  Flag.withDescription("Random 4 KiB reads per second at the destination during the migration (0: none); default 50"),
  Flag.withDefault(50)
)
const compressFlag = Flag.Literals("compress", ["none", "rle", "zeroes", "gzip"]).pipe(
  Flag.withDescription("Compression of the block data; default none"),
  Flag.withDefault("none")
)

/** The progress display: none with `--json`, bars or plain lines otherwise. */
const progressFor = (json: boolean) => Effect.provide(json ? Progress.layerNone : Progress.layer)

/**
 * `--with-parent` (hidden; the demo passes it): standard input is a pipe from the parent demo, which never
 * writes to it. When it closes, the parent is gone (even killed with SIGKILL), and the half stops instead of
 * waiting for a peer that will never come.
 */
const withParentFlag = Flag.Boolean("with-parent").pipe(
  Flag.withDescription("Stop when standard input closes (used by tessera demo)"),
  Flag.withHidden,
  Flag.withDefault(false)
)

const untilParentGoes =
  (watch: boolean) => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | OperationFailed, R> =>
    watch
      ? Effect.raceFirst(
        effect,
        Effect.andThen(
          DemoProcess.parentGone,
          Effect.fail(new OperationFailed({ message: "the parent demo went away" }))
        )
      )
      : effect

// --- source --------------------------------------------------------------------------------------------------

const source = Command.make(
  "source",
  {
    listen: Flag.String("listen").pipe(
      Flag.withDescription(
        "Where to listen: tcp://HOST:PORT (port 0: any free port) or unix:PATH; default tcp://127.0.0.1:5170"
      ),
      Flag.withDefault("tcp://127.0.0.1:5170")
    ),
    size: sizeFlag,
    blockSize: blockSizeFlag,
    writeRate: writeRateFlag,
    compress: compressFlag,
    seed: Flag.String("seed").pipe(
      Flag.withDescription(
        "Seed of the pseudo-random contents (the same seed gives the same device); default tessera-demo"
      ),
      Flag.withDefault("tessera-demo")
    ),
    json: Flag.Boolean("json").pipe(
      Flag.withDescription("Print JSON lines (listening, progress, completed) on stdout"),
      Flag.withDefault(false)
    ),
    withParent: withParentFlag
  },
  Effect.fn("demo.source")(function*(flags) {
    const options: DemoHalves.SourceOptions = {
      listen: yield* parsed(Address.parse(flags.listen)),
      size: yield* sizeWithin("size", flags.size, 1, MAX_SIZE),
      blockSize: yield* sizeWithin("block-size", flags.blockSize, MIN_BLOCK, MAX_BLOCK),
      writeRate: yield* rate("write-rate", flags.writeRate),
      compression: compressionNames[flags.compress],
      seed: flags.seed,
      json: flags.json
    }
    yield* DemoHalves.runSource(options).pipe(Effect.scoped, progressFor(flags.json), untilParentGoes(flags.withParent))
  })
).pipe(
  Command.withDescription(
    "The source half: a memory device of pseudo-random bytes, written to while it migrates to one destination"
  )
)

// --- destination ---------------------------------------------------------------------------------------------

const destination = Command.make(
  "destination",
  {
    from: Flag.String("from").pipe(Flag.withDescription("The source: tcp://HOST:PORT or unix:PATH")),
    readRate: readRateFlag,
    json: Flag.Boolean("json").pipe(
      Flag.withDescription("Print JSON lines (device, read, progress, completed) on stdout"),
      Flag.withDefault(false)
    ),
    withParent: withParentFlag
  },
  Effect.fn("demo.destination")(function*(flags) {
    const options: DemoHalves.DestinationOptions = {
      from: yield* parsed(Address.parse(flags.from)),
      readRate: yield* rate("read-rate", flags.readRate),
      json: flags.json
    }
    yield* DemoHalves.runDestination(options).pipe(
      Effect.scoped,
      progressFor(flags.json),
      untilParentGoes(flags.withParent)
    )
  })
).pipe(
  Command.withDescription(
    "The destination half: receives the source's device into memory, reading it while it arrives"
  )
)

// --- demo ----------------------------------------------------------------------------------------------------

/**
 * The `demo` command (the whole demo) and its two halves, `source` and `destination`.
 *
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make(
  "demo",
  {
    size: sizeFlag,
    blockSize: blockSizeFlag,
    writeRate: writeRateFlag,
    readRate: readRateFlag,
    compress: compressFlag,
    timeout: Flag.Finite("timeout").pipe(
      Flag.withDescription("Seconds the whole demo may take before it is stopped; default 120"),
      Flag.withDefault(120)
    ),
    json: Flag.Boolean("json").pipe(
      Flag.withDescription("Print the result as one JSON object instead of progress and text"),
      Flag.withDefault(false)
    )
  },
  Effect.fn("demo")(function*(flags) {
    if (!(flags.timeout > 0)) {
      return yield* new BadInput({ message: `--timeout must be a positive number of seconds, got ${flags.timeout}` })
    }
    const options: DemoRun.Options = {
      size: yield* sizeWithin("size", flags.size, 1, MAX_SIZE),
      blockSize: yield* sizeWithin("block-size", flags.blockSize, MIN_BLOCK, MAX_BLOCK),
      writeRate: yield* rate("write-rate", flags.writeRate),
      readRate: yield* rate("read-rate", flags.readRate),
      compress: flags.compress,
      json: flags.json,
      timeout: Duration.seconds(flags.timeout)
    }
    yield* DemoRun.run(options).pipe(progressFor(flags.json))
  })
).pipe(
  Command.withDescription(
    "Live migration between two local processes over TCP, written and read while it runs, verified by sha256"
  ),
  Command.withSubcommands([source, destination]),
  Command.provide(Transport.Transport.layer)
)
