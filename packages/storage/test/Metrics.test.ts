import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Metric } from "effect"
import { TestClock } from "effect/testing"
import * as Memory from "../src/Memory.ts"
import * as Metrics from "../src/Metrics.ts"
import { wrap } from "../src/Provider.ts"

/** Each test gets its own registry, so tests running side by side do not add to each other's series. */
const freshRegistry = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.suspend(() => Effect.provideService(effect, Metric.MetricRegistry, new Map()))

/** The count in each size bucket (the state's buckets are cumulative). */
const perBucket = (state: Metric.HistogramState) =>
  state.buckets.map(([boundary, cumulative], i) => [boundary, cumulative - (state.buckets[i - 1]?.[1] ?? 0)])

describe("Metrics", () => {
  it.effect("counts operations and bytes, and buckets sizes from 4 KiB to 1 MiB", () =>
    Effect.gen(function*() {
      const device = yield* Metrics.make(yield* Memory.make(4 << 20))
      yield* device.writeAt(new Uint8Array(100), 0)
      yield* device.writeAt(new Uint8Array(4096), 0)
      yield* device.writeAt(new Uint8Array(5000), 0)
      yield* device.writeAt(new Uint8Array(2 << 20), 0)
      yield* device.readAt(new Uint8Array(65_536), 0)
      yield* device.readAt(new Uint8Array(100), (4 << 20) - 10)
      yield* device.flush
      const snapshot = yield* device.snapshot
      assert.strictEqual(snapshot.write.operations, 4)
      assert.strictEqual(snapshot.write.bytes, 100 + 4096 + 5000 + (2 << 20))
      assert.strictEqual(snapshot.read.operations, 2)
      assert.strictEqual(snapshot.read.bytes, 65_536 + 10)
      assert.strictEqual(snapshot.flush.operations, 1)
      assert.deepStrictEqual(perBucket(snapshot.write.sizes), [
        [4096, 2],
        [8192, 1],
        [16_384, 0],
        [32_768, 0],
        [65_536, 0],
        [131_072, 0],
        [262_144, 0],
        [524_288, 0],
        [1 << 20, 0],
        [Number.POSITIVE_INFINITY, 1]
      ])
      assert.strictEqual(snapshot.read.sizes.count, 2)
    }).pipe(freshRegistry))

  it.effect("counts errors, and still counts the failed operation", () =>
    Effect.gen(function*() {
      const device = yield* Metrics.make(yield* Memory.make(100))
      const error = yield* Effect.flip(device.readAt(new Uint8Array(1), 200))
      assert.strictEqual(error.reason._tag, "OutOfRange")
      const snapshot = yield* device.snapshot
      assert.deepStrictEqual([snapshot.read.operations, snapshot.read.errors, snapshot.read.bytes], [1, 1, 0])
      assert.deepStrictEqual([snapshot.write.operations, snapshot.write.errors], [0, 0])
    }).pipe(freshRegistry))

  it.effect("measures latency with the Clock and shows running operations", () =>
    Effect.gen(function*() {
      const memory = yield* Memory.make(100)
      const slow = wrap(memory, "slow", {
        writeAt: (data, offset) => Effect.andThen(Effect.sleep("25 millis"), memory.writeAt(data, offset))
      })
      const device = yield* Metrics.make(slow)
      const write = yield* Effect.forkChild(device.writeAt(new Uint8Array(10), 0))
      yield* Effect.yieldNow
      assert.strictEqual((yield* device.snapshot).write.inFlight, 1)
      yield* TestClock.adjust("25 millis")
      yield* Fiber.join(write)
      const { write: writes } = yield* device.snapshot
      assert.strictEqual(writes.inFlight, 0)
      assert.deepStrictEqual([writes.latency.count, writes.latency.min, writes.latency.max], [1, 25, 25])
    }).pipe(freshRegistry))

  it.effect("an interrupted operation is neither completed nor failed", () =>
    Effect.gen(function*() {
      const memory = yield* Memory.make(100)
      const stuck = wrap(memory, "stuck", { readAt: () => Effect.never })
      const device = yield* Metrics.make(stuck)
      const read = yield* Effect.forkChild(device.readAt(new Uint8Array(1), 0))
      yield* Effect.yieldNow
      yield* Fiber.interrupt(read)
      const snapshot = yield* device.snapshot
      assert.deepStrictEqual([snapshot.read.operations, snapshot.read.errors, snapshot.read.inFlight], [0, 0, 0])
    }).pipe(freshRegistry))

  it.effect("series are tagged by device and operation, for any exporter", () =>
    Effect.gen(function*() {
      const a = yield* Metrics.make(yield* Memory.make(100), { device: "a" })
      const b = yield* Metrics.make(yield* Memory.make(100), { device: "b" })
      yield* a.writeAt(new Uint8Array(1), 0)
      yield* b.writeAt(new Uint8Array(1), 0)
      yield* b.writeAt(new Uint8Array(1), 0)
      assert.strictEqual((yield* a.snapshot).write.operations, 1)
      assert.strictEqual((yield* b.snapshot).write.operations, 2)
      const exported = (yield* Metric.snapshot).filter((metric) =>
        metric.id === Metrics.names.operations && metric.attributes?.["operation"] === "write"
      )
      assert.deepStrictEqual(
        exported.map((metric) => [metric.attributes?.["device"], (metric.state as Metric.CounterState<number>).count]),
        [["a", 1], ["b", 2]]
      )
    }).pipe(freshRegistry))

  it.effect("passes data through unchanged", () =>
    Effect.gen(function*() {
      const device = yield* Metrics.make(yield* Memory.make(100))
      yield* device.writeAt(new Uint8Array([1, 2, 3]), 50)
      const back = new Uint8Array(3)
      yield* device.readAt(back, 50)
      assert.deepStrictEqual([...back], [1, 2, 3])
      assert.strictEqual(device.size, 100)
    }).pipe(freshRegistry))
})
