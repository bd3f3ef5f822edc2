/**
 * The managed file update service (CDM, spec t2 §3) on one tile, registered as bulk service 3 (`0x83`).
 *
 * Content model (§3.2): files `cdmss-SS-TTTTTT.mfz` identified by slotstamp; within a slot the larger stamp
 * dominates; once a newer stamp is complete every older one in its slot is deleted; a complete slot-1
 * release carries the signed deletion map, and deleted slotstamps are removed and answered with it.
 *
 * Disk (`<directory>/pending`, `<directory>/common`): only verified bytes are ever written. A transfer's file
 * appears in `pending/` once its map header's signature verified and grows block by block as each block's
 * prefix SHA-512 matches; after the final block and the whole-file SHA-512 verify it is synced and renamed
 * into `common/` (atomic cutover). At start every file in both directories is replayed through the same
 * verifier: complete files are served again, partial ones resume from their verified prefix (the file is
 * truncated to it), files that fail are renamed `.bad`.
 *
 * Gossip (§3.5): every U(0, 16 s) up to three urgency-weighted announcements (weight = bytes we have beyond
 * what we think they have × time pressure, against a "say nothing" weight of 500), else one random one;
 * obsolete announcements are answered with the newer one. Two additions for pipelining speed: whenever a
 * slot's dominant file grows (header or block verified) it is announced at once to every open neighbour we
 * do not know to have that much, and a neighbour that connects is told our dominant files.
 *
 * Pulls (§3.6): per file a window of 12 × 180 bytes past the contiguous received length, each request to a
 * neighbour chosen at random among those heard from in the last 90 s whose announced length covers it;
 * requests start at position 0 (the original's −1 frontier quirk is fixed). Stall recovery: links are
 * ordered, so a reply to a later request from the same neighbour means an earlier one was lost and it is
 * re-requested at once; a request unanswered for `requestTimeout` is re-requested; after `staleReset`
 * without progress the held data is dropped and requests restart (v3's 5-s reset).
 *
 * Bad data never stops the service (§3.7 defects fixed): a block whose checksum fails is discarded and
 * fetched again; a header that fails its signature, names another slotstamp or is too large, and a final
 * checksum failure, drop the whole model and ignore the neighbours that sent it for `ignoreSource` ms.
 *
 * Cut-through serving (§3.8): a request below our verified length is answered with up to 180 bytes at once,
 * from a partial file as well as a complete one; anything else is not answered.
 *
 * The engine is synchronous on the tile's scheduler; file operations are synchronous `node:fs` calls (a few
 * per 64 KiB block). Content is also kept in memory for serving, capped by `maxReleaseBytes`.
 *
 * @since 0.1.0
 */
import * as CdmDeletions from "@tessera/codec/CdmDeletions"
import * as CdmMapHeader from "@tessera/codec/CdmMapHeader"
import * as CdmPacket from "@tessera/codec/CdmPacket"
import * as CdmSlotstamp from "@tessera/codec/CdmSlotstamp"
import type * as T2Direction from "@tessera/codec/T2Direction"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import type * as Scope from "effect/Scope"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as CdmError from "./CdmError.ts"
import type * as CdmKeys from "./CdmKeys.ts"
import * as CdmRelease from "./CdmRelease.ts"
import * as Random from "./internal/random.ts"
import type { Timer } from "./Scheduler.ts"
import type { TileEngine } from "./Tile.ts"

/**
 * Timers and limits (milliseconds unless stated).
 *
 * @since 0.1.0
 * @category models
 */
export interface Timing {
  /** Gossip tick: every U(0, contentTick). */
  readonly contentTick: number
  /** Maintenance tick: request timeouts, stall resets, aliveness. */
  readonly maintenanceTick: number
  /**
   * Longest wait before re-requesting an unanswered chunk; the actual wait adapts to the measured round trip
   * (smoothed RTT + 4 × its deviation, as TCP does), never below `minRequestTimeout`.
   */
  readonly requestTimeout: number
  /** Shortest wait before re-requesting an unanswered chunk. */
  readonly minRequestTimeout: number
  /** Restart a transfer without progress this long. */
  readonly staleReset: number
  /** A source not heard from this long is not chosen. */
  readonly sourceViability: number
  /** How long a neighbour that sent bad content is ignored. */
  readonly ignoreSource: number
  /** Send an `A` to each open neighbour this often. */
  readonly aliveEvery: number
}

