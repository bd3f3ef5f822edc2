/**
 * Peer and circuit addresses: `<scheme>://<host:port>/<service>/<peerId>[/<circuitId>]`, and the random IDs in
 * them (33 bytes from the CSPRNG, base64url without padding: 44 characters of `[A-Za-z0-9_-]`, so never a `/`).
 *
 * The network part is a `Transport` address (`tcp://host:port`, also `unix:` and `memory:` for local use); a URL
 * without a scheme is read as `tcp://`. A `unix:` path has slashes of its own, so there the service and IDs are
 * taken from the end. An empty peerId (`tcp://host:port/service/`) asks the remote host to
 * start a new instance of the service. Parsing never throws.
 *
 * @since 0.1.0
 */
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import { randomBytes } from "node:crypto"
import * as Address from "./Address.ts"

/**
 * A parsed peer or circuit URL.
 *
 * @since 0.1.0
 * @category models
 */
export interface PeerUrl {
  /** The host's transport address, e.g. `tcp://127.0.0.1:5170`. */
  readonly netAddress: string
  readonly service: string
  /** Empty when the URL names a service but not an instance. */
  readonly peerId: string
  /** Empty in a peer URL; set in a circuit URL. */
  readonly circuitId: string
}

/**
 * A string that is not a usable peer URL, and why.
 *
 * @since 0.1.0
 * @category errors
 */
export class PeerUrlError extends Schema.TaggedError<PeerUrlError>()("PeerUrlError", {
  input: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `invalid peer URL ${JSON.stringify(this.input)}: ${this.reason}`
  }
}

const ID_PATTERN = /^[A-Za-z0-9_-]{44}$/
const SERVICE_PATTERN = /^[^/\s#?]{1,200}$/

/**
 * A fresh random ID for a peer, a circuit or a request.
 *
 * @since 0.1.0
 * @category constructors
 */
export const newId = (): string => randomBytes(33).toString("base64url")

/**
 * Whether a string has the shape of an ID made by `newId`.
 *
 * @since 0.1.0
 * @category predicates
 */
export const isId = (s: string): boolean => ID_PATTERN.test(s)

/**
 * Whether a string can be a service name (no `/`, whitespace, `#` or `?`; 1 to 200 characters).
 *
 * @since 0.1.0
 * @category predicates
 */
export const isServiceName = (s: string): boolean => SERVICE_PATTERN.test(s)

const invalid = (input: string, reason: string): Result.Result<never, PeerUrlError> =>
  Result.fail(new PeerUrlError({ input, reason }))

/**
 * Parses a peer or circuit URL.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parse = (input: string): Result.Result<PeerUrl, PeerUrlError> => {
  const text = /^[a-z]+:/.test(input) ? input : `tcp://${input}`
  let netText: string
  let segments: Array<string>
  if (text.startsWith("tcp://")) {
    // The network part ends at the first "/" after the scheme's own slashes.
    const slash = text.indexOf("/", "tcp://".length)
    if (slash < 0) return invalid(input, "expected <address>/<service>/<peerId>")
    netText = text.slice(0, slash)
    segments = text.slice(slash + 1).split("/")
    if (segments.length > 3) return invalid(input, "too many path segments (at most service/peerId/circuitId)")
  } else {
    // A socket path has slashes of its own: the service and IDs are the last segments.
    const parts = text.split("/")
    const tail = parts.length >= 4 && isId(parts.at(-1)!) && isId(parts.at(-2)!) ? 3 : 2
    if (parts.length <= tail) return invalid(input, "expected <address>/<service>/<peerId>")
    netText = parts.slice(0, parts.length - tail).join("/")
    segments = parts.slice(parts.length - tail)
  }
  const address = Address.parse(netText)
  if (Result.isFailure(address)) return invalid(input, address.failure.reason)
  const [service = "", peerId = "", circuitId = ""] = segments
  if (!isServiceName(service)) return invalid(input, `the service name ${JSON.stringify(service)} is not valid`)
  if (peerId !== "" && !isId(peerId)) return invalid(input, "the peerId is not a 44-character base64url ID")
  if (circuitId !== "" && !isId(circuitId)) return invalid(input, "the circuitId is not a 44-character base64url ID")
  if (circuitId !== "" && peerId === "") return invalid(input, "a circuitId needs a peerId")
  return Result.succeed({ netAddress: Address.format(address.success), service, peerId, circuitId })
}

/**
 * The URL of a peer (or, with a circuitId, of a circuit).
 *
 * @since 0.1.0
 * @category formatting
 */
export const format = (url: PeerUrl): string =>
  `${url.netAddress}/${url.service}/${url.peerId}${url.circuitId === "" ? "" : `/${url.circuitId}`}`
