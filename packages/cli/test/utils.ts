import { Effect } from "effect"
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"

const bin = fileURLToPath(new URL("../src/bin.ts", import.meta.url))

export interface Run {
  readonly code: number | null
  readonly stdout: Buffer
  readonly stderr: string
}

/** Runs `tessera` as a real process on the current Node, feeding `input` on stdin; killed after 60 s. */
export const tessera = (args: ReadonlyArray<string>, input?: Uint8Array | string): Effect.Effect<Run> =>
  Effect.callback<Run>((resume) => {
    const child = spawn(process.execPath, [bin, ...args], { stdio: ["pipe", "pipe", "pipe"], timeout: 60_000 })
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

/** Starts `tessera` with `args`, killed when the scope closes (and after `millis` in any case). */
export const start = (args: ReadonlyArray<string>, millis = 60_000) =>
  Effect.acquireRelease(
    Effect.sync((): Running => {
      const child = spawn(process.execPath, [bin, ...args], { stdio: ["ignore", "pipe", "pipe"], timeout: millis })
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
