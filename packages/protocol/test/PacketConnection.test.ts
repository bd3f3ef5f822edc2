import { assert, describe, it, layer } from "@effect/vitest"
import { Effect, Exit, Fiber, Pull } from "effect"
import { TestClock } from "effect/testing"
import { PacketConnection, type ProtocolError, Transport, TransportError } from "../src/index.ts"
import {
  conversations,
  echo,
  endedConnection,
  fromHex,
  packetPair,
  payloadOf,
  recordingConnection,
  toHex
} from "./utils/packets.ts"
import { concat, connectedPair, freshAddress, pseudoRandom, readAll } from "./utils/transport.ts"

const MiB = 1024 * 1024
const READ_AT = 0x01
const WRITE_AT = 0x02
const NEED_AT = 0x03

/** The reason tag of a failed effect's ProtocolError. */
const reasonOf = <A>(effect: Effect.Effect<A, ProtocolError.ProtocolError>) =>
  Effect.map(Effect.flip(effect), (error) => error.reason._tag)

/** Collects every request a connection receives for (dev, command) into `into`, until the connection ends. */
const collect = (
  connection: PacketConnection.PacketConnection,
  dev: number,
  command: number,
  into: Array<PacketConnection.Request>
) =>
  Effect.forkChild(
    Effect.ignore(Effect.forever(Effect.map(connection.waitForCommand(dev, command), (request) => into.push(request))))
  )

