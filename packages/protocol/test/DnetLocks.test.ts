import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber } from "effect"
import * as Locks from "../src/internal/dnetLocks.ts"

describe("dnet key locks", () => {
  it.effect("changes to one key run one at a time in the order they asked; other keys go on", () =>
    Effect.gen(function*() {
      const locks = Locks.make()
      const log: Array<string> = []
      const gate = yield* Deferred.make<void>()
      const step = (name: string, key: string, wait?: Deferred.Deferred<void>) =>
        locks.with(
          key,
          Effect.gen(function*() {
            log.push(`${name} in`)
            if (wait !== undefined) yield* Deferred.await(wait)
            yield* Effect.yieldNow
            log.push(`${name} out`)
          })
        )
      const first = yield* Effect.forkChild(step("a1", "a", gate))
      yield* Effect.yieldNow
      const second = yield* Effect.forkChild(step("a2", "a"))
      const third = yield* Effect.forkChild(step("a3", "a"))
      yield* step("b1", "b")
      assert.deepStrictEqual(log, ["a1 in", "b1 in", "b1 out"])
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.joinAll([first, second, third])
      assert.deepStrictEqual(log.slice(3), ["a1 out", "a2 in", "a2 out", "a3 in", "a3 out"])
    }))

  it.effect("an interrupted waiter leaves the queue, an interrupted holder passes the lock on, a failure too", () =>
    Effect.gen(function*() {
      const locks = Locks.make()
      const log: Array<string> = []
      const holder = yield* Effect.forkChild(locks.with("k", Effect.never))
      yield* Effect.yieldNow
      const waiter = yield* Effect.forkChild(locks.with("k", Effect.sync(() => log.push("waiter"))))
      const next = yield* Effect.forkChild(locks.with("k", Effect.fail("boom")))
      yield* Effect.yieldNow
      yield* Fiber.interrupt(waiter)
      yield* Fiber.interrupt(holder)
      assert.strictEqual(yield* Effect.flip(Fiber.join(next)), "boom")
      yield* locks.with("k", Effect.sync(() => log.push("last")))
      assert.deepStrictEqual(log, ["last"])
    }))
})
