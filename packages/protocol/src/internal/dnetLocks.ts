/**
 * Per-key operation locks (elliptics' per-ID lock, skipped with NOLOCK): changes to one object run one at a
 * time, in the order they asked, while other keys go on. A key is in the map only while someone holds it; its
 * waiters queue behind it, and the holder hands the lock to the first of them when it is done. An uncontended
 * change (the usual case) costs a map entry and nothing else.
 */
import * as Effect from "effect/Effect"

export interface KeyedLocks {
  readonly with: <A, E, R>(key: string, effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** Whether someone holds `key`'s lock now: a change done synchronously while nobody does needs no lock. */
  readonly isHeld: (key: string) => boolean
}

/** A waiter: called when the lock is handed to it. */
type Grant = () => void

export const make = (): KeyedLocks => {
  const held = new Map<string, Array<Grant>>()
  const release = (key: string) =>
    Effect.sync(() => {
      const waiters = held.get(key)!
      const next = waiters.shift()
      if (next === undefined) held.delete(key)
      else next()
    })
  return {
    isHeld: (key) => held.has(key),
    with: (key, effect) =>
      Effect.uninterruptibleMask((restore) => {
        const waiters = held.get(key)
        if (waiters === undefined) {
          held.set(key, [])
          return Effect.ensuring(restore(effect), release(key))
        }
        let granted = false
        const wait = Effect.callback<void>((resume) => {
          const grant: Grant = () => {
            granted = true
            resume(Effect.void)
          }
          waiters.push(grant)
          return Effect.sync(() => {
            const at = waiters.indexOf(grant)
            if (at >= 0) waiters.splice(at, 1)
          })
        })
        return Effect.andThen(
          // Interrupted after the lock was handed over but before it was used: pass it on.
          Effect.onInterrupt(restore(wait), () => (granted ? release(key) : Effect.void)),
          Effect.ensuring(restore(effect), release(key))
        )
      })
  }
}
