/**
 * An object store in memory: each object is a byte array, found through a key index that is also kept sorted
 * (by `compareKeys`) so `list` walks a range without sorting. Writes are durable the moment they return (there is
 * nothing further to flush); the objects are released when the scope closes.
 *
 * Objects that grow keep spare capacity (doubling, with at most `MAX_SLACK` bytes spare), so a run of appends
 * costs amortised linear time instead of copying the whole object each time. Reads return copies and writes copy
 * their input, so callers never share bytes with the store.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as KeyIndex from "./internal/keyIndex.ts"
import * as Lifecycle from "./internal/lifecycle.ts"
import { checkKey, checkList, checkRead, checkWrite, guarded, info, notFound, place } from "./internal/objectStore.ts"
import { type ListOptions, ObjectStore, readLength, type Store, type WriteOptions } from "./ObjectStore.ts"
import * as StorageError from "./StorageError.ts"

interface Entry {
  readonly key: Uint8Array
  /** The object's bytes in `[0, size)`; zeros after that (the invariant that lets writes extend in place). */
  bytes: Uint8Array
  size: number
  modified: number
}

// Spare capacity is capped so that extending a huge object by a few bytes does not double its memory.
const MAX_SLACK = 16 * 1024 * 1024

/**
 * Creates an empty store, released with the current scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (name = "memory-store"): Effect.Effect<Store, never, Scope.Scope> =>
  Effect.gen(function*() {
    let index = KeyIndex.make<Entry>()
    let bytes = 0
    const lifecycle = yield* Lifecycle.make(
      name,
      Effect.sync(() => {
        index = KeyIndex.make<Entry>()
        bytes = 0
      })
    )

    // Allocation is where a write past the memory limit fails; that is the caller's range, not a defect.
    const allocate = (size: number, offset: number, length: number) =>
      Effect.try({
        try: () => new Uint8Array(size),
        catch: () => StorageError.make(name, new StorageError.OutOfRange({ offset, length, size }))
      })

    const write = Effect.fn("MemoryStore.write")(function*(key: Uint8Array, data: Uint8Array, options?: WriteOptions) {
      yield* checkWrite(name, key, data, options)
      const modified = yield* Clock.currentTimeMillis
      const entry = index.get(key)
      const placement = place(entry?.size ?? 0, data.length, options)
      if (entry && placement.keep && placement.size <= entry.bytes.length) {
        entry.bytes.set(data, placement.at)
      } else {
        const capacity = placement.keep
          ? Math.max(placement.size, Math.min(2 * (entry?.bytes.length ?? 0), placement.size + MAX_SLACK))
          : placement.size
        const fresh = yield* allocate(capacity, placement.at, data.length)
        if (entry && placement.keep) fresh.set(entry.bytes.subarray(0, entry.size))
        fresh.set(data, placement.at)
        if (entry) entry.bytes = fresh
        else index.set(key, { key: key.slice(), bytes: fresh, size: 0, modified })
      }
      const target = index.get(key)!
      bytes += placement.size - target.size
      target.size = placement.size
      target.modified = modified
      return info(key, target.size, modified)
    })

    const read = Effect.fn("MemoryStore.read")(function*(key: Uint8Array, offset = 0, size = 0) {
      yield* checkRead(name, key, offset, size)
      const entry = index.get(key)
      if (!entry) return yield* notFound(name, key)
      return entry.bytes.slice(offset, offset + readLength(entry.size, offset, size))
    })

    const remove = Effect.fn("MemoryStore.remove")(function*(key: Uint8Array) {
      yield* checkKey(name, key)
      const entry = index.remove(key)
      if (entry) bytes -= entry.size
      return entry !== undefined
    })

    const stat = Effect.fn("MemoryStore.stat")(function*(key: Uint8Array) {
      yield* checkKey(name, key)
      const entry = index.get(key)
      if (!entry) return yield* notFound(name, key)
      return info(entry.key, entry.size, entry.modified)
    })

    const list = Effect.fn("MemoryStore.list")(function*(options?: ListOptions) {
      const range = yield* checkList(name, options)
      return index.range(range).map((entry) => info(entry.key, entry.size, entry.modified))
    })

    return guarded(name, lifecycle, {
      write,
      read,
      remove,
      stat,
      list,
      stats: Effect.sync(() => ({ objects: index.size(), bytes })),
      flush: Effect.void
    })
  })

/**
 * An `ObjectStore` layer holding an empty memory store.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<ObjectStore> = Layer.effect(ObjectStore, make())
