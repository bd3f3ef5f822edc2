/**
 * A gate that operations pass through: while it is closed, new operations wait (suspended on a latch, no busy
 * wait) and closing returns only once the operations already through have finished. This is the exclusion
 * behind `Lockable`, `ReadOnlyGate` and the dirty tracker's snapshot: "nothing is running, nothing can start".
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Latch from "effect/Latch"

export interface Gate {
  /** Runs `effect` once the gate is open, counting it as in flight until it ends (however it ends). */
  readonly pass: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /**
   * The parts of `pass`, for a hot path that ends an operation in its own exit handler: counts one operation
   * in and returns `true`, or returns `false` when the gate is closed (wait for `opened`, then try again).
   * Every `true` must be matched by one `leave`, whether the operation succeeds, fails or is interrupted.
   */
  readonly enter: () => boolean
  readonly leave: () => void
  /** Waits until the gate is open. */
  readonly opened: Effect.Effect<void>
  /** Closes the gate and waits until no operation is in flight. Closing a closed gate only waits. */
  readonly close: Effect.Effect<void>
  /** Opens the gate and lets every waiting operation through. */
  readonly open: Effect.Effect<void>
  readonly isClosed: () => boolean
}

export const makeUnsafe = (): Gate => {
  let closed = false
  let inFlight = 0
  let drained: Deferred.Deferred<void> | undefined
  const latch = Latch.makeUnsafe(true)

  // The check and the count happen in one synchronous step, so a `close` can never slip between them.
  const enter = () => {
    if (closed) return false
    inFlight++
    return true
  }

  const leave = () => {
    inFlight--
    if (inFlight === 0 && drained !== undefined) {
      // Detach before completing: completing can resume the closer at once, and if it reopens and closes the gate
      // again it must wait on a fresh Deferred, not this completed one.
      const done = drained
      drained = undefined
      Deferred.doneUnsafe(done, Effect.void)
    }
  }

  const leaveOnExit = () => {
    leave()
    return Effect.void
  }

  // A waiter tries again after waking, because the gate may have closed again before it ran.
  const pass = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.suspend(() => enter() ? Effect.onExit(effect, leaveOnExit) : Effect.andThen(latch.await, pass(effect)))

  const close = Effect.suspend(() => {
    closed = true
    latch.closeUnsafe()
    if (inFlight === 0) return Effect.void
    drained ??= Deferred.makeUnsafe<void>()
    return Deferred.await(drained)
  })

  const open = Effect.sync(() => {
    closed = false
    latch.openUnsafe()
  })

  return { pass, enter, leave, opened: latch.await, close, open, isClosed: () => closed }
}
