/**
 * Time for the tile engines: the current time in milliseconds and one-shot timers. Tiles, links and services
 * never read a clock or set a timer themselves, so the same code runs on the system clock in a daemon and on
 * virtual time in a grid simulation, where a seeded run replays exactly and simulated minutes pass in
 * milliseconds.
 *
 * Callbacks run one at a time, never concurrently, and must not throw (engine code reports problems as
 * counters and events instead).
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { type Entry, Heap } from "./internal/heap.ts"

/**
 * A pending timer.
 *
 * @since 0.1.0
 * @category models
 */
export interface Timer {
  /** Stops the timer; a no-op once it fired. */
  readonly cancel: () => void
}

/**
 * A clock and timer source.
 *
 * @since 0.1.0
 * @category models
 */
export interface Scheduler {
  /** Milliseconds since an arbitrary origin. */
  readonly now: () => number
  /** Runs `f` once after `ms` milliseconds (0 = as soon as the current callback returns). */
  readonly after: (ms: number, f: () => void) => Timer
}

/**
 * A scheduler on virtual time: nothing happens until `run` advances it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Virtual extends Scheduler {
  /** Runs every timer due up to `until` (ms), in time order, and leaves the clock at `until`. */
  readonly runUntil: (until: number) => void
  /**
   * Runs timers in order until `done()` is true (checked after each timer) or the clock would pass `limit`;
   * returns whether `done()` became true.
   */
  readonly runWhile: (done: () => boolean, limit: number) => boolean
  /** Timers still pending. */
  readonly pending: () => number
}

/**
 * A virtual-time scheduler starting at time 0.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeVirtual = (): Virtual => {
  const heap = new Heap()
  let now = 0
  let seq = 0
  const after = (ms: number, f: () => void): Timer => {
    const entry: Entry = { at: now + Math.max(0, ms), seq: seq++, run: f }
    heap.push(entry)
    return {
      cancel: () => {
        entry.run = undefined
      }
    }
  }
  const step = (limit: number): boolean => {
    const top = heap.peek()
    if (top === undefined || top.at > limit) return false
    heap.pop()
    now = top.at
    const run = top.run
    top.run = undefined
    run?.()
    return true
  }
  return {
    now: () => now,
    after,
    runUntil: (until) => {
      while (step(until)) {
        // each step runs one timer
      }
      now = Math.max(now, until)
    },
    runWhile: (done, limit) => {
      if (done()) return true
      while (step(limit)) {
        if (done()) return true
      }
      return false
    },
    pending: () => heap.size
  }
}

/**
 * A scheduler on the system clock (`performance.now`, `setTimeout`). Every timer still pending when the
 * scope closes is cleared, so nothing outlives its tile.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeSystem: Effect.Effect<Scheduler, never, Scope.Scope> = Effect.gen(function*() {
  const timers = new Set<ReturnType<typeof setTimeout>>()
  yield* Effect.addFinalizer(() =>
    Effect.sync(() => {
      for (const t of timers) clearTimeout(t)
      timers.clear()
    })
  )
  return {
    now: () => performance.now(),
    after: (ms, f) => {
      const t = setTimeout(() => {
        timers.delete(t)
        f()
      }, Math.max(0, ms))
      timers.add(t)
      return {
        cancel: () => {
          clearTimeout(t)
          timers.delete(t)
        }
      }
    }
  }
})

/**
 * The scheduler a tile program runs on.
 *
 * @since 0.1.0
 * @category services
 */
export class TileScheduler extends Context.Service<TileScheduler, Scheduler>()("@tessera/tile/Scheduler") {
  /** The system clock, timers cleared when the layer's scope closes. */
  static readonly layerSystem: Layer.Layer<TileScheduler> = Layer.effect(TileScheduler, makeSystem)
}
