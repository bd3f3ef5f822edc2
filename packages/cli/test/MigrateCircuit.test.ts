/**
 * `tessera migrate serve|connect --via-circuit`: the Silo migration carried in a peer circuit between two real
 * processes, over TLS 1.3 with Ed25519 keys pinned in known-keys files (or `--plaintext`), including a dropped
 * network in the middle, keys that are refused, and flags that do not go together.
 *
 * Devices are plain files made and compared here, not with `tessera device`: each process costs about a second
 * of CPU, and these tests run side by side.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { configDir } from "../src/CircuitSecurity.ts"
import { jsonLines, portOf, proxy, start, tempDir, tessera } from "./utils.ts"

const MiB = 1024 * 1024

/** Makes a file device of `size` random bytes; gives its spec. */
const randomFile = (file: string, size: number): string => {
  fs.writeFileSync(file, Crypto.randomBytes(size))
  return `file:${file}`
}

/** Whether two files hold the same bytes. */
const sameBytes = (a: string, b: string): boolean => fs.readFileSync(a).equals(fs.readFileSync(b))

/** The TLS flags of one side, with its identity and known keys in `dir`. */
const tls = (dir: string, side: string) => ["--identity", `${dir}/${side}-id`, "--known-keys", `${dir}/${side}-keys`]

/** The `trusted` reports (a key added on first use) among a command's JSON lines. */
const trusted = (stdout: Parameters<typeof jsonLines>[0]) =>
  jsonLines(stdout).filter((line) => line.event === "trusted")

/** The entries of a known-keys file, as `address key` lines. */
const knownKeys = (file: string) =>
  fs.readFileSync(file, "utf8").split("\n").filter((line) => line.trim() !== "" && !line.startsWith("#"))

const ED25519 = /^ed25519:[A-Za-z0-9_-]{43}$/

