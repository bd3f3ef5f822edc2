/**
 * Ed25519 identities, their self-signed certificates, and known-keys pinning over real TLS 1.3 connections:
 * trusted keys connect, unknown ones are refused (locked) or learnt (trust on first use), TLS 1.2 and
 * plaintext clients get nowhere, and the host stays up for the next connection.
 */
import { assert, describe, it } from "@effect/vitest"
import type { Scope } from "effect"
import { Effect, Result } from "effect"
import * as ChildProcess from "node:child_process"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Tls from "node:tls"
import * as PeerIdentity from "../src/PeerIdentity.ts"
import * as PeerService from "../src/PeerService.ts"
import * as Transport from "../src/Transport.ts"
import { echoService, text } from "./utils/circuits.ts"

const live = <A, E>(effect: Effect.Effect<A, E, Transport.Transport | Scope.Scope>) =>
  effect.pipe(Effect.provide(Transport.Transport.layer), Effect.timeout("20 seconds"))

const tempDir = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "tessera-identity-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

const tlsHost = (identity: PeerIdentity.Identity, trust: PeerIdentity.Trust) =>
  PeerService.make({ security: { _tag: "Tls", identity, trust } })

/** A server with an echo service, and a client that opens a circuit to it and reads the echo. */
const roundTrip = (server: PeerService.PeerServiceShape, address: string, client: PeerService.PeerServiceShape) =>
  Effect.gen(function*() {
    yield* server.register("echo", echoService())
    yield* client.register("c", () => Effect.never)
    const me = yield* client.startLocalPeer("c", { preferExisting: true })
    const circuit = yield* me.openCircuit(`${address}/echo/`, { fragment: { payload: text("tls") } })
    return yield* circuit.read
  })

