import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawn } from "node:child_process"
import { createHash } from "node:crypto"
import * as Fs from "node:fs/promises"
import * as Path from "node:path"
import * as Readline from "node:readline"
import * as BlobStore from "../src/BlobStore.ts"
import * as FileStore from "../src/FileStore.ts"
import type { Store } from "../src/ObjectStore.ts"
import { tempDir } from "./utils/tempDir.ts"

const writer = Path.join(import.meta.dirname, "fixtures", "objectStoreCrashWriter.ts")

/** What one child run reported before it was killed: the last acknowledged and the begun-but-unacknowledged states. */
interface Run {
  readonly acked: Map<string, string>
  readonly begun: Map<string, string>
  acks: number
}

/** Runs the writer on `dir` and SIGKILLs it as soon as it has acknowledged `acks` operations. */
const runUntilKilled = (backend: "file" | "blob", dir: string, seed: number, acks: number) =>
  Effect.callback<Run, Error>((resume) => {
    const child = spawn(process.execPath, [writer, backend, dir, String(seed)], { stdio: ["ignore", "pipe", "pipe"] })
    const run: Run = { acked: new Map(), begun: new Map(), acks: 0 }
    let stderr = ""
    child.stderr.on("data", (chunk: Buffer) => stderr += chunk.toString())
    Readline.createInterface({ input: child.stdout }).on("line", (line) => {
      const [tag, key, hash] = line.split(" ")
      if (tag === "B") run.begun.set(key!, hash!)
      if (tag === "A") {
        run.acked.set(key!, hash!)
        run.begun.delete(key!)
        if (++run.acks === acks) child.kill("SIGKILL")
      }
    })
    // "close" comes after stdout has ended, so every line the child wrote has been seen.
    child.on("close", (code, signal) => {
      if (signal === "SIGKILL" && run.acks >= acks) resume(Effect.succeed(run))
      else resume(Effect.fail(new Error(`writer ended (${code ?? signal}) after ${run.acks} acks: ${stderr}`)))
    })
    return Effect.sync(() => child.kill("SIGKILL"))
  })

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex")

/**
 * Reopens the store and checks every key the writer touched: it holds its last acknowledged state (or, before
 * any, its state from the previous round), or the state of an operation begun after that ack; a read that fails
 * with anything but NotFound (for example Corrupt) is a failure. Returns the states found, the next baseline.
 */
const verify = (store: Store, baseline: ReadonlyMap<string, string>, run: Run) =>
  Effect.gen(function*() {
    const found = new Map<string, string>()
    for (const hex of new Set([...baseline.keys(), ...run.acked.keys(), ...run.begun.keys()])) {
      const allowed = new Set([run.acked.get(hex) ?? baseline.get(hex) ?? "-"])
      const begun = run.begun.get(hex)
      if (begun !== undefined) allowed.add(begun)
      const read = yield* Effect.result(store.read(Buffer.from(hex, "hex")))
      if (read._tag === "Failure" && read.failure.reason._tag !== "NotFound") assert.fail(read.failure.message)
      const state = read._tag === "Success" ? sha256(read.success) : "-"
      assert.isTrue(allowed.has(state), `${hex.slice(0, 16)}…: ${state} is none of ${[...allowed].join(", ")}`)
      if (state !== "-") found.set(hex, state)
    }
    const listed = (yield* store.list()).map((info) => Buffer.from(info.key).toString("hex"))
    assert.deepStrictEqual(listed.toSorted(), [...found.keys()].toSorted())
    return found
  })

const filesUnder = (root: string) => Effect.promise(() => Fs.readdir(root, { recursive: true }))

describe("ObjectStore crash recovery (SIGKILL)", () => {
  it.effect("FileStore keeps every acknowledged object whole", () =>
    Effect.gen(function*() {
      const root = yield* tempDir
      let baseline: ReadonlyMap<string, string> = new Map()
      for (const [round, acks] of [[1, 20], [2, 45], [3, 80]] as const) {
        const run = yield* runUntilKilled("file", root, round, acks)
        baseline = yield* Effect.scoped(
          Effect.flatMap(FileStore.make({ root }), (store) => verify(store, baseline, run))
        )
        assert.deepStrictEqual((yield* filesUnder(root)).filter((name) => name.endsWith(".tmp")), [])
      }
    }), 60_000)

  it.effect("BlobStore keeps every acknowledged object and loses at most a torn tail", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      let baseline: ReadonlyMap<string, string> = new Map()
      for (const [round, acks] of [[1, 20], [2, 45], [3, 80]] as const) {
        const run = yield* runUntilKilled("blob", dir, round, acks)
        baseline = yield* Effect.scoped(Effect.flatMap(BlobStore.make({ dir }), (store) => {
          // A kill can only tear the last record; nothing in the middle of the log is ever damaged.
          assert.strictEqual(store.recovered.skipped, 0)
          return verify(store, baseline, run)
        }))
        assert.deepStrictEqual(yield* filesUnder(dir), [BlobStore.LOG_NAME])
      }
    }), 60_000)
})
