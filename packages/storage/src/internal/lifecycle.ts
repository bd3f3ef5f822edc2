/**
 * The closed state of a device or store, tied to the scope that made it: operations started after the scope
 * began closing fail with `Closed`, and closing waits for the ones already running (files must not be closed
 * under an in-flight read or write).
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as StorageError from "../StorageError.ts"

export interface Lifecycle {
  /** Runs `effect` unless closed, counting it as in flight. */
  readonly guard: <A, E, R>(
    effect: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | StorageError.StorageError, R>
  readonly isClosed: () => boolean
}

/**
 * Creates the lifecycle of `device` in the current scope; `onClose` runs once no operation is in flight.
 */
export const make = <R>(
  device: string,
  onClose: Effect.Effect<void, never, R> = Effect.void as Effect.Effect<void, never, R>
): Effect.Effect<Lifecycle, never, Scope.Scope | R> =>
  Effect.gen(function*() {
    let closed = false
    let inFlight = 0
    let drained: Deferred.Deferred<void> | undefined
    const closedError = StorageError.make(device, new StorageError.Closed())

    const done = Effect.sync(() => {
      inFlight--
      if (inFlight === 0 && drained) Deferred.doneUnsafe(drained, Effect.void)
    })

    const guard = <A, E, R2>(effect: Effect.Effect<A, E, R2>): Effect.Effect<A, E | StorageError.StorageError, R2> =>
      Effect.suspend((): Effect.Effect<A, E | StorageError.StorageError, R2> => {
        if (closed) return Effect.fail(closedError)
        inFlight++
        return Effect.ensuring(effect, done)
      })

    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        closed = true
        if (inFlight > 0) {
          drained = Deferred.makeUnsafe<void>()
          yield* Deferred.await(drained)
        }
        yield* onClose
      })
    )
    return { guard, isClosed: () => closed }
  })
