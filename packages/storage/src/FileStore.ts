/**
 * An object store with one file per object, laid out like the elliptics file backend (`specs/dnet.md` §3.5):
 *
 * ```
 * <root>/<first N hex chars of the key>/<128 hex chars of the key>
 * ```
 *
 * `N` (`prefixChars`, 1 to 8, default 2 = 256 directories) fans the objects out so no directory grows too large;
 * a root must always be opened with the `N` it was written with (objects under another fan-out are not seen).
 *
 * Every write that changes an object builds the whole new object in a temporary file in the same directory
 * (`.<hex key>.<random>.tmp`: a copy of the old object, reflinked where the file system can, with the new bytes
 * written at their offset), fsyncs it, then renames it over the object. A crash therefore leaves either the old
 * or the new object, never a mix; temporary files a crash leaves behind are removed when the store is opened.
 * Writes and removals of one key are serialised (a copy-then-rename must not lose a concurrent write), writes to
 * different keys run in parallel, and reads never wait: a rename swaps whole files under them.
 *
 * Durability: an object's bytes are on disk when its write returns; `flush` fsyncs the directories whose entries
 * changed since the last flush (renames, removals, new fan-out directories), which makes those changes survive a
 * power failure. A crash of the process alone loses nothing acknowledged.
 *
 * `list` walks the fan-out directories in name order, which is key order (fixed-width lowercase hex), and stats
 * only the objects it returns; `stat` and `stats` report the file system's sizes and modification times, so
 * there is no separate index to keep consistent.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { constants } from "node:fs"
import * as Fs from "node:fs/promises"
import * as Path from "node:path"
import * as KeyedLock from "./internal/keyedLock.ts"
import * as Lifecycle from "./internal/lifecycle.ts"
import {
  checkKey,
  checkList,
  checkRead,
  checkWrite,
  guarded,
  info,
  KEY_HEX,
  keyFromHex,
  keyHex,
  notFound,
  place
} from "./internal/objectStore.ts"
import { close, io, readFully, syncDirectory, tempSuffix, unlessMissing, writeFully } from "./internal/storeFiles.ts"
import {
  compareKeys,
  type ListOptions,
  type ObjectInfo,
  ObjectStore,
  readLength,
  type Store,
  type WriteOptions
} from "./ObjectStore.ts"
import * as StorageError from "./StorageError.ts"

/**
 * Where the store lives and how its objects fan out.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The root directory; created if missing. */
  readonly root: string
  /** Hex characters of the key that name an object's directory, 1 to 8; default `DEFAULT_PREFIX_CHARS`. */
  readonly prefixChars?: number
}

