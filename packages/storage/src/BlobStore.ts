/**
 * An eblob-like object store (`specs/dnet.md` §3.5): one append-only log file, `<dir>/data.log`, and an index in
 * memory from key to the latest record of the key.
 *
 * Log layout (integers little-endian): a 64-byte file header, then records back to back.
 *
 * | offset | size | file header field |
 * | --- | --- | --- |
 * | 0 | 8 | magic `TSRBLOG\0` |
 * | 8 | 4 | format version, 1 |
 * | 12 | 4 | zero |
 * | 16 | 16 | log id: random, new for every log file (compaction writes a new one) |
 * | 32 | 32 | SHA-256 of bytes 0..32 |
 *
 * | offset | size | record field |
 * | --- | --- | --- |
 * | 0 | 8 | magic `TSRBREC\0` |
 * | 8 | 64 | key |
 * | 72 | 8 | flags: bit 0 REMOVED (a tombstone, size 0); other bits must be zero |
 * | 80 | 8 | data size |
 * | 88 | 8 | position: the record's own offset in the log |
 * | 96 | 8 | modified, milliseconds since the epoch |
 * | 104 | 32 | SHA-256 of log id, record bytes 0..104, data |
 * | 136 | size | data |
 *
 * The checksum covers the header as well as the data, so a damaged size or key is caught like damaged data. The
 * log id and the position keep a record from verifying anywhere but where it was written: a copy of a log stored
 * as an object's data (in this log or another) never passes for records of this one.
 *
 * - Every write appends a record holding the whole new object: the old bytes are copied from the log in pieces of
 *   at most 1 MiB, with the new bytes placed at their offset, so no write needs the whole object in memory and a
 *   record is always a complete object. Removing appends a tombstone (a REMOVED record without data).
 * - Reads are positional reads of just the requested range from the log.
 * - Opening rebuilds the index by reading the whole log and verifying every record's checksum (there is no
 *   separate index file to get out of step with the log). A record that does not verify loses only itself: the
 *   scan searches forward for the next record that verifies (by its magic, its own position and its checksum) and
 *   carries on, so records after a damaged one are kept; its key falls back to its previous record, if any.
 *   Whatever follows the last record that verifies (a write torn by a crash) is truncated away, so new records are
 *   appended after complete ones. What was skipped is in `recovered` and logged as a warning.
 * - `compact` writes the live records into a new log (`data.log.<random>.tmp`), verifying each on the way, fsyncs
 *   it and renames it over `data.log`: a crash leaves the old log or the new one. Temporary logs a crash leaves
 *   behind are removed when the store is opened. Reads carry on from the old log while it runs; writes wait.
 * - Durability: acknowledged records are in the file; `flush` fsyncs it.
 *
 * Writes and removals are serialised (they append to one file); reads run in parallel with them and with each
 * other. Records and reads of at most 64 KiB are done in one synchronous step (a few microseconds from the page
 * cache, against tens for a round trip through the thread pool); bigger ones go through the thread pool, a big
 * record's pieces hashed while they are written. Memory of big reads given back with `release` serves later big
 * reads. Only one store at a time may have a directory open.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import { randomBytes } from "node:crypto"
import * as Fs from "node:fs/promises"
import * as Path from "node:path"
import * as BlobLog from "./internal/blobLog.ts"
import { ioFailure } from "./internal/fileHandle.ts"
import * as KeyIndex from "./internal/keyIndex.ts"
import * as Lifecycle from "./internal/lifecycle.ts"
import {
  checkKey,
  checkList,
  fromOutcome,
  info,
  keyHex,
  notFound,
  place,
  readProblem,
  writeProblem
} from "./internal/objectStore.ts"
import * as SparePool from "./internal/sparePool.ts"
import {
  close,
  io,
  readFully,
  readFullySync,
  SYNC_BYTES,
  syncDirectory,
  tempSuffix,
  unlessMissing,
  writeFully,
  writeFullySync
} from "./internal/storeFiles.ts"
import {
  type ListOptions,
  type ObjectInfo,
  ObjectStore,
  readLength,
  type Store,
  type WriteOptions
} from "./ObjectStore.ts"
import * as StorageError from "./StorageError.ts"

/**
 * Where the store lives.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The directory holding `data.log`; created if missing. */
  readonly dir: string
}