/**
 * The original's timings (§3.4), plus an adaptive request timeout of at most 1 s checked every 50 ms and a
 * 60-s ignore period.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultTiming: Timing = {
  contentTick: 16_000,
  maintenanceTick: 50,
  requestTimeout: 1_000,
  minRequestTimeout: 40,
  staleReset: 5_000,
  sourceViability: 90_000,
  ignoreSource: 60_000,
  aliveEvery: 60_000
}

/**
 * Something that happened to a file, for observers.
 *
 * @since 0.1.0
 * @category models
 */
export interface Event {
  readonly type: "header" | "block" | "complete" | "rejected" | "deleted" | "loaded"
  readonly slotstamp: number
  /** Verified bytes on disk. */
  readonly verified: number
  /** Total length, 0 before the header is known. */
  readonly total: number
  readonly reason?: string | undefined
}

/**
 * A complete release, as given to completion actions.
 *
 * @since 0.1.0
 * @category models
 */
export interface Complete {
  readonly slotstamp: number
  readonly path: string
  readonly header: CdmMapHeader.CdmMapHeader
}

/**
 * Options of a CDM engine.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly tile: TileEngine
  /** Content directory; `pending/` and `common/` are created in it. */
  readonly directory: string
  readonly keyring: CdmKeys.Keyring
  readonly timing?: Partial<Timing> | undefined
  /** Largest release accepted; default 64 MiB. */
  readonly maxReleaseBytes?: number | undefined
  /** Most files tracked at once; default 64. */
  readonly maxModels?: number | undefined
  /** Called once per complete release (also for complete files found at start). */
  readonly onComplete?: ((release: Complete) => void) | undefined
  readonly onEvent?: ((event: Event) => void) | undefined
}

/**
 * Counters of one engine.
 *
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  packetsIn: number
  malformed: number
  announcementsSent: number
  requestsSent: number
  chunksServed: number
  chunksAccepted: number
  unexpectedChunks: number
  blockFailures: number
  rejections: number
  reRequests: number
  staleResets: number
  /** Transfers dropped because the disk failed them. */
  diskErrors: number
}

interface Source {
  available: number
  heardAt: number
}

interface Request {
  readonly pos: number
  readonly len: number
  dir: T2Direction.Dir8 | undefined
  sentAt: number
  seq: number
}

interface Theirs {
  stamp: number
  length: number
  at: number
}

const HEADER = CdmMapHeader.size
const CHUNK = CdmPacket.maxDataLength
const WINDOW = CdmPacket.maxDataInFlight

class Model {
  readonly slotstamp: number
  header: CdmMapHeader.CdmMapHeader | undefined
  total = 0
  content: Uint8Array = new Uint8Array(HEADER)
  verified = 0
  pending = 0
  hash: Crypto.Hash | undefined
  complete = false
  fd: number | undefined
  frontier = 0
  lastProgress: number
  readonly sources = new Map<T2Direction.Dir8, Source>()
  readonly requests = new Map<number, Request>()
  readonly held = new Map<number, number>()
  readonly contributors = new Set<T2Direction.Dir8>()

  constructor(slotstamp: number, now: number) {
    this.slotstamp = slotstamp
    this.lastProgress = now
  }

  get slot(): number {
    return CdmSlotstamp.slot(this.slotstamp)
  }

  get stamp(): number {
    return CdmSlotstamp.stamp(this.slotstamp)
  }

  servable(): boolean {
    return this.verified >= HEADER
  }
}

const equalBytes = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b))

/**
 * One tile's CDM service.
 *
 * @since 0.1.0
 * @category models
 */
export class CdmEngine {
  readonly stats: Stats = {
    packetsIn: 0,
    malformed: 0,
    announcementsSent: 0,
    requestsSent: 0,
    chunksServed: 0,
    chunksAccepted: 0,
    unexpectedChunks: 0,
    blockFailures: 0,
    rejections: 0,
    reRequests: 0,
    staleResets: 0,
    diskErrors: 0
  }
  private readonly tile: TileEngine
  private readonly timing: Timing
  private readonly keyring: CdmKeys.Keyring
  private readonly random: Random.Random
  private readonly pendingDir: string
  private readonly commonDir: string
  private readonly maxReleaseBytes: number
  private readonly maxModels: number
  private readonly options: Options
  private readonly models = new Map<number, Model>()
  private readonly theirs = new Map<string, Theirs>()
  private readonly ignoredUntil = new Map<T2Direction.Dir8, number>()
  private readonly lastAlive = new Map<T2Direction.Dir8, number>()
  private readonly failures = new Map<T2Direction.Dir8, number>()
  private deletions: CdmDeletions.CdmDeletions | undefined
  private readonly timers: Array<Timer> = []
  private readonly unsubscribe: Array<() => void> = []
  private seq = 0
  private srtt: number | undefined
  private rttvar = 0
  private aliveTag: number
  private closed = false

