/**
 * Device specs: how a user names a block device on the command line. `memory:SIZE` (a device in this process),
 * `file:PATH` (size from the file, or given), `sparse:PATH` (size and block size from its header, or given).
 * Sizes are bytes or a number with a unit (`256MiB`, `1GiB`, `4096`).
 *
 * @since 0.1.0
 */
import * as ByteSize from "effect/ByteSize"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as File from "./File.ts"
import * as Memory from "./Memory.ts"
import type { BlockDevice } from "./Provider.ts"
import * as SparseFile from "./SparseFile.ts"
import * as StorageError from "./StorageError.ts"

/**
 * A parsed device spec.
 *
 * @since 0.1.0
 * @category models
 */
export type DeviceSpec =
  | { readonly _tag: "Memory"; readonly size: number }
  | { readonly _tag: "File"; readonly path: string }
  | { readonly _tag: "Sparse"; readonly path: string }

/**
 * A spec or size that does not parse.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidSpec extends Schema.TaggedError<InvalidSpec>()("InvalidSpec", {
  input: Schema.String,
  detail: Schema.String
}) {
  override get message(): string {
    return `${JSON.stringify(this.input)}: ${this.detail}`
  }
}

/**
 * Block size of sparse files made from a spec (Silo's device default).
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_SPARSE_BLOCK_SIZE = 4096

/**
 * Parses a size: plain bytes (`4096`) or a number with a unit (`256MiB`, `1.5GB`, `8 KiB`), up to 2^53 - 1.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseSize = (input: string): Result.Result<number, InvalidSpec> => {
  const text = input.trim()
  const bytes = /^\d+$/.test(text)
    ? Option.some(BigInt(text))
    : Option.map(ByteSize.fromString(text), ByteSize.toBigInt)
  if (Option.isNone(bytes)) {
    return Result.fail(new InvalidSpec({ input, detail: "not a size (use bytes or a unit such as 256MiB or 1GiB)" }))
  }
  if (bytes.value > BigInt(Number.MAX_SAFE_INTEGER)) {
    return Result.fail(new InvalidSpec({ input, detail: "larger than 2^53 - 1 bytes" }))
  }
  return Result.succeed(Number(bytes.value))
}

/**
 * Parses `memory:SIZE`, `file:PATH` or `sparse:PATH`.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parse = (input: string): Result.Result<DeviceSpec, InvalidSpec> => {
  const colon = input.indexOf(":")
  const scheme = colon === -1 ? "" : input.slice(0, colon)
  const rest = input.slice(colon + 1)
  switch (scheme) {
    case "memory":
      return Result.map(parseSize(rest), (size): DeviceSpec => ({ _tag: "Memory", size }))
    case "file":
    case "sparse":
      return rest === ""
        ? Result.fail(new InvalidSpec({ input, detail: `${scheme}: needs a path` }))
        : Result.succeed(scheme === "file" ? { _tag: "File", path: rest } : { _tag: "Sparse", path: rest })
    default:
      return Result.fail(new InvalidSpec({ input, detail: "expected memory:SIZE, file:PATH or sparse:PATH" }))
  }
}

/**
 * How to open a spec's device.
 *
 * @since 0.1.0
 * @category models
 */
export interface OpenOptions {
  /** The device size; required to create a file or sparse file, checked against an existing one. */
  readonly size?: number | undefined
  /** Create the file (or resize it to `size`) instead of requiring it to exist. */
  readonly create?: boolean | undefined
  /** Block size of a new sparse file; default {@link DEFAULT_SPARSE_BLOCK_SIZE}. */
  readonly blockSize?: number | undefined
}

const needsSize = (name: string) =>
  StorageError.make(name, new StorageError.Unsupported({ detail: "a size is needed to create this device (--size)" }))

/**
 * Opens (or creates) the device a spec names, closed with the current scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const open = Effect.fn("DeviceSpec.open")(function*(
  spec: DeviceSpec,
  options: OpenOptions = {}
): Effect.fn.Return<BlockDevice, StorageError.StorageError, Scope.Scope> {
  switch (spec._tag) {
    case "Memory":
      return yield* Memory.make(spec.size)
    case "File":
      if (options.create) {
        if (options.size === undefined) return yield* needsSize(`file:${spec.path}`)
        return yield* File.make({ path: spec.path, create: true, size: options.size })
      }
      return yield* File.make({ path: spec.path, size: options.size })
    case "Sparse": {
      if (options.create) {
        if (options.size === undefined) return yield* needsSize(`sparse:${spec.path}`)
        return yield* SparseFile.make({
          path: spec.path,
          size: options.size,
          blockSize: options.blockSize ?? DEFAULT_SPARSE_BLOCK_SIZE
        })
      }
      const geometry = yield* SparseFile.describe(spec.path)
      return yield* SparseFile.make({
        path: spec.path,
        size: options.size ?? geometry.size,
        blockSize: options.blockSize ?? geometry.blockSize
      })
    }
  }
})
