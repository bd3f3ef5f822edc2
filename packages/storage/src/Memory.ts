/**
 * A block device in memory: one byte array, zero-filled at creation. Writes are durable the moment they return
 * (there is nothing further to flush), and the bytes are released when the scope closes.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as Lifecycle from "./internal/lifecycle.ts"
import { type BlockDevice, clipEffect, Provider } from "./Provider.ts"

/**
 * Creates a zero-filled device of `size` bytes, closed with the current scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (size: number, name = `memory:${size}`): Effect.Effect<BlockDevice, never, Scope.Scope> =>
  Effect.gen(function*() {
    let bytes = new Uint8Array(size)
    const lifecycle = yield* Lifecycle.make(
      name,
      Effect.sync(() => {
        bytes = new Uint8Array(0)
      })
    )
    return {
      name,
      size,
      readAt: (buffer, offset) =>
        lifecycle.guard(Effect.map(clipEffect(name, size, offset, buffer.length), (n) => {
          buffer.set(bytes.subarray(offset, offset + n))
          return n
        })),
      writeAt: (data, offset) =>
        lifecycle.guard(Effect.map(clipEffect(name, size, offset, data.length), (n) => {
          bytes.set(n === data.length ? data : data.subarray(0, n), offset)
          return n
        })),
      flush: lifecycle.guard(Effect.void),
      cancelWrites: () => Effect.void
    }
  })

/**
 * A `Provider` layer holding a memory device of `size` bytes.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (size: number): Layer.Layer<Provider> => Layer.effect(Provider, make(size))
