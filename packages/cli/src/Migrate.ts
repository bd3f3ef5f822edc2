/**
 * `tessera migrate serve` moves live devices to the first client that connects, with Silo's device-group flow,
 * and exits 0 once every device is completed; `tessera migrate connect` receives them into the devices it is
 * given and exits 0 once Completed has arrived for every device and the data is flushed. Either side rides out a
 * broken connection: the source waits `--resume-timeout` seconds for the destination to come back, the
 * destination dials again for as long, and blocks already received are not sent again. A connection to the
 * source that does not turn out to be a destination (garbage instead of Silo frames, a peer that hangs up or
 * refuses the group before it acknowledged the first DirtyList) is refused and closed, and the source goes on
 * waiting; the devices are not touched.
 *
 * Output: a one-line summary on stdout, progress on stderr; with `--json`, JSON lines on stdout instead
 * (`listening`, `progress`, `refused`, `trusted`, `completed`), so scripts and tests can follow the migration.
 *
 * @since 0.1.0
 */
import * as Address from "@tessera/protocol/Address"
import * as CircuitConnection from "@tessera/protocol/CircuitConnection"
import * as MigrationDestination from "@tessera/protocol/MigrationDestination"
import * as MigrationSource from "@tessera/protocol/MigrationSource"
import * as NbdDeviceSpec from "@tessera/protocol/NbdDeviceSpec"
import * as NbdExport from "@tessera/protocol/NbdExport"
import * as NbdServer from "@tessera/protocol/NbdServer"
import * as PacketConnection from "@tessera/protocol/PacketConnection"
import type * as ToProtocol from "@tessera/protocol/ToProtocol"
import * as Transport from "@tessera/protocol/Transport"
import type * as TransportError from "@tessera/protocol/TransportError"
import * as DeviceSpec from "@tessera/storage/DeviceSpec"
import type { BlockDevice } from "@tessera/storage/Provider"
import * as StorageError from "@tessera/storage/StorageError"
import * as Command from "effect/cli/Command"
import * as Flag from "effect/cli/Flag"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as fs from "node:fs"
import * as path from "node:path"
import * as CircuitSecurity from "./CircuitSecurity.ts"
import { BadInput, fromStorage, OperationFailed, parsed } from "./CliFailure.ts"

const compressionNames = { none: "None", rle: "RLE", zeroes: "Zeroes", gzip: "Gzip" } as const satisfies Record<
  string,
  ToProtocol.Compression
>

/** Every other failure of a migration is the operation's. */
const operationFailed = (error: { readonly message: string }) => new OperationFailed({ message: error.message })

const MiB = 1024 * 1024

const formatBytes = (bytes: number): string =>
  bytes >= 1024 * MiB
    ? `${(bytes / (1024 * MiB)).toFixed(2)} GiB`
    : bytes >= MiB
    ? `${(bytes / MiB).toFixed(1)} MiB`
    : `${bytes} bytes`

const deviceFlag = Flag.String("device").pipe(
  Flag.withDescription(
    "A device: memory:SIZE, file:PATH, sparse:PATH, nbd://HOST[:PORT]/EXPORT or nbd+unix:///EXPORT?socket=PATH (repeat for a group)"
  ),
  Flag.atLeast(1)
)
const jsonFlag = Flag.Boolean("json").pipe(
  Flag.withDescription("Print JSON lines (listening, progress, completed) on stdout"),
  Flag.withDefault(false)
)
const resumeFlag = Flag.Finite("resume-timeout").pipe(
  Flag.withDescription("Seconds to wait for the peer to come back after the connection broke"),
  Flag.withDefault(30)
)
const viaCircuitFlag = Flag.Boolean("via-circuit").pipe(
  Flag.withDescription(
    "Carry the migration in a peer circuit, sharing its connection with other circuits: TLS 1.3 with pinned Ed25519 keys (see --identity, --known-keys, --trust), or --plaintext"
  ),
  Flag.withDefault(false)
)

/** The peer service a `--via-circuit` source registers and a destination opens its circuit to. */
const MIGRATION_SERVICE = "silo-migration"

/** Prints one JSON line, or in text mode one line on stderr. */
const report = (json: boolean, event: Record<string, unknown>, text: string | undefined) =>
  json ? Console.log(JSON.stringify(event)) : text === undefined ? Effect.void : Console.error(text)

/**
 * Reports a peer key that trust on first use just added to the known keys (from inside a TLS handshake, so the
 * report runs on its own).
 */
