/**
 * The 1024-byte CDM10 map header that starts every CDM-managed file (spec t2 §4.2); the "mapped file" (a
 * plain MFZ) follows it.
 *
 * | Off | Size | Field |
 * | --- | --- | --- |
 * | 0 | 6 | `CDM1?\n` (major '1', minor any byte; written as `CDM10\n`) |
 * | 6 | 1 | bitsInBlock: block size is 2^bits bytes, at least 256, at most 100 blocks cover the file |
 * | 7 | 1 | regnum of the signing key |
 * | 8 | 4 | slotstamp, u32 BE |
 * | 12 | 4 | mapped length, u32 BE (bytes after the header) |
 * | 16 | 16 | label, printable ASCII, NUL-padded |
 * | 32 | 64 | SHA-512 of the whole mapped file |
 * | 96 | 800 | 100 × 8-byte incremental checksums; entry i = first 8 bytes of SHA-512(mapped[0, min((i+1)·B, len))) for i·B ≤ len; the rest zero |
 * | 896 | 128 | RSA-1024 PKCS#1 v1.5 SHA-512 signature over bytes 0..895 |
 *
 * This module only lays the bytes out; hashing and signing live with the `Signer`/`Verifier` services, which
 * use `signedRange`/`signedPart` and `checksumRange`.
 *
 * @since 0.1.0
 */
import * as Result from "effect/Result"
import * as CdmSlotstamp from "./CdmSlotstamp.ts"
import { type Decoded, fail } from "./DecodeError.ts"
import { ByteWriter, u32be } from "./internal/bytes.ts"
import { isIntIn, isU32, isU8 } from "./internal/t2.ts"

/**
 * Size of the header.
 *
 * @since 0.1.0
 * @category constants
 */
export const size = 1024

/**
 * Number of incremental checksum slots.
 *
 * @since 0.1.0
 * @category constants
 */
export const maxEntries = 100

/**
 * Bytes per incremental checksum (a SHA-512 prefix).
 *
 * @since 0.1.0
 * @category constants
 */
export const entryLength = 8

/**
 * Smallest bitsInBlock (256-byte blocks).
 *
 * @since 0.1.0
 * @category constants
 */
export const minBitsInBlock = 8

/**
 * Largest bitsInBlock accepted: a 32-bit mapped length never needs more.
 *
 * @since 0.1.0
 * @category constants
 */
export const maxBitsInBlock = 32

/**
 * Longest label.
 *
 * @since 0.1.0
 * @category constants
 */
export const maxLabelLength = 16

/**
 * Length of the RSA signature.
 *
 * @since 0.1.0
 * @category constants
 */
export const signatureLength = 128

/**
 * The header bytes the signature covers, `[start, end)`; the signature itself follows at `end`.
 *
 * @since 0.1.0
 * @category constants
 */
export const signedRange = { start: 0, end: 896 } as const

/**
 * A decoded header. Byte strings are views into the decoded bytes.
 *
 * @since 0.1.0
 * @category models
 */
export interface CdmMapHeader {
  /** The minor version character of the magic (`"0"` for CDM10). */
  readonly minor: string
  readonly bitsInBlock: number
  readonly regnum: number
  readonly slotstamp: number
  readonly mappedLength: number
  readonly label: string
  /** SHA-512 of the whole mapped file (64 bytes). */
  readonly sha512: Uint8Array
  /** The used incremental checksums, `entryCount(mappedLength, bitsInBlock)` of 8 bytes each. */
  readonly checksums: ReadonlyArray<Uint8Array>
  /** The signature over `signedRange` (128 bytes). */
  readonly signature: Uint8Array
}

/**
 * The smallest bitsInBlock (≥ 8) whose blocks cover `mappedLength` in at most 100 blocks.
 *
 * @since 0.1.0
 * @category constructors
 */
