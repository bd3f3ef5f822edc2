/**
 * Signing keys as `mfzmake` makes them (spec t2 §4.3–4.4), plus Ed25519 as a modern option.
 *
 * A key file is `[MFM-Handle:<handle>]`, a newline, then a PEM key: RSA-1024 in PKCS#1 (`RSA PUBLIC KEY` /
 * `RSA PRIVATE KEY`, mfzmake's format) or Ed25519 in SPKI/PKCS#8 (`PUBLIC KEY` / `PRIVATE KEY`). File names
 * escape every character outside `[A-Za-z0-9]` as `%xx` and end in `.pub` / `.priv`. RSA signatures are
 * RSASSA-PKCS1-v1_5 over SHA-512 (128 bytes); Ed25519 signatures are 64 bytes.
 *
 * A `Keyring` maps registration numbers (the regnum in a CDM10 header) to trusted public keys.
 *
 * @since 0.1.0
 */
import * as Result from "effect/Result"
import * as Crypto from "node:crypto"
import * as CdmError from "./CdmError.ts"

/**
 * Key algorithm.
 *
 * @since 0.1.0
 * @category models
 */
export type KeyType = "rsa" | "ed25519"

/**
 * A parsed key: its handle, algorithm, the key objects and the exact key-file text of the public part.
 *
 * @since 0.1.0
 * @category models
 */
export interface Key {
  readonly handle: string
  readonly type: KeyType
  readonly publicKey: Crypto.KeyObject
  /** `[MFM-Handle:…]\n` + public PEM: what MFZPUBKEY.DAT holds and `.pub` files contain. */
  readonly publicText: string
  readonly privateKey: Crypto.KeyObject | undefined
}

/**
 * Trusted public keys by registration number.
 *
 * @since 0.1.0
 * @category models
 */
export type Keyring = ReadonlyMap<number, Key>

/**
 * Bytes in an RSA-1024 signature (and in the signature field of headers and deletion maps).
 *
 * @since 0.1.0
 * @category constants
 */
export const signatureField = 128

const HANDLE = /^:?[A-Za-z][A-Za-z0-9 .,-]{0,62}$/

/**
 * True for a valid handle: a letter then up to 62 letters, digits, space, `-`, `.`, `,` (a leading `:` is
 * tolerated).
 *
 * @since 0.1.0
 * @category guards
 */
export const isValidHandle = (handle: string): boolean => HANDLE.test(handle)

const bare = (handle: string): string => (handle.startsWith(":") ? handle.slice(1) : handle)

/**
 * A handle as a file name stem: every character outside `[A-Za-z0-9]` as `%xx` (lowercase hex).
 *
 * @since 0.1.0
 * @category getters
 */
export const escapeHandle = (handle: string): string =>
  Array.from(bare(handle), (c) => (/[A-Za-z0-9]/.test(c) ? c : `%${c.charCodeAt(0).toString(16).padStart(2, "0")}`))
    .join("")

/**
 * The display fingerprint of a key file: SHA-512 hex of its text as `xxxx-xxx-xxxx`.
 *
 * @since 0.1.0
 * @category getters
 */
export const fingerprint = (keyText: string): string => {
  const hex = Crypto.createHash("sha512").update(keyText).digest("hex")
  return `${hex.slice(0, 4)}-${hex.slice(4, 7)}-${hex.slice(7, 11)}`
}

const keyText = (handle: string, pem: string): string =>
  `[MFM-Handle:${bare(handle)}]\n${pem.endsWith("\n") ? pem : `${pem}\n`}`

const typeOf = (key: Crypto.KeyObject): KeyType | undefined =>
  key.asymmetricKeyType === "rsa" ? "rsa" : key.asymmetricKeyType === "ed25519" ? "ed25519" : undefined

const publicPem = (key: Crypto.KeyObject, type: KeyType): string =>
  key.export(type === "rsa" ? { type: "pkcs1", format: "pem" } : { type: "spki", format: "pem" }).toString()

/**
 * A new key pair: RSA-1024 (mfzmake's) by default, or Ed25519.
 *
 * @since 0.1.0
 * @category constructors
 */
