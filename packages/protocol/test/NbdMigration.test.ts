import { assert, describe, it } from "@effect/vitest"
import * as Device from "@tessera/storage/Device"
import * as Memory from "@tessera/storage/Memory"
import { type BlockDevice, wrap } from "@tessera/storage/Provider"
import { Deferred, Effect, Fiber, type Scope } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Address from "../src/Address.ts"
import * as MigrationDestination from "../src/MigrationDestination.ts"
import * as MigrationSource from "../src/MigrationSource.ts"
import * as NbdClient from "../src/NbdClient.ts"
import * as NbdExport from "../src/NbdExport.ts"
import * as NbdServer from "../src/NbdServer.ts"
import * as PacketConnection from "../src/PacketConnection.ts"
import * as Transport from "../src/Transport.ts"
import { nbdkit, nbdUri, run } from "./utils/nbdPeers.ts"
import { pseudoRandom, tempDir } from "./utils/transport.ts"

const KiB = 1024
const MiB = 1024 * KiB

const live = <A, E>(effect: Effect.Effect<A, E, Transport.Transport | Scope.Scope>) =>
  effect.pipe(Effect.scoped, Effect.timeout("60 seconds"), Effect.provide(Transport.Transport.layer))

/** Migrates `devices` over TCP into what `destinationDevice` makes; returns the destination devices. */
const migrate = Effect.fnUntraced(function*(
  devices: ReadonlyArray<BlockDevice>,
  destinationDevice: (
    index: number,
    size: number
  ) => Effect.Effect<BlockDevice, never, Scope.Scope | Transport.Transport>
) {
  const transport = yield* Transport.Transport
  const source = yield* MigrationSource.make(
    devices.map((device, i) => ({ name: `disk${i}`, device, blockSize: 64 * KiB })),
    { concurrency: 16 }
  )
  const listener = yield* Transport.listen("tcp://127.0.0.1:0")
  const made: Array<BlockDevice> = []
  const destination = yield* MigrationDestination.make({
    device: ({ index, info }) =>
      destinationDevice(index, info.size).pipe(
        Effect.tap((device) => Effect.sync(() => made.push(device))),
        Effect.provideService(Transport.Transport, transport)
      )
  })
  const served = yield* Effect.forkChild(
    source.serve(Effect.flatMap(listener.accept, (stream) => PacketConnection.make([stream])))
  )
  yield* destination.run(Effect.flatMap(Transport.dial(listener.address), (stream) => PacketConnection.make([stream])))
  yield* Fiber.join(served)
  return made
})

describe("NBD and migration", () => {
  it.live("migrates from nbdkit memory and nbdkit file into nbdkit memory through the NBD client", () =>
    live(Effect.gen(function*() {
      const dir = yield* tempDir
      const file = path.join(dir, "disk.img")
      fs.writeFileSync(file, pseudoRandom(8 * MiB + 4096, 1))
      const memorySocket = yield* nbdkit(dir, ["memory", "16M"])
      const fileSocket = yield* nbdkit(dir, ["file", file])
      const fromMemory = yield* NbdClient.connect(`unix:${memorySocket}`)
      yield* fromMemory.writeAt(pseudoRandom(6 * MiB, 2), MiB)
      const fromFile = yield* NbdClient.connect(`unix:${fileSocket}`)
      const targets: Array<string> = []
      const made = yield* migrate([fromMemory, fromFile], (_, size) =>
        Effect.gen(function*() {
          const socket = yield* Effect.orDie(nbdkit(dir, ["memory", String(size)]))
          targets.push(socket)
          return yield* Effect.orDie(NbdClient.connect(`unix:${socket}`))
        }))
      assert.isTrue(yield* Device.equals(fromMemory, made[0]!))
      assert.isTrue(yield* Device.equals(fromFile, made[1]!))
      // And the nbdkit destinations hold it, as a peer sees them.
      const out = path.join(dir, "back.img")
      yield* run("nbdcopy", [`nbd+unix:///?socket=${targets[1]}`, out])
      assert.isTrue(Buffer.compare(fs.readFileSync(out), fs.readFileSync(file)) === 0)
    })))

  it.live("an export of a migration destination serves nbdcopy the source's data while the migration runs", () =>
    live(Effect.gen(function*() {
      const dir = yield* tempDir
      const size = 16 * MiB
      const disk = yield* Memory.make(size)
      yield* disk.writeAt(pseudoRandom(size, 3), 0)
      // A slow source that starts sending only once nbdcopy has connected: the migration then takes seconds, so
      // nbdcopy's reads arrive before their blocks (and are served first, through NeedAt).
      const started = yield* Deferred.make<void>()
      const slow = wrap(disk, "slow", {
        readAt: (buffer, offset) =>
          Effect.andThen(
            Deferred.await(started),
            Effect.andThen(Effect.sleep("15 millis"), disk.readAt(buffer, offset))
          )
      })
      const source = yield* MigrationSource.make([{ name: "live", device: slow, blockSize: 64 * KiB }], {
        concurrency: 2
      })
      const listener = yield* Transport.listen("tcp://127.0.0.1:0")
      const destination = yield* MigrationDestination.make({ device: ({ info }) => Memory.make(info.size) })
      const served = yield* Effect.forkChild(
        source.serve(Effect.flatMap(listener.accept, (stream) => PacketConnection.make([stream])))
      )
      const received = yield* Effect.forkChild(
        destination.run(Effect.flatMap(Transport.dial(listener.address), (stream) => PacketConnection.make([stream])))
      )
      const devices = yield* Deferred.await(destination.devices)
      const server = yield* NbdServer.make("tcp://127.0.0.1:0", {
        exports: devices.map((from) => NbdExport.make(from.info.name, from.local))
      })
      yield* Effect.forkChild(Effect.gen(function*() {
        while (server.connections() === 0) yield* Effect.sleep("5 millis")
        yield* Deferred.succeed(started, undefined)
      }))
      assert.isFalse(yield* destination.completed, "the migration is still running when nbdcopy starts")
      const out = path.join(dir, "live.img")
      yield* run("nbdcopy", [nbdUri(Address.format(server.address), "live"), out])
      const metrics = yield* devices[0]!.local.metrics
      assert.isAbove(metrics.waitForBlock, 0, "nbdcopy read blocks that had not arrived and waited for them")
      const expected = new Uint8Array(size)
      yield* disk.readAt(expected, 0)
      assert.isTrue(Buffer.compare(fs.readFileSync(out), expected) === 0)
      yield* Fiber.join(received)
      yield* Fiber.join(served)
    })))
})
