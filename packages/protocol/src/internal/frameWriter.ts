/**
 * The sending half of one stream of a packet connection: lays frames out as byte arrays and writes them to
 * the transport in batches, one gather write per batch.
 *
 * Layout: headers, and small payloads with them, are written into a staging slab (bump-allocated, never
 * rewritten, so the views handed to the transport stay valid however long it holds them), and consecutive
 * small frames form one contiguous part. A payload above `SMALL_PAYLOAD` is not copied: it goes out as its
 * own part right after its header, so a 1 MiB WriteAt costs a 12-byte header and two array references.
 *
 * Writing is group commit: one fiber at a time writes (`flush`), taking everything appended so far; frames
 * appended while it waits for the transport to drain are written by the same fiber in its next batch, and
 * their senders wait until it is done. So under back-pressure frames coalesce into big writes, a stream never
 * holds more than one batch plus one frame per waiting sender, and nothing waits on a timer. Frames can also
 * be left for a background flush at the end of the current task (`flushSoon`: every frame produced by one
 * burst of work, such as the responses to one batch of requests, leaves in one write) or after a delay
 * (`flushAfter`).
 */
import * as SiloFrame from "@tessera/codec/SiloFrame"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type { Connection } from "../Transport.ts"
import type { TransportError } from "../TransportError.ts"

/** Payloads up to this size are copied next to their header; larger ones are sent by reference. */
const SMALL_PAYLOAD = 4096

const SLAB_SIZE = 64 * 1024

/** What the owner of a writer provides. */
export interface Hooks<E> {
  /** Runs a background flush (end-of-task and timer flushes); its failure is already handled by `failed`. */
  readonly fork: (flush: Effect.Effect<void, E>) => void
  /** Turns the first transport failure into the error every later flush fails with. */
  readonly failed: (error: TransportError) => Effect.Effect<E>
}

type Resume<E> = (result: Effect.Effect<void, E>) => void

export class FrameWriter<E> {
  readonly connection: Connection
  readonly hooks: Hooks<E>
  /** Gather writes issued, writes that failed, frames appended but not yet accepted by the transport. */
  writes = 0
  writeErrors = 0
  activeFrames = 0
  /** Waits for (or becomes) the flushing fiber, and returns once everything appended before it was written. */
  readonly flush: Effect.Effect<void, E>

  #parts: Array<Uint8Array> = []
  #bytes = 0
  #frames = 0
  #slab = new SiloFrame.HeaderSlab(new Uint8Array(SLAB_SIZE))
  #start = 0 // start of the part being built in the slab
  #end = 0 // next free byte of the slab
  #writing = false
  #soonQueued = false
  #timer = false
  #failure: E | undefined
  /** Senders waiting for the running flush; resumed with the outcome of the flushing fiber. */
  readonly #idle = new Set<Resume<E>>()
  readonly #loop: Effect.Effect<void, E>
  readonly #waitIdle: Effect.Effect<void, E>

