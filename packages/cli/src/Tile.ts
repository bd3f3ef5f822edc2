/**
 * `tessera tile`: T2 tiles.
 *
 * - `run --dir DIR [--listen ADDR] [--link DIR=ADDR]... --trust R=PUB... [--publish FILE]` is a real tile
 *   daemon: CDM content in `DIR/common` (complete) and `DIR/pending` (verified prefixes), links over TCP or
 *   Unix sockets to up to six neighbours (`ET=tcp://HOST:PORT`; only one side of a cable dials, the other
 *   listens); flash commands are printed when they execute, and launched from files dropped into
 *   `--flash-dir`; with `--install DIR` every complete release is verified again (inner MFZ
 *   signer) and unpacked into `DIR/slotSS` by renames, once per stamp (install tags in `DIR/tags`). It runs
 *   until interrupted; events are printed as lines (JSON lines with `--json`).
 * - `grid --size WxH --publish FILE --slot N [--loss P] [--corrupt P] [--link-rate B/S] [--seed S]` simulates
 *   a grid in this process on virtual time: FILE becomes a release in slot N signed by a throw-away key,
 *   published at the south-west corner tile; the spread is drawn live on a terminal, then each tile's
 *   completion time is printed (`--json`: one JSON object) and `--svg FILE` writes a picture.
 *
 * @since 0.1.0
 */
import * as CdmSlotstamp from "@tessera/codec/CdmSlotstamp"
import * as T2Direction from "@tessera/codec/T2Direction"
import * as Address from "@tessera/protocol/Address"
import * as Transport from "@tessera/protocol/Transport"
import * as CdmKeys from "@tessera/tile/CdmKeys"
import * as CdmRelease from "@tessera/tile/CdmRelease"
import * as Grid from "@tessera/tile/Grid"
import * as GridSvg from "@tessera/tile/GridSvg"
import * as TileDaemon from "@tessera/tile/TileDaemon"
import * as Topology from "@tessera/tile/Topology"
import * as Command from "effect/cli/Command"
import * as Flag from "effect/cli/Flag"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Result from "effect/Result"
import * as Crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { keyringOf, parseSlot } from "./Cdm.ts"
import { BadInput, OperationFailed } from "./CliFailure.ts"

const jsonFlag = Flag.Boolean("json").pipe(Flag.withDescription("Print JSON on stdout"), Flag.withDefault(false))

const parseLink = (text: string): Effect.Effect<{ dir: T2Direction.Dir8; address: string }, BadInput> => {
  const m = /^([A-Z]{2})=(.+)$/.exec(text)
  const code = m?.[1]
  const dir = code !== undefined && (T2Direction.codes as ReadonlyArray<string>).includes(code)
    ? T2Direction.fromCode(code as T2Direction.Code)
    : undefined
  if (m === null || dir === undefined || !T2Direction.isLink(dir) || Result.isFailure(Address.parse(m[2]!))) {
    return Effect.fail(
      new BadInput({ message: `--link ${text}: expected DIR=ADDRESS with DIR one of ET SE SW WT NW NE` })
    )
  }
  return Effect.succeed({ dir, address: m[2]! })
}

const describeEvent = (event: TileDaemon.DaemonEvent): Record<string, unknown> | undefined => {
  switch (event._tag) {
    case "Link":
      return { event: "link", dir: T2Direction.code(event.dir), up: event.up }
    case "Cdm":
      return event.event.type === "block" ? undefined : {
        event: event.event.type,
        file: CdmSlotstamp.fileName(event.event.slotstamp),
        verified: event.event.verified,
        total: event.event.total,
        ...(event.event.reason === undefined ? {} : { reason: event.event.reason })
      }
    case "Installed":
      return { event: "installed", file: CdmSlotstamp.fileName(event.slotstamp) }
    case "HookFailed":
      return { event: "hook_failed", file: CdmSlotstamp.fileName(event.slotstamp), error: event.error }
    case "Flash":
      return { event: "flash", ...event.command }
    case "FlashLaunched":
      return { event: "flash_launched", file: event.file, index: event.index }
    case "FlashRefused":
      return { event: "flash_refused", file: event.file, reason: event.reason }
  }
}

const text = (line: Record<string, unknown>): string =>
  Object.entries(line).map((
    [k, v]
  ) => (k === "event" ? String(v) : `${k}=${typeof v === "object" ? JSON.stringify(v) : String(v)}`))
    .join(" ")

