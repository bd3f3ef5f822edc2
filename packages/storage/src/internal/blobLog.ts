/**
 * The blob store's log format: a file header, then records appended one after another. This module encodes
 * records, and reads them back only when they verify completely, so a torn or damaged record is never taken for
 * data.
 *
 * The layout (file header, record header, what the checksum covers and why) is documented in `BlobStore.ts`.
 */
import * as Effect from "effect/Effect"
import { Buffer } from "node:buffer"
import { createHash, type Hash } from "node:crypto"
import type { FileHandle } from "node:fs/promises"
import { KEY_SIZE } from "../ObjectStore.ts"
import type * as StorageError from "../StorageError.ts"
import { readFully, writeFully } from "./storeFiles.ts"

/** Bytes of the file header; the first record starts here. */
export const FILE_HEADER_SIZE = 64
/** Bytes of a record header; the record's data follows it. */
export const RECORD_HEADER_SIZE = 136
/** Bytes of a log id. */
export const LOG_ID_SIZE = 16
/** The record flag of a tombstone. */
export const FLAG_REMOVED = 1
/** The format version this module writes and reads. */
export const VERSION = 1

const FILE_MAGIC = new TextEncoder().encode("TSRBLOG\0")
const RECORD_MAGIC = new TextEncoder().encode("TSRBREC\0")
const KEY_OFFSET = 8
const FLAGS_OFFSET = 72
const SIZE_OFFSET = 80
const POSITION_OFFSET = 88
const MODIFIED_OFFSET = 96
const CHECKSUM_OFFSET = 104

/**
 * Bytes moved per step when reading or writing records: records up to this size are written with one call and
 * read from one buffer; larger ones go in pieces, so no operation holds more than this of an object in memory.
 */
export const CHUNK = 1024 * 1024

/** What a record header says. */
export interface RecordHeader {
  readonly key: Uint8Array
  readonly flags: number
  readonly size: number
  readonly position: number
  readonly modified: number
}

const sha256 = (...parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  const hash = createHash("sha256")
  for (const part of parts) hash.update(part)
  return hash.digest()
}

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => Buffer.compare(a, b) === 0

const view = (bytes: Uint8Array) => new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)

// A u64 field as a number, or -1 when it does not fit in a safe integer (no valid record has one).
const readCount = (bytes: Uint8Array, offset: number): number => {
  const value = view(bytes).getBigUint64(offset, true)
  return value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : -1
}

/** The file header of a new log with id `logId`. */
export const encodeFileHeader = (logId: Uint8Array): Uint8Array => {
  const bytes = new Uint8Array(FILE_HEADER_SIZE)
  bytes.set(FILE_MAGIC, 0)
  view(bytes).setUint32(8, VERSION, true)
  bytes.set(logId, 16)
  bytes.set(sha256(bytes.subarray(0, 32)), 32)
  return bytes
}

/** The log id of a file header, or why the header is not one this version can read. */
export const decodeFileHeader = (bytes: Uint8Array): { readonly logId: Uint8Array } | { readonly problem: string } => {
  if (bytes.length < FILE_HEADER_SIZE || !sameBytes(bytes.subarray(0, 8), FILE_MAGIC)) {
    return { problem: "not a blob log (bad magic)" }
  }
  if (!sameBytes(sha256(bytes.subarray(0, 32)), bytes.subarray(32, FILE_HEADER_SIZE))) {
    return { problem: "log header checksum mismatch" }
  }
  const version = view(bytes).getUint32(8, true)
  return version === VERSION ? { logId: bytes.slice(16, 32) } : { problem: `log format version ${version}` }
}

// A safe-integer count as a u64 field, in two u32 halves (no BigInt on the write path).
const putCount = (fields: DataView, offset: number, value: number) => {
  fields.setUint32(offset, value >>> 0, true)
  fields.setUint32(offset + 4, Math.floor(value / 0x1_0000_0000), true)
}

// Writes the header fields (all but the checksum) into the first `RECORD_HEADER_SIZE` bytes of `bytes`.
const writeHeader = (bytes: Uint8Array, header: RecordHeader): Uint8Array => {
  const fields = view(bytes)
  bytes.set(RECORD_MAGIC, 0)
  bytes.set(header.key, KEY_OFFSET)
  putCount(fields, FLAGS_OFFSET, header.flags)
  putCount(fields, SIZE_OFFSET, header.size)
  putCount(fields, POSITION_OFFSET, header.position)
  putCount(fields, MODIFIED_OFFSET, header.modified)
  return bytes
}

const encodeHeader = (header: RecordHeader): Uint8Array => writeHeader(new Uint8Array(RECORD_HEADER_SIZE), header)

// The header fields if they are well formed for a record at `position`; the checksum is checked separately.
const parseHeader = (bytes: Uint8Array, position: number): RecordHeader | undefined => {
  if (!sameBytes(bytes.subarray(0, 8), RECORD_MAGIC)) return undefined
  const flags = readCount(bytes, FLAGS_OFFSET)
  const size = readCount(bytes, SIZE_OFFSET)
  const modified = readCount(bytes, MODIFIED_OFFSET)
  if (readCount(bytes, POSITION_OFFSET) !== position || (flags !== 0 && flags !== FLAG_REMOVED)) return undefined
  if (size < 0 || modified < 0 || (flags === FLAG_REMOVED && size !== 0)) return undefined
  return { key: bytes.slice(KEY_OFFSET, KEY_OFFSET + KEY_SIZE), flags, size, position, modified }
}

