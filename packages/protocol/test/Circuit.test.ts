/**
 * The acceptance inventory of specs/circuits.md §3 (Test400–Test410 and the grid test), each over plaintext TCP
 * and over TLS 1.3 with pinned Ed25519 keys, with two (or three) hosts in this process on 127.0.0.1. The
 * cross-process cases are in PeerProcess.test.ts.
 */
import { assert, describe, it } from "@effect/vitest"
import type { Scope } from "effect"
import { Deferred, Effect, Fiber, Stream } from "effect"
import * as Os from "node:os"
import { Circuit, CircuitError, PeerUrl, Transport } from "../src/index.ts"
import { echoService, eventually, host, listening, securities, str, text } from "./utils/circuits.ts"

const live = <A, E>(effect: Effect.Effect<A, E, Transport.Transport | Scope.Scope>) =>
  effect.pipe(Effect.provide(Transport.Transport.layer), Effect.timeout("20 seconds"))

/** Collects what arrives on a circuit's reads (and errors) until told to stop. */
const counter = (circuit: Circuit.Circuit) =>
  Effect.gen(function*() {
    const reads: Array<Circuit.Fragment> = []
    const errors: Array<Circuit.Fragment> = []
    yield* Effect.forkScoped(
      Stream.runForEach(circuit.reads, (f) => Effect.sync(() => reads.push(f))).pipe(Effect.ignore)
    )
    yield* Effect.forkScoped(
      Stream.runForEach(circuit.errors, (f) => Effect.sync(() => errors.push(f))).pipe(Effect.ignore)
    )
    return { reads, errors }
  })

/** A service whose peers publish their incoming circuits to the test. */
const collecting = () => {
  const circuits: Array<Circuit.Circuit> = []
  const fn = (_peer: unknown, incoming: Stream.Stream<Circuit.Circuit>) =>
    Stream.runForEach(incoming, (c) => Effect.sync(() => circuits.push(c)))
  return { circuits, fn }
}

describe("PeerUrl (Test401)", () => {
  it("parses a circuit URL into address, service, peerId and circuitId", () => {
    const peerId = PeerUrl.newId()
    const circuitId = PeerUrl.newId()
    const parsed = PeerUrl.parse(`tcp://10.1.2.3:5023/serviceName/${peerId}/${circuitId}`)
    assert.deepStrictEqual(parsed._tag === "Success" ? parsed.success : undefined, {
      netAddress: "tcp://10.1.2.3:5023",
      service: "serviceName",
      peerId,
      circuitId
    })
    // Without a scheme it is read as tcp://; an empty peerId is allowed.
    const bare = PeerUrl.parse("127.0.0.1:80/echo/")
    assert.strictEqual(bare._tag === "Success" ? bare.success.netAddress : "", "tcp://127.0.0.1:80")
    // A socket path keeps its slashes: service and IDs come from the end.
    const unix = PeerUrl.parse(`unix:/run/t/x.sock/svc/${peerId}/${circuitId}`)
    assert.deepStrictEqual(unix._tag === "Success" ? unix.success : undefined, {
      netAddress: "unix:/run/t/x.sock",
      service: "svc",
      peerId,
      circuitId
    })
    const unixPeer = PeerUrl.parse("unix:/run/t/x.sock/svc/")
    assert.strictEqual(unixPeer._tag === "Success" ? unixPeer.success.netAddress : "", "unix:/run/t/x.sock")
    assert.strictEqual(peerId.length, 44)
    assert.match(peerId, /^[A-Za-z0-9_-]{44}$/)
    for (const bad of ["tcp://h:1", "tcp://h:1/", "tcp://h:1/s/short", `tcp://h:1/s//${circuitId}`, "ftp://x/s/"]) {
      assert.strictEqual(PeerUrl.parse(bad)._tag, "Failure", bad)
    }
    assert.strictEqual(
      PeerUrl.format(parsed._tag === "Success" ? parsed.success : undefined!),
      `tcp://10.1.2.3:5023/serviceName/${peerId}/${circuitId}`
    )
  })
})

