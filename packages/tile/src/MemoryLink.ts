/**
 * A simulated cable between two link ends, on any `Scheduler` (virtual time for grid simulations). Each
 * direction has its own model:
 *
 * - `bandwidth` bytes per second (0 = unlimited): a packet occupies the wire for (length + `frameOverhead`) /
 *   bandwidth, one after another, like the PRU's serial link;
 * - `latency` ms added after the last byte leaves;
 * - `bufferSize` bytes of transmit buffer (the PRU's 1 KB ring): a packet that does not fit is dropped;
 * - `loss` and `corrupt` probabilities per packet: a lost packet vanishes, a corrupted one arrives with one
 *   random byte replaced by a different value.
 *
 * `setUp(false)` cuts the cable: both ends report down (cause `'F'`, frame error) and everything in flight is
 * lost; `setUp(true)` restores it and both ends report up.
 *
 * @since 0.1.0
 */
import type { Random } from "./internal/random.ts"
import * as Link from "./Link.ts"
import type { Scheduler } from "./Scheduler.ts"

/**
 * The behaviour of one direction of a cable.
 *
 * @since 0.1.0
 * @category models
 */
export interface Model {
  readonly loss: number
  readonly corrupt: number
  readonly latency: number
  readonly bandwidth: number
  readonly bufferSize: number
  readonly frameOverhead: number
}

/**
 * A perfect, fast cable: no loss, no corruption, 1 ms latency, unlimited bandwidth, 1 KiB buffer, one flag
 * byte between packets.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultModel: Model = {
  loss: 0,
  corrupt: 0,
  latency: 1,
  bandwidth: 0,
  bufferSize: 1024,
  frameOverhead: 1
}

/**
 * A cable and its two ends.
 *
 * @since 0.1.0
 * @category models
 */
export interface Cable {
  readonly a: Link.Link
  readonly b: Link.Link
  /** Connects (true) or cuts (false) the cable. */
  readonly setUp: (up: boolean) => void
  readonly isUp: () => boolean
}

interface End {
  readonly link: Link.Link
  handler: Link.Handler | undefined
  busyUntil: number
  queued: number
  readonly model: Model
}

/**
 * A cable, initially up. `aToB` and `bToA` model each direction (both `defaultModel` when omitted).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: {
  readonly scheduler: Scheduler
  readonly random: Random
  readonly aToB?: Partial<Model> | undefined
  readonly bToA?: Partial<Model> | undefined
  readonly up?: boolean | undefined
}): Cable => {
  const { random, scheduler } = options
  let up = options.up ?? true
  // Bumped on every cut, so deliveries scheduled before it are dropped.
  let epoch = 0
  const makeEnd = (model: Model): End => {
    const end: End = {
      handler: undefined,
      busyUntil: 0,
      queued: 0,
      model,
      link: {
        isUp: () => up,
        room: () => (up ? Math.max(0, end.model.bufferSize - end.queued) : 0),
        send: (bytes) => send(end, bytes),
        attach: (handler) => {
          end.handler = handler
          if (up) handler.status(true, "unspecified")
        },
        stats: Link.emptyStats()
      }
    }
    return end
  }
  const ab = makeEnd({ ...defaultModel, ...options.aToB })
  const ba = makeEnd({ ...defaultModel, ...options.bToA })
  const peer = (end: End): End => (end === ab ? ba : ab)

  const deliver = (to: End, bytes: Uint8Array, model: Model, from: End): void => {
    if (random() < model.loss) {
      from.link.stats.lost++
      return
    }
    let out = bytes
    if (random() < model.corrupt) {
      out = bytes.slice()
      const i = Math.floor(random() * out.length)
      out[i] = (out[i]! + 1 + Math.floor(random() * 255)) & 0xff
      from.link.stats.corrupted++
    }
    to.link.stats.packetsReceived++
    to.link.stats.bytesReceived += out.length
    to.handler?.packet(out)
  }

  const send = (end: End, bytes: Uint8Array): Link.SendResult => {
    if (!Link.isValidLength(bytes.length)) return "invalid"
    if (!up) return "down"
    const model = end.model
    if (end.queued + bytes.length > model.bufferSize) {
      end.link.stats.overflows++
      return "dropped"
    }
    const copy = bytes.slice()
    end.queued += copy.length
    end.link.stats.packetsSent++
    end.link.stats.bytesSent += copy.length
    const now = scheduler.now()
    const wire = model.bandwidth > 0 ? ((copy.length + model.frameOverhead) * 1000) / model.bandwidth : 0
    const start = Math.max(now, end.busyUntil)
    end.busyUntil = start + wire
    const sentEpoch = epoch
    scheduler.after(end.busyUntil - now, () => {
      if (sentEpoch !== epoch) return
      end.queued -= copy.length
      end.handler?.drain()
      scheduler.after(model.latency, () => {
        if (sentEpoch !== epoch) {
          end.link.stats.lost++
          return
        }
        deliver(peer(end), copy, model, end)
      })
    })
    return "queued"
  }

  const setUp = (next: boolean): void => {
    if (next === up) return
    up = next
    if (!next) {
      epoch++
      for (const end of [ab, ba]) {
        end.queued = 0
        end.busyUntil = 0
      }
    }
    for (const end of [ab, ba]) end.handler?.status(next, "frame_error")
  }

  return { a: ab.link, b: ba.link, setUp, isUp: () => up }
}
