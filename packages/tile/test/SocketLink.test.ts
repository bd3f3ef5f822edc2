import { assert, describe, it } from "@effect/vitest"
import { T2Direction } from "@tessera/codec"
import { Transport } from "@tessera/protocol"
import { Deferred, Duration, Effect, Exit, Result, Scope } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as CdmKeys from "../src/CdmKeys.ts"
import type * as Link from "../src/Link.ts"
import * as SocketLink from "../src/SocketLink.ts"
import * as TileDaemon from "../src/TileDaemon.ts"
import { keyOf, release, tempDir } from "./utils/release.ts"

const collect = (link: Link.Link) => {
  const got: Array<Array<number>> = []
  const status: Array<boolean> = []
  link.attach({ packet: (p) => got.push([...p]), status: (up) => status.push(up), drain: () => {} })
  return { got, status }
}

describe("SocketLink", () => {
  it.live("carries framed packets in order over TCP; the hello names the direction", () =>
    Effect.gen(function*() {
      const listener = yield* Transport.listen("tcp://127.0.0.1:0")
      const accepted = yield* Deferred.make<{ dir: T2Direction.Dir8; link: Link.Link }>()
      yield* Effect.forkScoped(Effect.gen(function*() {
        const connection = yield* listener.accept
        const side = yield* SocketLink.accept(connection)
        yield* Deferred.succeed(accepted, side)
        yield* Effect.never
      }))
      const a = yield* SocketLink.dial(listener.address, T2Direction.ET)
      const packets = [new Uint8Array([0x82, 0x83, 0x41, 1, 3]), new Uint8Array(255).fill(7), new Uint8Array([0x82, 1])]
      for (const p of packets) assert.strictEqual(a.send(p), "queued")
      const b = yield* Deferred.await(accepted)
      assert.strictEqual(b.dir, T2Direction.ET)
      const seen = collect(b.link)
      yield* Effect.gen(function*() {
        while (seen.got.length < 3) yield* Effect.sleep(Duration.millis(10))
      }).pipe(Effect.timeout(Duration.seconds(10)))
      assert.deepStrictEqual(seen.got, packets.map((p) => [...p]))
      assert.strictEqual(a.send(new Uint8Array(256)), "invalid")
      assert.strictEqual(a.send(new Uint8Array(0)), "invalid")
    }).pipe(Effect.provide(Transport.Transport.layer)))

  it.live("works the same over a Unix socket", () =>
    Effect.gen(function*() {
      const socket = `unix:${tempDir("unix")}/link.sock`
      const listener = yield* Transport.listen(socket)
      const accepted = yield* Deferred.make<Link.Link>()
      yield* Effect.forkScoped(Effect.gen(function*() {
        const side = yield* SocketLink.accept(yield* listener.accept)
        yield* Deferred.succeed(accepted, side.link)
        yield* Effect.never
      }))
      const a = yield* SocketLink.dial(socket, T2Direction.SE)
      a.send(new Uint8Array([0x83, 0x83, 0x46]))
      const b = yield* Deferred.await(accepted).pipe(Effect.timeout(Duration.seconds(10)))
      const seen = collect(b)
      yield* until(() => seen.got.length === 1)
      assert.deepStrictEqual(seen.got, [[0x83, 0x83, 0x46]])
    }).pipe(Effect.provide(Transport.Transport.layer)))

  it.live("a framing error or a broken stream takes the link down", () =>
    Effect.gen(function*() {
      const listener = yield* Transport.listen("tcp://127.0.0.1:0")
      const accepted = yield* Deferred.make<Link.Link>()
      yield* Effect.forkScoped(Effect.gen(function*() {
        const connection = yield* listener.accept
        const side = yield* SocketLink.accept(connection)
        yield* Deferred.succeed(accepted, side.link)
        yield* Effect.never
      }))
      const connection = yield* Transport.dial(listener.address)
      yield* connection.write([SocketLink.hello(T2Direction.NE), new Uint8Array([2, 0x82, 0x83, 0])])
      const link = yield* Deferred.await(accepted)
      const seen = collect(link)
      yield* Effect.gen(function*() {
        while (link.isUp()) yield* Effect.sleep(Duration.millis(10))
      }).pipe(Effect.timeout(Duration.seconds(10)))
      assert.deepStrictEqual(seen.got, [[0x82, 0x83]])
      assert.deepStrictEqual(seen.status, [true, false])
      assert.strictEqual(link.send(new Uint8Array([0x82, 0x83])), "down")
    }).pipe(Effect.provide(Transport.Transport.layer)))
})

const until = (f: () => boolean) =>
  Effect.gen(function*() {
    while (!f()) yield* Effect.sleep(Duration.millis(50))
  }).pipe(Effect.timeout(Duration.seconds(20)))

