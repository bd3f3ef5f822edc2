import { assert, describe, it } from "@effect/vitest"
import { Effect, Result } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { ObjectStoreSpec } from "../src/index.ts"

const tempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "tessera-spec-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

describe("ObjectStoreSpec", () => {
  it("parses memory, file:DIR and blob:DIR, and formats them back", () => {
    for (const input of ["memory", "file:/srv/objects", "blob:relative/dir"]) {
      const parsed = ObjectStoreSpec.parse(input)
      assert.isTrue(Result.isSuccess(parsed), input)
      assert.strictEqual(ObjectStoreSpec.format(Result.getOrThrow(parsed)), input)
    }
    assert.deepStrictEqual(Result.getOrThrow(ObjectStoreSpec.parse("blob:/x")), { _tag: "Blob", dir: "/x" })
    for (const input of ["", "file:", "blob:", "tape:/dev/st0", "memory:1GiB", "file"]) {
      assert.isTrue(Result.isFailure(ObjectStoreSpec.parse(input)), input)
    }
  })

  it.effect("opens each kind, and a reopened directory keeps its objects", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const key = new Uint8Array(64).fill(7)
      for (const spec of ["memory", `file:${dir}/f`, `blob:${dir}/b`]) {
        const parsed = Result.getOrThrow(ObjectStoreSpec.parse(spec))
        yield* Effect.scoped(Effect.gen(function*() {
          const store = yield* ObjectStoreSpec.open(parsed)
          yield* store.write(key, new Uint8Array([1, 2, 3]))
        }))
        const again = yield* Effect.scoped(Effect.gen(function*() {
          const store = yield* ObjectStoreSpec.open(parsed)
          return (yield* store.stats).objects
        }))
        assert.strictEqual(again, spec === "memory" ? 0 : 1, spec)
        assert.strictEqual(ObjectStoreSpec.directory(parsed) === undefined, spec === "memory")
      }
    }))
})
