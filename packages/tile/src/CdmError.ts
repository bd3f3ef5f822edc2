/**
 * The one error of the CDM tooling (keys, MFZ files, releases, content directories): the file or key involved
 * and a tagged `reason`, so callers can match on it and users read one clear line.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/**
 * A key file that is not `[MFM-Handle:<handle>]` + PEM, a bad handle, or the wrong kind of key.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidKey extends Schema.TaggedError<InvalidKey>()("InvalidKey", { detail: Schema.String }) {
  override get message(): string {
    return `invalid key: ${this.detail}`
  }
}

/**
 * Bytes that are not a well-formed MFZ or CDM-managed file (bad magic, bad ZIP, missing entry, bad header).
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidRelease extends Schema.TaggedError<InvalidRelease>()("InvalidRelease", {
  detail: Schema.String
}) {
  override get message(): string {
    return `invalid release: ${this.detail}`
  }
}

/**
 * A signature or checksum that does not verify.
 *
 * @since 0.1.0
 * @category errors
 */
export class BadSignature extends Schema.TaggedError<BadSignature>()("BadSignature", { detail: Schema.String }) {
  override get message(): string {
    return `verification failed: ${this.detail}`
  }
}

/**
 * A signer this program does not trust (unknown regnum or handle, or a different key for a known handle).
 *
 * @since 0.1.0
 * @category errors
 */
export class Untrusted extends Schema.TaggedError<Untrusted>()("Untrusted", { detail: Schema.String }) {
  override get message(): string {
    return `untrusted signer: ${this.detail}`
  }
}

/**
 * Reading or writing a file failed.
 *
 * @since 0.1.0
 * @category errors
 */
export class FileSystem extends Schema.TaggedError<FileSystem>()("FileSystem", { cause: Schema.Defect() }) {
  override get message(): string {
    return this.cause instanceof Error ? this.cause.message : String(this.cause)
  }
}

/**
 * What failed, on which file or key.
 *
 * @since 0.1.0
 * @category errors
 */
export class CdmError extends Schema.TaggedError<CdmError>()("CdmError", {
  subject: Schema.String,
  reason: Schema.Union([InvalidKey, InvalidRelease, BadSignature, Untrusted, FileSystem])
}) {
  override get message(): string {
    return `${this.subject}: ${this.reason.message}`
  }
}

/**
 * Builds a `CdmError` from one of the reasons.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (subject: string, reason: CdmError["reason"]): CdmError => new CdmError({ subject, reason })
