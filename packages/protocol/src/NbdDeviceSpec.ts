/**
 * Device specs with NBD: everything `DeviceSpec` (storage) knows, plus an export of any NBD server named by
 * its URI, `nbd://HOST[:PORT]/EXPORT` (port 10809 by default) or `nbd+unix:///EXPORT?socket=PATH`. Storage
 * cannot reach a network, so the NBD forms are handled here and every other spec is passed to
 * `DeviceSpec.open` unchanged; programs that take device specs parse and open them through this module.
 *
 * The export name is the URI's path without its leading `/`, percent-decoded (an empty path is the server's
 * default export).
 *
 * @since 0.1.0
 */
import * as NbdConstants from "@tessera/codec/NbdConstants"
import * as DeviceSpec from "@tessera/storage/DeviceSpec"
import type { BlockDevice } from "@tessera/storage/Provider"
import * as StorageError from "@tessera/storage/StorageError"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import type * as Scope from "effect/Scope"
import * as Address from "./Address.ts"
import * as NbdClient from "./NbdClient.ts"
import type * as Transport from "./Transport.ts"

/**
 * An NBD export as a device.
 *
 * @since 0.1.0
 * @category models
 */
export interface Nbd {
  readonly _tag: "Nbd"
  readonly address: Address.Tcp | Address.Unix
  readonly exportName: string
  /** The URI as given. */
  readonly uri: string
}

/**
 * Any device spec: storage's, or an NBD export.
 *
 * @since 0.1.0
 * @category models
 */
export type Spec = DeviceSpec.DeviceSpec | Nbd

const invalid = (input: string, detail: string) => Result.fail(new DeviceSpec.InvalidSpec({ input, detail }))

/**
 * Whether the input uses one of the NBD URI schemes.
 *
 * @since 0.1.0
 * @category predicates
 */
export const isNbdUri = (input: string): boolean => input.startsWith("nbd://") || input.startsWith("nbd+unix://")

/**
 * Parses `nbd://HOST[:PORT]/EXPORT` or `nbd+unix:///EXPORT?socket=PATH`.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseNbd = (input: string): Result.Result<Nbd, DeviceSpec.InvalidSpec> => {
  let url: URL
  try {
    url = new URL(input)
  } catch {
    return invalid(input, "not a URI (expected nbd://HOST[:PORT]/EXPORT or nbd+unix:///EXPORT?socket=PATH)")
  }
  let exportName: string
  try {
    exportName = decodeURIComponent(url.pathname.replace(/^\//, ""))
  } catch {
    return invalid(input, "the export name is not valid percent-encoding")
  }
  if (new TextEncoder().encode(exportName).length > NbdConstants.MAX_STRING_LENGTH) {
    return invalid(input, `the export name is longer than ${NbdConstants.MAX_STRING_LENGTH} bytes`)
  }
  if (url.protocol === "nbd+unix:") {
    const socket = url.searchParams.get("socket")
    if (url.host !== "") return invalid(input, "nbd+unix:// takes no host (nbd+unix:///EXPORT?socket=PATH)")
    if (socket === null || socket === "") return invalid(input, "nbd+unix:// needs ?socket=PATH")
    return Result.succeed({ _tag: "Nbd", address: Address.unix(socket), exportName, uri: input })
  }
  if (url.protocol !== "nbd:") return invalid(input, "expected nbd:// or nbd+unix://")
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1")
  if (host === "") return invalid(input, "nbd:// needs a host")
  const port = url.port === "" ? NbdConstants.DEFAULT_PORT : Number(url.port)
  return Result.succeed({ _tag: "Nbd", address: Address.tcp(host, port), exportName, uri: input })
}

/**
 * Parses any device spec: the NBD URIs here, the rest by `DeviceSpec.parse`.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parse = (input: string): Result.Result<Spec, DeviceSpec.InvalidSpec> => {
  if (isNbdUri(input)) return parseNbd(input)
  const parsed = DeviceSpec.parse(input)
  return Result.isSuccess(parsed) || input.includes(":")
    ? parsed
    : invalid(
      input,
      "expected memory:SIZE, file:PATH, sparse:PATH, nbd://HOST[:PORT]/EXPORT or nbd+unix:///EXPORT?socket=PATH"
    )
}

/**
 * Options of `open`: storage's, plus the NBD client's.
 *
 * @since 0.1.0
 * @category models
 */
export interface OpenOptions extends DeviceSpec.OpenOptions {
  readonly nbd?: Omit<NbdClient.Options, "exportName"> | undefined
}

/**
 * Opens the device a spec names, closed with the current scope. An NBD export must exist (`create` does not
 * apply); a `size`, when given, must be the export's. Failures to reach or negotiate with the server are
 * `StorageError`s: `NotFound` for an export the server does not have, `IoFailure` otherwise.
 *
 * @since 0.1.0
 * @category constructors
 */
export const open = Effect.fn("NbdDeviceSpec.open")(function*(
  spec: Spec,
  options: OpenOptions = {}
): Effect.fn.Return<BlockDevice, StorageError.StorageError, Transport.Transport | Scope.Scope> {
  if (spec._tag !== "Nbd") return yield* DeviceSpec.open(spec, options)
  const client = yield* NbdClient.connect(spec.address, { ...options.nbd, exportName: spec.exportName }).pipe(
    Effect.mapError((error) =>
      StorageError.make(
        spec.uri,
        error._tag === "NbdError" && error.reason._tag === "Refused" &&
          error.reason.reply === NbdConstants.replyName(NbdConstants.Reply.ERR_UNKNOWN)
          ? new StorageError.NotFound({ key: spec.exportName })
          : new StorageError.IoFailure({ operation: "connect", cause: error })
      )
    )
  )
  if (options.size !== undefined && options.size !== client.size) {
    return yield* StorageError.make(
      spec.uri,
      new StorageError.Unsupported({ detail: `the export has ${client.size} bytes, not ${options.size}` })
    )
  }
  return client
})

/**
 * A short name for a spec's device: the export name (or the host) for NBD, the file name for files, `memory`.
 *
 * @since 0.1.0
 * @category getters
 */
export const shortName = (spec: Spec): string => {
  switch (spec._tag) {
    case "Nbd":
      return spec.exportName !== "" ? spec.exportName : spec.address._tag === "Tcp" ? spec.address.host : "nbd"
    case "Memory":
      return "memory"
    default:
      return spec.path.split(/[\\/]/).at(-1) ?? spec.path
  }
}
