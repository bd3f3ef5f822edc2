/**
 * A live peer host under hostile input from raw sockets: random bytes, random well-framed fragments of every
 * kind, and a sender that ignores flow control. The host stays up, other connections' circuits keep working,
 * a connection that sent well-framed nonsense still works, and only the offending circuit or connection ends.
 */
import { assert, describe, it } from "@effect/vitest"
import * as CircuitFragment from "@tessera/codec/CircuitFragment"
import type { Scope } from "effect"
import { Effect, Result } from "effect"
import * as fc from "fast-check"
import * as Net from "node:net"
import * as PeerUrl from "../src/PeerUrl.ts"
import * as Transport from "../src/Transport.ts"
import { echoService, host, listening, str, text } from "./utils/circuits.ts"

const live = <A, E>(effect: Effect.Effect<A, E, Transport.Transport | Scope.Scope>) =>
  effect.pipe(Effect.provide(Transport.Transport.layer), Effect.timeout("60 seconds"))

/** A raw TCP client that collects the fragments the host sends it. */
const raw = (address: string) =>
  Effect.acquireRelease(
    Effect.callback<Net.Socket>((resume) => {
      const socket = Net.connect(Number(address.split(":").at(-1)), "127.0.0.1", () => resume(Effect.succeed(socket)))
      socket.on("error", () => {})
    }),
    (socket) => Effect.sync(() => socket.destroy())
  ).pipe(Effect.map((socket) => {
    const parser = CircuitFragment.makeParser()
    const received: Array<CircuitFragment.Fragment> = []
    let closed = false
    socket.on("data", (chunk: Uint8Array) => {
      const parsed = parser.push(chunk)
      if (Result.isSuccess(parsed)) received.push(...parsed.success)
    })
    socket.on("close", () => {
      closed = true
    })
    const waitFor = (match: (f: CircuitFragment.Fragment) => boolean) =>
      Effect.gen(function*() {
        for (let i = 0; i < 500; i++) {
          const found = received.find(match)
          if (found !== undefined) return found
          yield* Effect.sleep(10)
        }
        return yield* Effect.die(new Error("the expected fragment did not arrive"))
      })
    return { socket, received, isClosed: () => closed, waitFor }
  }))

const kinds = Object.values(CircuitFragment.Kind)
const someId = fc.oneof(fc.constant(""), fc.constant(PeerUrl.newId()), fc.string({ maxLength: 50 }))
const randomFragment: fc.Arbitrary<CircuitFragment.Fragment> = fc.record({
  kind: fc.constantFrom(...kinds),
  fromPeerId: someId,
  fromPeerName: fc.string({ maxLength: 20 }),
  fromService: fc.string({ maxLength: 20 }),
  fromServiceVersion: fc.string({ maxLength: 5 }),
  toPeerId: someId,
  toPeerName: fc.string({ maxLength: 20 }),
  // Mostly services that do not exist, sometimes the real one.
  toService: fc.oneof(fc.string({ maxLength: 20 }), fc.constant("echo")),
  toServiceVersion: fc.string({ maxLength: 5 }),
  circuitId: someId,
  serial: fc.integer(),
  fragOp: fc.integer({ min: -0x8000_0000, max: 0x7fff_ffff }),
  fragPart: fc.oneof(fc.integer(), fc.constant(0), fc.constant(2 ** 40)),
  subject: fc.string({ maxLength: 30 }),
  err: fc.string({ maxLength: 30 }),
  args: fc.dictionary(
    fc.oneof(fc.constantFrom("#window", "#fromURL", "#pleaseAssignNewPeerID", "#circuitName"), fc.string()),
    fc.string({ maxLength: 60 }),
    { maxKeys: 4 }
  ),
  payload: fc.uint8Array({ maxLength: 200 })
})

const startFrame = (circuitId: string, service = "echo"): CircuitFragment.Fragment => ({
  ...CircuitFragment.empty,
  kind: CircuitFragment.Kind.StartCircuit,
  circuitId,
  fromPeerId: PeerUrl.newId(),
  fromService: "fuzzer",
  toService: service
})

