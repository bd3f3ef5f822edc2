/**
 * A concurrent reader/writer stress run against any device, checked against an in-memory model.
 *
 * The device is cut into bands of an odd size (not a multiple of any block or shard size), owned by the
 * writers in turn, so neighbouring bands belong to different writers and the blocks on band edges get
 * concurrent partial writes from two writers. Each writer writes random ranges inside its own bands, applies the
 * same write to the model, and reads its range back (nobody else writes those bytes, so it must see exactly its
 * data). Readers read random ranges the whole time. At the end the device must equal the model byte for byte.
 */
import { assert } from "@effect/vitest"
import { Effect } from "effect"
import { randomFillSync } from "node:crypto"
import { Device, Memory, type Provider } from "../../src/index.ts"
import { random } from "./random.ts"

export interface StressOptions {
  readonly writers: number
  readonly readers: number
  readonly writesPerWriter: number
  readonly readsPerReader: number
  readonly bandsPerWriter: number
}

export const stress = Effect.fnUntraced(function*(device: Provider.BlockDevice, options: StressOptions) {
  const model = yield* Memory.make(device.size)
  // Start from the device's current bytes, so a device that already holds data can be stressed too.
  yield* Device.copy(device, model)
  const bands = options.writers * options.bandsPerWriter
  const bandSize = Math.floor(device.size / bands)
  assert.isAbove(bandSize, 1)

  const writer = Effect.fnUntraced(function*(w: number) {
    const next = random(w + 1)
    for (let i = 0; i < options.writesPerWriter; i++) {
      const band = next(options.bandsPerWriter) * options.writers + w
      const start = band * bandSize
      const offset = start + next(bandSize)
      // Mostly small writes, sometimes up to the rest of the band (many blocks).
      const room = start + bandSize - offset
      const length = 1 + (next(4) === 0 ? next(room) : next(Math.min(room, 700)))
      const data = randomFillSync(new Uint8Array(length))
      assert.strictEqual(yield* device.writeAt(data, offset), length)
      yield* model.writeAt(data, offset)
      const back = new Uint8Array(length)
      assert.strictEqual(yield* device.readAt(back, offset), length)
      assert.isTrue(Buffer.from(back).equals(data), `writer ${w} reads back its write at ${offset}+${length}`)
    }
  })

  const reader = Effect.fnUntraced(function*(r: number) {
    const next = random(1000 + r)
    for (let i = 0; i < options.readsPerReader; i++) {
      const offset = next(device.size)
      const length = 1 + next(Math.min(device.size - offset, 3 * bandSize))
      assert.strictEqual(yield* device.readAt(new Uint8Array(length), offset), length)
    }
  })

  yield* Effect.all(
    [
      Effect.forEach(Array.from({ length: options.writers }, (_, w) => w), writer, { concurrency: "unbounded" }),
      Effect.forEach(Array.from({ length: options.readers }, (_, r) => r), reader, { concurrency: "unbounded" })
    ],
    { concurrency: "unbounded" }
  )

  assert.isTrue(yield* Device.equals(device, model), "device equals the model")
  assert.deepStrictEqual(yield* Device.sha256(device), yield* Device.sha256(model))
  return model
})
