import { assert, describe, it } from "@effect/vitest"
import { DnetClient, DnetRing, Transport } from "@tessera/protocol"
import { Effect, Result } from "effect"
import { jsonLines, start, tempDir, tessera } from "./utils.ts"

/** Starts `tessera dnet serve` with `args` and waits for its listening line. */
const serve = (args: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const running = yield* start(["dnet", "serve", "--json", ...args], 120_000)
    const line = yield* running.waitFor((l) => l.event === "listening", 30_000)
    return { running, address: String(line.address), line }
  })

const until = <R>(check: Effect.Effect<boolean, never, R>, what: string) =>
  Effect.gen(function*() {
    while (!(yield* check)) yield* Effect.sleep(100)
  }).pipe(Effect.timeoutOrElse({ duration: "20 seconds", orElse: () => Effect.die(new Error(`timed out: ${what}`)) }))

/** A library client of the network (the CLI's own commands are checked separately: they cost a process each). */
const clientOf = (node: string) => DnetClient.make({ nodes: [node], timeout: "10 seconds" })

const KEYS = Array.from({ length: 24 }, (_, i) => `object-${i}`)

describe("tessera dnet", () => {
  it.live(
    "3 nodes in 2 groups: both groups written, every key read with a node killed, a restarted node routed to again",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir("tessera-dnet-")
        const a = yield* serve(["--backend", "memory", "--listen", "tcp://127.0.0.1:0", "--group", "1"])
        const [b, c] = yield* Effect.all([
          serve(["--backend", `blob:${dir}/b`, "--listen", "tcp://127.0.0.1:0", "--group", "1", "--join", a.address]),
          serve(["--backend", `file:${dir}/c`, "--listen", "tcp://127.0.0.1:0", "--group", "2", "--join", a.address])
        ], { concurrency: 2 })
        assert.isAtLeast(Number(b.line.peers), 1)
        // Every node ends up knowing the other two.
        yield* until(
          Effect.map(Effect.orDie(clientOf(c.address)), (client) => client.routes().length === 3),
          "the route table of C lists 3 nodes"
        )

        // The CLI: put through one node, read through another, stat, list, remove.
        const put = yield* tessera(["dnet", "put", "--node", a.address, "--json", "greeting", "-"], "hello dnet")
        assert.strictEqual(put.code, 0, put.stderr)
        const stored = JSON.parse(put.stdout.toString())
        assert.strictEqual(stored.size, 10)
        const groups = stored.groups.map((g: { group: number; ok: boolean }) => [g.group, g.ok])
        assert.deepStrictEqual(groups, [[1, true], [2, true]])
        const [got, stat, ls] = yield* Effect.all([
          tessera(["dnet", "get", "--node", c.address, "greeting"]),
          tessera(["dnet", "stat", "--node", b.address, "--json", "greeting"]),
          tessera(["dnet", "ls", "--node", a.address, "--json"])
        ], { concurrency: 1 })
        assert.strictEqual(got.code, 0, got.stderr)
        assert.strictEqual(got.stdout.toString(), "hello dnet")
        assert.strictEqual(stat.code, 0, stat.stderr)
        assert.deepStrictEqual(JSON.parse(stat.stdout.toString()).groups.map((g: { size: number }) => g.size), [10, 10])
        const id = Buffer.from(DnetRing.idOf("greeting")).toString("hex")
        assert.deepStrictEqual(jsonLines(ls.stdout).filter((l) => l.id === id).map((l) => l.group), [1, 2])
        const rm = yield* tessera(["dnet", "rm", "--node", a.address, "greeting"])
        assert.strictEqual(rm.code, 0, rm.stderr)
        const gone = yield* tessera(["dnet", "get", "--node", a.address, "greeting"])
        assert.strictEqual(gone.code, 1)
        assert.include(gone.stderr, "not found in any group")

        // Many keys through the library: each lands in both groups.
        const client = yield* Effect.orDie(clientOf(a.address))
        for (const name of KEYS) {
          const outcomes = yield* client.write(DnetRing.idOf(name), new TextEncoder().encode(`value of ${name}`))
          assert.isTrue(outcomes.length === 2 && outcomes.every((o) => Result.isSuccess(o.result)), name)
        }
        const onB = KEYS.filter((name) => DnetRing.owner(client.ring(), 1, DnetRing.idOf(name)) === b.address)
        assert.isAbove(onB.length, 0, "some keys are owned by B")

        // B is killed: every key can still be read (B's from group 2), through the CLI too.
        b.running.child.kill("SIGKILL")
        yield* b.running.exit
        yield* until(
          Effect.map(Effect.orDie(clientOf(a.address)), (fresh) => fresh.routes().length === 2),
          "B leaves the route table"
        )
        const survivor = yield* Effect.orDie(clientOf(a.address))
        for (const name of KEYS) {
          const read = yield* Effect.orDie(survivor.read(DnetRing.idOf(name)))
          assert.strictEqual(new TextDecoder().decode(read.data), `value of ${name}`)
        }
        const viaCli = yield* tessera(["dnet", "get", "--node", c.address, onB[0]!])
        assert.strictEqual(viaCli.code, 0, viaCli.stderr)
        assert.strictEqual(viaCli.stdout.toString(), `value of ${onB[0]}`)

        // B restarts at its address with its blob and its ring ids (kept in dnet.ids): it is routed to again, and
        // serves its keys from group 1.
        const b2 = yield* serve([
          "--backend",
          `blob:${dir}/b`,
          "--listen",
          b.address,
          "--group",
          "1",
          "--join",
          a.address
        ])
        assert.strictEqual(b2.address, b.address)
        yield* until(
          Effect.map(Effect.orDie(clientOf(c.address)), (fresh) => fresh.routes().length === 3),
          "B is back in the route table"
        )
        const back = yield* Effect.orDie(clientOf(c.address))
        for (const name of onB) {
          assert.strictEqual(DnetRing.owner(back.ring(), 1, DnetRing.idOf(name)), b.address)
          const read = yield* Effect.orDie(back.read(DnetRing.idOf(name), { groups: [1] }))
          assert.deepStrictEqual([read.node, new TextDecoder().decode(read.data)], [b.address, `value of ${name}`])
        }
      }).pipe(Effect.provide(Transport.Transport.layer)),
    { timeout: 180_000 }
  )

  it.live("bad usage and bad input exit 2, a dead node 1", () =>
    Effect.gen(function*() {
      const [backend, address, groups, id, dead] = yield* Effect.all([
        tessera(["dnet", "serve", "--backend", "tape:/dev/st0"]),
        tessera(["dnet", "get", "--node", "127.0.0.1:1025", "key"]),
        tessera(["dnet", "get", "--node", "tcp://127.0.0.1:1", "--groups", "1,x", "key"]),
        tessera(["dnet", "get", "--node", "tcp://127.0.0.1:1", "--id", "abcd"]),
        tessera(["dnet", "stat", "--node", "tcp://127.0.0.1:1", "--timeout", "2", "key"])
      ], { concurrency: 1 })
      assert.strictEqual(backend.code, 2, backend.stderr)
      assert.include(backend.stderr, "expected memory, file:DIR or blob:DIR")
      assert.strictEqual(address.code, 2, address.stderr)
      assert.strictEqual(groups.code, 2, groups.stderr)
      assert.strictEqual(id.code, 2, id.stderr)
      assert.strictEqual(dead.code, 1, dead.stderr)
      assert.include(dead.stderr, "tcp://127.0.0.1:1")
      // Each process gets 20 s (utils.ts): one at a time, so a loaded machine does not starve them.
    }), { timeout: 150_000 })
})
