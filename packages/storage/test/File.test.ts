import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Scope } from "effect"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as File from "../src/File.ts"
import { Provider } from "../src/index.ts"
import { stress } from "./utils/stress.ts"
import { tempDir } from "./utils/tempDir.ts"

const bytes = (length: number, seed: number) => Uint8Array.from({ length }, (_, i) => (i * 31 + seed) & 0xff)

describe("File", () => {
  it.effect("creates a file of the given size, zero-filled, and reads back what was written", () =>
    Effect.gen(function*() {
      const file = path.join(yield* tempDir, "disk.img")
      const device = yield* File.make({ path: file, create: true, size: 10_000 })
      assert.strictEqual(device.size, 10_000)
      assert.strictEqual((yield* Effect.promise(() => fs.stat(file))).size, 10_000)
      assert.strictEqual(yield* device.writeAt(new Uint8Array([1, 2, 3]), 4096), 3)
      const buffer = new Uint8Array(6).fill(9)
      assert.strictEqual(yield* device.readAt(buffer, 4094), 6)
      assert.deepStrictEqual([...buffer], [0, 0, 1, 2, 3, 0])
    }))

  it.effect("cuts reads and writes short at the end of the device, without an error", () =>
    Effect.gen(function*() {
      const device = yield* File.make({ path: path.join(yield* tempDir, "d"), create: true, size: 100 })
      assert.strictEqual(yield* device.writeAt(new Uint8Array(10).fill(7), 95), 5)
      const buffer = new Uint8Array(10)
      assert.strictEqual(yield* device.readAt(buffer, 95), 5)
      assert.deepStrictEqual([...buffer], [7, 7, 7, 7, 7, 0, 0, 0, 0, 0])
      assert.strictEqual(yield* device.readAt(new Uint8Array(10), 100), 0)
      assert.strictEqual(yield* device.writeAt(new Uint8Array(10), 100), 0)
      // The file does not grow past the device.
      assert.strictEqual((yield* Effect.promise(() => fs.stat(device.name.slice("file:".length)))).size, 100)
    }))

  it.effect("refuses offsets outside the device with OutOfRange", () =>
    Effect.gen(function*() {
      const device = yield* File.make({ path: path.join(yield* tempDir, "d"), create: true, size: 100 })
      for (const offset of [-1, 101, 0.5, Number.NaN]) {
        assert.strictEqual((yield* Effect.flip(device.readAt(new Uint8Array(1), offset))).reason._tag, "OutOfRange")
        assert.strictEqual((yield* Effect.flip(device.writeAt(new Uint8Array(1), offset))).reason._tag, "OutOfRange")
      }
    }))

  it.effect("keeps its bytes across close and reopen, taking the size from the file", () =>
    Effect.gen(function*() {
      const file = path.join(yield* tempDir, "d")
      const first = yield* Scope.make()
      const written = yield* File.make({ path: file, create: true, size: 70_000 }).pipe(Scope.provide(first))
      yield* written.writeAt(bytes(65_536, 3), 4000)
      yield* written.flush
      yield* Scope.close(first, Exit.void)

      const device = yield* File.make({ path: file })
      assert.strictEqual(device.size, 70_000)
      const buffer = new Uint8Array(65_536)
      yield* device.readAt(buffer, 4000)
      assert.deepStrictEqual(buffer, bytes(65_536, 3))
    }))

  it.effect("create keeps the bytes below the new size, as Silo's NewFileStorageCreate truncates", () =>
    Effect.gen(function*() {
      const file = path.join(yield* tempDir, "d")
      yield* Effect.promise(() => fs.writeFile(file, bytes(1000, 5)))
      const device = yield* File.make({ path: file, create: true, size: 500 })
      const buffer = new Uint8Array(500)
      yield* device.readAt(buffer, 0)
      assert.deepStrictEqual(buffer, bytes(1000, 5).subarray(0, 500))
      assert.strictEqual((yield* Effect.promise(() => fs.stat(file))).size, 500)
    }))

  it.effect("a device larger than its file reads zeros past the file's end and grows it when written there", () =>
    Effect.gen(function*() {
      const file = path.join(yield* tempDir, "d")
      yield* Effect.promise(() => fs.writeFile(file, new Uint8Array(10).fill(1)))
      const device = yield* File.make({ path: file, size: 100 })
      const buffer = new Uint8Array(20).fill(9)
      assert.strictEqual(yield* device.readAt(buffer, 5), 20)
      assert.deepStrictEqual([...buffer], [...new Uint8Array(5).fill(1), ...new Uint8Array(15)])
      yield* device.writeAt(new Uint8Array([2]), 99)
      assert.strictEqual((yield* Effect.promise(() => fs.stat(file))).size, 100)
    }))

  it.effect("opening a missing file without create is NotFound naming the path", () =>
    Effect.gen(function*() {
      const file = path.join(yield* tempDir, "missing.img")
      const error = yield* Effect.flip(File.make({ path: file }))
      assert.strictEqual(error.reason._tag, "NotFound")
      assert.include(error.message, `not found: ${file}`)
    }))

  it.effect("refuses a size that is not a whole number of bytes", () =>
    Effect.gen(function*() {
      const file = path.join(yield* tempDir, "d")
      for (const size of [-1, 1.5, Number.NaN]) {
        const error = yield* Effect.flip(File.make({ path: file, create: true, size }))
        assert.strictEqual(error.reason._tag, "Unsupported")
      }
    }))

  it.effect("fails with Closed once its scope is closed, flush included", () =>
    Effect.gen(function*() {
      const file = path.join(yield* tempDir, "d")
      const scope = yield* Scope.make()
      const device = yield* File.make({ path: file, create: true, size: 100 }).pipe(Scope.provide(scope))
      yield* device.flush
      yield* Scope.close(scope, Exit.void)
      const error = yield* Effect.flip(device.writeAt(new Uint8Array(1), 0))
      assert.strictEqual(error.reason._tag, "Closed")
      assert.strictEqual(error.message, `file:${file}: closed`)
      assert.strictEqual((yield* Effect.flip(device.readAt(new Uint8Array(1), 0))).reason._tag, "Closed")
      assert.strictEqual((yield* Effect.flip(device.flush)).reason._tag, "Closed")
    }))

  it.effect("closing waits for writes in flight, even when their callers are interrupted", () =>
    Effect.gen(function*() {
      const file = path.join(yield* tempDir, "d")
      const size = 32 << 20
      const scope = yield* Scope.make()
      const device = yield* File.make({ path: file, create: true, size }).pipe(Scope.provide(scope))
      const data = bytes(size, 7)
      const finished = yield* Effect.forkChild(device.writeAt(data, 0))
      const abandoned = yield* Effect.forkChild(device.writeAt(data.subarray(0, 1 << 20), 1 << 20))
      yield* Effect.yieldNow
      yield* Fiber.interrupt(abandoned)
      yield* Scope.close(scope, Exit.void)
      // Both system calls were issued before the close, so both complete on the open handle.
      assert.strictEqual(yield* Fiber.join(finished), size)
      const onDisk = yield* Effect.promise(() => fs.readFile(file))
      assert.isTrue(onDisk.equals(data))
    }))

  it.effect("layer holds the device as the Provider", () =>
    Effect.gen(function*() {
      const file = path.join(yield* tempDir, "d")
      const name = yield* Provider.Provider.use((device) => Effect.succeed(`${device.name} ${device.size}`)).pipe(
        Effect.provide(File.layer({ path: file, create: true, size: 1234 }))
      )
      assert.strictEqual(name, `file:${file} 1234`)
    }))

  it.effect("many concurrent writers and readers leave exactly the model's bytes", () =>
    Effect.gen(function*() {
      const device = yield* File.make({ path: path.join(yield* tempDir, "d"), create: true, size: 3_000_017 })
      yield* stress(device, { writers: 8, readers: 4, writesPerWriter: 150, readsPerReader: 200, bandsPerWriter: 5 })
    }))
})
