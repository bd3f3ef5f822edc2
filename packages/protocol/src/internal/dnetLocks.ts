/**
 * Per-key operation locks (elliptics' per-ID lock, skipped with NOLOCK): changes to one object run one at a
 * time, in the order they asked, while other keys go on. A key's semaphore exists only while someone holds or
 * waits for it.
 */
import * as Effect from "effect/Effect"
import * as Semaphore from "effect/Semaphore"

interface Slot {
  readonly semaphore: Semaphore.Semaphore
  users: number
}

export interface KeyedLocks {
  readonly with: <A, E, R>(key: string, effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
}

export const make = (): KeyedLocks => {
  const slots = new Map<string, Slot>()
  return {
    with: (key, effect) =>
      Effect.suspend(() => {
        let slot = slots.get(key)
        if (slot === undefined) slots.set(key, slot = { semaphore: Semaphore.makeUnsafe(1), users: 0 })
        const held = slot
        held.users++
        return Effect.ensuring(
          held.semaphore.withPermits(1)(effect),
          Effect.sync(() => {
            if (--held.users === 0) slots.delete(key)
          })
        )
      })
  }
}