  constructor(options: Options) {
    this.options = options
    this.tile = options.tile
    this.random = options.tile.random
    this.keyring = options.keyring
    this.timing = { ...defaultTiming, ...options.timing }
    this.maxReleaseBytes = options.maxReleaseBytes ?? 64 * 1024 * 1024
    this.maxModels = options.maxModels ?? 64
    this.pendingDir = Path.join(options.directory, "pending")
    this.commonDir = Path.join(options.directory, "common")
    this.aliveTag = Random.int(this.random, 100)
    Fs.mkdirSync(this.pendingDir, { recursive: true })
    Fs.mkdirSync(this.commonDir, { recursive: true })
    const off = this.tile.register(
      { kind: "bulk", code: CdmPacket.bulkCode },
      (bytes, from) => this.receive(bytes, from)
    )
    if (off === undefined) throw new Error("bulk service 3 (CDM) is already registered on this tile")
    this.unsubscribe.push(off)
    for (const n of this.tile.neighbors) {
      this.unsubscribe.push(
        n.onEvent((event) => (event.event === "connect" ? this.connected(n.dir) : this.disconnected(n.dir)))
      )
    }
    this.load()
    for (const n of this.tile.neighbors) if (n.isUp()) this.connected(n.dir)
    this.scheduleContentTick()
    this.scheduleMaintenance()
  }

  private get now(): number {
    return this.tile.scheduler.now()
  }

  private emit(model: Model, type: Event["type"], reason?: string): void {
    this.options.onEvent?.({ type, slotstamp: model.slotstamp, verified: model.verified, total: model.total, reason })
  }

  // ---- files -------------------------------------------------------------------------------------------

  private pendingPath(ss: number): string {
    return Path.join(this.pendingDir, CdmSlotstamp.fileName(ss))
  }

  private commonPath(ss: number): string {
    return Path.join(this.commonDir, CdmSlotstamp.fileName(ss))
  }

  private load(): void {
    for (const [dir, complete] of [[this.commonDir, true], [this.pendingDir, false]] as const) {
      const names = Fs.readdirSync(dir).filter((n) => Result.isSuccess(CdmSlotstamp.parseFileName(n))).toSorted()
        .toReversed()
      for (const name of names) {
        const ss = Result.getOrThrow(CdmSlotstamp.parseFileName(name))
        const path = Path.join(dir, name)
        if (this.models.has(ss)) {
          // A complete copy already loaded from common/: the partial one is redundant.
          Fs.rmSync(path, { force: true })
          continue
        }
        const bytes = new Uint8Array(Fs.readFileSync(path))
        const model = new Model(ss, this.now)
        this.models.set(ss, model)
        if (complete) {
          const ok = this.loadComplete(model, bytes)
          if (!ok) {
            this.models.delete(ss)
            Fs.renameSync(path, `${path}.bad`)
          }
        } else {
          this.resume(model, bytes, path)
        }
      }
    }
    for (const slot of new Set([...this.models.values()].map((m) => m.slot))) this.collect(slot)
    for (const m of this.models.values()) if (m.complete) this.completed(m, false)
  }

  private loadComplete(model: Model, bytes: Uint8Array): boolean {
    const header = CdmRelease.verifyHeader(bytes, this.keyring)
    if (Result.isFailure(header) || header.success.slotstamp !== model.slotstamp) return false
    const h = header.success
    if (bytes.length !== CdmMapHeader.totalLength(h)) return false
    const sums = CdmRelease.checksums(bytes.subarray(HEADER), h.bitsInBlock)
    if (!equalBytes(sums.sha512, h.sha512) || sums.entries.some((e, i) => !equalBytes(e, h.checksums[i]!))) return false
    model.header = h
    model.total = bytes.length
    model.content = bytes
    model.verified = model.pending = model.frontier = bytes.length
    model.complete = true
    this.emit(model, "loaded")
    return true
  }

  private resume(model: Model, bytes: Uint8Array, path: string): void {
    const n = Math.min(bytes.length, HEADER)
    model.content.set(bytes.subarray(0, n))
    model.pending = n
    this.advance(model)
    if (!this.models.has(model.slotstamp) || model.header === undefined) {
      Fs.rmSync(path, { force: true })
      this.models.delete(model.slotstamp)
      return
    }
    const rest = bytes.subarray(HEADER, Math.min(bytes.length, model.total))
    model.content.set(rest, HEADER)
    model.pending = HEADER + rest.length
    this.advance(model)
    if (!this.models.has(model.slotstamp)) return
    // Whatever did not verify (a torn last write) is cut off; the prefix stays.
    if (!model.complete) {
      model.pending = model.frontier = model.verified
      if (model.fd !== undefined) Fs.ftruncateSync(model.fd, model.verified)
      this.emit(model, "loaded")
    }
  }

