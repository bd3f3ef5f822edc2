/**
 * A tile: six neighbour objects, one per linked direction, and the services that use them (spec t2 §1.7,
 * §2). Inspired by the 2019 intertile notes (§2.1), each neighbour object outlives the links plugged into it
 * and reports every connect and disconnect in-band as a Tile Event Packet (`0xC4 01 dir` /
 * `0xC4 02 dir cause`, the layout of `@tessera/codec`'s `T2Packet`) on its own event stream.
 *
 * - Status per neighbour: 0 down, 1 up (link sync), 2 up and KITC-compatible (same mfzid). Compatibility is
 *   taken from the handshake state itself, so a later INCOMPATIBLE result always clears it (§2.2 quirk).
 * - Outbound: three queues per neighbour drained in strict priority kernel (KITC) > MFM > bulk (bulk, flash,
 *   CDM), each bounded in bytes (the LKM's 16 KiB fifo) with drop on overflow; a packet is handed to the link
 *   only when the link's transmit buffer has room, so priorities hold under load.
 * - Inbound: byte 0's direction bits are overwritten with the arrival direction (as the PRU does); OVR/ERR
 *   packets and local or non-standard packets are not neighbour traffic and are dropped; KITC goes to the
 *   handshake; other MFM packets go to the `mfm` service only while compatible; service packets go to
 *   `flash` (byte 1 bit 7 clear) or to the bulk service registered for code `byte1 & 0x7F` (CDM is 3).
 *   New services register by number.
 *
 * The tile is synchronous and single-threaded on its `Scheduler`; the Effect API below wraps it in a scope.
 *
 * @since 0.1.0
 */
import * as T2Direction from "@tessera/codec/T2Direction"
import * as T2Packet from "@tessera/codec/T2Packet"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as Result from "effect/Result"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Kitc from "./internal/kitc.ts"
import * as Random from "./internal/random.ts"
import type * as Link from "./Link.ts"
import type { Scheduler } from "./Scheduler.ts"

/**
 * Outbound priority class.
 *
 * @since 0.1.0
 * @category models
 */
export type Priority = "kernel" | "mfm" | "bulk"

/**
 * A receiving service: bulk by 7-bit code, flash, or MFM traffic.
 *
 * @since 0.1.0
 * @category models
 */
export type ServiceKey =
  | { readonly kind: "bulk"; readonly code: number }
  | { readonly kind: "flash" }
  | { readonly kind: "mfm" }

/**
 * A service's inbound callback: the packet (byte 0's direction = arrival direction) and where it came from.
 *
 * @since 0.1.0
 * @category models
 */
export type Receiver = (packet: Uint8Array, from: T2Direction.Dir8) => void

/**
 * Neighbour status: down, up, up and MFM-compatible.
 *
 * @since 0.1.0
 * @category models
 */
export type Status = 0 | 1 | 2

/**
 * What `send` did with a packet: queued, refused because the link is down or the packet is not a routed
 * standard packet of 1..255 bytes, or dropped because its priority queue is full.
 *
 * @since 0.1.0
 * @category models
 */
export type SendResult = "queued" | "down" | "invalid" | "full"

/**
 * Counters of one neighbour.
 *
 * @since 0.1.0
 * @category models
 */
export interface NeighborStats {
  packetsIn: number
  packetsOut: number
  /** Dropped because a priority queue was full. */
  queueDrops: number
  /** Inbound packets no service took (unregistered code, MFM while incompatible, OVR/ERR, local). */
  undelivered: number
  connects: number
  disconnects: number
}

/**
 * Options of a tile.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly scheduler: Scheduler
  readonly random: Random.Random
  /** The physics identity compared by the KITC handshake (≤ 100 bytes). */
  readonly mfzid?: string | undefined
  /** Bytes each priority queue holds before dropping; default 16 KiB. */
  readonly queueBytes?: number | undefined
}

const QUEUE_BYTES = 1 << 14
const PRIORITIES: ReadonlyArray<Priority> = ["kernel", "mfm", "bulk"]

interface Queue {
  readonly items: Array<Uint8Array>
  head: number
  bytes: number
}

const newQueue = (): Queue => ({ items: [], head: 0, bytes: 0 })

/**
 * One of a tile's six neighbour objects.
 *
 * @since 0.1.0
 * @category models
 */
export class Neighbor {
  /** Current status (0 down, 1 up, 2 compatible). */
  status: Status = 0
  readonly stats: NeighborStats = {
    packetsIn: 0,
    packetsOut: 0,
    queueDrops: 0,
    undelivered: 0,
    connects: 0,
    disconnects: 0
  }
  /** @internal */
  link: Link.Link | undefined
  /** @internal */
  readonly handshake: Kitc.Handshake
  private readonly queues: Record<Priority, Queue> = { kernel: newQueue(), mfm: newQueue(), bulk: newQueue() }
  private readonly listeners = new Set<(event: T2Packet.TileEvent, bytes: Uint8Array) => void>()
  // Bumped when a link is replaced so callbacks of the old one are ignored.
  private generation = 0