for (const mode of securities) {
  describe(`circuits over ${mode}`, () => {
    it.live("Test400: the server starts a peer on the client and echoes over a circuit to it", () =>
      live(Effect.gen(function*() {
        const server = yield* listening(mode, 0)
        const client = yield* host(mode, 1)
        yield* client.register("echo-client", echoService())
        yield* server.service.register("server-side", () => Effect.never)
        yield* client.connect(server.address)
        yield* eventually(() => server.service.connectionCount() === 1)
        // The client's peers live at the address the server sees for it.
        const started = yield* server.service.startRemotePeer("echo-client", client.address())
        assert.strictEqual(started.peerId.length, 44)
        assert.isTrue(started.url.startsWith("tcp://"))
        assert.isTrue(started.url.endsWith(`/echo-client/${started.peerId}`))
        assert.strictEqual(client.localPeers("echo-client").length, 1)
        const mine = yield* server.service.startLocalPeer("server-side")
        const circuit = yield* mine.openCircuit(started.url, {
          name: "echo-circuit",
          fragment: { subject: "echo request", payload: text("hello from the server") }
        })
        const reply = yield* circuit.read
        assert.strictEqual(reply.subject, "echo reply")
        assert.strictEqual(str(reply.payload), "hello from the server")
        assert.strictEqual(reply.fromPeerId, started.peerId)
        assert.strictEqual(circuit.remote.peerId, started.peerId)
      })))

    it.live("Test402: a local peer's URL has the bound address (no port 0)", () =>
      live(Effect.gen(function*() {
        const server = yield* listening(mode)
        yield* server.service.register("svc", () => Effect.never)
        const peer = yield* server.service.startLocalPeer("svc")
        assert.isTrue(peer.url.startsWith(`${server.address}/svc/`))
        assert.notInclude(peer.url, ":0/")
        assert.strictEqual(PeerUrl.parse(peer.url)._tag, "Success")
      })))

    it.live("Test403: a new circuit between already started peers echoes", () =>
      live(Effect.gen(function*() {
        const server = yield* listening(mode, 0)
        yield* server.service.register("echo", echoService())
        const echo = yield* server.service.startLocalPeer("echo")
        const client = yield* host(mode, 1)
        yield* client.register("c", () => Effect.never)
        const me = yield* client.startLocalPeer("c")
        for (let i = 0; i < 3; i++) {
          const circuit = yield* me.openCircuit(echo.url, {
            fragment: { subject: "echo request", payload: text(`#${i}`) }
          })
          const reply = yield* circuit.read
          assert.strictEqual(str(reply.payload), `#${i}`)
          assert.strictEqual(reply.fromPeerId, echo.id)
        }
        // Still one instance: the URL named it.
        assert.strictEqual(server.service.localPeers("echo").length, 1)
        assert.strictEqual(echo.openCircuitCount(), 3)
      })))

    it.live("Test405: hosts close completely, and again", () =>
      live(Effect.gen(function*() {
        for (let round = 0; round < 2; round++) {
          yield* Effect.scoped(Effect.gen(function*() {
            const server = yield* listening(mode, 0)
            yield* server.service.register("echo", echoService())
            const client = yield* host(mode, 1)
            yield* client.register("c", () => Effect.never)
            const me = yield* client.startLocalPeer("c")
            const circuit = yield* me.openCircuit(`${server.address}/echo/`, { fragment: { payload: text("x") } })
            yield* circuit.read
            yield* client.close
            assert.isTrue(me.isClosed())
            assert.isTrue(circuit.isClosed())
            yield* eventually(() => server.service.connectionCount() === 0)
            yield* server.service.close
            assert.strictEqual(server.service.localPeers("echo").length, 0)
          }))
        }
      })))

    it.live("Test406: closing a local peer stops its service function, and so does the function's own end", () =>
      live(Effect.gen(function*() {
        const server = yield* host(mode)
        const stopped = yield* Deferred.make<void>()
        yield* server.register(
          "svc",
          () => Effect.never.pipe(Effect.onInterrupt(() => Deferred.succeed(stopped, undefined)))
        )
        const peer = yield* server.startLocalPeer("svc")
        yield* peer.close()
        yield* Deferred.await(stopped)
        assert.isTrue(peer.isClosed())
        assert.strictEqual(server.localPeers("svc").length, 0)
        // Closing a peer closes its circuits, on the remote side too; the remote peer stays up.
        const remote = yield* listening(mode, 1)
        const got = collecting()
        yield* remote.service.register("far", got.fn)
        const near = yield* server.startLocalPeer("svc")
        const circuits = yield* Effect.forEach([1, 2], () => near.openCircuit(`${remote.address}/far/`))
        yield* eventually(() => got.circuits.length === 2)
        yield* near.close()
        for (const c of circuits) assert.strictEqual((yield* c.closed)._tag, "PeerClosed")
        for (const c of got.circuits) {
          assert.strictEqual((yield* c.closed.pipe(Effect.timeout("2 seconds")))._tag, "RemoteClose")
        }
        assert.isFalse(remote.service.localPeers("far")[0]!.isClosed())
        // A function that returns closes its peer.
        yield* server.register("brief", () => Effect.sleep(20))
        const brief = yield* server.startLocalPeer("brief")
        yield* brief.closed
        assert.isTrue(brief.isClosed())
      })))

    it.live("Test408: closing a circuit propagates to the remote side; both peers stay up; order is kept", () =>
      live(Effect.gen(function*() {
        const server = yield* listening(mode, 0)
        const got = collecting()
        yield* server.service.register("srv", got.fn)
        const client = yield* host(mode, 1)
        const clientGot = collecting()
        yield* client.register("cli", clientGot.fn)
        const me = yield* client.startLocalPeer("cli")
        const circuit = yield* me.openCircuit(`${server.address}/srv/`, {
          name: "c408",
          fragment: { subject: "initial setup frag0" }
        })
        yield* eventually(() => got.circuits.length === 1)
        const remote = got.circuits[0]!
        assert.strictEqual(remote.name, "c408")
        const first = yield* remote.read
        assert.strictEqual(first.subject, "initial setup frag0")
        assert.strictEqual(first.kind, Circuit.Kind.StartCircuit)
        yield* circuit.send({ subject: "are we live?" })
        assert.strictEqual((yield* remote.read).subject, "are we live?")
        assert.isFalse(circuit.isClosed())
        assert.isFalse(remote.isClosed())
        yield* circuit.close()
        assert.isTrue(circuit.isClosed())
        const why = yield* remote.closed.pipe(Effect.timeout("2 seconds"))
        assert.strictEqual(why._tag, "RemoteClose")
        assert.isTrue(remote.isClosed())
        const serverPeer = server.service.localPeers("srv")[0]!
        assert.isFalse(serverPeer.isClosed())
        assert.isFalse(me.isClosed())
        assert.strictEqual(serverPeer.openCircuitCount(), 0)
        assert.strictEqual(me.openCircuitCount(), 0)
        // Reverse direction: the server opens a named circuit back to the client's peer; frags arrive in order.
        const back = yield* serverPeer.openCircuit(circuit.localPeer.url, {
          name: "proxy_the_server407",
          fragment: { subject: "0" }
        })
        for (let i = 1; i <= 50; i++) yield* back.send({ subject: String(i) })
        yield* eventually(() => clientGot.circuits.length === 1)
        const onClient = clientGot.circuits[0]!
        assert.strictEqual(onClient.name, "proxy_the_server407")
        const seen: Array<string> = []
        for (let i = 0; i <= 50; i++) seen.push((yield* onClient.read).subject)
        assert.deepStrictEqual(seen, Array.from({ length: 51 }, (_, i) => String(i)))
      })))

    it.live("Test408: many circuits open and close independently, from both sides", () =>
      live(Effect.gen(function*() {
        const server = yield* listening(mode, 0)
        const atServer = collecting()
        yield* server.service.register("srv", atServer.fn)
        const serverPeer = yield* server.service.startLocalPeer("srv")
        const client = yield* host(mode, 1)
        const atClient = collecting()
        yield* client.register("cli", atClient.fn)
        const me = yield* client.startLocalPeer("cli")
        const fromClient = yield* Effect.forEach(
          Array.from({ length: 10 }),
          () => me.openCircuit(serverPeer.url),
          { concurrency: 10 }
        )
        yield* eventually(() => atServer.circuits.length === 10)
        const fromServer = yield* Effect.forEach(Array.from({ length: 10 }), () => serverPeer.openCircuit(me.url))
        yield* eventually(() => atClient.circuits.length === 10)
        assert.strictEqual(me.openCircuitCount(), 20)
        assert.strictEqual(serverPeer.openCircuitCount(), 20)
        yield* Effect.forEach(fromClient.slice(0, 9), (c) => c.close())
        yield* Effect.forEach(fromServer.slice(0, 9), (c) => c.close())
        yield* eventually(() => me.openCircuitCount() === 2 && serverPeer.openCircuitCount() === 2)
        const open = new Set([fromClient[9]!.id, fromServer[9]!.id])
        for (const c of [...atServer.circuits, ...atClient.circuits]) assert.strictEqual(c.isClosed(), !open.has(c.id))
        // The survivors still carry traffic both ways.
        yield* fromClient[9]!.send({ subject: "still here" })
        const tenth = atServer.circuits.find((c) => c.id === fromClient[9]!.id)!
        yield* tenth.read // the opening fragment
        assert.strictEqual((yield* tenth.read).subject, "still here")
        assert.isFalse(me.isClosed())
        assert.isFalse(serverPeer.isClosed())
      })))

    it.live("Test409: counts of sends, reads and errors are exact over three circuits", () =>
      live(Effect.gen(function*() {
        const server = yield* listening(mode, 0)
        const atServer = collecting()
        yield* server.service.register("srv", atServer.fn)
        const client = yield* host(mode, 1)
        const atClient = collecting()
        yield* client.register("cli", atClient.fn)
        const me = yield* client.startLocalPeer("cli")
        const c1 = yield* me.openCircuit(`${server.address}/srv/`, { fragment: { subject: "open" } })
        yield* eventually(() => atServer.circuits.length === 1)
        const s1 = atServer.circuits[0]!
        const serverPeer = server.service.localPeers("srv")[0]!
        assert.strictEqual(me.openCircuitCount(), 1)
        assert.strictEqual(serverPeer.openCircuitCount(), 1)
        const atS1 = yield* counter(s1)
        const atC1 = yield* counter(c1)
        yield* eventually(() => atS1.reads.length === 1)
        assert.strictEqual(atS1.reads[0]!.kind, Circuit.Kind.StartCircuit)
        yield* c1.send({ subject: "one" })
        yield* s1.send({ subject: "one back" })
        yield* eventually(() => atS1.reads.length === 2 && atC1.reads.length === 1)
        // A second circuit from the client through the first, a third from the server back.
        const c2 = yield* c1.newCircuit({ name: "second" })
        const s3 = yield* serverPeer.openCircuit(me.url, { name: "third" })
        yield* eventually(() => atServer.circuits.length === 2 && atClient.circuits.length === 1)
        assert.strictEqual(me.openCircuitCount(), 3)
        assert.strictEqual(serverPeer.openCircuitCount(), 3)
        assert.strictEqual(c2.remote.peerId, serverPeer.id)
        const N = 10
        for (let i = 0; i < N; i++) {
          yield* c1.send({ fragPart: i })
          yield* s1.send({ fragPart: i })
        }
        yield* eventually(() => atS1.reads.length === 2 + N && atC1.reads.length === 1 + N)
        assert.deepStrictEqual(atS1.reads.slice(2).map((f) => f.fragPart), Array.from({ length: N }, (_, i) => i))
        // Error fragments arrive on errors, never on reads.
        yield* c1.sendError("client says no")
        yield* s1.sendError("server says no")
        yield* eventually(() => atS1.errors.length === 1 && atC1.errors.length === 1)
        assert.strictEqual(atS1.errors[0]!.err, "client says no")
        assert.strictEqual(atS1.errors[0]!.kind, Circuit.Kind.Error)
        assert.strictEqual(atC1.errors[0]!.err, "server says no")
        assert.strictEqual(atS1.reads.length, 2 + N)
        assert.strictEqual(atC1.reads.length, 1 + N)
        yield* c2.close()
        yield* eventually(() => me.openCircuitCount() === 2 && serverPeer.openCircuitCount() === 2)
        yield* s3.close()
        yield* eventually(() => me.openCircuitCount() === 1 && serverPeer.openCircuitCount() === 1)
      })))

    it.live("Test410: limits, prefer-existing, unknown services, in both directions", () =>
      live(Effect.gen(function*() {
        const server = yield* listening(mode, 0)
        yield* server.service.register("srvLimited", echoService(), { max: 1 })
        const client = yield* host(mode, 1)
        const atClient = collecting()
        yield* client.register("cliLimited", atClient.fn, { max: 1 })
        const me = yield* client.startLocalPeer("cliLimited")
        // Start the remote peer and get a circuit in one round trip; the remote PeerID is known at once.
        const first = yield* me.startRemotePeerAndGetCircuit("srvLimited", server.address)
        assert.strictEqual(first.remote.peerId.length, 44)
        // Prefer-existing reaches the same instance.
        const again = yield* me.startRemotePeerAndGetCircuit("srvLimited", server.address, { preferExisting: true })
        assert.strictEqual(again.remote.peerId, first.remote.peerId)
        // An unregistered service fails quickly with the remote's reason, and the connection stays usable.
        const started = Date.now()
        const unknown = yield* Effect.flip(me.startRemotePeerAndGetCircuit("noSuchService", server.address))
        assert.isBelow(Date.now() - started, 2000)
        assert.strictEqual(unknown.reason._tag, "Rejected")
        assert.include(unknown.message, "noSuchService")
        assert.strictEqual(me.openCircuitCount(), 2)
        yield* again.send({ subject: "echo request" })
        assert.strictEqual((yield* again.read).subject, "") // the (empty) opening fragment, echoed
        assert.strictEqual((yield* again.read).subject, "echo reply")
        // A second local instance of a limited service fails.
        const local = yield* Effect.flip(client.startLocalPeer("cliLimited"))
        assert.strictEqual(local.reason._tag, "LimitReached")
        assert.include(local.message, "already at its limit of 1")
        // Beyond the limit remotely: a rejection carrying the existing instance.
        const over = yield* Effect.flip(me.startRemotePeerAndGetCircuit("srvLimited", server.address))
        assert.strictEqual(over.reason._tag, "Rejected")
        assert.include(over.message, "already at cfg.LimitedServiceMax")
        const args = over.reason._tag === "Rejected" ? over.reason.args : {}
        assert.strictEqual(args["#LimitedServiceMax"], "1")
        assert.strictEqual(args["#LimitedExistingPeerID_first"], first.remote.peerId)
        assert.isTrue(args["#LimitedExistingPeerID_first_url"]!.endsWith(`/srvLimited/${first.remote.peerId}`))
        // Server to client: prefer-existing reaches the client's running instance; beyond the limit fails.
        yield* server.service.register("srvSide", () => Effect.never)
        const serverPeer = yield* server.service.startLocalPeer("srvSide")
        const toClient = yield* serverPeer.startRemotePeerAndGetCircuit("cliLimited", client.address(), {
          preferExisting: true
        })
        assert.strictEqual(toClient.remote.peerId, me.id)
        const unknownOnClient = yield* Effect.flip(serverPeer.startRemotePeerAndGetCircuit("nope", client.address()))
        assert.strictEqual(unknownOnClient.reason._tag, "Rejected")
        const overOnClient = yield* Effect.flip(serverPeer.startRemotePeerAndGetCircuit("cliLimited", client.address()))
        assert.include(overOnClient.message, "already at cfg.LimitedServiceMax")
      })))

    it.live("Test202 (grid): three listening hosts, full mesh of circuits; each peer sees the other two", () =>
      live(Effect.gen(function*() {
        const nodes = yield* Effect.forEach([0, 1, 2], (i) => listening(mode, i))
        const seen = nodes.map(() => new Set<string>())
        yield* Effect.forEach(
          nodes,
          (node, i) =>
            node.service.register(
              "grid",
              (_peer, circuits) =>
                Stream.runForEach(circuits, (circuit) =>
                  Effect.forkDetach(
                    Stream.runForEach(circuit.reads, (f) =>
                      Effect.gen(function*() {
                        seen[i]!.add(f.fromPeerId)
                        // The passive side answers the opening fragment.
                        if (f.kind === Circuit.Kind.StartCircuit) yield* circuit.send({ subject: "hello back" })
                      })).pipe(Effect.ignore)
                  ))
            )
        )
        const peers = yield* Effect.forEach(nodes, (node) => node.service.startLocalPeer("grid"))
        const answers = yield* Effect.forEach(
          peers,
          (peer, i) =>
            Effect.forEach(
              peers.filter((_, j) => j !== i),
              (other) => Effect.flatMap(peer.openCircuit(other.url, { fragment: { subject: "hello" } }), (c) => c.read)
            ),
          {
            concurrency: 3
          }
        )
        for (const list of answers) for (const answer of list) assert.strictEqual(answer.subject, "hello back")
        for (let i = 0; i < 3; i++) {
          yield* eventually(() => seen[i]!.size >= 2)
          assert.isFalse(seen[i]!.has(peers[i]!.id))
        }
      })))
  })
}

