/**
 * The one error of every block device and object store: a tagged `reason` says which of the few things went
 * wrong, so callers can match on it (`Effect.catchReason`) and users read one clear line.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/**
 * An offset or length outside what the device or object holds (negative, not an integer, past the end).
 *
 * @since 0.1.0
 * @category errors
 */
export class OutOfRange extends Schema.TaggedError<OutOfRange>()("OutOfRange", {
  offset: Schema.Number,
  length: Schema.Number,
  size: Schema.Number
}) {
  override get message(): string {
    return `range ${this.offset}+${this.length} is outside 0..${this.size}`
  }
}

/**
 * The device or store was used after its scope closed it.
 *
 * @since 0.1.0
 * @category errors
 */
export class Closed extends Schema.TaggedError<Closed>()("Closed", {}) {
  override get message(): string {
    return "closed"
  }
}

/**
 * The operating system (or a wrapped device) failed an operation; `cause` keeps the original error.
 *
 * @since 0.1.0
 * @category errors
 */
export class IoFailure extends Schema.TaggedError<IoFailure>()("IoFailure", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {
  override get message(): string {
    const cause = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `${this.operation} failed: ${cause}`
  }
}

/**
 * Data on disk that is not what was written (a checksum or framing mismatch found while reading or opening).
 *
 * @since 0.1.0
 * @category errors
 */
export class Corrupt extends Schema.TaggedError<Corrupt>()("Corrupt", {
  detail: Schema.String
}) {
  override get message(): string {
    return `corrupt data: ${this.detail}`
  }
}

/**
 * A request the device or store does not support in its current state (for example a write to a read-only
 * base, or an unaligned write to a block-granular module).
 *
 * @since 0.1.0
 * @category errors
 */
export class Unsupported extends Schema.TaggedError<Unsupported>()("Unsupported", {
  detail: Schema.String
}) {
  override get message(): string {
    return this.detail
  }
}

/**
 * What was asked for does not exist: no object under the key, or no file at the path.
 *
 * @since 0.1.0
 * @category errors
 */
export class NotFound extends Schema.TaggedError<NotFound>()("NotFound", {
  key: Schema.String
}) {
  override get message(): string {
    return `not found: ${this.key}`
  }
}

/**
 * What failed: one error for every storage operation, naming the device or store.
 *
 * @since 0.1.0
 * @category errors
 */
export class StorageError extends Schema.TaggedError<StorageError>()("StorageError", {
  device: Schema.String,
  reason: Schema.Union([OutOfRange, Closed, IoFailure, Corrupt, Unsupported, NotFound])
}) {
  override get message(): string {
    return `${this.device}: ${this.reason.message}`
  }
}

/**
 * Builds a `StorageError` for `device` from one of the reasons.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (device: string, reason: StorageError["reason"]): StorageError =>
  new StorageError({ device, reason })