  readonly dir: T2Direction.Dir8
  private readonly tile: TileEngine

  constructor(dir: T2Direction.Dir8, tile: TileEngine) {
    this.dir = dir
    this.tile = tile
    this.handshake = new Kitc.Handshake({
      dir,
      scheduler: tile.scheduler,
      random: tile.random,
      isUp: () => this.status > 0,
      mfzid: () => tile.mfzidBytes,
      token: () => tile.token,
      send: (packet) => {
        const bytes = T2Packet.encode(packet)
        if (Result.isSuccess(bytes)) this.enqueue(bytes.success, "kernel")
      },
      changed: (compatible) => {
        if (this.status > 0) this.status = compatible ? 2 : 1
      }
    })
  }

  /**
   * Listens to this neighbour's Tile Event Packets (decoded and as bytes); returns the unsubscribe function.
   */
  onEvent(listener: (event: T2Packet.TileEvent, bytes: Uint8Array) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** True while the link is up. */
  isUp(): boolean {
    return this.status > 0
  }

  /** True while the KITC handshake says compatible. */
  isCompatible(): boolean {
    return this.status > 0 && this.handshake.isCompatible()
  }

  /** Plugs a link in (replacing any previous one, which is reported down first). */
  attach(link: Link.Link): void {
    if (this.link !== undefined) this.detach()
    const generation = ++this.generation
    this.link = link
    link.attach({
      packet: (bytes) => {
        if (generation === this.generation) this.tile.inbound(this, bytes)
      },
      status: (up, cause) => {
        if (generation === this.generation) this.linkStatus(up, cause)
      },
      drain: () => {
        if (generation === this.generation) this.pump()
      }
    })
  }

  /** Unplugs the link; reports a disconnect if it was up. */
  detach(): void {
    this.generation++
    this.link = undefined
    if (this.status > 0) this.linkStatus(false, "unspecified")
  }

  private emit(event: T2Packet.TileEvent): void {
    const bytes = T2Packet.encode(event)
    if (Result.isFailure(bytes)) return
    for (const listener of this.listeners) listener(event, bytes.success)
  }

  private linkStatus(up: boolean, cause: T2Packet.DisconnectCause): void {
    if (up === this.status > 0) return
    if (up) {
      this.status = 1
      this.stats.connects++
      this.handshake.reset()
      this.emit(T2Packet.connect(this.dir))
    } else {
      this.status = 0
      this.stats.disconnects++
      for (const q of Object.values(this.queues)) {
        q.items.length = 0
        q.head = 0
        q.bytes = 0
      }
      this.handshake.reset()
      this.emit(T2Packet.disconnect(this.dir, cause))
    }
  }

  /** @internal */
  enqueue(bytes: Uint8Array, priority: Priority): SendResult {
    if (this.status === 0 || this.link === undefined) return "down"
    const q = this.queues[priority]
    if (q.bytes + bytes.length > this.tile.queueBytes) {
      this.stats.queueDrops++
      return "full"
    }
    q.items.push(bytes)
    q.bytes += bytes.length
    this.pump()
    return "queued"
  }

  /** Bytes waiting in this neighbour's priority queues. */
  queuedBytes(): number {
    return this.queues.kernel.bytes + this.queues.mfm.bytes + this.queues.bulk.bytes
  }

  private pump(): void {
    const link = this.link
    if (link === undefined) return
    for (const priority of PRIORITIES) {
      const q = this.queues[priority]
      while (q.head < q.items.length) {
        const next = q.items[q.head]!
        if (link.room() < next.length) return
        q.head++
        q.bytes -= next.length
        const result = link.send(next)
        if (result === "queued") this.stats.packetsOut++
        if (result === "down") return
      }
      q.items.length = 0
      q.head = 0
    }
  }
}

/**
 * The tile engine: six neighbours and the service registry.
 *
 * @since 0.1.0
 * @category models
 */
export class TileEngine {
  readonly scheduler: Scheduler
  readonly random: Random.Random
  readonly queueBytes: number
  /** Neighbour objects indexed by `dir6`. */
  readonly neighbors: ReadonlyArray<Neighbor>
  /** @internal */
  mfzidBytes: Uint8Array
  /** @internal the KITC token: random 1..255 at start, +1 (skipping 0) at each mfzid change. */
  token: number
  private readonly services = new Map<string, Receiver>()

  constructor(options: Options) {
    this.scheduler = options.scheduler
    this.random = options.random
    this.queueBytes = options.queueBytes ?? QUEUE_BYTES
    this.mfzidBytes = new TextEncoder().encode((options.mfzid ?? "").slice(0, T2Packet.maxMfzidLength))
    this.token = 1 + Random.int(options.random, 255)
    this.neighbors = T2Direction.links.map((dir) => new Neighbor(dir, this))
  }

