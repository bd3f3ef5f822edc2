/**
 * A real tile: the tile engine on the system clock with CDM and flash services, its links over TCP or Unix
 * sockets, and completion actions (install hooks) guarded by install tags. This is what `tessera tile run`
 * runs.
 *
 * Links: for each configured `dir=address` the daemon dials, sends the hello and plugs the link into that
 * neighbour; when the stream breaks (the neighbour reports a disconnect TEP) it dials again every
 * `redialEvery`. With `listen`, accepted connections are plugged into the neighbour opposite the direction
 * their hello names. Only one side of each cable should dial.
 *
 * Install hooks (spec t2 §3.9): when a release completes (and, for complete files, at every start), each
 * hook for its slot runs in order, one release at a time, unless the slot's tag
 * `<directory>/tags/slotSS-install-tag.dat` already holds this stamp or a newer one; after all of them
 * succeed the tag is written (temp file + rename). A failing hook is logged and its tag left alone, so the
 * next start tries again; the service itself carries on.
 *
 * @since 0.1.0
 */
import * as CdmSlotstamp from "@tessera/codec/CdmSlotstamp"
import * as FlashPacket from "@tessera/codec/FlashPacket"
import * as T2Direction from "@tessera/codec/T2Direction"
import type * as Address from "@tessera/protocol/Address"
import * as Transport from "@tessera/protocol/Transport"
import type * as TransportError from "@tessera/protocol/TransportError"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Queue from "effect/Queue"
import * as Result from "effect/Result"
import * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Cdm from "./Cdm.ts"
import type * as CdmError from "./CdmError.ts"
import type * as CdmKeys from "./CdmKeys.ts"
import * as Flash from "./Flash.ts"
import type * as Link from "./Link.ts"
import * as Mfz from "./Mfz.ts"
import * as Scheduler from "./Scheduler.ts"
import * as SocketLink from "./SocketLink.ts"
import * as Tile from "./Tile.ts"

/**
 * A completion action for one slot (or every slot when `slot` is omitted).
 *
 * @since 0.1.0
 * @category models
 */
export interface Hook {
  readonly slot?: number | undefined
  readonly run: (release: Cdm.Complete) => Effect.Effect<void, unknown>
}

/**
 * A ready-made install hook: verifies the release's inner MFZ (signature and trusted signer, spec t2 §4.3)
 * and unpacks its payload files into `<target>/slotSS/`, swapping the previous install to
 * `<target>/slotSS-prev-install` (removing an older backup), so the directory changes by renames only.
 * Payload paths that would leave the directory are refused.
 *
 * @since 0.1.0
 * @category constructors
 */
export const unpackHook = (target: string, keyring: CdmKeys.Keyring): Hook => ({
  run: (release) =>
    Effect.try(() => {
      const mfz = Mfz.verify(new Uint8Array(Fs.readFileSync(release.path)), keyring, release.path)
      if (Result.isFailure(mfz)) throw new Error(mfz.failure.message)
      const name = `slot${CdmSlotstamp.slot(release.slotstamp).toString(16).padStart(2, "0")}`
      Fs.mkdirSync(target, { recursive: true })
      const tmp = Fs.mkdtempSync(Path.join(target, `.${name}-`))
      try {
        for (const file of mfz.success.files) {
          const out = Path.resolve(tmp, file.path)
          if (!out.startsWith(`${tmp}${Path.sep}`)) throw new Error(`payload path "${file.path}" leaves the directory`)
          Fs.mkdirSync(Path.dirname(out), { recursive: true })
          Fs.writeFileSync(out, file.bytes)
        }
        const dest = Path.join(target, name)
        const prev = `${dest}-prev-install`
        if (Fs.existsSync(dest)) {
          Fs.rmSync(prev, { recursive: true, force: true })
          Fs.renameSync(dest, prev)
        }
        Fs.renameSync(tmp, dest)
      } catch (cause) {
        Fs.rmSync(tmp, { recursive: true, force: true })
        throw cause
      }
    })
})

/**
 * Something the daemon reports.
 *
 * @since 0.1.0
 * @category models
 */