const reportTrusted = Effect.fnUntraced(function*(json: boolean) {
  const run = Effect.runForkWith(yield* Effect.context<never>())
  return (peer: string, key: string, knownKeys: string) =>
    void run(report(json, { event: "trusted", peer, key, knownKeys }, `added ${key} (from ${peer}) to ${knownKeys}`))
})

/** A name for a device of the group: the file's name, the NBD export's, or `memory<i>`. */
const deviceName = (spec: NbdDeviceSpec.Spec, index: number): string =>
  spec._tag === "Memory"
    ? `memory${index}`
    : spec._tag === "Nbd"
    ? NbdDeviceSpec.shortName(spec)
    : path.basename(spec.path)

// --- serve ---------------------------------------------------------------------------------------------------

const serve = Command.make(
  "serve",
  {
    device: deviceFlag,
    listen: Flag.String("listen").pipe(
      Flag.withDescription("Where to listen: tcp://HOST:PORT, unix:PATH"),
      Flag.withDefault("tcp://127.0.0.1:5170")
    ),
    blockSize: Flag.String("block-size").pipe(
      Flag.withDescription("Migration block size, e.g. 1MiB or 64KiB"),
      Flag.withDefault("1MiB")
    ),
    concurrency: Flag.Int("concurrency").pipe(
      Flag.withDescription("Blocks in flight over all devices (default: 100, or fewer to keep 32 MiB in flight)"),
      Flag.optional
    ),
    compress: Flag.Literals("compress", ["none", "rle", "zeroes", "gzip"]).pipe(
      Flag.withDescription("Compression of the block data"),
      Flag.withDefault("none")
    ),
    size: Flag.String("size").pipe(Flag.withDescription("Size of file: devices (checked)"), Flag.optional),
    resumeTimeout: resumeFlag,
    viaCircuit: viaCircuitFlag,
    ...CircuitSecurity.flags,
    json: jsonFlag
  },
  Effect.fn("migrate.serve")(function*(flags) {
    const specs = yield* Effect.forEach(flags.device, (spec) => parsed(NbdDeviceSpec.parse(spec)))
    const blockSize = yield* parsed(DeviceSpec.parseSize(flags.blockSize))
    if (blockSize === 0) return yield* new BadInput({ message: "--block-size must be at least 1 byte" })
    const concurrency = Option.getOrUndefined(flags.concurrency)
    if (concurrency !== undefined && concurrency < 1) {
      return yield* new BadInput({ message: "--concurrency must be at least 1" })
    }
    if (!(flags.resumeTimeout >= 0)) return yield* new BadInput({ message: "--resume-timeout must be >= 0" })
    const size = Option.isSome(flags.size) ? yield* parsed(DeviceSpec.parseSize(flags.size.value)) : undefined
    const address = yield* parsed(Address.parse(flags.listen))
    const { json } = flags
    const secured = yield* CircuitSecurity.choose(flags.viaCircuit, flags.listen, flags, yield* reportTrusted(json))

    const devices = yield* Effect.forEach(specs, (spec, i) =>
      Effect.map(
        Effect.mapError(NbdDeviceSpec.open(spec, { size }), fromStorage),
        (device): MigrationSource.SourceDevice => ({
          name: deviceName(spec, i),
          device,
          blockSize,
          system: spec._tag === "File" ? "file" : spec._tag === "Sparse" ? "sparsefile" : "memory",
          location: spec._tag === "File" || spec._tag === "Sparse" ? spec.path : undefined
        })
      ))
    const totalBytes = devices.reduce((sum, d) => sum + d.device.size, 0)

    let lastLine = 0
    const source = yield* Effect.mapError(
      MigrationSource.make(devices, {
        compression: compressionNames[flags.compress],
        concurrency,
        progressInterval: json ? Duration.millis(250) : Duration.seconds(1),
        onProgress: ({ device, migration, phase }) =>
          Effect.gen(function*() {
            const now = yield* Clock.currentTimeMillis
            if (!json && phase !== "completed" && now - lastLine < 1000) return
            lastLine = now
            yield* report(json, {
              event: "progress",
              device,
              phase,
              migrated: migration.migratedBlocks,
              ready: migration.readyBlocks,
              total: migration.totalBlocks,
              sent: migration.totalMigratedBlocks
            }, `${device}: ${phase} ${migration.readyBlocks}/${migration.totalBlocks} blocks`)
          })
      }),
      operationFailed
    )
    const listener = yield* (secured !== undefined
      ? CircuitConnection.listener(flags.listen, MIGRATION_SERVICE, { security: secured.security })
      : Effect.map(Transport.listen(address), (l) => ({ address: Address.format(l.address), accept: l.accept }))).pipe(
        Effect.mapError(operationFailed)
      )
    const listening = listener.address
    const security = secured === undefined ? undefined : CircuitSecurity.describe(secured)
    yield* report(
      json,
      { event: "listening", address: listening, ...security?.fields },
      `serving ${devices.length} device(s), ${formatBytes(totalBytes)}, on ${listening}${
        security === undefined ? "" : ` in a circuit, ${security.text}`
      }`
    )
    // Timed from the first connection: waiting for the client is not part of the migration.
    let start: number | undefined
    // Who the connection being tried came from, for the report of a refused one.
    let peer = ""
    const summary = yield* source.serve(
      Effect.flatMap(
        listener.accept,
        (stream) => {
          peer = stream.remoteAddress
          return Effect.tap(PacketConnection.make([stream]), () =>
            Effect.map(Clock.currentTimeMillis, (now) => {
              start ??= now
            }))
        }
      ),
      {
        resumeTimeout: Duration.seconds(flags.resumeTimeout),
        // Port scanners, TLS clients, a destination that refuses the group: say so and wait on.
        onRefused: (error) =>
          Effect.gen(function*() {
            // The migration has not started while no connection was established.
            if ((yield* source.summary).connections === 0) start = undefined
            yield* report(
              json,
              { event: "refused", from: peer, reason: error.message },
              `refused a connection from ${peer}: ${error.message}; still waiting for the destination`
            )
          })
      }
    ).pipe(Effect.mapError(operationFailed))
    const seconds = ((yield* Clock.currentTimeMillis) - (start ?? 0)) / 1000
    const resentBytes = summary.devices.reduce((sum, d) => sum + d.blocksResent * blockSize, 0)
    const finalRound = Math.max(...summary.devices.map((d) => Duration.toMillis(d.finalRound)))
    yield* json
      ? Console.log(JSON.stringify({
        event: "completed",
        bytes: totalBytes,
        seconds,
        connections: summary.connections,
        finalRoundMillis: finalRound,
        resentBytes,
        devices: summary.devices.map((d) => ({ ...d, finalRound: Duration.toMillis(d.finalRound) }))
      }))
      : Console.log(
        `migrated ${devices.length} device(s), ${formatBytes(totalBytes)} in ${seconds.toFixed(2)} s (${
          (totalBytes / MiB / Math.max(seconds, 1e-3)).toFixed(1)
        } MiB/s); final locked round ${finalRound} ms; ${
          formatBytes(resentBytes)
        } sent again; ${summary.connections} connection(s)`
      )
  }, Effect.scoped)
).pipe(Command.withDescription("Serve live devices to the first client and migrate them (Silo device group)"))

