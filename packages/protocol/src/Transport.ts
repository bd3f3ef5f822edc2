/**
 * Duplex byte streams, dialled or accepted, chosen by the address scheme (`tcp://`, `unix:`, `memory:`).
 *
 * A `Connection` moves bytes with end-to-end back-pressure in both directions:
 *
 * - `read` is pull-based and hands out every chunk received since the last pull as one batch (a big chunk per
 *   Effect step). When the consumer falls behind, the transport stops reading from the OS (or, in memory,
 *   blocks the writer), so the bytes held in this process stay bounded whatever the peer sends.
 * - `write` takes a batch of byte arrays and hands them to the OS as one gather write. It completes as soon as
 *   the bytes are accepted, and waits for the OS buffer to drain when it is full. The arrays are kept by
 *   reference until they are sent: do not modify them after `write`.
 *
 * Everything is scoped: closing the scope a connection or listener was made in destroys the socket (a
 * half-close is `end`). Every failure is a `TransportError` with a reason.
 *
 * @since 0.1.0
 */
import type * as Arr from "effect/Array"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Pull from "effect/Pull"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Address from "./Address.ts"
import * as defaults from "./internal/defaults.ts"
import * as MemoryTransport from "./MemoryTransport.ts"
import * as TcpTransport from "./TcpTransport.ts"
import * as TransportError from "./TransportError.ts"
import * as UnixTransport from "./UnixTransport.ts"

/**
 * One duplex byte stream.
 *
 * @since 0.1.0
 * @category models
 */
export interface Connection {
  /** The peer, as an address string (for logs and errors). */
  readonly remoteAddress: string
  /** This end, as an address string. */
  readonly localAddress: string
  /**
   * The chunks received since the last pull, in order (waits for at least one). Fails with `Cause.Done` at the
   * end of the peer's stream, after every byte before it was delivered.
   */
  readonly read: Pull.Pull<Arr.NonEmptyReadonlyArray<Uint8Array>, TransportError.TransportError>
  /**
   * Sends the arrays in order as one gather write; completes when the OS accepted them, or after its buffer
   * drained when it was full.
   */
  readonly write: (chunks: ReadonlyArray<Uint8Array>) => Effect.Effect<void, TransportError.TransportError>
  /** Bytes accepted by `write` that this process still holds (not yet handed to the OS, or unread in memory). */
  readonly queuedBytes: () => number
  /**
   * Asks for the stream's bytes from `position` on (counted from the first byte this connection received) to be
   * read from the OS straight into `target`, as many as fit and have not been read yet; they come out of `read`
   * as views of `target`. What was read before the request took effect arrives elsewhere as usual, so the
   * caller copies whatever is not already in place. A frame parser uses it to receive a big frame into memory
   * it reuses, instead of into fresh memory it would then copy from. Transports that cannot do it leave it out.
   */
  readonly receiveInto?: ((target: Uint8Array, position: number) => void) | undefined
  /**
   * Completes once every byte given to `write` so far has been copied out of the arrays (into the OS), so
   * the caller may change or reuse them. Transports that hand the arrays themselves to the peer (memory
   * pipes) leave it out: there the peer keeps them.
   */
  readonly written?: Effect.Effect<void, TransportError.TransportError> | undefined
  /** Half-closes: the peer reads to the end of what was written, then sees the end of the stream. */
  readonly end: Effect.Effect<void, TransportError.TransportError>
  /** Destroys the connection now; pending and later reads and writes fail with `Closed`. */
  readonly close: Effect.Effect<void>
}

/**
 * A bound listener. Connections that arrive while nobody is accepting wait in a bounded backlog; beyond it
 * they are refused.
 *
 * @since 0.1.0
 * @category models
 */
export interface Listener {
  /** The address actually bound (a TCP port 0 is replaced by the port the OS chose). */
  readonly address: Address.Address
  /** Waits for the next connection; it lives in the caller's scope. Fails with `Closed` once the listener is. */
  readonly accept: Effect.Effect<Connection, TransportError.TransportError, Scope.Scope>
}

/**
 * Options for `dial`.
 *
 * @since 0.1.0
 * @category models
 */
export interface DialOptions {
  /** How long to wait for the connection to be established; default 10 seconds. */
  readonly timeout?: Duration.Input | undefined
  /** Received bytes held before reading from the OS pauses; default {@link DEFAULT_READ_BUFFER}. */
  readonly readBuffer?: number | undefined
  /** When a waiting reader is woken; default `"turn"` (see {@link ReadWake}). */
  readonly readWake?: ReadWake | undefined
}

/**
 * When a socket's waiting reader is woken. `"turn"`: once per turn of the event loop, with everything that
 * arrived in it, which suits streams (fewer wake-ups, bigger batches). `"read"`: by the read that brings the
 * bytes, in its callback, which suits protocols with one request at a time (the answer leaves a turn of the
 * loop earlier); events of the same turn that follow (the peer's end, a reset) then reach the reader after
 * those bytes rather than with them. In-process connections have one way only.
 *
 * @since 0.1.0
 * @category models
 */
export type ReadWake = "turn" | "read"

/**
 * Options for `listen`.
 *
 * @since 0.1.0
 * @category models
 */