describe("PeerIdentity", () => {
  it("makes a self-signed Ed25519 certificate for the key, and names the key", () => {
    const identity = PeerIdentity.generate()
    const certificate = new Crypto.X509Certificate(identity.certificatePem)
    assert.strictEqual(certificate.publicKey.asymmetricKeyType, "ed25519")
    assert.strictEqual(PeerIdentity.keyText(certificate.publicKey), identity.publicKey)
    assert.isTrue(certificate.verify(certificate.publicKey))
    assert.strictEqual(certificate.subject, "CN=tessera")
    assert.match(identity.publicKey, /^ed25519:[A-Za-z0-9_-]{43}$/)
    assert.notStrictEqual(PeerIdentity.generate().publicKey, identity.publicKey)
  })

  it.effect("loadOrCreate writes a private key file once (mode 0600) and reads the same identity back", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const first = yield* PeerIdentity.loadOrCreate(dir, "node")
      const path = Path.join(dir, "node.key")
      assert.strictEqual(Fs.statSync(path).mode & 0o777, 0o600)
      const again = yield* PeerIdentity.loadOrCreate(dir, "node")
      assert.strictEqual(again.publicKey, first.publicKey)
      Fs.writeFileSync(Path.join(dir, "bad.key"), "not a key")
      const bad = yield* Effect.flip(PeerIdentity.loadOrCreate(dir, "bad"))
      assert.strictEqual(bad._tag, "IdentityError")
    }))

  it.live(
    "processes creating the same identity at once all get the one key that was written",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        const module = new URL("../src/PeerIdentity.ts", import.meta.url).href
        // Each child waits for the same moment, then loads or creates the key and prints its public half.
        const start = Date.now() + 1500
        const script = `const { loadOrCreate } = await import(${JSON.stringify(module)});
        const { Effect } = await import("effect");
        while (Date.now() < ${start}) {}
        const exit = await Effect.runPromiseExit(loadOrCreate(${JSON.stringify(dir)}, "node"));
        console.log(exit._tag === "Success" ? exit.value.publicKey : "failed: " + String(exit.cause));`
        const children = Array.from({ length: 6 }, () =>
          Effect.promise(() =>
            new Promise<string>((resolve) => {
              ChildProcess.execFile(
                process.execPath,
                ["--input-type=module", "-e", script],
                { cwd: Path.dirname(new URL(import.meta.url).pathname), timeout: 20_000 },
                (error, stdout, stderr) => resolve(error === null ? stdout.trim() : `exited: ${stderr}`)
              )
            })
          ))
        const keys = yield* Effect.all(children, { concurrency: "unbounded" })
        const written = (yield* PeerIdentity.loadOrCreate(dir, "node")).publicKey
        assert.deepStrictEqual(keys, keys.map(() => written))
        assert.deepStrictEqual(Fs.readdirSync(dir), ["node.key"])
      }),
    { timeout: 30_000 }
  )

  it("parses known-keys files, ignoring comments and malformed lines", () => {
    const key = PeerIdentity.generate().publicKey
    const entries = PeerIdentity.parseKnownKeys(
      `# hosts\ntcp://a:1 ${key} # mine\n\ngarbage line\ntcp://b:2 ed25519:short\n`
    )
    assert.deepStrictEqual(entries, [{ address: "tcp://a:1", key }])
  })

  it.live("pinned keys connect; a key not in the list is refused, and the host keeps serving", () =>
    live(Effect.gen(function*() {
      const [a, b, stranger] = [PeerIdentity.generate(), PeerIdentity.generate(), PeerIdentity.generate()]
      const server = yield* tlsHost(a, { _tag: "Keys", keys: [b.publicKey] })
      const address = yield* server.listen("tcp://127.0.0.1:0")
      const reply = yield* roundTrip(server, address, yield* tlsHost(b, { _tag: "Keys", keys: [a.publicKey] }))
      assert.strictEqual(new TextDecoder().decode(reply.payload), "tls")
      // The server does not know the stranger's key: the connection is dropped after the handshake.
      const refused = yield* Effect.flip(roundTrip(server, address, yield* tlsHost(stranger, { _tag: "AnyKey" })))
      assert.include(["ConnectionLost", "Timeout"], refused.reason._tag)
      // The client does not know the server's key: it refuses the server.
      const untrusted = yield* Effect.flip(roundTrip(server, address, yield* tlsHost(b, { _tag: "Keys", keys: [] })))
      assert.strictEqual(untrusted.reason._tag, "Untrusted")
      // Still serving.
      const again = yield* roundTrip(server, address, yield* tlsHost(b, { _tag: "Keys", keys: [a.publicKey] }))
      assert.strictEqual(new TextDecoder().decode(again.payload), "tls")
    })))

  it.live("trust on first use appends new keys to the file; a locked file refuses them", () =>
    live(Effect.gen(function*() {
      const dir = yield* tempDir
      const [a, b, c] = [PeerIdentity.generate(), PeerIdentity.generate(), PeerIdentity.generate()]
      const serverKeys = Path.join(dir, "known_client_keys")
      const server = yield* tlsHost(a, { _tag: "KnownKeys", path: serverKeys, mode: "tofu" })
      const address = yield* server.listen("tcp://127.0.0.1:0")
      const clientKeys = Path.join(dir, "known_server_keys")
      yield* roundTrip(server, address, yield* tlsHost(b, { _tag: "KnownKeys", path: clientKeys, mode: "tofu" }))
      assert.include(Fs.readFileSync(serverKeys, "utf8"), b.publicKey)
      assert.include(Fs.readFileSync(clientKeys, "utf8"), `${address} ${a.publicKey}`)
      // Locked with b's entry only: c is refused, b still gets in.
      const locked = yield* tlsHost(a, { _tag: "KnownKeys", path: serverKeys, mode: "locked" })
      const lockedAddress = yield* locked.listen("tcp://127.0.0.1:0")
      const refused = yield* Effect.flip(roundTrip(locked, lockedAddress, yield* tlsHost(c, { _tag: "AnyKey" })))
      assert.include(["ConnectionLost", "Timeout"], refused.reason._tag)
      assert.notInclude(Fs.readFileSync(serverKeys, "utf8"), c.publicKey)
      yield* roundTrip(locked, lockedAddress, yield* tlsHost(b, { _tag: "AnyKey" }))
    })))

  it.live("only TLS 1.3 is spoken; a plaintext peer is refused", () =>
    live(Effect.gen(function*() {
      const [a, b] = [PeerIdentity.generate(), PeerIdentity.generate()]
      const server = yield* tlsHost(a, { _tag: "AnyKey" })
      const address = yield* server.listen("tcp://127.0.0.1:0")
      const port = Number(address.split(":").at(-1))
      const handshake = (maxVersion: Tls.SecureVersion) =>
        Effect.callback<Result.Result<string, string>>((resume) => {
          const socket = Tls.connect({
            host: "127.0.0.1",
            port,
            key: b.privateKeyPem,
            cert: b.certificatePem,
            rejectUnauthorized: false,
            maxVersion
          })
          socket.once("secureConnect", () => {
            resume(Effect.succeed(Result.succeed(socket.getProtocol() ?? "")))
            socket.destroy()
          })
          socket.once("error", (error) => resume(Effect.succeed(Result.fail(error.message))))
        })
      assert.deepStrictEqual(yield* handshake("TLSv1.3"), Result.succeed("TLSv1.3"))
      assert.isTrue(Result.isFailure(yield* handshake("TLSv1.2")))
      // A plaintext host's frames are not a TLS hello: it gets nothing back and its circuit never opens.
      const plain = yield* PeerService.make({ security: { _tag: "Plaintext" }, ackTimeout: "1 second" })
      const failed = yield* Effect.flip(roundTrip(server, address, plain))
      assert.include(["ConnectionLost", "Timeout"], failed.reason._tag)
      // A raw socket sending garbage does not hurt the listener either.
      yield* Effect.callback<void>((resume) => {
        const socket = Net.connect(port, "127.0.0.1", () => socket.end("garbage\r\n\r\n"))
        socket.on("error", () => {})
        socket.on("close", () => resume(Effect.void))
      })
      yield* roundTrip(server, address, yield* tlsHost(b, { _tag: "AnyKey" }))
    })))
})
