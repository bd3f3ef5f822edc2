/**
 * One mutex per key, created on first use and dropped when its last user leaves: operations on the same object
 * run one at a time (a read-modify-write must not lose a concurrent one), operations on different objects run
 * in parallel.
 */
import * as Effect from "effect/Effect"
import * as Semaphore from "effect/Semaphore"

export interface KeyedLock {
  /** Runs `effect` while holding the lock of `key`. */
  readonly withLock: (key: string) => <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
}

interface Entry {
  readonly semaphore: Semaphore.Semaphore
  users: number
}

export const make = (): KeyedLock => {
  const entries = new Map<string, Entry>()
  return {
    withLock: (key) => (effect) =>
      Effect.acquireUseRelease(
        Effect.sync(() => {
          let entry = entries.get(key)
          if (!entry) {
            entry = { semaphore: Semaphore.makeUnsafe(1), users: 0 }
            entries.set(key, entry)
          }
          entry.users++
          return entry
        }),
        (entry) => entry.semaphore.withPermit(effect),
        (entry) =>
          Effect.sync(() => {
            if (--entry.users === 0) entries.delete(key)
          })
      )
  }
}
