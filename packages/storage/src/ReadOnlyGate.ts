/**
 * A device whose writes can be paused while reads go on: while locked, writes wait until it is unlocked. Use it
 * to hold a device's content still (for a snapshot, a hash or a final copy) without stopping its readers.
 *
 * `lock` returns once the writes already running have finished. Flushes and write cancellation pass while
 * locked, as in `Lockable`.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Gate from "./internal/gate.ts"
import { type BlockDevice, wrap } from "./Provider.ts"

/**
 * A device with a lock on its writes.
 *
 * @since 0.1.0
 * @category models
 */
export interface ReadOnlyGate extends BlockDevice {
  /** Makes new writes wait, then waits for the running ones to finish. Locking twice is harmless. */
  readonly lock: Effect.Effect<void>
  /** Lets waiting and new writes through. */
  readonly unlock: Effect.Effect<void>
  /** Whether writes are locked now. */
  readonly isLocked: () => boolean
}

/**
 * Wraps `inner` in a write lock; the device starts unlocked.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fn("ReadOnlyGate.make")(function*(inner: BlockDevice) {
  const gate = yield* Effect.sync(Gate.makeUnsafe)
  const readOnlyGate: ReadOnlyGate = {
    ...wrap(inner, `read-only-gate(${inner.name})`, {
      writeAt: (data, offset) => gate.pass(inner.writeAt(data, offset))
    }),
    lock: gate.close,
    unlock: gate.open,
    isLocked: gate.isClosed
  }
  return readOnlyGate
})
