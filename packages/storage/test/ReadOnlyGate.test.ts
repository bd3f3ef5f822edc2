import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Latch } from "effect"
import * as Memory from "../src/Memory.ts"
import { wrap } from "../src/Provider.ts"
import * as ReadOnlyGate from "../src/ReadOnlyGate.ts"

/** Lets every other runnable fiber take its steps. */
const settle = Effect.gen(function*() {
  for (let i = 0; i < 20; i++) yield* Effect.yieldNow
})

describe("ReadOnlyGate", () => {
  it.effect("writes wait while locked; reads and flushes go on", () =>
    Effect.gen(function*() {
      const memory = yield* Memory.make(100)
      yield* memory.writeAt(new Uint8Array([9]), 10)
      const device = yield* ReadOnlyGate.make(memory)
      yield* device.lock
      assert.isTrue(device.isLocked())
      const write = yield* Effect.forkChild(device.writeAt(new Uint8Array([5]), 10))
      const read = new Uint8Array(1)
      assert.strictEqual(yield* device.readAt(read, 10), 1)
      yield* device.flush
      yield* settle
      assert.strictEqual(read[0], 9)
      assert.isUndefined(write.pollUnsafe())
      yield* device.unlock
      assert.strictEqual(yield* Fiber.join(write), 1)
      yield* device.readAt(read, 10)
      assert.strictEqual(read[0], 5)
    }))

  it.effect("lock waits for running writes, not for running reads", () =>
    Effect.gen(function*() {
      const memory = yield* Memory.make(100)
      const releaseRead = yield* Latch.make()
      const releaseWrite = yield* Latch.make()
      const stalling = wrap(memory, "stalling", {
        readAt: (buffer, offset) => Effect.andThen(releaseRead.await, memory.readAt(buffer, offset)),
        writeAt: (data, offset) => Effect.andThen(releaseWrite.await, memory.writeAt(data, offset))
      })
      const device = yield* ReadOnlyGate.make(stalling)
      const read = yield* Effect.forkChild(device.readAt(new Uint8Array(1), 0))
      yield* settle
      yield* device.lock
      const write = yield* Effect.forkChild(device.writeAt(new Uint8Array(1), 0))
      yield* settle
      yield* device.unlock
      const lock = yield* Effect.forkChild(device.lock)
      yield* settle
      assert.isUndefined(lock.pollUnsafe())
      yield* releaseWrite.open
      yield* Fiber.join(lock)
      assert.strictEqual(yield* Fiber.join(write), 1)
      yield* releaseRead.open
      assert.strictEqual(yield* Fiber.join(read), 1)
    }))
})
