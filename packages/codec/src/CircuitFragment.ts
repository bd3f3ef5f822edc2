/**
 * Tessera's own wire format for peer circuits (the rpc25519 Peer/Circuit/Fragment model, specs/circuits.md):
 * one frame per message, big-endian, versioned. It does not reproduce rpc25519's msgpack bytes; it carries the
 * same fields.
 *
 * ```text
 * offset size field
 *  0     2    magic 0xC1 0x7C
 *  2     1    version (1)
 *  3     1    kind: the CallType number (112..122, see `Kind`)
 *  4     4    frame length, header included (u32)
 *  8     4    fragOp (i32)
 * 12     8    fragPart (i64)
 * 20     8    serial (i64)
 * 28     ...  11 strings, each u16 length + UTF-8: fromPeerId, fromPeerName, fromService, fromServiceVersion,
 *             toPeerId, toPeerName, toService, toServiceVersion, circuitId, subject, err
 *        2    args count (u16), then per arg: key and value as u16 length + UTF-8
 *        ...  payload: every remaining byte of the frame
 * ```
 *
 * Only the payload's length is free; everything before it is bounded by its own length fields, which are checked
 * against the frame before anything is read or allocated. Unknown versions and kinds are refused, so a peer
 * speaking a later version gets a clear `DecodeError` rather than misread fields.
 *
 * For sending, `encodeHeader` returns everything before the payload, so a large payload goes out by reference
 * next to it (a gather write) instead of being copied into the frame. A sender of many frames with the same
 * address (a circuit's) encodes it once with `encodeAddress` and each frame with `encodeWith`, which can also
 * copy a small payload in and write into memory the caller hands out. A decoded payload is a view of the frame.
 *
 * @since 0.1.0
 */
import * as Result from "effect/Result"
import { type Decoded, fail } from "./DecodeError.ts"
import { u32be, view } from "./internal/bytes.ts"
import * as StreamParser from "./StreamParser.ts"

/**
 * The two magic bytes every frame starts with.
 *
 * @since 0.1.0
 * @category constants
 */
export const MAGIC = [0xc1, 0x7c] as const

/**
 * The format version this module writes and the only one it reads.
 *
 * @since 0.1.0
 * @category constants
 */
export const VERSION = 1

/**
 * Bytes of the fixed part of the header, before the strings.
 *
 * @since 0.1.0
 * @category constants
 */
export const FIXED_HEADER_SIZE = 28

/**
 * Largest payload a frame may carry by default (4 MiB); callers may lower or raise the parser's cap.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_MAX_PAYLOAD = 4 * 1024 * 1024

/**
 * Largest header (strings and args) the parser accepts by default (256 KiB).
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_MAX_HEADER = 256 * 1024

/**
 * Most args a frame may carry.
 *
 * @since 0.1.0
 * @category constants
 */
export const MAX_ARGS = 1024

/**
 * Message kinds: rpc25519's CallType numbers at v1.45 (112–121), plus 122 for circuit flow control, which is
 * ours.
 *
 * @since 0.1.0
 * @category constants
 */
export const Kind = {
  /** Ask the remote host to start a peer of a service; answered by `EstablishedAck`. */
  PeerStart: 112,
  /** Open a circuit to a peer (by PeerID; an empty PeerID starts a new instance). */
  StartCircuit: 113,
  /** The answer to a start: success, or the rejection in `err`. */
  EstablishedAck: 114,
  /** Start a new peer that takes the PeerID the caller chose, and open a circuit to it. */
  StartCircuitTakeToId: 115,
  /** Open a circuit to the single running instance of a service (start one if none). */
  StartCircuitAtMostOne: 116,
  /** An ordinary fragment. */
  Traffic: 117,
  /** An error fragment (delivered on the circuit's errors, not its reads). */
  Error: 118,
  /** The sending peer has shut down. */
  FromIsShutdown: 119,
  /** The sender closed the circuit (`err` may give the reason). */
  EndCircuit: 120,
  /** Traffic that may fall back to the running instance of the service (declared, routed as `Traffic`). */
  TrafficWithServiceFallback: 121,
  /** Flow control: the receiver consumed `fragPart` more bytes of the circuit (Tessera's extension). */
  WindowUpdate: 122
} as const

/**
 * One of the `Kind` numbers.
 *
 * @since 0.1.0
 * @category models
 */
export type Kind = (typeof Kind)[keyof typeof Kind]

const KINDS: ReadonlySet<number> = new Set(Object.values(Kind))

/**
 * Whether a number is a kind this version knows.
 *
 * @since 0.1.0
 * @category predicates
 */
