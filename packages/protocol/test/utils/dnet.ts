// Helpers for the dnet tests: a raw dnet connection that sends packets (or any bytes) and reads replies packet by
// packet, keeping each reply's exact bytes; request builders; the backends to run against.
import { CmdFlags, Command, ID_SIZE } from "@tessera/codec/DnetConstants"
import * as DnetPacket from "@tessera/codec/DnetPacket"
import { IoAttr } from "@tessera/codec/DnetStructs"
import { ObjectStoreSpec } from "@tessera/storage"
import { Effect, Pull, Result } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Transport } from "../../src/index.ts"

/** A fresh temp directory, removed with the scope. */
export const tempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "tessera-dnet-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

/** Opens a store of each kind, in a fresh temp dir when it needs one. */
export const openStore = (kind: "memory" | "file" | "blob") =>
  Effect.gen(function*() {
    const spec: ObjectStoreSpec.ObjectStoreSpec = kind === "memory"
      ? { _tag: "Memory" }
      : kind === "file"
      ? { _tag: "File", dir: yield* tempDir }
      : { _tag: "Blob", dir: yield* tempDir }
    return yield* Effect.orDie(ObjectStoreSpec.open(spec))
  })

export interface Reply {
  readonly bytes: Uint8Array
  readonly packet: DnetPacket.Packet
}

/** A dnet connection without any client logic: what goes out is exactly what the test builds. */
export const raw = (address: string) =>
  Effect.gen(function*() {
    const connection = yield* Transport.dial(address)
    const parser = DnetPacket.makeParser()
    const queue: Array<Reply> = []
    let ended = false
    const pull = Pull.catchDone(connection.read, () => Effect.succeed(undefined))
    /** The next packet from the node; fails when the connection ends first. */
    const next: Effect.Effect<Reply, Error> = Effect.gen(function*() {
      while (queue.length === 0) {
        if (ended) return yield* Effect.fail(new Error("the node closed the connection"))
        const batch = yield* Effect.orElseSucceed(pull, () => undefined)
        if (batch === undefined) {
          ended = true
          continue
        }
        for (const chunk of batch) {
          const parsed = parser.push(chunk)
          if (Result.isFailure(parsed)) return yield* Effect.fail(new Error(parsed.failure.message))
          for (const item of parsed.success) queue.push({ bytes: item.bytes.slice(), packet: item.packet })
        }
      }
      return queue.shift()!
    }).pipe(
      Effect.timeoutOrElse({ duration: "10 seconds", orElse: () => Effect.fail(new Error("no reply in 10 s")) })
    )
    const sendBytes = (bytes: Uint8Array) => Effect.orDie(connection.write([bytes]))
    const send = (packet: DnetPacket.Packet) => sendBytes(DnetPacket.encodePacket(packet))
    /** Replies up to and including the first without MORE. */
    const finalReplies = Effect.gen(function*() {
      const replies: Array<Reply> = []
      while (true) {
        const reply = yield* next
        replies.push(reply)
        if ((reply.packet.flags & CmdFlags.MORE) === 0) return replies
      }
    })
    const exchange = (packet: DnetPacket.Packet) => Effect.andThen(send(packet), finalReplies)
    /** Whether the node has closed the connection (waits up to `millis`). */
    const isClosed = (millis = 5000) =>
      Effect.gen(function*() {
        while (true) {
          if (ended && queue.length === 0) return true
          yield* Effect.orElseSucceed(Effect.asVoid(next), () => undefined)
        }
      }).pipe(Effect.timeoutOrElse({ duration: millis, orElse: () => Effect.succeed(false) }))
    return { connection, send, sendBytes, next, exchange, finalReplies, isClosed }
  })

/** A key: the byte `n` repeated (so keys sort by `n`). */
export const keyOf = (n: number): Uint8Array => new Uint8Array(ID_SIZE).fill(n)

export const io = (key: Uint8Array, fields: Partial<IoAttr> = {}): IoAttr => ({
  parent: key,
  id: key,
  start: 0,
  num: 0,
  type: 0,
  flags: 0,
  offset: 0,
  size: 0,
  ...fields
})

let trans = 100n

/** A request with one attribute and a fresh transaction number. */
export const request = (
  cmd: number,
  fields: {
    readonly key?: Uint8Array
    readonly group?: number
    readonly type?: number
    readonly flags?: number
    readonly attrFlags?: number
    readonly io?: IoAttr
    readonly data?: Uint8Array
  } = {}
): DnetPacket.Packet => ({
  id: { id: fields.key ?? keyOf(0), groupId: fields.group ?? 1, type: fields.type ?? 0 },
  flags: fields.flags ?? CmdFlags.NEED_ACK,
  status: 0,
  trans: trans++,
  attrs: [{
    cmd,
    flags: fields.attrFlags ?? 0,
    ...(fields.io && { io: fields.io }),
    data: fields.data ?? new Uint8Array(0)
  }]
})

export const writeRequest = (key: Uint8Array, data: Uint8Array, fields: Partial<IoAttr> = {}, flags?: number) =>
  request(Command.WRITE, {
    key,
    io: io(key, { size: data.length, ...fields }),
    data,
    ...(flags !== undefined && { flags })
  })

export const readRequest = (key: Uint8Array, fields: Partial<IoAttr> = {}, flags?: number) =>
  request(Command.READ, { key, io: io(key, fields), ...(flags !== undefined && { flags }) })

/** A BULK_READ under `key`'s id of the objects (and ranges) `wanted` names, one `dnet_io_attr` each. */
export const bulkReadRequest = (key: Uint8Array, wanted: ReadonlyArray<IoAttr>) =>
  request(Command.BULK_READ, {
    key,
    io: io(key, { size: wanted.length * IoAttr.size }),
    data: new Uint8Array(Buffer.concat(wanted.map((one) => IoAttr.encode(one))))
  })

export const bytesOf = (text: string): Uint8Array => new TextEncoder().encode(text)
export const textOf = (bytes: Uint8Array): string => new TextDecoder().decode(bytes)
