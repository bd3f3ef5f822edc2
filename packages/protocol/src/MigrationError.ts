/**
 * The one error of a migration: a tagged `reason` says which block could not be moved and why (its read from
 * the source failed or came back short, or the destination refused or cut short its write), that the
 * migration was set up wrongly, or that it was closed before it finished. Block errors reach `Migrator.waitForCompletion` and `Migrator.run`; nothing is
 * retried, because a block that failed once leaves the destination incomplete until someone decides what to do.
 *
 * @since 0.1.0
 */
import * as StorageError from "@tessera/storage/StorageError"
import * as Schema from "effect/Schema"

/**
 * Reading the block from the source (through the dirty tracker) failed.
 *
 * @since 0.1.0
 * @category errors
 */
export class ReadFailed extends Schema.TaggedError<ReadFailed>()("ReadFailed", {
  block: Schema.Number,
  cause: StorageError.StorageError
}) {
  override get message(): string {
    return `block ${this.block}: reading the source failed: ${this.cause.message}`
  }
}

/**
 * The source returned fewer bytes for the block than the device holds there.
 *
 * @since 0.1.0
 * @category errors
 */
export class ShortRead extends Schema.TaggedError<ShortRead>()("ShortRead", {
  block: Schema.Number,
  expected: Schema.Number,
  actual: Schema.Number
}) {
  override get message(): string {
    return `block ${this.block}: the source returned ${this.actual} of ${this.expected} bytes`
  }
}

/**
 * Writing the block to the destination failed.
 *
 * @since 0.1.0
 * @category errors
 */
export class WriteFailed extends Schema.TaggedError<WriteFailed>()("WriteFailed", {
  block: Schema.Number,
  cause: StorageError.StorageError
}) {
  override get message(): string {
    return `block ${this.block}: writing the destination failed: ${this.cause.message}`
  }
}

/**
 * The destination accepted fewer bytes of the block than were sent.
 *
 * @since 0.1.0
 * @category errors
 */
export class ShortWrite extends Schema.TaggedError<ShortWrite>()("ShortWrite", {
  block: Schema.Number,
  expected: Schema.Number,
  actual: Schema.Number
}) {
  override get message(): string {
    return `block ${this.block}: the destination took ${this.actual} of ${this.expected} bytes`
  }
}

/**
 * The migration cannot be set up as asked (a block size that is not a positive whole number, devices of
 * different sizes, a concurrency below 1).
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidConfig extends Schema.TaggedError<InvalidConfig>()("InvalidConfig", {
  detail: Schema.String
}) {
  override get message(): string {
    return `invalid migration: ${this.detail}`
  }
}

/**
 * The migrator's scope closed while blocks were still being moved, so the destination may be incomplete.
 *
 * @since 0.1.0
 * @category errors
 */
export class Closed extends Schema.TaggedError<Closed>()("Closed", {}) {
  override get message(): string {
    return "the migration was closed before it finished"
  }
}

/**
 * The peer went away (or broke the protocol) and the migration could not go on: it did not come back within
 * the time allowed, or this side does not wait for it.
 *
 * @since 0.1.0
 * @category errors
 */
export class Disconnected extends Schema.TaggedError<Disconnected>()("Disconnected", {
  detail: Schema.String,
  cause: Schema.Defect()
}) {
  override get message(): string {
    return this.detail
  }
}

/**
 * What went wrong with a migration.
 *
 * @since 0.1.0
 * @category errors
 */
export class MigrationError extends Schema.TaggedError<MigrationError>()("MigrationError", {
  reason: Schema.Union([ReadFailed, ShortRead, WriteFailed, ShortWrite, InvalidConfig, Closed, Disconnected])
}) {
  override get message(): string {
    return this.reason.message
  }
}

/**
 * The reasons that are about one block.
 *
 * @since 0.1.0
 * @category models
 */
export type BlockReason = ReadFailed | ShortRead | WriteFailed | ShortWrite

/**
 * Builds a `MigrationError` from one of the reasons.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (reason: MigrationError["reason"]): MigrationError => new MigrationError({ reason })