// --- connect -------------------------------------------------------------------------------------------------

/**
 * Opens the spec given for an incoming device: an existing file or sparse file must have the incoming size; a
 * missing one is created with it; a memory device's size must match.
 */
const openIncoming = (
  spec: NbdDeviceSpec.Spec,
  incoming: MigrationDestination.IncomingDevice
): Effect.Effect<BlockDevice, StorageError.StorageError, Transport.Transport | Scope.Scope> => {
  const { size } = incoming.info
  if (spec._tag === "Nbd") return NbdDeviceSpec.open(spec, { size })
  const name = spec._tag === "Memory" ? `memory:${spec.size}` : `${spec._tag.toLowerCase()}:${spec.path}`
  const wrongSize = (actual: number) =>
    Effect.fail(StorageError.make(
      name,
      new StorageError.Unsupported({
        detail: `${actual} bytes, but the incoming device ${incoming.info.name} has ${size}`
      })
    ))
  if (spec._tag === "Memory") return spec.size === size ? DeviceSpec.open(spec) : wrongSize(spec.size)
  const exists = fs.existsSync(spec.path)
  if (exists && spec._tag === "File") {
    const actual = fs.statSync(spec.path).size
    if (actual !== size) return wrongSize(actual)
  }
  return DeviceSpec.open(spec, { size, create: !exists })
}

