import { assert, describe, it } from "@effect/vitest"
import * as NbdConstants from "@tessera/codec/NbdConstants"
import * as NbdHandshake from "@tessera/codec/NbdHandshake"
import * as NbdStream from "@tessera/codec/NbdStream"
import * as NbdTransmission from "@tessera/codec/NbdTransmission"
import * as Memory from "@tessera/storage/Memory"
import { type BlockDevice, wrap } from "@tessera/storage/Provider"
import * as SparseFile from "@tessera/storage/SparseFile"
import { Effect, type Scope } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Address from "../src/Address.ts"
import { NbdReader } from "../src/internal/nbdReader.ts"
import * as NbdExport from "../src/NbdExport.ts"
import * as NbdServer from "../src/NbdServer.ts"
import * as Transport from "../src/Transport.ts"
import { nbdUri, run } from "./utils/nbdPeers.ts"
import { pseudoRandom, tempDir } from "./utils/transport.ts"

const KiB = 1024
const MiB = 1024 * KiB
const C = NbdConstants.Command
const E = NbdConstants.Errno

const live = <A, E>(effect: Effect.Effect<A, E, Transport.Transport | Scope.Scope>) =>
  effect.pipe(Effect.scoped, Effect.timeout("60 seconds"), Effect.provide(Transport.Transport.layer))

const filled = Effect.fnUntraced(function*(size: number, seed: number) {
  const device = yield* Memory.make(size)
  yield* device.writeAt(pseudoRandom(size, seed), 0)
  return device
})

const bytesOf = Effect.fnUntraced(function*(device: BlockDevice, offset = 0, length = device.size) {
  const out = new Uint8Array(length)
  yield* device.readAt(out, offset)
  return out
})

const serve = (exports: ReadonlyArray<NbdExport.NbdExport>, address = "tcp://127.0.0.1:0") =>
  Effect.map(NbdServer.make(address, { exports }), (server) => Address.format(server.address))

/** A raw client: negotiates with GO, then sends hand-made requests and reads the replies. */
const rawSession = Effect.fnUntraced(function*(address: string, exportName: string, structured: boolean) {
  const connection = yield* Transport.dial(address)
  const lengths = new Map<bigint, number>()
  const parser = NbdStream.makeClientParser({ readLength: (cookie) => lengths.get(cookie) })
  const reader = new NbdReader(connection, parser)
  const next = Effect.flatMap(
    reader.next,
    (m) => m === undefined ? Effect.fail(new Error("closed")) : Effect.succeed(m)
  )
  const greeting = yield* next
  assert.strictEqual(greeting._tag, "Greeting")
  yield* connection.write([NbdHandshake.encodeClientFlags(NbdConstants.ClientFlags.FIXED_NEWSTYLE)])
  if (structured) {
    yield* connection.write([NbdHandshake.encodeOptionRequest({ _tag: "StructuredReply" })])
    assert.strictEqual((yield* next)._tag, "Ack")
    yield* connection.write([
      NbdHandshake.encodeOptionRequest({ _tag: "SetMetaContext", name: exportName, queries: ["base:allocation"] })
    ])
    assert.strictEqual((yield* next)._tag, "MetaContext")
    assert.strictEqual((yield* next)._tag, "Ack")
  }
  yield* connection.write([NbdHandshake.encodeOptionRequest({ _tag: "Go", name: exportName, requests: [] })])
  while ((yield* next)._tag !== "Ack") { /* info replies */ }
  let cookie = 0n
  const request = (type: number, offset: number, length: number, flags = 0, data = new Uint8Array(0)) =>
    Effect.gen(function*() {
      const id = ++cookie
      lengths.set(id, type === C.READ && !structured ? length : 0)
      yield* connection.write([NbdTransmission.encodeRequestHeader({ flags, type, cookie: id, offset, length }), data])
      return id
    })
  /** The error value of the next reply (a simple reply, or the last chunk of a structured one). */
  const errorOf = Effect.gen(function*() {
    while (true) {
      const m = yield* next
      if (m._tag === "SimpleReply") return m.error
      if (m._tag === "Error" || m._tag === "ErrorOffset") return m.error
      if ("flags" in m && NbdTransmission.isDone(m)) return 0
    }
  })
  return { connection, reader, next, request, errorOf }
})