export const isKind = (n: number): n is Kind => KINDS.has(n)

/**
 * Every field of a frame, decoded. Strings absent on the wire are empty; `args` keys starting with `#` are the
 * system's, the others the user's.
 *
 * @since 0.1.0
 * @category models
 */
export interface Fragment {
  readonly kind: Kind
  readonly fromPeerId: string
  readonly fromPeerName: string
  readonly fromService: string
  readonly fromServiceVersion: string
  readonly toPeerId: string
  readonly toPeerName: string
  readonly toService: string
  readonly toServiceVersion: string
  readonly circuitId: string
  readonly serial: number
  readonly fragOp: number
  readonly fragPart: number
  readonly subject: string
  readonly err: string
  readonly args: Readonly<Record<string, string>>
  readonly payload: Uint8Array
}

const ADDRESS_FIELDS = [
  "fromPeerId",
  "fromPeerName",
  "fromService",
  "fromServiceVersion",
  "toPeerId",
  "toPeerName",
  "toService",
  "toServiceVersion",
  "circuitId"
] as const satisfies ReadonlyArray<keyof Fragment>

const encoder = new TextEncoder()
const decoder = new TextDecoder("utf-8", { fatal: true })

const I32_MIN = -0x8000_0000
const I32_MAX = 0x7fff_ffff

const putI64be = (b: Uint8Array, o: number, v: number): void => {
  const low = v >>> 0
  const high = (v - low) / 0x1_0000_0000
  b[o] = high >>> 24
  b[o + 1] = high >>> 16
  b[o + 2] = high >>> 8
  b[o + 3] = high
  b[o + 4] = low >>> 24
  b[o + 5] = low >>> 16
  b[o + 6] = low >>> 8
  b[o + 7] = low
}

const i64be = (b: Uint8Array, o: number): number | undefined => {
  const high = u32be(b, o) | 0
  if (high > 0x1f_ffff || high < -0x20_0000) return undefined
  const value = high * 0x1_0000_0000 + u32be(b, o + 4)
  return Number.isSafeInteger(value) ? value : undefined
}

const checkText = (what: string, length: number): void => {
  if (length > 0xffff) throw new RangeError(`${what} is ${length} bytes of UTF-8; at most 65535 fit`)
}

// Texts are ASCII almost always (IDs, service names): those are written char by char with no encoder call.
const encodeText = (what: string, value: string): string | Uint8Array => {
  for (let i = 0; i < value.length; i++) {
    if (value.charCodeAt(i) > 0x7f) {
      const text = encoder.encode(value)
      checkText(what, text.length)
      return text
    }
  }
  checkText(what, value.length)
  return value
}

/**
 * The addressing fields of a frame: who sends, to whom, on which circuit.
 *
 * @since 0.1.0
 * @category models
 */
export type AddressFields = Pick<Fragment, (typeof ADDRESS_FIELDS)[number]>

/**
 * The fields of a frame besides its address.
 *
 * @since 0.1.0
 * @category models
 */
export type BodyFields = Pick<
  Fragment,
  "kind" | "serial" | "fragOp" | "fragPart" | "subject" | "err" | "args" | "payload"
>

/**
 * The addressing fields of a frame, encoded once: every frame of a circuit carries the same, so `encodeWith`
 * copies these bytes instead of encoding the strings again. Throws a `RangeError` for a string over 65535 bytes.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeAddress = (address: AddressFields): Uint8Array => {
  const texts = addressTexts(address)
  const out = new Uint8Array(texts.size)
  putTexts(out, 0, texts.texts)
  return out
}

/** The address strings ready to write (ASCII ones as they are), and how many bytes they take. */
interface AddressTexts {
  readonly texts: ReadonlyArray<string | Uint8Array>
  readonly size: number
}

const addressTexts = (address: AddressFields): AddressTexts => {
  const texts: Array<string | Uint8Array> = []
  let size = 0
  for (const field of ADDRESS_FIELDS) {
    const text = encodeText(field, address[field])
    texts.push(text)
    size += 2 + text.length
  }
  return { texts, size }
}

const putTexts = (out: Uint8Array, at: number, texts: ReadonlyArray<string | Uint8Array>): number => {
  for (const text of texts) at = putText(out, at, text)
  return at
}

const newBytes = (size: number): Uint8Array => new Uint8Array(size)