// Real sockets and real time.
layer(Transport.Transport.layer, { excludeTestServices: true })("PacketConnection", (live) => {
  for (const streams of [1, 4]) {
    live.effect(
      `matches responses to requests across 20 devices x 50 ids at once over ${streams} TCP stream(s)`,
      () =>
        Effect.gen(function*() {
          const { client, server } = yield* packetPair("tcp://127.0.0.1:0", streams, {
            server: { onNewDevice: (dev, connection) => Effect.ignore(echo(connection, dev, READ_AT)) }
          })
          const calls = Array.from({ length: 20 * 50 }, (_, i) => ({ dev: 1 + (i % 20), n: i }))
          yield* Effect.forEach(calls, ({ dev, n }) =>
            Effect.gen(function*() {
              const response = yield* client.request(dev, payloadOf(READ_AT, dev, n & 0xff, n >> 8))
              assert.deepStrictEqual([...response], [READ_AT | 0x80, dev, n & 0xff, n >> 8])
            }), { concurrency: "unbounded", discard: true })
          const metrics = client.metrics()
          assert.strictEqual(metrics.packetsSent, 1000)
          assert.strictEqual(metrics.packetsReceived, 1000)
          assert.strictEqual(metrics.waitingForId, 0)
          assert.strictEqual(metrics.unmatchedResponses, 0)
          assert.strictEqual(metrics.devices, 20)
          assert.strictEqual(server.metrics().droppedRequests, 0)
        }).pipe(Effect.timeout("20 seconds"))
    )
  }

  live.effect("matches responses that arrive in the reverse order of the requests", () =>
    Effect.gen(function*() {
      const { client, server } = yield* packetPair(yield* freshAddress("unix"), 1)
      const answered = Effect.gen(function*() {
        const requests: Array<PacketConnection.Request> = []
        for (let i = 0; i < 10; i++) requests.push(yield* server.waitForCommand(7, READ_AT))
        for (const request of requests.toReversed()) {
          yield* server.respond(7, request.id, payloadOf(READ_AT | 0x80, request.payload[1]!))
        }
      })
      const [responses] = yield* Effect.all([
        Effect.forEach(
          Array.from({ length: 10 }, (_, i) => i),
          (i) => client.request(7, payloadOf(READ_AT, i)),
          { concurrency: "unbounded" }
        ),
        answered
      ], { concurrency: 2 })
      assert.deepStrictEqual(responses.map((response) => response[1]), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    }).pipe(Effect.timeout("10 seconds")))

  live.effect(
    "calls onNewDevice once per device id, on the side that sends and the side that receives",
    () =>
      Effect.gen(function*() {
        const sent: Array<number> = []
        const received: Array<number> = []
        const { client, server } = yield* packetPair("tcp://127.0.0.1:0", 1, {
          client: { onNewDevice: (dev) => Effect.sync(() => sent.push(dev)) },
          server: { onNewDevice: (dev) => Effect.sync(() => received.push(dev)) }
        })
        yield* Effect.forkChild(echo(server, 5, READ_AT))
        for (const dev of [1, 2, 3, 1, 2, 3, 4, 4]) yield* client.send(dev, 0, payloadOf(NEED_AT))
        // One stream keeps order: once dev 5's response is back, the server has routed every frame before it.
        yield* client.request(5, payloadOf(READ_AT))
        yield* client.request(5, payloadOf(READ_AT))
        yield* Effect.sleep(10)
        assert.deepStrictEqual(sent.toSorted(), [1, 2, 3, 4, 5])
        assert.deepStrictEqual(received.toSorted(), [1, 2, 3, 4, 5])
      }).pipe(Effect.timeout("10 seconds"))
  )

  live.effect("a device whose requests nobody takes does not hold up another device", () =>
    Effect.gen(function*() {
      const { client, server } = yield* packetPair("tcp://127.0.0.1:0", 1, { server: { mailboxCapacity: 16 } })
      yield* Effect.forkChild(echo(server, 2, READ_AT))
      // Dev 1 has no handler: its mailbox fills, the rest of its requests are dropped, and dev 2 still flows.
      for (let i = 0; i < 200; i++) yield* client.send(1, 0, payloadOf(WRITE_AT, 0, i))
      for (let i = 0; i < 50; i++) {
        assert.deepStrictEqual([...(yield* client.request(2, payloadOf(READ_AT, i)))], [READ_AT | 0x80, i])
      }
      const metrics = server.metrics()
      assert.strictEqual(metrics.droppedRequests, 200 - 16)
      assert.strictEqual(metrics.packetsReceived, 250)
      // What dev 1 kept is still there for a handler that comes late, oldest first.
      const first = yield* server.waitForCommand(1, WRITE_AT)
      assert.deepStrictEqual([...first.payload], [WRITE_AT, 0, 0])
    }).pipe(Effect.timeout("10 seconds")))

  live.effect(
    "closes with MalformedFrame on a zero-length payload; nothing from the bad frame is delivered",
    () =>
      garbage((good) =>
        concat([
          good,
          fromHex(["01000000", "63000000", "00000000"].join("")), // dev 1, id 99, length 0
          good
        ])
      )
  )

  live.effect(
    "closes with MalformedFrame on a 4 GiB length, before buffering any of it",
    () =>
      garbage((good) =>
        concat([
          good,
          fromHex(["01000000", "63000000", "ffffffff"].join("")), // dev 1, id 99, length 2^32 - 1
          payloadOf(READ_AT, 1, 2, 3),
          good
        ])
      )
  )

  live.effect("closes with MalformedFrame on a frame over the cap, even when it is complete", () =>
    garbage(
      (good) =>
        concat([
          good,
          fromHex(["01000000", "63000000", "d0070000"].join("")),
          new Uint8Array(2000).fill(READ_AT),
          good
        ]),
      1024
    ))

  live.effect("closes with MalformedFrame on random bytes", () => {
    const noise = pseudoRandom(4096, 7)
    // The seed is chosen so the first "header" announces more than the 32 MiB cap.
    assert.isTrue(Buffer.from(noise).readUInt32LE(8) > 32 * MiB)
    return garbage((good) => concat([good, noise]))
  })

  live.effect(
    "the peer ending a stream inside a frame is MalformedFrame",
    () => garbage((good) => concat([good, good.subarray(0, good.length - 1)]))
  )

  for (const conversation of conversations.filter((c) => c.name === "readme-more-complex-conversation")) {
    live.effect(
      `${conversation.name}: the src->dst stream over TCP parses into exactly its frames`,
      () =>
        Effect.gen(function*() {
          const { client: raw, server: stream } = yield* connectedPair("tcp://127.0.0.1:0")
          const server = yield* PacketConnection.make([stream])
          const expected = conversation.frames.filter((frame) => frame.direction === "src->dst")
          const commands = [...new Set(expected.map((frame) => fromHex(frame.payload_hex)[0]!))]
          const received = new Map(commands.map((command) => [command, [] as Array<PacketConnection.Request>]))
          for (const [command, into] of received) yield* collect(server, 1, command, into)
          // Cut the stream into uneven pieces, each its own write, so frames straddle reads.
          const bytes = fromHex(conversation.stream_src_to_dst_hex)
          for (let at = 0, step = 1; at < bytes.length; at += step, step = (step * 7 + 3) % 500 + 1) {
            yield* raw.write([bytes.slice(at, at + step)])
            if (step % 3 === 0) yield* Effect.sleep(1)
          }
          yield* raw.end
          yield* server.await
          for (const command of commands) {
            const want = expected.filter((frame) => fromHex(frame.payload_hex)[0] === command)
            const got = received.get(command)!
            assert.deepStrictEqual(
              got.map((request) => ({ dev: request.dev, id: request.id, payload: toHex(request.payload) })),
              want.map((frame) => ({ dev: frame.dev, id: frame.id, payload: frame.payload_hex }))
            )
          }
          const metrics = server.metrics()
          assert.strictEqual(metrics.packetsReceived, expected.length)
          assert.strictEqual(metrics.bytesReceived, bytes.length)
        }).pipe(Effect.timeout("10 seconds"))
    )

    live.effect(
      `${conversation.name}: each side's sends are byte for byte the recorded stream`,
      () =>
        Effect.gen(function*() {
          for (const direction of ["src->dst", "dst->src"] as const) {
            const { client: stream, server: raw } = yield* connectedPair("tcp://127.0.0.1:0")
            const sender = yield* PacketConnection.make([stream])
            for (const frame of conversation.frames.filter((f) => f.direction === direction)) {
              const payload = fromHex(frame.payload_hex)
              // A response answers its request's id; a request takes the next id of the sender's counter.
              if (PacketConnection.isResponse(payload[0]!)) yield* sender.respond(frame.dev, frame.id, payload)
              else assert.strictEqual(yield* sender.send(frame.dev, 0, payload), frame.id)
            }
            yield* sender.close
            const wire = yield* readAll(raw)
            assert.strictEqual(
              toHex(wire),
              direction === "src->dst" ? conversation.stream_src_to_dst_hex : conversation.stream_dst_to_src_hex
            )
          }
        }).pipe(Effect.timeout("10 seconds"))
    )
  }

  live.effect("256 MiB of 1 MiB WriteAt frames cross TCP in well under 30 s", () =>
    Effect.gen(function*() {
      const { client, server } = yield* packetPair("tcp://127.0.0.1:0", 1)
      yield* Effect.forkChild(Effect.forever(Effect.flatMap(
        server.waitForCommand(1, WRITE_AT),
        (request) => server.respond(1, request.id, payloadOf(0x83, 0, 0, 0x10, 0))
      )))
      const data = new Uint8Array(10 + MiB).fill(0x5a)
      data[0] = WRITE_AT
      const started = Date.now()
      yield* Effect.forEach(Array.from({ length: 256 }), () => client.request(1, data), {
        concurrency: 16,
        discard: true
      })
      const seconds = (Date.now() - started) / 1000
      assert.strictEqual(server.metrics().bytesReceived, 256 * (12 + 10 + MiB))
      assert.isTrue(seconds < 20, `took ${seconds} s`)
    }).pipe(Effect.timeout("30 seconds")))

  live.effect("close: the peer's connection ends cleanly and its waits fail with Closed", () =>
    Effect.gen(function*() {
      const { client, server } = yield* packetPair("tcp://127.0.0.1:0", 4)
      const waiting = yield* Effect.forkChild(server.waitForCommand(1, READ_AT))
      yield* client.send(3, 0, payloadOf(NEED_AT))
      yield* client.close
      yield* client.await
      yield* server.await
      assert.strictEqual(yield* reasonOf(Fiber.join(waiting)), "Closed")
      assert.strictEqual(yield* reasonOf(client.request(1, payloadOf(READ_AT))), "Closed")
      assert.strictEqual(yield* reasonOf(server.send(1, 0, payloadOf(READ_AT))), "Closed")
    }).pipe(Effect.timeout("10 seconds")))

  live.effect(
    "more device ids than maxDevices from the peer close the connection with TooManyDevices",
    () =>
      Effect.gen(function*() {
        const { client, server } = yield* packetPair("tcp://127.0.0.1:0", 1, { server: { maxDevices: 2 } })
        for (const dev of [1, 2, 3]) yield* client.send(dev, 0, payloadOf(NEED_AT))
        assert.strictEqual(yield* reasonOf(server.await), "TooManyDevices")
      }).pipe(Effect.timeout("10 seconds"))
  )
})

/**
 * Sends `bytes(good)` (a good frame, then garbage) to a packet connection and checks that it closes with
 * MalformedFrame, that only the good frame before the garbage reached the handler, and that the sender sees
 * its connection closed.
 */
const garbage = (bytes: (good: Uint8Array) => Uint8Array, maxFrameLength?: number) =>
  Effect.gen(function*() {
    const { client: raw, server: stream } = yield* connectedPair("tcp://127.0.0.1:0")
    const server = yield* PacketConnection.make([stream], { maxFrameLength })
    const seen: Array<PacketConnection.Request> = []
    yield* collect(server, 1, READ_AT, seen)
    const good = fromHex(["01000000", "01000000", "04000000", "01aabbcc"].join("")) // dev 1, id 1, ReadAt-ish
    yield* raw.write([bytes(good)])
    yield* Effect.ignore(raw.end)
    const error = yield* Effect.flip(server.await)
    assert.strictEqual(error.reason._tag, "MalformedFrame")
    assert.deepStrictEqual(seen.map((request) => request.id), [1])
    // The sender's connection is closed from the other side: its reads end, cleanly or with a reset.
    const exit = yield* Effect.exit(Pull.catchDone(Effect.forever(raw.read), () => Effect.void))
    assert.isTrue(Exit.isSuccess(exit) || (Exit.isFailure(exit) && exit.cause !== undefined))
    assert.strictEqual(yield* reasonOf(server.request(1, payloadOf(READ_AT))), "MalformedFrame")
  }).pipe(Effect.timeout("10 seconds"))

// In-memory connections, and a test clock of its own for each test (a shared one would let the tests, which
// run concurrently, advance each other's time).
describe("PacketConnection (test clock)", () => {
  it.effect("an unanswered request fails with Timeout; its late response is counted and dropped", () =>
    Effect.gen(function*() {
      const { client, server } = yield* packetPair(`memory:timeout`, 1)
      const request = yield* Effect.forkChild(client.request(1, payloadOf(READ_AT), { timeout: "5 seconds" }))
      const received = yield* server.waitForCommand(1, READ_AT)
      yield* TestClock.adjust("4 seconds")
      assert.isUndefined(request.pollUnsafe())
      yield* TestClock.adjust("1 second")
      const error = yield* Effect.flip(Fiber.join(request))
      assert.strictEqual(error.reason._tag, "Timeout")
      assert.strictEqual(error.message, "dev 1: no response to id 1 within 5000 ms")
      yield* server.respond(1, received.id, payloadOf(READ_AT | 0x80))
      yield* client.request(1, payloadOf(READ_AT), { timeout: "1 second" }).pipe(
        Effect.flip,
        Effect.forkChild,
        Effect.andThen(TestClock.adjust("1 second"))
      )
      assert.strictEqual(client.metrics().unmatchedResponses, 1)
      assert.strictEqual(client.metrics().waitingForId, 0)
    }).pipe(Effect.provide(Transport.Transport.layerMemory)))

  it.effect("waitForCommand fails with Timeout when given one", () =>
    Effect.gen(function*() {
      const connection = yield* PacketConnection.make([recordingConnection().connection])
      const wait = yield* Effect.forkChild(connection.waitForCommand(3, WRITE_AT, { timeout: "2 seconds" }))
      yield* TestClock.adjust("2 seconds")
      const error = yield* Effect.flip(Fiber.join(wait))
      assert.strictEqual(error.message, "dev 3: no request with command 0x02 within 2000 ms")
    }))

  it.effect("request ids count from 1 across devices; id 0 picks the next, a given id is kept", () =>
    Effect.gen(function*() {
      const connection = yield* PacketConnection.make([recordingConnection().connection])
      assert.strictEqual(yield* connection.send(1, 0, payloadOf(NEED_AT)), 1)
      assert.strictEqual(yield* connection.send(2, 0, payloadOf(NEED_AT)), 2)
      assert.strictEqual(yield* connection.send(2, 77, payloadOf(NEED_AT)), 77)
      assert.strictEqual(yield* connection.send(1, 0, payloadOf(NEED_AT)), 3)
    }))

  it.effect("refuses empty payloads, payloads over the cap and waiting for a response command", () =>
    Effect.gen(function*() {
      const connection = yield* PacketConnection.make([recordingConnection().connection], { maxFrameLength: 100 })
      assert.strictEqual(yield* reasonOf(connection.send(1, 0, new Uint8Array(0))), "BadArgument")
      assert.strictEqual(yield* reasonOf(connection.send(1, 0, new Uint8Array(101))), "BadArgument")
      assert.strictEqual(yield* reasonOf(connection.waitForCommand(1, 0x83)), "BadArgument")
    }))

  it.effect("sends a large payload by reference next to its header, without copying it", () =>
    Effect.gen(function*() {
      const { connection, writes } = recordingConnection()
      const packets = yield* PacketConnection.make([connection])
      const data = new Uint8Array(MiB + 10)
      data[0] = WRITE_AT
      yield* packets.send(4, 9, data)
      assert.strictEqual(writes.length, 1)
      const [header, payload] = writes[0]!
      assert.strictEqual(toHex(header!), ["04000000", "09000000", "0a001000"].join(""))
      assert.strictEqual(payload, data)
    }))

  it.effect("small frames sent in one burst leave in one write", () =>
    Effect.gen(function*() {
      const { connection, writes } = recordingConnection()
      const packets = yield* PacketConnection.make([connection])
      yield* Effect.forEach([1, 2, 3], (dev) => packets.send(dev, 0, payloadOf(NEED_AT, dev)), {
        concurrency: "unbounded"
      })
      // Queued, not yet written: the write happens at the end of the task.
      assert.strictEqual(writes.length, 0)
      yield* Effect.yieldNow
      assert.strictEqual(writes.length, 1)
      assert.strictEqual(
        toHex(concat(writes[0]!)),
        ["010000000100000002000000", "0301", "020000000200000002000000", "0302", "030000000300000002000000", "0303"]
          .join("")
      )
      assert.strictEqual(packets.metrics().writes, 1)
      assert.strictEqual(packets.metrics().bytesSent, 3 * 14)
    }))

  it.effect("buffering: normal frames wait for the delay or the size limit, an urgent one flushes them all", () =>
    Effect.gen(function*() {
      const { connection, writes } = recordingConnection()
      const packets = yield* PacketConnection.make([connection], { buffering: { maxBytes: 100, delay: "50 millis" } })
      yield* packets.send(1, 0, payloadOf(WRITE_AT, 1))
      yield* packets.send(1, 0, payloadOf(WRITE_AT, 2))
      assert.strictEqual(writes.length, 0)
      yield* packets.send(1, 0, payloadOf(NEED_AT), { urgent: true })
      assert.strictEqual(writes.length, 1)
      assert.strictEqual(concat(writes[0]!).length, 3 * 12 + 2 + 2 + 1)
      assert.strictEqual(packets.metrics().urgentPacketsSent, 1)
      yield* packets.send(1, 0, payloadOf(WRITE_AT, 3))
      yield* TestClock.adjust("49 millis")
      assert.strictEqual(writes.length, 1)
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(writes.length, 2)
      yield* packets.send(1, 0, new Uint8Array(100).fill(WRITE_AT))
      assert.strictEqual(writes.length, 3)
    }))

  it.effect("a failed write ends the connection with TransportFailed; every send and wait fails with it", () =>
    Effect.gen(function*() {
      const broken: Transport.Connection = {
        ...recordingConnection().connection,
        write: () =>
          Effect.fail(
            TransportError.make("test:peer", new TransportError.Io({ operation: "write", cause: new Error("EPIPE") }))
          )
      }
      const connection = yield* PacketConnection.make([broken])
      const waiting = yield* Effect.forkChild(connection.waitForCommand(1, READ_AT))
      // A small send returns once queued; the write at the end of the task fails and ends the connection.
      yield* connection.send(1, 0, payloadOf(NEED_AT))
      const error = yield* Effect.flip(connection.await)
      assert.strictEqual(error.reason._tag, "TransportFailed")
      assert.strictEqual(error.message, "test:peer: write failed: EPIPE")
      assert.strictEqual(yield* reasonOf(Fiber.join(waiting)), "TransportFailed")
      assert.strictEqual(yield* reasonOf(connection.send(1, 0, payloadOf(NEED_AT))), "TransportFailed")
      assert.strictEqual(yield* reasonOf(connection.request(1, payloadOf(READ_AT))), "TransportFailed")
      assert.strictEqual(connection.metrics().writeErrors, 1)
    }))

  it.effect("a mailbox holds at most mailboxBytes of payload (but always one request)", () =>
    Effect.gen(function*() {
      const { client, server } = yield* packetPair("memory:bytes", 1, { server: { mailboxBytes: 100 } })
      yield* client.send(1, 0, new Uint8Array(150).fill(WRITE_AT))
      yield* client.send(1, 0, new Uint8Array(10).fill(WRITE_AT))
      yield* client.send(2, 0, new Uint8Array(60).fill(WRITE_AT))
      yield* client.send(2, 0, new Uint8Array(40).fill(WRITE_AT))
      yield* client.send(2, 0, new Uint8Array(1).fill(WRITE_AT))
      yield* client.request(3, payloadOf(READ_AT)).pipe(Effect.forkChild)
      yield* server.waitForCommand(3, READ_AT)
      assert.strictEqual(server.metrics().droppedRequests, 2)
      assert.strictEqual((yield* server.waitForCommand(1, WRITE_AT)).payload.length, 150)
      assert.strictEqual((yield* server.waitForCommand(2, WRITE_AT)).payload.length, 60)
      assert.strictEqual((yield* server.waitForCommand(2, WRITE_AT)).payload.length, 40)
    }).pipe(Effect.provide(Transport.Transport.layerMemory)))

  it.effect("a peer that ends every stream at once ends the connection cleanly", () =>
    Effect.gen(function*() {
      const connection = yield* PacketConnection.make([endedConnection, endedConnection])
      yield* connection.await
      assert.strictEqual(yield* reasonOf(connection.request(1, payloadOf(READ_AT))), "Closed")
    }))
})
