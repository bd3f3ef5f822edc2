/**
 * What a circuit connection runs on: a byte link whose received bytes are pushed to the frame reader as they
 * arrive. TCP sockets are driven straight from their reads, so a fragment is routed to its circuit in the
 * same event-loop turn it arrived in, as other multiplexers do: plain ones read into `ReadRegions` where the
 * runtime allows (no buffer allocated per read, and big reads; received payloads are views of the regions'
 * slabs, so holding one keeps its slab), TLS ones and other runtimes through 'data' events. Any other
 * `Transport.Connection` (Unix, memory) is pulled by a fiber. The reader never needs to stop a socket: flow
 * control bounds what each circuit may have in flight.
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Net from "node:net"
import * as Address from "../Address.ts"
import * as CircuitError from "../CircuitError.ts"
import type { Connection } from "../Transport.ts"
import * as TransportError from "../TransportError.ts"
import * as defaults from "./defaults.ts"
import * as ReadRegions from "./readRegions.ts"

/** A connection as the circuit machinery uses it. */
export interface Link {
  readonly remoteAddress: string
  readonly localAddress: string
  /**
   * Sends the chunks in order; completes when accepted, waiting for the OS buffer to drain when it is full. A
   * link that hands the bytes over during the call itself returns the `Effect.void` constant when no wait is
   * needed, which lets the writer go on without an Effect step.
   */
  readonly write: (chunks: ReadonlyArray<Uint8Array>) => Effect.Effect<void, TransportError.TransportError>
  readonly close: Effect.Effect<void>
  /** Delivers every received chunk to `onData`, in order, until the link ends; then says why. */
  readonly receive: (onData: (chunk: Uint8Array) => void) => Effect.Effect<string>
}

/** A `Transport.Connection` as a link, pulled by the calling fiber. */
export const fromConnection = (connection: Connection): Link => ({
  remoteAddress: connection.remoteAddress,
  localAddress: connection.localAddress,
  write: (chunks) => connection.write(chunks),
  close: connection.close,
  receive: (onData) =>
    Effect.gen(function*() {
      while (true) {
        const exit = yield* Effect.exit(connection.read)
        if (Exit.isFailure(exit)) {
          const error = Cause.findErrorOption(exit.cause)
          return error._tag === "Some" && !Cause.isDone(error.value)
            ? error.value.message
            : "the remote side ended the connection"
        }
        for (const chunk of exit.value) onData(chunk)
      }
    })
})

const tcpName = (host: string | undefined, port: number | undefined): string =>
  host === undefined || port === undefined ? "tcp://unknown" : Address.format(Address.tcp(host, port))

/** OpenSSL's reason for a TLS error (e.g. "wrong version number"), which its message buries in a dump. */
const tlsReason = (cause: Error): string | undefined => {
  const { code, reason } = cause as { readonly code?: unknown; readonly reason?: unknown }
  return typeof code === "string" && code.startsWith("ERR_SSL_") && typeof reason === "string" ? reason : undefined
}

/** A socket error for people. */
const describe = (cause: Error): string => {
  const reason = tlsReason(cause)
  return reason === undefined ? cause.message : `TLS: ${reason}`
}

/**
 * A connected socket as a link, read through `regions` when they are installed on it (else from 'data'
 * events); closing the scope destroys it.
 */
