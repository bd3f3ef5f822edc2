/**
 * The deletions map `cdmss-deleted.map` carried (inside its MFZ) by the slot 0x01 managed file (spec t2
 * §3.10). It lists, per slot, the newest stamp that is deleted; deleted content is garbage-collected and
 * announcements of it are answered with the S01 file.
 *
 * | Off | Size | Field |
 * | --- | --- | --- |
 * | 0 | 6 | `DMP1?\n` (written as `DMP10\n`) |
 * | 6 | 1 | regnum of the signer |
 * | 7 | 4 | signing slotstamp, u32 BE (slot must be 0x01) |
 * | 11 | 37 | reserved |
 * | 48 | 256 × 4 | per slot, u32 BE: top 8 bits flags (bit 0 VALID, bit 1 DELETED), low 24 bits "deleted through" stamp |
 * | 1072 | 128 | RSA signature over bytes 0..1071 (absent in the unsigned form) |
 *
 * The spec does not state the byte order of the slot words; every other CDM integer is big-endian, so these
 * are too. Reserved bytes are kept as they are, so re-encoding is byte-exact and signatures stay valid.
 *
 * @since 0.1.0
 */
import * as Result from "effect/Result"
import * as CdmSlotstamp from "./CdmSlotstamp.ts"
import { type Decoded, fail } from "./DecodeError.ts"
import { ByteWriter, u32be } from "./internal/bytes.ts"
import { isU32, isU8 } from "./internal/t2.ts"

/**
 * Name of the map file inside the S01 MFZ.
 *
 * @since 0.1.0
 * @category constants
 */
export const fileName = "cdmss-deleted.map"

/**
 * The slot that carries the deletions map.
 *
 * @since 0.1.0
 * @category constants
 */
export const slot = 0x01

/**
 * Length of the unsigned form.
 *
 * @since 0.1.0
 * @category constants
 */
export const unsignedLength = 1072

/**
 * Length of the signed form.
 *
 * @since 0.1.0
 * @category constants
 */
export const signedLength = 1200

/**
 * The bytes the signature covers, `[start, end)`.
 *
 * @since 0.1.0
 * @category constants
 */
export const signedRange = { start: 0, end: unsignedLength } as const

/**
 * Length of the reserved area.
 *
 * @since 0.1.0
 * @category constants
 */
export const reservedLength = 37

/**
 * Entry flag: the entry is meaningful.
 *
 * @since 0.1.0
 * @category constants
 */
export const VALID = 0x01

/**
 * Entry flag: stamps up to the entry's stamp are deleted.
 *
 * @since 0.1.0
 * @category constants
 */
export const DELETED = 0x02

/**
 * One slot's entry: the flag byte and the "deleted through" stamp.
 *
 * @since 0.1.0
 * @category models
 */
export interface Entry {
  readonly flags: number
  readonly stamp: number
}

/**
 * A decoded deletions map. `entries` has 256 entries, indexed by slot.
 *
 * @since 0.1.0
 * @category models
 */
export interface CdmDeletions {
  /** The minor version character of the magic (`"0"` for DMP10). */
  readonly minor: string
  readonly regnum: number
  readonly slotstamp: number
  /** The 37 reserved bytes (a view). */
  readonly reserved: Uint8Array
  readonly entries: ReadonlyArray<Entry>
  /** The signature (128 bytes), or `undefined` for the unsigned form. */
  readonly signature: Uint8Array | undefined
}

/**
 * True when the map deletes `slotstamp`: its slot's entry is VALID and DELETED and reaches its stamp.
 *
 * @since 0.1.0
 * @category predicates
 */
export const isDeleted = (map: CdmDeletions, slotstamp: number): boolean => {
  const entry = map.entries[CdmSlotstamp.slot(slotstamp)]
  return entry !== undefined && (entry.flags & (VALID | DELETED)) === (VALID | DELETED) &&
    entry.stamp >= CdmSlotstamp.stamp(slotstamp)
}

/**
 * The signed part of an encoded map (a view).
 *
 * @since 0.1.0
 * @category getters
 */
export const signedPart = (mapBytes: Uint8Array): Uint8Array => mapBytes.subarray(signedRange.start, signedRange.end)

const MAGIC = [0x44, 0x4d, 0x50, 0x31] // "DMP1"
const NEWLINE = 0x0a
const RESERVED = 11
const ENTRIES = 48
const SLOTS = 256

const checkSigning = (slotstamp: number): string | undefined =>
  CdmSlotstamp.slot(slotstamp) === slot ? undefined : `signing slotstamp's slot is not 0x01`