describe("a live peer under hostile input", () => {
  it.live("random bytes close only that connection; random fragments leave the connection and the host working", () =>
    live(Effect.gen(function*() {
      const server = yield* listening("tcp", 0, { maxPayload: 64 * 1024 })
      yield* server.service.register("echo", echoService(), { max: 50 })
      // Never named by the random frames: the probe that shows the connection still works.
      yield* server.service.register("probe", echoService())
      const client = yield* host("tcp", 1)
      yield* client.register("c", () => Effect.never)
      const me = yield* client.startLocalPeer("c")
      const good = yield* me.openCircuit(`${server.address}/echo/`)
      yield* good.read
      const stillEchoes = Effect.gen(function*() {
        yield* good.send({ subject: "echo request", payload: text("alive") })
        const reply = yield* good.read
        assert.strictEqual(str(reply.payload), "alive")
      })

      // 1. Random bytes: the host refuses the stream and closes that connection.
      const samples = fc.sample(fc.uint8Array({ minLength: 1, maxLength: 4096 }), 30)
      for (const bytes of samples) {
        const attacker = yield* raw(server.address)
        attacker.socket.write(bytes)
        // An opening that happens to look like a frame header waits for more; the end of the stream ends it.
        attacker.socket.end()
        for (let i = 0; i < 300 && !attacker.isClosed(); i++) yield* Effect.sleep(10)
        assert.isTrue(attacker.isClosed())
      }
      yield* stillEchoes

      // 2. Random well-framed fragments of every kind on one connection: it stays open and usable.
      const attacker = yield* raw(server.address)
      const frames = fc.sample(randomFragment, 2000)
      for (const frame of frames) attacker.socket.write(CircuitFragment.encode(frame))
      yield* stillEchoes
      const probe = PeerUrl.newId()
      attacker.socket.write(CircuitFragment.encode(startFrame(probe, "probe")))
      const ack = yield* attacker.waitFor((f) =>
        f.kind === CircuitFragment.Kind.EstablishedAck && f.circuitId === probe
      )
      assert.strictEqual(ack.err, "")
      // The random starts did reach the service, and its limit held.
      assert.isAtMost(server.service.localPeers("echo").length, 50)
      assert.isFalse(attacker.isClosed())
      // An oversized frame (over this host's payload cap) is a framing error: that connection only is closed.
      attacker.socket.write(CircuitFragment.encode({ ...startFrame(PeerUrl.newId()), payload: new Uint8Array(70_000) }))
      for (let i = 0; i < 300 && !attacker.isClosed(); i++) yield* Effect.sleep(10)
      assert.isTrue(attacker.isClosed())
      yield* stillEchoes
      // The host still accepts new connections and circuits.
      // (to the running instance: the random starts used up the service's limit of new ones)
      const fresh = yield* me.openCircuit(good.remote.url, { fragment: { subject: "echo request" } })
      assert.strictEqual((yield* fresh.read).subject, "echo reply")
    })))

  it.live("a sender that ignores flow control loses that circuit, not the connection or other circuits", () =>
    live(Effect.gen(function*() {
      const server = yield* listening("tcp", 0, { window: 256 * 1024, maxPayload: 128 * 1024 })
      // A service that never reads: the window is all the host will hold.
      yield* server.service.register("echo", () => Effect.never)
      const attacker = yield* raw(server.address)
      const [greedy, polite] = [PeerUrl.newId(), PeerUrl.newId()]
      attacker.socket.write(CircuitFragment.encode(startFrame(greedy)))
      attacker.socket.write(CircuitFragment.encode(startFrame(polite)))
      const ack = yield* attacker.waitFor((f) =>
        f.kind === CircuitFragment.Kind.EstablishedAck && f.circuitId === greedy
      )
      const chunk = new Uint8Array(64 * 1024)
      for (let i = 0; i < 40; i++) {
        attacker.socket.write(CircuitFragment.encode({
          ...CircuitFragment.empty,
          kind: CircuitFragment.Kind.Traffic,
          circuitId: greedy,
          toPeerId: ack.fromPeerId,
          payload: chunk
        }))
      }
      const end = yield* attacker.waitFor((f) => f.kind === CircuitFragment.Kind.EndCircuit && f.circuitId === greedy)
      assert.include(end.err, "flow-control window")
      assert.isFalse(attacker.isClosed())
      // The other circuit of the same connection is still open: a new start on the connection works too.
      assert.isFalse(
        attacker.received.some((f) => f.kind === CircuitFragment.Kind.EndCircuit && f.circuitId === polite)
      )
      const probe = PeerUrl.newId()
      attacker.socket.write(CircuitFragment.encode(startFrame(probe)))
      yield* attacker.waitFor((f) => f.kind === CircuitFragment.Kind.EstablishedAck && f.circuitId === probe)
    })))
})
