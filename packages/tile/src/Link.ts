/**
 * One end of an intertile link: an ordered, lossy channel of packets of 1..255 bytes with an up/down status
 * (spec t2 §1.1, §5.2). Packets are never reordered or duplicated, but may be lost (buffer overflow, sync
 * loss, a down link) or corrupted (there is no link CRC; protocols check their own data).
 *
 * `send` never blocks: it queues the packet in the link's transmit buffer or refuses it. A tile asks `room()`
 * first so its own priority queues (kernel > MFM > bulk) decide what goes next, and is told by `drain` when
 * room appears. Implementations: `MemoryLink` (a simulated cable with a loss/corruption/latency/bandwidth
 * model, on any `Scheduler`) and `SocketLink` (a framed TCP or Unix stream, for tiles in separate processes).
 *
 * @since 0.1.0
 */
import type { DisconnectCause } from "@tessera/codec/T2Packet"

/**
 * Largest packet a link carries.
 *
 * @since 0.1.0
 * @category constants
 */
export const maxPacket = 255

/**
 * What happened to a packet given to `send`.
 *
 * @since 0.1.0
 * @category models
 */
export type SendResult = "queued" | "dropped" | "down" | "invalid"

/**
 * The callbacks a link end reports to (its tile's neighbour object).
 *
 * @since 0.1.0
 * @category models
 */
export interface Handler {
  /** A packet arrived; the array is the receiver's to keep. */
  readonly packet: (bytes: Uint8Array) => void
  /** The link came up (`true`) or went down (`false`, with why). */
  readonly status: (up: boolean, cause: DisconnectCause) => void
  /** Transmit buffer space was freed. */
  readonly drain: () => void
}

/**
 * Counters of one link end.
 *
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  packetsSent: number
  bytesSent: number
  packetsReceived: number
  bytesReceived: number
  /** Refused by `send` because the transmit buffer was full. */
  overflows: number
  /** Lost in transit (simulated loss, or in flight when the link went down). */
  lost: number
  /** Delivered with altered bytes (simulated corruption). */
  corrupted: number
}

/**
 * One end of a link.
 *
 * @since 0.1.0
 * @category models
 */
export interface Link {
  /** True while the link has sync. */
  readonly isUp: () => boolean
  /** Bytes `send` accepts now without dropping. */
  readonly room: () => number
  /** Queues one packet for the wire. */
  readonly send: (bytes: Uint8Array) => SendResult
  /** Sets the handler; the current status is reported to it at once if the link is up. */
  readonly attach: (handler: Handler) => void
  readonly stats: Stats
}

/**
 * Fresh zero counters.
 *
 * @since 0.1.0
 * @category constructors
 */
export const emptyStats = (): Stats => ({
  packetsSent: 0,
  bytesSent: 0,
  packetsReceived: 0,
  bytesReceived: 0,
  overflows: 0,
  lost: 0,
  corrupted: 0
})

/**
 * True for a length a link carries.
 *
 * @since 0.1.0
 * @category guards
 */
export const isValidLength = (n: number): boolean => n >= 1 && n <= maxPacket
