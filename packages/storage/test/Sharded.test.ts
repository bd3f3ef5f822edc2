import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Scope } from "effect"
import * as path from "node:path"
import * as File from "../src/File.ts"
import { Device, Memory, Provider, StorageError } from "../src/index.ts"
import * as Sharded from "../src/Sharded.ts"
import { stress } from "./utils/stress.ts"
import { tempDir } from "./utils/tempDir.ts"

const bytes = (length: number, seed: number) => Uint8Array.from({ length }, (_, i) => (i * 31 + seed) & 0xff)

const memoryShards = (size: number, shardSize: number) =>
  Sharded.make({ size, shardSize, makeShard: (index, shardBytes) => Memory.make(shardBytes, `memory#${index}`) })

describe("Sharded", () => {
  it.effect("asks the factory for each shard's size, the last one short", () =>
    Effect.gen(function*() {
      const asked: Array<[number, number]> = []
      const device = yield* Sharded.make({
        size: 25_000,
        shardSize: 10_000,
        makeShard: (index, size) => {
          asked.push([index, size])
          return Memory.make(size)
        }
      })
      assert.deepStrictEqual(asked, [[0, 10_000], [1, 10_000], [2, 5_000]])
      assert.strictEqual(device.size, 25_000)
      assert.strictEqual(device.name, "sharded:25000/10000")
    }))

  it.effect("layer holds the device as the Provider", () =>
    Effect.gen(function*() {
      const name = yield* Provider.Provider.use((device) => Effect.succeed(device.name)).pipe(
        Effect.provide(
          Sharded.layer({ size: 100, shardSize: 30, makeShard: (_, size) => Memory.make(size), name: "s" })
        )
      )
      assert.strictEqual(name, "s")
    }))

  it.effect("splits reads and writes across shards and lands each byte in the right shard", () =>
    Effect.gen(function*() {
      const shards: Array<Provider.BlockDevice> = []
      const device = yield* Sharded.make({
        size: 25_000,
        shardSize: 10_000,
        makeShard: (_, size) => Effect.tap(Memory.make(size), (shard) => Effect.sync(() => shards.push(shard)))
      })
      const data = bytes(12_000, 1)
      assert.strictEqual(yield* device.writeAt(data, 9_000), 12_000)
      const back = new Uint8Array(12_000)
      assert.strictEqual(yield* device.readAt(back, 9_000), 12_000)
      assert.deepStrictEqual(back, data)
      const inShard1 = new Uint8Array(10_000)
      yield* shards[1]!.readAt(inShard1, 0)
      assert.deepStrictEqual(inShard1, data.subarray(1_000, 11_000))
      const inShard2 = new Uint8Array(1_000)
      yield* shards[2]!.readAt(inShard2, 0)
      assert.deepStrictEqual(inShard2, data.subarray(11_000))
    }))

  it.effect("passes cancelWrites on to the shards the range covers, in their own offsets", () =>
    Effect.gen(function*() {
      const cancelled: Array<[number, number, number]> = []
      const device = yield* Sharded.make({
        size: 25_000,
        shardSize: 10_000,
        makeShard: (index, size) =>
          Effect.map(Memory.make(size), (shard) =>
            Provider.wrap(shard, `recording#${index}`, {
              cancelWrites: (offset, length) => Effect.sync(() => void cancelled.push([index, offset, length]))
            }))
      })
      yield* device.cancelWrites(9_500, 20_000)
      assert.deepStrictEqual(cancelled, [[0, 9_500, 500], [1, 0, 10_000], [2, 0, 5_000]])
    }))

  it.effect("cuts reads and writes short at the end of the device and refuses offsets outside it", () =>
    Effect.gen(function*() {
      const device = yield* memoryShards(25_000, 10_000)
      assert.strictEqual(yield* device.writeAt(new Uint8Array(100).fill(7), 24_950), 50)
      assert.strictEqual(yield* device.readAt(new Uint8Array(100), 24_950), 50)
      assert.strictEqual(yield* device.readAt(new Uint8Array(10), 25_000), 0)
      for (const offset of [-1, 25_001, 0.5, Number.NaN]) {
        assert.strictEqual((yield* Effect.flip(device.readAt(new Uint8Array(1), offset))).reason._tag, "OutOfRange")
        assert.strictEqual((yield* Effect.flip(device.writeAt(new Uint8Array(1), offset))).reason._tag, "OutOfRange")
      }
    }))

  it.effect("fails with Closed once its scope is closed, and closes its shards", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const shards: Array<Provider.BlockDevice> = []
      const device = yield* Sharded.make({
        size: 100,
        shardSize: 30,
        makeShard: (_, size) => Effect.tap(Memory.make(size), (shard) => Effect.sync(() => shards.push(shard)))
      }).pipe(Scope.provide(scope))
      yield* device.flush
      yield* Scope.close(scope, Exit.void)
      const error = yield* Effect.flip(device.writeAt(new Uint8Array(1), 0))
      assert.strictEqual(error.reason._tag, "Closed")
      assert.strictEqual(error.message, "sharded:100/30: closed")
      for (const shard of shards) {
        assert.strictEqual((yield* Effect.flip(shard.readAt(new Uint8Array(1), 0))).reason._tag, "Closed")
      }
    }))

  it.effect("refuses a shard of the wrong size and passes on the factory's failure", () =>
    Effect.gen(function*() {
      const wrong = yield* Effect.flip(Sharded.make({ size: 100, shardSize: 30, makeShard: () => Memory.make(30) }))
      assert.strictEqual(wrong.reason._tag, "Unsupported")
      assert.include(wrong.message, "shard 3")
      const failure = StorageError.make("broken", new StorageError.Unsupported({ detail: "no" }))
      const failed = yield* Effect.flip(
        Sharded.make({ size: 100, shardSize: 30, makeShard: () => Effect.fail(failure) })
      )
      assert.strictEqual(failed, failure)
      const invalid = yield* Effect.flip(
        Sharded.make({ size: 100, shardSize: 0, makeShard: (_, size) => Memory.make(size) })
      )
      assert.strictEqual(invalid.reason._tag, "Unsupported")
    }))

  it.live("runs the parts of a spanning request concurrently", () =>
    Effect.gen(function*() {
      // Shard 0's write finishes only once shard 1's has started: done one after the other, this never ends.
      const started = yield* Deferred.make<void>()
      const device = yield* Sharded.make({
        size: 200,
        shardSize: 100,
        makeShard: (index, size) =>
          Effect.map(Memory.make(size), (shard) =>
            Provider.wrap(shard, `gated#${index}`, {
              writeAt: (data, offset) =>
                index === 0
                  ? Effect.andThen(Deferred.await(started), shard.writeAt(data, offset))
                  : Effect.andThen(Deferred.succeed(started, undefined), shard.writeAt(data, offset))
            }))
      })
      const n = yield* device.writeAt(new Uint8Array(200), 0).pipe(Effect.timeout("5 seconds"))
      assert.strictEqual(n, 200)
    }))

  it.effect("many concurrent writers and readers over memory shards leave exactly the model's bytes", () =>
    Effect.gen(function*() {
      const device = yield* memoryShards(1_000_003, 65_536)
      yield* stress(device, { writers: 8, readers: 4, writesPerWriter: 200, readsPerReader: 200, bandsPerWriter: 5 })
    }))

  it.effect("many concurrent writers and readers over file shards leave exactly the model's bytes, also after reopen", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const options = (create: boolean): Sharded.Options => ({
        size: 1_500_007,
        shardSize: 262_144,
        makeShard: (index, size) =>
          File.make(
            create ? { path: path.join(dir, `file_${index}`), create, size } : { path: path.join(dir, `file_${index}`) }
          )
      })
      const scope = yield* Scope.make()
      const device = yield* Sharded.make(options(true)).pipe(Scope.provide(scope))
      const model = yield* stress(device, {
        writers: 8,
        readers: 4,
        writesPerWriter: 150,
        readsPerReader: 200,
        bandsPerWriter: 5
      })
      yield* Scope.close(scope, Exit.void)
      const reopened = yield* Sharded.make(options(false))
      assert.isTrue(yield* Device.equals(reopened, model))
    }))
})
