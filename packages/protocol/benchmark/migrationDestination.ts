/**
 * Migration, destination side: a `MigrationDestination` whose device is a memory device, or a file device in a
 * fresh temp dir (deleted at exit); on `go` it dials the source and `receive`s, timed from just before the dial
 * to `receive` succeeding.
 */
import * as DeviceSpec from "@tessera/storage/DeviceSpec"
import * as Memory from "@tessera/storage/Memory"
import { type BlockDevice, wrap } from "@tessera/storage/Provider"
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { performance } from "node:perf_hooks"
import * as MigrationDestination from "../src/MigrationDestination.ts"
import * as PacketConnection from "../src/PacketConnection.ts"
import * as Transport from "../src/Transport.ts"
import { atExit, config, MiB, profile, runRole, sampler, send, usage, vmHWM, waitForGo } from "./child.ts"
import { answerHashes, run } from "./effectChild.ts"

runRole(async () => {
  let directory: string | undefined
  if (config.destinationDevice === "file") {
    const created = Fs.mkdtempSync(Path.join(Os.tmpdir(), "tessera-migration-bench-"))
    atExit.push(() => Fs.rmSync(created, { recursive: true, force: true }))
    directory = created
  }
  // Time spent in the device's writes (a memory device's first write to a page includes the page fault).
  let deviceWriteMs = 0
  const timed = (device: BlockDevice): BlockDevice =>
    wrap(device, device.name, {
      writeAt: (data, offset) =>
        Effect.suspend(() => {
          const started = performance.now()
          return Effect.ensuring(
            device.writeAt(data, offset),
            Effect.sync(() => (deviceWriteMs += performance.now() - started))
          )
        })
    })
  // BENCH_DIAG_PREFAULT=1 (a diagnostic, not a valid run): the memory device is made and every page touched
  // before the timed part, to show what the page faults of the first writes cost.
  const prefaulted = process.env.BENCH_DIAG_PREFAULT === "1" && directory === undefined
    ? await run(Effect.tap(Memory.make(config.size, "prefaulted"), (device) =>
      Effect.gen(function*() {
        const zeros = new Uint8Array(MiB)
        for (let offset = 0; offset < config.size; offset += MiB) yield* device.writeAt(zeros, offset)
      })))
    : undefined
  const made: Array<BlockDevice> = []
  const destination = await run(MigrationDestination.make({
    device: ({ info }) =>
      Effect.map(
        prefaulted !== undefined
          ? Effect.succeed(prefaulted)
          : directory === undefined
          ? Memory.make(info.size, info.name)
          : DeviceSpec.open({ _tag: "File", path: Path.join(directory, "device.img") }, {
            create: true,
            size: info.size
          }),
        (device) => {
          made.push(device)
          return timed(device)
        }
      )
  }))
  send({ type: "ready", address: "", rss: process.memoryUsage.rss() })
  const address = await waitForGo()

  const profiled = await profile(`destination-${config.blockSize}`)
  const rssBefore = process.memoryUsage.rss()
  const memory = sampler()
  const used = usage()
  const started = performance.now()
  const packets = await run(Effect.gen(function*() {
    const connection = yield* PacketConnection.make([yield* Transport.dial(address)])
    yield* destination.receive(connection)
    return connection.metrics()
  }))
  const seconds = (performance.now() - started) / 1e3
  const cpuUsed = used()
  const peaks = { ...memory.stop(), vmHWM: vmHWM() }
  await profiled()
  send({
    type: "received",
    bytes: config.size,
    seconds,
    ...cpuUsed,
    rssBefore,
    ...peaks,
    // The sum of the write times is the time spent writing only when writes do not overlap (memory devices).
    deviceWriteMs: directory === undefined ? deviceWriteMs : undefined,
    packets
  })
  await answerHashes(made[0]!)
})