/**
 * Decodes a map of exactly 1072 (unsigned) or 1200 (signed) bytes. Refuses a wrong magic, a signing
 * slotstamp outside slot 0x01, and a VALID entry whose stamp is newer than the signing stamp.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decode = (bytes: Uint8Array): Decoded<CdmDeletions> => {
  const len = bytes.length
  if (len !== unsignedLength && len !== signedLength) {
    return fail("t2", "cdm_deletions", Math.min(len, signedLength), `map is ${len} bytes, expected 1072 or 1200`)
  }
  for (let i = 0; i < 4; i++) {
    if (bytes[i] !== MAGIC[i]) return fail("t2", "cdm_deletions", i, "magic is not DMP1?\\n")
  }
  if (bytes[5] !== NEWLINE) return fail("t2", "cdm_deletions", 5, "magic is not DMP1?\\n")
  const slotstamp = u32be(bytes, 7)
  const signing = checkSigning(slotstamp)
  if (signing !== undefined) return fail("t2", "cdm_deletions", 7, signing)
  const signingStamp = CdmSlotstamp.stamp(slotstamp)
  const entries: Array<Entry> = []
  for (let s = 0; s < SLOTS; s++) {
    const word = u32be(bytes, ENTRIES + 4 * s)
    const entry = { flags: word >>> 24, stamp: word & 0xff_ffff }
    if ((entry.flags & VALID) !== 0 && entry.stamp > signingStamp) {
      return fail("t2", "cdm_deletions", ENTRIES + 4 * s, `slot ${s} deletes through a stamp newer than the map`)
    }
    entries.push(entry)
  }
  return Result.succeed({
    minor: String.fromCharCode(bytes[4]!),
    regnum: bytes[6]!,
    slotstamp,
    reserved: bytes.subarray(RESERVED, ENTRIES),
    entries,
    signature: len === signedLength ? bytes.subarray(unsignedLength) : undefined
  })
}

/**
 * Encodes a map, signed form when `signature` is present; refuses anything `decode` would refuse.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encode = (map: CdmDeletions): Decoded<Uint8Array> => {
  const minor = map.minor.charCodeAt(0)
  if (map.minor.length !== 1 || minor > 0xff) {
    return fail("t2", "cdm_deletions", 4, "minor version is not one byte-sized character")
  }
  if (!isU8(map.regnum)) return fail("t2", "cdm_deletions", 6, `regnum ${map.regnum} is not a byte`)
  if (!isU32(map.slotstamp)) return fail("t2", "cdm_deletions", 7, `slotstamp ${map.slotstamp} is not 32-bit`)
  const signing = checkSigning(map.slotstamp)
  if (signing !== undefined) return fail("t2", "cdm_deletions", 7, signing)
  if (map.reserved.length !== reservedLength) {
    return fail("t2", "cdm_deletions", RESERVED, "reserved area is not 37 bytes")
  }
  if (map.entries.length !== SLOTS) {
    return fail("t2", "cdm_deletions", ENTRIES, `${map.entries.length} entries, 256 needed`)
  }
  const signingStamp = CdmSlotstamp.stamp(map.slotstamp)
  for (let s = 0; s < SLOTS; s++) {
    const { flags, stamp } = map.entries[s]!
    if (!isU8(flags) || !Number.isInteger(stamp) || stamp < 0 || stamp > CdmSlotstamp.maxStamp) {
      return fail("t2", "cdm_deletions", ENTRIES + 4 * s, `slot ${s} entry does not fit 8 flag bits and a 24-bit stamp`)
    }
    if ((flags & VALID) !== 0 && stamp > signingStamp) {
      return fail("t2", "cdm_deletions", ENTRIES + 4 * s, `slot ${s} deletes through a stamp newer than the map`)
    }
  }
  if (map.signature !== undefined && map.signature.length !== signedLength - unsignedLength) {
    return fail("t2", "cdm_deletions", unsignedLength, "signature is not 128 bytes")
  }
  const w = new ByteWriter(map.signature === undefined ? unsignedLength : signedLength)
    .raw(new Uint8Array(MAGIC)).u8(minor).u8(NEWLINE).u8(map.regnum).u32be(map.slotstamp).raw(map.reserved)
  for (const { flags, stamp } of map.entries) w.u32be(((flags << 24) | stamp) >>> 0)
  if (map.signature !== undefined) w.raw(map.signature)
  return Result.succeed(w.bytes)
}
