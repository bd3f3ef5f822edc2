import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { nbdkit, nbdUri, run } from "../../protocol/test/utils/nbdPeers.ts"
import { start, tessera } from "./utils.ts"

const tempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "tessera-nbd-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

const hashOf = (spec: string) =>
  Effect.map(tessera(["device", "hash", spec, "--json"]), (ran) => {
    assert.strictEqual(ran.code, 0, ran.stderr)
    return JSON.parse(ran.stdout.toString()).sha256 as string
  })

const sha256 = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex")

const MiB = 1024 * 1024

describe("tessera nbd", () => {
  it.live(
    "nbd serve exports several devices by name; nbdinfo, nbdcopy and device hash see them",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        const image = path.join(dir, "disk.img")
        const created = yield* tessera(["device", "create", `file:${image}`, "--size", "8MiB", "--random", "nbd"])
        assert.strictEqual(created.code, 0, created.stderr)
        const server = yield* start([
          "nbd",
          "serve",
          "--device",
          `file:${image}`,
          "--name",
          "disk",
          "--device",
          "memory:4MiB",
          "--name",
          "scratch",
          "--listen",
          "tcp://127.0.0.1:0",
          "--json"
        ])
        const listening = yield* server.waitFor((line) => line.event === "listening")
        const address = String(listening.address)
        assert.deepStrictEqual(listening.exports, [
          { name: "disk", size: 8 * MiB, readOnly: false },
          { name: "scratch", size: 4 * MiB, readOnly: false }
        ])
        const listed = JSON.parse((yield* run("nbdinfo", ["--json", "--list", nbdUri(address, "")])).stdout)
        assert.deepStrictEqual(
          listed.exports.map((e: Record<string, unknown>) => [e["export-name"], e["export-size"]]),
          [["disk", 8 * MiB], ["scratch", 4 * MiB]]
        )
        // The device commands take NBD specs too: the export hashes like the file behind it.
        assert.strictEqual(yield* hashOf(nbdUri(address, "disk")), sha256(fs.readFileSync(image)))
        const patch = fs.readFileSync(image).subarray(0, 4 * MiB).reverse()
        const patchFile = path.join(dir, "patch.img")
        fs.writeFileSync(patchFile, patch)
        yield* run("nbdcopy", [patchFile, nbdUri(address, "scratch")])
        const back = path.join(dir, "back.img")
        yield* run("nbdcopy", [nbdUri(address, "scratch"), back])
        assert.isTrue(Buffer.compare(fs.readFileSync(back), patch) === 0)
      }).pipe(Effect.scoped, Effect.timeout("110 seconds")),
    120_000
  )

  it.live("nbd serve --read-only refuses writes; bad specs and names are bad input", () =>
    Effect.gen(function*() {
      const server = yield* start([
        "nbd",
        "serve",
        "--device",
        "memory:1MiB",
        "--read-only",
        "--listen",
        "tcp://127.0.0.1:0",
        "--json"
      ])
      const { address } = yield* server.waitFor((line) => line.event === "listening")
      const refused = yield* Effect.flip(
        run("qemu-io", ["-f", "raw", "-c", "write 0 512", nbdUri(String(address), "")])
      )
      assert.match(refused.message, /read-only|Permission denied/)
      const badSpec = yield* tessera(["nbd", "serve", "--device", "nbd://", "--listen", "tcp://127.0.0.1:0"])
      assert.strictEqual(badSpec.code, 2, badSpec.stderr)
      const twice = yield* tessera([
        "nbd",
        "serve",
        "--device",
        "memory:1MiB",
        "--name",
        "a",
        "--device",
        "memory:1MiB",
        "--name",
        "a"
      ])
      assert.strictEqual(twice.code, 2)
      assert.include(twice.stderr, "two exports")
      const noExport = yield* tessera(["device", "hash", nbdUri(String(address), "missing")])
      assert.strictEqual(noExport.code, 2, noExport.stderr)
    }).pipe(Effect.scoped, Effect.timeout("110 seconds")), 120_000)

  it.live(
    "migrate serve reads an nbdkit export; migrate connect --expose serves the destination while it arrives",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        const image = path.join(dir, "src.img")
        fs.writeFileSync(image, new Uint8Array(16 * MiB).map((_, i) => (i * 2654435761) >>> 24))
        const socket = yield* nbdkit(dir, ["file", image])
        const source = `nbd+unix:///?socket=${socket}`
        const server = yield* start([
          "migrate",
          "serve",
          "--device",
          source,
          "--block-size",
          "64KiB",
          "--concurrency",
          "2",
          "--listen",
          "tcp://127.0.0.1:0",
          "--json"
        ])
        const { address } = yield* server.waitFor((line) => line.event === "listening")
        const target = path.join(dir, "dst.img")
        const client = yield* start([
          "migrate",
          "connect",
          "--from",
          String(address),
          "--device",
          `file:${target}`,
          "--expose",
          `unix:${path.join(dir, "exposed.sock")}`,
          "--json"
        ])
        const exposed = yield* client.waitFor((line) => line.event === "exposed")
        assert.deepStrictEqual(exposed.exports, ["nbd"])
        const copy = path.join(dir, "copy.img")
        yield* run("nbdcopy", [nbdUri(String(exposed.address), "nbd"), copy])
        const [served, received] = yield* Effect.all([server.exit, client.exit], { concurrency: 2 })
        assert.strictEqual(served.code, 0, served.stderr)
        assert.strictEqual(received.code, 0, received.stderr)
        assert.isTrue(Buffer.compare(fs.readFileSync(copy), fs.readFileSync(image)) === 0, "nbdcopy got the source")
        assert.isTrue(Buffer.compare(fs.readFileSync(target), fs.readFileSync(image)) === 0, "the migration completed")
      }).pipe(Effect.scoped, Effect.timeout("110 seconds")),
    120_000
  )
})