/**
 * A frame's header from its encoded address (`encodeAddress`) and its other fields; with `inline`, the payload
 * is copied in after it, which makes the whole frame (for small payloads: one buffer to write). `allocate`
 * gives the memory to write into (every byte of it is written); a sender of many small frames can hand out
 * pieces of a bigger buffer, since a typed array of its own costs microseconds beyond 64 bytes. Throws a
 * `RangeError` for a value that cannot be encoded (see `encodeHeader`).
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeWith = (
  address: Uint8Array,
  body: BodyFields,
  inline: boolean,
  allocate: (size: number) => Uint8Array = newBytes
): Uint8Array => encodeFrame(address, body, inline, allocate)

/** A frame around an address given encoded or as texts still to write (a one-off frame: no copy in between). */
const encodeFrame = (
  address: Uint8Array | AddressTexts,
  body: BodyFields,
  inline: boolean,
  allocate: (size: number) => Uint8Array
): Uint8Array => {
  if (!Number.isInteger(body.fragOp) || body.fragOp < I32_MIN || body.fragOp > I32_MAX) {
    throw new RangeError(`fragOp must be a 32-bit integer, got ${body.fragOp}`)
  }
  if (!Number.isSafeInteger(body.fragPart)) throw new RangeError(`fragPart must be a safe integer`)
  if (!Number.isSafeInteger(body.serial)) throw new RangeError(`serial must be a safe integer`)
  const subject = body.subject === "" ? "" : encodeText("subject", body.subject)
  const err = body.err === "" ? "" : encodeText("err", body.err)
  const keys = Object.keys(body.args)
  if (keys.length > MAX_ARGS) throw new RangeError(`${keys.length} args; at most ${MAX_ARGS} fit`)
  const addressSize = address instanceof Uint8Array ? address.length : address.size
  let size = FIXED_HEADER_SIZE + addressSize + 4 + subject.length + err.length + 2
  const texts: Array<string | Uint8Array> = []
  for (const key of keys) {
    const name = encodeText(`arg ${key}`, key)
    const value = encodeText(`value of arg ${key}`, body.args[key]!)
    texts.push(name, value)
    size += 4 + name.length + value.length
  }
  const total = size + body.payload.length
  if (total > 0xffff_ffff) throw new RangeError(`a frame of ${total} bytes is over the 4 GiB the length holds`)
  const out = allocate(inline ? total : size)
  out[0] = MAGIC[0]
  out[1] = MAGIC[1]
  out[2] = VERSION
  out[3] = body.kind
  putU32(out, 4, total)
  putU32(out, 8, body.fragOp >>> 0)
  putI64be(out, 12, body.fragPart)
  putI64be(out, 20, body.serial)
  if (address instanceof Uint8Array) out.set(address, FIXED_HEADER_SIZE)
  else putTexts(out, FIXED_HEADER_SIZE, address.texts)
  let at = putText(out, FIXED_HEADER_SIZE + addressSize, subject)
  at = putText(out, at, err)
  out[at++] = keys.length >>> 8
  out[at++] = keys.length
  at = putTexts(out, at, texts)
  if (inline) out.set(body.payload, at)
  return out
}

/**
 * Everything of a frame before its payload (the frame length counts the payload). Throws a `RangeError` for a
 * value that cannot be encoded: a string over 65535 bytes, more than `MAX_ARGS` args, a non-integer or
 * out-of-range number, a frame over 4 GiB. Callers validate user input before (the protocol layer does).
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeHeader = (fragment: Fragment): Uint8Array =>
  encodeFrame(addressTexts(fragment), fragment, false, newBytes)

const putU32 = (b: Uint8Array, o: number, v: number): void => {
  b[o] = v >>> 24
  b[o + 1] = v >>> 16
  b[o + 2] = v >>> 8
  b[o + 3] = v
}

const putText = (out: Uint8Array, at: number, text: string | Uint8Array): number => {
  out[at] = text.length >>> 8
  out[at + 1] = text.length
  if (typeof text === "string") {
    for (let i = 0; i < text.length; i++) out[at + 2 + i] = text.charCodeAt(i)
  } else out.set(text, at + 2)
  return at + 2 + text.length
}

/**
 * A whole frame in one new buffer (header and a copy of the payload).
 *
 * @since 0.1.0
 * @category encoding
 */
export const encode = (fragment: Fragment): Uint8Array => encodeFrame(addressTexts(fragment), fragment, true, newBytes)

/**
 * The total frame length announced by a fixed header (at least 8 bytes of it).
 *
 * @since 0.1.0
 * @category decoding
 */
export const frameLength = (header: Uint8Array): number => u32be(header, 4)

/**
 * Limits for decoding.
 *
 * @since 0.1.0
 * @category models
 */
