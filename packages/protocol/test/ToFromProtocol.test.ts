import { assert, describe, it } from "@effect/vitest"
import * as SiloPacket from "@tessera/codec/SiloPacket"
import * as BlockOrder from "@tessera/storage/BlockOrder"
import * as Blocks from "@tessera/storage/Blocks"
import * as Device from "@tessera/storage/Device"
import * as DirtyTracker from "@tessera/storage/DirtyTracker"
import * as Lockable from "@tessera/storage/Lockable"
import * as Memory from "@tessera/storage/Memory"
import { type BlockDevice, wrap } from "@tessera/storage/Provider"
import * as StorageError from "@tessera/storage/StorageError"
import { Deferred, Effect, Fiber, Option, Result } from "effect"
import * as fc from "fast-check"
import { createHash } from "node:crypto"
import * as FromProtocol from "../src/FromProtocol.ts"
import * as Migrator from "../src/Migrator.ts"
import type * as PacketConnection from "../src/PacketConnection.ts"
import * as ToProtocol from "../src/ToProtocol.ts"
import { Transport } from "../src/Transport.ts"
import { packetPair } from "./utils/packets.ts"

const KiB = 1024
const MiB = 1024 * KiB
const bs = 4 * KiB
const DEV = 1

let names = 0

/** A source device (pseudo-random, with a zero run for the compressors), its tracker and a lock above it. */
const sourceStack = Effect.fnUntraced(function*(size: number) {
  const base = yield* Memory.make(size, "source")
  yield* Device.fillPseudoRandom(base, `to-from:${size}`)
  yield* base.writeAt(new Uint8Array(Math.min(size, 64 * KiB)), 0)
  const tracker = yield* DirtyTracker.make(base, bs)
  const lockable = yield* Lockable.make(tracker.local)
  return { base, tracker, lockable }
})

/** A memory destination that records the offset of every write it gets. */
const recordingDestination = (writes: Array<number>) => (info: FromProtocol.DeviceInfo) =>
  Effect.map(Memory.make(info.size, "destination"), (memory): BlockDevice =>
    wrap(memory, "recording", {
      writeAt: (data, offset) => Effect.andThen(Effect.sync(() => writes.push(offset)), memory.writeAt(data, offset))
    }))

/** A connection pair over memory, a ToProtocol on the client and a FromProtocol (after DevInfo) on the server. */
const pair = Effect.fnUntraced(function*(
  size: number,
  options: Partial<FromProtocol.Options> & { readonly compression?: ToProtocol.Compression } = {}
) {
  const { client, server } = yield* packetPair(`memory:to-from-${++names}`, 2)
  const writes: Array<number> = []
  const fromFiber = yield* Effect.forkChild(
    FromProtocol.make(server, DEV, { device: recordingDestination(writes), ...options })
  )
  const to = ToProtocol.make(client, DEV, size, { compression: options.compression ?? "None" })
  yield* to.sendDevInfo("disk", bs, "schema")
  const from = yield* Fiber.join(fromFiber)
  return { client, server, to, from, writes }
})

const orderOf = (size: number) => {
  const order = BlockOrder.makeAny(Blocks.count(size, bs))
  order.addAll()
  return order
}

const live = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(Effect.timeout("20 seconds"), Effect.provide(Transport.layerMemory))