  /** Writes verified bytes to the pending file; on a file system error the model is dropped (false). */
  private writeAt(model: Model, start: number, end: number): boolean {
    try {
      if (model.fd === undefined) {
        model.fd = Fs.openSync(
          this.pendingPath(model.slotstamp),
          Fs.existsSync(this.pendingPath(model.slotstamp)) ? "r+" : "w"
        )
      }
      Fs.writeSync(model.fd, model.content, start, end - start, start)
      return true
    } catch (cause) {
      this.diskFailed(model, cause)
      return false
    }
  }

  // A full or failing disk costs the transfer, never the service: the model goes, its file with it.
  private diskFailed(model: Model, cause: unknown): void {
    this.stats.diskErrors++
    try {
      this.deleteModel(model, "rejected", `file system: ${cause instanceof Error ? cause.message : String(cause)}`)
    } catch {
      this.models.delete(model.slotstamp)
    }
  }

  private closeFd(model: Model): void {
    if (model.fd !== undefined) {
      Fs.closeSync(model.fd)
      model.fd = undefined
    }
  }

  private deleteModel(model: Model, why: Event["type"], reason?: string): void {
    this.closeFd(model)
    this.models.delete(model.slotstamp)
    Fs.rmSync(this.pendingPath(model.slotstamp), { force: true })
    Fs.rmSync(this.commonPath(model.slotstamp), { force: true })
    model.verified = 0
    this.emit(model, why, reason)
  }

  // ---- verification -------------------------------------------------------------------------------------

  /** Verifies whatever contiguous data is buffered: the header, then whole blocks. */
  private advance(model: Model): void {
    if (model.header === undefined) {
      if (model.pending < HEADER) return
      const header = CdmRelease.verifyHeader(model.content.subarray(0, HEADER), this.keyring)
      if (Result.isFailure(header)) return this.reject(model, header.failure.reason.message)
      const h = header.success
      if (h.slotstamp !== model.slotstamp) {
        return this.reject(
          model,
          `header names ${CdmSlotstamp.fileName(h.slotstamp)}, announced as ${CdmSlotstamp.fileName(model.slotstamp)}`
        )
      }
      const total = CdmMapHeader.totalLength(h)
      if (total > this.maxReleaseBytes) {
        return this.reject(model, `release of ${total} bytes is over the ${this.maxReleaseBytes}-byte limit`)
      }
      const content = new Uint8Array(total)
      content.set(model.content.subarray(0, HEADER))
      model.content = content
      model.header = h
      model.total = total
      model.hash = Crypto.createHash("sha512")
      if (!this.writeAt(model, 0, HEADER)) return
      model.verified = HEADER
      model.contributors.clear()
      this.emit(model, "header")
      this.grew(model)
    }
    const h = model.header
    const block = CdmMapHeader.blockSize(h)
    while (!model.complete && model.hash !== undefined) {
      const index = Math.floor((model.verified - HEADER) / block)
      const end = HEADER + Math.min((index + 1) * block, h.mappedLength)
      if (model.pending < end) return
      const next = model.hash.copy()
      next.update(model.content.subarray(model.verified, end))
      const digest = new Uint8Array(next.copy().digest())
      const last = end === model.total
      if (
        !equalBytes(digest.subarray(0, CdmMapHeader.entryLength), h.checksums[index]!) ||
        (last && !equalBytes(digest, h.sha512))
      ) {
        if (last && equalBytes(digest.subarray(0, CdmMapHeader.entryLength), h.checksums[index]!)) {
          return this.reject(model, "final SHA-512 does not match the header")
        }
        return this.blockFailed(model)
      }
      if (!this.writeAt(model, model.verified, end)) return
      model.verified = end
      model.hash = next
      for (const dir of model.contributors) this.failures.delete(dir)
      model.contributors.clear()
      if (last) return this.finish(model)
      this.emit(model, "block")
      this.grew(model)
    }
  }

  private blockFailed(model: Model): void {
    this.stats.blockFailures++
    for (const dir of model.contributors) {
      const count = (this.failures.get(dir) ?? 0) + 1
      this.failures.set(dir, count)
      // A neighbour whose data failed three blocks running is treated as a bad source.
      if (count >= 3) this.ignore(dir)
    }
    model.contributors.clear()
    this.restart(model)
  }