export interface Limits {
  /** Largest payload; default {@link DEFAULT_MAX_PAYLOAD}. */
  readonly maxPayload?: number | undefined
  /** Largest header (fixed part, strings and args); default {@link DEFAULT_MAX_HEADER}. */
  readonly maxHeader?: number | undefined
}

/**
 * Decodes one whole frame (exactly `frameLength` bytes). Never throws.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decode = (bytes: Uint8Array, limits?: Limits): Decoded<Fragment> => decodeCached(bytes, limits, undefined)

/** The text whose length field is at `at`, checked against the header's end `end`. */
const readText = (bytes: Uint8Array, at: number, end: number, what: string): string | Decoded<never> => {
  if (at + 2 > end) return fail("circuit", "fragment", at, `${what}: length runs past the header`)
  const length = (bytes[at]! << 8) | bytes[at + 1]!
  if (at + 2 + length > end) return fail("circuit", "fragment", at, `${what}: ${length} bytes run past the header`)
  if (length === 0) return ""
  const start = at + 2
  const stop = start + length
  for (let i = start; i < stop; i++) {
    if (bytes[i]! > 0x7f || length > 4096) {
      try {
        return decoder.decode(bytes.subarray(start, stop))
      } catch {
        return fail("circuit", "fragment", start, `${what} is not valid UTF-8`)
      }
    }
  }
  // Short and all ASCII (IDs, names): one call makes the string, with no decoder.
  return String.fromCharCode.apply(null, bytes.subarray(start, stop) as unknown as Array<number>)
}

/**
 * The address of the frame decoded last: a connection's frames mostly repeat it, so its strings are reused. Its
 * bytes are copied (into memory kept for the purpose, so a miss allocates nothing), not referenced.
 */
interface AddressCache {
  bytes: Uint8Array
  length: number
  address: AddressFields
}

/** Where the address that starts at `from` ends, or -1 when its lengths run past `end` (decoding then says why). */
const addressEnd = (bytes: Uint8Array, from: number, end: number): number => {
  let at = from
  for (let i = 0; i < ADDRESS_FIELDS.length; i++) {
    if (at + 2 > end) return -1
    at += 2 + ((bytes[at]! << 8) | bytes[at + 1]!)
  }
  return at > end ? -1 : at
}

/** Whether the cache holds the bytes of `b` from `from` to `to`; compared from the end, where circuit IDs differ. */
const cached = (cache: AddressCache, b: Uint8Array, from: number, to: number): boolean => {
  if (cache.length !== to - from) return false
  const a = cache.bytes
  for (let i = cache.length - 1, j = to - 1; i >= 0; i--, j--) if (a[i] !== b[j]) return false
  return true
}

