import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFileSync, spawn } from "node:child_process"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { hashOf, start, tempDir, tessera } from "./utils.ts"

const sha256 = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex")

const MiB = 1024 * 1024

/** Fails with a clear message when a peer binary is missing (CI installs them): these tests never skip. */
const requireBinary = (name: string, pkg: string): Effect.Effect<void, Error> =>
  Effect.suspend(() => {
    try {
      execFileSync("sh", ["-c", `command -v ${name}`], { stdio: "ignore" })
      return Effect.void
    } catch {
      return Effect.fail(new Error(`${name} is not installed; install it with: apt-get install -y ${pkg}`))
    }
  })

const packages: Record<string, string> = { nbdinfo: "libnbd-bin", nbdcopy: "libnbd-bin", "qemu-io": "qemu-utils" }

/** Runs a peer to its end (killed after 60 s); fails unless it exits 0. */
const run = (command: string, args: ReadonlyArray<string>) =>
  Effect.andThen(
    requireBinary(command, packages[command] ?? command),
    Effect.callback<{ readonly stdout: string }, Error>((resume) => {
      const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], timeout: 60_000 })
      let stdout = ""
      let stderr = ""
      child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")))
      child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")))
      child.on("error", (cause) => resume(Effect.fail(cause)))
      child.on("close", (code) =>
        resume(
          code === 0 ? Effect.succeed({ stdout }) : Effect.fail(new Error(`${command} exited ${code}: ${stderr}`))
        ))
      return Effect.sync(() => child.kill("SIGKILL"))
    })
  )

/** `nbdkit` serving on a Unix socket in `dir`, stopped (by its pid) with the scope; returns the socket. */
const nbdkit = (dir: string, args: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    yield* requireBinary("nbdkit", "nbdkit")
    const socket = path.join(dir, "nbdkit.sock")
    yield* Effect.acquireRelease(
      Effect.sync(() => spawn("nbdkit", ["-f", "-U", socket, ...args], { stdio: "ignore" })),
      (child) => Effect.sync(() => child.kill("SIGTERM"))
    )
    for (let i = 0; i < 400 && !fs.existsSync(socket); i++) yield* Effect.sleep("25 millis")
    if (!fs.existsSync(socket)) return yield* Effect.fail(new Error(`nbdkit did not create ${socket}`))
    return socket
  })

/** The NBD URI of an export of our server at `address` (`tcp://HOST:PORT` or `unix:PATH`). */
const nbdUri = (address: string, exportName: string): string =>
  address.startsWith("unix:")
    ? `nbd+unix:///${exportName}?socket=${address.slice("unix:".length)}`
    : `nbd://${address.slice("tcp://".length)}/${exportName}`

describe("tessera nbd", () => {
  it.live(
    "nbd serve exports several devices by name; nbdinfo, nbdcopy and device hash see them",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir("tessera-nbd-")
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
        const patch = fs.readFileSync(image).subarray(0, 4 * MiB).map((byte) => byte ^ 0x5a)
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
        const dir = yield* tempDir("tessera-nbd-")
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
