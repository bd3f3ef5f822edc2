import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { tempDir, tessera } from "./utils.ts"

describe("tessera device", () => {
  it.effect("create --random gives the same image as file and as sparse, and hash agrees", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("tessera-cli-")
      const file = `file:${path.join(dir, "a.img")}`
      const sparse = `sparse:${path.join(dir, "b.sparse")}`
      const made = yield* tessera(["device", "create", file, "--size", "3MiB", "--random", "42", "--json"])
      assert.strictEqual(made.code, 0, made.stderr)
      const { sha256, size } = JSON.parse(made.stdout.toString())
      assert.strictEqual(size, 3 << 20)
      assert.strictEqual((yield* Effect.promise(() => fs.stat(path.join(dir, "a.img")))).size, 3 << 20)
      const sparseMade = yield* tessera(["device", "create", sparse, "--size", "3MiB", "--random", "42", "--json"])
      assert.strictEqual(JSON.parse(sparseMade.stdout.toString()).sha256, sha256)
      for (const spec of [file, sparse]) {
        const hashed = yield* tessera(["device", "hash", spec])
        assert.strictEqual(hashed.code, 0, hashed.stderr)
        assert.strictEqual(hashed.stdout.toString(), `${sha256}  ${spec}\n`)
      }
      const zeroed = yield* tessera(["device", "create", `file:${path.join(dir, "z.img")}`, "--size", "1MiB", "--json"])
      assert.notStrictEqual(JSON.parse(zeroed.stdout.toString()).sha256, sha256)
    }))

  it.effect("bad specs, sizes and missing files are one line and exit code 2", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("tessera-cli-")
      const cases: ReadonlyArray<readonly [ReadonlyArray<string>, RegExp]> = [
        [["device", "hash", "nfs:/x"], /expected memory:SIZE, file:PATH or sparse:PATH/],
        [["device", "create", `file:${path.join(dir, "x")}`, "--size", "lots"], /not a size/],
        [["device", "hash", `file:${path.join(dir, "missing.img")}`], /not found/],
        [["device", "create", "memory:1MiB", "--size", "1MiB"], /lives only inside a process/]
      ]
      for (const [args, message] of cases) {
        const run = yield* tessera(args)
        assert.strictEqual(run.code, 2, args.join(" "))
        assert.match(run.stderr, message)
        assert.strictEqual(run.stderr.trim().split("\n").length, 1)
      }
    }))
})