describe("ToProtocol / FromProtocol", () => {
  for (const compression of ToProtocol.compressions) {
    it.live(`migrates 1 MiB through the protocol with compression ${compression}; Completed arrives`, () =>
      live(Effect.gen(function*() {
        const size = MiB
        const { base, tracker } = yield* sourceStack(size)
        const events: Array<number> = []
        const { from, to } = yield* pair(size, {
          compression,
          onEvent: (event) => Effect.sync(() => void events.push(event.type))
        })
        assert.deepStrictEqual(from.info, { size, blockSize: bs, name: "disk", schema: "schema" })
        const migrator = yield* Migrator.make({
          source: tracker.remote,
          destination: to,
          order: orderOf(size),
          blockSize: bs
        })
        const summary = yield* Migrator.run(migrator, { onDirty: (blocks) => to.sendDirtyList(bs, blocks) })
        assert.strictEqual(summary.blocksSent, 256)
        assert.isTrue(yield* Device.equals(base, from.device))
        // Every block arrived, so local reads do not wait.
        assert.deepStrictEqual(yield* from.local.availability, { available: 256, total: 256 })
        assert.isFalse(yield* Deferred.isDone(from.completed))
        yield* to.sendEvent(SiloPacket.EventType.Completed)
        assert.isTrue(yield* Deferred.isDone(from.completed))
        assert.deepStrictEqual(events, [SiloPacket.EventType.Completed])
        // Remote reads come back with the source's bytes.
        const buffer = new Uint8Array(100)
        assert.strictEqual(yield* to.readAt(buffer, 5000), 100)
        const expected = new Uint8Array(100)
        yield* base.readAt(expected, 5000)
        assert.deepStrictEqual(buffer, expected)
      })))
  }

  it.live("a destination read of a missing block sends NeedAt, and the source sends that block first", () =>
    live(Effect.gen(function*() {
      const size = MiB
      const numBlocks = Blocks.count(size, bs)
      const { base, tracker } = yield* sourceStack(size)
      const { from, to, writes } = yield* pair(size)
      const order = BlockOrder.makePriority(numBlocks, BlockOrder.makeAny(numBlocks))
      order.addAll()
      const asked: Array<number> = []
      yield* Effect.forkChild(to.handleNeedAt(bs, (block) =>
        Effect.sync(() => {
          asked.push(block)
          order.prioritise(block)
        })))
      const last = numBlocks - 1
      const reader = yield* Effect.forkChild(Effect.gen(function*() {
        const buffer = new Uint8Array(bs)
        yield* from.local.readAt(buffer, last * bs)
        return buffer
      }))
      while (asked.length === 0) yield* Effect.sleep("5 millis")
      assert.deepStrictEqual(asked, [last])
      const migrator = yield* Migrator.make({
        source: tracker.remote,
        destination: to,
        order,
        blockSize: bs,
        concurrency: { Any: 1, Standard: 1, Priority: 1 }
      })
      yield* Migrator.run(migrator, { onDirty: (blocks) => to.sendDirtyList(bs, blocks) })
      assert.strictEqual(writes[0], last * bs)
      const read = yield* Fiber.join(reader)
      const expected = new Uint8Array(bs)
      yield* base.readAt(expected, last * bs)
      assert.deepStrictEqual(read, expected)
      assert.isTrue(yield* Device.equals(base, from.device))
    })))

  it.live("a dirty round sends DirtyList, which the destination applies before the fresh copies arrive", () =>
    live(Effect.gen(function*() {
      const size = 256 * KiB
      const { base, lockable, tracker } = yield* sourceStack(size)
      const lists: Array<ReadonlyArray<number>> = []
      const { from, to, writes } = yield* pair(size, {
        onDirtyList: (blocks) => Effect.sync(() => void lists.push(blocks))
      })
      const migrator = yield* Migrator.make({
        source: tracker.remote,
        destination: to,
        order: orderOf(size),
        blockSize: bs,
        lock: lockable.lock,
        unlock: lockable.unlock
      })
      yield* migrator.migrate(Number.POSITIVE_INFINITY)
      yield* migrator.waitForCompletion
      yield* lockable.writeAt(new Uint8Array(100).fill(7), 3 * bs + 50)
      yield* lockable.writeAt(new Uint8Array(200).fill(9), 11 * bs - 100)
      const summary = yield* Migrator.run(migrator, { onDirty: (blocks) => to.sendDirtyList(bs, blocks) })
      assert.deepStrictEqual(writes.slice(64).toSorted((a, b) => a - b), [3 * bs, 10 * bs, 11 * bs])
      assert.strictEqual(summary.dirtyRounds, 1)
      assert.strictEqual(summary.blocksResent, 3)
      assert.deepStrictEqual(lists, [[3, 10, 11]])
      assert.isTrue(yield* Device.equals(base, from.device))
      assert.deepStrictEqual(yield* from.local.availability, { available: 64, total: 64 })
    })))

  it.live("a malformed WriteAt gets WriteAtResponseErr, nothing is written, and serving goes on", () =>
    live(Effect.gen(function*() {
      const size = 64 * KiB
      const { client, from, writes } = yield* pair(size)
      const request = (payload: Uint8Array) =>
        Effect.map((client as PacketConnection.PacketConnection).request(DEV, payload), (response) => response[0])
      const good = SiloPacket.encode({
        _tag: "WriteAt",
        offset: 0,
        data: new Uint8Array(bs).fill(1),
        compression: "None"
      })
      // Cut short, an unknown subtype, a bad compressed body, WriteAtHash with a hash that is not a sha256.
      assert.strictEqual(yield* request(good.subarray(0, 6)), SiloPacket.Command.WriteAtResponseErr)
      assert.strictEqual(yield* request(Uint8Array.from([0x02, 9, 0, 0, 0, 0, 0, 0, 0, 0, 1])), 0x84)
      assert.strictEqual(yield* request(Uint8Array.from([0x02, 4, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3])), 0x84)
      const hash = SiloPacket.encode({
        _tag: "WriteAtHash",
        dataLocation: SiloPacket.DataLocation.S3,
        offset: 0,
        length: bs,
        hash: new Uint8Array(5)
      })
      assert.strictEqual(yield* request(hash), 0x84)
      assert.deepStrictEqual(writes, [])
      assert.strictEqual(from.malformedPackets(), 4)
      // A write past the end of the device is refused too.
      const far = SiloPacket.encode({
        _tag: "WriteAt",
        offset: size + bs,
        data: new Uint8Array(bs),
        compression: "None"
      })
      assert.strictEqual(yield* request(far), 0x84)
      assert.deepStrictEqual(writes, [])
      // The handler still serves.
      assert.strictEqual(yield* request(good), SiloPacket.Command.WriteAtResponse)
      assert.deepStrictEqual(writes, [0])
      const back = new Uint8Array(bs)
      yield* from.device.readAt(back, 0)
      assert.deepStrictEqual(back, new Uint8Array(bs).fill(1))
    })))

  it.live("YouAlreadyHave marks blocks arrived; Hashes reports mismatches; RemoveDev arrives", () =>
    live(Effect.gen(function*() {
      const size = 64 * KiB
      const { from, to } = yield* pair(size)
      yield* to.sendYouAlreadyHave(bs, [0, 1, 15])
      assert.deepStrictEqual(yield* from.local.availability, { available: 3, total: 16 })
      const zeroes = createHash("sha256").update(new Uint8Array(bs)).digest()
      yield* to.sendHashes(new Map([[0, new Uint8Array(zeroes)], [1, new Uint8Array(32)]]))
      assert.deepStrictEqual(yield* from.hashMismatches, [1])
      yield* to.sendRemoveDev
      yield* Deferred.await(from.removed)
    })))
})

