/**
 * The peer service host: register peer services, listen and dial, start local peers, start peers on a remote
 * host, and open circuits (the rpc25519 Peer/Circuit/Fragment model, specs/circuits.md §1). Listening and
 * dialling hosts are the same thing: a host may do both, services registered on it answer on every connection,
 * and the same service code runs whichever side dialled.
 *
 * - **Connections** are made on demand: opening a circuit to a peer URL uses a live connection to its address
 *   (dialled, accepted, or announced by the remote host) or dials one. `connect` with `reconnect: true` keeps a
 *   dialled connection coming back after it broke; circuits on a broken connection end with `ConnectionLost`
 *   and are not resurrected, but local peers stay up and new circuits use the new connection.
 * - **Security**: TLS 1.3 with Ed25519 identities and known-keys pinning by default (`security: Tls`, see
 *   `PeerIdentity`); plaintext only when asked for (`security: { _tag: "Plaintext" }`), through the `Transport`
 *   (so `memory:` and `unix:` work too). A listener logs a warning for every connection it refuses (a key it
 *   does not trust, a failed TLS handshake) and goes on listening.
 * - **Limits**: `register(name, fn, { max })` caps the running instances of a service; starting one more
 *   locally fails with `LimitReached`, remotely the request is rejected with `#Limited...` args.
 * - **Flow control** (see `Circuit`): each circuit has a receive window (`window`, 8 MiB by default); a sender
 *   waits for credit, or with `sendTimeout` fails after that long. The connection's send queue holds
 *   `sendQueue` frames (256 by default) and the sender waits for room the same way. Nothing is dropped.
 *
 * Everything lives in the scope the host was made in: closing it closes every peer (their circuits tell the
 * remote sides), flushes for up to a second, and closes the connections.
 *
 * @since 0.1.0
 */
import * as CircuitFragment from "@tessera/codec/CircuitFragment"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Result from "effect/Result"
import * as Scope from "effect/Scope"
import * as Address from "./Address.ts"
import * as CircuitError from "./CircuitError.ts"
import * as CircuitHost from "./internal/circuitHost.ts"
import * as CircuitLink from "./internal/circuitLink.ts"
import * as CircuitTls from "./internal/circuitTls.ts"
import type * as Peer from "./Peer.ts"
import type * as PeerIdentity from "./PeerIdentity.ts"
import * as PeerUrl from "./PeerUrl.ts"
import * as Transport from "./Transport.ts"

/**
 * How connections are secured.
 *
 * @since 0.1.0
 * @category models
 */
export type Security =
  | { readonly _tag: "Plaintext" }
  | {
    readonly _tag: "Tls"
    /** This host's Ed25519 identity. */
    readonly identity: PeerIdentity.Identity
    /** Which remote keys to accept. */
    readonly trust: PeerIdentity.Trust
  }

/**
 * Options of a host.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly security: Security
  /** A name for logs and errors. */
  readonly name?: string | undefined
  /** Bytes a circuit may hold unread before its sender waits; default 8 MiB. */
  readonly window?: number | undefined
  /** Largest payload of one fragment; default 4 MiB (also the most a peer may send us). */
  readonly maxPayload?: number | undefined
  /** Frames a connection's send queue holds before senders wait; default 256. */
  readonly sendQueue?: number | undefined
  /** How long a send may wait for room before it fails with `SendTimeout`; default: wait as long as it takes. */
  readonly sendTimeout?: Duration.Input | undefined
  /** How long to wait for the remote host to confirm a start; default 10 seconds. */
  readonly ackTimeout?: Duration.Input | undefined
  /** Delay between attempts of a reconnecting dial; default 200 ms. */
  readonly reconnectDelay?: Duration.Input | undefined
}

/**
 * Options of `register`.
 *
 * @since 0.1.0
 * @category models
 */
export interface RegisterOptions {
  /** Most instances of the service that may run at once. */
  readonly max?: number | undefined
  /** The service's version string, sent with its fragments. */
  readonly version?: string | undefined
}

/**
 * Options of `startLocalPeer`.
 *
 * @since 0.1.0
 * @category models
 */
export interface StartOptions {
  /** A human name; default `<service>-<first 8 characters of the ID>`. */
  readonly name?: string | undefined
  /** Return the running instance if there is one. */
  readonly preferExisting?: boolean | undefined
}