export type DaemonEvent =
  | { readonly _tag: "Cdm"; readonly event: Cdm.Event }
  | { readonly _tag: "Link"; readonly dir: T2Direction.Dir8; readonly up: boolean }
  | { readonly _tag: "Installed"; readonly slotstamp: number }
  | { readonly _tag: "HookFailed"; readonly slotstamp: number; readonly error: string }
  | { readonly _tag: "Flash"; readonly command: Flash.Command }
  | { readonly _tag: "FlashLaunched"; readonly file: string; readonly index: number }
  | { readonly _tag: "FlashRefused"; readonly file: string; readonly reason: string }

/**
 * Options of a daemon.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly directory: string
  readonly keyring: CdmKeys.Keyring
  readonly listen?: string | undefined
  readonly links?: ReadonlyArray<{ readonly dir: T2Direction.Dir8; readonly address: string }> | undefined
  readonly mfzid?: string | undefined
  readonly timing?: Partial<Cdm.Timing> | undefined
  readonly hooks?: ReadonlyArray<Hook> | undefined
  readonly redialEvery?: Duration.Input | undefined
  /**
   * A directory polled every 250 ms for flash launch files `_<category>_<command>-<range>.cmd` (e.g.
   * `_mfm_quit-3.cmd`, spec t2 §5.4): each is launched from this tile and removed.
   */
  readonly flashDir?: string | undefined
  readonly onEvent?: ((event: DaemonEvent) => void) | undefined
}

/**
 * A running daemon.
 *
 * @since 0.1.0
 * @category models
 */
export interface Daemon {
  readonly tile: Tile.TileEngine
  readonly cdm: Cdm.CdmEngine
  readonly flash: Flash.FlashEngine
  /** The bound listener address, when listening. */
  readonly address: Address.Address | undefined
}

const tagPath = (directory: string, slot: number): string =>
  Path.join(directory, "tags", `slot${slot.toString(16).padStart(2, "0")}-install-tag.dat`)

const readTag = (directory: string, slot: number): number | undefined => {
  try {
    const n = Number.parseInt(Fs.readFileSync(tagPath(directory, slot), "utf8").trim(), 16)
    return Number.isNaN(n) ? undefined : n
  } catch {
    return undefined
  }
}

const writeTag = (directory: string, slot: number, stamp: number): Effect.Effect<void, unknown> =>
  Effect.try(() => {
    const path = tagPath(directory, slot)
    Fs.mkdirSync(Path.dirname(path), { recursive: true })
    Fs.writeFileSync(`${path}.tmp`, `${stamp.toString(16).padStart(6, "0")}\n`)
    Fs.renameSync(`${path}.tmp`, path)
  })

// Plugs a link into a neighbour and returns the wait for that link's disconnect (not the one its
// predecessor reports while being replaced).
const plug = (neighbor: Tile.Neighbor, link: Link.Link) =>
  Effect.gen(function*() {
    const down = yield* Deferred.make<void>()
    let armed = false
    const off = neighbor.onEvent((event) => {
      if (armed && event.event === "disconnect") Deferred.doneUnsafe(down, Effect.void)
    })
    yield* Effect.addFinalizer(() => Effect.sync(off))
    neighbor.attach(link)
    armed = true
    if (!link.isUp() || neighbor.link !== link) Deferred.doneUnsafe(down, Effect.void)
    return yield* Deferred.await(down)
  })

const FLASH_FILE = /^_([a-z0-9]+)_([a-z0-9]+)-(\d{1,3})\.cmd$/

// Launches and removes every flash command file in `dir`; a missing directory is simply empty.
const launchFlashFiles = (dir: string, flash: Flash.FlashEngine, emit: (event: DaemonEvent) => void): void => {
  let names: Array<string>
  try {
    names = Fs.readdirSync(dir)
  } catch {
    return
  }
  for (const file of names.filter((n) => n.endsWith(".cmd")).toSorted()) {
    try {
      Fs.rmSync(Path.join(dir, file))
    } catch {
      continue
    }
    const m = FLASH_FILE.exec(file)
    const name = m === null ? "" : `${m[1]}:${m[2]}`
    const command: number | undefined = Object.hasOwn(FlashPacket.commands, name)
      ? FlashPacket.commands[name as FlashPacket.CommandName]
      : undefined
    const range = m === null ? 0 : Number(m[3])
    if (command === undefined || range > 255) {
      emit({ _tag: "FlashRefused", file, reason: "not _<category>_<command>-<range>.cmd with a known command" })
      continue
    }
    emit({ _tag: "FlashLaunched", file, index: flash.launch(command, range, Math.floor(Math.random() * 2 ** 32)) })
  }
}

