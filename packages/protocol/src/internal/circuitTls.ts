/**
 * TLS 1.3 connections for peer hosts through `node:tls`: both sides present their Ed25519 certificate, and
 * each checks the other's key against its `Trust` right after the handshake, before a byte of the connection is
 * read (certificate chains are not used: see `PeerIdentity`). The sockets are then wrapped as ordinary
 * `Transport.Connection`s. TCP addresses only.
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Queue from "effect/Queue"
import * as Result from "effect/Result"
import type * as Scope from "effect/Scope"
import type * as Net from "node:net"
import * as Tls from "node:tls"
import * as Address from "../Address.ts"
import * as CircuitError from "../CircuitError.ts"
import * as PeerIdentity from "../PeerIdentity.ts"
import type { Connection } from "../Transport.ts"
import * as TransportError from "../TransportError.ts"
import type { Connector } from "./circuitHost.ts"
import * as defaults from "./defaults.ts"
import * as NetConnection from "./netConnection.ts"

const DIAL_TIMEOUT = Duration.seconds(10)

const tcpName = (host: string | undefined, port: number | undefined): string =>
  host === undefined || port === undefined ? "tcp://unknown" : Address.format(Address.tcp(host, port))

const peerKey = (socket: Tls.TLSSocket): string | undefined => {
  const certificate = socket.getPeerX509Certificate()
  return certificate === undefined ? undefined : PeerIdentity.keyText(certificate.publicKey)
}

const tcpAddress = (operation: string, input: string): Result.Result<Address.Tcp, CircuitError.CircuitError> => {
  const parsed = Address.parse(input)
  if (Result.isSuccess(parsed) && parsed.success._tag === "Tcp") return Result.succeed(parsed.success)
  return Result.fail(CircuitError.make(
    operation,
    new CircuitError.InvalidArgument({ detail: `TLS needs a tcp://host:port address, got ${JSON.stringify(input)}` })
  ))
}

const wrap = (socket: Tls.TLSSocket) =>
  NetConnection.make(
    socket as Net.Socket,
    tcpName(socket.remoteAddress, socket.remotePort),
    tcpName(socket.localAddress, socket.localPort),
    defaults.READ_BUFFER,
    undefined
  )

/**
 * The TLS connector of a host with this identity and trust.
 */
export const connector = (identity: PeerIdentity.Identity, trust: PeerIdentity.Trust): Connector => {
  const secure = {
    key: identity.privateKeyPem,
    cert: identity.certificatePem,
    minVersion: "TLSv1.3" as Tls.SecureVersion,
    // Authentication is the known-keys check below, not a certificate chain.
    rejectUnauthorized: false
  }
  return {
    dial: (input) =>
      Effect.gen(function*() {
        const address = yield* Effect.fromResult(tcpAddress("connect", input))
        const lost = (detail: string) =>
          CircuitError.make("connect", new CircuitError.ConnectionLost({ address: input, detail }))
        const connected = yield* Effect.callback<Tls.TLSSocket, CircuitError.CircuitError>((resume) => {
          const socket = Tls.connect({
            ...secure,
            host: address.host,
            port: address.port,
            servername: "localhost"
          })
          socket.setNoDelay(true)
          socket.once("error", (cause: Error) => resume(Effect.fail(lost(cause.message))))
          socket.once("secureConnect", () => {
            const refused = PeerIdentity.check(trust, input, peerKey(socket))
            if (refused !== undefined) {
              socket.destroy()
              return resume(Effect.fail(CircuitError.make("connect", new CircuitError.Untrusted({ detail: refused }))))
            }
            socket.removeAllListeners("error")
            resume(Effect.succeed(socket))
          })
          return Effect.sync(() => socket.destroy())
        }).pipe(Effect.timeoutOrElse({
          duration: DIAL_TIMEOUT,
          orElse: () => Effect.fail(lost("TLS connect timed out"))
        }))
        return yield* wrap(connected)
      }),
    listen: (input) =>
      Effect.gen(function*() {
        const address = yield* Effect.fromResult(tcpAddress("listen", input))
        const pending = yield* Queue.bounded<Tls.TLSSocket, TransportError.TransportError>(defaults.BACKLOG)
        const server = yield* Effect.acquireRelease(
          Effect.callback<Tls.Server, CircuitError.CircuitError>((resume) => {
            const created = Tls.createServer({ ...secure, requestCert: true, allowHalfOpen: true })
            created.once("error", (cause: Error) =>
              resume(Effect.fail(
                CircuitError.make("listen", new CircuitError.InvalidArgument({ detail: `${input}: ${cause.message}` }))
              )))
            created.listen({ host: address.host, port: address.port, backlog: defaults.BACKLOG }, () => {
              created.removeAllListeners("error")
              // Errors after binding concern one connection (e.g. a failed handshake) and are handled there.
              created.on("error", () => {})
              resume(Effect.succeed(created))
            })
          }),
          (bound) =>
            Effect.sync(() => {
              bound.close()
              for (let taken = Queue.takeUnsafe(pending); taken !== undefined; taken = Queue.takeUnsafe(pending)) {
                if (Exit.isSuccess(taken)) taken.value.destroy()
                else break
              }
              Queue.failCauseUnsafe(pending, Cause.fail(TransportError.make(input, new TransportError.Closed())))
            })
        )
        server.on("tlsClientError", () => {})
        server.on("secureConnection", (socket: Tls.TLSSocket) => {
          socket.on("error", () => {})
          socket.setNoDelay(true)
          const from = tcpName(socket.remoteAddress, socket.remotePort)
          if (PeerIdentity.check(trust, from, peerKey(socket)) !== undefined) return socket.destroy()
          // Nothing is read until `accept` wraps the socket.
          socket.pause()
          if (!Queue.offerUnsafe(pending, socket)) socket.destroy()
        })
        const bound = server.address() as Net.AddressInfo
        const accept: Effect.Effect<Connection, TransportError.TransportError, Scope.Scope> = Effect
          .uninterruptibleMask((restore) => Effect.flatMap(restore(Queue.take(pending)), wrap))
        return { address: Address.format(Address.tcp(address.host, bound.port)), accept }
      })
  }
}
