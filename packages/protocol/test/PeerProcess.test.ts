/**
 * The cross-process cases of specs/circuits.md §3, over plaintext TCP and TLS: hosts in separate processes
 * (test/utils/circuitPeerProcess.ts), the server starting a peer on a dialling client process (Test400),
 * many circuits and bytes through a process and back, limits across processes (Test410), and a killed process
 * ending its circuits with `ConnectionLost` while the local peers stay up.
 */
import { assert, describe, it } from "@effect/vitest"
import type { Scope } from "effect"
import { Effect } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import * as Crypto from "node:crypto"
import { fileURLToPath } from "node:url"
import * as PeerIdentity from "../src/PeerIdentity.ts"
import * as PeerService from "../src/PeerService.ts"
import * as Transport from "../src/Transport.ts"
import type { Config } from "./utils/circuitPeerProcess.ts"
import { eventually, securities, text } from "./utils/circuits.ts"

const script = fileURLToPath(new URL("./utils/circuitPeerProcess.ts", import.meta.url))

const live = <A, E>(effect: Effect.Effect<A, E, Transport.Transport | Scope.Scope>) =>
  effect.pipe(Effect.provide(Transport.Transport.layer), Effect.timeout("40 seconds"))

const here = PeerIdentity.generate()
const there = PeerIdentity.generate()

/** Starts a peer process and waits for its ready line; killed when the scope closes. */
const peerProcess = (mode: "tcp" | "tls", config: Omit<Config, "tls">) =>
  Effect.gen(function*() {
    const full: Config = {
      ...config,
      tls: mode === "tls" ? { identity: there, keys: [here.publicKey] } : undefined
    }
    const child = yield* Effect.acquireRelease(
      Effect.sync(() =>
        spawn(process.execPath, [script, JSON.stringify(full)], { stdio: ["pipe", "pipe", "inherit"], timeout: 60_000 })
      ),
      (c) => Effect.sync(() => c.kill("SIGKILL"))
    )
    const address = yield* Effect.callback<string, Error>((resume) => {
      let buffered = ""
      child.stdout!.on("data", (chunk: Buffer) => {
        buffered += chunk.toString()
        const line = buffered.split("\n").find((l) => l.includes("\"ready\""))
        if (line !== undefined) resume(Effect.succeed(JSON.parse(line).address as string))
      })
      child.once("exit", (code) => resume(Effect.fail(new Error(`peer process exited with ${code}`))))
    }).pipe(Effect.timeout("20 seconds"))
    return { child, address }
  })

const localHost = (mode: "tcp" | "tls") =>
  PeerService.make({
    security: mode === "tcp"
      ? { _tag: "Plaintext" }
      : { _tag: "Tls", identity: here, trust: { _tag: "Keys", keys: [there.publicKey] } }
  })

const killed = (child: ChildProcess) =>
  Effect.callback<void>((resume) => {
    child.once("exit", () => resume(Effect.void))
    child.kill("SIGKILL")
  })

const digest = (chunks: ReadonlyArray<Uint8Array>) => {
  const hash = Crypto.createHash("sha256")
  for (const chunk of chunks) hash.update(chunk)
  return hash.digest("hex")
}

for (const mode of securities) {
  describe(`peers in other processes over ${mode}`, () => {
    it.live("Test400: the server starts a peer on a client process and echoes over a circuit to it", () =>
      live(Effect.gen(function*() {
        const server = yield* localHost(mode)
        yield* server.register("server-side", () => Effect.never)
        const address = yield* server.listen("tcp://127.0.0.1:0")
        const client = yield* peerProcess(mode, { dial: address })
        yield* eventually(() => server.connectionCount() === 1, 10_000)
        const started = yield* server.startRemotePeer("echo-client", client.address)
        assert.isTrue(started.url.startsWith(`${client.address}/echo-client/`))
        const mine = yield* server.startLocalPeer("server-side")
        const circuit = yield* mine.openCircuit(started.url, {
          fragment: { subject: "echo request", payload: text("across processes") }
        })
        const reply = yield* circuit.read
        assert.strictEqual(reply.subject, "echo reply")
        assert.strictEqual(new TextDecoder().decode(reply.payload), "across processes")
        assert.strictEqual(reply.fromPeerId, started.peerId)
      })))

    it.live("20 circuits carry 4 MiB each through another process and back, intact; Test410 limits hold there", () =>
      live(Effect.gen(function*() {
        const remote = yield* peerProcess(mode, { listen: "tcp://127.0.0.1:0" })
        const local = yield* localHost(mode)
        yield* local.register("c", () => Effect.never)
        const me = yield* local.startLocalPeer("c")
        const circuits = yield* Effect.forEach(
          Array.from({ length: 20 }),
          () => me.openCircuit(`${remote.address}/echo/`),
          { concurrency: 20 }
        )
        yield* Effect.forEach(circuits, (circuit, n) =>
          Effect.gen(function*() {
            const sent: Array<Uint8Array> = []
            for (let i = 0; i < 16; i++) sent.push(Crypto.randomBytes(256 * 1024))
            const back: Array<Uint8Array> = []
            yield* circuit.read // the (empty) opening fragment, echoed
            yield* Effect.all([
              Effect.forEach(sent, (payload, i) => circuit.send({ fragPart: n * 100 + i, payload }), { discard: true }),
              Effect.gen(function*() {
                for (let i = 0; i < sent.length; i++) {
                  const f = yield* circuit.read
                  assert.strictEqual(f.fragPart, n * 100 + i)
                  back.push(f.payload)
                }
              })
            ], { concurrency: 2 })
            assert.strictEqual(digest(back), digest(sent))
          }), { concurrency: "unbounded", discard: true })
        // Limits in the other process: one instance of `limited`, then a rejection naming it.
        const first = yield* me.startRemotePeerAndGetCircuit("limited", remote.address)
        const same = yield* me.startRemotePeerAndGetCircuit("limited", remote.address, { preferExisting: true })
        assert.strictEqual(same.remote.peerId, first.remote.peerId)
        const over = yield* Effect.flip(me.startRemotePeerAndGetCircuit("limited", remote.address))
        assert.include(over.message, "already at cfg.LimitedServiceMax")
        const unknown = yield* Effect.flip(me.startRemotePeerAndGetCircuit("nothing-here", remote.address))
        assert.strictEqual(unknown.reason._tag, "Rejected")
      })))

    it.live("a killed process ends every circuit to it with ConnectionLost; the local peer stays up", () =>
      live(Effect.gen(function*() {
        const remote = yield* peerProcess(mode, { listen: "tcp://127.0.0.1:0" })
        const local = yield* localHost(mode)
        yield* local.register("c", () => Effect.never)
        const me = yield* local.startLocalPeer("c")
        const circuits = yield* Effect.forEach(
          [1, 2, 3],
          () => me.openCircuit(`${remote.address}/echo/`, { fragment: { subject: "echo request" } })
        )
        for (const circuit of circuits) assert.strictEqual((yield* circuit.read).subject, "echo reply")
        yield* killed(remote.child)
        for (const circuit of circuits) assert.strictEqual((yield* circuit.closed)._tag, "ConnectionLost")
        assert.isFalse(me.isClosed())
        assert.strictEqual(me.openCircuitCount(), 0)
        const refused = yield* Effect.flip(me.openCircuit(`${remote.address}/echo/`))
        assert.strictEqual(refused.reason._tag, "ConnectionLost")
      })))
  })
}
