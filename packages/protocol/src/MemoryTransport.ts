/**
 * In-process connections for `memory:name` addresses: the same contract as a socket (bounded buffering,
 * back-pressure, half-close, reset on destroy) without the kernel, for tests and single-process simulations.
 *
 * Names live in one `make` instance: both ends must use the same `Transport`. Each direction of a connection
 * holds at most the reader's `readBuffer` bytes (the option of `dial` or `listen`) before the writer waits.
 * Written arrays are passed by reference, never copied.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Queue from "effect/Queue"
import * as Address from "./Address.ts"
import * as defaults from "./internal/defaults.ts"
import * as MemoryPipe from "./internal/memoryPipe.ts"
import type { Driver, Listener } from "./Transport.ts"
import * as TransportError from "./TransportError.ts"

interface Pending {
  readonly inbound: MemoryPipe.Pipe
  readonly outbound: MemoryPipe.Pipe
  readonly client: string
}

/**
 * A fresh namespace of memory addresses and the driver that dials and listens in it.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (): Effect.Effect<Driver<Address.Memory>> =>
  Effect.sync(() => {
    const listeners = new Map<
      string,
      { readonly queue: Queue.Queue<Pending, TransportError.TransportError>; readonly readBuffer: number }
    >()
    let clients = 0

    const listen: Driver<Address.Memory>["listen"] = (address, options) => {
      const name = Address.format(address)
      return Effect.gen(function*() {
        if (listeners.has(address.name)) {
          return yield* TransportError.make(
            name,
            new TransportError.ListenFailed({ cause: new Error("address already in use") })
          )
        }
        const queue = yield* Queue.bounded<Pending, TransportError.TransportError>(options.backlog ?? defaults.BACKLOG)
        const entry = { queue, readBuffer: options.readBuffer ?? defaults.READ_BUFFER }
        listeners.set(address.name, entry)
        yield* Effect.addFinalizer(() =>
          Effect.sync(() => {
            if (listeners.get(address.name) === entry) listeners.delete(address.name)
            // Connections nobody accepted are reset, as a closing socket server does.
            for (let taken = Queue.takeUnsafe(queue); taken !== undefined; taken = Queue.takeUnsafe(queue)) {
              if (!Exit.isSuccess(taken)) break
              taken.value.inbound.break()
              taken.value.outbound.end()
            }
            Queue.failCauseUnsafe(queue, Cause.fail(TransportError.make(name, new TransportError.Closed())))
          })
        )
        const accept: Listener["accept"] = Effect.uninterruptibleMask((restore) =>
          Effect.flatMap(
            restore(Queue.take(queue)),
            (pending) => MemoryPipe.connect(pending.inbound, pending.outbound, pending.client, name)
          )
        )
        return { address, accept } satisfies Listener
      })
    }

    const dial: Driver<Address.Memory>["dial"] = (address, options) =>
      Effect.suspend(() => {
        const name = Address.format(address)
        const listener = listeners.get(address.name)
        if (listener === undefined) {
          return Effect.fail(
            TransportError.make(name, new TransportError.ConnectFailed({ cause: new Error("no listener") }))
          )
        }
        const toServer = new MemoryPipe.Pipe(listener.readBuffer)
        const toClient = new MemoryPipe.Pipe(options.readBuffer ?? defaults.READ_BUFFER)
        const client = `${name}#${++clients}`
        if (!Queue.offerUnsafe(listener.queue, { inbound: toServer, outbound: toClient, client })) {
          return Effect.fail(
            TransportError.make(name, new TransportError.ConnectFailed({ cause: new Error("backlog full") }))
          )
        }
        return MemoryPipe.connect(toClient, toServer, name, client)
      })

    return { dial, listen }
  })