/**
 * What opening found in the log.
 *
 * @since 0.1.0
 * @category models
 */
export interface Recovery {
  /** Records that verified (objects, overwritten versions and tombstones). */
  readonly records: number
  /** Damaged stretches in the middle of the log that were skipped, and their bytes. */
  readonly skipped: number
  readonly skippedBytes: number
  /** Bytes cut from the end of the log: an incomplete last write, or damage after the last good record. */
  readonly truncatedBytes: number
}

/**
 * The log's size before and after a compaction, in bytes.
 *
 * @since 0.1.0
 * @category models
 */
export interface Compaction {
  readonly before: number
  readonly after: number
}

/**
 * A blob store: an object store plus what opening recovered and compaction.
 *
 * @since 0.1.0
 * @category models
 */
export interface BlobStore extends Store {
  readonly recovered: Recovery
  /** Rewrites the log with only the live objects, reclaiming overwritten and removed space. */
  readonly compact: Effect.Effect<Compaction, StorageError.StorageError>
}

/**
 * The log's file name inside the store directory.
 *
 * @since 0.1.0
 * @category constants
 */
export const LOG_NAME = "data.log"

const TEMP_NAME = /^data\.log\.[0-9a-f]{16}\.tmp$/

interface Entry {
  readonly key: Uint8Array
  /** Offset of the record; its data starts `RECORD_HEADER_SIZE` later. */
  readonly record: number
  readonly size: number
  readonly modified: number
}

/** One log file and the reads in flight on it, so a compaction closes it only after they finish. */
interface Log {
  readonly handle: Fs.FileHandle
  readonly logId: Uint8Array
  readers: number
  drained: Deferred.Deferred<void> | undefined
}

const dataOf = (entry: Entry) => entry.record + BlobLog.RECORD_HEADER_SIZE

/** Bytes of memory from big reads, given back with `release`, kept for the next big read. */
const MAX_SPARE_BYTES = 128 * 1024 * 1024

const corrupt = (store: string, detail: string) => StorageError.make(store, new StorageError.Corrupt({ detail }))

// Opens the log in `dir`, creating an empty one if there is none, after removing temporary logs a crash left;
// returns its handle and log id. The header is verified: a log that is not one is refused, not overwritten.
const openLog = Effect.fnUntraced(function*(store: string, dir: string) {
  const path = Path.join(dir, LOG_NAME)
  yield* io(store, `mkdir ${dir}`, () => Fs.mkdir(dir, { recursive: true }))
  for (const entry of yield* io(store, `readdir ${dir}`, () => Fs.readdir(dir))) {
    if (TEMP_NAME.test(entry)) {
      yield* io(store, `unlink ${entry}`, () => unlessMissing(Fs.unlink(Path.join(dir, entry))))
    }
  }
  const existing = yield* io(store, `open ${path}`, () => unlessMissing(Fs.open(path, "r+")))
  if (!existing) {
    // Created under a temporary name and renamed, so a log file always has a complete header.
    const temp = Path.join(dir, `${LOG_NAME}.${tempSuffix()}`)
    yield* Effect.acquireUseRelease(
      io(store, `open ${temp}`, () => Fs.open(temp, "wx")),
      (handle) =>
        Effect.andThen(
          writeFully(store, temp, handle, BlobLog.encodeFileHeader(randomBytes(BlobLog.LOG_ID_SIZE)), 0),
          io(store, `fsync ${temp}`, () => handle.datasync())
        ),
      close
    )
    yield* io(store, `rename ${temp}`, () => Fs.rename(temp, path))
    yield* syncDirectory(store, dir)
  }
  const handle = existing ?? (yield* io(store, `open ${path}`, () => Fs.open(path, "r+")))
  const header = new Uint8Array(BlobLog.FILE_HEADER_SIZE)
  const decoded = yield* Effect.onError(
    Effect.map(readFully(store, path, handle, header, 0), () => BlobLog.decodeFileHeader(header)),
    () => close(handle)
  )
  if ("problem" in decoded) {
    yield* close(handle)
    return yield* corrupt(store, `${path}: ${decoded.problem}`)
  }
  return { handle, logId: decoded.logId }
})

