/**
 * CDM-managed files, `cdmss-SS-TTTTTT.mfz` (spec t2 §4.2, §3.10): a 1024-byte CDM10 map header followed by
 * a plain MFZ (the "mapped file"). The header names the slot, stamp, label and signer (regnum), holds the
 * SHA-512 of the mapped file and up to 100 prefix checksums (first 8 bytes of the SHA-512 of the mapped file
 * up to the end of each block), and is signed over its first 896 bytes.
 *
 * Signatures: minor version `'0'` (`CDM10\n`) is RSA-1024 PKCS#1 v1.5 SHA-512, as mfzmake signs. Minor `'1'`
 * (`CDM11\n`) is our addition: an Ed25519 signature in the first 64 bytes of the 128-byte field, the other 64
 * NUL. The deletion map (`DMP10`/`DMP11`) follows the same rule. A reader that trusts a regnum with an RSA key
 * refuses a `'1'` header and vice versa, so one minor can never pass as the other.
 *
 * @since 0.1.0
 */
import * as CdmDeletions from "@tessera/codec/CdmDeletions"
import * as CdmMapHeader from "@tessera/codec/CdmMapHeader"
import * as CdmSlotstamp from "@tessera/codec/CdmSlotstamp"
import * as Result from "effect/Result"
import * as Crypto from "node:crypto"
import * as CdmError from "./CdmError.ts"
import * as CdmKeys from "./CdmKeys.ts"
import * as Mfz from "./Mfz.ts"

/**
 * A built release.
 *
 * @since 0.1.0
 * @category models
 */
export interface Release {
  readonly slotstamp: number
  readonly fileName: string
  readonly bytes: Uint8Array
}

const invalid = (subject: string, detail: string) =>
  Result.fail(CdmError.make(subject, new CdmError.InvalidRelease({ detail })))
const bad = (subject: string, detail: string) =>
  Result.fail(CdmError.make(subject, new CdmError.BadSignature({ detail })))
const untrusted = (subject: string, detail: string) =>
  Result.fail(CdmError.make(subject, new CdmError.Untrusted({ detail })))

/**
 * The SHA-512 of the whole mapped file and its prefix checksums, as the header lays them out.
 *
 * @since 0.1.0
 * @category checksums
 */
export const checksums = (
  mapped: Uint8Array,
  bitsInBlock: number
): { readonly sha512: Uint8Array; readonly entries: ReadonlyArray<Uint8Array> } => {
  const block = 2 ** bitsInBlock
  const count = CdmMapHeader.entryCount(mapped.length, bitsInBlock)
  const hash = Crypto.createHash("sha512")
  const entries: Array<Uint8Array> = []
  let done = 0
  for (let i = 0; i < count; i++) {
    const end = Math.min((i + 1) * block, mapped.length)
    hash.update(mapped.subarray(done, end))
    done = end
    entries.push(new Uint8Array(hash.copy().digest()).subarray(0, CdmMapHeader.entryLength))
  }
  hash.update(mapped.subarray(done))
  return { sha512: new Uint8Array(hash.digest()), entries }
}

/**
 * Builds a signed managed file from payload files: the mapped MFZ is signed by `key` too. `time` (unix
 * seconds) sets the stamp (5-minute units) and the MFZ's inner timestamp.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: {
  readonly key: CdmKeys.Key
  readonly regnum: number
  readonly slot: number
  readonly label: string
  readonly time: number
  readonly files: ReadonlyArray<Mfz.Entry>
}): Result.Result<Release, CdmError.CdmError> => {
  const { key, regnum, slot, label } = options
  if (!Number.isInteger(slot) || slot < 1 || slot > 255) return invalid(`slot ${slot}`, "slot must be 1..255")
  if (!Number.isInteger(regnum) || regnum < 0 || regnum > 255) {
    return invalid(`regnum ${regnum}`, "regnum must be 0..255")
  }
  const slotstamp = CdmSlotstamp.make(slot, CdmSlotstamp.stampOf(options.time))
  const fileName = CdmSlotstamp.fileName(slotstamp)
  const mapped = Mfz.make({ key, name: fileName, time: options.time, files: options.files })
  if (Result.isFailure(mapped)) return Result.fail(mapped.failure)
  const bytes = mapped.success
  const bitsInBlock = CdmMapHeader.bitsInBlockFor(bytes.length)
  const sums = checksums(bytes, bitsInBlock)
  const unsigned = CdmMapHeader.encode({
    minor: CdmKeys.minorFor(key.type),
    bitsInBlock,
    regnum,
    slotstamp,
    mappedLength: bytes.length,
    label,
    sha512: sums.sha512,
    checksums: sums.entries,
    signature: new Uint8Array(CdmKeys.signatureField)
  })
  if (Result.isFailure(unsigned)) return invalid(fileName, unsigned.failure.message)
  const header = unsigned.success
  const field = CdmKeys.signField(key, CdmMapHeader.signedPart(header))
  if (field === undefined) return invalid(fileName, "signing needs a private key")
  header.set(field, CdmMapHeader.signedRange.end)
  const out = new Uint8Array(CdmMapHeader.size + bytes.length)
  out.set(header)
  out.set(bytes, CdmMapHeader.size)
  return Result.succeed({ slotstamp, fileName, bytes: out })
}

/**
 * Decodes a header and checks its signature with the keyring's key for its regnum (the key type must match
 * the minor version).
 *
 * @since 0.1.0
 * @category verification
 */