const decodeCached = (
  bytes: Uint8Array,
  limits: Limits | undefined,
  cache: AddressCache | undefined
): Decoded<Fragment> => {
  const maxPayload = limits?.maxPayload ?? DEFAULT_MAX_PAYLOAD
  const maxHeader = limits?.maxHeader ?? DEFAULT_MAX_HEADER
  if (bytes.length < FIXED_HEADER_SIZE) {
    return fail("circuit", "fragment", 0, `a frame needs ${FIXED_HEADER_SIZE} bytes, ${bytes.length} given`)
  }
  if (bytes[0] !== MAGIC[0] || bytes[1] !== MAGIC[1]) {
    return fail("circuit", "fragment", 0, "bad magic (not a circuit frame, or TLS and plaintext mixed up)")
  }
  if (bytes[2] !== VERSION) {
    return fail("circuit", "fragment", 2, `unsupported version ${bytes[2]} (this peer speaks ${VERSION})`)
  }
  const kind = bytes[3]!
  if (!isKind(kind)) return fail("circuit", "fragment", 3, `unknown kind ${kind}`)
  const total = u32be(bytes, 4)
  if (total !== bytes.length) {
    return fail("circuit", "fragment", 4, `frame length ${total} but ${bytes.length} bytes given`)
  }
  const fragOp = u32be(bytes, 8) | 0
  const fragPart = i64be(bytes, 12)
  if (fragPart === undefined) return fail("circuit", "fragment", 12, "fragPart is outside the safe integer range")
  const serial = i64be(bytes, 20)
  if (serial === undefined) return fail("circuit", "fragment", 20, "serial is outside the safe integer range")
  const headerEnd = Math.min(bytes.length, maxHeader)
  let at = FIXED_HEADER_SIZE
  const text = (what: string): string | Decoded<never> => {
    const value = readText(bytes, at, headerEnd, what)
    if (typeof value === "string") at += 2 + ((bytes[at]! << 8) | bytes[at + 1]!)
    return value
  }
  const addressTo = cache === undefined ? -1 : addressEnd(bytes, at, headerEnd)
  let address: AddressFields
  if (addressTo >= 0 && cached(cache!, bytes, at, addressTo)) {
    address = cache!.address
    at = addressTo
  } else {
    const strings: Array<string> = []
    for (const field of ADDRESS_FIELDS) {
      const value = text(field)
      if (typeof value !== "string") return value
      strings.push(value)
    }
    address = {
      fromPeerId: strings[0]!,
      fromPeerName: strings[1]!,
      fromService: strings[2]!,
      fromServiceVersion: strings[3]!,
      toPeerId: strings[4]!,
      toPeerName: strings[5]!,
      toService: strings[6]!,
      toServiceVersion: strings[7]!,
      circuitId: strings[8]!
    }
    if (addressTo >= 0) {
      const length = addressTo - FIXED_HEADER_SIZE
      if (cache!.bytes.length < length) cache!.bytes = new Uint8Array(Math.max(length, 2 * cache!.bytes.length))
      cache!.bytes.set(bytes.subarray(FIXED_HEADER_SIZE, addressTo))
      cache!.length = length
      cache!.address = address
    }
  }
  const subject = text("subject")
  if (typeof subject !== "string") return subject
  const err = text("err")
  if (typeof err !== "string") return err
  if (at + 2 > headerEnd) return fail("circuit", "fragment", at, "args count runs past the header")
  const count = (bytes[at]! << 8) | bytes[at + 1]!
  if (count > MAX_ARGS) return fail("circuit", "fragment", at, `${count} args; at most ${MAX_ARGS} are accepted`)
  at += 2
  const args: Record<string, string> = {}
  for (let i = 0; i < count; i++) {
    const key = text(`arg ${i} key`)
    if (typeof key !== "string") return key
    const value = text(`arg ${key} value`)
    if (typeof value !== "string") return value
    if (Object.hasOwn(args, key)) return fail("circuit", "fragment", at, `arg ${JSON.stringify(key)} repeated`)
    // Defined as own data properties, so a key like "__proto__" is just a key.
    Object.defineProperty(args, key, { value, enumerable: true, writable: false, configurable: false })
  }
  const payloadLength = bytes.length - at
  if (payloadLength > maxPayload) {
    return fail("circuit", "fragment", at, `payload of ${payloadLength} bytes exceeds the maximum of ${maxPayload}`)
  }
  return Result.succeed({
    kind,
    fromPeerId: address.fromPeerId,
    fromPeerName: address.fromPeerName,
    fromService: address.fromService,
    fromServiceVersion: address.fromServiceVersion,
    toPeerId: address.toPeerId,
    toPeerName: address.toPeerName,
    toService: address.toService,
    toServiceVersion: address.toServiceVersion,
    circuitId: address.circuitId,
    subject,
    err,
    serial,
    fragOp,
    fragPart,
    args,
    payload: view(bytes, at, payloadLength)
  })
}

/**
 * An incremental parser of a circuit connection's byte stream. A frame over the caps fails as soon as its
 * fixed header is complete, before any of it is buffered. After an error it stays failed (see `StreamParser`).
 * A frame whose address bytes are those of the frame before gets that frame's address strings again rather
 * than new ones (a connection's frames often come in runs from one circuit).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeParser = (limits?: Limits): StreamParser.StreamParser<Fragment> => {
  const maxFrame = (limits?.maxHeader ?? DEFAULT_MAX_HEADER) + (limits?.maxPayload ?? DEFAULT_MAX_PAYLOAD)
  const cache: AddressCache = { bytes: new Uint8Array(256), length: -1, address: empty }
  return StreamParser.make({
    protocol: "circuit",
    name: "fragment",
    headerSize: 8,
    frameLength,
    maxFrameLength: maxFrame,
    decodeFrame: ({ bytes }) => decodeCached(bytes, limits, cache)
  })
}

/**
 * A fragment with every field empty, to spread over.
 *
 * @since 0.1.0
 * @category constructors
 */
export const empty: Fragment = {
  kind: Kind.Traffic,
  fromPeerId: "",
  fromPeerName: "",
  fromService: "",
  fromServiceVersion: "",
  toPeerId: "",
  toPeerName: "",
  toService: "",
  toServiceVersion: "",
  circuitId: "",
  serial: 0,
  fragOp: 0,
  fragPart: 0,
  subject: "",
  err: "",
  args: {},
  payload: new Uint8Array(0)
}
