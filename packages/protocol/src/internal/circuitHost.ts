/**
 * The machinery behind `PeerService`: one host with its registered services, local peers and connections
 * ("wires"). Each wire's reader parses frames and routes them without ever waiting, in the event-loop turn
 * they arrived in (a fragment a user fiber waits for resumes it there and then). A sender that finds the
 * wire's writer turn free writes its frame to the socket in the step it sends; the wire's writer fiber only
 * writes what the reader queued (acknowledgements, window updates) and what waited for the socket to drain.
 *
 * Flow control is per circuit, in bytes (payload + FRAME_COST): a sender starts with INITIAL_WINDOW of credit;
 * each side announces its window (`#window`) when a circuit starts and in the confirmation; the receiver gives
 * credit back with WindowUpdate frames as its user takes fragments. A sender waits while its credit is not
 * positive, so a receiver holds at most its window plus one fragment per circuit, and the reader never blocks:
 * a slow reader on one circuit stalls only that circuit's sender. A peer that sends past the window broke the
 * protocol; that circuit is closed with `ProtocolViolation`, the others go on.
 */
import * as CircuitFragment from "@tessera/codec/CircuitFragment"
import type * as Arr from "effect/Array"
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import type * as Pull from "effect/Pull"
import * as Result from "effect/Result"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as Circuit from "../Circuit.ts"
import { validate } from "../Circuit.ts"
import * as CircuitError from "../CircuitError.ts"
import type * as Peer from "../Peer.ts"
import * as PeerUrl from "../PeerUrl.ts"
import type * as TransportError from "../TransportError.ts"
import type { Link } from "./circuitLink.ts"
import { frameBytes, Inbox, INLINE_PAYLOAD, Outbox, type OutFrame, type Unwritten } from "./circuitQueues.ts"

const Kind = CircuitFragment.Kind

/** Credit every circuit starts with before the other side announced its window. */
export const INITIAL_WINDOW = 256 * 1024
/** What a fragment costs in credit on top of its payload, so empty fragments are bounded too. */
export const FRAME_COST = 128
const MAX_WINDOW = 1024 * 1024 * 1024

/** Opens connections for a host: plaintext through the `Transport`, or TLS. */
export interface Connector {
  readonly dial: (address: string) => Effect.Effect<Link, CircuitError.CircuitError, Scope.Scope>
  /** `onRefused` hears of connections refused before they were handed out (an untrusted key, a failed handshake). */
  readonly listen: (address: string, onRefused?: ((detail: string) => void) | undefined) => Effect.Effect<
    { readonly address: string; readonly accept: Effect.Effect<Link, unknown, Scope.Scope> },
    CircuitError.CircuitError,
    Scope.Scope
  >
}

export interface HostOptions {
  readonly name: string
  readonly window: number
  readonly maxPayload: number
  readonly sendQueue: number
  readonly sendTimeout: Duration.Duration | undefined
  readonly ackTimeout: Duration.Duration
  readonly reconnectDelay: Duration.Duration
}

interface Registration {
  readonly fn: Peer.PeerServiceFunc
  readonly max: number | undefined
  readonly version: string
}

let serialCounter = 0
const nextSerial = (): number => ++serialCounter

const costOf = (payload: Uint8Array): number => payload.length + FRAME_COST

const windowArg = (fragment: CircuitFragment.Fragment): number => {
  const value = Number(fragment.args["#window"])
  return Number.isInteger(value) && value >= INITIAL_WINDOW && value <= MAX_WINDOW ? value : INITIAL_WINDOW
}

const failWith = (operation: string, reason: CircuitError.CircuitError["reason"]) =>
  Effect.fail(CircuitError.make(operation, reason))

/**
 * A frame to send from an encoded address and the other fields; a small payload is copied in. A user's
 * fragment counts its payload in its circuit's `unwritten` bytes.
 */
const outFrameWith = (
  address: Uint8Array,
  body: CircuitFragment.BodyFields,
  unwritten?: Unwritten | undefined
): OutFrame => {
  const inline = body.payload.length <= INLINE_PAYLOAD
  return {
    header: CircuitFragment.encodeWith(address, body, inline, frameBytes),
    payload: inline ? EMPTY : body.payload,
    unwritten,
    bytes: unwritten === undefined ? 0 : body.payload.length
  }
}

const outFrame = (fragment: CircuitFragment.Fragment): OutFrame =>
  outFrameWith(CircuitFragment.encodeAddress(fragment), fragment)

// --- circuits --------------------------------------------------------------------------------------------------

class RemoteInfo implements Peer.RemotePeer {
  peerId: string
  peerName: string
  service: string
  serviceVersion: string
  url: string
  constructor(peerId: string, peerName: string, service: string, serviceVersion: string, url: string) {
    this.peerId = peerId
    this.peerName = peerName
    this.service = service
    this.serviceVersion = serviceVersion
    this.url = url
  }
}

class CircuitImpl implements Circuit.Circuit {
  readonly id: string
  readonly name: string
  readonly peer: PeerImpl
  readonly wire: Wire
  readonly remote: RemoteInfo
  readonly userString: string
  readonly reads: Stream.Stream<Circuit.Fragment, CircuitError.CircuitError>
  readonly errors: Stream.Stream<Circuit.Fragment, CircuitError.CircuitError>
  readonly read: Effect.Effect<Circuit.Fragment, CircuitError.CircuitError>
  readonly closed: Effect.Effect<CircuitError.CloseReason>