// --- Every other packet of §2 -------------------------------------------------------------------------------

const sha256 = (data: Uint8Array): Uint8Array => new Uint8Array(createHash("sha256").update(data).digest())
const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex")

/** Waits (polling) until `check` holds. */
const until = (check: () => boolean) =>
  Effect.gen(function*() {
    while (!check()) yield* Effect.sleep("2 millis")
  })

/** The source's ReadByHash lookup over `device` (a sha256 → block index, as Silo's HashBlockManager keeps). */
const hashLookup = Effect.fnUntraced(function*(device: BlockDevice) {
  const index = new Map<string, { readonly offset: number; readonly length: number }>()
  for (let block = 0; block < Blocks.count(device.size, bs); block++) {
    const range = Blocks.range(block, device.size, bs)
    const buffer = new Uint8Array(range.length)
    yield* device.readAt(buffer, range.offset)
    index.set(hex(sha256(buffer)), range)
  }
  return (hash: Uint8Array) =>
    Effect.suspend(() => {
      const range = index.get(hex(hash))
      if (range === undefined) return Effect.succeed(undefined)
      const buffer = new Uint8Array(range.length)
      return Effect.as(Effect.orDie(device.readAt(buffer, range.offset)), buffer)
    })
})

/** `connection`, recording the packet name of every request sent on it. */
const recording = (connection: PacketConnection.PacketConnection) => {
  const sent: Array<string> = []
  const wrapped: PacketConnection.PacketConnection = {
    ...connection,
    request: (dev, payload, options) => {
      const decoded = SiloPacket.decode(payload)
      sent.push(Result.isSuccess(decoded) ? SiloPacket.nameOf(decoded.success) : "malformed")
      return connection.request(dev, payload, options)
    }
  }
  return { wrapped, sent }
}

/** The block of `device` at `block`. */
const blockOf = (device: BlockDevice, block: number) =>
  Effect.gen(function*() {
    const range = Blocks.range(block, device.size, bs)
    const buffer = new Uint8Array(range.length)
    yield* device.readAt(buffer, range.offset)
    return buffer
  })