export const fromSocket = (
  socket: Net.Socket,
  regions: ReadRegions.ReadRegions | undefined
): Effect.Effect<Link, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync((): Link => {
      const remoteAddress = tcpName(socket.remoteAddress, socket.remotePort)
      let failure: TransportError.TransportError | undefined
      let ended: string | undefined
      const closed = () => failure ?? TransportError.make(remoteAddress, new TransportError.Closed())
      socket.on("error", (cause: Error) => {
        failure ??= TransportError.make(remoteAddress, new TransportError.Io({ operation: "write", cause }))
        ended ??= describe(cause)
      })
      socket.on("end", () => {
        ended ??= "the remote side ended the connection"
      })
      const drained = Effect.callback<void, TransportError.TransportError>((resume) => {
        if (socket.destroyed) return resume(Effect.fail(closed()))
        const onDrain = () => {
          socket.off("close", onClose)
          resume(Effect.void)
        }
        const onClose = () => {
          socket.off("drain", onDrain)
          resume(Effect.fail(closed()))
        }
        socket.once("drain", onDrain)
        socket.once("close", onClose)
        return Effect.sync(() => {
          socket.off("drain", onDrain)
          socket.off("close", onClose)
        })
      })
      return {
        remoteAddress,
        localAddress: tcpName(socket.localAddress, socket.localPort),
        // The bytes are handed to the socket when `write` is called; the effect is only the wait for room.
        write: (chunks) => {
          if (socket.destroyed || socket.writableEnded) return Effect.fail(closed())
          let accepted = true
          // Corking one chunk would only add a round through the socket's buffered list.
          if (chunks.length === 1) accepted = socket.write(chunks[0]!)
          else {
            socket.cork()
            for (const chunk of chunks) accepted = socket.write(chunk)
            socket.uncork()
          }
          return accepted ? Effect.void : drained
        },
        close: Effect.sync(() => socket.destroy()),
        receive: (onData) =>
          Effect.callback<string>((resume) => {
            let receiving = true
            // Regions deliver to one sink for good, so an ended receive stops passing chunks on instead.
            const deliver = (chunk: Uint8Array) => {
              if (receiving) onData(chunk)
            }
            const onClose = () => resume(Effect.succeed(ended ?? "the connection was closed"))
            if (regions === undefined) socket.on("data", deliver)
            else regions.attach(deliver)
            socket.once("close", onClose)
            if (socket.destroyed) onClose()
            else socket.resume()
            return Effect.sync(() => {
              receiving = false
              socket.off("data", deliver)
              socket.off("close", onClose)
            })
          })
      }
    }),
    (link) => link.close
  )

/** How a TCP family makes its sockets: plain `node:net`, or TLS. */
export interface Sockets {
  /**
   * Starts a connection; `ready` is the event that says it can be used, `regions` what the socket reads into
   * if not 'data' events.
   */
  readonly connect: (address: Address.Tcp) => {
    readonly socket: Net.Socket
    readonly ready: string
    readonly regions?: ReadRegions.ReadRegions | undefined
  }
  /** Makes an accepted socket that has not read yet read into regions, where the family can. */
  readonly install?: ((socket: Net.Socket) => ReadRegions.ReadRegions | undefined) | undefined
  /** A server whose `event` hands out sockets ready to use. */
  readonly server: () => { readonly server: Net.Server; readonly event: string }
  /** Whether an accepted or connected socket may be used (`undefined`), else why not. */
  readonly check: (socket: Net.Socket, address: string) => string | undefined
}

const DIAL_TIMEOUT = Duration.seconds(10)

const tcpAddress = (operation: string, input: string): Effect.Effect<Address.Tcp, CircuitError.CircuitError> => {
  const parsed = Address.parse(input)
  return parsed._tag === "Success" && parsed.success._tag === "Tcp"
    ? Effect.succeed(parsed.success)
    : Effect.fail(CircuitError.make(
      operation,
      new CircuitError.InvalidArgument({ detail: `expected a tcp://host:port address, got ${JSON.stringify(input)}` })
    ))
}

/** Dials a TCP link; a refused check destroys the socket and fails with `Untrusted`. */
export const dial = (sockets: Sockets, input: string): Effect.Effect<Link, CircuitError.CircuitError, Scope.Scope> =>
  Effect.gen(function*() {
    const address = yield* tcpAddress("connect", input)
    const lost = (detail: string) =>
      CircuitError.make("connect", new CircuitError.ConnectionLost({ address: input, detail }))
    let regions: ReadRegions.ReadRegions | undefined
    const connected = yield* Effect.callback<Net.Socket, CircuitError.CircuitError>((resume) => {
      const started = sockets.connect(address)
      const { socket, ready } = started
      regions = started.regions !== undefined && ReadRegions.isActive(socket, started.regions)
        ? started.regions
        : undefined
      socket.setNoDelay(true)
      socket.once("error", (cause: Error) => resume(Effect.fail(lost(describe(cause)))))
      socket.once(ready, () => {
        const refused = sockets.check(socket, input)
        if (refused !== undefined) {
          socket.destroy()
          return resume(Effect.fail(CircuitError.make("connect", new CircuitError.Untrusted({ detail: refused }))))
        }
        socket.removeAllListeners("error")
        // Nothing is read until the link's reader is attached.
        socket.pause()
        resume(Effect.succeed(socket))
      })
      return Effect.sync(() => socket.destroy())
    }).pipe(Effect.timeoutOrElse({ duration: DIAL_TIMEOUT, orElse: () => Effect.fail(lost("connect timed out")) }))
    return yield* fromSocket(connected, regions)
  })

