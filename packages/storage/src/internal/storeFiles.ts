/**
 * `node:fs/promises` as Effects for the disk object stores (FileStore, BlobStore): every failure becomes a
 * `StorageError` with an `IoFailure` reason naming the operation and path, positional reads and writes loop until
 * done (the OS may transfer fewer bytes than asked), and file handles are closed by the effect that opened them.
 *
 * Reads and writes of at most `SYNC_BYTES` run synchronously: copying a few KiB to or from the page cache takes
 * microseconds, while the asynchronous call's round trip through the thread pool costs tens of them.
 */
import * as Effect from "effect/Effect"
import { randomBytes } from "node:crypto"
import * as FsSync from "node:fs"
import * as Fs from "node:fs/promises"
import type * as StorageError from "../StorageError.ts"
import { ioFailure } from "./fileHandle.ts"

/** Runs a file system promise, turning a rejection into `IoFailure` for `operation`. */
export const io = <A>(
  store: string,
  operation: string,
  evaluate: () => Promise<A>
): Effect.Effect<A, StorageError.StorageError> =>
  Effect.tryPromise({
    try: evaluate,
    catch: ioFailure(store, operation)
  })

const isMissing = (error: unknown): boolean =>
  typeof error === "object" && error !== null && "code" in error && error.code === "ENOENT"

/** Resolves to `undefined` instead of rejecting when the path does not exist. */
export const unlessMissing = <A>(promise: Promise<A>): Promise<A | undefined> =>
  promise.catch((error: unknown) => isMissing(error) ? undefined : Promise.reject(error))

/** Transfers up to this size are made with synchronous calls. */
export const SYNC_BYTES = 64 * 1024

/** Runs a synchronous file system call, turning a throw into `IoFailure` for `operation`. */
const ioSync = <A>(store: string, operation: string, evaluate: () => A): Effect.Effect<A, StorageError.StorageError> =>
  Effect.try({ try: evaluate, catch: ioFailure(store, operation) })

/** Reads into all of `buffer` from `position` with synchronous calls (throwing); fewer bytes only at the end. */
export const readFullySync = (fd: number, buffer: Uint8Array, position: number): number => {
  let done = 0
  while (done < buffer.length) {
    const bytesRead = FsSync.readSync(fd, buffer, done, buffer.length - done, position + done)
    if (bytesRead === 0) break
    done += bytesRead
  }
  return done
}

/** Writes all of `data` at `position` with synchronous calls (throwing). */
export const writeFullySync = (fd: number, data: Uint8Array, position: number): void => {
  let done = 0
  while (done < data.length) done += FsSync.writeSync(fd, data, done, data.length - done, position + done)
}

/** Reads into all of `buffer` from `position`; returns the bytes read, fewer only at the end of the file. */
export const readFully = (
  store: string,
  label: string,
  handle: Fs.FileHandle,
  buffer: Uint8Array,
  position: number
): Effect.Effect<number, StorageError.StorageError> =>
  buffer.length <= SYNC_BYTES ?
    ioSync(store, `read ${label}`, () => readFullySync(handle.fd, buffer, position)) :
    io(store, `read ${label}`, async () => {
      let done = 0
      while (done < buffer.length) {
        const { bytesRead } = await handle.read(buffer, done, buffer.length - done, position + done)
        if (bytesRead === 0) break
        done += bytesRead
      }
      return done
    })

/**
 * Writes all of `data` at `position`. `meanwhile` (work that does not touch `data`'s file) runs while an
 * asynchronous write is in the thread pool, or after a synchronous one.
 */
export const writeFully = (
  store: string,
  label: string,
  handle: Fs.FileHandle,
  data: Uint8Array,
  position: number,
  meanwhile?: () => void
): Effect.Effect<void, StorageError.StorageError> =>
  data.length <= SYNC_BYTES ?
    ioSync(store, `write ${label}`, () => {
      writeFullySync(handle.fd, data, position)
      meanwhile?.()
    }) :
    io(store, `write ${label}`, async () => {
      const first = handle.write(data, 0, data.length, position)
      meanwhile?.()
      let done = (await first).bytesWritten
      while (done < data.length) {
        const { bytesWritten } = await handle.write(data, done, data.length - done, position + done)
        done += bytesWritten
      }
    })

/**
 * Closes a handle. A failing close after the data was written (and, where it matters, fsynced) has nothing left to
 * lose, so it is a defect rather than an error callers must handle.
 */
export const close = (handle: Fs.FileHandle): Effect.Effect<void> => Effect.promise(() => handle.close())

/** Opens `path`, runs `use` with the handle and closes it whatever happens. */
export const withHandle = <A, E, R>(
  store: string,
  path: string,
  flags: string,
  use: (handle: Fs.FileHandle) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | StorageError.StorageError, R> =>
  Effect.acquireUseRelease(io(store, `open ${path}`, () => Fs.open(path, flags)), use, close)

/** Fsyncs a directory, which makes the renames, creations and removals of entries in it durable. */
export const syncDirectory = (store: string, path: string): Effect.Effect<void, StorageError.StorageError> =>
  withHandle(store, path, "r", (handle) => io(store, `fsync ${path}`, () => handle.sync()))

/** A fresh suffix for a temporary file name: random, so concurrent writers and earlier crashes never collide. */
export const tempSuffix = (): string => `${randomBytes(8).toString("hex")}.tmp`