const run = Command.make(
  "run",
  {
    dir: Flag.String("dir").pipe(Flag.withDescription("Content directory (common/, pending/, tags/)")),
    listen: Flag.String("listen").pipe(
      Flag.withDescription("Accept neighbour links here: tcp://HOST:PORT or unix:PATH"),
      Flag.optional
    ),
    link: Flag.String("link").pipe(
      Flag.withDescription("Dial a neighbour: DIR=tcp://HOST:PORT or DIR=unix:PATH, DIR one of ET SE SW WT NW NE"),
      Flag.atLeast(0)
    ),
    trust: Flag.String("trust").pipe(
      Flag.withDescription("A trusted release signer: REGNUM=PUBKEYFILE (repeatable)"),
      Flag.atLeast(1)
    ),
    mfzid: Flag.String("mfzid").pipe(
      Flag.withDescription("Physics identity compared with neighbours (KITC)"),
      Flag.withDefault("tessera")
    ),
    publish: Flag.String("publish").pipe(Flag.withDescription("A cdmss release to add at start"), Flag.optional),
    flashDir: Flag.String("flash-dir").pipe(
      Flag.withDescription(
        "Launch flash commands from files _CATEGORY_COMMAND-RANGE.cmd dropped here (e.g. _mfm_quit-3.cmd)"
      ),
      Flag.optional
    ),
    install: Flag.String("install").pipe(
      Flag.withDescription("Install each complete release: verify its MFZ and unpack it into DIR/slotSS"),
      Flag.optional
    ),
    json: jsonFlag
  },
  Effect.fn("tile.run")(function*(flags) {
    const keyring = yield* keyringOf(flags.trust)
    const links = yield* Effect.forEach(flags.link, parseLink)
    if (new Set(links.map((l) => l.dir)).size !== links.length) {
      return yield* new BadInput({ message: "--link: each direction at most once" })
    }
    if (Option.isSome(flags.listen) && Result.isFailure(Address.parse(flags.listen.value))) {
      return yield* new BadInput({ message: `--listen ${flags.listen.value}: not an address` })
    }
    const release = Option.isSome(flags.publish)
      ? yield* Effect.try({
        try: () => new Uint8Array(fs.readFileSync(flags.publish.pipe(Option.getOrThrow))),
        catch: (cause) =>
          new BadInput({ message: `--publish: ${cause instanceof Error ? cause.message : String(cause)}` })
      })
      : undefined
    yield* Effect.try({
      try: () => fs.mkdirSync(flags.dir, { recursive: true }),
      catch: (cause) => new BadInput({ message: `--dir ${flags.dir}: ${String(cause)}` })
    })
    const lines = yield* Queue.unbounded<Record<string, unknown>>()
    const print = (
      line: Record<string, unknown>
    ) => (flags.json ? Console.log(JSON.stringify(line)) : Console.log(text(line)))
    const daemon = yield* TileDaemon.start({
      directory: flags.dir,
      keyring,
      listen: Option.getOrUndefined(flags.listen),
      links,
      mfzid: flags.mfzid,
      flashDir: Option.getOrUndefined(flags.flashDir),
      hooks: Option.isSome(flags.install) ? [TileDaemon.unpackHook(flags.install.value, keyring)] : [],
      onEvent: (event) => {
        const line = describeEvent(event)
        if (line !== undefined) Queue.offerUnsafe(lines, line)
      }
    }).pipe(Effect.mapError((error) => new OperationFailed({ message: error.message })))
    if (daemon.address !== undefined) yield* print({ event: "listening", address: Address.format(daemon.address) })
    if (release !== undefined) {
      const published = daemon.cdm.publish(release)
      if (Result.isFailure(published)) return yield* new BadInput({ message: `--publish: ${published.failure}` })
      yield* print({ event: "published", file: CdmSlotstamp.fileName(published.success) })
    }
    return yield* Effect.forever(Effect.flatMap(Queue.take(lines), print))
  }, Effect.scoped)
).pipe(Command.withDescription("Run a tile daemon serving CDM content from a directory"))

