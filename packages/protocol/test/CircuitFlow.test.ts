/**
 * Flow control, connection loss and reconnection, over plaintext TCP and TLS: a slow reader stalls only its own
 * circuit's sender, a send timeout fails without sending, nothing is dropped, a broken connection ends every
 * circuit on it with `ConnectionLost` while the peers stay up, and a reconnecting dialer comes back.
 */
import { assert, describe, it } from "@effect/vitest"
import type { Scope } from "effect"
import { Effect, Fiber, Stream } from "effect"
import * as Net from "node:net"
import type * as Circuit from "../src/Circuit.ts"
import * as Transport from "../src/Transport.ts"
import { echoService, eventually, host, listening, securities } from "./utils/circuits.ts"

const live = <A, E>(effect: Effect.Effect<A, E, Transport.Transport | Scope.Scope>) =>
  effect.pipe(Effect.provide(Transport.Transport.layer), Effect.timeout("30 seconds"))

/** A service that hands its circuits to the test and reads nothing by itself. */
const holding = () => {
  const circuits: Array<Circuit.Circuit> = []
  const fn = (_peer: unknown, incoming: Stream.Stream<Circuit.Circuit>) =>
    Stream.runForEach(incoming, (c) => Effect.sync(() => circuits.push(c)))
  return { circuits, fn }
}

/** A TCP proxy whose connections can be cut, to break a connection from outside both hosts. */
const proxy = (port: number) =>
  Effect.acquireRelease(
    Effect.callback<{ readonly server: Net.Server; readonly sockets: Set<Net.Socket> }>((resume) => {
      const sockets = new Set<Net.Socket>()
      const server = Net.createServer((client) => {
        const upstream = Net.connect(port, "127.0.0.1")
        for (const socket of [client, upstream]) {
          sockets.add(socket)
          socket.on("error", () => {})
          socket.on("close", () => {
            sockets.delete(socket)
            client.destroy()
            upstream.destroy()
          })
        }
        client.pipe(upstream)
        upstream.pipe(client)
      })
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed({ server, sockets })))
    }),
    ({ server, sockets }) =>
      Effect.sync(() => {
        for (const socket of sockets) socket.destroy()
        server.close()
      })
  ).pipe(Effect.map(({ server, sockets }) => ({
    address: `tcp://127.0.0.1:${(server.address() as Net.AddressInfo).port}`,
    cut: () => {
      for (const socket of sockets) socket.destroy()
    }
  })))

const portOf = (address: string) => Number(address.split(":").at(-1))

const KiB = 1024

