import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Latch } from "effect"
import * as Lockable from "../src/Lockable.ts"
import * as Memory from "../src/Memory.ts"
import { wrap } from "../src/Provider.ts"

/** Lets every other runnable fiber take its steps. */
const settle = Effect.gen(function*() {
  for (let i = 0; i < 20; i++) yield* Effect.yieldNow
})

describe("Lockable", () => {
  it.effect("reads and writes wait while locked and go on when unlocked; flushes pass", () =>
    Effect.gen(function*() {
      const memory = yield* Memory.make(100)
      const device = yield* Lockable.make(memory)
      assert.isFalse(device.isLocked())
      yield* device.lock
      assert.isTrue(device.isLocked())
      const write = yield* Effect.forkChild(device.writeAt(new Uint8Array([5]), 10))
      const read = yield* Effect.forkChild(device.readAt(new Uint8Array(1), 10))
      yield* device.flush
      yield* settle
      assert.isUndefined(write.pollUnsafe())
      assert.isUndefined(read.pollUnsafe())
      const stored = new Uint8Array(1)
      yield* memory.readAt(stored, 10)
      assert.strictEqual(stored[0], 0)
      yield* device.unlock
      assert.isFalse(device.isLocked())
      assert.strictEqual(yield* Fiber.join(write), 1)
      assert.strictEqual(yield* Fiber.join(read), 1)
    }))

  it.effect("lock returns only once the reads and writes already running have finished", () =>
    Effect.gen(function*() {
      const memory = yield* Memory.make(100)
      const release = yield* Latch.make()
      const stalling = wrap(memory, "stalling", {
        readAt: (buffer, offset) => Effect.andThen(release.await, memory.readAt(buffer, offset)),
        writeAt: (data, offset) => Effect.andThen(release.await, memory.writeAt(data, offset))
      })
      const device = yield* Lockable.make(stalling)
      const write = yield* Effect.forkChild(device.writeAt(new Uint8Array([5]), 10))
      const read = yield* Effect.forkChild(device.readAt(new Uint8Array(1), 10))
      yield* settle
      const lock = yield* Effect.forkChild(device.lock)
      yield* settle
      assert.isTrue(device.isLocked())
      assert.isUndefined(lock.pollUnsafe())
      yield* release.open
      yield* Fiber.join(lock)
      assert.strictEqual(yield* Fiber.join(write), 1)
      assert.strictEqual(yield* Fiber.join(read), 1)
    }))

  it.effect("locking twice needs one unlock", () =>
    Effect.gen(function*() {
      const device = yield* Lockable.make(yield* Memory.make(100))
      yield* device.lock
      yield* device.lock
      yield* device.unlock
      assert.isFalse(device.isLocked())
      assert.strictEqual(yield* device.writeAt(new Uint8Array(3), 0), 3)
    }))

  it.effect("an interrupted waiter leaves the device usable", () =>
    Effect.gen(function*() {
      const device = yield* Lockable.make(yield* Memory.make(100))
      yield* device.lock
      const write = yield* Effect.forkChild(device.writeAt(new Uint8Array(1), 0))
      yield* settle
      yield* Fiber.interrupt(write)
      yield* device.unlock
      yield* device.lock
      yield* device.unlock
      assert.strictEqual(yield* device.readAt(new Uint8Array(1), 0), 1)
    }))
})