// Rebuilds the index from the log: verified records build it; a damaged stretch is skipped up to the next record
// that verifies; whatever follows the last verified record is cut off (and the cut synced).
const scan = Effect.fnUntraced(function*(store: string, log: Log) {
  const index = KeyIndex.make<Entry>()
  let liveBytes = 0
  const fileSize = (yield* io(store, "fstat log", () => log.handle.stat())).size
  const window = BlobLog.makeWindow(store, log.handle)
  let records = 0
  let skipped = 0
  let skippedBytes = 0
  let end = BlobLog.FILE_HEADER_SIZE
  let at = end
  while (at < fileSize) {
    const record = yield* BlobLog.readRecord(window, log.logId, at, fileSize)
    if (record) {
      const removed = record.flags === BlobLog.FLAG_REMOVED
      const previous = removed
        ? index.remove(record.key)
        : index.set(record.key, { key: record.key, record: at, size: record.size, modified: record.modified })
      liveBytes += (removed ? 0 : record.size) - (previous?.size ?? 0)
      records++
      at = end = at + BlobLog.RECORD_HEADER_SIZE + record.size
      continue
    }
    const next = yield* BlobLog.findRecord(window, log.logId, at + 1, fileSize)
    if (next === undefined) break
    skipped++
    skippedBytes += next - at
    at = next
  }
  if (end < fileSize) {
    yield* io(store, "truncate log", () => log.handle.truncate(end))
    yield* io(store, "fsync log", () => log.handle.datasync())
  }
  if (skipped > 0 || end < fileSize) {
    yield* Effect.logWarning(
      `${store}: skipped ${skipped} damaged stretch(es) (${skippedBytes} bytes), truncated ${fileSize - end} bytes`
    )
  }
  const recovered: Recovery = { records, skipped, skippedBytes, truncatedBytes: fileSize - end }
  return { index, liveBytes, end, recovered }
})