describe("a circuit to a PeerID that is gone", () => {
  it.live("starts a fresh instance and tags the opening fragment with the old and new IDs", () =>
    live(Effect.gen(function*() {
      const server = yield* listening("tcp")
      const got: Array<Circuit.Circuit> = []
      yield* server.service.register(
        "svc",
        (_peer, incoming) => Stream.runForEach(incoming, (c) => Effect.sync(() => got.push(c)))
      )
      const old = yield* server.service.startLocalPeer("svc")
      const oldUrl = old.url
      yield* old.close()
      const client = yield* host("tcp", 1)
      yield* client.register("c", () => Effect.never)
      const me = yield* client.startLocalPeer("c")
      const circuit = yield* me.openCircuit(oldUrl, { fragment: { subject: "hello?" } })
      assert.notStrictEqual(circuit.remote.peerId, old.id)
      yield* eventually(() => got.length === 1)
      const first = yield* got[0]!.read
      assert.strictEqual(first.subject, "hello?")
      assert.strictEqual(Circuit.sysArg(first, "oldPeerID"), old.id)
      assert.strictEqual(Circuit.sysArg(first, "newPeerID"), circuit.remote.peerId)
      assert.isTrue(Circuit.sysArg(first, "newPeerURL")!.endsWith(`/svc/${circuit.remote.peerId}`))
    })))
})

