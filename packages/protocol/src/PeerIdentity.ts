/**
 * Identities for TLS between peer hosts: an Ed25519 key pair and a self-signed certificate for it, and the
 * known-keys list that decides which remote keys are accepted (specs/circuits.md §2.5).
 *
 * Trust is in keys, not in names or a CA: TLS 1.3 proves that the other end holds the private key of the
 * certificate it shows, so checking its public key against a list is enough. The certificate is only the
 * carrier (subject "tessera", no expiry), which lets a host move between addresses without new certificates.
 *
 * Known keys (`KnownKeys`): a file of lines `<address> ed25519:<base64url of the 32-byte public key>`, `#`
 * starting a comment. In `tofu` mode (trust on first use) a key not in the file is accepted and appended with
 * the address it came from; in `locked` mode it is refused. `Keys` is a fixed in-memory list (locked).
 * `AnyKey` accepts every key: encryption without authentication, for tests and trusted networks.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Path from "node:path"

/**
 * A host's identity: its Ed25519 keys and the self-signed certificate that carries the public key.
 *
 * @since 0.1.0
 * @category models
 */
export interface Identity {
  readonly privateKeyPem: string
  readonly certificatePem: string
  /** The public key as written in known-keys files: `ed25519:<base64url>`. */
  readonly publicKey: string
}

/**
 * Which remote keys a host accepts.
 *
 * @since 0.1.0
 * @category models
 */
export type Trust =
  | {
    readonly _tag: "KnownKeys"
    readonly path: string
    readonly mode: "tofu" | "locked"
    /** Told once `tofu` has added a key to the file (inside the TLS handshake: it must not wait). */
    readonly onAdded?: ((address: string, key: string) => void) | undefined
  }
  | { readonly _tag: "Keys"; readonly keys: ReadonlyArray<string> }
  | { readonly _tag: "AnyKey" }

/**
 * Reading or writing identity or known-keys files failed, or a file is malformed.
 *
 * @since 0.1.0
 * @category errors
 */
export class IdentityError extends Schema.TaggedError<IdentityError>()("IdentityError", {
  path: Schema.String,
  detail: Schema.String
}) {
  override get message(): string {
    return `${this.path}: ${this.detail}`
  }
}

// Minimal DER: just what a self-signed Ed25519 certificate needs.
const der = (tag: number, ...parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  const body = Buffer.concat(parts)
  const n = body.length
  const length = n < 0x80
    ? [n]
    : n < 0x100
    ? [0x81, n]
    : n < 0x1_0000
    ? [0x82, n >> 8, n & 0xff]
    : [0x83, n >> 16, (n >> 8) & 0xff, n & 0xff]
  return Buffer.concat([Buffer.from([tag, ...length]), body])
}
const ED25519 = der(0x30, Buffer.from([0x06, 0x03, 0x2b, 0x65, 0x70]))
const RDN = der(0x31, der(0x30, Buffer.from([0x06, 0x03, 0x55, 0x04, 0x03]), der(0x0c, Buffer.from("tessera"))))
const NAME = der(0x30, RDN)

const pad = (n: number) => String(n).padStart(2, "0")

const utcTime = (date: Date): Uint8Array => {
  const text = `${pad(date.getUTCFullYear() % 100)}${pad(date.getUTCMonth() + 1)}${pad(date.getUTCDate())}${
    pad(date.getUTCHours())
  }${pad(date.getUTCMinutes())}${pad(date.getUTCSeconds())}Z`
  return der(0x17, Buffer.from(text))
}

const pem = (label: string, bytes: Uint8Array): string =>
  `-----BEGIN ${label}-----\n${
    Buffer.from(bytes).toString("base64").match(/.{1,64}/g)!.join("\n")
  }\n-----END ${label}-----\n`

/**
 * The known-keys spelling of a public key.
 *
 * @since 0.1.0
 * @category conversions
 */
export const keyText = (key: Crypto.KeyObject): string | undefined => {
  if (key.asymmetricKeyType !== "ed25519") return undefined
  const jwk = key.export({ format: "jwk" })
  return typeof jwk.x === "string" ? `ed25519:${jwk.x}` : undefined
}