const connect = Command.make(
  "connect",
  {
    from: Flag.String("from").pipe(Flag.withDescription("The source: tcp://HOST:PORT or unix:PATH")),
    device: deviceFlag,
    expose: Flag.String("expose").pipe(
      Flag.withDescription("Serve the devices as NBD exports here (tcp://HOST:PORT, unix:PATH) while they arrive"),
      Flag.optional
    ),
    resumeTimeout: resumeFlag,
    viaCircuit: viaCircuitFlag,
    ...CircuitSecurity.flags,
    json: jsonFlag
  },
  Effect.fn("migrate.connect")(function*(flags) {
    const specs = yield* Effect.forEach(flags.device, (spec) => parsed(NbdDeviceSpec.parse(spec)))
    const address = yield* parsed(Address.parse(flags.from))
    const secured = yield* CircuitSecurity.choose(flags.viaCircuit, flags.from, flags, yield* reportTrusted(flags.json))
    const exposeAddress = Option.isSome(flags.expose) ? yield* parsed(Address.parse(flags.expose.value)) : undefined
    // Bound before the migration starts, so an address in use fails the command at once.
    const expose = exposeAddress === undefined
      ? undefined
      : yield* Effect.mapError(Transport.listen(exposeAddress), operationFailed)
    if (!(flags.resumeTimeout >= 0)) return yield* new BadInput({ message: "--resume-timeout must be >= 0" })
    const { json } = flags
    const transport = yield* Transport.Transport
    const destination = yield* MigrationDestination.make({
      device: (incoming) => {
        const spec = specs[incoming.index - 1]
        if (incoming.count !== specs.length || spec === undefined) {
          return Effect.fail(StorageError.make(
            "device group",
            new StorageError.Unsupported({
              detail: `the source sends ${incoming.count} device(s) but ${specs.length} --device were given`
            })
          ))
        }
        return Effect.provideService(openIncoming(spec, incoming), Transport.Transport, transport)
      }
    })
    const start = yield* Clock.currentTimeMillis
    yield* Effect.forkScoped(Effect.gen(function*() {
      const devices = yield* Deferred.await(destination.devices)
      for (const from of devices) {
        yield* report(json, {
          event: "device",
          index: from.dev,
          name: from.info.name,
          size: from.info.size,
          blockSize: from.info.blockSize
        }, `receiving ${from.info.name} (${formatBytes(from.info.size)}) into ${flags.device[from.dev - 1]}`)
      }
      if (expose !== undefined) {
        // Reads of blocks that have not arrived wait for them in the waiting cache (and ask the source first).
        const exports = devices.map((from) =>
          NbdExport.make(from.info.name, from.local, { preferredBlockSize: from.info.blockSize })
        )
        yield* Effect.forkScoped(
          Effect.catch(NbdServer.serve(expose, { exports }), (error) => Console.error(`--expose: ${error.message}`))
        )
        const exposed = Address.format(expose.address)
        yield* report(
          json,
          { event: "exposed", address: exposed, exports: exports.map((e) => e.name) },
          `exposing ${devices.length} device(s) over NBD on ${exposed}`
        )
      }
    }))
    if (secured !== undefined) {
      const security = CircuitSecurity.describe(secured)
      yield* report(
        json,
        { event: "connecting", from: flags.from, ...security.fields },
        `connecting to ${flags.from} in a circuit, ${security.text}`
      )
    }
    const circuitDial = secured === undefined
      ? undefined
      : yield* CircuitConnection.dialer(MIGRATION_SERVICE, { security: secured.security })
    const dial: Effect.Effect<
      Transport.Connection,
      TransportError.TransportError | OperationFailed | Address.AddressError,
      Scope.Scope | Transport.Transport
    > = circuitDial === undefined || secured === undefined
      ? Transport.dial(address)
      : Effect.mapError(circuitDial(flags.from), CircuitSecurity.dialFailure(flags.from, secured))
    yield* destination.run(
      Effect.flatMap(dial, (stream) => PacketConnection.make([stream])),
      { resumeTimeout: Duration.seconds(flags.resumeTimeout) }
    ).pipe(
      Effect.mapError((error) => error._tag === "StorageError" ? fromStorage(error) : operationFailed(error))
    )
    const seconds = ((yield* Clock.currentTimeMillis) - start) / 1000
    const devices = yield* Deferred.await(destination.devices)
    const bytes = devices.reduce((sum, from) => sum + from.info.size, 0)
    yield* json
      ? Console.log(JSON.stringify({ event: "completed", bytes, seconds, devices: devices.map((d) => d.info.name) }))
      : Console.log(`received ${devices.length} device(s), ${formatBytes(bytes)} in ${seconds.toFixed(2)} s`)
  }, Effect.scoped)
).pipe(Command.withDescription("Receive a migration into local devices; exits once every device is completed"))

/**
 * The `migrate` command and its subcommands; they need a `Transport`.
 *
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make("migrate").pipe(
  Command.withDescription("Live migration of block devices (Silo protocol)"),
  Command.withSubcommands([serve, connect]),
  Command.provide(Transport.Transport.layer)
)