/**
 * Starts a tile daemon in the current scope; everything stops when it closes. Fails when the listener cannot
 * be bound or the content directory cannot be created or read.
 *
 * @since 0.1.0
 * @category constructors
 */
export const start = Effect.fn("TileDaemon.start")(function*(options: Options): Effect.fn.Return<
  Daemon,
  TransportError.TransportError | Address.AddressError | CdmError.CdmError,
  Transport.Transport | Scope.Scope
> {
  const scope = yield* Scope.Scope
  const emit = options.onEvent ?? (() => {})
  const scheduler = yield* Scheduler.makeSystem
  const tile = yield* Tile.make({ scheduler, random: Math.random, mfzid: options.mfzid })
  for (const n of tile.neighbors) {
    n.onEvent((event) => emit({ _tag: "Link", dir: n.dir, up: event.event === "connect" }))
  }
  const completions = yield* Queue.unbounded<Cdm.Complete>()
  const cdm = yield* Cdm.make({
    tile,
    directory: options.directory,
    keyring: options.keyring,
    timing: options.timing,
    onComplete: (release) => void Queue.offerUnsafe(completions, release),
    onEvent: (event) => emit({ _tag: "Cdm", event })
  })
  const flash = yield* Flash.make({ tile, onCommand: (command) => emit({ _tag: "Flash", command }) })

  const hooks = options.hooks ?? []
  const install = (release: Cdm.Complete) =>
    Effect.gen(function*() {
      const slot = CdmSlotstamp.slot(release.slotstamp)
      const stamp = CdmSlotstamp.stamp(release.slotstamp)
      const mine = hooks.filter((h) => h.slot === undefined || h.slot === slot)
      const tag = readTag(options.directory, slot)
      if (mine.length === 0 || (tag !== undefined && tag >= stamp)) return
      for (const hook of mine) yield* hook.run(release)
      yield* writeTag(options.directory, slot, stamp)
      emit({ _tag: "Installed", slotstamp: release.slotstamp })
    }).pipe(
      Effect.catchCause((cause) =>
        Effect.sync(() => emit({ _tag: "HookFailed", slotstamp: release.slotstamp, error: String(cause) }))
      )
    )
  yield* Effect.forkScoped(Effect.forever(Effect.flatMap(Queue.take(completions), install)))

  const pause = options.redialEvery ?? Duration.millis(500)
  for (const { dir, address } of options.links ?? []) {
    const once = Effect.scoped(Effect.gen(function*() {
      const link = yield* SocketLink.dial(address, dir)
      yield* plug(tile.neighbor(dir)!, link)
    }))
    yield* Effect.forkScoped(Effect.forever(once.pipe(Effect.ignore, Effect.andThen(Effect.sleep(pause)))))
  }

  if (options.flashDir !== undefined) {
    const dir = options.flashDir
    yield* Effect.forkScoped(Effect.forever(
      Effect.sync(() => launchFlashFiles(dir, flash, emit)).pipe(Effect.andThen(Effect.sleep(Duration.millis(250))))
    ))
  }

  let bound: Address.Address | undefined
  if (options.listen !== undefined) {
    const listener = yield* Transport.listen(options.listen)
    bound = listener.address
    const serve = (connection: Transport.Connection) =>
      Effect.scoped(Effect.gen(function*() {
        const { dir: theirs, link } = yield* SocketLink.accept(connection)
        const dir = T2Direction.opposite(theirs)
        const neighbor = tile.neighbor(dir)
        if (neighbor === undefined) return
        yield* plug(neighbor, link)
      })).pipe(Effect.ignore)
    yield* Effect.forkScoped(
      Effect.forever(Effect.gen(function*() {
        const child = yield* Scope.fork(scope)
        const connection = yield* Effect.onError(
          Scope.provide(listener.accept, child),
          () => Scope.close(child, Exit.void)
        )
        yield* Effect.forkIn(Effect.ensuring(serve(connection), Scope.close(child, Exit.void)), scope)
      })).pipe(Effect.ignore)
    )
  }
  return { tile, cdm, flash, address: bound }
})
