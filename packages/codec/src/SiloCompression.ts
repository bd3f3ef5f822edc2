/**
 * The three compressions a Silo WriteAt can carry (payload byte 1 = 2, 4 or 5): run-length (RLE), gzip and
 * zeroes (sparse ranges in a zero-filled block).
 *
 * RLE and zeroes have one canonical encoder each, reproduced byte for byte (quirks included) so our packets equal
 * the Go ones. Gzip output is valid but not canonical: any deflate implementation makes different bytes.
 *
 * Every decompressor enforces `maxDecompressedLength` before it allocates, so a peer cannot make us reserve
 * memory by claiming a huge output: RLE and zeroes know the exact output size after a validation pass (zeroes
 * from its header), and gzip stops inflating at the cap.
 *
 * @since 0.1.0
 */
import * as Result from "effect/Result"
import { gunzipSync, gzipSync } from "node:zlib"
import { type Decoded, fail } from "./DecodeError.ts"
import { putI64le, u64le } from "./internal/bytes.ts"

/**
 * A WriteAt compression, named as in Go (`WriteAtComp<Name>`).
 *
 * @since 0.1.0
 * @category models
 */
export type Compression = "RLE" | "Gzip" | "Zeroes"

/**
 * The WriteAt subtype byte (payload byte 1) of each compression.
 *
 * @since 0.1.0
 * @category constants
 */
export const CompressionType: { readonly [C in Compression]: number } = { RLE: 2, Gzip: 4, Zeroes: 5 }

/**
 * The compression a WriteAt subtype byte stands for, or `undefined` when the byte is not a compression.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromType = (type: number): Compression | undefined =>
  type === 2 ? "RLE" : type === 4 ? "Gzip" : type === 5 ? "Zeroes" : undefined

/**
 * Default cap on the bytes one compressed WriteAt may expand to (32 MiB, many times Silo's block sizes).
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_MAX_DECOMPRESSED_LENGTH = 32 * 1024 * 1024

/**
 * The shortest zero run that ends a range in the zeroes encoding (Go's `TargetNumZeroes`).
 *
 * @since 0.1.0
 * @category constants
 */
export const TARGET_NUM_ZEROES = 12

/**
 * Limits for decompression.
 *
 * @since 0.1.0
 * @category models
 */
export interface DecompressOptions {
  /** Largest accepted decompressed size in bytes; default {@link DEFAULT_MAX_DECOMPRESSED_LENGTH}. */
  readonly maxDecompressedLength?: number | undefined
}

/**
 * Compresses `data` into a new array that starts with `reserve` unused bytes, so a packet encoder can write its
 * header in front of the body without copying the body again.
 *
 * For zeroes the body starts with the u64 total length (the `[02][05][offset]` header stays the caller's).
 *
 * @since 0.1.0
 * @category encoding
 */
export const compress = (compression: Compression, data: Uint8Array, reserve = 0): Uint8Array =>
  compression === "RLE"
    ? compressRle(data, reserve)
    : compression === "Zeroes"
    ? compressZeroes(data, reserve)
    : compressGzip(data, reserve)

/**
 * Decompresses `bytes.subarray(start)`. Errors name the packet (`WriteAtComp<Name>`) and give offsets within
 * `bytes`, so a packet decoder can pass its whole payload and the header length.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decompress = (
  compression: Compression,
  bytes: Uint8Array,
  start = 0,
  options?: DecompressOptions
): Decoded<Uint8Array> => {
  const max = options?.maxDecompressedLength ?? DEFAULT_MAX_DECOMPRESSED_LENGTH
  return compression === "RLE"
    ? decompressRle(bytes, start, max)
    : compression === "Zeroes"
    ? decompressZeroes(bytes, start, max)
    : decompressGzip(bytes, start, max)
}

// -----------------------------------------------------------------------------
// varints
// -----------------------------------------------------------------------------

const uvarintLength = (value: number): number => {
  let n = 1
  while (value >= 0x80) {
    value = Math.floor(value / 0x80)
    n++
  }
  return n
}

/** Writes a non-negative safe integer as unsigned LEB128 and returns the offset after it. */
const putUvarint = (target: Uint8Array, offset: number, value: number): number => {
  while (value >= 0x80) {
    target[offset++] = (value % 0x80) | 0x80
    value = Math.floor(value / 0x80)
  }
  target[offset++] = value
  return offset
}

/**
 * Reads an unsigned LEB128 at `reader.at` (advancing it), or returns -1 when it is truncated or longer than the
 * 10 bytes of a u64. Values above 2^53 come back inexact, which is harmless: every caller compares them against a
 * length far below that and refuses them.
 */
