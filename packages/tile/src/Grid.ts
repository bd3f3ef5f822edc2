/**
 * A simulated grid of tiles in one process, on virtual time: `width × height` tiles in the staggered layout,
 * each neighbouring pair joined by a `MemoryLink` cable with the given model, each tile running the CDM
 * service over its own content directory. A seeded run replays exactly, and simulated minutes take
 * milliseconds of wall time.
 *
 * Tiles can be stopped (their cables lose sync, their engines close, their files stay) and started again
 * from the same directory, which is how restarts mid-transfer are simulated.
 *
 * @since 0.1.0
 */
import type * as Result from "effect/Result"
import * as Path from "node:path"
import * as Cdm from "./Cdm.ts"
import type * as CdmKeys from "./CdmKeys.ts"
import * as Flash from "./Flash.ts"
import * as Random from "./internal/random.ts"
import type * as Link from "./Link.ts"
import * as MemoryLink from "./MemoryLink.ts"
import * as Scheduler from "./Scheduler.ts"
import * as Tile from "./Tile.ts"
import * as Topology from "./Topology.ts"

/**
 * Options of a simulated grid.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly width: number
  readonly height: number
  readonly seed: number
  /** Root directory; tile i uses `<directory>/tile-<i>`. */
  readonly directory: string
  readonly keyring: CdmKeys.Keyring
  /** A different keyring for some tiles (e.g. a rogue tile that trusts a rogue key). */
  readonly keyringOf?: ((tile: number) => CdmKeys.Keyring | undefined) | undefined
  /** Cable model for every direction of every cable. */
  readonly link?: Partial<MemoryLink.Model> | undefined
  readonly timing?: Partial<Cdm.Timing> | undefined
  readonly mfzid?: string | undefined
  readonly onEvent?: ((tile: number, event: Cdm.Event) => void) | undefined
  readonly onFlash?: ((tile: number, command: Flash.Command) => void) | undefined
}

/**
 * One simulated tile.
 *
 * @since 0.1.0
 * @category models
 */
export interface SimTile {
  readonly index: number
  readonly position: Topology.Position
  readonly directory: string
  tile: Tile.TileEngine
  cdm: Cdm.CdmEngine
  flash: Flash.FlashEngine
  running: boolean
}

/**
 * A running simulation.
 *
 * @since 0.1.0
 * @category models
 */
export class GridSim {
  readonly scheduler: Scheduler.Virtual
  readonly topology: Topology.Grid
  readonly tiles: Array<SimTile> = []
  /** Virtual time each tile completed each slotstamp, by slotstamp. */
  readonly completed = new Map<number, Map<number, number>>()
  /** Virtual time each tile first verified a header of each slotstamp. */
  readonly started = new Map<number, Map<number, number>>()
  private readonly cables: Array<{ readonly edge: Topology.Edge; readonly cable: MemoryLink.Cable }> = []
  private readonly random: Random.Random
  private readonly options: Options

  constructor(options: Options) {
    this.options = options
    this.scheduler = Scheduler.makeVirtual()
    this.random = Random.seeded(options.seed)
    this.topology = Topology.grid(options.width, options.height)
    this.topology.positions.forEach((position, index) => {
      const directory = Path.join(options.directory, `tile-${index}`)
      this.tiles.push({ index, position, directory, ...this.engines(index, directory), running: true })
    })
    for (const edge of this.topology.edges) {
      const cable = MemoryLink.make({
        scheduler: this.scheduler,
        random: this.random,
        aToB: options.link,
        bToA: options.link
      })
      this.cables.push({ edge, cable })
      this.tiles[edge.a]!.tile.neighbor(edge.dir)!.attach(cable.a)
      this.tiles[edge.b]!.tile.neighbor(Topology.opposite(edge.dir))!.attach(cable.b)
    }
  }

  private engines(index: number, directory: string): Pick<SimTile, "tile" | "cdm" | "flash"> {
    const tile = Tile.makeEngine({
      scheduler: this.scheduler,
      random: this.random,
      mfzid: this.options.mfzid ?? "grid"
    })
    const record = (map: Map<number, Map<number, number>>, ss: number) => {
      const m = map.get(ss) ?? new Map<number, number>()
      map.set(ss, m)
      if (!m.has(index)) m.set(index, this.scheduler.now())
    }
    const cdm = Cdm.makeEngine({
      tile,
      directory,
      keyring: this.options.keyringOf?.(index) ?? this.options.keyring,
      timing: this.options.timing,
      onEvent: (event) => {
        if (event.type === "header" || event.type === "loaded") record(this.started, event.slotstamp)
        if (event.type === "complete" || (event.type === "loaded" && event.verified === event.total)) {
          record(this.completed, event.slotstamp)
        }
        this.options.onEvent?.(index, event)
      }
    })
    const flash = Flash.makeEngine({ tile, onCommand: (command) => this.options.onFlash?.(index, command) })
    return { tile, cdm, flash }
  }

  private cablesOf(index: number): Array<{ readonly edge: Topology.Edge; readonly cable: MemoryLink.Cable }> {
    return this.cables.filter((c) => c.edge.a === index || c.edge.b === index)
  }

  /** Cuts (false) or restores (true) the cable between two neighbouring tiles; false if they are not cabled. */
  setCable(a: number, b: number, up: boolean): boolean {
    const found = this.cables.find(({ edge }) => (edge.a === a && edge.b === b) || (edge.a === b && edge.b === a))
    found?.cable.setUp(up)
    return found !== undefined
  }

