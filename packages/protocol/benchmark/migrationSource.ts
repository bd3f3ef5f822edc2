/**
 * Migration, source side: a `MigrationSource` over one device, listening on 127.0.0.1, serving the first
 * connection. The device is a memory device filled with pseudo-random bytes up front, or (`generated`) a
 * read-only device whose pseudo-random bytes are made on each read, for sizes not worth holding in memory.
 * With `writeRate`, a writer (the application) writes that fraction of the blocks per second through the
 * source's writer, each time one random 4 KiB page of a random block, from the moment the destination connects.
 */
import * as Device from "@tessera/storage/Device"
import * as Memory from "@tessera/storage/Memory"
import { type BlockDevice, clip } from "@tessera/storage/Provider"
import * as StorageError from "@tessera/storage/StorageError"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Result from "effect/Result"
import { createCipheriv, createHash, getRandomValues, randomInt } from "node:crypto"
import { performance } from "node:perf_hooks"
import * as Address from "../src/Address.ts"
import * as MigrationSource from "../src/MigrationSource.ts"
import * as PacketConnection from "../src/PacketConnection.ts"
import * as Transport from "../src/Transport.ts"
import { config, MiB, profile, runRole, sampler, send, usage } from "./child.ts"
import { answerHashes, run } from "./effectChild.ts"

const PAGE = 4096

/**
 * A read-only device whose bytes are the AES-128-CTR keystream of a key derived from `seed`, made on each read:
 * pseudo-random content of any size without holding it in memory.
 */
const generated = (size: number, seed: string): BlockDevice => {
  const name = `generated:${size}`
  const key = createHash("sha256").update(`tessera-bench:${seed}`).digest().subarray(0, 16)
  const zeros = new Uint8Array(4 * MiB)
  return {
    name,
    size,
    readAt: (buffer, offset) =>
      Effect.suspend(() => {
        const clipped = clip(name, size, offset, buffer.length)
        if (Result.isFailure(clipped)) return Effect.fail(clipped.failure)
        const n = clipped.success
        // The counter block of byte `offset`, then the keystream from there.
        const counter = new Uint8Array(16)
        new DataView(counter.buffer).setBigUint64(8, BigInt(Math.floor(offset / 16)))
        const cipher = createCipheriv("aes-128-ctr", key, counter)
        cipher.update(zeros.subarray(0, offset % 16))
        for (let done = 0; done < n;) {
          const length = Math.min(zeros.length, n - done)
          buffer.set(cipher.update(zeros.subarray(0, length)), done)
          done += length
        }
        return Effect.succeed(n)
      }),
    writeAt: () =>
      Effect.fail(StorageError.make(name, new StorageError.Unsupported({ detail: "a generated device is read-only" }))),
    flush: Effect.void,
    cancelWrites: () => Effect.void
  }
}

const randomMemory = Effect.fnUntraced(function*(size: number, seed: string) {
  const device = yield* Memory.make(size, "bench")
  yield* Device.fillPseudoRandom(device, seed)
  return device
})

runRole(async () => {
  const { blockSize, size } = config
  const device = config.sourceDevice === "generated"
    ? generated(size, config.seed)
    : await run(randomMemory(size, config.seed))
  const totalBlocks = Math.ceil(size / blockSize)
  const migration = await run(MigrationSource.make([{ name: "bench", device, blockSize }], {
    compression: "None",
    concurrency: config.concurrency,
    finalRoundBlocks: config.finalRoundBlocks,
    maxDirtyRounds: config.maxDirtyRounds
  }))
  const listener = await run(Transport.listen("tcp://127.0.0.1:0"))
  const connected = Deferred.makeUnsafe<ReturnType<typeof usage>>()
  let connection: PacketConnection.PacketConnection | undefined
  const next = Effect.flatMap(listener.accept, (stream) =>
    Effect.andThen(
      Deferred.succeed(connected, usage()),
      Effect.tap(PacketConnection.make([stream]), (made) => Effect.sync(() => (connection = made)))
    ))

  let writes = 0
  const writer = Effect.gen(function*() {
    yield* Deferred.await(connected)
    const interval = 1000 / (config.writeRate * totalBlocks)
    const page = new Uint8Array(PAGE)
    const pages = Math.max(1, Math.floor(blockSize / PAGE))
    const started = performance.now()
    for (let k = 1;; k++) {
      const wait = started + k * interval - performance.now()
      if (wait > 0) yield* Effect.sleep(Duration.millis(wait))
      getRandomValues(page)
      const offset = randomInt(totalBlocks) * blockSize + randomInt(pages) * PAGE
      yield* migration.writers[0]!.writeAt(page.subarray(0, Math.min(PAGE, size - offset)), offset)
      writes++
    }
  })
  const writing = config.writeRate > 0 ? Effect.runFork(writer) : undefined

  send({ type: "ready", address: Address.format(listener.address), rss: process.memoryUsage.rss() })
  const memory = sampler()
  const profiled = await profile(`source-${blockSize}`)
  const summary = await run(migration.serve(next))
  const cpu = (await Effect.runPromise(Deferred.await(connected)))()
  const rssPeak = memory.stop().rssPeakSampled
  await profiled()
  // Writers stay held after Completed: the write waiting for them never lands.
  if (writing !== undefined) await Effect.runPromise(Fiber.interrupt(writing))
  const [state] = summary.devices
  send({
    type: "served",
    ...cpu,
    blocksSent: state!.blocksSent,
    blocksResent: state!.blocksResent,
    dirtyRounds: state!.dirtyRounds,
    finalRoundMs: Duration.toMillis(state!.finalRound),
    writes,
    rssPeak,
    packets: connection?.metrics()
  })
  await answerHashes(device)
})