/** Sends `payload` as a request and gives the response's command byte. */
const commandOf = (connection: PacketConnection.PacketConnection, payload: Uint8Array) =>
  Effect.map(connection.request(DEV, payload), (response) => response[0])

/** A WriteAtHash payload with a zero hash. */
const hashAt = (offset: number, length: number) =>
  SiloPacket.encode({
    _tag: "WriteAtHash",
    dataLocation: SiloPacket.DataLocation.S3,
    offset,
    length,
    hash: new Uint8Array(32)
  })

/** A connection that answers every request with WriteAtResponse(its length) at once and records the payloads. */
const acknowledgingConnection = () => {
  const payloads: Array<Uint8Array> = []
  const unused = Effect.die("not used by these tests")
  const connection: PacketConnection.PacketConnection = {
    streams: 1,
    send: (_dev, _id, payload) => Effect.sync(() => (payloads.push(payload), 1)),
    request: (_dev, prefix, options) =>
      Effect.sync(() => {
        // The frame's payload is the prefix and the tail together, as the peer receives it.
        const payload = options?.tail === undefined ? prefix : Buffer.concat([prefix, options.tail])
        payloads.push(payload)
        const decoded = Result.getOrThrow(SiloPacket.decode(payload))
        const bytes = decoded._tag === "WriteAt"
          ? decoded.data.length
          : decoded._tag === "WriteAtHash"
          ? decoded.length
          : 0
        return SiloPacket.encode({ _tag: "WriteAtResponse", bytes })
      }),
    respond: () => unused,
    waitForCommand: () => unused,
    pollCommand: () => unused,
    flush: Effect.void,
    close: Effect.void,
    await: Effect.never,
    metrics: () => {
      throw new Error("not used")
    }
  }
  return { connection, payloads }
}