  private reject(model: Model, reason: string): void {
    this.stats.rejections++
    for (const dir of model.contributors) this.ignore(dir)
    this.deleteModel(model, "rejected", reason)
  }

  private ignore(dir: T2Direction.Dir8): void {
    this.ignoredUntil.set(dir, this.now + this.timing.ignoreSource)
    this.failures.delete(dir)
    for (const m of this.models.values()) m.sources.delete(dir)
  }

  private isIgnored(dir: T2Direction.Dir8): boolean {
    const until = this.ignoredUntil.get(dir)
    if (until === undefined) return false
    if (until > this.now) return true
    this.ignoredUntil.delete(dir)
    return false
  }

  private finish(model: Model): void {
    try {
      if (model.fd !== undefined) Fs.fsyncSync(model.fd)
      this.closeFd(model)
      Fs.renameSync(this.pendingPath(model.slotstamp), this.commonPath(model.slotstamp))
    } catch (cause) {
      return this.diskFailed(model, cause)
    }
    model.complete = true
    model.requests.clear()
    model.held.clear()
    model.hash = undefined
    this.emit(model, "complete")
    this.completed(model, true)
  }

  private completed(model: Model, announce: boolean): void {
    if (model.slot === CdmDeletions.slot) this.loadDeletions(model)
    this.collect(model.slot)
    if (!this.models.has(model.slotstamp)) return
    if (announce) this.grew(model)
    this.options.onComplete?.({
      slotstamp: model.slotstamp,
      path: this.commonPath(model.slotstamp),
      header: model.header!
    })
  }

  private loadDeletions(model: Model): void {
    const map = CdmRelease.readDeletions(model.content, this.keyring)
    if (Result.isFailure(map)) return
    if (
      this.deletions !== undefined &&
      CdmSlotstamp.stamp(this.deletions.slotstamp) >= CdmSlotstamp.stamp(map.success.slotstamp)
    ) return
    this.deletions = map.success
    for (const m of this.models.values()) {
      if (CdmDeletions.isDeleted(map.success, m.slotstamp)) this.deleteModel(m, "deleted", "deleted by the slot 01 map")
    }
  }

  /** Dominance: once a stamp is complete, every older stamp of its slot goes. */
  private collect(slot: number): void {
    const inSlot = [...this.models.values()].filter((m) => m.slot === slot).toSorted((a, b) => b.stamp - a.stamp)
    let seenComplete = false
    for (const m of inSlot) {
      if (seenComplete) this.deleteModel(m, "deleted", "obsolete")
      else if (m.complete) seenComplete = true
    }
  }

  private dominant(slot: number): Model | undefined {
    let best: Model | undefined
    for (const m of this.models.values()) {
      if (m.slot === slot && m.servable() && (best === undefined || m.stamp > best.stamp)) best = m
    }
    return best
  }

  // ---- packets ------------------------------------------------------------------------------------------

  private send(packet: CdmPacket.CdmPacket): boolean {
    const bytes = CdmPacket.encode(packet)
    return Result.isSuccess(bytes) && this.tile.send(bytes.success) === "queued"
  }

  private key(slot: number, dir: T2Direction.Dir8): string {
    return `${slot}:${dir}`
  }

  private learn(slot: number, dir: T2Direction.Dir8, stamp: number, length: number): void {
    this.theirs.set(this.key(slot, dir), { stamp, length, at: this.now })
  }

  private announce(model: Model, dir: T2Direction.Dir8): void {
    if (this.send(CdmPacket.announce(dir, model.slotstamp, model.verified))) {
      this.stats.announcementsSent++
      const known = this.theirs.get(this.key(model.slot, dir))
      if (known === undefined || known.stamp !== model.stamp || known.length < model.verified) {
        this.learn(model.slot, dir, model.stamp, model.verified)
      }
    }
  }

  /** Our dominant copy of a slot grew: tell every open neighbour not known to have as much. */
  private grew(model: Model): void {
    if (this.dominant(model.slot) !== model) return
    for (const dir of this.tile.openDirections()) {
      const known = this.theirs.get(this.key(model.slot, dir))
      if (known !== undefined && known.stamp === model.stamp && known.length >= model.verified) continue
      if (known !== undefined && known.stamp > model.stamp) continue
      this.announce(model, dir)
    }
  }