  readonly #reads = new Inbox<Circuit.Fragment>()
  readonly #errors = new Inbox<Circuit.Fragment>()
  readonly #done = Deferred.makeUnsafe<CircuitError.CloseReason>()
  #reason: CircuitError.CloseReason | undefined
  #credit = INITIAL_WINDOW
  readonly #creditWaiters: Array<() => void> = []
  #received = 0
  #allowed: number
  #unreported = 0
  #encoded: Uint8Array = EMPTY
  #encodedFor: string | undefined
  /** Payload bytes of user sends not written to the connection yet (see `enqueue` and the outbox). */
  readonly #unwritten: Unwritten = { bytes: 0 }

  constructor(peer: PeerImpl, wire: Wire, id: string, name: string, remote: RemoteInfo, userString: string) {
    this.peer = peer
    this.wire = wire
    this.id = id
    this.name = name
    this.remote = remote
    this.userString = userString
    this.#allowed = peer.host.options.window
    this.reads = this.#stream(this.#reads)
    this.errors = this.#stream(this.#errors)
    this.read = Effect.flatMap(this.#reads.takeOne, (fragment) => {
      if (fragment !== undefined) {
        this.#consumed(fragment)
        return Effect.succeed(fragment)
      }
      return failWith("read", this.#reason ?? new CircuitError.LocalClose({ detail: "" }))
    })
    this.closed = Deferred.await(this.#done)
  }

  get localPeer(): Peer.LocalPeer {
    return this.peer
  }

  get url(): string {
    return `${this.remote.url}/${this.id}`
  }

  isClosed(): boolean {
    return this.#reason !== undefined
  }

  unwrittenBytes(): number {
    return this.#unwritten.bytes
  }

  #stream(inbox: Inbox<Circuit.Fragment>): Stream.Stream<Circuit.Fragment, CircuitError.CircuitError> {
    const pull = Effect.flatMap(inbox.takeAll, (
      batch
    ): Pull.Pull<Arr.NonEmptyReadonlyArray<Circuit.Fragment>, CircuitError.CircuitError> => {
      if (batch !== undefined) {
        for (const fragment of batch) this.#consumed(fragment)
        return Effect.succeed(batch)
      }
      const reason = this.#reason
      return reason === undefined || CircuitError.isOrderly(reason)
        ? Cause.done()
        : failWith("read", reason)
    })
    return Stream.fromPull(Effect.succeed(pull))
  }

  /** The user took a fragment: give its credit back in batches of a quarter window. */
  #consumed(fragment: Circuit.Fragment): void {
    if (this.#reason !== undefined) return
    this.#unreported += costOf(fragment.payload)
    if (this.#unreported < this.peer.host.options.window / 4) return
    const credit = this.#unreported
    this.#unreported = 0
    this.#allowed += credit
    this.wire.controlFrame(this.#out(Kind.WindowUpdate, { fragPart: credit }))
  }

  /** The other side's window, learnt from its start or its confirmation. */
  setRemoteWindow(window: number): void {
    this.#credit += window - INITIAL_WINDOW
    this.#wakeSenders()
  }

  addCredit(credit: number): void {
    this.#credit += credit
    this.#wakeSenders()
  }

  #wakeSenders(): void {
    const waiters = this.#creditWaiters.splice(0, this.#creditWaiters.length)
    for (const wake of waiters) wake()
  }

  /** A frame for this circuit arrived; false when it overran the window (the circuit is then closed). */
  deliver(fragment: CircuitFragment.Fragment): void {
    if (this.#reason !== undefined) return
    this.#received += costOf(fragment.payload)
    if (this.#received > this.#allowed + this.peer.host.options.maxPayload + FRAME_COST) {
      this.finish(
        new CircuitError.ProtocolViolation({
          detail: `circuit ${this.id}: the sender overran the flow-control window`
        }),
        true
      )
      return
    }
    if (fragment.kind === Kind.Error) this.#errors.push(fragment)
    else this.#reads.push(fragment)
  }

  #address(kind: CircuitFragment.Kind): CircuitFragment.Fragment {
    return {
      ...CircuitFragment.empty,
      kind,
      fromPeerId: this.peer.id,
      fromService: this.peer.service,
      toPeerId: this.remote.peerId,
      toService: this.remote.service,
      circuitId: this.id,
      serial: nextSerial()
    }
  }

  /** The encoded address of this circuit's frames, made again when the remote PeerID is learnt. */
  #addressBytes(): Uint8Array {
    if (this.#encodedFor !== this.remote.peerId) {
      this.#encodedFor = this.remote.peerId
      this.#encoded = CircuitFragment.encodeAddress(this.#address(Kind.Traffic))
    }
    return this.#encoded
  }

