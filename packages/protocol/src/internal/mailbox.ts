/**
 * A FIFO bounded in items and in bytes that a synchronous producer fills without waiting (`offer` says false
 * when it is full) and fibers take from. One item is always accepted into an empty mailbox, whatever its
 * size, so the byte bound never starves a single large item. The packet reader hands each request to one of these per (device, command) in plain code,
 * one frame at a time, which is why it is not an Effect `Queue` (whose constructor needs a fiber).
 *
 * A woken taker takes the item when it runs, not when it is woken, so an item is never lost to a taker that
 * was interrupted in between.
 */
import * as Effect from "effect/Effect"

export class Mailbox<A, E> {
  readonly capacity: number
  readonly maxBytes: number
  readonly sizeOf: (item: A) => number
  readonly take: Effect.Effect<A, E>
  #items: Array<A> = []
  #head = 0
  #bytes = 0
  #takers: Array<() => void> = []
  #failure: E | undefined

  constructor(capacity: number, maxBytes: number, sizeOf: (item: A) => number) {
    this.capacity = capacity
    this.maxBytes = maxBytes
    this.sizeOf = sizeOf
    this.take = Effect.suspend(() => {
      if (this.#head < this.#items.length) return Effect.succeed(this.#shift())
      if (this.#failure !== undefined) return Effect.fail(this.#failure)
      return Effect.callback<A, E>((resume) => {
        const wake = () => resume(this.take)
        this.#takers.push(wake)
        return Effect.sync(() => {
          const at = this.#takers.indexOf(wake)
          if (at >= 0) this.#takers.splice(at, 1)
        })
      })
    })
  }

  /** The next item if one is there, without waiting; `undefined` when empty or failed. */
  poll(): A | undefined {
    return this.#head < this.#items.length ? this.#shift() : undefined
  }

  get size(): number {
    return this.#items.length - this.#head
  }

  /** Adds an item unless the mailbox is failed or full (in items, or in bytes when it is not empty). */
  offer(item: A): boolean {
    const size = this.sizeOf(item)
    if (
      this.#failure !== undefined || this.size >= this.capacity ||
      (this.size > 0 && this.#bytes + size > this.maxBytes)
    ) return false
    this.#items.push(item)
    this.#bytes += size
    this.#takers.shift()?.()
    return true
  }

  /** Drops the items and fails every current and later take. */
  fail(error: E): void {
    if (this.#failure !== undefined) return
    this.#failure = error
    this.#items = []
    this.#head = 0
    this.#bytes = 0
    const takers = this.#takers
    this.#takers = []
    for (const wake of takers) wake()
  }

  #shift(): A {
    const item = this.#items[this.#head]!
    this.#items[this.#head++] = undefined as A
    this.#bytes -= this.sizeOf(item)
    if (this.#head === this.#items.length) {
      this.#items.length = 0
      this.#head = 0
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#items.length) {
      this.#items.splice(0, this.#head)
      this.#head = 0
    }
    return item
  }
}
