/**
 * `tessera migrate serve|connect --via-circuit`: the Silo migration carried in a peer circuit between two real
 * processes, including a dropped network in the middle.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { create, hashOf, portOf, proxy, start, tempDir, tessera } from "./utils.ts"

describe("tessera migrate --via-circuit", () => {
  it.live("moves two file devices in a circuit, byte for byte", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("tessera-circuit-")
      const [a, b] = [`file:${dir}/a.img`, `file:${dir}/b.img`]
      yield* create(a, "8MiB", "ca")
      yield* create(b, "3MiB", "cb")
      const server = yield* start([
        "migrate",
        "serve",
        "--via-circuit",
        "--listen",
        "tcp://127.0.0.1:0",
        "--block-size",
        "256KiB",
        "--json",
        "--device",
        a,
        "--device",
        b
      ])
      const { address } = yield* server.waitFor((line) => line.event === "listening")
      const client = yield* start([
        "migrate",
        "connect",
        "--via-circuit",
        "--from",
        String(address),
        "--json",
        "--device",
        `file:${dir}/a.out`,
        "--device",
        `file:${dir}/b.out`
      ])
      const [served, received] = yield* Effect.all([server.exit, client.exit], { concurrency: 2 })
      assert.strictEqual(served.code, 0, served.stderr)
      assert.strictEqual(received.code, 0, received.stderr)
      const completed = JSON.parse(served.stdout.toString().trim().split("\n").at(-1)!)
      assert.strictEqual(completed.event, "completed")
      assert.strictEqual(completed.bytes, 11 * 1024 * 1024)
      assert.strictEqual(completed.connections, 1)
      assert.strictEqual(yield* hashOf(`file:${dir}/a.out`), yield* hashOf(a))
      assert.strictEqual(yield* hashOf(`file:${dir}/b.out`), yield* hashOf(b))
    }).pipe(Effect.scoped), 120_000)

  it.live("resumes in a new circuit after the network drops the connection", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("tessera-circuit-")
      const source = `file:${dir}/r.img`
      yield* create(source, "96MiB", "circuit-resume")
      const server = yield* start([
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
      ])
      const { address } = yield* server.waitFor((line) => line.event === "listening")
      const network = yield* proxy(portOf(address))
      const client = yield* start([
        "migrate",
        "connect",
        "--via-circuit",
        "--from",
        network.address,
        "--device",
        `file:${dir}/r.out`
      ])
      yield* server.waitFor((line) => line.event === "progress" && Number(line.migrated) > 20)
      network.drop()
      const [served, received] = yield* Effect.all([server.exit, client.exit], { concurrency: 2 })
      assert.strictEqual(served.code, 0, served.stderr)
      assert.strictEqual(received.code, 0, received.stderr)
      const completed = JSON.parse(served.stdout.toString().trim().split("\n").at(-1)!)
      assert.strictEqual(completed.connections, 2)
      assert.strictEqual(yield* hashOf(`file:${dir}/r.out`), yield* hashOf(source))
    }).pipe(Effect.scoped), 120_000)

  it.live("a source that is not serving circuits gives a clear error", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("tessera-circuit-")
      const source = `file:${dir}/p.img`
      yield* create(source, "1MiB", "plain")
      // A plain (not --via-circuit) source: the circuit frames are not what it speaks.
      const server = yield* start(["migrate", "serve", "--device", source, "--listen", "tcp://127.0.0.1:0", "--json"])
      const { address } = yield* server.waitFor((line) => line.event === "listening")
      const run = yield* tessera([
        "migrate",
        "connect",
        "--via-circuit",
        "--resume-timeout",
        "0",
        "--from",
        String(address),
        "--device",
        `file:${dir}/p.out`
      ])
      assert.strictEqual(run.code, 1, run.stderr)
      assert.notInclude(run.stderr, "    at ")
    }).pipe(Effect.scoped), 60_000)
})