const fromKeys = (privateKey: Crypto.KeyObject): Identity => {
  const publicKey = Crypto.createPublicKey(privateKey)
  const serial = Crypto.randomBytes(16)
  // DER wants a positive INTEGER in its shortest form: a first byte of 0x40-0x7f is neither negative nor
  // padding (a random 0x00 there made about one certificate in 256 unparseable).
  serial[0] = (serial[0]! & 0x3f) | 0x40
  const notBefore = new Date(Date.now() - 24 * 3600 * 1000)
  const tbs = der(
    0x30,
    der(0xa0, der(0x02, Buffer.from([2]))),
    der(0x02, serial),
    ED25519,
    NAME,
    // No expiry (RFC 5280 §4.1.2.5: 99991231235959Z as GeneralizedTime).
    der(0x30, utcTime(notBefore), der(0x18, Buffer.from("99991231235959Z"))),
    NAME,
    publicKey.export({ format: "der", type: "spki" })
  )
  const signature = Crypto.sign(null, tbs, privateKey)
  const certificate = der(0x30, tbs, ED25519, der(0x03, Buffer.from([0]), signature))
  return {
    privateKeyPem: privateKey.export({ format: "pem", type: "pkcs8" }).toString(),
    certificatePem: pem("CERTIFICATE", certificate),
    publicKey: keyText(publicKey)!
  }
}

/**
 * A new random identity.
 *
 * @since 0.1.0
 * @category constructors
 */
export const generate = (): Identity => fromKeys(Crypto.generateKeyPairSync("ed25519").privateKey)

/**
 * Reads `<dir>/<name>.key` (PKCS#8 PEM) and makes the identity of that key, creating the file (mode 0600) with
 * a new key when it does not exist. Processes that start at once with no key all end up with the same one.
 *
 * @since 0.1.0
 * @category constructors
 */
export const loadOrCreate = (dir: string, name: string): Effect.Effect<Identity, IdentityError> => {
  const path = Path.join(dir, `${name}.key`)
  const load = () => {
    const key = Crypto.createPrivateKey(Fs.readFileSync(path, "utf8"))
    if (key.asymmetricKeyType !== "ed25519") throw new Error(`not an Ed25519 key (${key.asymmetricKeyType})`)
    return fromKeys(key)
  }
  return Effect.try({
    try: () => {
      if (Fs.existsSync(path)) return load()
      const identity = generate()
      Fs.mkdirSync(dir, { recursive: true })
      // Written under a name of its own and linked into place: the file at `path` is always whole, and of two
      // processes making it at once, one links its key and the other takes that one.
      const temp = `${path}.${Crypto.randomBytes(8).toString("hex")}.tmp`
      try {
        Fs.writeFileSync(temp, identity.privateKeyPem, { mode: 0o600, flag: "wx" })
        try {
          Fs.linkSync(temp, path)
          return identity
        } catch (cause) {
          if ((cause as NodeJS.ErrnoException).code === "EEXIST") return load()
          throw cause
        }
      } finally {
        Fs.rmSync(temp, { force: true })
      }
    },
    catch: (cause) => new IdentityError({ path, detail: cause instanceof Error ? cause.message : String(cause) })
  })
}

/**
 * Parses a known-keys file's text: the keys it lists.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseKnownKeys = (text: string): ReadonlyArray<{ readonly address: string; readonly key: string }> =>
  text.split("\n").flatMap((line) => {
    const content = line.replace(/#.*/, "").trim()
    if (content === "") return []
    const [address = "", key = ""] = content.split(/\s+/)
    return /^ed25519:[A-Za-z0-9_-]{43}$/.test(key) ? [{ address, key }] : []
  })

/**
 * Decides whether a remote key is accepted (appending it to a `tofu` file when it is new). Synchronous: it runs
 * inside the TLS handshake callback, before any byte of the connection is read.
 *
 * @since 0.1.0
 * @category trust
 */
export const check = (trust: Trust, address: string, key: string | undefined): string | undefined => {
  if (key === undefined) return "the peer's certificate does not carry an Ed25519 key"
  switch (trust._tag) {
    case "AnyKey":
      return undefined
    case "Keys":
      return trust.keys.includes(key)
        ? undefined
        : `the peer's key ${key} (from ${address}) is not in the list of allowed keys`
    case "KnownKeys": {
      let text = ""
      try {
        text = Fs.existsSync(trust.path) ? Fs.readFileSync(trust.path, "utf8") : ""
      } catch (cause) {
        return `cannot read ${trust.path}: ${cause instanceof Error ? cause.message : String(cause)}`
      }
      if (parseKnownKeys(text).some((entry) => entry.key === key)) return undefined
      if (trust.mode === "locked") return `the peer's key ${key} (from ${address}) is not in ${trust.path}`
      try {
        Fs.appendFileSync(trust.path, `${text === "" || text.endsWith("\n") ? "" : "\n"}${address} ${key}\n`)
      } catch (cause) {
        return `cannot add the key to ${trust.path}: ${cause instanceof Error ? cause.message : String(cause)}`
      }
      trust.onAdded?.(address, key)
      return undefined
    }
  }
}
