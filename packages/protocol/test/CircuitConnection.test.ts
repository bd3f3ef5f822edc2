/**
 * A circuit as a `Transport.Connection`: bytes and half-close through fragments, and the Silo migration
 * (MigrationSource / MigrationDestination, unchanged) running over a circuit while other circuits share the
 * same TCP connection, over plaintext and TLS.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Device from "@tessera/storage/Device"
import * as Memory from "@tessera/storage/Memory"
import type { BlockDevice } from "@tessera/storage/Provider"
import type { Scope } from "effect"
import { Cause, Effect, Exit, Fiber } from "effect"
import * as Crypto from "node:crypto"
import * as CircuitConnection from "../src/CircuitConnection.ts"
import * as MigrationDestination from "../src/MigrationDestination.ts"
import * as MigrationSource from "../src/MigrationSource.ts"
import * as PacketConnection from "../src/PacketConnection.ts"
import * as Transport from "../src/Transport.ts"
import { echoService, eventually, host, listening, securities } from "./utils/circuits.ts"

const MiB = 1024 * 1024

const live = <A, E>(effect: Effect.Effect<A, E, Transport.Transport | Scope.Scope>) =>
  effect.pipe(Effect.provide(Transport.Transport.layer), Effect.timeout("30 seconds"))

/** Everything a connection reads until its end. */
const readAll = (connection: Transport.Connection) =>
  Effect.gen(function*() {
    const chunks: Array<Uint8Array> = []
    while (true) {
      const exit = yield* Effect.exit(connection.read)
      if (Exit.isFailure(exit)) {
        if (Cause.hasFails(exit.cause) && !Cause.isDone(Cause.squash(exit.cause))) {
          return yield* Effect.failCause(exit.cause)
        }
        return Buffer.concat(chunks)
      }
      chunks.push(...exit.value)
    }
  })

for (const mode of securities) {
  describe(`CircuitConnection over ${mode}`, () => {
    it.live("carries bytes both ways with half-closes, large writes cut into fragments", () =>
      live(Effect.gen(function*() {
        const server = yield* listening(mode, 0)
        const accept = yield* CircuitConnection.serve(server.service, "bytes")
        const client = yield* host(mode, 1)
        const dialled = yield* CircuitConnection.dial(client, server.address, "bytes", { chunkSize: 64 * 1024 })
        const accepted = yield* accept
        const data = Crypto.randomBytes(3 * MiB + 17)
        const [, received] = yield* Effect.all([
          Effect.andThen(dialled.write([data.subarray(0, 10), data.subarray(10)]), dialled.end),
          readAll(accepted)
        ], { concurrency: 2 })
        assert.isTrue(received.equals(data))
        // The other direction still works after the first half-close.
        const reply = Crypto.randomBytes(100_000)
        const [, back] = yield* Effect.all([Effect.andThen(accepted.write([reply]), accepted.end), readAll(dialled)], {
          concurrency: 2
        })
        assert.isTrue(back.equals(reply))
      })))

    it.live("queuedBytes counts what a write has not got onto the connection yet", () =>
      live(Effect.gen(function*() {
        // The smallest window: a reader that does not read holds the writer after 256 KiB.
        const server = yield* listening(mode, 0, { window: 256 * 1024 })
        const accept = yield* CircuitConnection.serve(server.service, "bytes")
        const client = yield* host(mode, 1)
        const dialled = yield* CircuitConnection.dial(client, server.address, "bytes", { chunkSize: 64 * 1024 })
        const accepted = yield* accept
        assert.strictEqual(dialled.queuedBytes(), 0)
        const data = Crypto.randomBytes(2 * MiB)
        const writing = yield* Effect.forkChild(dialled.write([data]))
        yield* Effect.sleep(200)
        assert.isUndefined(writing.pollUnsafe())
        const held = dialled.queuedBytes()
        assert.isAbove(held, MiB)
        assert.isAtMost(held, 2 * MiB - 256 * 1024 + 64 * 1024)
        const received = yield* Effect.forkChild(readAll(accepted))
        yield* Fiber.join(writing)
        yield* dialled.end
        assert.isTrue((yield* Fiber.join(received)).equals(data))
        assert.strictEqual(dialled.queuedBytes(), 0)
        // A write interrupted while it waits for credit takes its bytes back.
        const stuck = yield* Effect.forkChild(dialled.write([Crypto.randomBytes(MiB)]))
        yield* eventually(() => dialled.queuedBytes() > MiB / 2)
        yield* Fiber.interrupt(stuck)
        yield* eventually(() => dialled.queuedBytes() === 0)
      })))

    it.live("runs a Silo migration in a circuit while another circuit echoes on the same connection", () =>
      live(Effect.gen(function*() {
        const server = yield* listening(mode, 0)
        yield* server.service.register("echo", echoService((f) => ({ fragPart: f.fragPart })))
        const accept = yield* CircuitConnection.serve(server.service, "silo-migration")
        const disk = yield* Memory.make(4 * MiB, "circuit-source")
        yield* Device.fillPseudoRandom(disk, "circuit-source")
        const source = yield* MigrationSource.make([{ name: "disk", device: disk, blockSize: 64 * 1024 }])
        const made: Array<BlockDevice> = []
        const destination = yield* MigrationDestination.make({
          device: ({ info }) => Effect.tap(Memory.make(info.size, info.name), (d) => Effect.sync(() => made.push(d)))
        })
        const served = yield* Effect.forkChild(source.serve(Effect.flatMap(accept, (c) => PacketConnection.make([c]))))
        const client = yield* host(mode, 1)
        const connection = yield* CircuitConnection.dial(client, server.address, "silo-migration")
        const received = yield* Effect.forkChild(destination.receive(yield* PacketConnection.make([connection])))
        // Chatter on another circuit of the same connection while the migration runs.
        yield* client.register("c", () => Effect.never)
        const me = yield* client.startLocalPeer("c")
        const chat = yield* me.openCircuit(`${server.address}/echo/`)
        yield* chat.read
        let echoes = 0
        while (received.pollUnsafe() === undefined && echoes < 10_000) {
          yield* chat.send({ subject: "echo request", fragPart: echoes })
          assert.strictEqual((yield* chat.read).fragPart, echoes)
          echoes++
        }
        const summary = yield* Fiber.join(served)
        yield* Fiber.join(received)
        assert.isTrue(yield* destination.completed)
        assert.strictEqual(summary.connections, 1)
        assert.isTrue(yield* Device.equals(disk, made[0]!))
        assert.isAbove(echoes, 0)
        assert.strictEqual(client.connectionCount(), 1)
      })))
  })
}