  /** A frame of this circuit, encoded (the address bytes are shared by all of them); `user` for user sends. */
  #out(kind: CircuitFragment.Kind, init: Circuit.FragmentInit, user = false): OutFrame {
    return outFrameWith(this.#addressBytes(), {
      kind,
      serial: nextSerial(),
      fragOp: init.fragOp ?? 0,
      fragPart: init.fragPart ?? 0,
      subject: init.subject ?? "",
      err: init.err ?? "",
      args: init.args ?? EMPTY_ARGS,
      payload: init.payload ?? EMPTY
    }, user ? this.#unwritten : undefined)
  }

  /** The frame for a user fragment of this circuit. */
  frame(kind: CircuitFragment.Kind, init: Circuit.FragmentInit): CircuitFragment.Fragment {
    return {
      ...this.#address(init.err !== undefined && init.err !== "" ? Kind.Error : kind),
      fragOp: init.fragOp ?? 0,
      fragPart: init.fragPart ?? 0,
      subject: init.subject ?? "",
      err: init.err ?? "",
      args: init.args ?? {},
      payload: init.payload ?? EMPTY
    }
  }

  /** Takes credit and room for a frame and queues it if both are there now; else says what is missing. */
  #offer(frame: OutFrame, cost: number): CircuitError.CircuitError | "queued" | "credit" | "room" {
    const outbox = this.wire.outbox
    if (this.#reason !== undefined) return CircuitError.make("send", this.#reason)
    if (outbox.failure !== undefined) return outbox.failure
    if (this.#credit <= 0) return "credit"
    if (!outbox.hasRoom()) return "room"
    this.#credit -= cost
    outbox.queue(frame)
    return "queued"
  }

  /**
   * Queues a frame once there is credit and room (both taken in the same step, so a timeout loses none), then
   * writes what is queued if the writer's turn is free. Runs when the returned effect's caller runs (inside a
   * `suspend` or a generator): with credit and room the frame is on the socket before this returns. A user
   * frame's bytes count as unwritten from here until the outbox hands them to the connection (or drops them),
   * or until the send fails before its frame was queued.
   */
  enqueue(frame: OutFrame, cost: number): Effect.Effect<void, CircuitError.CircuitError> {
    const unwritten = frame.unwritten
    if (unwritten !== undefined) unwritten.bytes += frame.bytes
    const offered = this.#offer(frame, cost)
    // Once queued the fragment goes out whatever happens to this fiber.
    if (offered === "queued") return this.wire.flushNow()
    if (typeof offered !== "string") {
      if (unwritten !== undefined) unwritten.bytes -= frame.bytes
      return Effect.fail(offered)
    }
    let taken = false
    const attempt = (): Effect.Effect<void, CircuitError.CircuitError> => {
      const again = this.#offer(frame, cost)
      if (again === "queued") {
        taken = true
        return Effect.void
      }
      if (typeof again !== "string") return Effect.fail(again)
      if (again === "room") return this.wire.outbox.waitRoom(attempt)
      return Effect.callback<void, CircuitError.CircuitError>((resume) => {
        const wake = () => resume(attempt())
        this.#creditWaiters.push(wake)
        return Effect.sync(() => {
          const at = this.#creditWaiters.indexOf(wake)
          if (at >= 0) this.#creditWaiters.splice(at, 1)
        })
      })
    }
    const timeout = this.peer.host.options.sendTimeout
    const waiting = Effect.suspend(attempt)
    const queued = timeout === undefined ? waiting : Effect.timeoutOrElse(waiting, {
      duration: timeout,
      // The frame may have been queued in the very step the timer fired: then it goes out, and the send succeeded.
      orElse: () =>
        taken ? Effect.void : failWith("send", new CircuitError.SendTimeout({ millis: Duration.toMillis(timeout) }))
    })
    const counted = unwritten === undefined ? queued : Effect.onExit(queued, () =>
      Effect.sync(() => {
        if (!taken) unwritten.bytes -= frame.bytes
      }))
    return Effect.andThen(counted, this.wire.flush)
  }

  send(init: Circuit.FragmentInit): Effect.Effect<void, CircuitError.CircuitError> {
    return Effect.suspend(() => {
      const valid = validate(init, this.peer.host.options.maxPayload)
      if (Result.isFailure(valid)) return failWith("send", valid.failure)
      const frame = this.#out(init.err !== undefined && init.err !== "" ? Kind.Error : Kind.Traffic, init, true)
      return this.enqueue(frame, costOf(init.payload ?? EMPTY))
    })
  }

  sendError(message: string, init?: Circuit.FragmentInit): Effect.Effect<void, CircuitError.CircuitError> {
    return this.send({ ...init, err: message === "" ? "error" : message })
  }

  newCircuit(options?: Circuit.OpenOptions): Effect.Effect<Circuit.Circuit, CircuitError.CircuitError> {
    return this.peer.openOn(
      Effect.succeed(this.wire),
      Kind.StartCircuit,
      this.remote.service,
      this.remote.peerId,
      this.remote.url,
      options ?? {}
    )
  }

  close(reason?: string): Effect.Effect<void> {
    return Effect.sync(() => this.finish(new CircuitError.LocalClose({ detail: reason ?? "" }), true))
  }

  /** Ends the circuit once; `notify` tells the remote side (in order after what was sent before). */
  finish(reason: CircuitError.CloseReason, notify: boolean): void {
    if (this.#reason !== undefined) return
    this.#reason = reason
    this.wire.circuits.delete(this.id)
    this.peer.circuitSet.delete(this)
    if (notify) {
      const detail = reason._tag === "LocalClose" ? reason.detail : reason.message
      this.wire.outbox.force(this.#out(Kind.EndCircuit, { err: detail }))
    }
    const drop = reason._tag === "LocalClose" || reason._tag === "PeerClosed"
    this.#reads.end(drop)
    this.#errors.end(drop)
    this.#wakeSenders()
    this.wire.outbox.wakeSenders()
    Deferred.doneUnsafe(this.#done, Exit.succeed(reason))
  }
}

// --- peers -----------------------------------------------------------------------------------------------------

class PeerImpl implements Peer.LocalPeer {
  readonly host: Host
  readonly id: string
  readonly name: string
  readonly service: string
  readonly serviceVersion: string
  readonly circuitSet = new Set<CircuitImpl>()
  readonly incoming = new Inbox<CircuitImpl>()
  readonly circuits: Stream.Stream<Circuit.Circuit>
  readonly closed: Effect.Effect<void>
  /** Remote peers this one talked to, by PeerID, with the wire that reaches them (for the shutdown notice). */
  readonly remotes = new Map<string, Wire>()
  readonly #done = Deferred.makeUnsafe<void>()
  #closed = false
  fiber: Fiber.Fiber<unknown, unknown> | undefined

  constructor(host: Host, id: string, name: string, service: string, serviceVersion: string) {
    this.host = host
    this.id = id
    this.name = name
    this.service = service
    this.serviceVersion = serviceVersion
    this.circuits = Stream.fromPull(Effect.succeed(Effect.flatMap(
      this.incoming.takeAll,
      (batch): Effect.Effect<ReadonlyArray<CircuitImpl> & [CircuitImpl, ...Array<CircuitImpl>], Cause.Done> =>
        batch === undefined ? Cause.done() : Effect.succeed(batch)
    )))
    this.closed = Deferred.await(this.#done)
  }

  get url(): string {
    return PeerUrl.format({ netAddress: this.host.advertised(), service: this.service, peerId: this.id, circuitId: "" })
  }

  isClosed(): boolean {
    return this.#closed
  }

  openCircuitCount(): number {
    return this.circuitSet.size
  }

  openCircuit(
    peerUrl: string,
    options?: Circuit.OpenOptions
  ): Effect.Effect<Circuit.Circuit, CircuitError.CircuitError> {
    return Effect.suspend(() => {
      const parsed = PeerUrl.parse(peerUrl)
      if (Result.isFailure(parsed)) {
        return failWith("openCircuit", new CircuitError.InvalidArgument({ detail: parsed.failure.message }))
      }
      const url = parsed.success
      if (url.circuitId !== "") {
        return failWith(
          "openCircuit",
          new CircuitError.InvalidArgument({ detail: `${peerUrl} is a circuit URL; give the peer URL` })
        )
      }
      return this.openOn(
        this.host.wireTo(url.netAddress),
        Kind.StartCircuit,
        url.service,
        url.peerId,
        PeerUrl.format(url),
        options ?? {}
      )
    }).pipe(Effect.withSpan("LocalPeer.openCircuit"))
  }

  startRemotePeerAndGetCircuit(
    service: string,
    address: string,
    options?: Peer.StartRemoteOptions
  ): Effect.Effect<Circuit.Circuit, CircuitError.CircuitError> {
    return Effect.suspend(() => {
      const preferExisting = options?.preferExisting ?? false
      const peerId = preferExisting ? "" : PeerUrl.newId()
      return this.openOn(
        this.host.wireTo(address),
        preferExisting ? Kind.StartCircuitAtMostOne : Kind.StartCircuitTakeToId,
        service,
        peerId,
        `${address}/${service}/${peerId}`,
        { waitForAck: true, ...options },
        options?.serviceVersion ?? ""
      )
    }).pipe(Effect.withSpan("LocalPeer.startRemotePeerAndGetCircuit"))
  }

  /** Opens a circuit over the wire `wireEffect` gives, with the start frame of `kind`. */
  openOn(
    wireEffect: Effect.Effect<Wire, CircuitError.CircuitError>,
    kind: CircuitFragment.Kind,
    service: string,
    peerId: string,
    url: string,
    options: Circuit.OpenOptions,
    serviceVersion = ""
  ): Effect.Effect<Circuit.Circuit, CircuitError.CircuitError> {
    return Effect.gen({ self: this }, function*() {
      const host = this.host
      if (this.#closed) return yield* failWith("openCircuit", new CircuitError.PeerClosed({ peerId: this.id }))
      if (!PeerUrl.isServiceName(service)) {
        return yield* failWith(
          "openCircuit",
          new CircuitError.InvalidArgument({ detail: `bad service name ${service}` })
        )
      }
      const init = options.fragment ?? {}
      const valid = validate(init, host.options.maxPayload)
      if (Result.isFailure(valid)) return yield* failWith("openCircuit", valid.failure)
      const wire = yield* wireEffect
      const circuit = new CircuitImpl(
        this,
        wire,
        PeerUrl.newId(),
        options.name ?? "",
        new RemoteInfo(peerId, "", service, serviceVersion, url),
        options.userString ?? ""
      )
      wire.circuits.set(circuit.id, circuit)
      this.circuitSet.add(circuit)
      if (peerId !== "") this.remotes.set(peerId, wire)
      const waitForAck = options.waitForAck ?? true
      const ack = waitForAck ? wire.expect(circuit.id) : undefined
      const frame = circuit.frame(kind, init)
      const start = outFrame({
        ...frame,
        kind,
        fromPeerName: this.name,
        fromServiceVersion: this.serviceVersion,
        toServiceVersion: serviceVersion,
        args: {
          ...frame.args,
          "#circuitName": circuit.name,
          "#userString": circuit.userString,
          "#window": String(host.options.window),
          "#fromURL": this.url,
          ...(kind === Kind.StartCircuitTakeToId ? { "#pleaseAssignNewPeerID": peerId } : {})
        }
      })
      yield* circuit.enqueue(start, costOf(frame.payload)).pipe(
        Effect.onError(() => Effect.sync(() => circuit.finish(new CircuitError.LocalClose({ detail: "" }), false)))
      )
      if (ack === undefined) return circuit
      const answer = yield* wire.await(ack, circuit.id, "openCircuit", host.options.ackTimeout).pipe(
        Effect.onError(() => Effect.sync(() => circuit.finish(new CircuitError.LocalClose({ detail: "" }), false)))
      )
      if (answer.err !== "") {
        return yield* failWith("openCircuit", new CircuitError.Rejected({ detail: answer.err, args: answer.args }))
      }
      return circuit
    })
  }

  close(reason?: string): Effect.Effect<void> {
    return Effect.sync(() => this.closeNow(reason ?? ""))
  }

  /** Closes circuits (telling their remote sides), tells known remote peers, stops the service function. */
  closeNow(_reason: string): void {
    if (this.#closed) return
    this.#closed = true
    this.host.peers.delete(this.id)
    for (const circuit of this.circuitSet) circuit.finish(new CircuitError.PeerClosed({ peerId: this.id }), true)
    for (const [remoteId, wire] of this.remotes) {
      wire.outbox.force(outFrame({
        ...CircuitFragment.empty,
        kind: Kind.FromIsShutdown,
        fromPeerId: this.id,
        fromService: this.service,
        toPeerId: remoteId,
        serial: nextSerial()
      }))
    }
    this.remotes.clear()
    this.incoming.end(true)
    this.fiber?.interruptUnsafe()
    Deferred.doneUnsafe(this.#done, Exit.void)
  }
}

// --- wires -----------------------------------------------------------------------------------------------------

class Wire {
  readonly host: Host
  readonly connection: Link
  readonly scope: Scope.Closeable
  /** The address this wire was dialled to (empty for an accepted one). */
  readonly dialed: string
  /** The address the remote host announced for its peers (learnt from `#fromURL`). */
  announced = ""
  readonly circuits = new Map<string, CircuitImpl>()
  readonly outbox: Outbox<CircuitError.CircuitError>
  readonly #acks = new Map<string, Deferred.Deferred<CircuitFragment.Fragment, CircuitError.CircuitError>>()
  #failed = false

  constructor(host: Host, connection: Link, scope: Scope.Closeable, dialed: string) {
    this.host = host
    this.connection = connection
    this.scope = scope
    this.dialed = dialed
    this.outbox = new Outbox(host.options.sendQueue, 64 * 1024)
  }

  get alive(): boolean {
    return !this.#failed
  }

  reaches(address: string): boolean {
    return address === this.dialed || address === this.connection.remoteAddress || address === this.announced
  }

  /** Queues a control frame; a peer that lets them pile up (it does not read) loses the connection. */
  control(fragment: CircuitFragment.Fragment): void {
    this.controlFrame(outFrame(fragment))
  }

  controlFrame(frame: OutFrame): void {
    if (!this.outbox.control(frame) && this.outbox.failure === undefined) {
      this.fail(new CircuitError.ProtocolViolation({ detail: "the peer stopped reading its connection" }))
    }
  }

  expect(token: string): Deferred.Deferred<CircuitFragment.Fragment, CircuitError.CircuitError> {
    const deferred = Deferred.makeUnsafe<CircuitFragment.Fragment, CircuitError.CircuitError>()
    this.#acks.set(token, deferred)
    return deferred
  }

  await(
    deferred: Deferred.Deferred<CircuitFragment.Fragment, CircuitError.CircuitError>,
    token: string,
    operation: string,
    timeout: Duration.Duration
  ): Effect.Effect<CircuitFragment.Fragment, CircuitError.CircuitError> {
    return Deferred.await(deferred).pipe(
      Effect.timeoutOrElse({
        duration: timeout,
        orElse: () => failWith(operation, new CircuitError.Timeout({ operation, millis: Duration.toMillis(timeout) }))
      }),
      Effect.ensuring(Effect.sync(() => this.#acks.delete(token)))
    )
  }

  /** Ends the wire: every circuit on it ends with `reason`, pending confirmations fail, the socket closes. */
  fail(reason: CircuitError.ConnectionLost | CircuitError.ProtocolViolation): void {
    if (this.#failed) return
    this.#failed = true
    const error = CircuitError.make("connection", reason)
    this.outbox.fail(error)
    this.host.wires.delete(this)
    for (const circuit of this.circuits.values()) circuit.finish(reason, false)
    for (const deferred of this.#acks.values()) Deferred.doneUnsafe(deferred, Exit.fail(error))
    this.#acks.clear()
    this.host.run(Scope.close(this.scope, Exit.void))
    if (this.dialed !== "" && this.host.reconnecting.has(this.dialed)) this.host.redial(this.dialed)
  }

  #lost(error: TransportError.TransportError): CircuitError.CircuitError {
    const reason = new CircuitError.ConnectionLost({ address: this.connection.remoteAddress, detail: error.message })
    this.fail(reason)
    return CircuitError.make("connection", reason)
  }

  /**
   * Writes everything queued, unless another fiber holds the writer's turn (it will write it then). Call it
   * when the effect runs: the bytes the socket takes at once are written before this returns, and the effect
   * is only the wait for a full socket to drain (`Effect.void` when there is none).
   */
  flushNow(): Effect.Effect<void, CircuitError.CircuitError> {
    const outbox = this.outbox
    if (!outbox.tryAcquire()) return Effect.void
    const waiting = this.#pump()
    if (waiting === undefined) {
      outbox.release()
      return Effect.void
    }
    return Effect.ensuring(waiting, Effect.sync(() => outbox.release()))
  }

  readonly flush: Effect.Effect<void, CircuitError.CircuitError> = Effect.suspend(() => this.flushNow())

  /**
   * Writes while the link takes the bytes at once (it returns the `Effect.void` constant then), all in this
   * step; `undefined` when everything is written, else the wait for a full link and the rest after it.
   */
  #pump(): Effect.Effect<void, CircuitError.CircuitError> | undefined {
    while (true) {
      const chunks = this.outbox.takeChunks()
      if (chunks === undefined) return undefined
      const written = this.connection.write(chunks)
      if (written !== Effect.void) {
        return Effect.flatMap(
          Effect.mapError(written, (error) => this.#lost(error)),
          () => this.#pump() ?? Effect.void
        )
      }
    }
  }

  /**
   * Writes what the reader queued (acks, window updates, ends) when no sender is writing. No yield between
   * rounds: each one either suspends or empties the queue.
   */
  readonly writer: Effect.Effect<void> = Effect.suspend(() =>
    Effect.forever(Effect.flatMap(this.outbox.waitWork, () => this.flush), { disableYield: true })
  ).pipe(Effect.ignore)

  /** Parses what arrives and routes every frame as soon as it is complete, without ever waiting. */
  readonly reader: Effect.Effect<void> = Effect.suspend(() => {
    const parser = CircuitFragment.makeParser({ maxPayload: this.host.options.maxPayload })
    return Effect.map(
      this.connection.receive((chunk) => {
        if (this.#failed) return
        const parsed = parser.push(chunk)
        if (Result.isFailure(parsed)) {
          return this.fail(new CircuitError.ProtocolViolation({ detail: parsed.failure.message }))
        }
        const fragments = parsed.success
        for (let i = 0; i < fragments.length; i++) {
          if (this.#failed) return
          this.#dispatch(fragments[i]!)
        }
      }),
      (detail) => this.fail(new CircuitError.ConnectionLost({ address: this.connection.remoteAddress, detail }))
    )
  })

  #dispatch(fragment: CircuitFragment.Fragment): void {
    switch (fragment.kind) {
      case Kind.Traffic:
      case Kind.TrafficWithServiceFallback:
      case Kind.Error: {
        // Traffic for a circuit closed here is expected (it crossed our end) and needs nothing.
        this.circuits.get(fragment.circuitId)?.deliver(fragment)
        return
      }
      case Kind.WindowUpdate: {
        const circuit = this.circuits.get(fragment.circuitId)
        if (circuit === undefined) return
        if (!(fragment.fragPart > 0 && fragment.fragPart <= MAX_WINDOW)) {
          circuit.finish(new CircuitError.ProtocolViolation({ detail: `window update of ${fragment.fragPart}` }), true)
        } else circuit.addCredit(fragment.fragPart)
        return
      }
      case Kind.EndCircuit: {
        this.circuits.get(fragment.circuitId)?.finish(new CircuitError.RemoteClose({ detail: fragment.err }), false)
        return
      }
      case Kind.FromIsShutdown: {
        this.host.peers.get(fragment.toPeerId)?.remotes.delete(fragment.fromPeerId)
        return
      }
      case Kind.EstablishedAck: {
        const circuit = this.circuits.get(fragment.circuitId)
        if (circuit !== undefined) {
          if (fragment.err !== "") {
            circuit.finish(new CircuitError.Rejected({ detail: fragment.err, args: fragment.args }), false)
          } else {
            circuit.remote.peerId = fragment.fromPeerId
            circuit.remote.peerName = fragment.fromPeerName
            circuit.remote.serviceVersion = fragment.fromServiceVersion
            const url = fragment.args["#fromURL"]
            if (url !== undefined && Result.isSuccess(PeerUrl.parse(url))) circuit.remote.url = url
            circuit.peer.remotes.set(fragment.fromPeerId, this)
            circuit.setRemoteWindow(windowArg(fragment))
          }
        }
        const waiter = this.#acks.get(fragment.circuitId)
        if (waiter !== undefined) Deferred.doneUnsafe(waiter, Exit.succeed(fragment))
        return
      }
      case Kind.PeerStart:
        return this.#peerStart(fragment)
      case Kind.StartCircuit:
      case Kind.StartCircuitTakeToId:
      case Kind.StartCircuitAtMostOne:
        return this.#startCircuit(fragment)
    }
  }

  #reply(request: CircuitFragment.Fragment, peer: PeerImpl | undefined, err: string, args: Record<string, string>) {
    this.control({
      ...CircuitFragment.empty,
      kind: Kind.EstablishedAck,
      circuitId: request.circuitId,
      fromPeerId: peer?.id ?? "",
      fromPeerName: peer?.name ?? "",
      fromService: request.toService,
      fromServiceVersion: peer?.serviceVersion ?? "",
      toPeerId: request.fromPeerId,
      toService: request.fromService,
      serial: nextSerial(),
      err,
      args
    })
  }

  #learn(request: CircuitFragment.Fragment): void {
    const url = request.args["#fromURL"]
    if (url === undefined) return
    const parsed = PeerUrl.parse(url)
    if (Result.isSuccess(parsed)) this.announced = parsed.success.netAddress
  }

  #peerStart(request: CircuitFragment.Fragment): void {
    this.#learn(request)
    const started = this.host.startFor(request.toService, undefined, "")
    if (Result.isFailure(started)) return this.#reply(request, undefined, started.failure.err, started.failure.args)
    const peer = started.success
    this.#reply(request, peer, "", { "#peerID": peer.id, "#peerURL": peer.url })
  }

  #startCircuit(request: CircuitFragment.Fragment): void {
    this.#learn(request)
    const host = this.host
    const service = request.toService
    if (request.circuitId === "" || this.circuits.has(request.circuitId)) {
      return this.#reply(request, undefined, "the circuit ID is missing or already in use on this connection", {})
    }
    let peer: PeerImpl | undefined
    const args: Record<string, string> = {}
    if (request.kind === Kind.StartCircuitAtMostOne) {
      const running = host.running(service)
      if (running.length > 1) {
        return this.#reply(
          request,
          undefined,
          `${running.length} instances of ${service} run; expected at most one`,
          {}
        )
      }
      peer = running[0]
    } else if (request.kind === Kind.StartCircuit && request.toPeerId !== "") {
      const found = host.peers.get(request.toPeerId)
      if (found !== undefined && found.service === service) peer = found
    }
    if (peer === undefined) {
      const wanted = request.kind === Kind.StartCircuitTakeToId
        ? (request.args["#pleaseAssignNewPeerID"] ?? request.toPeerId)
        : undefined
      if (wanted !== undefined && (!PeerUrl.isId(wanted) || host.peers.has(wanted))) {
        return this.#reply(request, undefined, "the requested PeerID is not valid or already in use", {})
      }
      const started = host.startFor(service, wanted, request.fromPeerName)
      if (Result.isFailure(started)) return this.#reply(request, undefined, started.failure.err, started.failure.args)
      peer = started.success
      if (request.kind === Kind.StartCircuit && request.toPeerId !== "") {
        // The addressed instance is gone (e.g. its process restarted): a new one took the circuit.
        args["#oldPeerID"] = request.toPeerId
        args["#newPeerID"] = peer.id
        args["#newPeerURL"] = peer.url
      }
    }
    const fromUrl = request.args["#fromURL"]
    const remoteUrl = fromUrl !== undefined && Result.isSuccess(PeerUrl.parse(fromUrl))
      ? fromUrl
      : `${this.connection.remoteAddress}/${request.fromService}/${request.fromPeerId}`
    const circuit = new CircuitImpl(
      peer,
      this,
      request.circuitId,
      request.args["#circuitName"] ?? "",
      new RemoteInfo(
        request.fromPeerId,
        request.fromPeerName,
        request.fromService,
        request.fromServiceVersion,
        remoteUrl
      ),
      request.args["#userString"] ?? ""
    )
    this.circuits.set(circuit.id, circuit)
    peer.circuitSet.add(circuit)
    if (request.fromPeerId !== "") peer.remotes.set(request.fromPeerId, this)
    circuit.setRemoteWindow(windowArg(request))
    this.#reply(request, peer, "", { "#window": String(host.options.window), "#fromURL": peer.url, ...args })
    // The opening fragment is the first read, as a fragment of kind StartCircuit (113).
    circuit.deliver({
      ...request,
      kind: Kind.StartCircuit,
      args: Object.keys(args).length === 0 ? request.args : { ...request.args, ...args }
    })
    peer.incoming.push(circuit)
  }
}

// --- host ------------------------------------------------------------------------------------------------------

interface StartFailure {
  readonly err: string
  readonly args: Record<string, string>
}

export class Host {
  readonly options: HostOptions
  readonly connector: Connector
  readonly scope: Scope.Closeable
  readonly services = new Map<string, Registration>()
  readonly peers = new Map<string, PeerImpl>()
  readonly wires = new Set<Wire>()
  readonly reconnecting = new Set<string>()
  readonly listening: Array<string> = []
  readonly #dialing = new Map<string, Deferred.Deferred<Wire, CircuitError.CircuitError>>()
  /** Forks an effect with the services the host was made with (the reader starts peers from plain code). */
  readonly run: <A, E>(effect: Effect.Effect<A, E>) => Fiber.Fiber<A, E>
  #closed = false

  constructor(
    options: HostOptions,
    connector: Connector,
    scope: Scope.Closeable,
    run: <A, E>(effect: Effect.Effect<A, E>) => Fiber.Fiber<A, E>
  ) {
    this.options = options
    this.connector = connector
    this.scope = scope
    this.run = run
  }

  get closed(): boolean {
    return this.#closed
  }

  /** The address peers of this host put in their URLs: a listener's, else the local end of a connection. */
  advertised(): string {
    if (this.listening.length > 0) return this.listening[0]!
    for (const wire of this.wires) return wire.connection.localAddress
    return "tcp://unconnected:0"
  }

  running(service: string): Array<PeerImpl> {
    return [...this.peers.values()].filter((peer) => peer.service === service)
  }

  register(name: string, fn: Peer.PeerServiceFunc, max: number | undefined, version: string): void {
    this.services.set(name, { fn, max, version })
  }

  /** Starts an instance of a registered service, within its limit (synchronous: the reader uses it). */
  start(
    service: string,
    peerId: string | undefined,
    name: string | undefined
  ): Result.Result<PeerImpl, CircuitError.UnknownService | CircuitError.LimitReached | CircuitError.PeerClosed> {
    const registration = this.services.get(service)
    if (registration === undefined || this.#closed) {
      return this.#closed
        ? Result.fail(new CircuitError.PeerClosed({ peerId: "host" }))
        : Result.fail(new CircuitError.UnknownService({ service }))
    }
    if (registration.max !== undefined && this.running(service).length >= registration.max) {
      return Result.fail(new CircuitError.LimitReached({ service, max: registration.max }))
    }
    const id = peerId ?? PeerUrl.newId()
    const peer = new PeerImpl(this, id, name ?? `${service}-${id.slice(0, 8)}`, service, registration.version)
    this.peers.set(id, peer)
    // The service function's resources live in the peer's own scope, released when the peer closes.
    const scope = Scope.forkUnsafe(this.scope)
    const body = Effect.suspend(() => registration.fn(peer, peer.circuits)).pipe(
      Scope.provide(scope),
      Effect.ignore,
      Effect.ensuring(Effect.suspend(() => {
        peer.closeNow("the service function returned")
        return Scope.close(scope, Exit.void)
      }))
    )
    peer.fiber = this.run(body)
    return Result.succeed(peer)
  }

  /** `start` for a remote request: failures become the text and args of a rejection. */
  startFor(service: string, peerId: string | undefined, _fromName: string): Result.Result<PeerImpl, StartFailure> {
    const started = this.start(service, peerId, undefined)
    if (Result.isSuccess(started)) return Result.succeed(started.success)
    const reason = started.failure
    if (reason._tag !== "LimitReached") return Result.fail({ err: reason.message, args: {} })
    const existing = this.running(service)
    const first = existing[0]
    return Result.fail({
      err: `${reason.message} (already at cfg.LimitedServiceMax)`,
      args: {
        "#LimitedServiceMax": String(reason.max),
        "#LimitedServiceCurrentCount": String(existing.length),
        "#LimitedServiceName": service,
        "#LimitedExistingPeerIDs_comma_sep": existing.map((peer) => peer.id).join(","),
        "#LimitedExistingPeerID_first": first?.id ?? "",
        "#LimitedExistingPeerID_first_url": first?.url ?? ""
      }
    })
  }

  /** Wraps a connection in a wire and starts its reader and writer. */
  attach(connection: Link, scope: Scope.Closeable, dialed: string): Wire {
    const wire = new Wire(this, connection, scope, dialed)
    this.wires.add(wire)
    this.run(Effect.forkIn(wire.reader, scope))
    this.run(Effect.forkIn(wire.writer, scope))
    return wire
  }

  /** A live wire to `address`, dialling one when there is none (concurrent callers share the dial). */
  wireTo(address: string): Effect.Effect<Wire, CircuitError.CircuitError> {
    return Effect.suspend(() => {
      if (this.#closed) return failWith("connect", new CircuitError.PeerClosed({ peerId: "host" }))
      for (const wire of this.wires) if (wire.alive && wire.reaches(address)) return Effect.succeed(wire)
      const pending = this.#dialing.get(address)
      if (pending !== undefined) return Deferred.await(pending)
      const deferred = Deferred.makeUnsafe<Wire, CircuitError.CircuitError>()
      this.#dialing.set(address, deferred)
      return Effect.flatMap(
        Effect.exit(this.dial(address)),
        (exit) => {
          this.#dialing.delete(address)
          Deferred.doneUnsafe(deferred, exit)
          return exit
        }
      )
    })
  }

  dial(address: string): Effect.Effect<Wire, CircuitError.CircuitError> {
    return Effect.gen({ self: this }, function*() {
      const scope = yield* Scope.fork(this.scope)
      const connection = yield* this.connector.dial(address).pipe(
        Scope.provide(scope),
        Effect.onError(() => Scope.close(scope, Exit.void))
      )
      return this.attach(connection, scope, address)
    })
  }

  /** Keeps trying to get a wire to `address` back, with a fixed delay, until it works or the host closes. */
  redial(address: string): void {
    const attempt: Effect.Effect<void> = Effect.suspend(() => {
      if (this.#closed || !this.reconnecting.has(address)) return Effect.void
      for (const wire of this.wires) if (wire.alive && wire.reaches(address)) return Effect.void
      return this.wireTo(address).pipe(
        Effect.asVoid,
        Effect.catch(() => Effect.flatMap(Effect.sleep(this.options.reconnectDelay), () => attempt))
      )
    })
    this.run(Effect.forkIn(Effect.flatMap(Effect.sleep(this.options.reconnectDelay), () => attempt), this.scope))
  }

  /** Closes every peer (their circuits tell the remote sides), lets the writers flush briefly, then the wires. */
  shutdown(): Effect.Effect<void> {
    return Effect.gen({ self: this }, function*() {
      if (this.#closed) return
      for (const peer of this.peers.values()) peer.closeNow("the host closed")
      this.#closed = true
      yield* Effect.forEach([...this.wires], (wire) =>
        Effect.suspend(function wait(): Effect.Effect<void> {
          return wire.outbox.pending === 0 || !wire.alive ? Effect.void : Effect.flatMap(Effect.sleep(5), wait)
        }).pipe(Effect.timeoutOption(Duration.seconds(1))), { discard: true })
      for (const wire of this.wires) {
        wire.fail(new CircuitError.ConnectionLost({ address: wire.connection.remoteAddress, detail: "host closed" }))
      }
    })
  }
}

const EMPTY = new Uint8Array(0)
const EMPTY_ARGS: Readonly<Record<string, string>> = {}