/**
 * Listens for TCP links until the scope closes; sockets that fail the check, or their TLS handshake, are
 * destroyed at once, and `onRefused` is told why.
 */
export const listen = (sockets: Sockets, input: string, onRefused?: ((detail: string) => void) | undefined) =>
  Effect.gen(function*() {
    const address = yield* tcpAddress("listen", input)
    const pending = yield* Queue.bounded<Net.Socket, TransportError.TransportError>(defaults.BACKLOG)
    const { server, event } = sockets.server()
    yield* Effect.acquireRelease(
      Effect.callback<void, CircuitError.CircuitError>((resume) => {
        server.once("error", (cause: Error) =>
          resume(Effect.fail(
            CircuitError.make("listen", new CircuitError.InvalidArgument({ detail: `${input}: ${cause.message}` }))
          )))
        server.listen({ host: address.host, port: address.port, backlog: defaults.BACKLOG }, () => {
          server.removeAllListeners("error")
          // Errors after binding concern one connection (e.g. a failed handshake) and are handled there.
          server.on("error", () => {})
          resume(Effect.void)
        })
      }),
      () =>
        Effect.sync(() => {
          server.close()
          for (let taken = Queue.takeUnsafe(pending); taken !== undefined; taken = Queue.takeUnsafe(pending)) {
            if (Exit.isSuccess(taken)) taken.value.destroy()
            else break
          }
          Queue.failCauseUnsafe(pending, Cause.fail(TransportError.make(input, new TransportError.Closed())))
        })
    )
    server.on("tlsClientError", (cause: Error, socket: Net.Socket) => {
      const from = socket.remoteAddress === undefined ? "" : ` with ${tcpName(socket.remoteAddress, socket.remotePort)}`
      onRefused?.(
        (cause as { readonly code?: unknown }).code === "ECONNRESET"
          ? `the peer hung up during the TLS handshake${from} (it may not trust this host's key)`
          : `a TLS handshake${from} failed: ${tlsReason(cause) ?? cause.message}`
      )
    })
    server.on(event, (socket: Net.Socket) => {
      socket.on("error", () => {})
      socket.setNoDelay(true)
      const refused = sockets.check(socket, tcpName(socket.remoteAddress, socket.remotePort))
      if (refused !== undefined) {
        onRefused?.(`refused a connection: ${refused}`)
        return socket.destroy()
      }
      socket.pause()
      if (!Queue.offerUnsafe(pending, socket)) socket.destroy()
    })
    const bound = server.address() as Net.AddressInfo
    const accept: Effect.Effect<Link, TransportError.TransportError, Scope.Scope> = Effect.uninterruptibleMask((
      restore
    ) => Effect.flatMap(restore(Queue.take(pending)), (socket) => fromSocket(socket, sockets.install?.(socket))))
    return { address: Address.format(Address.tcp(address.host, bound.port)), accept }
  })

/** Plain TCP sockets, reading into regions where the runtime allows (fewer, bigger reads; no buffer per read). */
export const plain: Sockets = {
  connect: (address) => {
    const regions = new ReadRegions.ReadRegions()
    const socket = Net.connect({
      host: address.host,
      port: address.port,
      ...(ReadRegions.supported ? { onread: regions.onread } : {})
    })
    return { socket, ready: "connect", regions }
  },
  install: ReadRegions.install,
  server: () => ({ server: Net.createServer({ pauseOnConnect: true }), event: "connection" }),
  check: () => undefined
}
