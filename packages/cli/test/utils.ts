import { Effect } from "effect"
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"

const bin = fileURLToPath(new URL("../src/bin.ts", import.meta.url))

export interface Run {
  readonly code: number | null
  readonly stdout: Buffer
  readonly stderr: string
}

/** Runs `tessera` as a real process on the current Node, feeding `input` on stdin; killed after 20 s. */
export const tessera = (args: ReadonlyArray<string>, input?: Uint8Array | string): Effect.Effect<Run> =>
  Effect.callback<Run>((resume) => {
    const child = spawn(process.execPath, [bin, ...args], { stdio: ["pipe", "pipe", "pipe"], timeout: 20_000 })
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
