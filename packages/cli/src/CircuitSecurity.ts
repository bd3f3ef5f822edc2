/**
 * How `--via-circuit` connections are secured, from the flags `tessera migrate serve` and `connect` share: TLS
 * 1.3 with this host's Ed25519 identity and the peers' keys pinned in a known-keys file by default (specs/circuits.md
 * §2.5), plaintext only with `--plaintext`.
 *
 * - `--identity DIR`: where this host's key lives (`DIR/identity.key`, made on first use). Default: the tessera
 *   config dir, `$TESSERA_HOME`, else `$XDG_CONFIG_HOME/tessera`, else `~/.config/tessera`.
 * - `--known-keys FILE`: the peers' keys, lines `<address> ed25519:<key>`. Default `known_keys` in the config dir.
 * - `--trust tofu|locked`: a key not in the file is accepted and appended (`tofu`, the default), or refused.
 * - `--plaintext`: no TLS (loopback tests, `unix:` addresses); none of the three above may be given with it.
 *
 * Every flag needs `--via-circuit`; a wrong combination is bad input.
 *
 * @since 0.1.0
 */
import type * as CircuitError from "@tessera/protocol/CircuitError"
import * as PeerIdentity from "@tessera/protocol/PeerIdentity"
import type * as PeerService from "@tessera/protocol/PeerService"
import * as TransportError from "@tessera/protocol/TransportError"
import * as Flag from "effect/cli/Flag"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { BadInput, OperationFailed } from "./CliFailure.ts"

/**
 * The name of this host's key file in the identity directory (`identity.key`).
 *
 * @since 0.1.0
 * @category constants
 */
export const IDENTITY_NAME = "identity"

/**
 * The flags, to spread into a command's flags next to `--via-circuit`.
 *
 * @since 0.1.0
 * @category flags
 */
export const flags = {
  identity: Flag.String("identity").pipe(
    Flag.withDescription(
      "With --via-circuit: the directory of this host's Ed25519 key (identity.key, made on first use); default $TESSERA_HOME, $XDG_CONFIG_HOME/tessera or ~/.config/tessera"
    ),
    Flag.optional
  ),
  knownKeys: Flag.String("known-keys").pipe(
    Flag.withDescription(
      "With --via-circuit: the file of the peers' keys (lines ADDRESS ed25519:KEY); default known_keys in the config directory"
    ),
    Flag.optional
  ),
  trust: Flag.Literals("trust", ["tofu", "locked"]).pipe(
    Flag.withDescription(
      "With --via-circuit: a peer key not in --known-keys is accepted and added (tofu, the default) or refused (locked)"
    ),
    Flag.optional
  ),
  plaintext: Flag.Boolean("plaintext").pipe(
    Flag.withDescription("With --via-circuit: no TLS (loopback tests, unix: addresses)"),
    Flag.withDefault(false)
  )
}

/**
 * What the flags gave.
 *
 * @since 0.1.0
 * @category models
 */
export interface Flags {
  readonly identity: Option.Option<string>
  readonly knownKeys: Option.Option<string>
  readonly trust: Option.Option<"tofu" | "locked">
  readonly plaintext: boolean
}

/**
 * The security chosen for a `--via-circuit` host, and what to tell the user about it.
 *
 * @since 0.1.0
 * @category models
 */
export type Choice =
  | { readonly _tag: "Plaintext"; readonly security: PeerService.Security }
  | {
    readonly _tag: "Tls"
    readonly security: PeerService.Security
    /** This host's key, as a peer pins it. */
    readonly publicKey: string
    readonly knownKeys: string
    readonly trust: "tofu" | "locked"
  }

/**
 * The tessera config directory: `$TESSERA_HOME`, else `$XDG_CONFIG_HOME/tessera`, else `~/.config/tessera` (an
 * empty variable counts as unset).
 *
 * @since 0.1.0
 * @category defaults
 */
export const configDir = (env: {
  readonly tesseraHome?: string | undefined
  readonly xdgConfigHome?: string | undefined
  readonly home: string
}): string =>
  env.tesseraHome !== undefined && env.tesseraHome !== ""
    ? env.tesseraHome
    : env.xdgConfigHome !== undefined && env.xdgConfigHome !== ""
    ? path.join(env.xdgConfigHome, "tessera")
    : path.join(env.home, ".config", "tessera")

const variable = (name: string): Effect.Effect<string | undefined> =>
  Config.option(Config.String(name)).pipe(Effect.map(Option.getOrUndefined), Effect.orElseSucceed(() => undefined))

const bad = (message: string) => Effect.fail(new BadInput({ message }))

/**
 * Checks the flags against `--via-circuit` and the address (TLS runs over `tcp://` only), and makes the
 * security: `undefined` without `--via-circuit`. With TLS it loads this host's identity (making it on first
 * use) and, in `tofu` mode, the known-keys file's directory; `locked` needs the file to exist.
 *
 * @since 0.1.0
 * @category constructors
 */
