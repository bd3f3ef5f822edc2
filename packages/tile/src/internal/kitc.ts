/**
 * The KITC neighbour handshake (spec t2 §2.3): decides whether the tile across a link runs the same physics
 * (equal mfzid strings). Runs per neighbour on the tile's scheduler; packets are MFM packets with XITC 0.
 */
import type * as T2Direction from "@tessera/codec/T2Direction"
import type { Kitc, KitcState } from "@tessera/codec/T2Packet"
import type { Scheduler, Timer } from "../Scheduler.ts"
import * as Random from "./random.ts"

export const INIT = 0
export const WAITPS = 1
export const LEAD = 2
export const WLEAD = 3
export const FOLLOW = 4
export const WFOLLOW = 5
export const CONFIG = 6
export const WCONFIG = 7
export const CHECK = 8
export const COMPATIBLE = 9
export const INCOMPATIBLE = 10

const HALF = 150
const FULL = 300

/** What the handshake needs from its neighbour object. */
export interface Host {
  readonly dir: T2Direction.Dir8
  readonly scheduler: Scheduler
  readonly random: Random.Random
  readonly isUp: () => boolean
  readonly mfzid: () => Uint8Array
  readonly token: () => number
  readonly send: (packet: Kitc) => void
  /** The handshake entered or left COMPATIBLE. */
  readonly changed: (compatible: boolean) => void
}

const equal = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, i) => x === b[i])

/** One direction's handshake. */
export class Handshake {
  state: KitcState = INIT
  private timer: Timer | undefined
  private theirToken = 0
  private theirMfzid = new Uint8Array(0)
  private compatible = false

  private readonly host: Host

  constructor(host: Host) {
    this.host = host
  }

  private long(): number {
    return Random.between(this.host.random, 10_000, 15_000)
  }

  private go(state: KitcState, ms: number): void {
    this.state = state
    this.timer?.cancel()
    this.timer = this.host.scheduler.after(ms, () => this.timeout())
    const nowCompatible = state === COMPATIBLE
    if (nowCompatible !== this.compatible) {
      this.compatible = nowCompatible
      this.host.changed(nowCompatible)
    }
  }

  private packet(state: KitcState, withId: boolean, withToken: boolean): Kitc {
    return {
      _tag: "Kitc",
      dir: this.host.dir,
      state,
      token: withToken ? this.host.token() : undefined,
      mfzid: withId ? this.host.mfzid() : undefined
    }
  }

  /** Back to WAITPS after a random pause (link change, mfzid change, anything unexpected). */
  reset(): void {
    this.go(WAITPS, Random.between(this.host.random, 30, 1500))
  }

  /** Stops all timers (tile closing). */
  stop(): void {
    this.timer?.cancel()
    this.timer = undefined
  }

  isCompatible(): boolean {
    return this.compatible
  }

  private decide(): void {
    this.go(equal(this.theirMfzid, this.host.mfzid()) ? COMPATIBLE : INCOMPATIBLE, this.state === CHECK ? FULL : HALF)
  }

  private timeout(): void {
    switch (this.state) {
      case WAITPS:
        return this.host.isUp() ? this.go(LEAD, 0) : this.go(WAITPS, this.long())
      case LEAD:
        this.host.send(this.packet(LEAD, false, false))
        return this.go(WLEAD, FULL)
      case FOLLOW:
        this.host.send(this.packet(FOLLOW, false, false))
        return this.go(WFOLLOW, FULL)
      case CONFIG:
        this.host.send(this.packet(CONFIG, true, true))
        return this.go(WCONFIG, FULL)
      case CHECK:
        this.host.send(this.packet(CHECK, true, true))
        return this.decide()
      case COMPATIBLE:
      case INCOMPATIBLE:
        this.host.send(this.packet(this.state, false, true))
        return this.go(this.state, this.long())
      default:
        return this.reset()
    }
  }

  /** A KITC packet from the neighbour. */
  receive(packet: Kitc): void {
    switch (packet.state) {
      case LEAD:
        if (this.state === WLEAD && this.host.random() < 0.5) return this.reset()
        return this.go(FOLLOW, HALF)
      case FOLLOW:
        return this.state === WLEAD ? this.go(CONFIG, HALF) : this.reset()
      case CONFIG:
        if (this.state !== WFOLLOW) return this.reset()
        this.theirToken = packet.token ?? 0
        this.theirMfzid = (packet.mfzid ?? new Uint8Array(0)).slice()
        return this.go(CHECK, HALF)
      case CHECK:
        if (this.state !== WCONFIG) return this.reset()
        this.theirToken = packet.token ?? 0
        this.theirMfzid = (packet.mfzid ?? new Uint8Array(0)).slice()
        return this.decide()
      case COMPATIBLE:
      case INCOMPATIBLE:
        if (packet.state !== this.state || packet.token !== this.theirToken) return this.reset()
        return this.go(this.state, this.long())
      default:
        return this.reset()
    }
  }
}
