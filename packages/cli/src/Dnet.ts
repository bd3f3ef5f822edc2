/**
 * `tessera dnet`: elliptics-compatible storage nodes and a client for them.
 *
 * - `tessera dnet serve --backend memory|file:DIR|blob:DIR --listen ADDR [--group N] [--join ADDR]...` runs a
 *   node until it is stopped. A node with a file or blob backend keeps its ring ids in `DIR/dnet.ids` (made on
 *   first start, `--ids` of them), so a restarted node owns the same keys again.
 * - `tessera dnet put|get|rm|stat|ls --node ADDR [--groups 1,2] KEY [FILE|-]` stores, reads, removes, looks up
 *   and lists objects through the network the node belongs to. KEY is an object name (its id is SHA-512 of
 *   the name), or with `--id` the id itself in hex. `put` reads FILE or standard input; `get` writes FILE or
 *   standard output.
 *
 * Output: one line per result, or with `--json` JSON (a `listening` line for `serve`; one object for `put`,
 * `rm`, `stat`, `get` (with the data in base64); one line per object for `ls`). Exit codes: 0 success, 1 the
 * operation failed (a group did not store the object, a key was found nowhere, a node was unreachable), 2 bad
 * usage or bad input.
 *
 * @since 0.1.0
 */
import * as Address from "@tessera/protocol/Address"
import * as DnetClient from "@tessera/protocol/DnetClient"
import * as DnetError from "@tessera/protocol/DnetError"
import * as DnetNode from "@tessera/protocol/DnetNode"
import * as DnetRing from "@tessera/protocol/DnetRing"
import * as Transport from "@tessera/protocol/Transport"
import * as ObjectStoreSpec from "@tessera/storage/ObjectStoreSpec"
import * as Argument from "effect/cli/Argument"
import * as Command from "effect/cli/Command"
import * as Flag from "effect/cli/Flag"
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Hex from "effect/encoding/Hex"
import * as FileSystem from "effect/FileSystem"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import * as Stdio from "effect/Stdio"
import * as Stream from "effect/Stream"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { BadInput, fromStorage, OperationFailed, parsed } from "./CliFailure.ts"
import * as Source from "./Source.ts"

const dnetFailure = (error: DnetError.DnetError): BadInput | OperationFailed =>
  error.reason._tag === "BadArgument"
    ? new BadInput({ message: error.message })
    : new OperationFailed({ message: error.message })

const hexOf = (bytes: Uint8Array): string => Hex.encode(bytes)

const jsonFlag = Flag.Boolean("json").pipe(Flag.withDescription("Print JSON"), Flag.withDefault(false))

// --- ring ids --------------------------------------------------------------------------------------------------

/** The file a node with a directory keeps its ring ids in. */
const IDS_FILE = "dnet.ids"

/**
 * The node's ring ids: read from `DIR/dnet.ids` when there is one (concatenated 64-byte ids), else `count` new
 * random ones, written there (through a temporary file and a rename) so a restart keeps them.
 */
const ringIds = (dir: string | undefined, count: number) =>
  Effect.try({
    try: (): ReadonlyArray<Uint8Array> => {
      if (dir === undefined) return DnetRing.randomIds(count)
      const file = Path.join(dir, IDS_FILE)
      if (Fs.existsSync(file)) {
        const bytes = new Uint8Array(Fs.readFileSync(file))
        if (bytes.length === 0 || bytes.length % 64 !== 0) {
          throw new Error(`${file} holds ${bytes.length} bytes, not a whole number of 64-byte ids`)
        }
        return Array.from({ length: bytes.length / 64 }, (_, i) => bytes.slice(64 * i, 64 * i + 64))
      }
      const ids = DnetRing.randomIds(count)
      const temp = `${file}.${process.pid}.tmp`
      Fs.writeFileSync(temp, Buffer.concat(ids))
      Fs.renameSync(temp, file)
      return ids
    },
    catch: (cause) => new BadInput({ message: cause instanceof Error ? cause.message : String(cause) })
  })

// --- serve -----------------------------------------------------------------------------------------------------

