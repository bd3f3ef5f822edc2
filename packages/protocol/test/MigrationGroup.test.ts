import { assert, describe, it } from "@effect/vitest"
import * as Device from "@tessera/storage/Device"
import * as Memory from "@tessera/storage/Memory"
import { type BlockDevice, wrap } from "@tessera/storage/Provider"
import { Deferred, Effect, Fiber, Ref, type Scope } from "effect"
import * as net from "node:net"
import type * as Address from "../src/Address.ts"
import * as MigrationDestination from "../src/MigrationDestination.ts"
import * as MigrationSource from "../src/MigrationSource.ts"
import * as PacketConnection from "../src/PacketConnection.ts"
import * as ToProtocol from "../src/ToProtocol.ts"
import * as Transport from "../src/Transport.ts"
import { freshAddress } from "./utils/transport.ts"

const KiB = 1024
const MiB = 1024 * KiB
const bs = 16 * KiB

const randomDevice = Effect.fnUntraced(function*(size: number, seed: string) {
  const device = yield* Memory.make(size, seed)
  yield* Device.fillPseudoRandom(device, seed)
  return device
})

/** A listener whose accepted connections become packet connections; `next` takes the next one. */
const listening = Effect.fnUntraced(function*(scheme: "tcp" | "unix") {
  const listener = yield* Transport.listen(yield* freshAddress(scheme))
  const next = Effect.flatMap(listener.accept, (stream) => PacketConnection.make([stream]))
  return { listener, next }
})

/** A source of one 1 MiB device serving on TCP in a child fiber, recording what it refuses. */
const servingWithRefusals = Effect.fnUntraced(function*(name: string, options: MigrationSource.ServeOptions) {
  const disk = yield* randomDevice(MiB, name)
  const source = yield* MigrationSource.make([{ name: "d", device: disk, blockSize: bs }], { concurrency: 4 })
  const { listener, next } = yield* listening("tcp")
  const refusals: Array<string> = []
  const served = yield* Effect.forkChild(source.serve(next, {
    ...options,
    onRefused: (error) => Effect.sync(() => void refusals.push(error.message))
  }))
  return { disk, listener, refusals, served }
})

/** Destination devices in memory, made as the group says, and remembered for the checks. */
const memoryDestination = (made: Array<BlockDevice>, wrapDevice?: (device: BlockDevice) => BlockDevice) =>
  MigrationDestination.make({
    device: ({ info }) =>
      Effect.map(Memory.make(info.size, info.name), (device) => {
        const used = wrapDevice === undefined ? device : wrapDevice(device)
        made.push(device)
        return used
      })
  })

/** A memory destination whose `written` completes once its devices have taken `writes` block writes in all. */
const countingDestination = Effect.fnUntraced(function*(made: Array<BlockDevice>, writes: number) {
  const count = yield* Ref.make(0)
  const written = yield* Deferred.make<void>()
  const destination = yield* memoryDestination(made, (device) =>
    wrap(device, "counting", {
      writeAt: (data, offset) =>
        Effect.tap(device.writeAt(data, offset), () =>
          Effect.flatMap(
            Ref.updateAndGet(count, (n) => n + 1),
            (n) => n === writes ? Deferred.succeed(written, undefined) : Effect.void
          ))
    }))
  return { destination, written: Deferred.await(written) }
})

/**
 * A TCP proxy to `target` that destroys its first connection after `limit` bytes towards the client, and
 * forwards later connections untouched.
 */
const droppingProxy = (target: Address.Address, limit: number) =>
  Effect.acquireRelease(
    Effect.callback<net.Server>((resume) => {
      const { port } = target as Address.Tcp
      let connections = 0
      const server = net.createServer((client) => {
        const first = connections++ === 0
        const upstream = net.connect(Number(port), "127.0.0.1")
        let forwarded = 0
        upstream.on("data", (chunk: Buffer) => {
          forwarded += chunk.length
          client.write(chunk)
          if (first && forwarded >= limit) {
            client.destroy()
            upstream.destroy()
          }
        })
        client.on("data", (chunk: Buffer) => upstream.write(chunk))
        client.on("error", () => upstream.destroy())
        upstream.on("error", () => client.destroy())
        client.on("close", () => upstream.destroy())
        upstream.on("close", () => client.destroy())
      })
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
    }),
    (server) => Effect.sync(() => server.close())
  ).pipe(Effect.map((server) => ({ address: `tcp://127.0.0.1:${(server.address() as net.AddressInfo).port}` })))

