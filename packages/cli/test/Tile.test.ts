import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { start, tempDir, tessera } from "./utils.ts"

describe("tessera tile", () => {
  it.live(
    "grid: a 4x4 simulation with loss and corruption completes everywhere, JSON and SVG out",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir("tessera-tile-")
        const payload = path.join(dir, "payload.bin")
        fs.writeFileSync(payload, Buffer.from(Array.from({ length: 100_000 }, (_, i) => (i * 7919) % 251)))
        const svg = path.join(dir, "grid.svg")
        const args = [
          "tile",
          "grid",
          "--size",
          "4x4",
          "--publish",
          payload,
          "--slot",
          "0xa1",
          "--loss",
          "0.01",
          "--corrupt",
          "0.05",
          "--seed",
          "3",
          "--json",
          "--svg",
          svg
        ]
        const run = yield* tessera(args)
        assert.strictEqual(run.code, 0, run.stderr)
        const out = JSON.parse(run.stdout.toString())
        assert.strictEqual(out.tiles.length, 16)
        assert.isTrue(out.tiles.every((t: { seconds: number | null }) => typeof t.seconds === "number"))
        assert.strictEqual(out.tiles[0].seconds, 0)
        assert.isAbove(out.link.corrupted, 0)
        assert.isBelow(out.spread, 2 * out.ideal + 5)
        assert.match(fs.readFileSync(svg, "utf8"), /^<svg [^>]*>[\s\S]*<polygon[\s\S]*<\/svg>\n$/)
        const again = yield* tessera(args)
        // Everything but the wall time is the same: the release and the simulation come from the inputs alone.
        const replay = JSON.parse(again.stdout.toString())
        assert.deepStrictEqual(
          { ...replay, wallSeconds: 0 },
          { ...out, wallSeconds: 0 },
          "a seeded run replays exactly"
        )
        const text = yield* tessera(["tile", "grid", "--size", "2x1", "--publish", payload, "--slot", "5"])
        assert.strictEqual(text.code, 0, text.stderr)
        assert.match(text.stdout.toString(), /completion times \(s\)[\s\S]*spread [\d.]+ s; ideal [\d.]+ s/)
        const bad = yield* tessera(["tile", "grid", "--size", "4", "--publish", payload, "--slot", "5"])
        assert.strictEqual(bad.code, 2)
        assert.match(bad.stderr, /expected WxH/)
        const missingKey = yield* tessera(["tile", "run", "--dir", dir, "--trust", "0=missing.pub"])
        assert.strictEqual(missingKey.code, 2)
        assert.match(missingKey.stderr, /missing\.pub/)
        fs.writeFileSync(path.join(dir, "k.pub"), "not a key")
        const badKey = yield* tessera(["tile", "run", "--dir", dir, "--trust", `0=${path.join(dir, "k.pub")}`])
        assert.strictEqual(badKey.code, 2)
        assert.match(badKey.stderr, /invalid key/)
      }),
    { timeout: 120_000 }
  )

  it.live("run: four tile processes linked over TCP spread a release", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("tessera-tile-")
      const keys = yield* tessera(["cdm", "keygen", "--handle", "t2-keymaster-release-10", "--out", dir, "--json"])
      const key = JSON.parse(keys.stdout.toString())
      const payload = path.join(dir, "payload.bin")
      fs.writeFileSync(payload, Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 31 + (i >> 8)) & 255)))
      const made = yield* tessera([
        "cdm",
        "make",
        "--key",
        key.private,
        "--slot",
        "0xa1",
        "--out",
        dir,
        "--json",
        payload
      ])
      const file = JSON.parse(made.stdout.toString()).file as string
      const name = path.basename(file)
      const trust = ["--trust", `0=${key.public}`]
      const tile = (id: string, links: ReadonlyArray<string>, extra: ReadonlyArray<string> = []) =>
        Effect.gen(function*() {
          const running = yield* start([
            "tile",
            "run",
            "--json",
            "--dir",
            path.join(dir, id),
            "--listen",
            "tcp://127.0.0.1:0",
            ...trust,
            ...links.flatMap((l) => ["--link", l]),
            ...extra
          ], 120_000)
          const line = yield* running.waitFor((l) => l.event === "listening", 30_000)
          return { running, address: String(line.address) }
        })
      // A (0,0) B (2,0) C (1,1) D (3,1): A-B east, C above between them, D above B.
      const flashDir = path.join(dir, "flash")
      const a = yield* tile("a", [], ["--publish", file, "--flash-dir", flashDir])
      const b = yield* tile("b", [`WT=${a.address}`])
      const c = yield* tile("c", [`SW=${a.address}`, `SE=${b.address}`])
      const installed = path.join(dir, "installed")
      const d = yield* tile("d", [`WT=${c.address}`, `SW=${b.address}`], ["--install", installed])
      for (const t of [b, c, d]) {
        yield* t.running.waitFor((l) => l.event === "complete" && l.file === name, 60_000)
      }
      for (const id of ["b", "c", "d"]) {
        assert.isTrue(fs.readFileSync(path.join(dir, id, "common", name)).equals(fs.readFileSync(file)))
      }
      const link = yield* d.running.waitFor((l) => l.event === "link" && l.dir === "SW" && l.up === true)
      assert.strictEqual(link.dir, "SW")
      yield* d.running.waitFor((l) => l.event === "installed" && l.file === name, 30_000)
      assert.isTrue(
        fs.readFileSync(path.join(installed, "slota1", payload.slice(1))).equals(fs.readFileSync(payload)),
        "tile d unpacked the payload"
      )
      assert.strictEqual(fs.readFileSync(path.join(dir, "d", "tags", "slota1-install-tag.dat"), "utf8").length, 7)
      // A flash command dropped at A runs on every tile within its range (D is 2 hops away).
      fs.mkdirSync(flashDir, { recursive: true })
      fs.writeFileSync(path.join(flashDir, "_phy_clear-2.cmd"), "")
      for (const t of [a, b, c, d]) {
        const ran = yield* t.running.waitFor((l) => l.event === "flash" && l.name === "phy:clear", 30_000)
        assert.strictEqual(ran.range, 2)
      }
    }), { timeout: 120_000 })
})
