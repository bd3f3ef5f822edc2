import { Effect } from "effect"
import { execFileSync, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"

/** Which Debian package brings each peer binary (CI installs them with apt-get). */
const packages: Record<string, string> = {
  nbdinfo: "libnbd-bin",
  nbdcopy: "libnbd-bin",
  nbdsh: "libnbd-bin",
  nbdkit: "nbdkit",
  "qemu-img": "qemu-utils",
  "qemu-io": "qemu-utils"
}

/** Fails with a clear message when a peer binary is missing: these tests never skip silently. */
export const requireBinary = (name: string): Effect.Effect<void, Error> =>
  Effect.suspend(() => {
    try {
      execFileSync("sh", ["-c", `command -v ${name}`], { stdio: "ignore" })
      return Effect.void
    } catch {
      return Effect.fail(
        new Error(`${name} is not installed; install it with: apt-get install -y ${packages[name] ?? name}`)
      )
    }
  })

export interface Ran {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs a peer to its end (killed after `millis`); fails unless it exits 0. */
export const run = (command: string, args: ReadonlyArray<string>, millis = 60_000): Effect.Effect<Ran, Error> =>
  Effect.andThen(
    requireBinary(command),
    Effect.callback<Ran, Error>((resume) => {
      const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], timeout: millis })
      const out: Array<Buffer> = []
      const err: Array<Buffer> = []
      child.stdout.on("data", (chunk: Buffer) => out.push(chunk))
      child.stderr.on("data", (chunk: Buffer) => err.push(chunk))
      child.on("error", (cause) => resume(Effect.fail(cause)))
      child.on("close", (code, signal) => {
        const ran = { code, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") }
        resume(
          code === 0
            ? Effect.succeed(ran)
            : Effect.fail(new Error(`${command} ${args.join(" ")} exited ${code ?? signal}: ${ran.stderr}`))
        )
      })
      return Effect.sync(() => child.kill("SIGKILL"))
    })
  )

/**
 * Starts `nbdkit` in the foreground serving on a Unix socket in `dir`, waits until the socket exists, and stops
 * it (by its pid) when the scope closes. Returns the socket path.
 */
export const nbdkit = (dir: string, args: ReadonlyArray<string>, extra: ReadonlyArray<string> = []) =>
  Effect.gen(function*() {
    yield* requireBinary("nbdkit")
    const socket = path.join(dir, `nbdkit-${Math.random().toString(36).slice(2)}.sock`)
    const child = yield* Effect.acquireRelease(
      Effect.sync(() =>
        spawn("nbdkit", ["-f", "-U", socket, ...extra, ...args], { stdio: ["ignore", "ignore", "pipe"] })
      ),
      (started) => Effect.sync(() => started.kill("SIGTERM"))
    )
    let stderr = ""
    child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")))
    for (let i = 0; i < 200 && !fs.existsSync(socket); i++) {
      if (child.exitCode !== null) return yield* Effect.fail(new Error(`nbdkit exited: ${stderr}`))
      yield* Effect.sleep("25 millis")
    }
    if (!fs.existsSync(socket)) return yield* Effect.fail(new Error(`nbdkit did not create ${socket}: ${stderr}`))
    return socket
  })

/** An `nbd://` URI for a TCP address string as our server reports it (`tcp://127.0.0.1:PORT`). */
export const nbdUri = (address: string, exportName: string): string =>
  address.startsWith("unix:")
    ? `nbd+unix:///${exportName}?socket=${address.slice("unix:".length)}`
    : `nbd://${address.slice("tcp://".length)}/${exportName}`