const drawLive = (sim: Grid.GridSim, slotstamp: number, now: number): string => {
  const rows: Array<string> = []
  for (let row = sim.topology.height - 1; row >= 0; row--) {
    let line = row % 2 === 1 ? " " : ""
    for (let col = 0; col < sim.topology.width; col++) {
      const t = sim.tiles[row * sim.topology.width + col]!
      const f = t.cdm.files().find((x) => x.slotstamp === slotstamp)
      line += f === undefined
        ? ". "
        : f.complete
        ? "# "
        : `${Math.min(9, Math.floor((10 * f.verified) / Math.max(1, f.total)))} `
    }
    rows.push(line)
  }
  return `t=${(now / 1000).toFixed(1)} s\n${rows.join("\n")}\n`
}

const grid = Command.make(
  "grid",
  {
    size: Flag.String("size").pipe(Flag.withDescription("Grid size WxH, e.g. 6x6")),
    publish: Flag.String("publish").pipe(Flag.withDescription("The payload file to release")),
    slot: Flag.String("slot").pipe(Flag.withDescription("Content slot 1..255 (decimal or 0x hex)")),
    loss: Flag.Finite("loss").pipe(Flag.withDescription("Packet loss probability per link"), Flag.withDefault(0)),
    corrupt: Flag.Finite("corrupt").pipe(Flag.withDescription("Packet corruption probability"), Flag.withDefault(0)),
    linkRate: Flag.Finite("link-rate").pipe(
      Flag.withDescription("Bytes per second per link direction (T2 measured about 65000)"),
      Flag.withDefault(65_000)
    ),
    latency: Flag.Finite("latency").pipe(Flag.withDescription("Milliseconds per hop"), Flag.withDefault(1)),
    seed: Flag.Int("seed").pipe(Flag.withDescription("Random seed (runs replay exactly)"), Flag.withDefault(1)),
    limit: Flag.Finite("limit").pipe(
      Flag.withDescription("Simulated seconds to give up after"),
      Flag.withDefault(3600)
    ),
    svg: Flag.String("svg").pipe(Flag.withDescription("Write an SVG picture of completion times"), Flag.optional),
    json: jsonFlag
  },
  Effect.fn("tile.grid")(function*(flags) {
    const size = Topology.parseSize(flags.size)
    if (size === undefined) return yield* new BadInput({ message: `--size ${flags.size}: expected WxH, 1..64 each` })
    const slot = yield* parseSlot(flags.slot)
    for (const [name, p] of [["--loss", flags.loss], ["--corrupt", flags.corrupt]] as const) {
      if (!(p >= 0 && p < 1)) return yield* new BadInput({ message: `${name} must be in [0, 1)` })
    }
    if (!(flags.linkRate > 0)) return yield* new BadInput({ message: "--link-rate must be > 0" })
    if (!(flags.latency >= 0)) return yield* new BadInput({ message: "--latency must be >= 0" })
    const { modified, payload } = yield* Effect.try({
      try: () => ({
        payload: new Uint8Array(fs.readFileSync(flags.publish)),
        modified: Math.floor(fs.statSync(flags.publish).mtimeMs / 1000)
      }),
      catch: (cause) =>
        new BadInput({ message: `--publish: ${cause instanceof Error ? cause.message : String(cause)}` })
    })
    // Everything the release holds comes from the inputs (the key from the seed, the times from the file), so a
    // seeded run replays exactly: a fresh key or the wall clock would change its compressed size.
    const key = Result.getOrThrow(
      CdmKeys.fromSeed(
        "tessera-grid-simulation",
        Crypto.createHash("sha256").update(`tessera-grid-${flags.seed}`).digest()
      )
    )
    const release = yield* Effect.fromResult(Result.mapError(
      CdmRelease.make({
        key,
        regnum: 0,
        slot,
        label: "grid",
        time: modified,
        files: [{ path: path.resolve(flags.publish), bytes: payload, mtime: modified }]
      }),
      (e) => new BadInput({ message: e.message })
    ))
    const root = yield* Effect.acquireRelease(
      Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "tessera-grid-"))),
      (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
    )
    const sim = Grid.make({
      width: size.width,
      height: size.height,
      seed: flags.seed,
      directory: root,
      keyring: CdmKeys.keyring([[0, key]]),
      link: { loss: flags.loss, corrupt: flags.corrupt, bandwidth: flags.linkRate, latency: flags.latency }
    })
    yield* Effect.addFinalizer(() => Effect.sync(() => sim.close()))
    sim.run(1_000)
    const publishedAt = sim.scheduler.now()
    sim.publish(0, release.bytes)
    const live = !flags.json && process.stderr.isTTY === true
    const started = performance.now()
    let done = false
    while (!done && sim.scheduler.now() - publishedAt < flags.limit * 1000) {
      done = sim.runUntilComplete(release.slotstamp, 500)
      if (live) {
        process.stderr.write(`\x1b[H\x1b[2J${drawLive(sim, release.slotstamp, sim.scheduler.now() - publishedAt)}`)
      }
      // Let interrupts and output through between steps.
      yield* Effect.yieldNow
    }
    const wall = (performance.now() - started) / 1000
    const summary = Grid.summarize(sim, {
      slotstamp: release.slotstamp,
      bytes: release.bytes.length,
      publisher: 0,
      publishedAt,
      linkRate: flags.linkRate
    })
    if (Option.isSome(flags.svg)) {
      const svg = GridSvg.render({
        grid: sim.topology,
        seconds: summary.seconds,
        publisher: 0,
        title:
          `${size.width}x${size.height}, ${release.bytes.length} bytes at ${flags.linkRate} B/s, loss ${flags.loss}, corrupt ${flags.corrupt}: spread ${
            summary.spread?.toFixed(1) ?? "incomplete"
          } s (ideal ${summary.ideal.toFixed(1)} s)`
      })
      yield* Effect.try({
        try: () => fs.writeFileSync(flags.svg.pipe(Option.getOrThrow), svg),
        catch: (cause) => new OperationFailed({ message: `--svg: ${String(cause)}` })
      })
    }
    const link = sim.linkStats()
    const rates = summary.perHopRates.toSorted((a, b) => a - b)
    const median = rates.length === 0 ? 0 : rates[Math.floor(rates.length / 2)]!
    if (flags.json) {
      yield* Console.log(JSON.stringify({
        width: size.width,
        height: size.height,
        bytes: release.bytes.length,
        linkRate: flags.linkRate,
        loss: flags.loss,
        corrupt: flags.corrupt,
        seed: flags.seed,
        hops: summary.hops,
        spread: summary.spread ?? null,
        ideal: summary.ideal,
        linkBytesPerByte: summary.linkBytesPerByte,
        medianPerHopRate: median,
        wallSeconds: wall,
        link,
        tiles: sim.tiles.map((t, i) => ({
          index: i,
          x: t.position.x,
          y: t.position.y,
          hops: Topology.distance(t.position, sim.tiles[0]!.position),
          seconds: summary.seconds[i] ?? null
        }))
      }))
    } else {
      const rows: Array<string> = []
      for (let row = size.height - 1; row >= 0; row--) {
        const cells = Array.from({ length: size.width }, (_, col) => {
          const s = summary.seconds[row * size.width + col]
          return (s === undefined ? "-" : s.toFixed(1)).padStart(6)
        })
        rows.push(`${row % 2 === 1 ? "   " : ""}${cells.join("")}`)
      }
      yield* Console.log(
        [
          `completion times (s) of ${release.fileName}, ${release.bytes.length} bytes, north at the top:`,
          ...rows,
          `spread ${summary.spread?.toFixed(2) ?? "incomplete"} s; ideal ${summary.ideal.toFixed(2)} s (${
            summary.spread === undefined ? "-" : (summary.spread / summary.ideal).toFixed(2)
          }x); ${summary.hops} hops; per-hop rate median ${(median / 1000).toFixed(1)} KB/s (link ${
            (flags.linkRate / 1000).toFixed(1)
          }); ${
            summary.linkBytesPerByte.toFixed(2)
          } link bytes per payload byte; lost ${link.lost}, corrupted ${link.corrupted}; ${
            wall.toFixed(1)
          } s of wall time`
        ].join("\n")
      )
    }
    if (!done) {
      return yield* new OperationFailed({ message: `not every tile completed within ${flags.limit} simulated seconds` })
    }
  }, Effect.scoped)
).pipe(Command.withDescription("Simulate a grid of tiles spreading a release, on virtual time"))

/**
 * The `tile` command and its subcommands; they need a `Transport`.
 *
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make("tile").pipe(
  Command.withDescription("T2 tiles: a tile daemon, and grid simulations"),
  Command.withSubcommands([run, grid]),
  Command.provide(Transport.Transport.layer)
)
