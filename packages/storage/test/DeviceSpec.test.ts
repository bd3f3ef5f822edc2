import { assert, describe, it } from "@effect/vitest"
import { Effect, Result } from "effect"
import * as path from "node:path"
import { Device, DeviceSpec } from "../src/index.ts"
import { tempDir } from "./utils/tempDir.ts"

describe("DeviceSpec", () => {
  it("parses sizes with and without units", () => {
    assert.deepStrictEqual(Result.getOrThrow(DeviceSpec.parseSize("4096")), 4096)
    assert.deepStrictEqual(Result.getOrThrow(DeviceSpec.parseSize("256MiB")), 256 << 20)
    assert.deepStrictEqual(Result.getOrThrow(DeviceSpec.parseSize("1 GiB")), 1 << 30)
    for (const bad of ["", "12 parsecs", "-1", "1.5", "9999999999999999999"]) {
      assert.isTrue(Result.isFailure(DeviceSpec.parseSize(bad)), bad)
    }
  })

  it("parses the three schemes and refuses anything else", () => {
    assert.deepStrictEqual(Result.getOrThrow(DeviceSpec.parse("memory:1MiB")), { _tag: "Memory", size: 1 << 20 })
    assert.deepStrictEqual(Result.getOrThrow(DeviceSpec.parse("file:/tmp/a:b.img")), {
      _tag: "File",
      path: "/tmp/a:b.img"
    })
    assert.deepStrictEqual(Result.getOrThrow(DeviceSpec.parse("sparse:d.sparse")), { _tag: "Sparse", path: "d.sparse" })
    for (const bad of ["disk.img", "nfs:/x", "file:", "memory:lots"]) {
      assert.isTrue(Result.isFailure(DeviceSpec.parse(bad)), bad)
    }
  })

  it.effect("creates a file and a sparse file, and reopens them without being told their size", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      for (const text of [`file:${path.join(dir, "a.img")}`, `sparse:${path.join(dir, "b.sparse")}`]) {
        const spec = Result.getOrThrow(DeviceSpec.parse(text))
        const hash = yield* Effect.scoped(Effect.gen(function*() {
          const device = yield* DeviceSpec.open(spec, { create: true, size: 300_000 })
          yield* Device.fillPseudoRandom(device, "7")
          yield* device.flush
          return yield* Device.sha256(device)
        }))
        const reopened = yield* DeviceSpec.open(spec)
        assert.strictEqual(reopened.size, 300_000, text)
        assert.deepStrictEqual(yield* Device.sha256(reopened), hash, text)
      }
    }))

  it.effect("the same seed gives the same bytes, another seed other bytes", () =>
    Effect.gen(function*() {
      const a = yield* DeviceSpec.open({ _tag: "Memory", size: 100_000 })
      const b = yield* DeviceSpec.open({ _tag: "Memory", size: 100_000 })
      yield* Device.fillPseudoRandom(a, "seed")
      yield* Device.fillPseudoRandom(b, "seed")
      assert.isTrue(yield* Device.equals(a, b))
      yield* Device.fillPseudoRandom(b, "other")
      assert.isFalse(yield* Device.equals(a, b))
    }))

  it.effect("creating without a size, or opening a missing file, is a clear error", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const noSize = yield* Effect.flip(DeviceSpec.open({ _tag: "File", path: path.join(dir, "x") }, { create: true }))
      assert.include(noSize.message, "--size")
      const missing = yield* Effect.flip(DeviceSpec.open({ _tag: "Sparse", path: path.join(dir, "nope") }))
      assert.strictEqual(missing.reason._tag, "NotFound")
      assert.include(missing.message, "nope")
    }))
})