export const generate = (handle: string, type: KeyType = "rsa"): Result.Result<Key, CdmError.CdmError> =>
  withPair(
    handle,
    type,
    () =>
      type === "rsa"
        ? Crypto.generateKeyPairSync("rsa", { modulusLength: 1024, publicExponent: 65537 }).privateKey
        : Crypto.generateKeyPairSync("ed25519").privateKey
  )

// PKCS#8 DER of an Ed25519 private key, up to its 32-byte seed (RFC 8410).
const ED25519_PKCS8_PREFIX = Uint8Array.from([
  0x30,
  0x2e,
  0x02,
  0x01,
  0x00,
  0x30,
  0x05,
  0x06,
  0x03,
  0x2b,
  0x65,
  0x70,
  0x04,
  0x22,
  0x04,
  0x20
])

/**
 * The Ed25519 key pair of a 32-byte seed: the same seed always gives the same key, and Ed25519 signatures are
 * deterministic, so what it signs is the same bytes every time (a seeded simulation replays exactly).
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromSeed = (handle: string, seed: Uint8Array): Result.Result<Key, CdmError.CdmError> =>
  seed.length === 32
    ? withPair(handle, "ed25519", () =>
      Crypto.createPrivateKey({
        key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]),
        format: "der",
        type: "pkcs8"
      }))
    : Result.fail(
      CdmError.make(handle, new CdmError.InvalidKey({ detail: `an Ed25519 seed is 32 bytes, got ${seed.length}` }))
    )

const withPair = (
  handle: string,
  type: KeyType,
  privateKey: () => Crypto.KeyObject
): Result.Result<Key, CdmError.CdmError> => {
  if (!isValidHandle(handle)) {
    return Result.fail(
      CdmError.make(
        handle,
        new CdmError.InvalidKey({ detail: "handle is not a letter then up to 62 of letters, digits, space, - . ," })
      )
    )
  }
  const secret = privateKey()
  const publicKey = Crypto.createPublicKey(secret)
  return Result.succeed({
    handle: bare(handle),
    type,
    publicKey,
    privateKey: secret,
    publicText: keyText(handle, publicPem(publicKey, type))
  })
}

/**
 * The private key file text (`[MFM-Handle:…]` + PKCS#1 or PKCS#8 PEM).
 *
 * @since 0.1.0
 * @category encoding
 */
export const privateText = (key: Key): string | undefined =>
  key.privateKey === undefined
    ? undefined
    : keyText(
      key.handle,
      key.privateKey.export(key.type === "rsa" ? { type: "pkcs1", format: "pem" } : { type: "pkcs8", format: "pem" })
        .toString()
    )

/**
 * Parses a key file (public or private); a private file yields both halves.
 *
 * @since 0.1.0
 * @category decoding
 */
export const parse = (text: string, subject = "key"): Result.Result<Key, CdmError.CdmError> => {
  const invalid = (detail: string) => Result.fail(CdmError.make(subject, new CdmError.InvalidKey({ detail })))
  const m = /^\[MFM-Handle:([^\]\n]*)\]\n([\s\S]+)$/.exec(text)
  if (m === null) return invalid("not [MFM-Handle:<handle>] followed by a PEM key")
  const handle = m[1]!
  if (!isValidHandle(handle)) return invalid(`"${handle}" is not a valid handle`)
  const pem = m[2]!
  const isPrivate = /-----BEGIN (RSA )?PRIVATE KEY-----/.test(pem)
  let publicKey: Crypto.KeyObject
  let privateKey: Crypto.KeyObject | undefined
  try {
    if (isPrivate) {
      privateKey = Crypto.createPrivateKey(pem)
      publicKey = Crypto.createPublicKey(privateKey)
    } else {
      publicKey = Crypto.createPublicKey(pem)
    }
  } catch (cause) {
    return invalid(`PEM does not parse (${cause instanceof Error ? cause.message : String(cause)})`)
  }
  const type = typeOf(publicKey)
  if (type === undefined) return invalid(`${publicKey.asymmetricKeyType} keys are not supported (RSA or Ed25519)`)
  if (type === "rsa" && publicKey.asymmetricKeyDetails?.modulusLength !== 1024) {
    return invalid("RSA keys must be 1024-bit (their signatures fill the 128-byte field)")
  }
  return Result.succeed({
    handle: bare(handle),
    type,
    publicKey,
    privateKey,
    publicText: isPrivate ? keyText(handle, publicPem(publicKey, type)) : keyText(handle, pem)
  })
}