  constructor(connection: Connection, hooks: Hooks<E>) {
    this.connection = connection
    this.hooks = hooks
    this.#loop = Effect.suspend(() => {
      const parts = this.#take()
      if (parts === undefined) return Effect.void
      const frames = this.#frames
      this.#frames = 0
      this.writes++
      return Effect.matchEffect(connection.write(parts), {
        onSuccess: () => {
          this.activeFrames -= frames
          return this.#loop
        },
        onFailure: (error) => {
          this.activeFrames -= frames
          this.writeErrors++
          return Effect.flatMap(hooks.failed(error), (failure) => {
            this.#failure ??= failure
            return Effect.fail(this.#failure)
          })
        }
      })
    })
    this.#waitIdle = Effect.callback<void, E>((resume) => {
      this.#idle.add(resume)
      return Effect.sync(() => this.#idle.delete(resume))
    })
    this.flush = Effect.suspend(() => {
      if (this.#failure !== undefined) return Effect.fail(this.#failure)
      if (this.#writing) return this.#waitIdle
      if (this.#bytes === 0) return Effect.void
      this.#writing = true
      // The loop ends with nothing pending, so on success everything its waiters appended was written. After
      // a failure they see it; after an interruption of this fiber they retry, and one of them takes over.
      return Effect.onExit(this.#loop, (exit) =>
        Effect.sync(() => {
          this.#writing = false
          this.#wakeIdle(Exit.isSuccess(exit) ? Effect.void : this.flush)
        }))
    })
  }

  readonly #runSoon = (): void => {
    this.#soonQueued = false
    if (!this.#writing && this.#failure === undefined && this.#bytes > 0) this.hooks.fork(this.flush)
  }

  /** Bytes appended and not yet taken by a flush. */
  get pendingBytes(): number {
    return this.#bytes
  }

  /** Whether a flush is in progress (possibly waiting for the transport to drain). */
  get writing(): boolean {
    return this.#writing
  }

  /**
   * Appends one frame whose payload is `payload` followed by `tail` when there is one. A small frame is copied
   * into the slab whole; otherwise its header (and a small `payload`) go in the slab and the large parts are
   * written by reference.
   */
  append(dev: number, id: number, payload: Uint8Array, tail?: Uint8Array): void {
    const length = payload.length + (tail?.length ?? 0)
    const whole = length <= SMALL_PAYLOAD
    const inline = whole || payload.length <= SMALL_PAYLOAD
    this.#reserve(SiloFrame.HEADER_SIZE + (whole ? length : inline ? payload.length : 0))
    const slab = this.#slab
    slab.encode(this.#end, dev, id, length)
    this.#end += SiloFrame.HEADER_SIZE
    if (inline) {
      slab.bytes.set(payload, this.#end)
      this.#end += payload.length
    }
    if (whole) {
      if (tail !== undefined) {
        slab.bytes.set(tail, this.#end)
        this.#end += tail.length
      }
    } else {
      this.#seal()
      if (!inline) this.#parts.push(payload)
      if (tail !== undefined && tail.length > 0) this.#parts.push(tail)
    }
    this.#bytes += SiloFrame.HEADER_SIZE + length
    this.#frames++
    this.activeFrames++
  }

  /** Flushes in the background at the end of the current task, unless a flush is running (it takes the frames). */
  flushSoon(): void {
    if (this.#soonQueued) return
    this.#soonQueued = true
    queueMicrotask(this.#runSoon)
  }

  /** Flushes after `delay`, unless such a flush is already pending (Silo's BufferedWriter timer). */
  flushAfter(delay: Duration.Input): void {
    if (this.#timer) return
    this.#timer = true
    this.hooks.fork(Effect.andThen(
      Effect.sleep(delay),
      Effect.suspend(() => {
        this.#timer = false
        return this.flush
      })
    ))
  }

  /** Fails every waiting and later flush with `error` (the connection ended). */
  close(error: E): void {
    this.#failure ??= error
    this.#wakeIdle(Effect.fail(this.#failure))
  }

  #wakeIdle(result: Effect.Effect<void, E>): void {
    if (this.#idle.size === 0) return
    const waiting = [...this.#idle]
    this.#idle.clear()
    for (const resume of waiting) resume(result)
  }

  /** Takes everything appended so far, or `undefined` when there is nothing. */
  #take(): Array<Uint8Array> | undefined {
    if (this.#bytes === 0) return undefined
    this.#seal()
    const parts = this.#parts
    this.#parts = []
    this.#bytes = 0
    return parts
  }

  /** Makes room for `size` contiguous bytes, moving to a new slab when the current one is too full. */
  #reserve(size: number): void {
    if (this.#end + size <= SLAB_SIZE) return
    this.#seal()
    this.#slab = new SiloFrame.HeaderSlab(new Uint8Array(SLAB_SIZE))
    this.#start = 0
    this.#end = 0
  }

  /** Ends the part being built in the slab. */
  #seal(): void {
    if (this.#end === this.#start) return
    const bytes = this.#slab.bytes
    this.#parts.push(new Uint8Array(bytes.buffer, bytes.byteOffset + this.#start, this.#end - this.#start))
    this.#start = this.#end
  }
}
