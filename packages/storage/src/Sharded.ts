/**
 * A device split into fixed-size shards, each its own block device (Silo's `ShardedStorage`): shard `i` holds
 * bytes `[i * shardSize, (i + 1) * shardSize)`, the last shard is short when the size is not a multiple of the
 * shard size. A request that spans shards is split and its parts run concurrently, so I/O to different shards
 * (separate files, separate memory arrays) proceeds in parallel.
 *
 * The shards are made in the device's scope, in order, by the factory given; closing the scope first waits for
 * the operations in flight on the sharded device, then closes the shards (last one first).
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Result from "effect/Result"
import type * as Scope from "effect/Scope"
import * as Blocks from "./Blocks.ts"
import * as Lifecycle from "./internal/lifecycle.ts"
import { type BlockDevice, clip, Provider } from "./Provider.ts"
import * as StorageError from "./StorageError.ts"

/**
 * The device's size, its shard size, and how to make shard `index` of `size` bytes (in the device's scope).
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly size: number
  readonly shardSize: number
  readonly makeShard: (
    index: number,
    size: number
  ) => Effect.Effect<BlockDevice, StorageError.StorageError, Scope.Scope>
  readonly name?: string | undefined
}

/** One shard's part of a request: the shard, the offset in it, and where and how long it is in the request. */
interface Part {
  readonly shard: BlockDevice
  readonly offset: number
  readonly at: number
  readonly length: number
}

const readPart = (shard: BlockDevice, bytes: Uint8Array, offset: number) => shard.readAt(bytes, offset)
const writePart = (shard: BlockDevice, bytes: Uint8Array, offset: number) => shard.writeAt(bytes, offset)

/**
 * Makes the shards and the device over them, closed with the current scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fn("Sharded.make")(
  function*(options: Options): Effect.fn.Return<BlockDevice, StorageError.StorageError, Scope.Scope> {
    const { shardSize, size } = options
    const name = options.name ?? `sharded:${size}/${shardSize}`
    if (!(Number.isSafeInteger(size) && size >= 0 && Number.isSafeInteger(shardSize) && shardSize > 0)) {
      return yield* StorageError.make(
        name,
        new StorageError.Unsupported({ detail: `cannot shard ${size} bytes in shards of ${shardSize}` })
      )
    }
    const shards: Array<BlockDevice> = []
    for (let index = 0; index < Blocks.count(size, shardSize); index++) {
      const expected = Blocks.range(index, size, shardSize).length
      const shard = yield* options.makeShard(index, expected)
      if (shard.size !== expected) {
        return yield* StorageError.make(
          name,
          new StorageError.Unsupported({
            detail: `shard ${index} (${shard.name}) has ${shard.size} bytes, not ${expected}`
          })
        )
      }
      shards.push(shard)
    }
    // Made after the shards, so its finalizer runs first: operations drain before any shard closes.
    const lifecycle = yield* Lifecycle.make<never>(name)

    /** The parts of the request `[offset, offset + length)` (already clipped to the device), in shard order. */
    const split = (offset: number, length: number): Array<Part> => {
      const { end, first } = Blocks.touched(offset, length, size, shardSize)
      const parts: Array<Part> = []
      for (let index = first; index < end; index++) {
        const start = index * shardSize
        const from = Math.max(offset, start)
        const to = Math.min(offset + length, start + shardSize)
        parts.push({ shard: shards[index]!, offset: from - start, at: from - offset, length: to - from })
      }
      return parts
    }

    /**
     * Runs `op` on each part's bytes of `bytes`, concurrently when there are several; fails if a shard comes
     * back short.
     */
    const run = (
      bytes: Uint8Array,
      offset: number,
      n: number,
      op: (shard: BlockDevice, bytes: Uint8Array, offset: number) => Effect.Effect<number, StorageError.StorageError>
    ): Effect.Effect<number, StorageError.StorageError> => {
      const check = (part: Part) =>
        Effect.flatMap(
          op(part.shard, bytes.subarray(part.at, part.at + part.length), part.offset),
          (done) =>
            done === part.length ? Effect.void : Effect.fail(StorageError.make(
              name,
              new StorageError.IoFailure({
                operation: "shard",
                cause: new Error(`${part.shard.name} did ${done} of ${part.length} bytes at ${part.offset}`)
              })
            ))
        )
      const parts = split(offset, n)
      if (parts.length === 1) return Effect.as(check(parts[0]!), n)
      return Effect.as(Effect.forEach(parts, check, { concurrency: "unbounded", discard: true }), n)
    }

    return {
      name,
      size,
      readAt: (buffer, offset) =>
        lifecycle.guard(Effect.suspend(() => {
          const n = clip(name, size, offset, buffer.length)
          if (Result.isFailure(n)) return Effect.fail(n.failure)
          return n.success === 0 ? Effect.succeed(0) : run(buffer, offset, n.success, readPart)
        })),
      writeAt: (data, offset) =>
        lifecycle.guard(Effect.suspend(() => {
          const n = clip(name, size, offset, data.length)
          if (Result.isFailure(n)) return Effect.fail(n.failure)
          return n.success === 0 ? Effect.succeed(0) : run(data, offset, n.success, writePart)
        })),
      flush: lifecycle.guard(
        Effect.forEach(shards, (shard) => shard.flush, { concurrency: "unbounded", discard: true })
      ),
      cancelWrites: (offset, length) =>
        Effect.suspend(() => {
          const n = clip(name, size, offset, length)
          if (Result.isFailure(n)) return Effect.void
          return Effect.forEach(split(offset, n.success), (part) => part.shard.cancelWrites(part.offset, part.length), {
            discard: true
          })
        })
    }
  }
)

/**
 * A `Provider` layer holding a sharded device.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<Provider, StorageError.StorageError> =>
  Layer.effect(Provider, make(options))