export const bitsInBlockFor = (mappedLength: number): number => {
  let bits = minBitsInBlock
  while (2 ** bits * maxEntries < mappedLength) bits++
  return bits
}

/**
 * How many checksum entries are used: every i < 100 with i·B ≤ mappedLength. When the length is an exact
 * multiple of B below 100 blocks, the last entry repeats the previous one (same prefix).
 *
 * @since 0.1.0
 * @category getters
 */
export const entryCount = (mappedLength: number, bitsInBlock: number): number =>
  Math.min(maxEntries, Math.floor(mappedLength / 2 ** bitsInBlock) + 1)

/**
 * Block size in bytes.
 *
 * @since 0.1.0
 * @category getters
 */
export const blockSize = (header: CdmMapHeader): number => 2 ** header.bitsInBlock

/**
 * Length of the whole managed file (header + mapped file).
 *
 * @since 0.1.0
 * @category getters
 */
export const totalLength = (header: CdmMapHeader): number => size + header.mappedLength

/**
 * The mapped-file prefix checksum entry `i` covers: `[0, end)` with end = min((i+1)·B, mappedLength).
 *
 * @since 0.1.0
 * @category getters
 */
export const checksumRange = (header: CdmMapHeader, i: number): { readonly start: 0; readonly end: number } => ({
  start: 0,
  end: Math.min((i + 1) * blockSize(header), header.mappedLength)
})

/**
 * The signed part of an encoded header (a view).
 *
 * @since 0.1.0
 * @category getters
 */
export const signedPart = (headerBytes: Uint8Array): Uint8Array =>
  headerBytes.subarray(signedRange.start, signedRange.end)

const MAGIC = [0x43, 0x44, 0x4d, 0x31] // "CDM1"
const NEWLINE = 0x0a
const LABEL = 16
const SHA = 32
const ENTRIES = 96

