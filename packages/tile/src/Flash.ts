/**
 * Flash traffic: grid-wide commands (spec t2 §5.4), the flash service of a tile (byte 1 bit 7 clear).
 *
 * A launcher sends a 12-byte packet with TTL = range and origin (0, 0) to every open direction and accepts
 * it itself. A receiver drops a packet with a bad checksum, one identical (command, index, range, origin) to
 * a command still pending, and one equal to the last command accepted from the same relative origin;
 * a packet that matches a pending command except for its origin (an echo around a loop) is forwarded but
 * not accepted; anything else is accepted. Accepted packets are forwarded to every direction (back toward
 * the sender too: the dedup rules absorb echoes) while the TTL lasts and the origin stays within ±120, with
 * TTL − 1 and the origin moved by that direction's offset. An accepted command runs after 666 ms × its
 * remaining TTL, so the whole region executes at about the same moment; it is delivered to the user's
 * handler.
 *
 * @since 0.1.0
 */
import * as FlashPacket from "@tessera/codec/FlashPacket"
import type * as T2Direction from "@tessera/codec/T2Direction"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import type * as Scope from "effect/Scope"
import type { Timer } from "./Scheduler.ts"
import type { TileEngine } from "./Tile.ts"

/**
 * Delay per remaining TTL step before an accepted command runs.
 *
 * @since 0.1.0
 * @category constants
 */
export const delayPerTtl = 666

/**
 * A command delivered to the handler.
 *
 * @since 0.1.0
 * @category models
 */
export interface Command {
  readonly command: number
  readonly name: FlashPacket.CommandName | undefined
  readonly index: number
  readonly range: number
  readonly argument: number
  /** TTL left when accepted (range at the launcher). */
  readonly ttl: number
  /** The launcher's position relative to this tile. */
  readonly origin: { readonly x: number; readonly y: number }
}

/**
 * Options of the flash service.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly tile: TileEngine
  readonly onCommand: (command: Command) => void
}

const identity = (p: FlashPacket.FlashPacket): string => `${p.command}:${p.index}:${p.range}`
const originKey = (p: FlashPacket.FlashPacket): string => `${p.originX},${p.originY}`

/**
 * One tile's flash service.
 *
 * @since 0.1.0
 * @category models
 */
export class FlashEngine {
  readonly stats = { received: 0, badChecksum: 0, duplicates: 0, echoes: 0, accepted: 0, executed: 0, forwarded: 0 }
  private readonly tile: TileEngine
  private readonly onCommand: (command: Command) => void
  private readonly pending = new Map<string, { readonly origin: string; readonly timer: Timer }>()
  private readonly lastFromOrigin = new Map<string, string>()
  private readonly off: (() => void) | undefined
  private nextIndex = 0

  constructor(options: Options) {
    this.tile = options.tile
    this.onCommand = options.onCommand
    this.off = this.tile.register({ kind: "flash" }, (bytes) => this.receive(bytes))
    if (this.off === undefined) throw new Error("the flash service is already registered on this tile")
  }

  /** Launches a command from this tile; returns the launch index. */
  launch(command: number, range: number, argument: number): number {
    const index = this.nextIndex
    this.nextIndex = (this.nextIndex + 1) & 0xff
    this.accept(FlashPacket.launch(0, command & 0x7f, index, range & 0xff, argument >>> 0))
    return index
  }

  private receive(bytes: Uint8Array): void {
    this.stats.received++
    const decoded = FlashPacket.decode(bytes)
    if (Result.isFailure(decoded)) {
      this.stats.badChecksum++
      return
    }
    const p = decoded.success
    const id = identity(p)
    const pending = this.pending.get(id)
    if (pending !== undefined && pending.origin === originKey(p)) {
      this.stats.duplicates++
      return
    }
    if (this.lastFromOrigin.get(originKey(p)) === id) {
      this.stats.duplicates++
      return
    }
    if (pending !== undefined) {
      this.stats.echoes++
      this.forward(p)
      return
    }
    this.accept(p)
  }

  private accept(p: FlashPacket.FlashPacket): void {
    this.stats.accepted++
    const id = identity(p)
    this.lastFromOrigin.set(originKey(p), id)
    const timer = this.tile.scheduler.after(delayPerTtl * p.ttl, () => {
      this.pending.delete(id)
      this.stats.executed++
      this.onCommand({
        command: p.command,
        name: FlashPacket.commandName(p.command),
        index: p.index,
        range: p.range,
        argument: p.argument,
        ttl: p.ttl,
        origin: { x: p.originX, y: p.originY }
      })
    })
    this.pending.get(id)?.timer.cancel()
    this.pending.set(id, { origin: originKey(p), timer })
    this.forward(p)
  }

  private forward(p: FlashPacket.FlashPacket): void {
    for (const dir of this.tile.openDirections()) {
      const next = FlashPacket.forward(p, dir as T2Direction.Dir8)
      if (next === undefined) continue
      const bytes = FlashPacket.encode(next)
      if (Result.isSuccess(bytes) && this.tile.send(bytes.success) === "queued") this.stats.forwarded++
    }
  }

  /** Cancels pending commands and unregisters. */
  close(): void {
    for (const { timer } of this.pending.values()) timer.cancel()
    this.pending.clear()
    this.off?.()
  }
}

/**
 * A flash service on a tile (pure, synchronous).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeEngine = (options: Options): FlashEngine => new FlashEngine(options)

/**
 * A flash service in the current scope; `onCommand` handlers run synchronously on the tile's scheduler.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<FlashEngine, never, Scope.Scope> =>
  Effect.acquireRelease(Effect.sync(() => new FlashEngine(options)), (flash) => Effect.sync(() => flash.close()))