describe("NbdServer", () => {
  it.live("nbdinfo lists the exports with their names, sizes and descriptions, and maps a sparse device", () =>
    live(Effect.gen(function*() {
      const dir = yield* tempDir
      const sparse = yield* SparseFile.make({ path: path.join(dir, "s.sparse"), size: 16 * MiB, blockSize: 4096 })
      yield* sparse.writeAt(new Uint8Array(8192).fill(7), MiB)
      yield* sparse.writeAt(new Uint8Array(100).fill(9), 4 * MiB + 10)
      const address = yield* serve([
        NbdExport.make("disk", yield* Memory.make(32 * MiB), { description: "a memory disk" }),
        NbdExport.make("sparse", sparse),
        NbdExport.make("ro", yield* Memory.make(MiB), { readOnly: true })
      ])
      const listed = JSON.parse((yield* run("nbdinfo", ["--json", "--list", nbdUri(address, "")])).stdout)
      const exports = listed.exports as Array<Record<string, unknown>>
      assert.deepStrictEqual(exports.map((e) => [e["export-name"], e["export-size"]]), [
        ["disk", 32 * MiB],
        ["sparse", 16 * MiB],
        ["ro", MiB]
      ])
      assert.strictEqual(exports[0]!["description"], "a memory disk")
      assert.strictEqual(exports[2]!["is_read_only"], true)
      assert.strictEqual(exports[0]!["block_size_preferred"], 4096)
      const map = JSON.parse((yield* run("nbdinfo", ["--json", "--map", nbdUri(address, "sparse")])).stdout) as Array<
        { offset: number; length: number; type: number }
      >
      assert.deepStrictEqual(map.map((e) => [e.offset, e.length, e.type]), [
        [0, MiB, 3],
        [MiB, 8192, 0],
        [MiB + 8192, 3 * MiB - 8192, 3],
        [4 * MiB, 4096, 0],
        [4 * MiB + 4096, 12 * MiB - 4096, 3]
      ])
      // A device without allocation information is all data.
      const all = JSON.parse((yield* run("nbdinfo", ["--json", "--map", nbdUri(address, "disk")])).stdout)
      assert.deepStrictEqual(all.map((e: { type: number; length: number }) => [e.length, e.type]), [[32 * MiB, 0]])
    })))

  it.live("nbdcopy copies an export to a file and a file to a writable export, byte for byte (TCP and Unix)", () =>
    live(Effect.gen(function*() {
      const dir = yield* tempDir
      const disk = yield* filled(24 * MiB + 512, 1)
      const target = yield* Memory.make(24 * MiB + 512)
      const tcp = yield* serve([NbdExport.make("disk", disk), NbdExport.make("target", target)])
      const unix = yield* serve(
        [NbdExport.make("disk", disk), NbdExport.make("target", target)],
        `unix:${path.join(dir, "s.sock")}`
      )
      const out = path.join(dir, "out.img")
      yield* run("nbdcopy", [nbdUri(tcp, "disk"), out])
      assert.isTrue(Buffer.compare(fs.readFileSync(out), yield* bytesOf(disk)) === 0)
      const image = path.join(dir, "in.img")
      fs.writeFileSync(image, pseudoRandom(24 * MiB + 512, 2))
      yield* run("nbdcopy", [image, nbdUri(unix, "target")])
      assert.isTrue(Buffer.compare(fs.readFileSync(image), yield* bytesOf(target)) === 0)
    })))

  it.live("qemu-img compares and converts against the export; qemu-io write/read patterns land on the device", () =>
    live(Effect.gen(function*() {
      const dir = yield* tempDir
      const disk = yield* filled(16 * MiB, 3)
      const address = yield* serve([NbdExport.make("disk", disk)])
      const uri = nbdUri(address, "disk")
      const image = path.join(dir, "same.img")
      fs.writeFileSync(image, yield* bytesOf(disk))
      yield* run("qemu-img", ["compare", "-f", "raw", "-F", "raw", image, uri])
      const qcow = path.join(dir, "copy.qcow2")
      yield* run("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", uri, qcow])
      yield* run("qemu-img", ["compare", "-F", "raw", qcow, image])
      // Random patterns, different sizes and alignments, then verified by qemu-io and on the device itself.
      const writes: Array<readonly [number, number, number]> = []
      for (let i = 0; i < 12; i++) {
        const offset = (i * 1_234_567) % (15 * MiB)
        const length = 512 + ((i * 77_777) % (256 * KiB))
        writes.push([offset - (offset % 512), length - (length % 512), 0x10 + i])
      }
      const original = yield* bytesOf(disk)
      const commands = writes.flatMap(([o, l, p]) => ["-c", `write -P ${p} ${o} ${l}`])
      commands.push("-c", "write -z 8M 1M", "-c", "discard 12M 64k", "-c", "flush")
      yield* run("qemu-io", ["-f", "raw", ...commands, uri])
      const reads = writes.slice(-3).flatMap(([o, l, p]) => ["-c", `read -P ${p} ${o} ${l}`])
      const verified = yield* run("qemu-io", ["-f", "raw", "-r", ...reads, "-c", "read -P 0 8M 1M", uri])
      assert.notInclude(verified.stdout, "Pattern verification failed")
      const expected = original
      for (const [o, l, p] of writes) expected.fill(p, o, o + l)
      expected.fill(0, 8 * MiB, 9 * MiB)
      const final = yield* bytesOf(disk)
      // The discarded range keeps whatever the device holds (TRIM is advisory), so compare around it.
      expected.set(final.subarray(12 * MiB, 12 * MiB + 64 * KiB), 12 * MiB)
      assert.isTrue(Buffer.compare(expected, final) === 0)
      assert.isFalse(Buffer.compare(final, yield* bytesOf(yield* filled(16 * MiB, 3))) === 0, "the writes landed")
    })))

  it.live("out-of-range, malformed and read-only requests get the protocol's errors and write nothing", () =>
    live(Effect.gen(function*() {
      const disk = yield* filled(MiB, 4)
      const before = yield* bytesOf(disk)
      const address = yield* serve([NbdExport.make("rw", disk), NbdExport.make("ro", disk, { readOnly: true })])
      for (const structured of [false, true]) {
        const rw = yield* rawSession(address, "rw", structured)
        const data = new Uint8Array(4096).fill(0xee)
        yield* rw.request(C.WRITE, MiB - 1024, 4096, 0, data)
        assert.strictEqual(yield* rw.errorOf, E.ENOSPC, "write past the end")
        yield* rw.request(C.WRITE_ZEROES, MiB - 10, 20)
        assert.strictEqual(yield* rw.errorOf, E.ENOSPC, "zeroes past the end")
        yield* rw.request(C.TRIM, MiB, 1)
        assert.strictEqual(yield* rw.errorOf, E.ENOSPC, "trim past the end")
        yield* rw.request(C.READ, MiB - 10, 20)
        assert.strictEqual(yield* rw.errorOf, E.EINVAL, "read past the end")
        yield* rw.request(C.CACHE, 2 * MiB, 20)
        assert.strictEqual(yield* rw.errorOf, E.EINVAL, "cache past the end")
        yield* rw.request(C.WRITE, 0, 4096, NbdConstants.CommandFlags.NO_HOLE, data)
        assert.strictEqual(yield* rw.errorOf, E.EINVAL, "a flag the command does not take")
        yield* rw.request(C.WRITE_ZEROES, 0, 4096, NbdConstants.CommandFlags.FAST_ZERO)
        assert.strictEqual(yield* rw.errorOf, E.EINVAL, "fast zero was not offered")
        yield* rw.request(42, 0, 0)
        assert.strictEqual(yield* rw.errorOf, E.EINVAL, "unknown command")
        yield* rw.request(C.BLOCK_STATUS, 0, 0)
        assert.strictEqual(yield* rw.errorOf, E.EINVAL, "block status of length 0 (or without a context)")
        // The stream is still in step: a good read after all that returns the right bytes.
        yield* rw.request(C.READ, 100, 50)
        const reply = yield* rw.next
        const got = reply._tag === "SimpleReply" ? reply.data : reply._tag === "OffsetData" ? reply.data : undefined
        assert.deepStrictEqual(got, before.subarray(100, 150))
        const ro = yield* rawSession(address, "ro", structured)
        yield* ro.request(C.WRITE, 0, 4096, 0, data)
        assert.strictEqual(yield* ro.errorOf, E.EPERM)
        yield* ro.request(C.WRITE_ZEROES, 0, 4096)
        assert.strictEqual(yield* ro.errorOf, E.EPERM)
        yield* ro.request(C.TRIM, 0, 4096)
        assert.strictEqual(yield* ro.errorOf, E.EPERM)
        yield* rw.request(C.DISC, 0, 0)
        assert.isUndefined(yield* rw.reader.next, "DISC closes the connection")
      }
      assert.isTrue(Buffer.compare(before, yield* bytesOf(disk)) === 0, "nothing was written")
    })))

  it.live("a client that breaks the protocol is disconnected and nothing of its request is written", () =>
    live(Effect.gen(function*() {
      const disk = yield* filled(MiB, 5)
      const before = yield* bytesOf(disk)
      const address = yield* serve([NbdExport.make("rw", disk)])
      // A write header with a bad magic, followed by its "data".
      const bad = yield* rawSession(address, "rw", false)
      const header = NbdTransmission.encodeRequestHeader({ flags: 0, type: C.WRITE, cookie: 1n, offset: 0, length: 16 })
      header[0] = 0x99
      yield* bad.connection.write([header, new Uint8Array(16).fill(1)])
      const ended = yield* Effect.flip(bad.reader.next).pipe(Effect.orElseSucceed(() => undefined))
      assert.isTrue(ended === undefined || ended._tag === "NbdError")
      // A write over the 32 MiB cap: refused from its header, connection closed.
      const big = yield* rawSession(address, "rw", false)
      yield* big.connection.write([
        NbdTransmission.encodeRequestHeader({ flags: 0, type: C.WRITE, cookie: 2n, offset: 0, length: 64 * MiB }),
        new Uint8Array(4096).fill(2)
      ])
      assert.isUndefined(yield* Effect.orElseSucceed(big.reader.next, () => undefined))
      // Unknown client flags close the connection during negotiation.
      const connection = yield* Transport.dial(address)
      yield* connection.write([NbdHandshake.encodeClientFlags(0x80)])
      const reader = new NbdReader(connection, NbdStream.makeClientParser({ readLength: () => 0 }))
      assert.strictEqual((yield* reader.next)?._tag, "Greeting")
      assert.isUndefined(yield* Effect.orElseSucceed(reader.next, () => undefined))
      assert.isTrue(Buffer.compare(before, yield* bytesOf(disk)) === 0)
    })))

  it.live("answers fast requests while a slow one is in flight, and serves several connections at once", () =>
    live(Effect.gen(function*() {
      const disk = yield* filled(4 * MiB, 6)
      // Reads of the first block take 1.5 s; everything else is immediate.
      const slow = wrap(disk, "slow", {
        readAt: (buffer, offset) =>
          offset < 4096
            ? Effect.andThen(Effect.sleep("1500 millis"), disk.readAt(buffer, offset))
            : disk.readAt(buffer, offset)
      })
      const address = yield* serve([NbdExport.make("slow", slow)])
      const session = yield* rawSession(address, "slow", false)
      const first = yield* session.request(C.READ, 0, 4096)
      const order: Array<bigint> = []
      for (let i = 1; i <= 20; i++) yield* session.request(C.READ, i * 65536, 65536)
      while (order.length < 21) {
        const m = yield* session.next
        if (m._tag === "SimpleReply") order.push(m.cookie)
      }
      assert.strictEqual(order.at(-1), first, "the slow read is answered last")
      // Four connections copying at once (nbdcopy opens several when CAN_MULTI_CONN is offered).
      const dir = yield* tempDir
      const copies = [0, 1, 2, 3].map((i) => path.join(dir, `copy${i}.img`))
      const fast = yield* serve([NbdExport.make("d", disk)])
      yield* Effect.forEach(copies, (file) => run("nbdcopy", ["--connections=4", nbdUri(fast, "d"), file]), {
        concurrency: "unbounded"
      })
      const expected = yield* bytesOf(disk)
      for (const file of copies) assert.isTrue(Buffer.compare(fs.readFileSync(file), expected) === 0)
    })))

  it.live("a client that does not read its replies stops the server reading the device (bounded backlog)", () =>
    live(Effect.gen(function*() {
      const disk = yield* filled(64 * MiB, 7)
      let reads = 0
      const counted = wrap(disk, "counted", {
        readAt: (buffer, offset) => Effect.andThen(Effect.sync(() => reads++), disk.readAt(buffer, offset))
      })
      const address = yield* serve([NbdExport.make("d", counted)])
      const session = yield* rawSession(address, "d", false)
      for (let i = 0; i < 60; i++) yield* session.request(C.READ, i * MiB, MiB)
      yield* Effect.sleep("1500 millis")
      // The socket buffers hold a few MiB of replies, the server's backlog 8 MiB more: far from all 60.
      assert.isBelow(reads, 40, `${reads} reads while the client read nothing`)
      let answered = 0
      while (answered < 60) {
        const m = yield* session.next
        if (m._tag === "SimpleReply") {
          assert.strictEqual(m.error, 0)
          answered++
        }
      }
      assert.strictEqual(reads, 60)
    })))

  it.live("negotiation: LIST, INFO with block sizes, unknown export and option refused, ABORT", () =>
    live(Effect.gen(function*() {
      const address = yield* serve([NbdExport.make("a", yield* Memory.make(MiB), { description: "first" })])
      const connection = yield* Transport.dial(address)
      const reader = new NbdReader(connection, NbdStream.makeClientParser({ readLength: () => 0 }))
      const next = Effect.map(reader.next, (m) => m!)
      assert.strictEqual((yield* next)._tag, "Greeting")
      yield* connection.write([NbdHandshake.encodeClientFlags(NbdConstants.ClientFlags.FIXED_NEWSTYLE)])
      yield* connection.write([NbdHandshake.encodeOptionRequest({ _tag: "List" })])
      const server = yield* next
      assert.deepInclude(server, { _tag: "Server", name: "a", details: "first" })
      assert.strictEqual((yield* next)._tag, "Ack")
      yield* connection.write([
        NbdHandshake.encodeOptionRequest({ _tag: "Info", name: "a", requests: [NbdConstants.Info.NAME] })
      ])
      const infos: Array<string> = []
      for (let m = yield* next; m._tag !== "Ack"; m = yield* next) {
        if (m._tag === "ExportInfo") infos.push(m.info._tag)
        if (m._tag === "ExportInfo" && m.info._tag === "BlockSize") {
          assert.deepInclude(m.info, { minimum: 1, preferred: 4096, maximum: 32 * MiB })
        }
      }
      assert.deepStrictEqual(infos, ["Export", "BlockSize", "Name"])
      yield* connection.write([NbdHandshake.encodeOptionRequest({ _tag: "Go", name: "nope", requests: [] })])
      assert.deepInclude(yield* next, { _tag: "OptionError", type: NbdConstants.Reply.ERR_UNKNOWN })
      yield* connection.write([
        NbdHandshake.encodeOptionRequest({ _tag: "UnknownOption", option: 77, data: new Uint8Array(3) })
      ])
      assert.deepInclude(yield* next, { _tag: "OptionError", type: NbdConstants.Reply.ERR_UNSUP })
      yield* connection.write([NbdHandshake.encodeOptionRequest({ _tag: "StartTls" })])
      assert.deepInclude(yield* next, { _tag: "OptionError", type: NbdConstants.Reply.ERR_UNSUP })
      yield* connection.write([
        NbdHandshake.encodeOptionRequest({ _tag: "SetMetaContext", name: "a", queries: ["base:allocation"] })
      ])
      assert.deepInclude(yield* next, { _tag: "OptionError", type: NbdConstants.Reply.ERR_INVALID })
      yield* connection.write([NbdHandshake.encodeOptionRequest({ _tag: "Abort" })])
      assert.strictEqual((yield* next)._tag, "Ack")
      assert.isUndefined(yield* reader.next)
    })))
})