  /** Publishes a release at one tile. */
  publish(index: number, bytes: Uint8Array): Result.Result<number, string> {
    return this.tiles[index]!.cdm.publish(bytes)
  }

  /** Stops a tile as a crash would: its cables lose sync and its engines close; its files stay. */
  stop(index: number): void {
    const t = this.tiles[index]!
    if (!t.running) return
    for (const { cable } of this.cablesOf(index)) cable.setUp(false)
    t.cdm.close()
    t.flash.close()
    t.tile.close()
    t.running = false
  }

  /** Starts a stopped tile again from its directory. */
  start(index: number): void {
    const t = this.tiles[index]!
    if (t.running) return
    Object.assign(t, this.engines(index, t.directory), { running: true })
    for (const { edge, cable } of this.cablesOf(index)) {
      if (edge.a === index) t.tile.neighbor(edge.dir)!.attach(cable.a)
      else t.tile.neighbor(Topology.opposite(edge.dir))!.attach(cable.b)
      const other = this.tiles[edge.a === index ? edge.b : edge.a]!
      if (other.running) cable.setUp(true)
    }
  }

  /** True when every tile has `slotstamp` complete. */
  allComplete(slotstamp: number): boolean {
    // Cheap test first: runWhile calls this after every timer.
    if ((this.completed.get(slotstamp)?.size ?? 0) < this.tiles.length) return false
    return this.tiles.every((t) => t.running && t.cdm.isComplete(slotstamp))
  }

  /** Runs until every tile completed `slotstamp` or `limit` ms of virtual time passed; true on success. */
  runUntilComplete(slotstamp: number, limit: number): boolean {
    return this.scheduler.runWhile(() => this.allComplete(slotstamp), this.scheduler.now() + limit)
  }

  /** Runs `ms` of virtual time. */
  run(ms: number): void {
    this.scheduler.runUntil(this.scheduler.now() + ms)
  }

  /** Sums of every link end's counters. */
  linkStats(): Link.Stats {
    const total = {
      packetsSent: 0,
      bytesSent: 0,
      packetsReceived: 0,
      bytesReceived: 0,
      overflows: 0,
      lost: 0,
      corrupted: 0
    }
    for (const { cable } of this.cables) {
      for (const end of [cable.a, cable.b]) {
        for (const k of Object.keys(total) as Array<keyof Link.Stats>) total[k] += end.stats[k]
      }
    }
    return total
  }

  /** Closes every engine. */
  close(): void {
    for (const t of this.tiles) if (t.running) this.stop(t.index)
  }
}

/**
 * A simulated grid.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): GridSim => new GridSim(options)

/**
 * The outcome of spreading one release.
 *
 * @since 0.1.0
 * @category models
 */
export interface Summary {
  readonly tiles: number
  readonly bytes: number
  /** Hops from the publisher to the farthest tile. */
  readonly hops: number
  /** Seconds from publishing until each tile completed (`undefined`: not complete). */
  readonly seconds: ReadonlyArray<number | undefined>
  /** Seconds until the last tile completed (`undefined` unless all did). */
  readonly spread: number | undefined
  /** file size / link rate + hops × one chunk's time on the wire, in seconds. */
  readonly ideal: number
  /** Bytes sent on all links per payload byte delivered to a tile (bytes × (tiles − 1)). */
  readonly linkBytesPerByte: number
  /** Per tile (publisher excluded): bytes / (completion − first verified header), in bytes per second. */
  readonly perHopRates: ReadonlyArray<number>
}

/**
 * Summarises the spread of `slotstamp` published at `publisher` at virtual time `publishedAt` over links of
 * `linkRate` bytes per second.
 *
 * @since 0.1.0
 * @category getters
 */
export const summarize = (
  sim: GridSim,
  options: {
    readonly slotstamp: number
    readonly bytes: number
    readonly publisher: number
    readonly publishedAt: number
    readonly linkRate: number
  }
): Summary => {
  const done = sim.completed.get(options.slotstamp) ?? new Map<number, number>()
  const started = sim.started.get(options.slotstamp) ?? new Map<number, number>()
  const seconds = sim.tiles.map((t) => {
    const at = done.get(t.index)
    return at === undefined ? undefined : (at - options.publishedAt) / 1000
  })
  const all = seconds.every((s) => s !== undefined)
  const hops = Topology.eccentricity(sim.topology, options.publisher)
  // One D packet (14 header bytes + 180 data) plus the frame's flag byte.
  const chunkTime = options.linkRate > 0 ? (14 + 180 + 1) / options.linkRate : 0
  const ideal = (options.linkRate > 0 ? options.bytes / options.linkRate : 0) + hops * chunkTime
  const perHopRates: Array<number> = []
  for (const t of sim.tiles) {
    if (t.index === options.publisher) continue
    const end = done.get(t.index)
    const begin = started.get(t.index)
    if (end !== undefined && begin !== undefined && end > begin) {
      perHopRates.push(options.bytes / ((end - begin) / 1000))
    }
  }
  const delivered = options.bytes * (sim.tiles.length - 1)
  return {
    tiles: sim.tiles.length,
    bytes: options.bytes,
    hops,
    seconds,
    spread: all ? Math.max(...seconds.map((s) => s ?? 0)) : undefined,
    ideal,
    linkBytesPerByte: delivered > 0 ? sim.linkStats().bytesSent / delivered : 0,
    perHopRates
  }
}
