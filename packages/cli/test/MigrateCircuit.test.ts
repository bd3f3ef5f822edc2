/**
 * `tessera migrate serve|connect --via-circuit`: the Silo migration carried in a peer circuit between two real
 * processes, including a dropped network in the middle.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { start, tessera } from "./utils.ts"

const tempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "tessera-circuit-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

const hashOf = (spec: string) =>
  Effect.map(tessera(["device", "hash", spec, "--json"]), (run) => {
    assert.strictEqual(run.code, 0, run.stderr)
    return JSON.parse(run.stdout.toString()).sha256 as string
  })

const create = (spec: string, size: string, seed: string) =>
  Effect.map(tessera(["device", "create", spec, "--size", size, "--random", seed]), (run) => {
    assert.strictEqual(run.code, 0, run.stderr)
  })

/** A TCP proxy to `port` whose current connections can be dropped while new ones are still forwarded. */
const proxy = (port: number) =>
  Effect.acquireRelease(
    Effect.callback<{ readonly server: net.Server; readonly sockets: Set<net.Socket> }>((resume) => {
      const sockets = new Set<net.Socket>()
      const server = net.createServer((client) => {
        const upstream = net.connect(port, "127.0.0.1")
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
    address: `tcp://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    drop: () => {
      for (const socket of sockets) socket.destroy()
    }
  })))

const portOf = (address: unknown): number => Number(String(address).split(":").at(-1))

describe("tessera migrate --via-circuit", () => {
  it.live("moves two file devices in a circuit, byte for byte", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
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
      const dir = yield* tempDir
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
      const dir = yield* tempDir
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