describe("TileDaemon", () => {
  it.live("install hooks run once per release, guarded by the slot's install tag across restarts", () =>
    Effect.gen(function*() {
      const signer = keyOf("t2-keymaster-release-10")
      const keyring = CdmKeys.keyring([[0, signer]])
      const r = release(signer, { slot: 0x90, time: 1_700_000_000, size: 10_000 })
      const directory = tempDir("daemon-hooks")
      const runs: Array<string> = []
      const hooks = [
        { slot: 0x90, run: (c: { path: string }) => Effect.sync(() => runs.push(c.path)) },
        { slot: 0x91, run: () => Effect.sync(() => runs.push("wrong slot")) }
      ]
      const first = yield* Scope.make()
      const a = yield* TileDaemon.start({ directory, keyring, hooks }).pipe(Scope.provide(first))
      assert.isTrue(Result.isSuccess(a.cdm.publish(r.bytes)))
      yield* until(() => runs.length === 1)
      yield* until(() => Fs.existsSync(Path.join(directory, "tags", "slot90-install-tag.dat")))
      assert.strictEqual(
        Fs.readFileSync(Path.join(directory, "tags", "slot90-install-tag.dat"), "utf8"),
        "56776a\n",
        "the tag holds the release's stamp (1700000000 / 300 = 0x56776a)"
      )
      yield* Scope.close(first, Exit.void)
      // Restarted: the complete file is found again, its tag says it is installed, the hook is not rerun.
      yield* TileDaemon.start({ directory, keyring, hooks })
      yield* Effect.sleep(Duration.millis(300))
      assert.deepStrictEqual(runs, [Path.join(directory, "common", r.fileName)])
    }).pipe(Effect.provide(Transport.Transport.layer)))

  it.live(
    "two daemons over TCP: a release spreads, the link comes back after the dialler's stream breaks",
    () =>
      Effect.gen(function*() {
        const signer = keyOf("t2-keymaster-release-10")
        const keyring = CdmKeys.keyring([[0, signer]])
        const r = release(signer, { slot: 0xa1, time: 1_700_000_000, size: 100_000 })
        const aDir = tempDir("daemon-a")
        const aScope = yield* Scope.make()
        const a = yield* TileDaemon.start({ directory: aDir, keyring, listen: "tcp://127.0.0.1:0" }).pipe(
          Scope.provide(aScope)
        )
        const address = a.address!
        const b = yield* TileDaemon.start({
          directory: tempDir("daemon-b"),
          keyring,
          links: [{ dir: T2Direction.ET, address: `tcp://127.0.0.1:${address._tag === "Tcp" ? address.port : 0}` }],
          redialEvery: Duration.millis(100)
        })
        assert.isTrue(Result.isSuccess(a.cdm.publish(r.bytes)))
        yield* Effect.gen(function*() {
          while (!b.cdm.isComplete(r.slotstamp)) yield* Effect.sleep(Duration.millis(50))
        }).pipe(Effect.timeout(Duration.seconds(20)))
        assert.isTrue(b.cdm.isComplete(r.slotstamp))
        assert.isTrue(a.tile.neighbor(T2Direction.WT)!.isUp())
        yield* Effect.gen(function*() {
          while (a.tile.neighbor(T2Direction.WT)!.status !== 2) yield* Effect.sleep(Duration.millis(50))
        }).pipe(Effect.timeout(Duration.seconds(10)))
        assert.strictEqual(b.tile.neighbor(T2Direction.ET)!.status, 2, "KITC over the socket: compatible")
        // The far tile goes away: B's neighbour reports down, then B redials the restarted tile.
        yield* Scope.close(aScope, Exit.void)
        yield* until(() => !b.tile.neighbor(T2Direction.ET)!.isUp())
        const port = address._tag === "Tcp" ? address.port : 0
        const a2 = yield* TileDaemon.start({ directory: aDir, keyring, listen: `tcp://127.0.0.1:${port}` })
        yield* until(() => b.tile.neighbor(T2Direction.ET)!.isUp())
        assert.isTrue(a2.cdm.isComplete(r.slotstamp), "the restarted tile reloaded its content")
        const r2 = release(signer, { slot: 0xa1, time: 1_700_000_900, size: 50_000, seed: 2 })
        assert.isTrue(Result.isSuccess(a2.cdm.publish(r2.bytes)))
        yield* until(() => b.cdm.isComplete(r2.slotstamp))
        assert.isFalse(b.cdm.isComplete(r.slotstamp), "the newer release replaced the older one")
        assert.strictEqual(b.tile.neighbor(T2Direction.ET)!.stats.connects, 2)
      }).pipe(Effect.provide(Transport.Transport.layer)),
    { timeout: 60_000 }
  )
})
