/**
 * An open file whose calls are Effects, shared by the file-backed devices. The file is a `node:fs/promises`
 * `FileHandle` (opened, synced, truncated and closed through it), but reads and writes go through the callback
 * `read`/`write` of `node:fs` on its descriptor, each as one `Effect.callback`: the promise calls cost an extra
 * allocation and microtask per call (2–5 µs measured at 64 KiB, a tenth of the call), and the `File` device is
 * held to within 10 % of the raw promise calls.
 *
 * Closing is tied to the scope: calls started after it begins closing fail with `Closed`, and the handle is
 * closed once every call already issued has finished. Calls are counted from issue to completion, not by the
 * calling fiber: an interrupted caller leaves its call running, and the descriptor must not be closed under it
 * (the handle's own close does not wait for calls made on its descriptor).
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as fs from "node:fs"
import * as fsp from "node:fs/promises"
import * as Path from "node:path"
import * as StorageError from "../StorageError.ts"

/** The calls the devices make; lengths and positions are already checked against the device. */
export interface FileHandle {
  /** Reads `length` bytes at `position` into the start of `buffer`; bytes past the end of the file are zeros. */
  readonly read: (
    buffer: Uint8Array,
    length: number,
    position: number
  ) => Effect.Effect<number, StorageError.StorageError>
  /**
   * Reads each buffer whole from its position, all at once; completes when every read has (the first error, if
   * any, after all of them), so the buffers are free again when it does. Bytes past the end of the file are
   * zeros.
   */
  readonly readAll: (
    buffers: ReadonlyArray<Uint8Array>,
    positions: ReadonlyArray<number>
  ) => Effect.Effect<void, StorageError.StorageError>
  /** Writes the first `length` bytes of `data` at `position`. */
  readonly write: (
    data: Uint8Array,
    length: number,
    position: number
  ) => Effect.Effect<number, StorageError.StorageError>
  /** `fdatasync`: written data and the length of the file reach the disk. */
  readonly datasync: Effect.Effect<void, StorageError.StorageError>
  /** Sets the file's length. */
  readonly truncate: (length: number) => Effect.Effect<void, StorageError.StorageError>
  /** The file's length now. */
  readonly length: Effect.Effect<number, StorageError.StorageError>
}

/** Maps an OS error of `operation` on `device` to an `IoFailure`; made once per device and operation. */
export const ioFailure = (device: string, operation: string) => (cause: unknown): StorageError.StorageError =>
  StorageError.make(device, new StorageError.IoFailure({ operation, cause }))

/** Whether an OS error says the file does not exist. */
export const isNotFound = (cause: unknown): boolean =>
  typeof cause === "object" && cause !== null && "code" in cause && cause.code === "ENOENT"

/** Completion of a call: an error, or the value. */
type Done<A> = (error: Error | null, value?: A) => void

const fromPromise = <A>(promise: () => Promise<A>) => (done: Done<A>): void => {
  promise().then((value) => done(null, value), (error: Error) => done(error))
}

/** The error for a file that is not there: `NotFound` naming the path, not a bare `ENOENT`. */
export const openFailure = (device: string, path: string) => (cause: unknown): StorageError.StorageError =>
  isNotFound(cause)
    ? StorageError.make(device, new StorageError.NotFound({ key: path }))
    : ioFailure(device, "open")(cause)