describe("tessera migrate --via-circuit", () => {
  it.live(
    "moves two file devices over TLS, byte for byte; each side pins the other's key on first use",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir("tessera-circuit-")
        const [a, b] = [randomFile(`${dir}/a.img`, 8 * MiB), randomFile(`${dir}/b.img`, 3 * MiB)]
        const server = yield* start([
          "migrate",
          "serve",
          "--via-circuit",
          ...tls(dir, "source"),
          "--listen",
          "tcp://127.0.0.1:0",
          "--block-size",
          "256KiB",
          "--json",
          "--device",
          a,
          "--device",
          b
        ], 90_000)
        const listening = yield* server.waitFor((line) => line.event === "listening")
        const address = String(listening.address)
        assert.strictEqual(listening.tls, true)
        assert.strictEqual(listening.trust, "tofu")
        assert.strictEqual(listening.knownKeys, `${dir}/source-keys`)
        const sourceKey = String(listening.publicKey)
        assert.match(sourceKey, ED25519)
        assert.strictEqual(fs.statSync(`${dir}/source-id/identity.key`).mode & 0o777, 0o600)
        const client = yield* start([
          "migrate",
          "connect",
          "--via-circuit",
          ...tls(dir, "destination"),
          "--from",
          address,
          "--json",
          "--device",
          `file:${dir}/a.out`,
          "--device",
          `file:${dir}/b.out`
        ], 90_000)
        const connecting = yield* client.waitFor((line) => line.event === "connecting")
        const destinationKey = String(connecting.publicKey)
        assert.match(destinationKey, ED25519)
        assert.notStrictEqual(destinationKey, sourceKey)
        const [served, received] = yield* Effect.all([server.exit, client.exit], { concurrency: 2 })
        assert.strictEqual(served.code, 0, served.stderr)
        assert.strictEqual(received.code, 0, received.stderr)
        const completed = jsonLines(served.stdout).at(-1)!
        assert.strictEqual(completed.event, "completed")
        assert.strictEqual(completed.bytes, 11 * MiB)
        assert.strictEqual(completed.connections, 1)
        assert.isTrue(sameBytes(`${dir}/a.out`, `${dir}/a.img`))
        assert.isTrue(sameBytes(`${dir}/b.out`, `${dir}/b.img`))
        // Trust on first use: each side wrote down the other's key.
        assert.deepStrictEqual(knownKeys(`${dir}/destination-keys`), [`${address} ${sourceKey}`])
        const learnt = knownKeys(`${dir}/source-keys`)
        assert.strictEqual(learnt.length, 1)
        assert.strictEqual(learnt[0]!.split(" ")[1], destinationKey)
        // ... and said so, once.
        assert.deepStrictEqual(trusted(received.stdout), [
          { event: "trusted", peer: address, key: sourceKey, knownKeys: `${dir}/destination-keys` }
        ])
        assert.deepStrictEqual(trusted(served.stdout).map((line) => [line.key, line.knownKeys]), [
          [destinationKey, `${dir}/source-keys`]
        ])
      }).pipe(Effect.scoped),
    120_000
  )

  it.live(
    "resumes over TLS in a new circuit after the network drops and refuses connections for a while",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir("tessera-circuit-")
        const source = randomFile(`${dir}/r.img`, 96 * MiB)
        // Identities and known keys in their default places: $TESSERA_HOME, and $XDG_CONFIG_HOME/tessera.
        const server = yield* start(
          [
            "migrate",
            "serve",
            "--via-circuit",
            "--device",
            source,
            "--listen",
            "tcp://127.0.0.1:0",
            "--block-size",
            "64KiB",
            "--concurrency",
            "4",
            "--json"
          ],
          90_000,
          { TESSERA_HOME: `${dir}/source-home` }
        )
        const listening = yield* server.waitFor((line) => line.event === "listening")
        assert.strictEqual(listening.knownKeys, `${dir}/source-home/known_keys`)
        const network = yield* proxy(portOf(listening.address))
        const client = yield* start(
          [
            "migrate",
            "connect",
            "--via-circuit",
            "--from",
            network.address,
            "--device",
            `file:${dir}/r.out`
          ],
          90_000,
          { TESSERA_HOME: "", XDG_CONFIG_HOME: `${dir}/xdg` }
        )
        yield* server.waitFor((line) => line.event === "progress" && Number(line.migrated) > 20)
        // The destination's dials fail for a second (no TLS handshake gets through) before the network is back.
        network.refuse(true)
        network.drop()
        yield* Effect.sleep("1 second")
        network.refuse(false)
        const [served, received] = yield* Effect.all([server.exit, client.exit], { concurrency: 2 })
        assert.strictEqual(served.code, 0, served.stderr)
        assert.strictEqual(received.code, 0, received.stderr)
        assert.include(received.stderr, "connection lost")
        const completed = jsonLines(served.stdout).at(-1)!
        assert.strictEqual(completed.connections, 2)
        assert.isTrue(sameBytes(`${dir}/r.out`, `${dir}/r.img`))
        assert.isTrue(fs.existsSync(`${dir}/source-home/identity.key`))
        assert.deepStrictEqual(knownKeys(`${dir}/xdg/tessera/known_keys`), [
          `${network.address} ${listening.publicKey}`
        ])
        // Without --json the addition is a line on stderr, once: the redial found the key already there.
        const added = `added ${listening.publicKey} (from ${network.address}) to ${dir}/xdg/tessera/known_keys`
        assert.strictEqual(received.stderr.split("\n").filter((line) => line.includes(added)).length, 1)
      }).pipe(Effect.scoped),
    120_000
  )

  it.live("--plaintext on both sides: no TLS, no identity", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("tessera-circuit-")
      const source = randomFile(`${dir}/p.img`, 2 * MiB)
      const server = yield* start(
        [
          "migrate",
          "serve",
          "--via-circuit",
          "--plaintext",
          "--device",
          source,
          "--listen",
          "tcp://127.0.0.1:0",
          "--json"
        ],
        90_000,
        { TESSERA_HOME: `${dir}/home` }
      )
      const listening = yield* server.waitFor((line) => line.event === "listening")
      assert.strictEqual(listening.tls, false)
      assert.isUndefined(listening.publicKey)
      const client = yield* tessera(
        [
          "migrate",
          "connect",
          "--via-circuit",
          "--plaintext",
          "--from",
          String(listening.address),
          "--device",
          `file:${dir}/p.out`
        ],
        undefined,
        90_000
      )
      assert.strictEqual(client.code, 0, client.stderr)
      assert.strictEqual((yield* server.exit).code, 0)
      assert.isTrue(sameBytes(`${dir}/p.out`, `${dir}/p.img`))
      assert.isFalse(fs.existsSync(`${dir}/home`))
    }).pipe(Effect.scoped), 120_000)

  it.live(
    "a locked destination refuses an unknown source key; the source waits for one that trusts it",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir("tessera-circuit-")
        const source = randomFile(`${dir}/l.img`, 2 * MiB)
        const before = fs.readFileSync(`${dir}/l.img`)
        const server = yield* start([
          "migrate",
          "serve",
          "--via-circuit",
          ...tls(dir, "source"),
          "--device",
          source,
          "--listen",
          "tcp://127.0.0.1:0",
          "--json"
        ], 90_000)
        const listening = yield* server.waitFor((line) => line.event === "listening")
        const address = String(listening.address)
        const pinned = `${dir}/destination-keys`
        fs.writeFileSync(pinned, "")
        const connect = [
          "migrate",
          "connect",
          "--via-circuit",
          "--identity",
          `${dir}/destination-id`,
          "--known-keys",
          pinned,
          "--trust",
          "locked",
          "--from",
          address,
          "--device",
          `file:${dir}/l.out`
        ]
        const refused = yield* tessera(connect, undefined, 60_000)
        assert.strictEqual(refused.code, 1, refused.stderr)
        assert.include(
          refused.stderr,
          `tessera: ${address}: the peer's key ${listening.publicKey} (from ${address}) is not in ${pinned}`
        )
        assert.notInclude(refused.stderr, "    at ")
        // Nothing was received or written anywhere, and the source still waits for its destination.
        assert.isFalse(fs.existsSync(`${dir}/l.out`))
        assert.strictEqual(fs.readFileSync(pinned, "utf8"), "")
        assert.isTrue(fs.readFileSync(`${dir}/l.img`).equals(before))
        assert.isNull(server.child.exitCode)
        // Once the key is pinned, the same destination gets the devices.
        fs.writeFileSync(pinned, `${address} ${listening.publicKey}\n`)
        const received = yield* tessera(connect, undefined, 60_000)
        assert.strictEqual(received.code, 0, received.stderr)
        assert.strictEqual((yield* server.exit).code, 0)
        assert.isTrue(fs.readFileSync(`${dir}/l.out`).equals(before))
      }).pipe(Effect.scoped),
    120_000
  )

  it.live("a locked source refuses an unknown destination, says so, and keeps serving", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("tessera-circuit-")
      const source = randomFile(`${dir}/s.img`, MiB)
      fs.writeFileSync(`${dir}/source-keys`, "# nobody yet\n")
      const server = yield* start([
        "migrate",
        "serve",
        "--via-circuit",
        ...tls(dir, "source"),
        "--trust",
        "locked",
        "--device",
        source,
        "--listen",
        "tcp://127.0.0.1:0",
        "--json"
      ], 90_000)
      const listening = yield* server.waitFor((line) => line.event === "listening")
      assert.strictEqual(listening.trust, "locked")
      const connect = [
        "migrate",
        "connect",
        "--via-circuit",
        ...tls(dir, "destination"),
        "--from",
        String(listening.address),
        "--json",
        "--device",
        `file:${dir}/s.out`
      ]
      const refused = yield* tessera(connect, undefined, 60_000)
      assert.strictEqual(refused.code, 1, refused.stderr)
      const destinationKey = String(jsonLines(refused.stdout).find((line) => line.event === "connecting")!.publicKey)
      assert.include(refused.stderr, `it may not trust this host's key ${destinationKey}`)
      assert.notInclude(refused.stderr, "    at ")
      assert.isNull(server.child.exitCode)
      fs.appendFileSync(`${dir}/source-keys`, `tcp://destination ${destinationKey}\n`)
      const received = yield* tessera(connect, undefined, 60_000)
      assert.strictEqual(received.code, 0, received.stderr)
      const served = yield* server.exit
      assert.strictEqual(served.code, 0, served.stderr)
      assert.include(served.stderr, `refused a connection: the peer's key ${destinationKey}`)
      assert.isTrue(sameBytes(`${dir}/s.out`, `${dir}/s.img`))
    }).pipe(Effect.scoped), 120_000)

  it.live("a source that is not serving circuits gives a clear error", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("tessera-circuit-")
      const source = randomFile(`${dir}/p.img`, MiB)
      // A plain (not --via-circuit) source: neither TLS nor circuit frames are what it speaks.
      const server = yield* start(["migrate", "serve", "--device", source, "--listen", "tcp://127.0.0.1:0", "--json"])
      const { address } = yield* server.waitFor((line) => line.event === "listening")
      const run = yield* tessera(
        [
          "migrate",
          "connect",
          "--via-circuit",
          ...tls(dir, "destination"),
          "--resume-timeout",
          "0",
          "--from",
          String(address),
          "--device",
          `file:${dir}/p.out`
        ],
        undefined,
        60_000
      )
      assert.strictEqual(run.code, 1, run.stderr)
      assert.include(run.stderr, "the TLS handshake failed")
      assert.notInclude(run.stderr, "    at ")
    }).pipe(Effect.scoped), 120_000)

  it.live(
    "security flags that do not go together are bad input, and nothing is made for them",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir("tessera-circuit-")
        const serve = ["migrate", "serve", "--device", "memory:1MiB"]
        const connect = ["migrate", "connect", "--device", "memory:1MiB", "--from", "tcp://127.0.0.1:1"]
        fs.mkdirSync(`${dir}/bad`)
        fs.writeFileSync(`${dir}/bad/identity.key`, "not a key")
        const cases: ReadonlyArray<readonly [ReadonlyArray<string>, string]> = [
          [[...serve, "--plaintext", "--identity", `${dir}/id`], "--identity, --plaintext need --via-circuit"],
          [[...connect, "--via-circuit", "--plaintext", "--trust", "locked"], "--plaintext turns TLS off: --trust"],
          [[...serve, "--via-circuit", "--listen", `unix:${dir}/sock`, "--identity", `${dir}/id`], "give --plaintext"],
          [
            [...connect, "--via-circuit", ...tls(dir, "d"), "--trust", "locked"],
            `--trust locked: ${dir}/d-keys does not exist`
          ],
          [[...serve, "--via-circuit", "--identity", `${dir}/bad`], `this host's identity: ${dir}/bad/identity.key`]
        ]
        for (const [args, message] of cases) {
          const run = yield* tessera(args, undefined, 60_000)
          assert.strictEqual(run.code, 2, `${args.join(" ")}: ${run.stderr}`)
          assert.include(run.stderr, message)
          assert.notInclude(run.stderr, "    at ")
        }
        assert.isFalse(fs.existsSync(`${dir}/id`))
        assert.isFalse(fs.existsSync(`${dir}/d-id`))
      }).pipe(Effect.scoped),
    120_000
  )

  it("the config directory is $TESSERA_HOME, else $XDG_CONFIG_HOME/tessera, else ~/.config/tessera", () => {
    assert.strictEqual(configDir({ tesseraHome: "/t", xdgConfigHome: "/x", home: "/h" }), "/t")
    assert.strictEqual(configDir({ tesseraHome: "", xdgConfigHome: "/x", home: "/h" }), path.join("/x", "tessera"))
    assert.strictEqual(configDir({ xdgConfigHome: "", home: "/h" }), path.join("/h", ".config", "tessera"))
  })
})