/**
 * The public half only.
 *
 * @since 0.1.0
 * @category combinators
 */
export const toPublic = (key: Key): Key => ({ ...key, privateKey: undefined })

/**
 * Signs `data`: RSA PKCS#1 v1.5 SHA-512 (128 bytes) or Ed25519 (64 bytes). `undefined` without a private key.
 *
 * @since 0.1.0
 * @category signing
 */
export const sign = (key: Key, data: Uint8Array): Uint8Array | undefined => {
  if (key.privateKey === undefined) return undefined
  return key.type === "rsa"
    ? new Uint8Array(Crypto.sign("sha512", data, { key: key.privateKey, padding: Crypto.constants.RSA_PKCS1_PADDING }))
    : new Uint8Array(Crypto.sign(null, data, key.privateKey))
}

/**
 * Verifies a signature made by `sign`; never throws.
 *
 * @since 0.1.0
 * @category signing
 */
export const verify = (key: Key, data: Uint8Array, signature: Uint8Array): boolean => {
  try {
    return key.type === "rsa"
      ? Crypto.verify("sha512", data, { key: key.publicKey, padding: Crypto.constants.RSA_PKCS1_PADDING }, signature)
      : signature.length === 64 && Crypto.verify(null, data, key.publicKey, signature)
  } catch {
    return false
  }
}

/**
 * The signature as the 128-byte header field: RSA fills it; Ed25519's 64 bytes are followed by 64 NULs.
 *
 * @since 0.1.0
 * @category signing
 */
export const signField = (key: Key, data: Uint8Array): Uint8Array | undefined => {
  const signature = sign(key, data)
  if (signature === undefined) return undefined
  const field = new Uint8Array(signatureField)
  field.set(signature.subarray(0, signatureField))
  return field
}

/**
 * Verifies a 128-byte signature field (`signField`'s layout; Ed25519 requires the 64 padding bytes be NUL).
 *
 * @since 0.1.0
 * @category signing
 */
export const verifyField = (key: Key, data: Uint8Array, field: Uint8Array): boolean => {
  if (field.length !== signatureField) return false
  if (key.type === "rsa") return verify(key, data, field)
  return field.subarray(64).every((b) => b === 0) && verify(key, data, field.subarray(0, 64))
}

/**
 * The header/map minor version character a key signs with: `'0'` RSA (as CDM10/DMP10), `'1'` Ed25519.
 *
 * @since 0.1.0
 * @category getters
 */
export const minorFor = (type: KeyType): string => (type === "rsa" ? "0" : "1")

/**
 * The key type a minor version character requires, or `undefined` for an unknown minor.
 *
 * @since 0.1.0
 * @category getters
 */
export const typeForMinor = (minor: string): KeyType | undefined =>
  minor === "0" ? "rsa" : minor === "1" ? "ed25519" : undefined

/**
 * A keyring from `(regnum, key)` pairs (public halves only).
 *
 * @since 0.1.0
 * @category constructors
 */
export const keyring = (entries: Iterable<readonly [number, Key]>): Keyring =>
  new Map(Array.from(entries, ([regnum, key]) => [regnum, toPublic(key)] as const))

const normalize = (s: string) => s.replace(/\n*$/, "\n")

/**
 * True when the keyring trusts `handle` with exactly this key text (final newline normalised).
 *
 * @since 0.1.0
 * @category predicates
 */
export const trustsHandle = (ring: Keyring, handle: string, text: string): boolean => {
  for (const key of ring.values()) {
    if (key.handle === bare(handle) && normalize(key.publicText) === normalize(text)) return true
  }
  return false
}
