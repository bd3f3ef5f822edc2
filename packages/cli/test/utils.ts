import { assert } from "@effect/vitest"
import { Effect } from "effect"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const bin = fileURLToPath(new URL("../src/bin.ts", import.meta.url))

export interface Run {
  readonly code: number | null
  readonly stdout: Buffer
  readonly stderr: string
}

/** Runs `tessera` as a real process on the current Node, feeding `input` on stdin; killed after `millis`. */
export const tessera = (
  args: ReadonlyArray<string>,
  input?: Uint8Array | string,
  millis = 60_000
): Effect.Effect<Run> =>
  Effect.callback<Run>((resume) => {
    const child = spawn(process.execPath, [bin, ...args], { stdio: ["pipe", "pipe", "pipe"], timeout: millis })
    const out: Array<Buffer> = []
    const err: Array<Buffer> = []
    child.stdout.on("data", (chunk: Buffer) => out.push(chunk))
    child.stderr.on("data", (chunk: Buffer) => err.push(chunk))
    child.on(
      "close",
      (code) =>
        resume(Effect.succeed({ code, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString("utf8") }))
    )
    child.stdin.on("error", () => {})
    child.stdin.end(input ?? "")
    return Effect.sync(() => child.kill("SIGKILL"))
  })

export const jsonLines = (text: Buffer | string): Array<Record<string, unknown>> =>
  text.toString().split("\n").filter((line) => line.trim() !== "").map((line) => JSON.parse(line))

/** A `tessera` process left running: its stdout lines as they come, and its end. */
export interface Running {
  readonly child: ReturnType<typeof spawn>
  /** Waits for the first stdout line (parsed as JSON) that `match` accepts; fails after `millis`. */
  readonly waitFor: (
    match: (line: Record<string, unknown>) => boolean,
    millis?: number
  ) => Effect.Effect<Record<string, unknown>, Error>
  /** Waits for the process to end. */
  readonly exit: Effect.Effect<Run>
}

/**
 * Starts `tessera` with `args`, killed when the scope closes (and after `millis` in any case); `env` is added to
 * the environment it inherits.
 */
export const start = (args: ReadonlyArray<string>, millis = 60_000, env?: Readonly<Record<string, string>>) =>
  Effect.acquireRelease(
    Effect.sync((): Running => {
      const child = spawn(process.execPath, [bin, ...args], {
        stdio: ["ignore", "pipe", "pipe"],
        timeout: millis,
        env: env === undefined ? process.env : { ...process.env, ...env }
      })
      const out: Array<Buffer> = []
      const err: Array<Buffer> = []
      const lines: Array<Record<string, unknown>> = []
      let partial = ""
      const listeners = new Set<() => void>()
      child.stdout!.on("data", (chunk: Buffer) => {
        out.push(chunk)
        partial += chunk.toString("utf8")
        const parts = partial.split("\n")
        partial = parts.pop()!
        for (const line of parts) {
          if (line.trim().startsWith("{")) lines.push(JSON.parse(line))
        }
        for (const listener of listeners) listener()
      })
      child.stderr!.on("data", (chunk: Buffer) => err.push(chunk))
      const ended = new Promise<Run>((resolve) =>
        child.on("close", (code) => {
          for (const listener of listeners) listener()
          resolve({ code, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString("utf8") })
        })
      )
      return {
        child,
        waitFor: (match, wait = 60_000) =>
          Effect.callback<Record<string, unknown>, Error>((resume) => {
            const check = () => {
              const found = lines.find(match)
              if (found !== undefined) resume(Effect.succeed(found))
              else if (child.exitCode !== null || child.signalCode !== null) {
                resume(Effect.fail(new Error(`tessera ${args.join(" ")} ended: ${Buffer.concat(err).toString()}`)))
              } else return
              cleanup()
            }
            const timer = setTimeout(() => {
              cleanup()
              resume(Effect.fail(new Error(`no matching line from tessera ${args.join(" ")} in ${wait} ms`)))
            }, wait)
            const cleanup = () => {
              clearTimeout(timer)
              listeners.delete(check)
            }
            listeners.add(check)
            check()
            return Effect.sync(cleanup)
          }),
        exit: Effect.promise(() => ended)
      }
    }),
    (running) => Effect.sync(() => running.child.kill("SIGKILL"))
  )

/** A fresh temporary directory named `prefix…`, removed with everything in it when the scope closes. */
export const tempDir = (prefix: string) =>
  Effect.acquireRelease(
    Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), prefix))),
    (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  )

/** The sha256 `tessera device hash` prints for `spec`. */
export const hashOf = (spec: string) =>
  Effect.map(tessera(["device", "hash", spec, "--json"]), (run) => {
    assert.strictEqual(run.code, 0, run.stderr)
    return JSON.parse(run.stdout.toString()).sha256 as string
  })

/** Makes a device of pseudo-random bytes from `seed` with `tessera device create`. */
export const create = (spec: string, size: string, seed: string) =>
  Effect.map(tessera(["device", "create", spec, "--size", size, "--random", seed]), (run) => {
    assert.strictEqual(run.code, 0, run.stderr)
  })

/**
 * A TCP proxy to `port` whose current connections can be dropped at any time (`drop`), while new ones are
 * still forwarded: a network failure between two processes. While `refuse(true)` holds, new connections are
 * closed as soon as they arrive (the network is still down).
 */
export const proxy = (port: number) => {
  let refusing = false
  return Effect.acquireRelease(
    Effect.callback<{ readonly server: net.Server; readonly sockets: Set<net.Socket> }>((resume) => {
      const sockets = new Set<net.Socket>()
      const server = net.createServer((client) => {
        if (refusing) {
          client.destroy()
          return
        }
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
    },
    refuse: (on: boolean) => {
      refusing = on
    }
  })))
}

/** The port of a `tcp://HOST:PORT` address. */
export const portOf = (address: unknown): number => Number(String(address).split(":").at(-1))
