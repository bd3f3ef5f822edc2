/**
 * The plain MFZ container (spec t2 §4.1, §4.3): the literal line `MFZ(1.0)\n`, then an outer ZIP holding
 * `MFZSIG.DAT` (Base64 signature of the inner ZIP's bytes) and `MFZ.ZIP` (the inner ZIP). The inner ZIP holds
 * `MFZPUBKEY.DAT` first (the signer's public key file; its ZIP time is the release's "inner timestamp"),
 * `MFZNAME.DAT` (the file's own name), then the payload files by absolute path without the leading `/`,
 * mode 0666. ZIP times are even seconds (DOS time, read and written in local time as ZIP tools do).
 *
 * Parsing caps the total unpacked size (a hostile archive cannot make us allocate more) and never throws.
 *
 * @since 0.1.0
 */
import * as Result from "effect/Result"
import * as Fflate from "fflate"
import * as CdmError from "./CdmError.ts"
import * as CdmKeys from "./CdmKeys.ts"

/**
 * The first line of every MFZ.
 *
 * @since 0.1.0
 * @category constants
 */
export const magic = "MFZ(1.0)\n"

/**
 * Most bytes `parse` unpacks from one file (both ZIP levels together); default 512 MiB.
 *
 * @since 0.1.0
 * @category constants
 */
export const maxUnpacked = 512 * 1024 * 1024

/**
 * One payload file.
 *
 * @since 0.1.0
 * @category models
 */
export interface Entry {
  /** Path inside the archive (no leading `/`). */
  readonly path: string
  readonly bytes: Uint8Array
  /** Modification time, unix seconds. */
  readonly mtime: number
}

/**
 * A parsed MFZ.
 *
 * @since 0.1.0
 * @category models
 */
export interface Mfz {
  readonly name: string
  readonly handle: string
  /** MFZPUBKEY.DAT's text. */
  readonly keyText: string
  readonly key: CdmKeys.Key
  /** MFZPUBKEY.DAT's ZIP time, unix seconds. */
  readonly innerTimestamp: number
  readonly innerZip: Uint8Array
  readonly signature: Uint8Array
  /** True when the signature verifies with the embedded key. */
  readonly signatureOk: boolean
  readonly files: ReadonlyArray<Entry>
}

const PUBKEY = "MFZPUBKEY.DAT"
const NAME = "MFZNAME.DAT"
const SIG = "MFZSIG.DAT"
const INNER = "MFZ.ZIP"
const MODE = (0o100666 << 16) >>> 0

const encoder = new TextEncoder()
const decoder = new TextDecoder("utf-8", { fatal: false })

const evenSeconds = (unixSeconds: number): number => Math.floor(unixSeconds / 2) * 2

const opts = (mtime: number): Fflate.ZipOptions => ({ mtime: new Date(evenSeconds(mtime) * 1000), os: 3, attrs: MODE })

/**
 * Builds a signed MFZ. `time` (unix seconds) becomes the inner timestamp.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: {
  readonly key: CdmKeys.Key
  readonly name: string
  readonly time: number
  readonly files: ReadonlyArray<Entry>
}): Result.Result<Uint8Array, CdmError.CdmError> => {
  const invalid = (detail: string) => Result.fail(CdmError.make(options.name, new CdmError.InvalidRelease({ detail })))
  const inner: Fflate.Zippable = {}
  inner[PUBKEY] = [encoder.encode(options.key.publicText), opts(options.time)]
  inner[NAME] = [encoder.encode(options.name), opts(options.time)]
  for (const file of options.files) {
    const path = file.path.replace(/^\/+/, "")
    if (path === "" || path === PUBKEY || path === NAME || Object.hasOwn(inner, path)) {
      return invalid(`payload path "${file.path}" is empty, reserved or repeated`)
    }
    inner[path] = [file.bytes, opts(file.mtime)]
  }
  let innerZip: Uint8Array
  let outer: Uint8Array
  try {
    innerZip = Fflate.zipSync(inner, { level: 6 })
    const signature = CdmKeys.sign(options.key, innerZip)
    if (signature === undefined) return invalid("signing needs a private key")
    const outerFiles: Fflate.Zippable = {}
    outerFiles[SIG] = [encoder.encode(Buffer.from(signature).toString("base64")), { ...opts(options.time), level: 0 }]
    outerFiles[INNER] = [innerZip, { ...opts(options.time), level: 0 }]
    outer = Fflate.zipSync(outerFiles)
  } catch (cause) {
    return invalid(`zip failed: ${cause instanceof Error ? cause.message : String(cause)}`)
  }
  const out = new Uint8Array(magic.length + outer.length)
  out.set(encoder.encode(magic))
  out.set(outer, magic.length)
  return Result.succeed(out)
}

// DOS date/time of a ZIP local file header, read as local time (ZIP tools write local time).
const dosTime = (zip: Uint8Array, name: string): number | undefined => {
  if (zip.length < 30 || zip[0] !== 0x50 || zip[1] !== 0x4b || zip[2] !== 0x03 || zip[3] !== 0x04) return undefined
  const nameLength = zip[26]! | (zip[27]! << 8)
  if (30 + nameLength > zip.length || decoder.decode(zip.subarray(30, 30 + nameLength)) !== name) return undefined
  const time = zip[10]! | (zip[11]! << 8)
  const date = zip[12]! | (zip[13]! << 8)
  const d = new Date(
    1980 + (date >> 9),
    ((date >> 5) & 15) - 1,
    date & 31,
    time >> 11,
    (time >> 5) & 63,
    (time & 31) * 2
  )
  return Math.floor(d.getTime() / 1000)
}

const unzip = (bytes: Uint8Array, budget: { left: number }): Record<string, Uint8Array> | string => {
  try {
    let over = false
    const files = Fflate.unzipSync(bytes, {
      filter: (file) => {
        budget.left -= file.originalSize
        if (budget.left < 0) over = true
        return !over
      }
    })
    return over ? `unpacks to more than ${maxUnpacked} bytes` : files
  } catch (cause) {
    return `not a ZIP archive (${cause instanceof Error ? cause.message : String(cause)})`
  }
}

/**
 * Parses an MFZ (a leading `CDM1?\n` map header, if present, is skipped) and checks its signature against
 * the embedded key. Trust in the signer is the caller's business (`CdmKeys.trustsHandle`).
 *
 * @since 0.1.0
 * @category decoding
 */