for (const mode of securities) {
  describe(`flow control over ${mode}`, () => {
    it.live("a slow reader stalls its own sender at the window; another circuit keeps flowing; nothing is lost", () =>
      live(Effect.gen(function*() {
        const window = 512 * KiB
        const server = yield* listening(mode, 0, { window })
        const held = holding()
        yield* server.service.register("hold", held.fn)
        const client = yield* host(mode, 1, { window })
        yield* client.register("c", () => Effect.never)
        const me = yield* client.startLocalPeer("c")
        const slow = yield* me.openCircuit(`${server.address}/hold/`)
        const fast = yield* slow.newCircuit()
        yield* eventually(() => held.circuits.length === 2)
        const chunk = new Uint8Array(64 * KiB)
        let sent = 0
        const sender = yield* Effect.forkChild(Effect.gen(function*() {
          for (let i = 0; i < 64; i++) {
            yield* slow.send({ fragPart: i, payload: chunk })
            sent++
          }
        }))
        // The sender stops once the window (plus at most one fragment) is unread.
        let last = -1
        while (sent !== last) {
          last = sent
          yield* Effect.sleep(100)
        }
        assert.isBelow(sent * chunk.length, window + 2 * chunk.length)
        assert.isAbove(sent, 0)
        // Meanwhile the other circuit on the same connection carries traffic both ways.
        const fastRemote = held.circuits.find((c) => c.id === fast.id)!
        yield* fast.send({ subject: "ping" })
        yield* fastRemote.read // opening fragment
        assert.strictEqual((yield* fastRemote.read).subject, "ping")
        yield* fastRemote.send({ subject: "pong" })
        assert.strictEqual((yield* fast.read).subject, "pong")
        // Reading the slow circuit lets every fragment through, in order.
        const slowRemote = held.circuits.find((c) => c.id === slow.id)!
        yield* slowRemote.read // opening fragment
        const parts: Array<number> = []
        for (let i = 0; i < 64; i++) parts.push((yield* slowRemote.read).fragPart)
        yield* Fiber.join(sender)
        assert.deepStrictEqual(parts, Array.from({ length: 64 }, (_, i) => i))
      })))

    it.live("with sendTimeout a stalled send fails with SendTimeout and the fragment is not sent", () =>
      live(Effect.gen(function*() {
        const server = yield* listening(mode, 0, { window: 256 * KiB })
        const held = holding()
        yield* server.service.register("hold", held.fn)
        const client = yield* host(mode, 1, { window: 256 * KiB, sendTimeout: "200 millis" })
        yield* client.register("c", () => Effect.never)
        const me = yield* client.startLocalPeer("c")
        const circuit = yield* me.openCircuit(`${server.address}/hold/`)
        yield* eventually(() => held.circuits.length === 1)
        const chunk = new Uint8Array(64 * KiB)
        let sent = 0
        const failure = yield* Effect.flip(Effect.gen(function*() {
          while (true) {
            yield* circuit.send({ fragPart: sent, payload: chunk })
            sent++
          }
        }))
        assert.strictEqual(failure.reason._tag, "SendTimeout")
        // Everything that was sent arrives, and nothing else.
        const remote = held.circuits[0]!
        yield* remote.read
        for (let i = 0; i < sent; i++) assert.strictEqual((yield* remote.read).fragPart, i)
        // The failed one was not sent: the next send (now with room) is the next to arrive.
        yield* circuit.send({ subject: "after" })
        assert.strictEqual((yield* remote.read).subject, "after")
      })))
  })

  describe(`connection loss over ${mode}`, () => {
    it.live("ends every circuit on the connection with ConnectionLost; peers stay up; a reconnecting dialer comes back", () =>
      live(Effect.gen(function*() {
        const server = yield* listening(mode, 0)
        yield* server.service.register("echo", echoService())
        const echo = yield* server.service.startLocalPeer("echo")
        const network = yield* proxy(portOf(server.address))
        const client = yield* host(mode, 1, { reconnectDelay: "50 millis" })
        const held = holding()
        yield* client.register("c", held.fn)
        yield* client.connect(network.address, { reconnect: true })
        const me = yield* client.startLocalPeer("c")
        const circuits = yield* Effect.forEach(
          [1, 2, 3],
          () => me.openCircuit(echo.url.replace(server.address, network.address))
        )
        for (const c of circuits) {
          yield* c.send({ subject: "x" })
          yield* c.read
        }
        const reads = yield* Effect.forkChild(Effect.flip(Stream.runDrain(circuits[0]!.reads)))
        network.cut()
        for (const c of circuits) {
          const why = yield* c.closed
          assert.strictEqual(why._tag, "ConnectionLost")
        }
        // The reads stream fails with the reason, and sends fail too.
        const failed = yield* Fiber.join(reads)
        assert.strictEqual(failed.reason._tag, "ConnectionLost")
        const send = yield* Effect.flip(circuits[1]!.send({ subject: "late" }))
        assert.strictEqual(send.reason._tag, "ConnectionLost")
        assert.isFalse(me.isClosed())
        assert.isFalse(echo.isClosed())
        yield* eventually(() => echo.openCircuitCount() === 0)
        // The dialer reconnects on its own; new circuits work, from either side.
        yield* eventually(() => client.connectionCount() === 1 && server.service.connectionCount() === 1)
        const again = yield* me.openCircuit(echo.url.replace(server.address, network.address), {
          fragment: { subject: "echo request" }
        })
        assert.strictEqual((yield* again.read).subject, "echo reply")
        const back = yield* echo.openCircuit(me.url)
        yield* eventually(() => held.circuits.some((c) => c.id === back.id))
      })))

    it.live("a remote host that closes ends its circuits here with a typed reason and leaves local peers up", () =>
      live(Effect.gen(function*() {
        const client = yield* host(mode, 1)
        yield* client.register("c", () => Effect.never)
        const me = yield* client.startLocalPeer("c")
        const circuit = yield* Effect.scoped(Effect.gen(function*() {
          const server = yield* listening(mode, 0)
          yield* server.service.register("echo", echoService())
          const opened = yield* me.openCircuit(`${server.address}/echo/`, { fragment: { subject: "hi" } })
          yield* opened.read
          return opened
        }))
        const why = yield* circuit.closed
        // The closing host ends its peers' circuits in order before the connection goes.
        assert.include(["PeerClosed", "RemoteClose", "ConnectionLost"], why._tag)
        assert.isTrue(circuit.isClosed())
        assert.isFalse(me.isClosed())
        assert.strictEqual(me.openCircuitCount(), 0)
      })))
  })
}
