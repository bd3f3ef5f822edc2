/**
 * A device that can be paused: while locked, reads and writes wait until it is unlocked. The migrator locks the
 * source for its final dirty round, so that "nothing is dirty" also means "nothing can become dirty" and the
 * destination is exact.
 *
 * `lock` returns once the reads and writes already running have finished, so after it nothing is in flight
 * below this device. Flushes and write cancellation pass while locked: they add no data, and a flush that
 * waited would only delay making already acknowledged writes durable. Put a `Lockable` above the dirty tracker
 * when it guards dirty rounds; below it, a waiting write would hold the tracker's shared lock and stall `sync`.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Gate from "./internal/gate.ts"
import { type BlockDevice, wrap } from "./Provider.ts"

/**
 * A device with a lock on its reads and writes.
 *
 * @since 0.1.0
 * @category models
 */
export interface Lockable extends BlockDevice {
  /** Makes new reads and writes wait, then waits for the running ones to finish. Locking twice is harmless. */
  readonly lock: Effect.Effect<void>
  /** Lets waiting and new reads and writes through. */
  readonly unlock: Effect.Effect<void>
  /** Whether the device is locked now. */
  readonly isLocked: () => boolean
}

/**
 * Wraps `inner` in a lock; the device starts unlocked.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fn("Lockable.make")(function*(inner: BlockDevice) {
  const gate = yield* Effect.sync(Gate.makeUnsafe)
  const lockable: Lockable = {
    ...wrap(inner, `lockable(${inner.name})`, {
      readAt: (buffer, offset) => gate.pass(inner.readAt(buffer, offset)),
      writeAt: (data, offset) => gate.pass(inner.writeAt(data, offset))
    }),
    lock: gate.close,
    unlock: gate.open,
    isLocked: gate.isClosed
  }
  return lockable
})
