import { assert, describe, it } from "@effect/vitest"
import * as NbdConstants from "@tessera/codec/NbdConstants"
import * as NbdHandshake from "@tessera/codec/NbdHandshake"
import * as NbdStream from "@tessera/codec/NbdStream"
import * as NbdTransmission from "@tessera/codec/NbdTransmission"
import * as Device from "@tessera/storage/Device"
import * as Memory from "@tessera/storage/Memory"
import { Effect, Exit, Scope } from "effect"
import * as fc from "fast-check"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Address from "../src/Address.ts"
import { NbdReader } from "../src/internal/nbdReader.ts"
import { type InFlight, type Reply, ReplyReader } from "../src/internal/nbdReplies.ts"
import * as NbdClient from "../src/NbdClient.ts"
import * as NbdExport from "../src/NbdExport.ts"
import * as NbdServer from "../src/NbdServer.ts"
import * as Transport from "../src/Transport.ts"
import { nbdkit, run } from "./utils/nbdPeers.ts"
import { pseudoRandom, tempDir } from "./utils/transport.ts"

const KiB = 1024
const MiB = 1024 * KiB

const live = <A, E>(effect: Effect.Effect<A, E, Transport.Transport | Scope.Scope>) =>
  effect.pipe(Effect.scoped, Effect.timeout("60 seconds"), Effect.provide(Transport.Transport.layer))

const read = Effect.fnUntraced(
  function*(device: { readonly readAt: NbdClient.NbdClient["readAt"] }, offset: number, length: number) {
    const out = new Uint8Array(length)
    assert.strictEqual(yield* device.readAt(out, offset), length)
    return out
  }
)

const ignore = () => undefined