  /** The neighbour object toward `dir` (NT/ST have none). */
  neighbor(dir: T2Direction.Dir8): Neighbor | undefined {
    const d6 = T2Direction.toDir6(dir)
    return d6 === undefined ? undefined : this.neighbors[d6]
  }

  /** Changes the physics identity: bumps the token and restarts every handshake. */
  setMfzid(mfzid: string): void {
    this.mfzidBytes = new TextEncoder().encode(mfzid.slice(0, T2Packet.maxMfzidLength))
    this.token = this.token >= 255 ? 1 : this.token + 1
    for (const n of this.neighbors) n.handshake.reset()
  }

  /** Registers the receiver of a service; fails (returns `undefined`) if the key is taken. */
  register(key: ServiceKey, receiver: Receiver): (() => void) | undefined {
    const id = key.kind === "bulk" ? `bulk:${key.code & 0x7f}` : key.kind
    if (this.services.has(id)) return undefined
    this.services.set(id, receiver)
    return () => {
      if (this.services.get(id) === receiver) this.services.delete(id)
    }
  }

  /**
   * Sends a routed packet toward the direction in its byte 0, in the priority class its header implies
   * (KITC kernel, other MFM priority, service bulk).
   */
  send(bytes: Uint8Array): SendResult {
    if (bytes.length < 2 || bytes.length > T2Packet.maxLength) return "invalid"
    const b0 = bytes[0]!
    if (T2Packet.classifyByte0(b0) !== "routed" || (b0 & (T2Packet.OVERRUN | T2Packet.ERROR)) !== 0) return "invalid"
    const neighbor = this.neighbor((b0 & T2Packet.DIR) as T2Direction.Dir8)
    if (neighbor === undefined) return "down"
    const priority: Priority = (b0 & T2Packet.MFM) === 0 ? "bulk" : bytes[1]! >> 5 === 0 ? "kernel" : "mfm"
    return neighbor.enqueue(bytes, priority)
  }

  /** Open (up) neighbour directions. */
  openDirections(): Array<T2Direction.Dir8> {
    return this.neighbors.filter((n) => n.isUp()).map((n) => n.dir)
  }

  /** @internal */
  inbound(neighbor: Neighbor, bytes: Uint8Array): void {
    neighbor.stats.packetsIn++
    if (bytes.length <= 1) return
    const b0 = bytes[0]!
    if (T2Packet.classifyByte0(b0) !== "routed" || (b0 & (T2Packet.OVERRUN | T2Packet.ERROR)) !== 0) {
      neighbor.stats.undelivered++
      return
    }
    bytes[0] = (b0 & ~T2Packet.DIR) | neighbor.dir
    const b1 = bytes[1]!
    if ((b0 & T2Packet.MFM) !== 0) {
      if (b1 >> 5 === 0) {
        const decoded = T2Packet.decode(bytes)
        if (Result.isSuccess(decoded) && decoded.success._tag === "Kitc") neighbor.handshake.receive(decoded.success)
        else neighbor.handshake.reset()
        return
      }
      return this.deliver(neighbor, neighbor.isCompatible() ? "mfm" : undefined, bytes)
    }
    return this.deliver(neighbor, (b1 & 0x80) === 0 ? "flash" : `bulk:${b1 & 0x7f}`, bytes)
  }

  private deliver(neighbor: Neighbor, id: string | undefined, bytes: Uint8Array): void {
    const receiver = id === undefined ? undefined : this.services.get(id)
    if (receiver === undefined) {
      neighbor.stats.undelivered++
      return
    }
    receiver(bytes, neighbor.dir)
  }

  /** Unplugs every link and stops the handshakes. */
  close(): void {
    for (const n of this.neighbors) {
      n.detach()
      n.handshake.stop()
    }
  }
}

/**
 * A tile engine (pure, synchronous; for simulations and embedding).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeEngine = (options: Options): TileEngine => new TileEngine(options)

/**
 * A tile that lives in the current scope: every link is unplugged and every timer stopped when it closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<TileEngine, never, Scope.Scope> =>
  Effect.acquireRelease(Effect.sync(() => new TileEngine(options)), (tile) => Effect.sync(() => tile.close()))

/**
 * The Tile Event Packets of the neighbour toward `dir`, as a stream (from subscription on).
 *
 * @since 0.1.0
 * @category combinators
 */
export const events = (tile: TileEngine, dir: T2Direction.Dir8): Stream.Stream<T2Packet.TileEvent> =>
  Stream.callback<T2Packet.TileEvent>((queue) =>
    Effect.acquireRelease(
      Effect.sync(() => tile.neighbor(dir)?.onEvent((event) => void Queue.offerUnsafe(queue, event))),
      (off) => Effect.sync(() => off?.())
    )
  )