/**
 * Decodes the header at the start of `bytes` (a whole managed file may be passed; only the first 1024
 * bytes are read). Refuses a wrong magic, a block size that needs more than 100 blocks, slot 0, a label
 * that is not printable ASCII followed by NULs, and non-zero unused checksum slots.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decode = (bytes: Uint8Array): Decoded<CdmMapHeader> => {
  if (bytes.length < size) {
    return fail("t2", "cdm_map_header", bytes.length, `header needs ${size} bytes, got ${bytes.length}`)
  }
  for (let i = 0; i < 4; i++) {
    if (bytes[i] !== MAGIC[i]) return fail("t2", "cdm_map_header", i, "magic is not CDM1?\\n")
  }
  if (bytes[5] !== NEWLINE) return fail("t2", "cdm_map_header", 5, "magic is not CDM1?\\n")
  const bitsInBlock = bytes[6]!
  const mappedLength = u32be(bytes, 12)
  if (bitsInBlock < minBitsInBlock || bitsInBlock > maxBitsInBlock) {
    return fail("t2", "cdm_map_header", 6, `bitsInBlock ${bitsInBlock} is not ${minBitsInBlock}..${maxBitsInBlock}`)
  }
  if (2 ** bitsInBlock * maxEntries < mappedLength) {
    return fail(
      "t2",
      "cdm_map_header",
      6,
      `2^${bitsInBlock}-byte blocks need more than 100 to cover ${mappedLength} bytes`
    )
  }
  const slotstamp = u32be(bytes, 8)
  if (!CdmSlotstamp.isValid(slotstamp)) return fail("t2", "cdm_map_header", 8, "slot 0 is illegal")
  let label = ""
  let i = LABEL
  for (; i < SHA && bytes[i] !== 0; i++) {
    const c = bytes[i]!
    if (c < 0x20 || c > 0x7e) return fail("t2", "cdm_map_header", i, `label byte 0x${c.toString(16)} is not printable`)
    label += String.fromCharCode(c)
  }
  for (; i < SHA; i++) {
    if (bytes[i] !== 0) return fail("t2", "cdm_map_header", i, "label padding is not NUL")
  }
  const count = entryCount(mappedLength, bitsInBlock)
  const checksums: Array<Uint8Array> = []
  for (let e = 0; e < count; e++) {
    checksums.push(bytes.subarray(ENTRIES + e * entryLength, ENTRIES + (e + 1) * entryLength))
  }
  for (let o = ENTRIES + count * entryLength; o < signedRange.end; o++) {
    if (bytes[o] !== 0) return fail("t2", "cdm_map_header", o, "unused checksum entry is not zero")
  }
  return Result.succeed({
    minor: String.fromCharCode(bytes[4]!),
    bitsInBlock,
    regnum: bytes[7]!,
    slotstamp,
    mappedLength,
    label,
    sha512: bytes.subarray(SHA, ENTRIES),
    checksums,
    signature: bytes.subarray(signedRange.end, size)
  })
}

/**
 * Encodes a header into 1024 bytes, refusing any field that `decode` would refuse.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encode = (header: CdmMapHeader): Decoded<Uint8Array> => {
  const minor = header.minor.charCodeAt(0)
  if (header.minor.length !== 1 || minor > 0xff) {
    return fail("t2", "cdm_map_header", 4, "minor version is not one byte-sized character")
  }
  if (!isIntIn(header.bitsInBlock, minBitsInBlock, maxBitsInBlock)) {
    return fail(
      "t2",
      "cdm_map_header",
      6,
      `bitsInBlock ${header.bitsInBlock} is not ${minBitsInBlock}..${maxBitsInBlock}`
    )
  }
  if (!isU8(header.regnum)) return fail("t2", "cdm_map_header", 7, `regnum ${header.regnum} is not a byte`)
  if (!CdmSlotstamp.isValid(header.slotstamp)) {
    return fail("t2", "cdm_map_header", 8, `slotstamp ${header.slotstamp} is not 32-bit with a non-zero slot`)
  }
  if (!isU32(header.mappedLength)) return fail("t2", "cdm_map_header", 12, "mapped length is not 32-bit")
  if (2 ** header.bitsInBlock * maxEntries < header.mappedLength) {
    return fail("t2", "cdm_map_header", 6, `2^${header.bitsInBlock}-byte blocks need more than 100 to cover the file`)
  }
  if (header.label.length > maxLabelLength || !/^[\x20-\x7e]*$/.test(header.label)) {
    return fail("t2", "cdm_map_header", LABEL, `label is not at most ${maxLabelLength} printable ASCII characters`)
  }
  if (header.sha512.length !== 64) return fail("t2", "cdm_map_header", SHA, "SHA-512 is not 64 bytes")
  const count = entryCount(header.mappedLength, header.bitsInBlock)
  if (header.checksums.length !== count) {
    return fail("t2", "cdm_map_header", ENTRIES, `${header.checksums.length} checksum entries given, ${count} needed`)
  }
  const badEntry = header.checksums.findIndex((c) => c.length !== entryLength)
  if (badEntry >= 0) {
    return fail("t2", "cdm_map_header", ENTRIES + badEntry * entryLength, "checksum entry is not 8 bytes")
  }
  if (header.signature.length !== signatureLength) {
    return fail("t2", "cdm_map_header", signedRange.end, `signature is not ${signatureLength} bytes`)
  }
  const w = new ByteWriter(size).raw(new Uint8Array(MAGIC)).u8(minor).u8(NEWLINE).u8(header.bitsInBlock)
    .u8(header.regnum).u32be(header.slotstamp).u32be(header.mappedLength)
  for (let i = 0; i < header.label.length; i++) w.u8(header.label.charCodeAt(i))
  w.offset = SHA
  w.raw(header.sha512)
  for (const entry of header.checksums) w.raw(entry)
  w.offset = signedRange.end
  return Result.succeed(w.raw(header.signature).bytes)
}