const serve = Command.make(
  "serve",
  {
    backend: Flag.String("backend").pipe(Flag.withDescription("The object store: memory, file:DIR or blob:DIR")),
    listen: Flag.String("listen").pipe(
      Flag.withDescription("Where to listen: tcp://IP:PORT (or unix:PATH for a node on its own)"),
      Flag.withDefault("tcp://127.0.0.1:1025")
    ),
    group: Flag.Int("group").pipe(Flag.withDescription("The replica group this node serves"), Flag.withDefault(1)),
    join: Flag.String("join").pipe(
      Flag.withDescription("A node of the network to join (repeat for several; one reachable is enough)"),
      Flag.atLeast(0)
    ),
    ids: Flag.Int("ids").pipe(
      Flag.withDescription("Ring ids to make on first start (a backend directory keeps them in dnet.ids)"),
      Flag.withDefault(DnetNode.DEFAULT_ID_COUNT)
    ),
    authCookie: Flag.String("auth-cookie").pipe(
      Flag.withDescription("A cookie (up to 32 bytes) that peers must present to join"),
      Flag.optional
    ),
    json: Flag.Boolean("json").pipe(Flag.withDescription("Print a JSON line when listening"), Flag.withDefault(false))
  },
  Effect.fn("dnet.serve")(function*(flags) {
    const spec = yield* parsed(ObjectStoreSpec.parse(flags.backend))
    yield* parsed(Address.parse(flags.listen))
    for (const seed of flags.join) yield* parsed(Address.parse(seed))
    if (!(flags.group >= 0 && flags.group <= 0xffff_ffff)) {
      return yield* new BadInput({ message: "--group must be from 0 to 4294967295" })
    }
    if (!(flags.ids >= 1 && flags.ids <= 4096)) return yield* new BadInput({ message: "--ids must be from 1 to 4096" })
    const cookie = Option.map(flags.authCookie, (text) => new TextEncoder().encode(text))
    if (Option.isSome(cookie) && cookie.value.length > 32) {
      return yield* new BadInput({ message: "--auth-cookie is at most 32 bytes" })
    }
    const store = yield* Effect.mapError(ObjectStoreSpec.open(spec), fromStorage)
    const dir = ObjectStoreSpec.directory(spec)
    const ids = yield* ringIds(dir, flags.ids)
    const node = yield* DnetNode.make({
      store,
      listen: flags.listen,
      group: flags.group,
      ids,
      join: flags.join,
      ...(dir !== undefined && { statPath: dir }),
      ...(Option.isSome(cookie) && { authCookie: cookie.value })
    }).pipe(Effect.mapError(dnetFailure))
    const peers = node.routes().length - 1
    yield* flags.json
      ? Console.log(JSON.stringify({
        event: "listening",
        address: node.address,
        group: node.group,
        ids: node.ids.length,
        peers,
        backend: ObjectStoreSpec.format(spec)
      }))
      : Console.log(
        `dnet node on ${node.address}, group ${node.group}, ${node.ids.length} ring id(s), backend ${
          ObjectStoreSpec.format(spec)
        }; ${peers} peer(s)`
      )
    return yield* Effect.never
  }, Effect.scoped)
).pipe(Command.withDescription("Run a storage node until stopped"))

// --- client commands -------------------------------------------------------------------------------------------

const clientFlags = {
  node: Flag.String("node").pipe(
    Flag.withDescription("A node of the network: tcp://IP:PORT or unix:PATH (repeat to have fallbacks)"),
    Flag.atLeast(1)
  ),
  groups: Flag.String("groups").pipe(
    Flag.withDescription("Groups to use, in read order, e.g. 1,2 (default: every group the network has)"),
    Flag.optional
  ),
  id: Flag.Boolean("id").pipe(
    Flag.withDescription("KEY is an object id in hex (128 digits), not a name"),
    Flag.withDefault(false)
  ),
  timeout: Flag.Finite("timeout").pipe(Flag.withDescription("Seconds to wait for each reply"), Flag.withDefault(30)),
  json: jsonFlag
}

const keyArgument = Argument.String("key").pipe(Argument.withDescription("The object's name (or id, with --id)"))

const parseGroups = (text: Option.Option<string>): Effect.Effect<ReadonlyArray<number> | undefined, BadInput> => {
  if (Option.isNone(text)) return Effect.succeed(undefined)
  const parts = text.value.split(",").map((part) => part.trim())
  if (parts.some((part) => !/^\d{1,10}$/.test(part) || Number(part) > 0xffff_ffff)) {
    return Effect.fail(new BadInput({ message: `--groups expects numbers separated by commas, got ${text.value}` }))
  }
  return Effect.succeed([...new Set(parts.map(Number))])
}