export const parse = (input: Uint8Array, subject = "mfz"): Result.Result<Mfz, CdmError.CdmError> => {
  const invalid = (detail: string) => Result.fail(CdmError.make(subject, new CdmError.InvalidRelease({ detail })))
  let bytes = input
  if (bytes.length >= 1024 && decoder.decode(bytes.subarray(0, 4)) === "CDM1" && bytes[5] === 0x0a) {
    bytes = bytes.subarray(1024)
  }
  if (decoder.decode(bytes.subarray(0, magic.length)) !== magic) return invalid("does not start with MFZ(1.0)")
  const budget = { left: maxUnpacked }
  const outer = unzip(bytes.subarray(magic.length), budget)
  if (typeof outer === "string") return invalid(`outer ${outer}`)
  const innerZip = outer[INNER]
  const sigText = outer[SIG]
  if (innerZip === undefined || sigText === undefined) return invalid(`outer ZIP lacks ${INNER} or ${SIG}`)
  const inner = unzip(innerZip, budget)
  if (typeof inner === "string") return invalid(`inner ${inner}`)
  const pub = inner[PUBKEY]
  if (pub === undefined) return invalid(`inner ZIP lacks ${PUBKEY}`)
  const keyText = decoder.decode(pub)
  const key = CdmKeys.parse(keyText, `${subject} ${PUBKEY}`)
  if (Result.isFailure(key)) return Result.fail(key.failure)
  const innerTimestamp = dosTime(innerZip, PUBKEY)
  if (innerTimestamp === undefined) return invalid(`${PUBKEY} is not the inner ZIP's first entry`)
  const signature = new Uint8Array(Buffer.from(decoder.decode(sigText).trim(), "base64"))
  const files: Array<Entry> = []
  for (const [path, data] of Object.entries(inner)) {
    if (path !== PUBKEY && path !== NAME && !path.endsWith("/")) files.push({ path, bytes: data, mtime: 0 })
  }
  return Result.succeed({
    name: inner[NAME] === undefined ? "" : decoder.decode(inner[NAME]),
    handle: key.success.handle,
    keyText,
    key: key.success,
    innerTimestamp,
    innerZip,
    signature,
    signatureOk: CdmKeys.verify(key.success, innerZip, signature),
    files
  })
}

/**
 * Parses and verifies: the signature must verify and the keyring must trust the signer's handle with the
 * embedded key (spec t2 §4.3 step 4).
 *
 * @since 0.1.0
 * @category decoding
 */
export const verify = (
  input: Uint8Array,
  keyring: CdmKeys.Keyring,
  subject = "mfz"
): Result.Result<Mfz, CdmError.CdmError> => {
  const parsed = parse(input, subject)
  if (Result.isFailure(parsed)) return parsed
  const mfz = parsed.success
  if (!mfz.signatureOk) {
    return Result.fail(CdmError.make(subject, new CdmError.BadSignature({ detail: "MFZ signature does not verify" })))
  }
  if (!CdmKeys.trustsHandle(keyring, mfz.handle, mfz.keyText)) {
    return Result.fail(
      CdmError.make(subject, new CdmError.Untrusted({ detail: `handle "${mfz.handle}" with this key is not trusted` }))
    )
  }
  return Result.succeed(mfz)
}