/**
 * The default fan-out: 2 hex characters, one directory per first key byte (the elliptics Era A layout).
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_PREFIX_CHARS = 2

const MAX_PREFIX_CHARS = 8

// How many files `list` and `stats` stat at once.
const STAT_CONCURRENCY = 16

const TEMP_NAME = /^\.[0-9a-f]{128}\.[0-9a-f]{16}\.tmp$/

/**
 * Opens (creating if needed) the store under `config.root`, removing temporary files an earlier crash left; the
 * store is closed with the current scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fn("FileStore.make")(
  function*(config: Options): Effect.fn.Return<Store, StorageError.StorageError, Scope.Scope> {
    const root = Path.resolve(config.root)
    const name = `file:${root}`
    const prefixChars = config.prefixChars ?? DEFAULT_PREFIX_CHARS
    if (!(Number.isSafeInteger(prefixChars) && prefixChars >= 1 && prefixChars <= MAX_PREFIX_CHARS)) {
      return yield* StorageError.make(
        name,
        new StorageError.Unsupported({ detail: `prefixChars must be 1 to ${MAX_PREFIX_CHARS}, got ${prefixChars}` })
      )
    }
    const fanOutName = new RegExp(`^[0-9a-f]{${prefixChars}}$`)

    // The fan-out directories in key order.
    const fanOut = Effect.map(
      io(name, `readdir ${root}`, () => Fs.readdir(root, { withFileTypes: true })),
      (entries) =>
        entries.filter((entry) => entry.isDirectory() && fanOutName.test(entry.name)).map((e) => e.name).toSorted()
    )
    const entriesOf = (dir: string) =>
      Effect.map(io(name, `readdir ${dir}`, () => unlessMissing(Fs.readdir(dir))), (names) => names ?? [])

    yield* io(name, `mkdir ${root}`, () => Fs.mkdir(root, { recursive: true }))
    for (const prefix of yield* fanOut) {
      const dir = Path.join(root, prefix)
      for (const temp of (yield* entriesOf(dir)).filter((entry) => TEMP_NAME.test(entry))) {
        yield* io(name, `unlink ${temp}`, () => unlessMissing(Fs.unlink(Path.join(dir, temp))))
      }
    }

    const locks = KeyedLock.make()
    // Directories whose entries changed since the last flush, and fan-out directories known to exist.
    const dirty = new Set<string>()
    const present = new Set<string>()
    const lifecycle = yield* Lifecycle.make<never>(name)

    const locate = (key: Uint8Array) => {
      const hex = keyHex(key)
      const dir = Path.join(root, hex.slice(0, prefixChars))
      return { hex, dir, file: Path.join(dir, hex) }
    }

    const ensureDirectory = (dir: string) =>
      present.has(dir) ? Effect.void : Effect.map(
        io(name, `mkdir ${dir}`, () => Fs.mkdir(dir, { recursive: true })),
        (created) => {
          // A new directory is an entry of the root, which the next flush must make durable.
          if (created !== undefined) dirty.add(root)
          present.add(dir)
        }
      )

    // Copies `from` to `to` (a reflink where the file system can); false when `from` does not exist.
    const copyIfExists = (from: string, to: string) =>
      Effect.map(
        io(
          name,
          `copy ${from}`,
          () => unlessMissing(Fs.copyFile(from, to, constants.COPYFILE_FICLONE).then(() => true))
        ),
        (copied) => copied === true
      )

    // Builds the new object in `temp` and returns its stat; `copied` says `temp` starts as a copy of the old one.
    const build = (temp: string, copied: boolean, data: Uint8Array, options: WriteOptions | undefined) =>
      Effect.acquireUseRelease(
        io(name, `open ${temp}`, () => Fs.open(temp, copied ? "r+" : "wx")),
        Effect.fnUntraced(function*(handle) {
          const before = copied ? (yield* io(name, `fstat ${temp}`, () => handle.stat())).size : 0
          const placement = place(before, data.length, options)
          yield* writeFully(name, temp, handle, data, placement.at)
          // An empty write past the end still moves the end (as it does in the other backends).
          if (data.length === 0 && placement.size !== before) {
            yield* io(name, `truncate ${temp}`, () => handle.truncate(placement.size))
          }
          yield* io(name, `fsync ${temp}`, () => handle.datasync())
          return yield* io(name, `fstat ${temp}`, () => handle.stat())
        }),
        close
      )

    const replace = Effect.fnUntraced(
      function*(key: Uint8Array, data: Uint8Array, options: WriteOptions | undefined) {
        const { dir, file, hex } = locate(key)
        yield* ensureDirectory(dir)
        const temp = Path.join(dir, `.${hex}.${tempSuffix()}`)
        const keep = place(0, data.length, options).keep
        const written = yield* Effect.onError(
          Effect.gen(function*() {
            // A write that keeps old bytes starts from a copy of the object; a missing object starts empty.
            const copied = keep && (yield* copyIfExists(file, temp))
            const built = yield* build(temp, copied, data, options)
            yield* io(name, `rename ${temp}`, () => Fs.rename(temp, file))
            return built
          }),
          // Best effort: a temporary file that cannot be removed now is removed when the store is next opened.
          () => Effect.ignore(io(name, `unlink ${temp}`, () => unlessMissing(Fs.unlink(temp))))
        )
        dirty.add(dir)
        return info(key, written.size, written.mtimeMs)
      },
      // Uninterruptible: a rename still in flight after the lock is released could land after a later write.
      Effect.uninterruptible
    )

    // Per-object operations are untraced: the call-site capture of a traced function costs about as much as a
    // small read or write from the page cache.
    const write = Effect.fnUntraced(function*(key: Uint8Array, data: Uint8Array, options?: WriteOptions) {
      yield* checkWrite(name, key, data, options)
      return yield* locks.withLock(keyHex(key))(replace(key, data, options))
    })

    const read = Effect.fnUntraced(function*(key: Uint8Array, offset = 0, size = 0) {
      yield* checkRead(name, key, offset, size)
      const { file } = locate(key)
      return yield* Effect.acquireUseRelease(
        io(name, `open ${file}`, () => unlessMissing(Fs.open(file, "r"))),
        Effect.fnUntraced(function*(handle) {
          if (!handle) return yield* notFound(name, key)
          const stored = (yield* io(name, `fstat ${file}`, () => handle.stat())).size
          const bytes = new Uint8Array(readLength(stored, offset, size))
          const got = yield* readFully(name, file, handle, bytes, offset)
          return got === bytes.length ? bytes : bytes.subarray(0, got)
        }),
        (handle) => handle ? close(handle) : Effect.void
      )
    })

    const remove = Effect.fnUntraced(function*(key: Uint8Array) {
      yield* checkKey(name, key)
      const { dir, file, hex } = locate(key)
      const removed = yield* locks.withLock(hex)(Effect.uninterruptible(
        io(name, `unlink ${file}`, () => unlessMissing(Fs.unlink(file).then(() => true)))
      ))
      if (removed) dirty.add(dir)
      return removed === true
    })

    const statFile = (key: Uint8Array, file: string) =>
      Effect.map(
        io(name, `stat ${file}`, () => unlessMissing(Fs.stat(file))),
        (stat): ObjectInfo | undefined => stat && info(key, stat.size, stat.mtimeMs)
      )

    const stat = Effect.fnUntraced(function*(key: Uint8Array) {
      yield* checkKey(name, key)
      const found = yield* statFile(key, locate(key).file)
      if (!found) return yield* notFound(name, key)
      return found
    })

    // Stats the named objects of one directory; objects removed meanwhile are left out.
    const statAll = (dir: string, names: ReadonlyArray<string>) =>
      Effect.map(
        Effect.forEach(names, (hex) => statFile(keyFromHex(hex), Path.join(dir, hex)), {
          concurrency: STAT_CONCURRENCY
        }),
        (found) => found.filter((object) => object !== undefined)
      )

    const objectsOf = (dir: string, prefix: string) =>
      Effect.map(
        entriesOf(dir),
        (entries) => entries.filter((entry) => KEY_HEX.test(entry) && entry.startsWith(prefix)).toSorted()
      )

    const list = Effect.fn("FileStore.list")(function*(options?: ListOptions) {
      const { end, limit, skip, start } = yield* checkList(name, options)
      // The directories that can hold keys in range; keys shorter than the prefix widen it to the whole directory.
      const first = keyHex(start).slice(0, prefixChars).padEnd(prefixChars, "0")
      const last = keyHex(end).slice(0, prefixChars).padEnd(prefixChars, "f")
      const out: Array<ObjectInfo> = []
      let toSkip = skip
      for (const prefix of yield* fanOut) {
        if (out.length >= limit || prefix > last) break
        if (prefix < first) continue
        const dir = Path.join(root, prefix)
        const inRange = (yield* objectsOf(dir, prefix)).filter((hex) => {
          const key = keyFromHex(hex)
          return compareKeys(key, start) >= 0 && compareKeys(key, end) <= 0
        })
        const wanted = inRange.slice(toSkip, toSkip + limit - out.length)
        toSkip = Math.max(0, toSkip - inRange.length)
        out.push(...(yield* statAll(dir, wanted)))
      }
      return out
    })

    const stats = Effect.fn("FileStore.stats")(function*() {
      let objects = 0
      let bytes = 0
      for (const prefix of yield* fanOut) {
        const dir = Path.join(root, prefix)
        for (const object of yield* statAll(dir, yield* objectsOf(dir, prefix))) {
          objects++
          bytes += object.size
        }
      }
      return { objects, bytes }
    })

    const flush = Effect.fn("FileStore.flush")(function*() {
      const dirs = Array.from(dirty)
      dirty.clear()
      yield* Effect.forEach(
        dirs,
        // A directory that failed to sync stays dirty for the next flush.
        (dir) => Effect.onError(syncDirectory(name, dir), () => Effect.sync(() => dirty.add(dir))),
        { concurrency: STAT_CONCURRENCY, discard: true }
      )
    })

    return guarded(name, lifecycle, { write, read, remove, stat, list, stats: stats(), flush: flush() })
  }
)

/**
 * An `ObjectStore` layer holding a file store.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<ObjectStore, StorageError.StorageError> =>
  Layer.effect(ObjectStore, make(options))
