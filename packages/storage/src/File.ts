/**
 * A block device over one file (Silo's `FileStorage`): reads and writes go to the same offsets of the file as
 * positional `read`/`write` calls on the descriptor of a `node:fs/promises` `FileHandle`, one Effect step per
 * operation, so the device keeps pace with the raw `FileHandle` calls (see `benchmark/README.md`).
 *
 * - The device size is fixed when it is opened: the file's size, or the `size` given. If the file is shorter
 *   than the device, bytes past its end read as zeros and writes there extend it, as with a hole.
 * - `create: true` opens or creates the file and truncates (or extends) it to `size`, keeping bytes already
 *   below `size` (Silo's `NewFileStorageCreate`).
 * - `flush` is `fdatasync`: it makes written data and the metadata needed to read it back (the file's length)
 *   durable, without forcing timestamps to disk, which is all a block device needs.
 * - Closing the scope makes later operations fail with `Closed`, waits for the system calls in flight, then
 *   closes the handle. Calls are counted from issue to completion rather than per calling fiber (as the
 *   shared lifecycle guard does): an interrupted caller leaves its call running, and the guard's extra Effect
 *   steps cost 2–4 µs per operation, about a tenth of a 64 KiB read.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Result from "effect/Result"
import type * as Scope from "effect/Scope"
import { constants } from "node:fs"
import * as FileHandle from "./internal/fileHandle.ts"
import { type BlockDevice, clip, Provider } from "./Provider.ts"
import * as StorageError from "./StorageError.ts"

/**
 * Where the device lives: an existing file (its size, or `size` bytes of it), or with `create` a file made or
 * resized to `size` bytes.
 *
 * @since 0.1.0
 * @category models
 */
export type Options =
  | { readonly path: string; readonly create: true; readonly size: number }
  | { readonly path: string; readonly create?: false | undefined; readonly size?: number | undefined }

/**
 * Opens (or with `create`, creates) the file as a device, closed with the current scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fn("File.make")(
  function*(options: Options): Effect.fn.Return<BlockDevice, StorageError.StorageError, Scope.Scope> {
    const name = `file:${options.path}`
    if (options.size !== undefined && !(Number.isSafeInteger(options.size) && options.size >= 0)) {
      return yield* StorageError.make(
        name,
        new StorageError.Unsupported({ detail: `size must be a whole number of bytes, got ${options.size}` })
      )
    }
    const file = yield* FileHandle.open(
      name,
      options.path,
      options.create ? constants.O_RDWR | constants.O_CREAT : constants.O_RDWR
    )
    let size: number
    if (options.create) {
      size = options.size
      yield* file.truncate(size)
    } else {
      size = options.size ?? (yield* file.length)
    }

    // Each operation is the range check plus one counted call on the handle: the handle's own closing rule
    // (Closed after close, close waits for calls in flight) is the device's, so there is no second guard here.
    return {
      name,
      size,
      readAt: (buffer, offset) => {
        const n = clip(name, size, offset, buffer.length)
        if (Result.isFailure(n)) return Effect.fail(n.failure)
        return file.read(buffer, n.success, offset)
      },
      writeAt: (data, offset) => {
        const n = clip(name, size, offset, data.length)
        if (Result.isFailure(n)) return Effect.fail(n.failure)
        return file.write(data, n.success, offset)
      },
      flush: file.datasync,
      cancelWrites: () => Effect.void
    }
  }
)

/**
 * A `Provider` layer holding the file device.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<Provider, StorageError.StorageError> =>
  Layer.effect(Provider, make(options))