export const verifyHeader = (
  bytes: Uint8Array,
  keyring: CdmKeys.Keyring,
  subject = "header"
): Result.Result<CdmMapHeader.CdmMapHeader, CdmError.CdmError> => {
  const decoded = CdmMapHeader.decode(bytes)
  if (Result.isFailure(decoded)) return invalid(subject, decoded.failure.message)
  const header = decoded.success
  const key = keyring.get(header.regnum)
  if (key === undefined) return untrusted(subject, `no trusted key for regnum ${header.regnum}`)
  const wanted = CdmKeys.typeForMinor(header.minor)
  if (wanted === undefined) return invalid(subject, `unknown header minor version '${header.minor}'`)
  if (wanted !== key.type) {
    return bad(subject, `minor '${header.minor}' needs an ${wanted} key, regnum ${header.regnum} has ${key.type}`)
  }
  if (!CdmKeys.verifyField(key, CdmMapHeader.signedPart(bytes), header.signature)) {
    return bad(subject, "map header signature does not verify")
  }
  return Result.succeed(header)
}

/**
 * A verified managed file.
 *
 * @since 0.1.0
 * @category models
 */
export interface Verified {
  readonly header: CdmMapHeader.CdmMapHeader
  readonly mfz: Mfz.Mfz
}

/**
 * Verifies a whole managed file: header signature, every prefix checksum, the final SHA-512, then the inner
 * MFZ's signature and that its signer is trusted.
 *
 * @since 0.1.0
 * @category verification
 */
export const verify = (
  bytes: Uint8Array,
  keyring: CdmKeys.Keyring,
  subject = "release"
): Result.Result<Verified, CdmError.CdmError> => {
  const header = verifyHeader(bytes, keyring, subject)
  if (Result.isFailure(header)) return Result.fail(header.failure)
  const h = header.success
  if (bytes.length !== CdmMapHeader.totalLength(h)) {
    return invalid(subject, `file is ${bytes.length} bytes, the header says ${CdmMapHeader.totalLength(h)}`)
  }
  const mapped = bytes.subarray(CdmMapHeader.size)
  const sums = checksums(mapped, h.bitsInBlock)
  const badEntry = sums.entries.findIndex((e, i) => !Buffer.from(e).equals(h.checksums[i]!))
  if (badEntry >= 0) return bad(subject, `block ${badEntry} prefix checksum does not match`)
  if (!Buffer.from(sums.sha512).equals(h.sha512)) return bad(subject, "SHA-512 of the mapped file does not match")
  const mfz = Mfz.verify(mapped, keyring, subject)
  if (Result.isFailure(mfz)) return Result.fail(mfz.failure)
  return Result.succeed({ header: h, mfz: mfz.success })
}

/**
 * Builds a signed deletion map (`cdmss-deleted.map`) deleting each listed slot through its stamp. The
 * signing slotstamp is slot 1 at `time`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeDeletions = (options: {
  readonly key: CdmKeys.Key
  readonly regnum: number
  readonly time: number
  readonly deletions: ReadonlyArray<{ readonly slot: number; readonly through: number }>
}): Result.Result<Uint8Array, CdmError.CdmError> => {
  const entries = Array.from({ length: 256 }, () => ({ flags: 0, stamp: 0 }))
  for (const d of options.deletions) {
    entries[d.slot] = { flags: CdmDeletions.VALID | CdmDeletions.DELETED, stamp: d.through }
  }
  const encoded = CdmDeletions.encode({
    minor: CdmKeys.minorFor(options.key.type),
    regnum: options.regnum,
    slotstamp: CdmSlotstamp.make(CdmDeletions.slot, CdmSlotstamp.stampOf(options.time)),
    reserved: new Uint8Array(CdmDeletions.reservedLength),
    entries,
    signature: new Uint8Array(CdmKeys.signatureField)
  })
  if (Result.isFailure(encoded)) return invalid(CdmDeletions.fileName, encoded.failure.message)
  const map = encoded.success
  const field = CdmKeys.signField(options.key, CdmDeletions.signedPart(map))
  if (field === undefined) return invalid(CdmDeletions.fileName, "signing needs a private key")
  map.set(field, CdmDeletions.unsignedLength)
  return Result.succeed(map)
}

/**
 * Reads and verifies the deletion map inside a complete slot-1 release's mapped MFZ.
 *
 * @since 0.1.0
 * @category verification
 */
export const readDeletions = (
  release: Uint8Array,
  keyring: CdmKeys.Keyring,
  subject = "deletions"
): Result.Result<CdmDeletions.CdmDeletions, CdmError.CdmError> => {
  const mfz = Mfz.verify(release, keyring, subject)
  if (Result.isFailure(mfz)) return Result.fail(mfz.failure)
  const file = mfz.success.files.find((f) => f.path.split("/").pop() === CdmDeletions.fileName)
  if (file === undefined) return invalid(subject, `no ${CdmDeletions.fileName} in the release`)
  const map = CdmDeletions.decode(file.bytes)
  if (Result.isFailure(map)) return invalid(subject, map.failure.message)
  const m = map.success
  const key = keyring.get(m.regnum)
  if (key === undefined) return untrusted(subject, `no trusted key for regnum ${m.regnum}`)
  if (m.signature === undefined || CdmKeys.typeForMinor(m.minor) !== key.type) {
    return bad(subject, "deletion map is unsigned or signed with the wrong kind of key")
  }
  if (!CdmKeys.verifyField(key, CdmDeletions.signedPart(file.bytes), m.signature)) {
    return bad(subject, "deletion map signature does not verify")
  }
  return Result.succeed(m)
}
