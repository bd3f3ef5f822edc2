import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as net from "node:net"
import { create, hashOf, portOf, proxy, start, tempDir, tessera } from "./utils.ts"

/**
 * Connects to `port`, writes `bytes` (nothing when empty), half-closes and waits until the other side closed the
 * connection, or until `millis` passed (then fails: the source did not drop the connection).
 */
const sendAndHangUp = (port: number, bytes: Uint8Array, millis = 20_000) =>
  Effect.callback<void, Error>((resume) => {
    const socket = net.connect(port, "127.0.0.1", () => socket.end(bytes))
    const timer = setTimeout(() => {
      socket.destroy()
      resume(Effect.fail(new Error(`the source kept a garbage connection open for ${millis} ms`)))
    }, millis)
    socket.on("error", () => {})
    socket.on("data", () => {})
    socket.on("close", () => {
      clearTimeout(timer)
      resume(Effect.void)
    })
    return Effect.sync(() => {
      clearTimeout(timer)
      socket.destroy()
    })
  })

/** `length` bytes of a fixed xorshift sequence: the same "random" burst on every run. */
const noise = (length: number, seed = 0x9e3779b9): Uint8Array => {
  const bytes = new Uint8Array(length)
  let x = seed
  for (let i = 0; i < length; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    bytes[i] = x & 0xff
  }
  return bytes
}

/** The start of a TLS 1.2/1.3 ClientHello record, as a TLS client sends it first. */
const clientHello = Uint8Array.from([
  0x16,
  0x03,
  0x01,
  0x00,
  0xf8,
  0x01,
  0x00,
  0x00,
  0xf4,
  0x03,
  0x03,
  ...noise(32, 7),
  0x20,
  ...noise(32, 11),
  0x00,
  0x08,
  0x13,
  0x01,
  0x13,
  0x02,
  0x13,
  0x03,
  0x00,
  0xff,
  0x01,
  0x00
])

/** Serves `devices` with `flags`, connects into `targets`, and checks both end well and the data is equal. */
const migrate = Effect.fnUntraced(function*(
  listen: string,
  devices: ReadonlyArray<string>,
  targets: ReadonlyArray<string>,
  flags: ReadonlyArray<string> = []
) {
  const server = yield* start([
    "migrate",
    "serve",
    "--listen",
    listen,
    "--json",
    ...devices.flatMap((d) => ["--device", d]),
    ...flags
  ])
  const { address } = yield* server.waitFor((line) => line.event === "listening")
  const client = yield* start([
    "migrate",
    "connect",
    "--from",
    String(address),
    "--json",
    ...targets.flatMap((d) => ["--device", d])
  ])
  const [served, received] = yield* Effect.all([server.exit, client.exit], { concurrency: 2 })
  assert.strictEqual(served.code, 0, served.stderr)
  assert.strictEqual(received.code, 0, received.stderr)
  for (const [i, device] of devices.entries()) assert.strictEqual(yield* hashOf(targets[i]!), yield* hashOf(device))
  return served.stdout.toString().trim().split("\n").map((line) => JSON.parse(line) as Record<string, unknown>)
})