const readUvarint = (bytes: Uint8Array, reader: { at: number }): number => {
  let value = 0
  let scale = 1
  for (let i = 0; i < 10 && reader.at < bytes.length; i++) {
    const b = bytes[reader.at++]!
    value += (b & 0x7f) * scale
    if (b < 0x80) return value
    scale *= 0x80
  }
  return -1
}

const capExceeded = (packet: string, offset: number, length: number, max: number): Decoded<never> =>
  fail("silo", packet, offset, `decompressed length ${length} exceeds the maximum of ${max}`)

// -----------------------------------------------------------------------------
// RLE
// -----------------------------------------------------------------------------

const RLE = "WriteAtCompRLE"

/**
 * Finds the runs Go's encoder codes, as flat `[start, length, ...]` pairs. `prev` starts at 0 and `run` at 0, so
 * leading zeros count as a run from the first byte; mid-buffer runs are coded from 4 bytes but the final run only
 * from 5, a quirk kept for byte-exact output.
 */
const findRuns = (data: Uint8Array): Array<number> => {
  const runs: Array<number> = []
  let prev = 0
  let run = 0
  for (let i = 0; i < data.length; i++) {
    const d = data[i]!
    if (d !== prev) {
      if (run >= 4) runs.push(i - run, run)
      run = 1
      prev = d
    } else {
      run++
    }
  }
  if (run > 4) runs.push(data.length - run, run)
  return runs
}

const compressRle = (data: Uint8Array, reserve: number): Uint8Array => {
  const runs = findRuns(data)
  let size = reserve
  let start = 0
  for (let k = 0; k < runs.length; k += 2) {
    const at = runs[k]!
    const length = runs[k + 1]!
    if (at > start) size += uvarintLength((at - start) * 2) + at - start
    size += uvarintLength(length * 2 + 1) + 1
    start = at + length
  }
  if (data.length > start) size += uvarintLength((data.length - start) * 2) + data.length - start

  const out = new Uint8Array(size)
  let o = reserve
  start = 0
  for (let k = 0; k < runs.length; k += 2) {
    const at = runs[k]!
    const length = runs[k + 1]!
    if (at > start) {
      o = putUvarint(out, o, (at - start) * 2)
      out.set(data.subarray(start, at), o)
      o += at - start
    }
    o = putUvarint(out, o, length * 2 + 1)
    out[o++] = data[at]!
    start = at + length
  }
  if (data.length > start) {
    o = putUvarint(out, o, (data.length - start) * 2)
    out.set(data.subarray(start), o)
  }
  return out
}

/**
 * Two passes: the first validates every chunk and sums the output size (failing as soon as it passes the cap),
 * the second fills an array of exactly that size.
 */
const decompressRle = (bytes: Uint8Array, start: number, max: number): Decoded<Uint8Array> => {
  const reader = { at: start }
  let total = 0
  while (reader.at < bytes.length) {
    const chunkAt = reader.at
    const header = readUvarint(bytes, reader)
    if (header < 0) return fail("silo", RLE, chunkAt, "invalid packet: truncated or overlong chunk header")
    const length = Math.floor(header / 2)
    const isRun = bytes[chunkAt]! & 1
    const needed = isRun ? 1 : length
    if (needed > bytes.length - reader.at) {
      return fail(
        "silo",
        RLE,
        reader.at,
        `invalid packet: ${isRun ? "run value" : `literal of ${length} bytes`} overruns the payload`
      )
    }
    total += length
    if (total > max) return capExceeded(RLE, chunkAt, total, max)
    reader.at += needed
  }

  const out = new Uint8Array(total)
  let o = 0
  reader.at = start
  while (reader.at < bytes.length) {
    const isRun = bytes[reader.at]! & 1
    const length = Math.floor(readUvarint(bytes, reader) / 2)
    if (isRun) {
      out.fill(bytes[reader.at++]!, o, o + length)
    } else {
      out.set(bytes.subarray(reader.at, reader.at + length), o)
      reader.at += length
    }
    o += length
  }
  return Result.succeed(out)
}

// -----------------------------------------------------------------------------
// Zeroes
// -----------------------------------------------------------------------------

const ZEROES = "WriteAtCompZeroes"
const INVALID_RANGE = "invalid range in compressed data"

/**
 * Finds the non-zero ranges as flat `[start, length, ...]` pairs. A range ends where a zero run of at least
 * {@link TARGET_NUM_ZEROES} bytes begins, or a shorter one that reaches the end of the data, so trailing zeros are
 * never emitted and shorter gaps stay inside the range.
 */
