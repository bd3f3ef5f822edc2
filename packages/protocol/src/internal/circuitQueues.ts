/**
 * The two queues of the circuit machinery, written for plain code that must not wait (the frame reader):
 *
 * - `Inbox`: what a circuit (or a peer's new-circuit feed) received and its user has not taken yet. Its size is
 *   bounded by flow control (reads) or by an explicit cap (new circuits), not by the queue itself.
 * - `Outbox`: the frames a connection sends. Data frames (traffic, circuit starts, ends) share a bounded FIFO,
 *   so a sender waits for room and per-circuit order is the queue's order; control frames (acks, window
 *   updates) go ahead of them and never wait, because the reader that produces them must not block. One fiber
 *   at a time holds the writer's turn and writes everything queued: a sender that finds the turn free, else
 *   the connection's writer fiber.
 */
import type * as Arr from "effect/Array"
import * as Effect from "effect/Effect"

/** Resumes every registered waiter once; each re-checks its condition when it runs. */
const wakeAll = (waiters: Array<() => void>): void => {
  if (waiters.length === 0) return
  const woken = waiters.splice(0, waiters.length)
  for (const wake of woken) wake()
}

/** Registers a waiter until woken; an interrupted wait unregisters itself. */
const waitOn = <A, E>(waiters: Array<() => void>, retry: () => Effect.Effect<A, E>): Effect.Effect<A, E> =>
  Effect.callback<A, E>((resume) => {
    const wake = () => resume(retry())
    waiters.push(wake)
    return Effect.sync(() => {
      const at = waiters.indexOf(wake)
      if (at >= 0) waiters.splice(at, 1)
    })
  })

export class Inbox<A> {
  #items: Array<A> = []
  #head = 0
  #ended = false
  readonly #waiters: Array<() => void> = []

  get size(): number {
    return this.#items.length - this.#head
  }

  get ended(): boolean {
    return this.#ended
  }

