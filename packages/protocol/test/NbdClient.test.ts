import { assert, describe, it } from "@effect/vitest"
import * as Device from "@tessera/storage/Device"
import * as Memory from "@tessera/storage/Memory"
import { Effect, Exit, Scope } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Address from "../src/Address.ts"
import * as NbdClient from "../src/NbdClient.ts"
import * as NbdExport from "../src/NbdExport.ts"
import * as NbdServer from "../src/NbdServer.ts"
import * as Transport from "../src/Transport.ts"
import { nbdkit, run } from "./utils/nbdPeers.ts"
import { pseudoRandom, tempDir } from "./utils/transport.ts"

const KiB = 1024
const MiB = 1024 * KiB

const live = <A, E>(effect: Effect.Effect<A, E, Transport.Transport | Scope.Scope>) =>
  effect.pipe(Effect.scoped, Effect.timeout("60 seconds"), Effect.provide(Transport.Transport.layer))

const read = Effect.fnUntraced(
  function*(device: { readonly readAt: NbdClient.NbdClient["readAt"] }, offset: number, length: number) {
    const out = new Uint8Array(length)
    assert.strictEqual(yield* device.readAt(out, offset), length)
    return out
  }
)

describe("NbdClient", () => {
  it.live("reads and writes nbdkit memory with many requests in flight, flushes, and sees its holes", () =>
    live(Effect.gen(function*() {
      const dir = yield* tempDir
      const socket = yield* nbdkit(dir, ["memory", "32M"])
      const client = yield* NbdClient.connect(`unix:${socket}`, { requestSize: 256 * KiB })
      assert.strictEqual(client.size, 32 * MiB)
      assert.isFalse(client.readOnly)
      assert.isTrue(client.structured)
      const data = pseudoRandom(5 * MiB + 123, 1)
      assert.strictEqual(yield* client.writeAt(data, 3 * MiB + 7), data.length)
      yield* client.flush
      assert.deepStrictEqual(yield* read(client, 3 * MiB + 7, data.length), data)
      // Past the end: cut short, as every device.
      assert.strictEqual(yield* client.writeAt(new Uint8Array(100).fill(1), 32 * MiB - 10), 10)
      // nbdkit memory is sparse: what was never written is a hole.
      const runs = yield* client.allocation!(0, 32 * MiB)
      assert.isFalse(runs[0]!.allocated)
      assert.isTrue(runs.some((r) => r.allocated))
      assert.strictEqual(runs.reduce((sum, r) => sum + r.length, 0), 32 * MiB)
      // Checked against the real peer: nbdcopy reads back what the client wrote.
      const out = path.join(dir, "out.img")
      yield* run("nbdcopy", [`nbd+unix:///?socket=${socket}`, out])
      assert.deepStrictEqual(
        new Uint8Array(fs.readFileSync(out).subarray(3 * MiB + 7, 3 * MiB + 7 + data.length)),
        data
      )
    })))

  it.live("reads an nbdkit file export and refuses to write a read-only one", () =>
    live(Effect.gen(function*() {
      const dir = yield* tempDir
      const file = path.join(dir, "disk.img")
      const bytes = pseudoRandom(3 * MiB + 5, 2)
      fs.writeFileSync(file, bytes)
      const socket = yield* nbdkit(dir, ["file", file], ["-r"])
      const client = yield* NbdClient.connect(`unix:${socket}`)
      assert.isTrue(client.readOnly)
      assert.strictEqual(client.size, bytes.length)
      assert.deepStrictEqual(yield* read(client, 0, bytes.length), bytes)
      const refused = yield* Effect.flip(client.writeAt(new Uint8Array(10), 0))
      assert.strictEqual(refused.reason._tag, "Unsupported")
    })))

  it.live("aligns requests to the server's minimum block size (read around, merge and write back)", () =>
    live(Effect.gen(function*() {
      const disk = yield* Memory.make(MiB)
      yield* disk.writeAt(pseudoRandom(MiB, 3), 0)
      const nbdExport: NbdExport.NbdExport = {
        ...NbdExport.make("d", disk),
        blockSizes: { minimum: 512, preferred: 4096, maximum: 64 * KiB }
      }
      const server = yield* NbdServer.make("tcp://127.0.0.1:0", { exports: [nbdExport] })
      const client = yield* NbdClient.connect(Address.format(server.address), { exportName: "d" })
      assert.deepStrictEqual(client.blockSizes, { minimum: 512, preferred: 4096, maximum: 64 * KiB })
      const expected = pseudoRandom(MiB, 3)
      assert.deepStrictEqual(yield* read(client, 1000, 200_001), expected.subarray(1000, 201_001))
      const patch = pseudoRandom(70_001, 4)
      yield* client.writeAt(patch, 3333)
      expected.set(patch, 3333)
      assert.isTrue(yield* Device.equals(client, yield* Effect.succeed(disk)))
      assert.deepStrictEqual(yield* read(disk, 0, MiB), expected)
    })))

  it.live("a server that goes away fails the requests in flight and later ones with a clear error", () =>
    live(Effect.gen(function*() {
      const dir = yield* tempDir
      const kit = yield* Scope.make()
      const socket = yield* Scope.provide(nbdkit(dir, ["memory", "1M"]), kit)
      const client = yield* NbdClient.connect(`unix:${socket}`)
      assert.strictEqual(yield* client.readAt(new Uint8Array(10), 0), 10)
      yield* Scope.close(kit, Exit.void)
      // Until nbdkit has gone: the first read that fails.
      const failed = yield* Effect.eventually(
        Effect.flip(Effect.andThen(Effect.sleep("20 millis"), client.readAt(new Uint8Array(10), 0)))
      )
      assert.strictEqual(failed.reason._tag, "IoFailure")
      assert.include(failed.message, "nbd+unix")
    })))
})
