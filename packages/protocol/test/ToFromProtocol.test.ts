import { assert, describe, it } from "@effect/vitest"
import * as SiloPacket from "@tessera/codec/SiloPacket"
import * as BlockOrder from "@tessera/storage/BlockOrder"
import * as Blocks from "@tessera/storage/Blocks"
import * as Device from "@tessera/storage/Device"
import * as DirtyTracker from "@tessera/storage/DirtyTracker"
import * as Lockable from "@tessera/storage/Lockable"
import * as Memory from "@tessera/storage/Memory"
import { type BlockDevice, wrap } from "@tessera/storage/Provider"
import { Deferred, Effect, Fiber } from "effect"
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
      // Cut short, an unknown subtype, a bad compressed body, WriteAtHash (unsupported).
      assert.strictEqual(yield* request(good.subarray(0, 6)), SiloPacket.Command.WriteAtResponseErr)
      assert.strictEqual(yield* request(Uint8Array.from([0x02, 9, 0, 0, 0, 0, 0, 0, 0, 0, 1])), 0x84)
      assert.strictEqual(yield* request(Uint8Array.from([0x02, 4, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3])), 0x84)
      const hash = SiloPacket.encode({
        _tag: "WriteAtHash",
        dataLocation: SiloPacket.DataLocation.S3,
        offset: 0,
        length: bs,
        hash: new Uint8Array(32)
      })
      assert.strictEqual(yield* request(hash), 0x84)
      assert.deepStrictEqual(writes, [])
      assert.strictEqual(from.malformedPackets(), 3)
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