/**
 * Opens (creating if needed) the store in `config.dir`, verifying the log and rebuilding the index; the store
 * is closed with the current scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fn("BlobStore.make")(
  function*(config: Options): Effect.fn.Return<BlobStore, StorageError.StorageError, Scope.Scope> {
    const dir = Path.resolve(config.dir)
    const name = `blob:${dir}`
    const clock = yield* Clock.Clock
    const logPath = Path.join(dir, LOG_NAME)

    let log: Log = { ...(yield* openLog(name, dir)), readers: 0, drained: undefined }
    // Closes whichever log is current (compaction replaces it); it runs after the lifecycle's finalizer, made
    // later, has waited for the operations in flight.
    yield* Effect.addFinalizer(() => close(log.handle))
    const scanned = yield* scan(name, log)
    let index = scanned.index
    let liveBytes = scanned.liveBytes
    let end = scanned.end

    const writer = Semaphore.makeUnsafe(1)
    // Set while an appender that waits for I/O (a big record, a compaction) holds the writer lock. Small writes
    // and removals otherwise run whole in one synchronous step, which nothing can interleave, without the lock.
    let appending = false
    const exclusively = <A, E>(effect: Effect.Effect<A, E>) =>
      writer.withPermit(Effect.uninterruptible(Effect.suspend(() => {
        appending = true
        return Effect.ensuring(
          effect,
          Effect.sync(() => {
            appending = false
          })
        )
      })))
    const lifecycle = yield* Lifecycle.make<never>(name)
    const closed = StorageError.make(name, new StorageError.Closed())
    // Big reads go into memory given back by earlier ones (warm, already mapped) when there is some.
    const spares = SparePool.make(MAX_SPARE_BYTES)
    const lent = new WeakSet<ArrayBufferLike>()
    // Where small records are assembled: each is written before the next one starts.
    const scratch = new Uint8Array(SYNC_BYTES)
    yield* Effect.addFinalizer(() => Effect.sync(spares.clear))

    // Runs `f` with the current log and index, keeping the log open until it is done.
    const reading = <A, E>(f: (source: Log, entries: KeyIndex.KeyIndex<Entry>) => Effect.Effect<A, E>) =>
      Effect.acquireUseRelease(
        Effect.sync(() => {
          log.readers++
          return { source: log, entries: index }
        }),
        ({ entries, source }) => f(source, entries),
        ({ source }) =>
          Effect.sync(() => {
            if (--source.readers === 0 && source.drained) Deferred.doneUnsafe(source.drained, Effect.void)
          })
      )

    // Reads bytes [start, stop) of `entry`'s data in `source` into `target`, which holds object bytes from `from`.
    const readData = (source: Log, entry: Entry, target: Uint8Array, from: number, start: number, stop: number) =>
      start >= stop ? Effect.void : Effect.flatMap(
        readFully(name, logPath, source.handle, target.subarray(start - from, stop - from), dataOf(entry) + start),
        (n) =>
          n === stop - start ? Effect.void : Effect.fail(corrupt(name, `log ends inside the record at ${entry.record}`))
      )

    // Appends a record at the end of the log; the caller holds the writer lock.
    const append = (key: Uint8Array, flags: number, size: number, data: Uint8Array | BlobLog.Fill) =>
      Effect.gen(function*() {
        const modified = clock.currentTimeMillisUnsafe()
        const record = end
        yield* BlobLog.writeRecord(name, log.handle, log.logId, { key, flags, size, position: record, modified }, data)
        end = record + BlobLog.RECORD_HEADER_SIZE + size
        return { key: key.slice(), record, size, modified }
      })

    // What a synchronous step threw: a store error it raised itself, or a failed file system call.
    const syncFailure = (operation: string, cause: unknown): StorageError.StorageError =>
      cause instanceof StorageError.StorageError ? cause : ioFailure(name, operation)(cause)

    // Appends a record of at most `SYNC_BYTES` whose data `body` fills, with synchronous calls: the caller holds
    // the writer lock or nobody does. The record is in the file before the caller tells the index of it.
    const appendNow = (
      key: Uint8Array,
      flags: number,
      size: number,
      modified: number,
      body: (data: Uint8Array) => void
    ): Entry | StorageError.StorageError => {
      const record = scratch.subarray(0, BlobLog.RECORD_HEADER_SIZE + size).fill(0)
      const position = end
      try {
        body(record.subarray(BlobLog.RECORD_HEADER_SIZE))
        BlobLog.sealRecord(log.logId, { key, flags, size, position, modified }, record)
        writeFullySync(log.handle.fd, record, position)
      } catch (cause) {
        return syncFailure("write log", cause)
      }
      end = position + record.length
      return { key: key.slice(), record: position, size, modified }
    }

    // Reads all `length` bytes of `entry`'s data from `start` into `target` synchronously (throwing).
    const readStored = (entry: Entry, target: Uint8Array, start: number) => {
      if (readFullySync(log.handle.fd, target, dataOf(entry) + start) !== target.length) {
        throw corrupt(name, `log ends inside the record at ${entry.record}`)
      }
    }

    // Per-object operations are untraced: the call-site capture of a traced function costs about as much as a
    // small read or write from the page cache.
    const writeQueued = Effect.fnUntraced(function*(key: Uint8Array, data: Uint8Array, options?: WriteOptions) {
      return yield* exclusively(Effect.gen(function*() {
        const previous = index.get(key)
        const { at, keep, size } = place(previous?.size ?? 0, data.length, options)
        const old = keep ? previous : undefined
        // A replacing write's record data is `data` itself; others are assembled piece by piece.
        const entry = yield* append(
          key,
          0,
          size,
          !keep ? data : (target, from) =>
            Effect.gen(function*() {
              const to = from + target.length
              target.fill(0)
              if (old) {
                yield* readData(log, old, target, from, from, Math.min(to, at, old.size))
                yield* readData(log, old, target, from, Math.max(from, at + data.length), Math.min(to, old.size))
              }
              const start = Math.max(from, at)
              const stop = Math.min(to, at + data.length)
              if (start < stop) target.set(data.subarray(start - at, stop - at), start - from)
            })
        )
        index.set(key, entry)
        liveBytes += size - (previous?.size ?? 0)
        return info(key, size, entry.modified)
      }))
    })

    // A write whose record fits one synchronous call runs in one step (unless an appender holds the lock).
    const writeNow = (
      key: Uint8Array,
      data: Uint8Array,
      options?: WriteOptions
    ): ObjectInfo | StorageError.StorageError | undefined => {
      const problem = writeProblem(name, key, data, options)
      if (problem !== undefined) return problem
      if (lifecycle.isClosed()) return closed
      if (appending) return undefined
      const modified = clock.currentTimeMillisUnsafe()
      const previous = index.get(key)
      const { at, keep, size } = place(previous?.size ?? 0, data.length, options)
      if (BlobLog.RECORD_HEADER_SIZE + size > SYNC_BYTES) return undefined
      const entry = appendNow(key, 0, size, modified, (target) => {
        // A kept object's size never shrinks, so its old bytes all fit; the new ones go over them.
        if (keep && previous !== undefined) readStored(previous, target.subarray(0, previous.size), 0)
        target.set(data, at)
      })
      if (entry instanceof StorageError.StorageError) return entry
      index.set(key, entry)
      liveBytes += size - (previous?.size ?? 0)
      return info(key, size, modified)
    }

    const write = (key: Uint8Array, data: Uint8Array, options?: WriteOptions) =>
      Effect.suspend(() => {
        const outcome = writeNow(key, data, options)
        return outcome === undefined ? lifecycle.guard(writeQueued(key, data, options)) : fromOutcome(outcome)
      })

    // A read of more than `SYNC_BYTES` waits for the thread pool, keeping the log it reads open meanwhile.
    const readQueued = (key: Uint8Array, offset: number, size: number) =>
      reading((source, entries) =>
        Effect.gen(function*() {
          const entry = entries.get(key)
          if (!entry) return yield* notFound(name, key)
          const length = readLength(entry.size, offset, size)
          const bytes = spares.take(length) ?? new Uint8Array(length)
          lent.add(bytes.buffer)
          yield* readData(source, entry, bytes, offset, offset, offset + bytes.length)
          return bytes
        })
      )

    // A read of at most `SYNC_BYTES` is one synchronous call.
    const readNow = (key: Uint8Array, offset = 0, size = 0): Uint8Array | StorageError.StorageError | undefined => {
      const problem = readProblem(name, key, offset, size)
      if (problem !== undefined) return problem
      if (lifecycle.isClosed()) return closed
      const entry = index.get(key)
      if (!entry) return notFound(name, key)
      const length = readLength(entry.size, offset, size)
      if (length > SYNC_BYTES) return undefined
      const bytes = new Uint8Array(length)
      try {
        readStored(entry, bytes, offset)
      } catch (cause) {
        return syncFailure("read log", cause)
      }
      return bytes
    }

    const read = (key: Uint8Array, offset = 0, size = 0) =>
      Effect.suspend(() => {
        const outcome = readNow(key, offset, size)
        return outcome === undefined ? lifecycle.guard(readQueued(key, offset, size)) : fromOutcome(outcome)
      })

    // Memory of a big read, given back, serves the next one.
    const release = (bytes: Uint8Array) => {
      if (lent.delete(bytes.buffer)) spares.keep(bytes.buffer)
    }

    const remove = (key: Uint8Array) => {
      // A tombstone is one small record: written at once unless an appender holds the lock.
      const tombstone = (): Effect.Effect<boolean, StorageError.StorageError> => {
        const previous = index.get(key)
        if (!previous) return Effect.succeed(false)
        const entry = appendNow(key, BlobLog.FLAG_REMOVED, 0, clock.currentTimeMillisUnsafe(), () => {})
        if (entry instanceof StorageError.StorageError) return Effect.fail(entry)
        index.remove(key)
        liveBytes -= previous.size
        return Effect.succeed(true)
      }
      return Effect.flatMap(checkKey(name, key), () => {
        if (lifecycle.isClosed()) return Effect.fail(closed)
        return appending ? lifecycle.guard(exclusively(Effect.suspend(tombstone))) : tombstone()
      })
    }

    const stat = (key: Uint8Array) =>
      Effect.flatMap(checkKey(name, key), () => {
        const entry = index.get(key)
        return entry ? Effect.succeed(info(entry.key, entry.size, entry.modified)) : Effect.fail(notFound(name, key))
      })

    const list = Effect.fn("BlobStore.list")(function*(options?: ListOptions) {
      const range = yield* checkList(name, options)
      return index.range(range).map((entry) => info(entry.key, entry.size, entry.modified))
    })

    const flush = Effect.fn("BlobStore.flush")(function*() {
      yield* reading((source) => io(name, `fsync ${logPath}`, () => source.handle.datasync()))
    })

    // Writes the live records of `source` into a new log at `temp`, verifying each; returns the new index and end.
    const rewrite = Effect.fnUntraced(function*(source: Log, target: Fs.FileHandle, temp: string, logId: Uint8Array) {
      yield* writeFully(name, temp, target, BlobLog.encodeFileHeader(logId), 0)
      const window = BlobLog.makeWindow(name, source.handle)
      const fresh = KeyIndex.make<Entry>()
      let next = BlobLog.FILE_HEADER_SIZE
      // In log order, so the old log is read front to back.
      for (const entry of index.values().toSorted((a, b) => a.record - b.record)) {
        // Damage since opening must not be sealed under a fresh checksum.
        if ((yield* BlobLog.readRecord(window, source.logId, entry.record, end)) === undefined) {
          return yield* corrupt(name, `record of ${keyHex(entry.key)} at ${entry.record} no longer verifies`)
        }
        const record = { key: entry.key, flags: 0, size: entry.size, position: next, modified: entry.modified }
        yield* BlobLog.writeRecord(
          name,
          target,
          logId,
          record,
          (bytes, from) => readData(source, entry, bytes, from, from, from + bytes.length)
        )
        fresh.set(entry.key, { ...entry, record: next })
        next += BlobLog.RECORD_HEADER_SIZE + entry.size
      }
      yield* io(name, `fsync ${temp}`, () => target.datasync())
      return { fresh, next }
    })

    const compact = Effect.fn("BlobStore.compact")(function*() {
      return yield* exclusively(Effect.gen(function*() {
        const before = end
        const old = log
        const temp = Path.join(dir, `${LOG_NAME}.${tempSuffix()}`)
        const logId = randomBytes(BlobLog.LOG_ID_SIZE)
        const handle = yield* io(name, `open ${temp}`, () => Fs.open(temp, "wx+"))
        const { fresh, next } = yield* Effect.onError(
          Effect.tap(
            rewrite(old, handle, temp, logId),
            () => io(name, `rename ${temp}`, () => Fs.rename(temp, logPath))
          ),
          // Best effort: a temporary log that cannot be removed now is removed when the store is next opened.
          () => Effect.andThen(close(handle), Effect.ignore(io(name, `unlink ${temp}`, () => Fs.unlink(temp))))
        )
        // Switched at once: after the rename the old handle is an unlinked file, so nothing may be written to it.
        log = { handle, logId, readers: 0, drained: undefined }
        index = fresh
        end = next
        // The old log closes once the reads still using it are done, whether or not the directory sync succeeds.
        yield* Effect.ensuring(
          syncDirectory(name, dir),
          Effect.gen(function*() {
            if (old.readers > 0) {
              old.drained = Deferred.makeUnsafe<void>()
              yield* Deferred.await(old.drained)
            }
            yield* close(old.handle)
          })
        )
        return { before, after: next }
      }))
    })

    // Small operations run in one synchronous step, so closing cannot happen under them: they only check it;
    // the others are counted in flight, and closing waits for them.
    return {
      name,
      write,
      read,
      writeNow,
      readNow,
      remove,
      release,
      stat: (key) => lifecycle.guard(stat(key)),
      list: (options) => lifecycle.guard(list(options)),
      stats: lifecycle.guard(Effect.sync(() => ({ objects: index.size(), bytes: liveBytes }))),
      flush: lifecycle.guard(flush()),
      recovered: scanned.recovered,
      compact: lifecycle.guard(compact())
    }
  }
)

/**
 * An `ObjectStore` layer holding a blob store.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<ObjectStore, StorageError.StorageError> =>
  Layer.effect(ObjectStore, make(options))