describe("plaintext over other transports", () => {
  for (const address of ["memory:circuits-test", `unix:${Os.tmpdir()}/tessera-circuits-${process.pid}.sock`]) {
    it.live(`echoes and closes over ${address.split(":")[0]} (through the Transport)`, () =>
      live(Effect.gen(function*() {
        const server = yield* host("tcp", 0)
        yield* server.register("echo", echoService())
        const bound = yield* server.listen(address)
        const client = yield* host("tcp", 1)
        yield* client.register("c", () => Effect.never)
        const me = yield* client.startLocalPeer("c")
        const circuit = yield* me.openCircuit(`${bound}/echo/`, { fragment: { subject: "echo request" } })
        assert.strictEqual((yield* circuit.read).subject, "echo reply")
        yield* circuit.close()
        const echo = server.localPeers("echo")[0]!
        yield* eventually(() => echo.openCircuitCount() === 0)
      })))
  }
})

describe("circuit errors", () => {
  it.live("a send after close fails with the close reason; user args may not start with #", () =>
    live(Effect.gen(function*() {
      const server = yield* listening("tcp")
      yield* server.service.register("echo", echoService())
      const client = yield* host("tcp", 1)
      yield* client.register("c", () => Effect.never)
      const me = yield* client.startLocalPeer("c")
      const circuit = yield* me.openCircuit(`${server.address}/echo/`)
      const bad = yield* Effect.flip(circuit.send({ args: { "#system": "x" } }))
      assert.strictEqual(bad.reason._tag, "InvalidArgument")
      yield* circuit.close("done here")
      const after = yield* Effect.flip(circuit.send({ subject: "late" }))
      assert.strictEqual(after.reason._tag, "LocalClose")
      assert.isTrue(CircuitError.isOrderly(yield* circuit.closed))
      const url = yield* Effect.flip(me.openCircuit(circuit.url))
      assert.strictEqual(url.reason._tag, "InvalidArgument")
      const fiber = yield* Effect.forkChild(Stream.runCollect(circuit.reads))
      assert.deepStrictEqual(yield* Fiber.join(fiber), [])
    })))
})