/**
 * The operations of a host.
 *
 * @since 0.1.0
 * @category models
 */
export interface PeerServiceShape {
  /** Registers (or replaces) the function run by instances of a service. */
  readonly register: (
    name: string,
    fn: Peer.PeerServiceFunc,
    options?: RegisterOptions
  ) => Effect.Effect<void, CircuitError.CircuitError>
  /** Accepts connections on an address until the calling scope closes; gives the bound address. */
  readonly listen: (address: string) => Effect.Effect<string, CircuitError.CircuitError, Scope.Scope>
  /** Dials an address now; with `reconnect`, dials again whenever that connection breaks. */
  readonly connect: (
    address: string,
    options?: { readonly reconnect?: boolean | undefined }
  ) => Effect.Effect<void, CircuitError.CircuitError>
  /** Starts an instance of a registered service here. */
  readonly startLocalPeer: (
    service: string,
    options?: StartOptions
  ) => Effect.Effect<Peer.LocalPeer, CircuitError.CircuitError>
  /** The running instances of a service. */
  readonly localPeers: (service: string) => ReadonlyArray<Peer.LocalPeer>
  /** Starts an instance of `service` on the host at `address` (a new one each call). */
  readonly startRemotePeer: (
    service: string,
    address: string,
    options?: { readonly timeout?: Duration.Input | undefined }
  ) => Effect.Effect<{ readonly url: string; readonly peerId: string }, CircuitError.CircuitError>
  /** The address this host's peers put in their URLs. */
  readonly address: () => string
  /** Connections open now. */
  readonly connectionCount: () => number
  /** Closes every peer and connection (also done when the scope closes). */
  readonly close: Effect.Effect<void>
}

