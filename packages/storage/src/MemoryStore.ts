/**
 * An object store in memory: each object is a byte array, found through a key index that is also kept sorted
 * (by `compareKeys`) so `list` walks a range without sorting. Writes are durable the moment they return (there is
 * nothing further to flush); the objects are released when the scope closes.
 *
 * Objects that grow keep spare capacity (doubling, with at most `MAX_SLACK` bytes spare), so a run of appends
 * costs amortised linear time instead of copying the whole object each time. Writes copy their input. Reads
 * return a view of the object's bytes, not a copy (a fresh copy of a big object costs a page fault per 4 KiB,
 * more than the rest of a request): while bytes are handed out they are not changed, and a write of that
 * object goes to new memory (copy on write). A reader that is done with a view says so with `release`; bytes
 * never handed out, or all given back, are written in place when their memory is big enough. A replacing write
 * with `adopt` keeps the caller's bytes themselves; the memory of the object it replaces (when it was adopted
 * too) is kept for `spare` once no reader holds it, up to `MAX_SPARE_BYTES`. Views are counted per memory in
 * weak maps, so a reader that never releases only keeps that memory from being reused.
 *
 * Every operation runs synchronously, so none can be in flight when the scope closes.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as KeyIndex from "./internal/keyIndex.ts"
import * as Lifecycle from "./internal/lifecycle.ts"
import {
  checkKey,
  checkList,
  fromOutcome,
  info,
  notFound,
  place,
  readProblem,
  writeProblem
} from "./internal/objectStore.ts"
import * as SparePool from "./internal/sparePool.ts"
import {
  type ListOptions,
  type ObjectInfo,
  ObjectStore,
  readLength,
  type Store,
  type WriteOptions
} from "./ObjectStore.ts"
import * as StorageError from "./StorageError.ts"

interface Entry {
  readonly key: Uint8Array
  /** The object's bytes in `[0, size)`; zeros after that (the invariant that lets writes extend in place). */
  bytes: Uint8Array
  size: number
  modified: number
  /** Whether `bytes` came from an adopting write: their memory holds nothing else, so it can be reused. */
  adopted: boolean
}

// Spare capacity is capped so that extending a huge object by a few bytes does not double its memory.
const MAX_SLACK = 16 * 1024 * 1024
/** Memory of replaced objects kept for `spare`: two full-size dnet packets. */
const MAX_SPARE_BYTES = 128 * 1024 * 1024

/** Whether memory of `capacity` bytes may hold an object of `size` bytes without wasting too much of it. */
const fits = (capacity: number, size: number): boolean =>
  size <= capacity && capacity <= Math.max(2 * size, size + MAX_SLACK)