/** Opens `path` with `flags` for `device`, closed with the current scope; a missing file is `NotFound`. */
export const open = (
  device: string,
  path: string,
  flags: number
): Effect.Effect<FileHandle, StorageError.StorageError, Scope.Scope> =>
  Effect.gen(function*() {
    const handle = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => fsp.open(path, flags, 0o666),
        catch: openFailure(device, path)
      }),
      (opened) =>
        // A finalizer cannot fail; a failed close is logged rather than lost.
        Effect.tryPromise(() => opened.close()).pipe(
          Effect.catch((error) => Effect.logWarning(`${device}: close failed`, error))
        )
    )
    const fd = handle.fd

    let closing = false
    let pending = 0
    let drained: (() => void) | undefined
    const closed = Effect.fail(StorageError.make(device, new StorageError.Closed()))
    // Added after the handle's release, so it runs first: the handle closes once the calls have finished.
    yield* Effect.addFinalizer(() =>
      Effect.promise(() => {
        closing = true
        return pending === 0 ? Promise.resolve() : new Promise<void>((resolve) => {
          drained = resolve
        })
      })
    )

    /** Issues one call unless closing, counting it until it completes. */
    const call = <A>(
      start: (done: Done<A>) => void,
      onFailure: (cause: unknown) => StorageError.StorageError
    ): Effect.Effect<A, StorageError.StorageError> =>
      Effect.callback<A, StorageError.StorageError>((resume) => {
        if (closing) return resume(closed)
        pending++
        const done: Done<A> = (error, value) => {
          if (--pending === 0 && drained !== undefined) drained()
          resume(error === null ? Effect.succeed(value as A) : Effect.fail(onFailure(error)))
        }
        try {
          start(done)
        } catch (error) {
          // Node checks arguments synchronously; a throw there must still settle the call.
          done(error instanceof Error ? error : new Error(String(error)))
        }
      })

    const readFailure = ioFailure(device, "read")
    const writeFailure = ioFailure(device, "write")
    const flushFailure = ioFailure(device, "flush")
    const truncateFailure = ioFailure(device, "truncate")
    const statFailure = ioFailure(device, "stat")
    return {
      read: (buffer, length, position) =>
        call<number>((done) => readFully(fd, buffer, length, position, done), readFailure),
      readAll: (buffers, positions) =>
        call<void>((done) => {
          let left = buffers.length
          let failure: Error | null = null
          const one = (error: Error | null) => {
            failure ??= error
            if (--left === 0) done(failure)
          }
          if (left === 0) return done(null)
          for (let i = 0; i < buffers.length; i++) readFully(fd, buffers[i]!, buffers[i]!.length, positions[i]!, one)
        }, readFailure),
      write: (data, length, position) =>
        call<number>((done) => writeFully(fd, data, length, position, done), writeFailure),
      datasync: call(fromPromise(() => handle.datasync()), flushFailure),
      truncate: (length) => call(fromPromise(() => handle.truncate(length)), truncateFailure),
      length: call(fromPromise(() => handle.stat().then((stat) => stat.size)), statFailure)
    }
  })

// Positional reads and writes of regular files come back whole except at the end of the file, so the steps
// that finish a short transfer are rarely taken.

const readFully = (fd: number, buffer: Uint8Array, length: number, position: number, done: Done<number>): void => {
  let total = 0
  const step = (error: Error | null, bytesRead: number): void => {
    if (error !== null) return done(error)
    total += bytesRead
    if (total === length) return done(null, length)
    if (bytesRead === 0) {
      // The file ends before the device does: the rest reads as zeros, like a hole.
      buffer.fill(0, total, length)
      return done(null, length)
    }
    fs.read(fd, buffer, total, length - total, position + total, step)
  }
  fs.read(fd, buffer, 0, length, position, step)
}

const writeFully = (fd: number, data: Uint8Array, length: number, position: number, done: Done<number>): void => {
  let total = 0
  const step = (error: Error | null, bytesWritten: number): void => {
    if (error !== null) return done(error)
    total += bytesWritten
    if (total === length) return done(null, length)
    // A regular file reports a full disk as an error; zero progress would otherwise repeat forever.
    if (bytesWritten === 0) return done(new Error(`no progress writing at ${position + total}`))
    fs.write(fd, data, total, length - total, position + total, step)
  }
  fs.write(fd, data, 0, length, position, step)
}

/**
 * Makes the directory entry of `path` durable: a created or renamed file survives a crash only once its
 * directory is synced.
 */
export const syncDirectory = (device: string, path: string): Effect.Effect<void, StorageError.StorageError> =>
  Effect.tryPromise({
    try: async () => {
      const directory = await fsp.open(Path.dirname(path), "r")
      try {
        await directory.sync()
      } finally {
        await directory.close()
      }
    },
    catch: ioFailure(device, "sync directory")
  })
