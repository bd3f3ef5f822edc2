/**
 * `tessera device create SPEC --size SIZE [--random SEED]` makes a test image; `tessera device hash SPEC` prints
 * the sha256 of a device's contents (the check that two ends of a migration hold the same bytes).
 *
 * @since 0.1.0
 */
import * as NbdDeviceSpec from "@tessera/protocol/NbdDeviceSpec"
import * as Transport from "@tessera/protocol/Transport"
import { Device, DeviceSpec, type StorageError } from "@tessera/storage"
import * as Argument from "effect/cli/Argument"
import * as Command from "effect/cli/Command"
import * as Flag from "effect/cli/Flag"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Hex from "effect/encoding/Hex"
import * as Option from "effect/Option"
import { BadInput, fromStorage, parsed } from "./CliFailure.ts"

const operation = <A, R>(effect: Effect.Effect<A, StorageError.StorageError, R>) => Effect.mapError(effect, fromStorage)

const specArgument = Argument.String("spec").pipe(
  Argument.withDescription(
    "Device: memory:SIZE, file:PATH, sparse:PATH, nbd://HOST[:PORT]/EXPORT or nbd+unix:///EXPORT?socket=PATH"
  )
)

const sizeFlag = Flag.String("size").pipe(Flag.withDescription("Device size, e.g. 256MiB or 1GiB"), Flag.optional)

const create = Command.make(
  "create",
  {
    spec: specArgument,
    size: Flag.String("size").pipe(Flag.withDescription("Device size, e.g. 256MiB or 1GiB")),
    random: Flag.String("random").pipe(
      Flag.withDescription("Fill with pseudo-random bytes from this seed (the same seed gives the same image)"),
      Flag.optional
    ),
    json: Flag.Boolean("json").pipe(Flag.withDescription("Print the result as JSON"), Flag.withDefault(false))
  },
  Effect.fn("device.create")(function*({ json, random, size, spec }) {
    const device = yield* parsed(NbdDeviceSpec.parse(spec))
    const bytes = yield* parsed(DeviceSpec.parseSize(size))
    if (device._tag === "Memory") {
      return yield* new BadInput({ message: "a memory device lives only inside a process; create file: or sparse:" })
    }
    const sha256 = yield* operation(Effect.scoped(Effect.gen(function*() {
      // An NBD export is not created, only filled: its size must be the one given.
      const opened = yield* NbdDeviceSpec.open(device, { create: true, size: bytes })
      if (Option.isSome(random)) yield* Device.fillPseudoRandom(opened, random.value)
      yield* opened.flush
      return Hex.encode(yield* Device.sha256(opened))
    })))
    yield* Console.log(json ? JSON.stringify({ spec, size: bytes, sha256 }) : `${spec} ${bytes} bytes sha256 ${sha256}`)
  })
).pipe(Command.withDescription("Create a file or sparse device image, zeroed or filled from a seed"))

const hash = Command.make(
  "hash",
  {
    spec: specArgument,
    size: sizeFlag,
    json: Flag.Boolean("json").pipe(Flag.withDescription("Print the result as JSON"), Flag.withDefault(false))
  },
  Effect.fn("device.hash")(function*({ json, size, spec }) {
    const device = yield* parsed(NbdDeviceSpec.parse(spec))
    const bytes = Option.isSome(size) ? yield* parsed(DeviceSpec.parseSize(size.value)) : undefined
    const result = yield* operation(Effect.scoped(Effect.gen(function*() {
      const opened = yield* NbdDeviceSpec.open(device, { size: bytes })
      return { size: opened.size, sha256: Hex.encode(yield* Device.sha256(opened)) }
    })))
    yield* Console.log(json ? JSON.stringify({ spec, ...result }) : `${result.sha256}  ${spec}`)
  })
).pipe(Command.withDescription("Print the sha256 of a device's contents"))

/**
 * The `device` command and its subcommands.
 *
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make("device").pipe(
  Command.withDescription("Make and check device images"),
  Command.withSubcommands([create, hash]),
  Command.provide(Transport.Transport.layer)
)
