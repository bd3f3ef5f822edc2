import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import { Device, Memory } from "../src/index.ts"

describe("Memory", () => {
  it.effect("reads back what was written, zeros elsewhere", () =>
    Effect.gen(function*() {
      const device = yield* Memory.make(10_000)
      assert.strictEqual(yield* device.writeAt(new Uint8Array([1, 2, 3]), 4096), 3)
      const buffer = new Uint8Array(6)
      assert.strictEqual(yield* device.readAt(buffer, 4094), 6)
      assert.deepStrictEqual([...buffer], [0, 0, 1, 2, 3, 0])
    }))

  it.effect("cuts reads and writes short at the end of the device, without an error", () =>
    Effect.gen(function*() {
      const device = yield* Memory.make(100)
      assert.strictEqual(yield* device.writeAt(new Uint8Array(10).fill(7), 95), 5)
      assert.strictEqual(yield* device.readAt(new Uint8Array(10), 95), 5)
      assert.strictEqual(yield* device.readAt(new Uint8Array(10), 100), 0)
    }))

  it.effect("refuses offsets outside the device with OutOfRange", () =>
    Effect.gen(function*() {
      const device = yield* Memory.make(100)
      for (const offset of [-1, 101, 0.5, Number.NaN]) {
        const error = yield* Effect.flip(device.readAt(new Uint8Array(1), offset))
        assert.strictEqual(error.reason._tag, "OutOfRange")
      }
    }))

  it.effect("fails with Closed once its scope is closed", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const device = yield* Memory.make(100).pipe(Scope.provide(scope))
      yield* Scope.close(scope, Exit.void)
      const error = yield* Effect.flip(device.writeAt(new Uint8Array(1), 0))
      assert.strictEqual(error.reason._tag, "Closed")
      assert.strictEqual(error.message, "memory:100: closed")
    }))

  it.effect("equals and sha256 see the same bytes", () =>
    Effect.gen(function*() {
      const a = yield* Memory.make(3 << 20)
      const b = yield* Memory.make(3 << 20)
      yield* a.writeAt(new Uint8Array([9]), (2 << 20) + 5)
      assert.isFalse(yield* Device.equals(a, b))
      yield* Device.copy(a, b)
      assert.isTrue(yield* Device.equals(a, b))
      assert.deepStrictEqual(yield* Device.sha256(a), yield* Device.sha256(b))
    }))
})