describe("NbdClient", () => {
  it.live("reads and writes nbdkit memory with many requests in flight, flushes, and sees its holes", () =>
    live(Effect.gen(function*() {
      const dir = yield* tempDir
      const socket = yield* nbdkit(dir, ["memory", "32M"])
      const client = yield* NbdClient.connect(`unix:${socket}`, { requestSize: 256 * KiB })
      assert.strictEqual(client.size, 32 * MiB)
      assert.isFalse(client.readOnly)
      assert.isTrue(client.structured)
      const data = pseudoRandom(5 * MiB + 123, 1)
      assert.strictEqual(yield* client.writeAt(data, 3 * MiB + 7), data.length)
      yield* client.flush
      assert.deepStrictEqual(yield* read(client, 3 * MiB + 7, data.length), data)
      // Past the end: cut short, as every device.
      assert.strictEqual(yield* client.writeAt(new Uint8Array(100).fill(1), 32 * MiB - 10), 10)
      // nbdkit memory is sparse: what was never written is a hole.
      const runs = yield* client.allocation!(0, 32 * MiB)
      assert.isFalse(runs[0]!.allocated)
      assert.isTrue(runs.some((r) => r.allocated))
      assert.strictEqual(runs.reduce((sum, r) => sum + r.length, 0), 32 * MiB)
      // Checked against the real peer: nbdcopy reads back what the client wrote.
      const out = path.join(dir, "out.img")
      yield* run("nbdcopy", [`nbd+unix:///?socket=${socket}`, out])
      assert.deepStrictEqual(
        new Uint8Array(fs.readFileSync(out).subarray(3 * MiB + 7, 3 * MiB + 7 + data.length)),
        data
      )
    })))

  it.live("works with simple replies only (nbdkit --no-sr, without NO_ZEROES): no allocation then", () =>
    live(Effect.gen(function*() {
      const dir = yield* tempDir
      const socket = yield* nbdkit(dir, ["memory", "4M"], ["--no-sr", "--mask-handshake=1"])
      const client = yield* NbdClient.connect(`unix:${socket}`)
      assert.isFalse(client.structured)
      assert.isUndefined(client.allocation)
      const data = pseudoRandom(3 * MiB + 1, 9)
      yield* client.writeAt(data, 12345)
      assert.deepStrictEqual(yield* read(client, 12345, data.length), data)
    })))

  it.live("falls back to NBD_OPT_EXPORT_NAME when the server does not know NBD_OPT_GO", () =>
    live(Effect.gen(function*() {
      // An old-fashioned server: every option but EXPORT_NAME is refused; then READs of a fixed pattern.
      const content = pseudoRandom(64 * KiB, 10)
      const listener = yield* Transport.listen("tcp://127.0.0.1:0")
      yield* Effect.forkScoped(
        Effect.gen(function*() {
          const connection = yield* listener.accept
          const parser = NbdStream.makeServerParser()
          const reader = new NbdReader(connection, parser)
          const HF = NbdConstants.HandshakeFlags
          yield* connection.write([NbdHandshake.encodeGreeting(HF.FIXED_NEWSTYLE | HF.NO_ZEROES)])
          let noZeroes = false
          while (true) {
            const m = yield* reader.next
            if (m === undefined) return
            if (m._tag === "ClientFlags") noZeroes = (m.flags & NbdConstants.ClientFlags.NO_ZEROES) !== 0
            else if (m._tag === "Option" && m.option === NbdConstants.Option.EXPORT_NAME) {
              const flags = NbdConstants.TransmissionFlags.HAS_FLAGS | NbdConstants.TransmissionFlags.READ_ONLY
              yield* connection.write([
                NbdHandshake.encodeExportNameReply({ size: content.length, transmissionFlags: flags }, noZeroes)
              ])
            } else if (m._tag === "Option") {
              yield* connection.write([
                NbdHandshake.encodeOptionReply({
                  _tag: "OptionError",
                  option: m.option,
                  type: NbdConstants.Reply.ERR_UNSUP,
                  message: ""
                })
              ])
              // The parser holds what follows a GO until the server says which phase comes next.
              if (m.option === NbdConstants.Option.GO) assert.isUndefined(reader.prepend(parser.resume("Options")))
            } else if (m._tag === "Request" && m.type === NbdConstants.Command.READ) {
              yield* connection.write([
                NbdTransmission.encodeSimpleReply({
                  error: 0,
                  cookie: m.cookie,
                  data: content.subarray(m.offset, m.offset + m.length)
                })
              ])
            } else return
          }
        }).pipe(Effect.ignore)
      )
      const client = yield* NbdClient.connect(Address.format(listener.address))
      assert.isTrue(client.readOnly)
      assert.isFalse(client.structured)
      assert.deepStrictEqual(yield* read(client, 0, content.length), content)
    })))

  it.live("reads an nbdkit file export and refuses to write a read-only one", () =>
    live(Effect.gen(function*() {
      const dir = yield* tempDir
      const file = path.join(dir, "disk.img")
      const bytes = pseudoRandom(3 * MiB + 5, 2)
      fs.writeFileSync(file, bytes)
      const socket = yield* nbdkit(dir, ["file", file], ["-r"])
      const client = yield* NbdClient.connect(`unix:${socket}`)
      assert.isTrue(client.readOnly)
      assert.strictEqual(client.size, bytes.length)
      assert.deepStrictEqual(yield* read(client, 0, bytes.length), bytes)
      const refused = yield* Effect.flip(client.writeAt(new Uint8Array(10), 0))
      assert.strictEqual(refused.reason._tag, "Unsupported")
    })))

  it.live("aligns requests to the server's minimum block size (read around, merge and write back)", () =>
    live(Effect.gen(function*() {
      const disk = yield* Memory.make(MiB)
      yield* disk.writeAt(pseudoRandom(MiB, 3), 0)
      const nbdExport: NbdExport.NbdExport = {
        ...NbdExport.make("d", disk),
        blockSizes: { minimum: 512, preferred: 4096, maximum: 64 * KiB }
      }
      const server = yield* NbdServer.make("tcp://127.0.0.1:0", { exports: [nbdExport] })
      const client = yield* NbdClient.connect(Address.format(server.address), { exportName: "d" })
      assert.deepStrictEqual(client.blockSizes, { minimum: 512, preferred: 4096, maximum: 64 * KiB })
      const expected = pseudoRandom(MiB, 3)
      assert.deepStrictEqual(yield* read(client, 1000, 200_001), expected.subarray(1000, 201_001))
      const patch = pseudoRandom(70_001, 4)
      yield* client.writeAt(patch, 3333)
      expected.set(patch, 3333)
      assert.isTrue(yield* Device.equals(client, yield* Effect.succeed(disk)))
      assert.deepStrictEqual(yield* read(disk, 0, MiB), expected)
    })))

  it.live("our client and our server under concurrent random writes and reads, checked against a model", () =>
    live(Effect.gen(function*() {
      const disk = yield* Memory.make(16 * MiB)
      const server = yield* NbdServer.make("unix:" + path.join(yield* tempDir, "s.sock"), {
        exports: [NbdExport.make("d", disk)]
      })
      const client = yield* NbdClient.connect(Address.format(server.address), {
        exportName: "d",
        requestSize: 64 * KiB
      })
      // 16 fibers, each with its own 1 MiB region and a model of it; every read must match the model.
      yield* Effect.forEach(Array.from({ length: 16 }, (_, i) => i), (fiber) =>
        Effect.gen(function*() {
          const base = fiber * MiB
          const model = new Uint8Array(MiB)
          let seed = fiber + 1
          const next = (n: number) => {
            seed = (seed * 1103515245 + 12345) >>> 0
            return seed % n
          }
          for (let op = 0; op < 25; op++) {
            const length = 1 + next(200 * KiB)
            const offset = next(MiB - length)
            if (next(2) === 0) {
              const data = pseudoRandom(length, seed)
              yield* client.writeAt(data, base + offset)
              model.set(data, offset)
            } else {
              assert.deepStrictEqual(
                yield* read(client, base + offset, length),
                model.subarray(offset, offset + length)
              )
            }
          }
          assert.deepStrictEqual(yield* read(disk, base, MiB), model)
        }), { concurrency: "unbounded", discard: true })
    })))

  it.live("a server that goes away fails the requests in flight and later ones with a clear error", () =>
    live(Effect.gen(function*() {
      const dir = yield* tempDir
      const kit = yield* Scope.make()
      const socket = yield* Scope.provide(nbdkit(dir, ["memory", "1M"]), kit)
      const client = yield* NbdClient.connect(`unix:${socket}`)
      assert.strictEqual(yield* client.readAt(new Uint8Array(10), 0), 10)
      yield* Scope.close(kit, Exit.void)
      // Until nbdkit has gone: the first read that fails.
      const failed = yield* Effect.eventually(
        Effect.flip(Effect.andThen(Effect.sleep("20 millis"), client.readAt(new Uint8Array(10), 0)))
      )
      assert.strictEqual(failed.reason._tag, "IoFailure")
      assert.include(failed.message, "nbd+unix")
    })))

  it("reads replies cut at any boundary, copying READ data straight into each request's buffer", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            length: fc.integer({ min: 1, max: 3000 }),
            pieces: fc.integer({ min: 1, max: 3 }),
            structured: fc.boolean()
          }),
          {
            minLength: 1,
            maxLength: 8
          }
        ),
        fc.array(fc.nat(), { maxLength: 30 }),
        (requests, cuts) => {
          const inFlight = new Map<bigint, InFlight>()
          const expected = new Map<bigint, Uint8Array>()
          const wire: Array<Uint8Array> = []
          requests.forEach(({ length, pieces, structured }, i) => {
            const cookie = BigInt(i + 1)
            const offset = 1000 * i
            const data = pseudoRandom(length, i + 1)
            expected.set(cookie, data)
            inFlight.set(cookie, { type: NbdConstants.Command.READ, offset, length, target: new Uint8Array(length) })
            if (!structured) {
              wire.push(NbdTransmission.encodeSimpleReply({ error: 0, cookie, data }))
              return
            }
            // The data in up to `pieces` OFFSET_DATA chunks, out of order, then NONE with DONE.
            const size = Math.ceil(length / pieces)
            const parts: Array<Uint8Array> = []
            for (let at = 0; at < length; at += size) {
              parts.push(NbdTransmission.encodeChunk({
                _tag: "OffsetData",
                flags: 0,
                cookie,
                offset: offset + at,
                data: data.subarray(at, Math.min(length, at + size))
              }))
            }
            wire.push(...parts.toReversed())
            wire.push(NbdTransmission.encodeChunk({ _tag: "None", flags: NbdConstants.ReplyFlags.DONE, cookie }))
          })
          const stream = new Uint8Array(Buffer.concat(wire))
          const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].toSorted((a, b) => a - b)
          const reader = new ReplyReader((cookie) => inFlight.get(cookie), 1 << 20)
          const done: Array<bigint> = []
          const emit = (reply: Reply) => {
            if (reply._tag === "Simple" || (reply._tag === "Chunk" && NbdTransmission.isDone(reply.chunk))) {
              done.push(reply._tag === "Simple" ? reply.cookie : reply.chunk.cookie)
            }
            return undefined
          }
          let last = 0
          for (const point of [...points, stream.length]) {
            assert.isUndefined(reader.push(stream.subarray(last, point), emit))
            last = point
          }
          assert.isTrue(reader.atBoundary)
          assert.strictEqual(done.length, requests.length)
          for (const [cookie, data] of expected) assert.deepStrictEqual(inFlight.get(cookie)!.target, data)
        }
      ),
      { numRuns: 200 }
    )
  })

  it("refuses a reply for a cookie not in flight, data outside its READ, and a bad magic", () => {
    const target = new Uint8Array(10)
    const lookup = (cookie: bigint): InFlight | undefined =>
      cookie === 1n ? { type: 0, offset: 100, length: 10, target } : undefined
    const unknown = NbdTransmission.encodeSimpleReply({ error: 0, cookie: 2n, data: new Uint8Array(0) })
    assert.include(new ReplyReader(lookup, 1 << 20).push(unknown, ignore), "not in flight")
    const outside = NbdTransmission.encodeChunk({
      _tag: "OffsetData",
      flags: 0,
      cookie: 1n,
      offset: 105,
      data: new Uint8Array(6)
    })
    assert.include(new ReplyReader(lookup, 1 << 20).push(outside, ignore), "outside its READ")
    assert.include(new ReplyReader(lookup, 1 << 20).push(new Uint8Array(20).fill(7), ignore), "bad magic")
  })
})