export const choose = Effect.fn("CircuitSecurity.choose")(function*(
  viaCircuit: boolean,
  address: string,
  options: Flags,
  onAdded?: (peer: string, key: string, knownKeys: string) => void
) {
  const given = [
    ...(Option.isSome(options.identity) ? ["--identity"] : []),
    ...(Option.isSome(options.knownKeys) ? ["--known-keys"] : []),
    ...(Option.isSome(options.trust) ? ["--trust"] : [])
  ]
  if (!viaCircuit) {
    const all = [...given, ...(options.plaintext ? ["--plaintext"] : [])]
    if (all.length > 0) return yield* bad(`${all.join(", ")} ${all.length === 1 ? "needs" : "need"} --via-circuit`)
    return undefined
  }
  if (options.plaintext) {
    if (given.length > 0) return yield* bad(`--plaintext turns TLS off: ${given.join(", ")} cannot be used with it`)
    const choice: Choice = { _tag: "Plaintext", security: { _tag: "Plaintext" } }
    return choice
  }
  if (!address.startsWith("tcp://")) {
    return yield* bad(`--via-circuit runs TLS over tcp:// addresses only; give --plaintext for ${address}`)
  }
  const home = configDir({
    tesseraHome: yield* variable("TESSERA_HOME"),
    xdgConfigHome: yield* variable("XDG_CONFIG_HOME"),
    home: os.homedir()
  })
  const dir = Option.getOrElse(options.identity, () => home)
  const knownKeys = path.resolve(Option.getOrElse(options.knownKeys, () => path.join(home, "known_keys")))
  const trust = Option.getOrElse(options.trust, () => "tofu" as const)
  if (trust === "locked" && !fs.existsSync(knownKeys)) {
    return yield* bad(`--trust locked: ${knownKeys} does not exist (it lists the peer keys to accept)`)
  }
  const identity = yield* Effect.mapError(
    PeerIdentity.loadOrCreate(dir, IDENTITY_NAME),
    (error) => new BadInput({ message: `this host's identity: ${error.message}` })
  )
  if (trust === "tofu") {
    yield* Effect.try({
      try: () => fs.mkdirSync(path.dirname(knownKeys), { recursive: true }),
      catch: (cause) =>
        new BadInput({ message: `${knownKeys}: ${cause instanceof Error ? cause.message : String(cause)}` })
    })
  }
  const choice: Choice = {
    _tag: "Tls",
    security: {
      _tag: "Tls",
      identity,
      trust: {
        _tag: "KnownKeys",
        path: knownKeys,
        mode: trust,
        onAdded: onAdded === undefined ? undefined : (peer, key) => onAdded(peer, key, knownKeys)
      }
    },
    publicKey: identity.publicKey,
    knownKeys,
    trust
  }
  return choice
})

/**
 * The fields a `listening` or `connecting` JSON line gets, and the line of text for people.
 *
 * @since 0.1.0
 * @category reporting
 */
export const describe = (choice: Choice): { readonly fields: Record<string, unknown>; readonly text: string } =>
  choice._tag === "Plaintext"
    ? { fields: { tls: false }, text: "circuit in plaintext (--plaintext)" }
    : {
      fields: { tls: true, publicKey: choice.publicKey, knownKeys: choice.knownKeys, trust: choice.trust },
      text: `TLS 1.3; this host's key is ${choice.publicKey}; peer keys in ${choice.knownKeys} (${
        choice.trust === "tofu" ? "new keys are added" : "locked: unknown keys are refused"
      })`
    }

const connectFailed = (from: string, detail: string) =>
  TransportError.make(from, new TransportError.ConnectFailed({ cause: new Error(detail) }))

/**
 * A failed circuit dial to `from` as the destination's error, with what it probably means for this security
 * choice. A lost connection or a missing answer is a `TransportError`, which a migration that lost its
 * connection dials again after; an untrusted key, a peer that does not speak circuits and the rest fail the
 * operation at once.
 *
 * @since 0.1.0
 * @category errors
 */
export const dialFailure =
  (from: string, choice: Choice) =>
  (error: CircuitError.CircuitError): TransportError.TransportError | OperationFailed => {
    const reason = error.reason
    const tls = choice._tag === "Tls"
    switch (reason._tag) {
      case "Untrusted":
        return new OperationFailed({
          message: `${from}: ${reason.detail}${
            tls && choice.trust === "locked"
              ? "; --trust locked accepts only the keys listed there (the source prints its key when it starts)"
              : ""
          }`
        })
      case "ConnectionLost":
        if (error.operation === "connect") {
          // TCP connected but the TLS handshake did not finish: the other side does not speak TLS.
          const handshake = tls &&
            (reason.detail.startsWith("TLS: ") || reason.detail.includes("secure TLS connection"))
          return connectFailed(
            from,
            handshake
              ? `the TLS handshake failed (${
                reason.detail.replace(/^TLS: /, "")
              }): is the source running with --plaintext, or without --via-circuit?`
              : reason.detail
          )
        }
        return connectFailed(
          from,
          tls
            ? `the source closed the connection after the TLS handshake: it may not trust this host's key ${choice.publicKey} (one with --trust locked accepts only the keys in its known-keys file)`
            : `the source closed the connection (${reason.detail}): is it running with TLS (then leave out --plaintext), or without --via-circuit?`
        )
      case "Timeout":
        return connectFailed(from, `${reason.message}: is the source running with --via-circuit?`)
      case "ProtocolViolation":
        return new OperationFailed({
          message: `${from}: the source does not speak peer circuits${
            tls ? "" : " in plaintext"
          } (${reason.message}): is it running with --via-circuit${tls ? "" : " and --plaintext"}?`
        })
      default:
        return new OperationFailed({ message: `${from}: ${error.message}` })
    }
  }