const findRanges = (data: Uint8Array): Array<number> => {
  const ranges: Array<number> = []
  let p = 0
  while (true) {
    while (p < data.length && data[p] === 0) p++
    if (p === data.length) return ranges
    const start = p
    while (p < data.length) {
      if (data[p] !== 0) {
        p++
        continue
      }
      let zeros = 1
      while (zeros < TARGET_NUM_ZEROES && p + zeros < data.length && data[p + zeros] === 0) zeros++
      if (zeros === TARGET_NUM_ZEROES || p + zeros === data.length) break
      // Every later position in this short run sees an even shorter run that does not reach the end.
      p += zeros
    }
    ranges.push(start, p - start)
  }
}

const compressZeroes = (data: Uint8Array, reserve: number): Uint8Array => {
  const ranges = findRanges(data)
  let size = reserve + 8
  for (let k = 0; k < ranges.length; k += 2) {
    const length = ranges[k + 1]!
    // zig-zag of a non-negative x is 2x
    size += uvarintLength(ranges[k]! * 2) + uvarintLength(length * 2) + length
  }
  const out = new Uint8Array(size)
  putI64le(out, reserve, data.length)
  let o = reserve + 8
  for (let k = 0; k < ranges.length; k += 2) {
    const at = ranges[k]!
    const length = ranges[k + 1]!
    o = putUvarint(out, o, at * 2)
    o = putUvarint(out, o, length * 2)
    out.set(data.subarray(at, at + length), o)
    o += length
  }
  return out
}

const readZigZag = (bytes: Uint8Array, reader: { at: number }): number => {
  const u = readUvarint(bytes, reader)
  if (u < 0) return Number.NaN
  return u % 2 === 0 ? u / 2 : -(u + 1) / 2
}

const decompressZeroes = (bytes: Uint8Array, start: number, max: number): Decoded<Uint8Array> => {
  if (bytes.length - start < 8) {
    return fail(
      "silo",
      ZEROES,
      bytes.length,
      `invalid packet: the payload is ${bytes.length} bytes, needs at least ${start + 8}`
    )
  }
  const total = u64le(bytes, start)
  // Checked before the allocation below: Go allocates whatever the header claims.
  if (total === undefined || total > max) {
    return total === undefined
      ? fail("silo", ZEROES, start, `decompressed length is at least 2^53, above the maximum of ${max}`)
      : capExceeded(ZEROES, start, total, max)
  }
  const out = new Uint8Array(total)
  const reader = { at: start + 8 }
  while (reader.at < bytes.length) {
    const recordAt = reader.at
    const at = readZigZag(bytes, reader)
    const length = readZigZag(bytes, reader)
    if (!(at >= 0 && length >= 0 && at + length <= total && length <= bytes.length - reader.at)) {
      return fail("silo", ZEROES, recordAt, INVALID_RANGE)
    }
    out.set(bytes.subarray(reader.at, reader.at + length), at)
    reader.at += length
  }
  return Result.succeed(out)
}

// -----------------------------------------------------------------------------
// Gzip
// -----------------------------------------------------------------------------

const GZIP = "WriteAtCompGzip"

/** Level 1 (BestSpeed) as Go's encoder uses. */
const compressGzip = (data: Uint8Array, reserve: number): Uint8Array => {
  const member = gzipSync(data, { level: 1 })
  const out = new Uint8Array(reserve + member.length)
  out.set(member, reserve)
  // zlib writes OS = 3 (Unix); Go writes 255 (unknown). The byte is informational, so match Go's header.
  out[reserve + 9] = 0xff
  return out
}

/**
 * A standard gunzip: accepts concatenated members and checks CRC32 and ISIZE. `maxOutputLength` makes zlib stop
 * (with a RangeError) as soon as the output passes the cap, before the rest is inflated.
 */
const decompressGzip = (bytes: Uint8Array, start: number, max: number): Decoded<Uint8Array> => {
  try {
    // zlib refuses a cap of 0, so ask for 1 and check the result below.
    const out = gunzipSync(bytes.subarray(start), { maxOutputLength: Math.max(1, max) })
    if (out.length > max) return capExceeded(GZIP, start, out.length, max)
    return Result.succeed(new Uint8Array(out.buffer, out.byteOffset, out.length))
  } catch (error) {
    if (error instanceof RangeError) {
      return fail("silo", GZIP, start, `decompressed length exceeds the maximum of ${max}`)
    }
    return fail("silo", GZIP, start, `gzip: ${error instanceof Error ? error.message : String(error)}`)
  }
}
