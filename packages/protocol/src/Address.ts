/**
 * Where a transport dials or listens, written as a string whose scheme picks the transport:
 *
 * - `tcp://127.0.0.1:5170`, `tcp://[::1]:5170`, `tcp://host.example:5170` (port 0 asks the OS for a free port
 *   when listening)
 * - `unix:/run/tessera.sock` (also `unix:///run/tessera.sock`, `unix:relative.sock`)
 * - `memory:name` (an in-process pipe, only reachable through the same `Transport` instance)
 *
 * Parsing never throws: a malformed address is an `AddressError` naming the input and what is wrong with it.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"

/**
 * A TCP endpoint. `host` is a name or an IP literal (IPv6 without brackets).
 *
 * @since 0.1.0
 * @category models
 */
export interface Tcp {
  readonly _tag: "Tcp"
  readonly host: string
  readonly port: number
}

/**
 * A Unix domain socket path.
 *
 * @since 0.1.0
 * @category models
 */
export interface Unix {
  readonly _tag: "Unix"
  readonly path: string
}

/**
 * An in-process pipe endpoint, by name.
 *
 * @since 0.1.0
 * @category models
 */
export interface Memory {
  readonly _tag: "Memory"
  readonly name: string
}

/**
 * Any transport address.
 *
 * @since 0.1.0
 * @category models
 */
export type Address = Tcp | Unix | Memory

/**
 * A string that is not a usable address, and why.
 *
 * @since 0.1.0
 * @category errors
 */
export class AddressError extends Schema.TaggedError<AddressError>()("AddressError", {
  input: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `invalid address ${JSON.stringify(this.input)}: ${this.reason}`
  }
}

/**
 * A TCP address.
 *
 * @since 0.1.0
 * @category constructors
 */
export const tcp = (host: string, port: number): Tcp => ({ _tag: "Tcp", host, port })

/**
 * A Unix socket address.
 *
 * @since 0.1.0
 * @category constructors
 */
export const unix = (path: string): Unix => ({ _tag: "Unix", path })

/**
 * An in-process pipe address.
 *
 * @since 0.1.0
 * @category constructors
 */
export const memory = (name: string): Memory => ({ _tag: "Memory", name })

const invalid = (input: string, reason: string): Result.Result<never, AddressError> =>
  Result.fail(new AddressError({ input, reason }))

const parseTcp = (input: string, rest: string): Result.Result<Address, AddressError> => {
  // An IPv6 literal is bracketed so its colons are not mistaken for the port separator.
  const bracketed = rest.startsWith("[")
  const close = bracketed ? rest.indexOf("]") : -1
  if (bracketed && close < 0) return invalid(input, "unclosed '[' in the host")
  const colon = bracketed ? close + 1 : rest.lastIndexOf(":")
  if (colon < 0 || rest[colon] !== ":") return invalid(input, "expected tcp://host:port")
  const host = bracketed ? rest.slice(1, close) : rest.slice(0, colon)
  const portText = rest.slice(colon + 1)
  if (host.length === 0) return invalid(input, "the host is empty")
  if (!bracketed && host.includes(":")) return invalid(input, "an IPv6 host must be written in brackets")
  if (/[\s/?#@]/.test(host)) return invalid(input, "the host contains a character not allowed in a host")
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) {
    return invalid(input, `the port must be an integer from 0 to 65535, got ${JSON.stringify(portText)}`)
  }
  return Result.succeed(tcp(host, Number(portText)))
}

/**
 * Parses an address string.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parse = (input: string): Result.Result<Address, AddressError> => {
  if (input.startsWith("tcp://")) return parseTcp(input, input.slice("tcp://".length))
  if (input.startsWith("unix:")) {
    // `unix:///abs` is the URL spelling of `unix:/abs`.
    const rest = input.slice("unix:".length)
    const path = rest.startsWith("//") ? rest.slice(2) : rest
    if (path.length === 0) return invalid(input, "the socket path is empty")
    if (path.includes("\0")) return invalid(input, "the socket path contains a NUL byte")
    return Result.succeed(unix(path))
  }
  if (input.startsWith("memory:")) {
    const name = input.slice("memory:".length)
    return name.length === 0 ? invalid(input, "the pipe name is empty") : Result.succeed(memory(name))
  }
  return invalid(input, "unknown scheme (expected tcp://, unix: or memory:)")
}

/**
 * `parse` as an Effect, for programs that read addresses from flags or config.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseEffect = (input: string): Effect.Effect<Address, AddressError> => Effect.fromResult(parse(input))

/**
 * The canonical string of an address; `parse(format(a))` gives `a` back.
 *
 * @since 0.1.0
 * @category formatting
 */
export const format = (address: Address): string => {
  switch (address._tag) {
    case "Tcp":
      return address.host.includes(":")
        ? `tcp://[${address.host}]:${address.port}`
        : `tcp://${address.host}:${address.port}`
    case "Unix":
      return `unix:${address.path}`
    case "Memory":
      return `memory:${address.name}`
  }
}