  push(item: A): void {
    if (this.#ended) return
    this.#items.push(item)
    wakeAll(this.#waiters)
  }

  /** No more items; with `drop`, those not taken are discarded, otherwise they are still delivered. */
  end(drop: boolean): void {
    if (this.#ended) return
    this.#ended = true
    if (drop) {
      this.#items = []
      this.#head = 0
    }
    wakeAll(this.#waiters)
  }

  /** Everything queued (waits for at least one); `undefined` once ended and empty. */
  readonly takeAll: Effect.Effect<Arr.NonEmptyArray<A> | undefined> = Effect.suspend(() => {
    if (this.size > 0) {
      const batch = (this.#head === 0 ? this.#items : this.#items.slice(this.#head)) as Arr.NonEmptyArray<A>
      this.#items = []
      this.#head = 0
      return Effect.succeed(batch)
    }
    if (this.#ended) return Effect.succeed(undefined)
    return waitOn(this.#waiters, () => this.takeAll)
  })

  /** The next item (waits for one); `undefined` once ended and empty. */
  readonly takeOne: Effect.Effect<A | undefined> = Effect.suspend(() => {
    if (this.size > 0) {
      const item = this.#items[this.#head]!
      this.#items[this.#head++] = undefined as A
      if (this.#head === this.#items.length) {
        this.#items = []
        this.#head = 0
      }
      return Effect.succeed(item)
    }
    if (this.#ended) return Effect.succeed(undefined)
    return waitOn(this.#waiters, () => this.takeOne)
  })
}

/** The payload bytes of a circuit's sends that are not written to the connection yet. */
export interface Unwritten {
  bytes: number
}

/**
 * One frame to send: its header and its payload, written by reference (empty when it is in the header). A
 * user's fragment names its circuit's `unwritten` count and its payload size (`bytes`): the count goes down by
 * that much when the frame is taken for writing, or dropped.
 */
export interface OutFrame {
  readonly header: Uint8Array
  readonly payload: Uint8Array
  readonly unwritten: Unwritten | undefined
  readonly bytes: number
}

/** Payloads up to this size are copied into their frame, so small frames go out as one buffer. */
export const INLINE_PAYLOAD = 2048

const SLAB_SIZE = 64 * 1024
let slab = new ArrayBuffer(0)
let slabNext = 0

/**
 * Memory for an outgoing frame. A typed array of its own costs microseconds beyond 64 bytes (a backing store
 * for the GC to track), a view of a shared slab a few dozen nanoseconds; a region is handed out once, so the
 * socket may hold it as long as it needs, and a slab is freed when no frame in it is referenced any more.
 */
export const frameBytes = (size: number): Uint8Array => {
  if (size > SLAB_SIZE / 8) return new Uint8Array(size)
  if (slab.byteLength - slabNext < size) {
    slab = new ArrayBuffer(SLAB_SIZE)
    slabNext = 0
  }
  const bytes = new Uint8Array(slab, slabNext, size)
  slabNext += size
  return bytes
}

export class Outbox<E> {
  readonly capacity: number
  readonly maxControl: number
  #control: Array<OutFrame> = []
  #data: Array<OutFrame> = []
  #failure: E | undefined
  #writing = false
  readonly #writers: Array<() => void> = []
  readonly #senders: Array<() => void> = []

  constructor(capacity: number, maxControl: number) {
    this.capacity = capacity
    this.maxControl = maxControl
  }

  get failure(): E | undefined {
    return this.#failure
  }

  get pending(): number {
    return this.#control.length + this.#data.length
  }

  /** Whether a data frame fits now. */
  hasRoom(): boolean {
    return this.#data.length < this.capacity
  }

  /** Queues a control frame ahead of the data; false when failed, or when the peer stopped reading them. */
  control(frame: OutFrame): boolean {
    if (this.#failure !== undefined || this.#control.length >= this.maxControl) return false
    this.#control.push(frame)
    wakeAll(this.#writers)
    return true
  }

  /** Queues a data frame even when full (for ends and shutdown notices, at most one per circuit or peer). */
  force(frame: OutFrame): boolean {
    if (this.#failure !== undefined) return false
    this.#data.push(frame)
    wakeAll(this.#writers)
    return true
  }

  /** Queues a data frame without waking the writer fiber: for a sender that writes it itself right after. */
  queue(frame: OutFrame): void {
    this.#data.push(frame)
  }

  /** Waits until a data frame fits, or fails; `senders` may be woken by other conditions too. */
  waitRoom(retry: () => Effect.Effect<void, E>): Effect.Effect<void, E> {
    return waitOn(this.#senders, retry)
  }

  /** Wakes the senders waiting for room (after another condition they wait on changed). */
  wakeSenders(): void {
    wakeAll(this.#senders)
  }

  /**
   * Takes the writer's turn if nobody has it: whoever holds it writes everything queued, so a sender on an
   * idle connection writes its own frame at once instead of waking the writer fiber.
   */
  tryAcquire(): boolean {
    if (this.#writing || this.#failure !== undefined) return false
    this.#writing = true
    return true
  }

  /** Gives the writer's turn back; the writer fiber is woken for what was queued meanwhile. */
  release(): void {
    this.#writing = false
    if (this.pending > 0) wakeAll(this.#writers)
  }

  /** Waits until there is something to write and nobody is writing it. */
  readonly waitWork: Effect.Effect<void, E> = Effect.suspend(() => {
    if (this.#failure !== undefined) return Effect.fail(this.#failure)
    if (!this.#writing && this.pending > 0) return Effect.void
    return waitOn(this.#writers, () => this.waitWork)
  })

  /** Everything queued, as gather-write chunks, or `undefined` when nothing is. */
  takeChunks(): Array<Uint8Array> | undefined {
    if (this.#control.length === 0 && this.#data.length === 0) return undefined
    const frames = this.#control.length === 0 ? this.#data : this.#control.concat(this.#data)
    this.#control = []
    this.#data = []
    wakeAll(this.#senders)
    const chunks: Array<Uint8Array> = []
    for (const { header, payload, unwritten, bytes } of frames) {
      chunks.push(header)
      if (payload.length > 0) chunks.push(payload)
      if (unwritten !== undefined) unwritten.bytes -= bytes
    }
    return chunks
  }

  fail(error: E): void {
    if (this.#failure !== undefined) return
    this.#failure = error
    for (const { unwritten, bytes } of this.#data) if (unwritten !== undefined) unwritten.bytes -= bytes
    this.#control = []
    this.#data = []
    wakeAll(this.#writers)
    wakeAll(this.#senders)
  }
}