/**
 * Creates an empty store, released with the current scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (name = "memory-store"): Effect.Effect<Store, never, Scope.Scope> =>
  Effect.gen(function*() {
    const clock = yield* Clock.Clock
    let index = KeyIndex.make<Entry>()
    let bytes = 0
    // Memory of replaced adopted objects, for `spare`.
    const spares = SparePool.make(MAX_SPARE_BYTES)
    const lifecycle = yield* Lifecycle.make(
      name,
      Effect.sync(() => {
        index = KeyIndex.make<Entry>()
        bytes = 0
        spares.clear()
      })
    )
    const closedError = StorageError.make(name, new StorageError.Closed())
    const closed = Effect.fail(closedError)

    /**
     * Runs a synchronous operation unless the store is closed. Operations are untraced: each is a few
     * microseconds of work, and the call-site capture of a traced function costs more than that.
     */
    const run = <A>(
      checked: Effect.Effect<void, StorageError.StorageError>,
      operation: () => A | StorageError.StorageError
    ): Effect.Effect<A, StorageError.StorageError> =>
      Effect.flatMap(checked, () => (lifecycle.isClosed() ? closed : fromOutcome(operation())))

    // Allocation is where a write past the memory limit fails; that is the caller's range, not a defect.
    const allocate = (size: number, offset: number, length: number): Uint8Array | StorageError.StorageError => {
      try {
        return new Uint8Array(size)
      } catch {
        return StorageError.make(name, new StorageError.OutOfRange({ offset, length, size }))
      }
    }

    // Views handed out per memory, and replaced adopted memory waiting for its last view to come back.
    const views = new WeakMap<ArrayBufferLike, number>()
    const waiting = new WeakSet<ArrayBufferLike>()
    const shared = (entry: Entry): boolean => views.has(entry.bytes.buffer)
    /** The memory of an object being replaced: kept for `spare` when it was adopted, now or once it is released. */
    const recycle = (old: Entry) => {
      if (!old.adopted) return
      if (shared(old)) waiting.add(old.bytes.buffer)
      else spares.keep(old.bytes.buffer)
    }
    const release = (view: Uint8Array) => {
      const memory = view.buffer
      const count = views.get(memory)
      if (count === undefined) return
      if (count > 1) return views.set(memory, count - 1)
      views.delete(memory)
      if (waiting.delete(memory)) spares.keep(memory)
    }
    const spare = spares.take

    // Writes and reads are synchronous: `writeNow` and `readNow` are them, and the Effect forms run them.
    const writeNow = (
      key: Uint8Array,
      data: Uint8Array,
      options?: WriteOptions
    ): ObjectInfo | StorageError.StorageError => {
      const problem = writeProblem(name, key, data, options)
      if (problem !== undefined) return problem
      if (lifecycle.isClosed()) return closedError
      const modified = clock.currentTimeMillisUnsafe()
      const entry = index.get(key)
      const placement = place(entry?.size ?? 0, data.length, options)
      if (options?.adopt === true && !placement.keep) {
        if (entry === undefined) {
          index.set(key, { key: key.slice(), bytes: data, size: 0, modified, adopted: true })
        } else {
          recycle(entry)
          entry.bytes = data
          entry.adopted = true
        }
      } else if (entry !== undefined && !shared(entry) && fits(entry.bytes.length, placement.size)) {
        entry.bytes.set(data, placement.at)
        // A replacing write leaves zeros after the new end, as the invariant wants.
        if (!placement.keep && entry.size > data.length) entry.bytes.fill(0, data.length, entry.size)
      } else {
        const capacity = placement.keep
          ? Math.max(placement.size, Math.min(2 * (entry?.bytes.length ?? 0), placement.size + MAX_SLACK))
          : placement.size
        const fresh = allocate(capacity, placement.at, data.length)
        if (fresh instanceof StorageError.StorageError) return fresh
        if (entry !== undefined && placement.keep) fresh.set(entry.bytes.subarray(0, entry.size))
        fresh.set(data, placement.at)
        if (entry !== undefined) {
          recycle(entry)
          entry.bytes = fresh
          entry.adopted = false
        } else index.set(key, { key: key.slice(), bytes: fresh, size: 0, modified, adopted: false })
      }
      const target = index.get(key)!
      bytes += placement.size - target.size
      target.size = placement.size
      target.modified = modified
      return info(key, target.size, modified)
    }

    const readNow = (key: Uint8Array, offset = 0, size = 0): Uint8Array | StorageError.StorageError => {
      const problem = readProblem(name, key, offset, size)
      if (problem !== undefined) return problem
      if (lifecycle.isClosed()) return closedError
      const entry = index.get(key)
      if (entry === undefined) return notFound(name, key)
      const length = readLength(entry.size, offset, size)
      if (length === 0) return EMPTY
      const memory = entry.bytes.buffer
      views.set(memory, (views.get(memory) ?? 0) + 1)
      return entry.bytes.subarray(offset, offset + length)
    }

    const remove = (key: Uint8Array) =>
      run(checkKey(name, key), () => {
        const entry = index.remove(key)
        if (entry === undefined) return false
        bytes -= entry.size
        recycle(entry)
        return true
      })

    const stat = (key: Uint8Array) =>
      run(checkKey(name, key), () => {
        const entry = index.get(key)
        return entry === undefined ? notFound(name, key) : info(entry.key, entry.size, entry.modified)
      })

    const list = (options?: ListOptions) =>
      Effect.flatMap(checkList(name, options), (range) =>
        run(Effect.void, () => index.range(range).map((entry) => info(entry.key, entry.size, entry.modified))))

    return {
      name,
      write: (key, data, options) =>
        Effect.suspend(() => fromOutcome(writeNow(key, data, options))),
      read: (key, offset, size) => Effect.suspend(() => fromOutcome(readNow(key, offset, size))),
      writeNow,
      readNow,
      remove,
      stat,
      list,
      stats: run(Effect.void, () => ({ objects: index.size(), bytes })),
      flush: run(Effect.void, () => undefined),
      spare: (size) => (lifecycle.isClosed() ? undefined : spare(size)),
      release
    }
  })

const EMPTY = new Uint8Array(0)

/**
 * An `ObjectStore` layer holding an empty memory store.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<ObjectStore> = Layer.effect(ObjectStore, make())