const keyOf = (key: string, isId: boolean): Effect.Effect<Uint8Array, BadInput> => {
  if (!isId) return Effect.succeed(DnetRing.idOf(key))
  const decoded = Hex.decode(key)
  return Result.isSuccess(decoded) && decoded.success.length === 64
    ? Effect.succeed(decoded.success)
    : Effect.fail(new BadInput({ message: `--id expects 128 hex digits, got ${JSON.stringify(key)}` }))
}

interface ClientFlags {
  readonly node: ReadonlyArray<string>
  readonly groups: Option.Option<string>
  readonly timeout: number
}

/** A client of the network the first reachable `--node` belongs to. */
const connect = (flags: ClientFlags) =>
  Effect.gen(function*() {
    for (const node of flags.node) yield* parsed(Address.parse(node))
    if (!(flags.timeout > 0)) return yield* new BadInput({ message: "--timeout must be above 0" })
    const groups = yield* parseGroups(flags.groups)
    return yield* DnetClient.make({
      nodes: flags.node,
      groups,
      timeout: Duration.millis(flags.timeout * 1000)
    }).pipe(Effect.mapError(dnetFailure))
  })

const errorOf = (result: Result.Result<unknown, DnetError.DnetError>) =>
  Result.isFailure(result)
    ? {
      error: result.failure.message,
      ...(result.failure.reason._tag === "Status" && { status: result.failure.reason.status })
    }
    : {}

const describeGroups = <A>(outcomes: ReadonlyArray<DnetClient.Outcome<A>>) =>
  outcomes.map((o) => `group ${o.group}${o.node === undefined ? "" : ` (${o.node})`}`).join(", ")

const failedGroups = <A>(outcomes: ReadonlyArray<DnetClient.Outcome<A>>) =>
  outcomes.flatMap((o) => (Result.isFailure(o.result) ? [`group ${o.group}: ${o.result.failure.message}`] : []))

const put = Command.make(
  "put",
  { ...clientFlags, key: keyArgument, file: Source.fileArgument("Data") },
  Effect.fn("dnet.put")(function*(flags) {
    const key = yield* keyOf(flags.key, flags.id)
    const chunks = yield* Stream.runCollect(Source.read(flags.file, Option.none()))
    const data = new Uint8Array(Buffer.concat(chunks))
    const client = yield* connect(flags)
    const outcomes = yield* client.write(key, data)
    if (outcomes.length === 0) return yield* new OperationFailed({ message: "the network has no group to write to" })
    const stored = outcomes.filter((o) => Result.isSuccess(o.result))
    yield* flags.json
      ? Console.log(JSON.stringify({
        key: flags.key,
        id: hexOf(key),
        size: data.length,
        groups: outcomes.map((o) => ({
          group: o.group,
          node: o.node ?? null,
          ok: Result.isSuccess(o.result),
          ...errorOf(o.result)
        }))
      }))
      : stored.length > 0
      ? Console.log(`stored ${flags.key} (${data.length} bytes) in ${describeGroups(stored)}`)
      : Effect.void
    if (stored.length < outcomes.length) {
      return yield* new OperationFailed({
        message: `stored in ${stored.length} of ${outcomes.length} groups; ${failedGroups(outcomes).join("; ")}`
      })
    }
  }, Effect.scoped)
).pipe(Command.withDescription("Store FILE (or standard input) under KEY in every group"))

const get = Command.make(
  "get",
  {
    ...clientFlags,
    offset: Flag.Int("offset").pipe(Flag.withDescription("First byte to read"), Flag.withDefault(0)),
    size: Flag.Int("size").pipe(Flag.withDescription("Bytes to read (0: to the end)"), Flag.withDefault(0)),
    key: keyArgument,
    file: Argument.String("file").pipe(
      Argument.withDescription("Where to write the data, or - for standard output (the default)"),
      Argument.optional
    )
  },
  Effect.fn("dnet.get")(function*(flags) {
    const key = yield* keyOf(flags.key, flags.id)
    if (flags.offset < 0 || flags.size < 0) return yield* new BadInput({ message: "--offset and --size must be >= 0" })
    const client = yield* connect(flags)
    const read = yield* client.read(key, { offset: flags.offset, size: flags.size }).pipe(
      Effect.mapError((error) =>
        new OperationFailed({
          message: DnetError.isNotFound(error) ? `${flags.key}: not found in any group` : error.message
        })
      )
    )
    if (flags.json) {
      return yield* Console.log(JSON.stringify({
        key: flags.key,
        id: hexOf(key),
        group: read.group,
        node: read.node,
        size: read.data.length,
        data_base64: Buffer.from(read.data).toString("base64")
      }))
    }
    if (Option.isSome(flags.file) && flags.file.value !== "-") {
      const path = flags.file.value
      const fs = yield* FileSystem.FileSystem
      return yield* fs.writeFile(path, read.data).pipe(
        Effect.mapError((error) => new OperationFailed({ message: `cannot write ${path}: ${Source.describe(error)}` }))
      )
    }
    const stdio = yield* Stdio.Stdio
    yield* Stream.make(read.data).pipe(Stream.run(stdio.stdout({ endOnDone: false })))
  }, Effect.scoped)
).pipe(Command.withDescription("Read KEY from the first group that has it, into FILE or standard output"))

