/**
 * A block device: a fixed number of bytes read and written at offsets. Every provider (memory, file, sparse
 * file, sharded, NBD client) and every module that wraps one (dirty tracker, waiting cache, ...) is a
 * `BlockDevice`, so a stack is built by ordinary function composition. `Provider` is the service tag for "the
 * device this program works on", chosen at run time from a device spec.
 *
 * Behaviour at the end of the device (as Silo's providers): a read or write that runs past the end is cut short
 * and returns the shorter count, without an error; an offset past the end, a negative offset or a length that
 * is not a safe integer is an `OutOfRange` error. A device is closed by the scope it was made in; after that
 * every operation fails with `Closed`.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as StorageError from "./StorageError.ts"

/**
 * The operations of a block device.
 *
 * @since 0.1.0
 * @category models
 */
export interface BlockDevice {
  /** A short name for errors and logs ("memory", "file:/var/disk.img", "dirty-tracker(file:...)"). */
  readonly name: string
  /** Size in bytes; fixed for the device's life. */
  readonly size: number
  /** Reads into `buffer` from `offset`; returns the bytes read (fewer at the end of the device). */
  readonly readAt: (buffer: Uint8Array, offset: number) => Effect.Effect<number, StorageError.StorageError>
  /** Writes `data` at `offset`; returns the bytes written (fewer at the end of the device). */
  readonly writeAt: (data: Uint8Array, offset: number) => Effect.Effect<number, StorageError.StorageError>
  /** Makes acknowledged writes durable in the device's own sense (memory: nothing to do; file: fsync). */
  readonly flush: Effect.Effect<void, StorageError.StorageError>
  /** Best-effort cancellation of in-flight writes to the range; most devices have nothing to cancel. */
  readonly cancelWrites: (offset: number, length: number) => Effect.Effect<void>
  /**
   * Optional: which bytes of `[offset, offset + length)` hold data, as consecutive runs from `offset` (cut at
   * the end of the device). Bytes not allocated read as zeros. A device that cannot tell leaves it out, and all
   * of it counts as data (an NBD export reports holes from it).
   */
  readonly allocation?:
    | ((offset: number, length: number) => Effect.Effect<ReadonlyArray<AllocationRun>, StorageError.StorageError>)
    | undefined
}

/**
 * A run of bytes of a device and whether they hold data (see `BlockDevice.allocation`).
 *
 * @since 0.1.0
 * @category models
 */
export interface AllocationRun {
  readonly length: number
  readonly allocated: boolean
}

/**
 * The block device a program works on.
 *
 * @since 0.1.0
 * @category services
 */
export class Provider extends Context.Service<Provider, BlockDevice>()("@tessera/storage/Provider") {}

/**
 * Checks a request against a device of `size` bytes and returns how many bytes of it lie inside the device:
 * `length` when it fits, fewer when it runs past the end, 0 at exactly the end.
 *
 * @since 0.1.0
 * @category ranges
 */
export const clip = (
  device: string,
  size: number,
  offset: number,
  length: number
): Result.Result<number, StorageError.StorageError> =>
  Number.isSafeInteger(offset) && Number.isSafeInteger(length) && offset >= 0 && length >= 0 && offset <= size
    ? Result.succeed(Math.min(length, size - offset))
    : Result.fail(StorageError.make(device, new StorageError.OutOfRange({ offset, length, size })))

/**
 * The same check as an Effect, for the start of `readAt` and `writeAt` implementations.
 *
 * @since 0.1.0
 * @category ranges
 */
export const clipEffect = (
  device: string,
  size: number,
  offset: number,
  length: number
): Effect.Effect<number, StorageError.StorageError> => Effect.fromResult(clip(device, size, offset, length))

/**
 * A device that passes every call to `inner` except the ones given: the base of most modules.
 *
 * @since 0.1.0
 * @category combinators
 */
export const wrap = (
  inner: BlockDevice,
  name: string,
  overrides: Partial<Omit<BlockDevice, "name" | "size">>
): BlockDevice => ({
  name,
  size: inner.size,
  readAt: overrides.readAt ?? inner.readAt,
  writeAt: overrides.writeAt ?? inner.writeAt,
  flush: overrides.flush ?? inner.flush,
  cancelWrites: overrides.cancelWrites ?? inner.cancelWrites
})