const live = <A, E>(effect: Effect.Effect<A, E, Transport.Transport | Scope.Scope>) =>
  effect.pipe(Effect.scoped, Effect.timeout("30 seconds"), Effect.provide(Transport.Transport.layer))

describe("MigrationSource / MigrationDestination", () => {
  for (const scheme of ["tcp", "unix"] as const) {
    it.live(`migrates two devices over ${scheme} while the source is written, and ends identical`, () =>
      live(Effect.gen(function*() {
        const disks = [yield* randomDevice(2 * MiB, "group-a"), yield* randomDevice(MiB + 5000, "group-b")]
        const source = yield* MigrationSource.make(
          disks.map((device, i) => ({ name: `disk${i}`, device, blockSize: bs })),
          { compression: "RLE", concurrency: 8 }
        )
        const { listener, next } = yield* listening(scheme)
        const made: Array<BlockDevice> = []
        const destination = yield* memoryDestination(made)
        const custom: Array<string> = []
        const served = yield* Effect.forkChild(source.serve(next))
        const connection = yield* PacketConnection.make([yield* Transport.dial(listener.address)])
        const received = yield* Effect.forkChild(destination.receive(connection))
        // Writes while the migration runs, through the source's writers.
        const writer = yield* Effect.forkChild(Effect.forever(Effect.gen(function*() {
          const at = Math.floor(Math.random() * (disks[0]!.size - 100))
          yield* source.writers[0]!.writeAt(new Uint8Array(100).fill(at & 0xff), at)
          yield* Effect.sleep("1 millis")
        })))
        const devices = yield* Deferred.await(destination.devices)
        assert.deepStrictEqual(devices.map((d) => d.info.name), ["disk0", "disk1"])
        // A read at the destination during the migration returns the source's bytes (it waits for them).
        const buffer = new Uint8Array(4096)
        yield* devices[1]!.local.readAt(buffer, MiB)
        const expected = new Uint8Array(4096)
        yield* disks[1]!.readAt(expected, MiB)
        assert.deepStrictEqual(buffer, expected)
        // And a read straight from the source (ReadAt from the destination) returns its current bytes.
        const remote = new Uint8Array(1000)
        assert.strictEqual(yield* devices[1]!.readAt(remote, 12345), 1000)
        yield* disks[1]!.readAt(expected.subarray(0, 1000), 12345)
        assert.deepStrictEqual(remote, expected.subarray(0, 1000))
        const summary = yield* Fiber.join(served)
        yield* Fiber.join(received)
        yield* Fiber.interrupt(writer)
        assert.isTrue(yield* destination.completed)
        assert.strictEqual(summary.connections, 1)
        for (const [i, disk] of disks.entries()) assert.isTrue(yield* Device.equals(disk, made[i]!), `disk${i}`)
        assert.strictEqual(summary.devices[0]!.blocksSent, 128)
        assert.strictEqual(summary.devices[1]!.blocksSent, 65)
        assert.deepStrictEqual(custom, [])
      })))
  }

  it.live("delivers custom data on dev 0 and acknowledges it", () =>
    live(Effect.gen(function*() {
      const disk = yield* randomDevice(256 * KiB, "custom")
      const source = yield* MigrationSource.make([{ name: "d", device: disk, blockSize: bs }])
      const { listener, next } = yield* listening("tcp")
      const received: Array<string> = []
      const destination = yield* MigrationDestination.make({
        device: ({ info }) => Memory.make(info.size),
        onCustomData: (payload) => Effect.sync(() => void received.push(new TextDecoder().decode(payload)))
      })
      const served = yield* Effect.forkChild(source.serve(next))
      const connection = yield* PacketConnection.make([yield* Transport.dial(listener.address)])
      const receiving = yield* Effect.forkChild(destination.receive(connection))
      yield* Deferred.await(destination.devices)
      yield* source.sendCustomData(new TextEncoder().encode("authority"))
      assert.deepStrictEqual(received, ["authority"])
      yield* Fiber.join(served)
      yield* Fiber.join(receiving)
    })))

  for (const compression of ToProtocol.compressions) {
    it.live(`a connection broken mid-copy resumes without re-sending what arrived (${compression})`, () =>
      live(Effect.gen(function*() {
        const size = 4 * MiB
        const disk = yield* randomDevice(size, `resume-${compression}`)
        const source = yield* MigrationSource.make([{ name: "d", device: disk, blockSize: bs }], {
          compression,
          concurrency: 4
        })
        const { listener, next } = yield* listening("tcp")
        const made: Array<BlockDevice> = []
        const { destination, written } = yield* countingDestination(made, 100)
        const served = yield* Effect.forkChild(source.serve(next, { resumeTimeout: "10 seconds" }))

        const first = yield* Transport.dial(listener.address)
        const receiving = yield* Effect.forkChild(destination.receive(yield* PacketConnection.make([first])))
        yield* written
        // The writer keeps going through the outage.
        yield* source.writers[0]!.writeAt(new Uint8Array(bs).fill(9), 0)
        yield* first.close
        const lost = yield* Fiber.await(receiving)
        assert.strictEqual(lost._tag, "Failure")

        const second = yield* PacketConnection.make([yield* Transport.dial(listener.address)])
        yield* destination.receive(second)
        const summary = yield* Fiber.join(served)
        assert.strictEqual(summary.connections, 2)
        const [device] = summary.devices
        assert.isAtLeast(device!.blocksSkipped, 90)
        // Everything was sent once, apart from the blocks in flight when the connection broke.
        assert.isAtMost(device!.blocksSent, 256 + 4 + 8)
        assert.isAtLeast(device!.dirtyRounds, 1)
        assert.isTrue(yield* Device.equals(disk, made[0]!))
      })))
  }

  it.live("connections that fail before the fence are refused, and serve migrates over the next one", () =>
    live(Effect.gen(function*() {
      const { disk, listener, refusals, served } = yield* servingWithRefusals("refused", { resumeTimeout: "50 millis" })
      // The first bytes of a TLS ClientHello and a hang-up inside that "frame", then a peer that hangs up at once.
      for (
        const bytes of [
          Uint8Array.from([0x16, 0x03, 0x01, 0x00, 0xf8, 0x01, 0x00, 0x00, 0xf4, 0x03, 0x03, 0]),
          undefined
        ]
      ) {
        const stream = yield* Transport.dial(listener.address)
        if (bytes !== undefined) yield* stream.write([bytes])
        yield* stream.end
        while (refusals.length === (bytes === undefined ? 1 : 0)) yield* Effect.sleep("5 millis")
      }
      // Longer than the resume timeout: a refused connection does not start that clock.
      yield* Effect.sleep("150 millis")
      const made: Array<BlockDevice> = []
      const destination = yield* memoryDestination(made)
      yield* destination.receive(yield* PacketConnection.make([yield* Transport.dial(listener.address)]))
      const summary = yield* Fiber.join(served)
      assert.strictEqual(summary.connections, 1)
      assert.strictEqual(refusals.length, 2)
      assert.include(refusals[0], "malformed frame")
      assert.include(refusals[1], "connection closed")
      assert.isTrue(yield* Device.equals(disk, made[0]!))
    })))

  it.live("a peer that connects and says nothing is refused after handshakeTimeout; the destination then migrates", () =>
    live(Effect.gen(function*() {
      const { disk, listener, refusals, served } = yield* servingWithRefusals("silent", {
        handshakeTimeout: "300 millis"
      })
      // Connected first, then silent (and never closed by this side).
      yield* Transport.dial(listener.address)
      const made: Array<BlockDevice> = []
      const destination = yield* memoryDestination(made)
      const started = Date.now()
      yield* destination.receive(yield* PacketConnection.make([yield* Transport.dial(listener.address)]))
      const summary = yield* Fiber.join(served)
      assert.strictEqual(summary.connections, 1)
      assert.deepStrictEqual(refusals, ["dev 0: no answer to the first DirtyList (nor any other frame) within 300 ms"])
      assert.isBelow(Date.now() - started, 5000)
      assert.isTrue(yield* Device.equals(disk, made[0]!))
    })))

  it.live("garbage on an established connection breaks it, and the migration resumes on the next", () =>
    live(Effect.gen(function*() {
      const disk = yield* randomDevice(4 * MiB, "garbled")
      const source = yield* MigrationSource.make([{ name: "d", device: disk, blockSize: bs }], { concurrency: 4 })
      const { listener, next } = yield* listening("tcp")
      const made: Array<BlockDevice> = []
      const { destination, written } = yield* countingDestination(made, 50)
      const served = yield* Effect.forkChild(source.serve(next, { resumeTimeout: "10 seconds" }))
      const first = yield* Transport.dial(listener.address)
      const receiving = yield* Effect.forkChild(destination.receive(yield* PacketConnection.make([first])))
      yield* written
      yield* first.write([new Uint8Array(12).fill(0xff)])
      assert.strictEqual((yield* Fiber.await(receiving))._tag, "Failure")
      yield* destination.receive(yield* PacketConnection.make([yield* Transport.dial(listener.address)]))
      const summary = yield* Fiber.join(served)
      assert.strictEqual(summary.connections, 2)
      assert.isAtLeast(summary.devices[0]!.blocksSkipped, 1)
      assert.isTrue(yield* Device.equals(disk, made[0]!))
    })))

  it.live("run dials again after the connection drops and ends identical", () =>
    live(Effect.gen(function*() {
      const disk = yield* randomDevice(4 * MiB, "run")
      const source = yield* MigrationSource.make([{ name: "d", device: disk, blockSize: bs }], { concurrency: 4 })
      const { listener, next } = yield* listening("tcp")
      const served = yield* Effect.forkChild(source.serve(next))
      const proxy = yield* droppingProxy(listener.address, MiB)
      const made: Array<BlockDevice> = []
      const destination = yield* memoryDestination(made)
      yield* destination.run(
        Effect.flatMap(Transport.dial(proxy.address), (stream) => PacketConnection.make([stream])),
        { retryInterval: "20 millis" }
      )
      const summary = yield* Fiber.join(served)
      assert.strictEqual(summary.connections, 2)
      assert.isAtLeast(summary.devices[0]!.blocksSkipped, 1)
      assert.isTrue(yield* Device.equals(disk, made[0]!))
    })))

  it.live("run fails at once when the source cannot be reached", () =>
    live(Effect.gen(function*() {
      const destination = yield* memoryDestination([])
      const error = yield* Effect.flip(
        destination.run(
          Effect.flatMap(Transport.dial("tcp://127.0.0.1:1"), (stream) => PacketConnection.make([stream]))
        )
      )
      assert.strictEqual(error._tag, "TransportError")
    })))

  it.live("a destination that does not come back fails the source with Disconnected", () =>
    live(Effect.gen(function*() {
      const disk = yield* randomDevice(4 * MiB, "gone")
      const source = yield* MigrationSource.make([{ name: "d", device: disk, blockSize: bs }], { concurrency: 2 })
      const { listener, next } = yield* listening("tcp")
      const served = yield* Effect.forkChild(source.serve(next, { resumeTimeout: "300 millis" }))
      const made: Array<BlockDevice> = []
      const destination = yield* memoryDestination(made)
      const stream = yield* Transport.dial(listener.address)
      yield* Effect.forkChild(destination.receive(yield* PacketConnection.make([stream])))
      // Gone once the connection is established (the fence acknowledged): before, it would only be refused.
      while ((yield* source.summary).connections === 0) yield* Effect.sleep("5 millis")
      yield* stream.close
      const error = yield* Effect.flip(Fiber.join(served))
      assert.strictEqual(error._tag, "MigrationError")
      assert.include(error.message, "the destination went away")
      assert.include(error.message, "did not come back within")
    })))

  it.live("a resumed connection that names other devices is refused", () =>
    live(Effect.gen(function*() {
      const made: Array<BlockDevice> = []
      const destination = yield* memoryDestination(made)
      const run = Effect.fnUntraced(function*(size: number) {
        const disk = yield* randomDevice(size, "mismatch")
        const source = yield* MigrationSource.make([{ name: "d", device: disk, blockSize: bs }])
        const { listener, next } = yield* listening("tcp")
        yield* Effect.forkChild(source.serve(next, { resumeTimeout: "1 second" }))
        return yield* PacketConnection.make([yield* Transport.dial(listener.address)])
      })
      yield* destination.receive(yield* run(256 * KiB))
      const error = yield* Effect.flip(destination.receive(yield* run(512 * KiB)))
      assert.include(error.message, "differs from the one being received")
    })))
})