describe("ToProtocol / FromProtocol: maps, alternate sources, hashes, reads from the source", () => {
  it.live("WriteAtWithMap is written through the remote side by default and acknowledged with its length", () =>
    live(Effect.gen(function*() {
      const size = 64 * KiB
      const { from, to, writes } = yield* pair(size)
      const data = new Uint8Array(bs).fill(5)
      const idMap = new Map([[1n, 2n], [2n ** 64n - 1n, 0n]])
      assert.strictEqual(yield* to.writeAtWithMap(data, 2 * bs, idMap), bs)
      assert.deepStrictEqual(writes, [2 * bs])
      assert.deepStrictEqual(yield* blockOf(from.device, 2), data)
      assert.deepStrictEqual(yield* from.local.availability, { available: 1, total: 16 })
    })))

  it.live("WriteAtWithMap and RemoveFromMap go to the callbacks; a failing callback is WriteAtResponseErr", () =>
    live(Effect.gen(function*() {
      const size = 64 * KiB
      const maps: Array<[number, Uint8Array, ReadonlyMap<bigint, bigint>]> = []
      const removed = yield* Deferred.make<ReadonlyArray<bigint>>()
      const { to, writes } = yield* pair(size, {
        onWriteAtWithMap: (offset, data, idMap) =>
          data[0] === 0xff
            ? Effect.fail("refused")
            : Effect.sync(() => void maps.push([offset, data.slice(), idMap])),
        onRemoveFromMap: (ids) => Deferred.succeed(removed, ids)
      })
      const idMap = new Map([[7n, 70n], [8n, 80n]])
      assert.strictEqual(yield* to.writeAtWithMap(new Uint8Array(100).fill(3), bs, idMap), 100)
      assert.deepStrictEqual(maps, [[bs, new Uint8Array(100).fill(3), idMap]])
      const refused = yield* Effect.flip(to.writeAtWithMap(new Uint8Array(10).fill(0xff), 0, new Map()))
      assert.strictEqual(refused.reason._tag, "IoFailure")
      assert.deepStrictEqual(writes, [])
      yield* to.sendRemoveFromMap([1n, 2n ** 64n - 1n])
      assert.deepStrictEqual(yield* Deferred.await(removed), [1n, 2n ** 64n - 1n])
    })))

  it.live("AlternateSources: the destination keeps the latest list and calls back", () =>
    live(Effect.gen(function*() {
      const size = 64 * KiB
      const lists: Array<ReadonlyArray<FromProtocol.AlternateSource>> = []
      const { from, to } = yield* pair(size, {
        onAlternateSources: (sources) => Effect.sync(() => void lists.push(sources))
      })
      assert.deepStrictEqual(yield* from.alternateSources, [])
      const first = [{ offset: 0, length: bs, hash: sha256(new Uint8Array(bs)), location: "s3 bucket disk" }]
      const second = [
        { offset: bs, length: bs, hash: sha256(new Uint8Array(1)), location: "a" },
        { offset: 3 * bs, length: 100, hash: sha256(new Uint8Array(2)), location: "" }
      ]
      yield* to.sendAlternateSources(first)
      yield* to.sendAlternateSources(second)
      assert.deepStrictEqual(to.alternateSources(), second)
      yield* until(() => lists.length === 2)
      assert.deepStrictEqual(lists, [first, second])
      assert.deepStrictEqual(yield* from.alternateSources, second)
      // A hash that is not a sha256 cannot be sent, and the kept list stays.
      const bad = yield* Effect.flip(to.sendAlternateSources([{ ...first[0]!, hash: new Uint8Array(31) }]))
      assert.strictEqual(bad.reason._tag, "BadArgument")
      assert.deepStrictEqual(to.alternateSources(), second)
    })))

  it.live("a block matching an alternate source goes as WriteAtHash and arrives through ReadByHash", () =>
    live(Effect.gen(function*() {
      const size = 64 * KiB
      const { base, tracker } = yield* sourceStack(size)
      const { client, from, to, writes } = yield* pair(size)
      yield* Effect.forkChild(to.handleReadByHash(yield* hashLookup(base)))
      const { sent, wrapped } = recording(client)
      const via = ToProtocol.make(wrapped, DEV, size)
      const sources: Array<ToProtocol.AlternateSource> = []
      for (let block = 0; block < 16; block++) {
        const data = yield* blockOf(base, block)
        // Block 3 changed since it was synced (another hash); block 5's entry has another length.
        const hash = block === 3 ? sha256(new Uint8Array(bs).fill(1)) : sha256(data)
        sources.push({ offset: block * bs, length: block === 5 ? bs / 2 : bs, hash, location: "s3 bucket disk" })
      }
      yield* via.sendAlternateSources(sources)
      const migrator = yield* Migrator.make({
        source: tracker.remote,
        destination: via,
        order: orderOf(size),
        blockSize: bs
      })
      yield* Migrator.run(migrator, { onDirty: (blocks) => via.sendDirtyList(bs, blocks) })
      assert.deepStrictEqual(sent.filter((name) => name === "WriteAt").length, 2)
      assert.deepStrictEqual(sent.filter((name) => name === "WriteAtHash").length, 14)
      yield* until(() => from.pendingHashWrites() === 0)
      assert.strictEqual(from.failedHashWrites(), 0)
      assert.strictEqual(writes.length, 16)
      assert.isTrue(yield* Device.equals(base, from.device))
      assert.deepStrictEqual(yield* from.local.availability, { available: 16, total: 16 })
    })))

  it("writeAt follows §3.1 for any alternate-source list: the first exact match decides, by its hash", () => {
    const datas = [0, 1, 2].map((fill) => new Uint8Array(bs).fill(fill))
    const halves = datas.map((data) => data.subarray(0, bs / 2))
    const source = fc.record({
      offset: fc.constantFrom(0, bs, 2 * bs),
      length: fc.constantFrom(bs, bs / 2),
      fill: fc.nat({ max: 2 }),
      location: fc.string({ maxLength: 8 })
    })
    fc.assert(fc.property(
      fc.array(source, { maxLength: 8 }),
      fc.constantFrom(0, bs, 2 * bs),
      fc.boolean(),
      fc.nat({ max: 2 }),
      fc.boolean(),
      (list, offset, half, fill, noData) => {
        const { connection, payloads } = acknowledgingConnection()
        const to = ToProtocol.make(connection, DEV, 4 * bs, { sendNoData: noData })
        const sources = list.map((s) => ({
          offset: s.offset,
          length: s.length,
          hash: sha256((s.length === bs ? datas : halves)[s.fill]!),
          location: s.location
        }))
        const data = (half ? halves : datas)[fill]!
        Effect.runSync(to.sendAlternateSources(sources))
        assert.strictEqual(Effect.runSync(to.writeAt(data, offset)), data.length)
        const packet = Result.getOrThrow(SiloPacket.decode(payloads[1]!))
        const match = sources.find((s) => s.offset === offset && s.length === data.length)
        const hashed = noData || (match !== undefined && hex(match.hash) === hex(sha256(data)))
        if (!hashed) {
          assert.strictEqual(packet._tag, "WriteAt")
          return
        }
        assert.deepStrictEqual(packet, {
          _tag: "WriteAtHash",
          dataLocation: SiloPacket.DataLocation.S3,
          offset,
          length: data.length,
          hash: sha256(data)
        })
      }
    ))
  })

  it.live("send-no-data (swarming) migrates 1 MiB as WriteAtHash only, fetched with ReadByHash", () =>
    live(Effect.gen(function*() {
      const size = MiB
      const { base, tracker } = yield* sourceStack(size)
      const { client, from, to, writes } = yield* pair(size)
      yield* Effect.forkChild(to.handleReadByHash(yield* hashLookup(base)))
      const { sent, wrapped } = recording(client)
      const via = ToProtocol.make(wrapped, DEV, size, { sendNoData: true })
      assert.isTrue(via.sendNoData())
      const migrator = yield* Migrator.make({
        source: tracker.remote,
        destination: via,
        order: orderOf(size),
        blockSize: bs
      })
      const summary = yield* Migrator.run(migrator, { onDirty: (blocks) => via.sendDirtyList(bs, blocks) })
      assert.strictEqual(summary.blocksSent, 256)
      assert.deepStrictEqual(new Set(sent), new Set(["WriteAtHash"]))
      yield* via.sendEvent(SiloPacket.EventType.Completed)
      yield* until(() => from.pendingHashWrites() === 0)
      assert.strictEqual(from.failedHashWrites(), 0)
      assert.strictEqual(writes.length, 256)
      assert.isTrue(yield* Device.equals(base, from.device))
      assert.deepStrictEqual(yield* from.local.availability, { available: 256, total: 256 })
    })))

  for (
    const [what, answer] of [
      ["bytes with another hash", (data: Uint8Array) => Effect.succeed(data.map((b) => b ^ 1))],
      ["too few bytes", (data: Uint8Array) => Effect.succeed(data.subarray(1))],
      ["no block (ReadByHashResponseErr)", () => Effect.succeed(undefined)]
    ] as const
  ) {
    it.live(`a ReadByHash answer of ${what} leaves the block missing and writes nothing`, () =>
      live(Effect.gen(function*() {
        const size = 64 * KiB
        const { base } = yield* sourceStack(size)
        const { from, to, writes } = yield* pair(size)
        const data = yield* blockOf(base, 4)
        yield* Effect.forkChild(to.handleReadByHash(() => answer(data)))
        to.setSendNoData(true)
        assert.strictEqual(yield* to.writeAt(data, 4 * bs), bs)
        yield* until(() => from.pendingHashWrites() === 0)
        assert.strictEqual(from.failedHashWrites(), 1)
        assert.deepStrictEqual(writes, [])
        assert.deepStrictEqual(yield* from.local.availability, { available: 0, total: 16 })
        // A reader of the block keeps waiting for it.
        const read = yield* Effect.timeoutOption(from.local.readAt(new Uint8Array(bs), 4 * bs), "50 millis")
        assert.isTrue(Option.isNone(read))
      })))
  }

  it.live("onWriteAtHash fetches elsewhere (S3); the block counts as present only once its write lands", () =>
    live(Effect.gen(function*() {
      const size = 64 * KiB
      const { base } = yield* sourceStack(size)
      const data = yield* blockOf(base, 9)
      const gate = yield* Deferred.make<void>()
      const asked: Array<[number, number, string, number]> = []
      const { from, to } = yield* pair(size, {
        onWriteAtHash: (offset, length, hash, location) =>
          Effect.andThen(
            Effect.sync(() => void asked.push([offset, length, hex(hash), location])),
            Effect.as(Deferred.await(gate), data)
          )
      })
      yield* to.sendAlternateSources([{ offset: 9 * bs, length: bs, hash: sha256(data), location: "s3" }])
      assert.strictEqual(yield* to.writeAt(data, 9 * bs), bs)
      // Acknowledged, but not here yet: a reader waits.
      const reader = yield* Effect.forkChild(from.local.readAt(new Uint8Array(bs), 9 * bs))
      yield* until(() => asked.length === 1)
      assert.deepStrictEqual(asked, [[9 * bs, bs, hex(sha256(data)), SiloPacket.DataLocation.S3]])
      assert.strictEqual(from.pendingHashWrites(), 1)
      assert.deepStrictEqual(yield* from.local.availability, { available: 0, total: 16 })
      assert.isUndefined(reader.pollUnsafe())
      yield* Deferred.succeed(gate, undefined)
      assert.strictEqual(yield* Fiber.join(reader), bs)
      assert.deepStrictEqual(yield* blockOf(from.device, 9), data)
      assert.strictEqual(from.pendingHashWrites(), 0)
    })))

  it.live("a newer write or a DirtyList of the block supersedes a WriteAtHash still being fetched", () =>
    live(Effect.gen(function*() {
      const size = 64 * KiB
      const old = new Uint8Array(bs).fill(1)
      const fresh = new Uint8Array(bs).fill(2)
      const gate = yield* Deferred.make<void>()
      const { from, to, writes } = yield* pair(size, {
        onWriteAtHash: () => Effect.as(Deferred.await(gate), old)
      })
      to.setSendNoData(true)
      yield* to.writeAt(old, 0)
      yield* to.writeAt(old, bs)
      yield* until(() => from.pendingHashWrites() === 2)
      to.setSendNoData(false)
      yield* to.writeAt(fresh, 0)
      yield* to.sendDirtyList(bs, [1])
      yield* Deferred.succeed(gate, undefined)
      yield* until(() => from.pendingHashWrites() === 0)
      assert.strictEqual(from.failedHashWrites(), 0)
      assert.deepStrictEqual(writes, [0])
      assert.deepStrictEqual(yield* blockOf(from.device, 0), fresh)
      assert.deepStrictEqual(yield* from.local.availability, { available: 1, total: 16 })
    })))

  it.live("ReadAt from the destination returns the source's bytes; failures are typed", () =>
    live(Effect.gen(function*() {
      const size = 64 * KiB
      const { base } = yield* sourceStack(size)
      const { from, to } = yield* pair(size)
      yield* Effect.forkChild(to.handleReadAt(base))
      const buffer = new Uint8Array(3 * bs)
      assert.strictEqual(yield* from.readAt(buffer, 5000), 3 * bs)
      const expected = new Uint8Array(3 * bs)
      yield* base.readAt(expected, 5000)
      assert.deepStrictEqual(buffer, expected)
      // Clipped at the end of the device.
      assert.strictEqual(yield* from.readAt(new Uint8Array(bs), size - 100), 100)
      const outside = yield* Effect.flip(from.readAt(new Uint8Array(1), size + 1))
      assert.strictEqual(outside.reason._tag, "ProtocolError")
      // A device that fails is ReadAtResponseErr, which is `Refused`.
      const { from: other, to: otherTo } = yield* pair(size)
      const broken = wrap(base, "broken", {
        readAt: () =>
          Effect.fail(StorageError.make("broken", new StorageError.IoFailure({ operation: "read", cause: 5 })))
      })
      yield* Effect.forkChild(otherTo.handleReadAt(broken))
      const refused = yield* Effect.flip(other.readAt(new Uint8Array(10), 0))
      assert.strictEqual(refused.reason._tag, "Refused")
    })))

  it.live("ReadByHash from the destination: the data, or the source's error text", () =>
    live(Effect.gen(function*() {
      const size = 64 * KiB
      const { base } = yield* sourceStack(size)
      const { from, to } = yield* pair(size)
      yield* Effect.forkChild(to.handleReadByHash(yield* hashLookup(base)))
      const data = yield* blockOf(base, 7)
      assert.deepStrictEqual(yield* from.readByHash(sha256(data)), data)
      const unknown = sha256(new Uint8Array(3))
      const refused = yield* Effect.flip(from.readByHash(unknown))
      assert.strictEqual(refused.reason._tag, "Refused")
      assert.include(refused.message, hex(unknown))
      const short = yield* Effect.flip(from.readByHash(new Uint8Array(31)))
      assert.strictEqual(short.reason._tag, "ProtocolError")
    })))

  it.live("requests to the source fail with NotConnected while the device is not served", () =>
    Effect.gen(function*() {
      const from = yield* FromProtocol.open(DEV, { size: 64 * KiB, blockSize: bs, name: "disk", schema: "" }, {
        device: (info) => Memory.make(info.size, "destination")
      })
      const read = yield* Effect.flip(from.readAt(new Uint8Array(10), 0))
      assert.strictEqual(read.reason._tag, "NotConnected")
      const byHash = yield* Effect.flip(from.readByHash(new Uint8Array(32)))
      assert.strictEqual(byHash.reason._tag, "NotConnected")
      assert.strictEqual(byHash._tag, "SourceError")
    }))

  it.live("malformed variants of the new packets are logged, counted, answered when they can be, never written", () =>
    live(Effect.gen(function*() {
      const size = 64 * KiB
      const { base } = yield* sourceStack(size)
      const sources = yield* Deferred.make<void>()
      const { client, from, server, to, writes } = yield* pair(size, {
        onAlternateSources: () => Deferred.succeed(sources, undefined)
      })
      // Destination side.
      const withMap = SiloPacket.encode({
        _tag: "WriteAtWithMap",
        offset: 0,
        idMap: new Map([[1n, 1n]]),
        data: new Uint8Array(10)
      })
      assert.strictEqual(yield* commandOf(client, withMap.subarray(0, 12)), 0x84)
      const overrun = withMap.slice(0, 20)
      overrun[9] = 9 // nine map entries announced
      assert.strictEqual(yield* commandOf(client, overrun), 0x84)
      assert.strictEqual(yield* commandOf(client, hashAt(0, 0)), 0x84)
      assert.strictEqual(yield* commandOf(client, hashAt(size - 10, bs)), 0x84)
      assert.strictEqual(yield* commandOf(client, hashAt(0, bs).subarray(0, 18)), 0x84)
      assert.strictEqual(from.malformedPackets(), 5)
      yield* client.send(DEV, 0, Uint8Array.from([0x0b, 2, 0, 0, 0, 1, 2, 3]))
      yield* client.send(DEV, 0, Uint8Array.from([0x0c, 1, 0, 0, 0, 1, 2, 3]))
      yield* until(() => from.malformedPackets() === 7)
      assert.deepStrictEqual(yield* from.alternateSources, [])
      assert.isFalse(yield* Deferred.isDone(sources))
      assert.deepStrictEqual(writes, [])
      assert.strictEqual(from.pendingHashWrites(), 0)
      // Source side.
      yield* Effect.forkChild(to.handleReadAt(base))
      yield* Effect.forkChild(to.handleReadByHash(yield* hashLookup(base)))
      assert.strictEqual(yield* commandOf(server, Uint8Array.from([0x0e, 1, 2, 3])), 0x89)
      assert.strictEqual(yield* commandOf(server, Uint8Array.from([0x01, 0, 0, 0])), 0x82)
      const far = SiloPacket.encode({ _tag: "ReadAt", offset: size + 1, length: 10 })
      assert.strictEqual(yield* commandOf(server, far), 0x82)
      const huge = SiloPacket.encode({ _tag: "ReadAt", offset: 0, length: size + 1 })
      assert.strictEqual(yield* commandOf(server, huge), 0x82)
      const negative = SiloPacket.encode({ _tag: "ReadAt", offset: 0, length: -1 })
      assert.strictEqual(yield* commandOf(server, negative), 0x82)
      assert.strictEqual(to.malformedPackets(), 5)
      // Still serving.
      assert.strictEqual(yield* from.readAt(new Uint8Array(10), 0), 10)
    })))

  it.live("a malformed ReadByHashResponse or ReadAtResponse is a typed failure", () =>
    live(Effect.gen(function*() {
      const size = 64 * KiB
      const { client, from } = yield* pair(size)
      const answer = (command: number, response: Uint8Array) =>
        Effect.forkChild(
          Effect.flatMap(client.waitForCommand(DEV, command), (request) => client.respond(DEV, request.id, response))
        )
      yield* answer(SiloPacket.Command.ReadByHash, Uint8Array.from([0x88, 0xff, 0, 0, 0, 1]))
      const byHash = yield* Effect.flip(from.readByHash(new Uint8Array(32)))
      assert.strictEqual(byHash.reason._tag, "ProtocolError")
      yield* answer(SiloPacket.Command.ReadAt, Uint8Array.from([0x81, 1]))
      const read = yield* Effect.flip(from.readAt(new Uint8Array(4), 0))
      assert.strictEqual(read.reason._tag, "ProtocolError")
    })))
})