  private receive(bytes: Uint8Array, from: T2Direction.Dir8): void {
    if (this.closed) return
    this.stats.packetsIn++
    const decoded = CdmPacket.decode(bytes)
    if (Result.isFailure(decoded)) {
      this.stats.malformed++
      return
    }
    const packet = decoded.success
    switch (packet._tag) {
      case "CdmA":
        return
      case "CdmF":
        return this.onAnnounce(packet.slotstamp, packet.available, from)
      case "CdmC":
        return this.onRequest(packet.slotstamp, packet.position, from)
      case "CdmD":
        return this.onChunk(packet.slotstamp, packet.position, packet.data, from)
      default:
        return
    }
  }

  private onAnnounce(ss: number, available: number, from: T2Direction.Dir8): void {
    if (this.isIgnored(from) || available < HEADER) return
    const slot = CdmSlotstamp.slot(ss)
    const stamp = CdmSlotstamp.stamp(ss)
    const known = this.theirs.get(this.key(slot, from))
    if (known === undefined || known.stamp !== stamp || known.length < available || known.stamp < stamp) {
      this.learn(slot, from, stamp, available)
    }
    if (this.deletions !== undefined && CdmDeletions.isDeleted(this.deletions, ss)) {
      const s01 = this.dominant(CdmDeletions.slot)
      if (s01 !== undefined && s01.complete) this.announce(s01, from)
      return
    }
    const dom = this.dominant(slot)
    if (dom !== undefined && dom.stamp > stamp) {
      this.announce(dom, from)
      return
    }
    let model = this.models.get(ss)
    if (model === undefined) {
      const complete = [...this.models.values()].some((m) => m.slot === slot && m.complete && m.stamp > stamp)
      if (complete || this.models.size >= this.maxModels) return
      model = new Model(ss, this.now)
      this.models.set(ss, model)
    }
    model.sources.set(from, { available, heardAt: this.now })
    if (!model.complete) this.fill(model)
  }

  private onRequest(ss: number, pos: number, from: T2Direction.Dir8): void {
    const model = this.models.get(ss)
    if (model === undefined || pos >= model.verified) return
    const n = Math.min(CHUNK, model.verified - pos)
    if (this.send(CdmPacket.chunk(from, ss, pos, model.content.subarray(pos, pos + n)))) {
      this.stats.chunksServed++
      const known = this.theirs.get(this.key(model.slot, from))
      if (known === undefined || known.stamp !== model.stamp || known.length < pos) {
        this.learn(model.slot, from, model.stamp, pos)
      }
    }
  }

  private onChunk(ss: number, pos: number, data: Uint8Array, from: T2Direction.Dir8): void {
    const model = this.models.get(ss)
    const req = model?.requests.get(pos)
    if (model === undefined || model.complete || req === undefined || this.isIgnored(from)) {
      this.stats.unexpectedChunks++
      return
    }
    model.requests.delete(pos)
    // Links are ordered: an older request to the same neighbour still open was lost.
    for (const r of model.requests.values()) {
      if (r.dir === from && r.seq < req.seq) this.reissue(model, r)
    }
    const n = Math.min(data.length, req.len)
    if (n === 0) {
      model.requests.set(pos, req)
      this.reissue(model, req)
      return
    }
    this.stats.chunksAccepted++
    this.sampleRtt(this.now - req.sentAt)
    const source = model.sources.get(from)
    if (source !== undefined) source.heardAt = this.now
    if (n < req.len) {
      const rest: Request = { pos: pos + n, len: req.len - n, dir: undefined, sentAt: -Infinity, seq: 0 }
      model.requests.set(rest.pos, rest)
      this.reissue(model, rest)
    }
    model.content.set(data.subarray(0, n), pos)
    model.contributors.add(from)
    if (pos === model.pending) {
      model.pending += n
      for (let next = model.held.get(model.pending); next !== undefined; next = model.held.get(model.pending)) {
        model.held.delete(model.pending)
        model.pending += next
      }
      model.lastProgress = this.now
      this.advance(model)
    } else if (pos > model.pending) {
      model.held.set(pos, n)
    }
    if (this.models.get(ss) === model && !model.complete) this.fill(model)
  }

  // ---- pulling ------------------------------------------------------------------------------------------