const rm = Command.make(
  "rm",
  { ...clientFlags, key: keyArgument },
  Effect.fn("dnet.rm")(function*(flags) {
    const key = yield* keyOf(flags.key, flags.id)
    const client = yield* connect(flags)
    const outcomes = yield* client.remove(key)
    const removed = outcomes.filter((o) => Result.isSuccess(o.result))
    const broken = outcomes.filter((o) => Result.isFailure(o.result) && !DnetError.isNotFound(o.result.failure))
    yield* flags.json
      ? Console.log(JSON.stringify({
        key: flags.key,
        id: hexOf(key),
        groups: outcomes.map((o) => ({
          group: o.group,
          node: o.node ?? null,
          removed: Result.isSuccess(o.result),
          ...errorOf(o.result)
        }))
      }))
      : removed.length > 0
      ? Console.log(`removed ${flags.key} from ${describeGroups(removed)}`)
      : Effect.void
    if (broken.length > 0) return yield* new OperationFailed({ message: failedGroups(broken).join("; ") })
    if (removed.length === 0) return yield* new OperationFailed({ message: `${flags.key}: not found in any group` })
  }, Effect.scoped)
).pipe(Command.withDescription("Remove KEY from every group"))

const stat = Command.make(
  "stat",
  { ...clientFlags, key: keyArgument },
  Effect.fn("dnet.stat")(function*(flags) {
    const key = yield* keyOf(flags.key, flags.id)
    const client = yield* connect(flags)
    const outcomes = yield* client.lookup(key)
    const found = outcomes.filter((o) => Result.isSuccess(o.result))
    if (flags.json) {
      yield* Console.log(JSON.stringify({
        key: flags.key,
        id: hexOf(key),
        groups: outcomes.map((o) =>
          Result.isSuccess(o.result)
            ? {
              group: o.group,
              node: o.node,
              size: o.result.success.size,
              modified: new Date(o.result.success.modified).toISOString()
            }
            : { group: o.group, node: o.node ?? null, ...errorOf(o.result) }
        )
      }))
    } else {
      for (const o of outcomes) {
        yield* Console.log(
          Result.isSuccess(o.result)
            ? `group ${o.group} ${o.node}: ${o.result.success.size} bytes, modified ${
              new Date(o.result.success.modified).toISOString()
            }`
            : `group ${o.group}${o.node === undefined ? "" : ` ${o.node}`}: ${o.result.failure.message}`
        )
      }
    }
    if (found.length === 0) return yield* new OperationFailed({ message: `${flags.key}: not found in any group` })
  }, Effect.scoped)
).pipe(Command.withDescription("Show size and modification time of KEY in every group"))

const ls = Command.make(
  "ls",
  { ...clientFlags },
  Effect.fn("dnet.ls")(function*(flags) {
    const client = yield* connect(flags)
    const listings = yield* client.list()
    for (const listing of listings) {
      for (const object of listing.objects) {
        yield* flags.json
          ? Console.log(
            JSON.stringify({ group: listing.group, id: hexOf(object.key), size: object.size, node: object.node })
          )
          : Console.log(`${hexOf(object.key)} ${object.size} group ${listing.group} ${object.node}`)
      }
    }
    const failures = listings.flatMap((listing) => listing.failures.map((f) => `group ${listing.group}: ${f.message}`))
    if (failures.length > 0) return yield* new OperationFailed({ message: failures.join("; ") })
  }, Effect.scoped)
).pipe(Command.withDescription("List the objects (ids and sizes) every node of each group holds"))

/**
 * The `dnet` command and its subcommands; they need a `Transport`.
 *
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make("dnet").pipe(
  Command.withDescription("Elliptics-compatible storage nodes (dnet protocol) and a client for them"),
  Command.withSubcommands([serve, put, get, rm, stat, ls]),
  Command.provide(Transport.Transport.layer)
)