/**
 * Makes a host in the current scope. Plaintext hosts connect through the `Transport`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fn("PeerService.make")(function*(options: Options) {
  const transport = yield* Transport.Transport
  const services = yield* Effect.context<never>()
  const parent = yield* Effect.scope
  const scope = yield* Scope.fork(parent)
  const runFork = Effect.runForkWith(services)
  // Plain TCP links are driven by their sockets' events; other schemes (unix:, memory:) through the Transport.
  const connector: CircuitHost.Connector = options.security._tag === "Plaintext"
    ? {
      dial: (address) =>
        address.startsWith("tcp://")
          ? CircuitLink.dial(CircuitLink.plain, address)
          : Effect.mapBoth(transport.dial(address), {
            onFailure: (error) =>
              CircuitError.make("connect", new CircuitError.ConnectionLost({ address, detail: error.message })),
            onSuccess: CircuitLink.fromConnection
          }),
      listen: (address, onRefused) =>
        address.startsWith("tcp://")
          ? CircuitLink.listen(CircuitLink.plain, address, onRefused)
          : Effect.mapBoth(transport.listen(address), {
            onFailure: (error) =>
              CircuitError.make("listen", new CircuitError.InvalidArgument({ detail: error.message })),
            onSuccess: (listener) => ({
              address: Address.format(listener.address),
              accept: Effect.map(listener.accept, CircuitLink.fromConnection)
            })
          })
    }
    : CircuitTls.connector(options.security.identity, options.security.trust)
  const window = Math.max(options.window ?? 8 * 1024 * 1024, CircuitHost.INITIAL_WINDOW)
  const host = new CircuitHost.Host(
    {
      name: options.name ?? "peer-host",
      window,
      maxPayload: options.maxPayload ?? 4 * 1024 * 1024,
      sendQueue: Math.max(1, options.sendQueue ?? 256),
      sendTimeout: options.sendTimeout === undefined ? undefined : Duration.fromInputUnsafe(options.sendTimeout),
      ackTimeout: Duration.fromInputUnsafe(options.ackTimeout ?? Duration.seconds(10)),
      reconnectDelay: Duration.fromInputUnsafe(options.reconnectDelay ?? Duration.millis(200))
    },
    connector,
    scope,
    (effect) => runFork(effect)
  )
  yield* Scope.addFinalizer(parent, host.shutdown())

  const shape: PeerServiceShape = {
    register: (name, fn, registerOptions) =>
      Effect.suspend(() => {
        if (!PeerUrl.isServiceName(name)) return invalid("register", `${JSON.stringify(name)} is not a service name`)
        const max = registerOptions?.max
        if (max !== undefined && !(Number.isInteger(max) && max >= 1)) {
          return invalid("register", "max must be a positive integer")
        }
        host.register(name, fn, max, registerOptions?.version ?? "")
        return Effect.void
      }),
    listen: (address) =>
      Effect.gen(function*() {
        // A refused connection (an untrusted key, a failed TLS handshake) is logged; the listener goes on.
        let bound = address
        const listener = yield* connector.listen(address, (detail) => {
          host.run(Effect.logWarning(`${bound}: ${detail}`))
        })
        bound = listener.address
        host.listening.push(listener.address)
        yield* Effect.addFinalizer(() =>
          Effect.sync(() => {
            const at = host.listening.indexOf(listener.address)
            if (at >= 0) host.listening.splice(at, 1)
          })
        )
        const acceptOne = Effect.gen(function*() {
          const wireScope = yield* Scope.fork(host.scope)
          const exit = yield* Effect.exit(Scope.provide(listener.accept, wireScope))
          if (Exit.isFailure(exit)) {
            yield* Scope.close(wireScope, Exit.void)
            return yield* Effect.failCause(exit.cause)
          }
          host.attach(exit.value, wireScope, "")
        })
        // A failed handshake (e.g. an untrusted TLS key) loses that connection only; a closed listener ends it.
        yield* Effect.forkScoped(
          Effect.forever(Effect.catch(acceptOne, (error) => isClosedListener(error) ? Effect.interrupt : Effect.void))
        )
        return listener.address
      }),
    connect: (address, connectOptions) =>
      Effect.suspend(() => {
        if (connectOptions?.reconnect === true) host.reconnecting.add(address)
        return Effect.asVoid(host.wireTo(address))
      }),
    startLocalPeer: (service, startOptions) =>
      Effect.suspend(() => {
        if (startOptions?.preferExisting === true) {
          const existing = host.running(service)[0]
          if (existing !== undefined) return Effect.succeed(existing)
        }
        const started = host.start(service, undefined, startOptions?.name)
        return Result.isSuccess(started)
          ? Effect.succeed<Peer.LocalPeer>(started.success)
          : Effect.fail(CircuitError.make("startLocalPeer", started.failure))
      }),
    localPeers: (service) => host.running(service),
    startRemotePeer: (service, address, startOptions) =>
      Effect.gen(function*() {
        const wire = yield* host.wireTo(address)
        const token = PeerUrl.newId()
        const deferred = wire.expect(token)
        wire.control({
          ...CircuitFragment.empty,
          kind: CircuitFragment.Kind.PeerStart,
          circuitId: token,
          toService: service,
          args: { "#fromURL": `${host.advertised()}/${service}/` }
        })
        const timeout = Duration.fromInputUnsafe(startOptions?.timeout ?? host.options.ackTimeout)
        const answer = yield* wire.await(deferred, token, "startRemotePeer", timeout)
        if (answer.err !== "") {
          return yield* Effect.fail(
            CircuitError.make("startRemotePeer", new CircuitError.Rejected({ detail: answer.err, args: answer.args }))
          )
        }
        return { url: answer.args["#peerURL"] ?? "", peerId: answer.args["#peerID"] ?? "" }
      }),
    address: () => host.advertised(),
    connectionCount: () => host.wires.size,
    close: host.shutdown()
  }
  return shape
})

const invalid = (operation: string, detail: string) =>
  Effect.fail(CircuitError.make(operation, new CircuitError.InvalidArgument({ detail })))

const isClosedListener = (error: unknown): boolean =>
  typeof error === "object" && error !== null && "reason" in error &&
  (error as { readonly reason: { readonly _tag?: string } }).reason._tag === "Closed"

/**
 * The peer service host of a program.
 *
 * @since 0.1.0
 * @category services
 */
export class PeerService extends Context.Service<PeerService, PeerServiceShape>()("@tessera/protocol/PeerService") {
  /** A host with these options; it needs a `Transport` (used for plaintext connections). */
  static readonly layer = (options: Options): Layer.Layer<PeerService, never, Transport.Transport> =>
    Layer.effect(PeerService, make(options))
}