describe("tessera migrate", () => {
  it.live("moves two file devices over TCP, byte for byte", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("tessera-migrate-")
      const [a, b] = [`file:${dir}/a.img`, `file:${dir}/b.img`]
      yield* create(a, "8MiB", "a")
      yield* create(b, "3MiB", "b")
      const lines = yield* migrate("tcp://127.0.0.1:0", [a, b], [`file:${dir}/a.out`, `file:${dir}/b.out`], [
        "--block-size",
        "256KiB"
      ])
      const completed = lines.find((line) => line.event === "completed")!
      assert.strictEqual(completed.bytes, 11 * 1024 * 1024)
      assert.strictEqual(completed.connections, 1)
    }).pipe(Effect.scoped), 120_000)

  it.live("moves a sparse device over a Unix socket into a new sparse file", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("tessera-migrate-")
      yield* create(`sparse:${dir}/s.img`, "6MiB", "s")
      yield* migrate(`unix:${dir}/m.sock`, [`sparse:${dir}/s.img`], [`sparse:${dir}/s.out`])
    }).pipe(Effect.scoped), 120_000)

  for (const compress of ["none", "rle", "zeroes", "gzip"]) {
    it.live(`moves data with --compress ${compress}`, () =>
      Effect.gen(function*() {
        const dir = yield* tempDir("tessera-migrate-")
        yield* create(`file:${dir}/c.img`, "4MiB", compress)
        yield* migrate("tcp://127.0.0.1:0", [`file:${dir}/c.img`], [`file:${dir}/c.out`], [
          "--compress",
          compress,
          "--block-size",
          "64KiB"
        ])
      }).pipe(Effect.scoped), 120_000)
  }

  it.live("resumes after the network drops the connection and still ends identical", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("tessera-migrate-")
      const source = `file:${dir}/r.img`
      yield* create(source, "96MiB", "resume")
      const server = yield* start([
        "migrate",
        "serve",
        "--device",
        source,
        "--listen",
        "tcp://127.0.0.1:0",
        "--block-size",
        "64KiB",
        "--concurrency",
        "4",
        "--json"
      ])
      const { address } = yield* server.waitFor((line) => line.event === "listening")
      const network = yield* proxy(portOf(address))
      const client = yield* start(["migrate", "connect", "--from", network.address, "--device", `file:${dir}/r.out`])
      yield* server.waitFor((line) => line.event === "progress" && Number(line.migrated) > 100)
      network.drop()
      const [served, received] = yield* Effect.all([server.exit, client.exit], { concurrency: 2 })
      assert.strictEqual(served.code, 0, served.stderr)
      assert.strictEqual(received.code, 0, received.stderr)
      assert.include(received.stderr, "connection lost")
      const completed = JSON.parse(served.stdout.toString().trim().split("\n").at(-1)!)
      assert.strictEqual(completed.connections, 2)
      assert.isAbove(completed.devices[0].blocksSkipped, 0)
      assert.strictEqual(yield* hashOf(`file:${dir}/r.out`), yield* hashOf(source))
    }).pipe(Effect.scoped), 120_000)

  it.live("a destination killed mid-migration makes the source fail with a clear error", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("tessera-migrate-")
      const source = `file:${dir}/k.img`
      yield* create(source, "96MiB", "kill")
      const server = yield* start([
        "migrate",
        "serve",
        "--device",
        source,
        "--json",
        "--listen",
        "tcp://127.0.0.1:0",
        "--block-size",
        "64KiB",
        "--concurrency",
        "4",
        "--resume-timeout",
        "1"
      ])
      const { address } = yield* server.waitFor((line) => line.event === "listening")
      const client = yield* start(["migrate", "connect", "--from", String(address), "--device", `file:${dir}/k.out`])
      yield* server.waitFor((line) => line.event === "progress" && Number(line.migrated) > 50)
      client.child.kill("SIGKILL")
      const served = yield* server.exit
      assert.strictEqual(served.code, 1)
      assert.match(served.stderr, /tessera: the destination went away \(.+\) and did not come back within 1s/)
    }).pipe(Effect.scoped), 120_000)

  it.live(
    "refuses connections that are not destinations and still migrates to the real one",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir("tessera-migrate-")
        const source = `file:${dir}/g.img`
        yield* create(source, "2MiB", "garbage")
        const before = fs.readFileSync(`${dir}/g.img`)
        const server = yield* start([
          "migrate",
          "serve",
          "--device",
          source,
          "--listen",
          "tcp://127.0.0.1:0",
          "--block-size",
          "256KiB",
          "--resume-timeout",
          "1",
          "--json"
        ])
        const { address } = yield* server.waitFor((line) => line.event === "listening")
        const port = portOf(address)
        // A burst of random bytes (a frame length far over the cap), a TLS ClientHello, a frame header announcing
        // more than then arrives, and a port scanner that connects and hangs up at once: each is refused and closed.
        const header = new Uint8Array(12)
        new DataView(header.buffer).setUint32(8, 1024)
        for (const bytes of [noise(4096), clientHello, header, new Uint8Array(0)]) {
          yield* sendAndHangUp(port, bytes)
        }
        const refused = new Set<Record<string, unknown>>()
        yield* server.waitFor((line) => {
          if (line.event === "refused") refused.add(line)
          return refused.size === 4
        }, 20_000)
        assert.isNull(server.child.exitCode, "the source must still be listening")
        const client = yield* start(["migrate", "connect", "--from", String(address), "--device", `file:${dir}/g.out`])
        const [served, received] = yield* Effect.all([server.exit, client.exit], { concurrency: 2 })
        assert.strictEqual(served.code, 0, served.stderr)
        assert.strictEqual(received.code, 0, received.stderr)
        const lines = served.stdout.toString().trim().split("\n").map((line) => JSON.parse(line))
        const refusals = lines.filter((line) => line.event === "refused")
        const reasons = refusals.map((refusal) => String(refusal.reason))
        assert.strictEqual(reasons.length, 4, reasons.join("\n"))
        assert.include(reasons[0], "exceeds")
        assert.include(reasons[1], "exceeds")
        assert.include(reasons[2], "malformed frame")
        assert.include(reasons[3], "connection closed")
        for (const refusal of refusals) assert.match(refusal.from, /^tcp:\/\/127/)
        assert.strictEqual(lines.at(-1).connections, 1)
        assert.isTrue(fs.readFileSync(`${dir}/g.img`).equals(before), "the source device changed")
        assert.isTrue(fs.readFileSync(`${dir}/g.out`).equals(before), "the destination differs from the source")
      }).pipe(Effect.scoped),
    120_000
  )

  it.live(
    "refuses a destination with the wrong number of devices, and a file of the wrong size, and keeps serving",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir("tessera-migrate-")
        yield* create(`file:${dir}/w.img`, "1MiB", "w")
        yield* create(`file:${dir}/small.img`, "512KiB", "small")
        const server = yield* start([
          "migrate",
          "serve",
          "--device",
          `file:${dir}/w.img`,
          "--listen",
          "tcp://127.0.0.1:0",
          "--json",
          "--resume-timeout",
          "0"
        ])
        const { address } = yield* server.waitFor((line) => line.event === "listening")
        const refused = new Set<Record<string, unknown>>()
        for (
          const [targets, message] of [
            [[`file:${dir}/x.out`, `file:${dir}/y.out`], "the source sends 1 device(s) but 2 --device were given"],
            [[`file:${dir}/small.img`], "524288 bytes, but the incoming device w.img has 1048576"]
          ] as const
        ) {
          const client = yield* tessera([
            "migrate",
            "connect",
            "--from",
            String(address),
            ...targets.flatMap((t) => ["--device", t])
          ])
          assert.strictEqual(client.code, 2, client.stderr)
          assert.include(client.stderr, message)
          // The destination hung up before it acknowledged anything: the source says so and waits on.
          yield* server.waitFor((line) => line.event === "refused" && !refused.has(line) && !!refused.add(line))
          assert.isNull(server.child.exitCode)
        }
        // The existing file was left as it was.
        const small = yield* tessera(["device", "hash", `file:${dir}/small.img`])
        assert.strictEqual(small.code, 0)
        assert.strictEqual(fs.statSync(`${dir}/small.img`).size, 512 * 1024)
      }).pipe(Effect.scoped),
    120_000
  )
})