export interface ListenOptions {
  /** Connections that may wait to be accepted; default 128 (beyond it they are refused). */
  readonly backlog?: number | undefined
  /** Received bytes held per accepted connection before reading pauses; default {@link DEFAULT_READ_BUFFER}. */
  readonly readBuffer?: number | undefined
  /** When an accepted connection's waiting reader is woken; default `"turn"` (see {@link ReadWake}). */
  readonly readWake?: ReadWake | undefined
}

/**
 * Default bytes a connection holds for a slow reader before it stops reading from the OS: enough for a few
 * 1 MiB frames, so a fast reader never stalls the socket.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_READ_BUFFER: number = defaults.READ_BUFFER

/**
 * The implementation of one address scheme.
 *
 * @since 0.1.0
 * @category models
 */
export interface Driver<A extends Address.Address> {
  readonly dial: (
    address: A,
    options: DialOptions
  ) => Effect.Effect<Connection, TransportError.TransportError, Scope.Scope>
  readonly listen: (
    address: A,
    options: ListenOptions
  ) => Effect.Effect<Listener, TransportError.TransportError, Scope.Scope>
}

/**
 * The drivers a `Transport` routes to, by address kind. A missing one makes addresses of that scheme fail
 * with `Unsupported`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Drivers {
  readonly Tcp?: Driver<Address.Tcp> | undefined
  readonly Unix?: Driver<Address.Unix> | undefined
  readonly Memory?: Driver<Address.Memory> | undefined
}

/**
 * The operations of the `Transport` service. Addresses are parsed when given as strings.
 *
 * @since 0.1.0
 * @category models
 */
export interface TransportShape {
  readonly dial: (
    address: Address.Address | string,
    options?: DialOptions
  ) => Effect.Effect<Connection, TransportError.TransportError | Address.AddressError, Scope.Scope>
  readonly listen: (
    address: Address.Address | string,
    options?: ListenOptions
  ) => Effect.Effect<Listener, TransportError.TransportError | Address.AddressError, Scope.Scope>
}

const SCHEMES = { Tcp: "tcp://", Unix: "unix:", Memory: "memory:" } as const

/**
 * A `Transport` that routes every address to the driver for its scheme.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (drivers: Drivers): TransportShape => {
  const route = <R>(
    input: Address.Address | string,
    use: <A extends Address.Address>(
      driver: Driver<A>,
      address: A
    ) => Effect.Effect<R, TransportError.TransportError, Scope.Scope>
  ): Effect.Effect<R, TransportError.TransportError | Address.AddressError, Scope.Scope> =>
    Effect.flatMap(
      typeof input === "string" ? Address.parseEffect(input) : Effect.succeed(input),
      (address): Effect.Effect<R, TransportError.TransportError, Scope.Scope> => {
        const driver = drivers[address._tag] as Driver<typeof address> | undefined
        return driver === undefined
          ? Effect.fail(
            TransportError.make(
              Address.format(address),
              new TransportError.Unsupported({ scheme: SCHEMES[address._tag] })
            )
          )
          : use(driver, address)
      }
    )
  return {
    dial: (address, options = {}) => route(address, (driver, a) => driver.dial(a, options)),
    listen: (address, options = {}) => route(address, (driver, a) => driver.listen(a, options))
  }
}

/**
 * The transport a program dials and listens with.
 *
 * @since 0.1.0
 * @category services
 */
export class Transport extends Context.Service<Transport, TransportShape>()("@tessera/protocol/Transport") {
  /** TCP and Unix sockets through `node:net`, and in-process pipes (private to this layer instance). */
  static readonly layer: Layer.Layer<Transport> = Layer.effect(
    Transport,
    Effect.map(
      MemoryTransport.make(),
      (memory) => make({ Tcp: TcpTransport.driver, Unix: UnixTransport.driver, Memory: memory })
    )
  )
  /** In-process pipes only: for tests and single-process simulations; other schemes fail with `Unsupported`. */
  static readonly layerMemory: Layer.Layer<Transport> = Layer.effect(
    Transport,
    Effect.map(MemoryTransport.make(), (memory) => make({ Memory: memory }))
  )
}

/**
 * Dials an address with the current `Transport`.
 *
 * @since 0.1.0
 * @category accessors
 */
export const dial = (
  address: Address.Address | string,
  options?: DialOptions
): Effect.Effect<Connection, TransportError.TransportError | Address.AddressError, Transport | Scope.Scope> =>
  Effect.flatMap(Transport, (transport) => transport.dial(address, options))

/**
 * Listens on an address with the current `Transport`.
 *
 * @since 0.1.0
 * @category accessors
 */
export const listen = (
  address: Address.Address | string,
  options?: ListenOptions
): Effect.Effect<Listener, TransportError.TransportError | Address.AddressError, Transport | Scope.Scope> =>
  Effect.flatMap(Transport, (transport) => transport.listen(address, options))

/**
 * The bytes a connection receives, as a stream of chunks that ends with the peer's stream. Pulling is what
 * reads, so a slow consumer back-pressures the peer.
 *
 * @since 0.1.0
 * @category combinators
 */
export const stream = (connection: Connection): Stream.Stream<Uint8Array, TransportError.TransportError> =>
  Stream.fromPull(Effect.succeed(connection.read))
