/**
 * Crash safety with a real process: a child writes and flushes random blocks (fixtures/sparseCrashWriter.ts),
 * is killed with SIGKILL in the middle of its writes, and the file is reopened. Every block must hold exactly
 * the bytes of its last acknowledged write or of a write begun after it, and never anything else (no torn
 * or mixed block). Three rounds on the same file, so recovery of a crashed file is itself crashed into.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawn } from "node:child_process"
import { createHash } from "node:crypto"
import * as path from "node:path"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"
import * as Blocks from "../src/Blocks.ts"
import * as SparseFile from "../src/SparseFile.ts"
import { tempDir } from "./utils/tempDir.ts"

const WRITER = fileURLToPath(new URL("./fixtures/sparseCrashWriter.ts", import.meta.url))
const BLOCK = 4096
const SIZE = 256 * BLOCK + 1000 // a short last block too
const BLOCKS = Blocks.count(SIZE, BLOCK)
const ACKS = 100 // acknowledged blocks per round before the kill

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex")

/** What each block may hold after the crash: the sha256 of every whole-block state it may be in. */
type Allowed = Array<Set<string>>

/**
 * Runs the writer until it has acknowledged `acks` writes, kills it, and returns what each block may hold,
 * starting from `before` (the sha256 of every block before the run).
 */
const crashRun = (file: string, seed: number, acks: number, before: ReadonlyArray<string>) =>
  Effect.promise(() =>
    new Promise<{ readonly allowed: Allowed; readonly acked: number; readonly errors: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [WRITER, file, String(SIZE), String(BLOCK), String(seed)], {
        stdio: ["ignore", "pipe", "pipe"]
      })
      const allowed: Allowed = before.map((sha) => new Set([sha]))
      let acked = 0
      let errors = ""
      child.stderr.on("data", (chunk: Buffer) => errors += chunk.toString())
      createInterface({ input: child.stdout }).on("line", (line) => {
        const [kind, block, sha] = line.split(" ")
        if (kind === "W") {
          allowed[Number(block)]!.add(sha!)
        } else if (kind === "A") {
          // Durable now: the states before this one are no longer allowed; writes begun later still are.
          const states = [...allowed[Number(block)]!]
          allowed[Number(block)] = new Set(states.slice(states.indexOf(sha!)))
          if (++acked === acks) child.kill("SIGKILL")
        }
      })
      child.on("error", reject)
      // "close", not "exit": every line the child wrote before it died has been read by then.
      child.on("close", () => resolve({ allowed, acked, errors }))
    })
  )

const blockHashes = (file: string) =>
  Effect.scoped(Effect.gen(function*() {
    const device = yield* SparseFile.make({ path: file, size: SIZE, blockSize: BLOCK })
    const hashes: Array<string> = []
    for (let block = 0; block < BLOCKS; block++) {
      const { length, offset } = Blocks.range(block, SIZE, BLOCK)
      const bytes = new Uint8Array(length)
      yield* device.readAt(bytes, offset)
      hashes.push(sha256(bytes))
    }
    return hashes
  }))

describe("SparseFile crash", () => {
  it.live("after SIGKILL mid-write, every block holds its last acknowledged bytes or a later whole write", () =>
    Effect.gen(function*() {
      const file = path.join(yield* tempDir, "crash.sparse")
      let before = Array.from(
        { length: BLOCKS },
        (_, block) => sha256(new Uint8Array(Blocks.range(block, SIZE, BLOCK).length))
      )
      for (let round = 0; round < 3; round++) {
        const run = yield* crashRun(file, round + 1, ACKS, before)
        assert.isAtLeast(run.acked, ACKS, `round ${round}: the writer ran until it was killed\n${run.errors}`)
        const after = yield* blockHashes(file)
        for (let block = 0; block < BLOCKS; block++) {
          assert.isTrue(
            run.allowed[block]!.has(after[block]!),
            `round ${round}: block ${block} holds neither its last acknowledged bytes nor a later whole write`
          )
        }
        before = after
      }
    }).pipe(Effect.timeout("60 seconds")))
})