const checksum = (logId: Uint8Array, header: Uint8Array): Hash =>
  createHash("sha256").update(logId).update(header.subarray(0, CHECKSUM_OFFSET))

/** Fills `target` with the record's data bytes `[from, from + target.length)`, every byte of it. */
export type Fill = (target: Uint8Array, from: number) => Effect.Effect<void, StorageError.StorageError>

/**
 * Completes a record held whole in `record` (`RECORD_HEADER_SIZE + header.size` bytes, the data already in place
 * after the header): writes the header and its checksum in front of the data.
 */
export const sealRecord = (logId: Uint8Array, header: RecordHeader, record: Uint8Array): Uint8Array => {
  writeHeader(record, header)
  record.set(checksum(logId, record).update(record.subarray(RECORD_HEADER_SIZE)).digest(), CHECKSUM_OFFSET)
  return record
}

/**
 * Writes a record at `header.position`. The data is `data` itself, or comes from `fill` in pieces of at most
 * `CHUNK` bytes; a large record's header is written last, so until the record is complete it does not parse.
 * Each piece is hashed while it is being written.
 */
export const writeRecord = Effect.fnUntraced(function*(
  store: string,
  handle: FileHandle,
  logId: Uint8Array,
  header: RecordHeader,
  data: Uint8Array | Fill
) {
  if (header.size <= CHUNK) {
    const record = new Uint8Array(RECORD_HEADER_SIZE + header.size)
    if (typeof data === "function") yield* data(record.subarray(RECORD_HEADER_SIZE), 0)
    else record.set(data, RECORD_HEADER_SIZE)
    return yield* writeFully(store, "log", handle, sealRecord(logId, header, record), header.position)
  }
  const head = encodeHeader(header)
  const hash = checksum(logId, head)
  const piece = new Uint8Array(typeof data === "function" ? CHUNK : 0)
  for (let from = 0; from < header.size; from += CHUNK) {
    const length = Math.min(CHUNK, header.size - from)
    let part: Uint8Array
    if (typeof data === "function") {
      part = piece.subarray(0, length)
      yield* data(part, from)
    } else part = data.subarray(from, from + length)
    yield* writeFully(store, "log", handle, part, header.position + RECORD_HEADER_SIZE + from, () => hash.update(part))
  }
  head.set(hash.digest(), CHECKSUM_OFFSET)
  yield* writeFully(store, "log", handle, head, header.position)
})

/** A sequential reader over a log: `bytes(position, length)` (length at most `CHUNK`) serves from one buffer. */
export interface Window {
  /** Bytes at `position`, fewer at the end of the file; the view is valid until the next call. */
  readonly bytes: (position: number, length: number) => Effect.Effect<Uint8Array, StorageError.StorageError>
}

/** A window over `handle`, refilled with `CHUNK` bytes from the requested position whenever it misses. */
export const makeWindow = (store: string, handle: FileHandle): Window => {
  const buffer = new Uint8Array(CHUNK)
  let start = 0
  let filled = 0
  return {
    bytes: (position, length) =>
      position >= start && position + length <= start + filled
        ? Effect.succeed(buffer.subarray(position - start, position - start + length))
        : Effect.map(readFully(store, "log", handle, buffer, position), (n) => {
          start = position
          filled = n
          return buffer.subarray(0, Math.min(length, n))
        })
  }
}

/** The header of the record at `position` if the whole record lies before `end` and its checksum matches. */
export const readRecord = Effect.fnUntraced(function*(
  window: Window,
  logId: Uint8Array,
  position: number,
  end: number
) {
  if (position + RECORD_HEADER_SIZE > end) return undefined
  // A copy: the window moves on while the data is hashed.
  const head = (yield* window.bytes(position, RECORD_HEADER_SIZE)).slice()
  const header = parseHeader(head, position)
  if (!header || position + RECORD_HEADER_SIZE + header.size > end) return undefined
  const hash = checksum(logId, head)
  for (let from = 0; from < header.size; from += CHUNK) {
    const length = Math.min(CHUNK, header.size - from)
    const part = yield* window.bytes(position + RECORD_HEADER_SIZE + from, length)
    if (part.length < length) return undefined
    hash.update(part)
  }
  return sameBytes(hash.digest(), head.subarray(CHECKSUM_OFFSET)) ? header : undefined
})

/**
 * The position of the first record at or after `from` that verifies, found by searching for the record magic and
 * verifying each hit; `undefined` when there is none before `end`.
 */
export const findRecord = Effect.fnUntraced(function*(
  window: Window,
  logId: Uint8Array,
  from: number,
  end: number
) {
  let at = from
  while (at + RECORD_HEADER_SIZE <= end) {
    const chunk = yield* window.bytes(at, Math.min(CHUNK, end - at))
    const hit = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length).indexOf(RECORD_MAGIC)
    if (hit < 0) {
      // Overlap the next chunk by a magic's length less one, in case a magic straddles the boundary.
      at += Math.max(1, chunk.length - (RECORD_MAGIC.length - 1))
      continue
    }
    if ((yield* readRecord(window, logId, at + hit, end)) !== undefined) return at + hit
    at += hit + 1
  }
  return undefined
})
