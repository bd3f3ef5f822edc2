/**
 * Whole-device helpers: compare two devices, hash one, copy one into another. Each reads in large chunks so a
 * multi-gigabyte device costs a few thousand Effect steps, not millions.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import { createCipheriv, createHash } from "node:crypto"
import type { BlockDevice } from "./Provider.ts"
import * as StorageError from "./StorageError.ts"

const CHUNK = 1 << 20

/** Visits the device in chunks of at most `chunkSize` bytes, in order. */
const chunks = (
  device: BlockDevice,
  chunkSize: number,
  visit: (bytes: Uint8Array, offset: number) => Effect.Effect<void, StorageError.StorageError>
): Effect.Effect<void, StorageError.StorageError> =>
  Effect.gen(function*() {
    const buffer = new Uint8Array(Math.min(chunkSize, Math.max(1, device.size)))
    for (let offset = 0; offset < device.size; offset += buffer.length) {
      const wanted = Math.min(buffer.length, device.size - offset)
      const view = buffer.subarray(0, wanted)
      const n = yield* device.readAt(view, offset)
      if (n !== wanted) {
        return yield* StorageError.make(
          device.name,
          new StorageError.IoFailure({
            operation: "read",
            cause: new Error(`short read at ${offset}: ${n} of ${wanted}`)
          })
        )
      }
      yield* visit(view, offset)
    }
  })

/**
 * Whether two devices have the same size and the same bytes.
 *
 * @since 0.1.0
 * @category comparison
 */
export const equals = Effect.fn("Device.equals")(function*(a: BlockDevice, b: BlockDevice, chunkSize = CHUNK) {
  if (a.size !== b.size) return false
  const other = new Uint8Array(Math.min(chunkSize, Math.max(1, b.size)))
  let same = true
  yield* chunks(a, chunkSize, (bytes, offset) =>
    Effect.gen(function*() {
      if (!same) return
      const view = other.subarray(0, bytes.length)
      yield* b.readAt(view, offset)
      same = Buffer.compare(bytes, view) === 0
    }))
  return same
})

/**
 * The sha256 of the whole device's bytes.
 *
 * @since 0.1.0
 * @category hashing
 */
export const sha256 = Effect.fn("Device.sha256")(function*(device: BlockDevice, chunkSize = CHUNK) {
  const hash = createHash("sha256")
  yield* chunks(device, chunkSize, (bytes) => Effect.sync(() => void hash.update(bytes)))
  return new Uint8Array(hash.digest())
})

/**
 * Copies every byte of `from` into `to` (same size).
 *
 * @since 0.1.0
 * @category copying
 */
export const copy = Effect.fn("Device.copy")(function*(from: BlockDevice, to: BlockDevice, chunkSize = CHUNK) {
  if (from.size !== to.size) {
    return yield* StorageError.make(
      to.name,
      new StorageError.Unsupported({ detail: `cannot copy ${from.size} bytes onto a device of ${to.size}` })
    )
  }
  yield* chunks(from, chunkSize, (bytes, offset) => Effect.asVoid(to.writeAt(bytes, offset)))
})

/**
 * Fills the whole device with pseudo-random bytes determined by `seed` (the AES-128-CTR keystream of a key
 * derived from the seed): the same seed gives the same contents on every machine, at memory speed.
 *
 * @since 0.1.0
 * @category copying
 */
export const fillPseudoRandom = Effect.fn("Device.fillPseudoRandom")(function*(
  device: BlockDevice,
  seed: string,
  chunkSize = 4 * CHUNK
) {
  const key = createHash("sha256").update(`tessera:${seed}`).digest().subarray(0, 16)
  const keystream = createCipheriv("aes-128-ctr", key, new Uint8Array(16))
  const zeros = new Uint8Array(Math.min(chunkSize, Math.max(1, device.size)))
  for (let offset = 0; offset < device.size; offset += zeros.length) {
    const length = Math.min(zeros.length, device.size - offset)
    yield* device.writeAt(new Uint8Array(keystream.update(zeros.subarray(0, length))), offset)
  }
})