  private sampleRtt(sample: number): void {
    if (!Number.isFinite(sample)) return
    if (this.srtt === undefined) {
      this.srtt = sample
      this.rttvar = sample / 2
    } else {
      this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - sample)
      this.srtt = 0.875 * this.srtt + 0.125 * sample
    }
  }

  private requestTimeout(): number {
    if (this.srtt === undefined) return this.timing.requestTimeout
    return Math.min(this.timing.requestTimeout, Math.max(this.timing.minRequestTimeout, this.srtt + 4 * this.rttvar))
  }

  private chooseSource(model: Model, pos: number): T2Direction.Dir8 | undefined {
    const now = this.now
    const eligible: Array<T2Direction.Dir8> = []
    for (const [dir, s] of model.sources) {
      if (
        s.available > pos && now - s.heardAt <= this.timing.sourceViability && !this.isIgnored(dir) &&
        this.tile.neighbor(dir)?.isUp()
      ) {
        eligible.push(dir)
      }
    }
    return Random.pick(this.random, eligible)
  }

  private issue(model: Model, req: Request): boolean {
    const dir = this.chooseSource(model, req.pos)
    if (dir === undefined) return false
    if (!this.send(CdmPacket.request(dir, model.slotstamp, req.pos))) return false
    req.dir = dir
    req.sentAt = this.now
    req.seq = ++this.seq
    this.stats.requestsSent++
    return true
  }

  private reissue(model: Model, req: Request): void {
    req.dir = undefined
    req.sentAt = -Infinity
    if (this.issue(model, req)) this.stats.reRequests++
  }

  /** Keeps the request window full. */
  private fill(model: Model): void {
    const limit = model.header === undefined ? HEADER : model.total
    while (model.frontier < limit && model.frontier - model.pending < WINDOW) {
      const len = Math.min(CHUNK, limit - model.frontier)
      const req: Request = { pos: model.frontier, len, dir: undefined, sentAt: -Infinity, seq: 0 }
      if (!this.issue(model, req)) return
      model.requests.set(req.pos, req)
      model.frontier += len
    }
  }

  /** Drops held data and requests and pulls again from the contiguous end. */
  private restart(model: Model): void {
    model.pending = model.verified
    if (model.header === undefined) model.pending = 0
    model.held.clear()
    model.requests.clear()
    model.frontier = model.pending
    model.lastProgress = this.now
    this.fill(model)
  }

  // ---- neighbours and ticks -----------------------------------------------------------------------------

  private connected(dir: T2Direction.Dir8): void {
    if (this.closed) return
    this.send(CdmPacket.alive(dir, this.aliveTag))
    this.aliveTag = (this.aliveTag + 1) & 0xff
    this.lastAlive.set(dir, this.now)
    for (const slot of new Set([...this.models.values()].map((m) => m.slot))) {
      const dom = this.dominant(slot)
      if (dom !== undefined) this.announce(dom, dir)
    }
  }

  private disconnected(dir: T2Direction.Dir8): void {
    for (const k of this.theirs.keys()) if (k.endsWith(`:${dir}`)) this.theirs.delete(k)
    this.lastAlive.delete(dir)
    for (const m of this.models.values()) {
      m.sources.delete(dir)
      for (const r of m.requests.values()) if (r.dir === dir) this.reissue(m, r)
    }
  }

  private scheduleContentTick(): void {
    if (this.closed) return
    this.timers.push(this.tile.scheduler.after(Random.between(this.random, 0, this.timing.contentTick), () => {
      this.timers.shift()
      this.gossip()
      this.scheduleContentTick()
    }))
  }

  private scheduleMaintenance(): void {
    if (this.closed) return
    this.timers.push(this.tile.scheduler.after(this.timing.maintenanceTick, () => {
      this.timers.shift()
      this.maintain()
      this.scheduleMaintenance()
    }))
  }

  private urgency(model: Model, dir: T2Direction.Dir8): number {
    const known = this.theirs.get(this.key(model.slot, dir))
    const theirLen = known !== undefined && known.stamp === model.stamp ? known.length : 0
    const age = known === undefined ? Infinity : (this.now - known.at) / 1000
    const pressure = age < 6 ? 0 : age < 60 ? 1 : age < 3600 ? 2 : 3
    return Math.floor(Math.max(0, model.verified - theirLen) * pressure)
  }

  /** The §3.5 announcement pass. */
  private gossip(): void {
    const open = this.tile.openDirections()
    const doms = [...new Set([...this.models.values()].map((m) => m.slot))]
      .map((slot) => this.dominant(slot))
      .filter((m): m is Model => m !== undefined)
    if (open.length === 0 || doms.length === 0) return
    let said = 0
    for (let round = 0; round < 3; round++) {
      const pairs: Array<{ model: Model; dir: T2Direction.Dir8; weight: number }> = []
      let sum = 500
      for (const model of doms) {
        for (const dir of open) {
          const weight = this.urgency(model, dir)
          if (weight > 0) {
            pairs.push({ model, dir, weight })
            sum += weight
          }
        }
      }
      let pick = this.random() * sum
      const chosen = pairs.find((p) => (pick -= p.weight) < 0)
      if (chosen === undefined) break
      this.announce(chosen.model, chosen.dir)
      said++
    }
    if (said === 0) this.announce(Random.pick(this.random, doms)!, Random.pick(this.random, open)!)
  }

  private maintain(): void {
    const now = this.now
    const timeout = this.requestTimeout()
    for (const model of this.models.values()) {
      if (model.complete) continue
      // An announcement nobody can serve (no header yet, no source heard lately) is forgotten, so stray or
      // hostile announcements cannot fill the model table.
      if (
        model.header === undefined &&
        ![...model.sources.values()].some((src) => now - src.heardAt <= this.timing.sourceViability)
      ) {
        this.models.delete(model.slotstamp)
        continue
      }
      if (model.requests.size > 0 && now - model.lastProgress >= this.timing.staleReset) {
        this.stats.staleResets++
        this.restart(model)
        continue
      }
      for (const r of model.requests.values()) {
        if (now - r.sentAt >= timeout) this.reissue(model, r)
      }
      this.fill(model)
    }
    for (const dir of this.tile.openDirections()) {
      if (now - (this.lastAlive.get(dir) ?? -Infinity) >= this.timing.aliveEvery) {
        this.send(CdmPacket.alive(dir, this.aliveTag))
        this.aliveTag = (this.aliveTag + 1) & 0xff
        this.lastAlive.set(dir, now)
      }
    }
  }

  // ---- public -------------------------------------------------------------------------------------------

  /**
   * Adds a release from outside the grid (the operator's copy, §3.11): it must verify completely; it is
   * written to `common/` by temp file + rename and announced to every open neighbour.
   */
  publish(bytes: Uint8Array): Result.Result<number, string> {
    const verified = CdmRelease.verify(bytes, this.keyring)
    if (Result.isFailure(verified)) return Result.fail(verified.failure.message)
    const ss = verified.success.header.slotstamp
    const existing = this.models.get(ss)
    if (existing?.complete) return Result.succeed(ss)
    if (existing !== undefined) this.deleteModel(existing, "deleted", "replaced by a published copy")
    const tmp = Path.join(this.commonDir, `.${CdmSlotstamp.fileName(ss)}.tmp`)
    try {
      Fs.writeFileSync(tmp, bytes)
      const fd = Fs.openSync(tmp, "r")
      Fs.fsyncSync(fd)
      Fs.closeSync(fd)
      Fs.renameSync(tmp, this.commonPath(ss))
    } catch (cause) {
      Fs.rmSync(tmp, { force: true })
      return Result.fail(`writing ${this.commonPath(ss)}: ${cause instanceof Error ? cause.message : String(cause)}`)
    }
    const model = new Model(ss, this.now)
    this.models.set(ss, model)
    this.loadComplete(model, bytes)
    this.completed(model, true)
    return Result.succeed(ss)
  }

  /** The files this tile holds: slotstamp, verified and total bytes, complete or not. */
  files(): Array<{ slotstamp: number; verified: number; total: number; complete: boolean }> {
    return [...this.models.values()]
      .filter((m) => m.servable())
      .map((m) => ({ slotstamp: m.slotstamp, verified: m.verified, total: m.total, complete: m.complete }))
      .toSorted((a, b) => a.slotstamp - b.slotstamp)
  }

  /** True when the slotstamp is complete here. */
  isComplete(slotstamp: number): boolean {
    return this.models.get(slotstamp)?.complete === true
  }

  /** Stops timers, unregisters and closes files; what is on disk stays valid for a restart. */
  close(): void {
    if (this.closed) return
    this.closed = true
    for (const t of this.timers) t.cancel()
    for (const off of this.unsubscribe) off()
    for (const m of this.models.values()) this.closeFd(m)
  }
}

/**
 * A CDM engine on a tile (pure, synchronous). Throws when the content directory cannot be created or read,
 * or when the tile already has a CDM service.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeEngine = (options: Options): CdmEngine => new CdmEngine(options)

/**
 * A CDM engine in the current scope; a content directory that cannot be created or read fails with
 * `CdmError` (`FileSystem`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<CdmEngine, CdmError.CdmError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.try({
      try: () => new CdmEngine(options),
      catch: (cause) => CdmError.make(options.directory, new CdmError.FileSystem({ cause }))
    }),
    (cdm) => Effect.sync(() => cdm.close())
  )
