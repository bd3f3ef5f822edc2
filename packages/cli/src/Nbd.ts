/**
 * `tessera nbd serve --device SPEC [--name EXPORT] ... --listen ADDR [--read-only]` serves devices as NBD
 * exports (to qemu, nbdcopy, nbdinfo or the kernel's nbd-client) until it is stopped. Each `--device` is one
 * export; the `--name`s name them in order (the default is the file name, `memoryN`, or the NBD export name of
 * a device that is itself an NBD export). Output: one line saying where it listens, or with `--json` a
 * `listening` JSON line with the address and the exports.
 *
 * @since 0.1.0
 */
import * as Address from "@tessera/protocol/Address"
import * as NbdDeviceSpec from "@tessera/protocol/NbdDeviceSpec"
import * as NbdExport from "@tessera/protocol/NbdExport"
import * as NbdServer from "@tessera/protocol/NbdServer"
import * as Transport from "@tessera/protocol/Transport"
import * as DeviceSpec from "@tessera/storage/DeviceSpec"
import * as Command from "effect/cli/Command"
import * as Flag from "effect/cli/Flag"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import { BadInput, fromStorage, OperationFailed, parsed } from "./CliFailure.ts"

/**
 * The export names for the devices: the `--name`s in order, then a default per device, `memoryN` for memory
 * devices; fails when two would be the same.
 */
const exportNames = (
  specs: ReadonlyArray<NbdDeviceSpec.Spec>,
  names: ReadonlyArray<string>
): Result.Result<ReadonlyArray<string>, BadInput> => {
  if (names.length > specs.length) {
    return Result.fail(new BadInput({ message: `${names.length} --name for ${specs.length} --device` }))
  }
  const chosen = specs.map((spec, i) =>
    names[i] ?? (spec._tag === "Memory" ? `memory${i}` : NbdDeviceSpec.shortName(spec))
  )
  const seen = new Set<string>()
  for (const name of chosen) {
    if (seen.has(name)) {
      return Result.fail(new BadInput({ message: `two exports would be named ${JSON.stringify(name)}` }))
    }
    if (new TextEncoder().encode(name).length > 4096) {
      return Result.fail(new BadInput({ message: "an export name is longer than 4096 bytes" }))
    }
    seen.add(name)
  }
  return Result.succeed(chosen)
}

/** What clients are told about an export: its kind, not the local path behind it. */
const describe = (spec: NbdDeviceSpec.Spec): string =>
  spec._tag === "Memory"
    ? "tessera memory device"
    : spec._tag === "Nbd"
    ? "tessera re-export of an NBD export"
    : `tessera ${spec._tag === "File" ? "file" : "sparse file"} device`

const serve = Command.make(
  "serve",
  {
    device: Flag.String("device").pipe(
      Flag.withDescription(
        "A device to export: memory:SIZE, file:PATH, sparse:PATH, nbd://HOST[:PORT]/EXPORT or nbd+unix:///EXPORT?socket=PATH (repeat for several exports)"
      ),
      Flag.atLeast(1)
    ),
    name: Flag.String("name").pipe(
      Flag.withDescription("The export name of the --device in the same position (repeat)"),
      Flag.atLeast(0)
    ),
    listen: Flag.String("listen").pipe(
      Flag.withDescription("Where to listen: tcp://HOST:PORT or unix:PATH"),
      Flag.withDefault("tcp://127.0.0.1:10809")
    ),
    readOnly: Flag.Boolean("read-only").pipe(
      Flag.withDescription("Refuse writes, trims and zeroes on every export"),
      Flag.withDefault(false)
    ),
    size: Flag.String("size").pipe(Flag.withDescription("Size of file: devices (checked)"), Flag.optional),
    json: Flag.Boolean("json").pipe(Flag.withDescription("Print a JSON line when listening"), Flag.withDefault(false))
  },
  Effect.fn("nbd.serve")(function*(flags) {
    const specs = yield* Effect.forEach(flags.device, (spec) => parsed(NbdDeviceSpec.parse(spec)))
    const names = yield* Effect.fromResult(exportNames(specs, flags.name))
    const address = yield* parsed(Address.parse(flags.listen))
    const size = Option.isSome(flags.size) ? yield* parsed(DeviceSpec.parseSize(flags.size.value)) : undefined
    const exports = yield* Effect.forEach(specs, (spec, i) =>
      Effect.map(
        Effect.mapError(NbdDeviceSpec.open(spec, { size }), fromStorage),
        (device) => NbdExport.make(names[i]!, device, { readOnly: flags.readOnly, description: describe(spec) })
      ))
    const server = yield* NbdServer.make(address, { exports }).pipe(
      Effect.mapError((error) => new OperationFailed({ message: error.message }))
    )
    const listening = Address.format(server.address)
    yield* flags.json
      ? Console.log(JSON.stringify({
        event: "listening",
        address: listening,
        exports: exports.map((e) => ({ name: e.name, size: e.device.size, readOnly: e.readOnly }))
      }))
      : Console.log(
        `serving ${exports.length} NBD export(s) (${names.map((n) => JSON.stringify(n)).join(", ")}) on ${listening}`
      )
    return yield* Effect.never
  }, Effect.scoped)
).pipe(Command.withDescription("Serve devices as NBD exports until stopped"))

/**
 * The `nbd` command and its subcommands; they need a `Transport`.
 *
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make("nbd").pipe(
  Command.withDescription("NBD exports of devices (qemu, nbdcopy, nbdinfo, the kernel client)"),
  Command.withSubcommands([serve]),
  Command.provide(Transport.Transport.layer)
)
