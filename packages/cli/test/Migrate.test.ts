import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import { create, hashOf, portOf, proxy, start, tempDir, tessera } from "./utils.ts"

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
    "refuses a destination with the wrong number of devices, and a file of the wrong size",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir("tessera-migrate-")
        yield* create(`file:${dir}/w.img`, "1MiB", "w")
        yield* create(`file:${dir}/small.img`, "512KiB", "small")
        for (
          const [targets, message] of [
            [[`file:${dir}/x.out`, `file:${dir}/y.out`], "the source sends 1 device(s) but 2 --device were given"],
            [[`file:${dir}/small.img`], "524288 bytes, but the incoming device w.img has 1048576"]
          ] as const
        ) {
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
          const client = yield* tessera([
            "migrate",
            "connect",
            "--from",
            String(address),
            ...targets.flatMap((t) => ["--device", t])
          ])
          assert.strictEqual(client.code, 2, client.stderr)
          assert.include(client.stderr, message)
          assert.strictEqual((yield* server.exit).code, 1)
        }
        // The existing file was left as it was.
        const small = yield* tessera(["device", "hash", `file:${dir}/small.img`])
        assert.strictEqual(small.code, 0)
        assert.strictEqual(fs.statSync(`${dir}/small.img`).size, 512 * 1024)
      }).pipe(Effect.scoped),
    120_000
  )
})
