import { assert, describe, layer } from "@effect/vitest"
import { Effect, Fiber, Pull, Stream } from "effect"
import * as fs from "node:fs"
import { Address, Transport } from "../src/index.ts"
import {
  concat,
  connectedPair,
  countAll,
  equalBytes,
  freshAddress,
  pseudoRandom,
  readAll,
  tempDir
} from "./utils/transport.ts"

const MiB = 1024 * 1024
const schemes = ["tcp", "unix", "memory"] as const

// Real sockets and real time: the shared layer runs without the test clock.
layer(Transport.Transport.layer, { excludeTestServices: true })("Transport", (it) => {
  // Sockets in both ways of waking a reader (in-process connections have one).
  type Case = { readonly scheme: (typeof schemes)[number]; readonly readWake: Transport.ReadWake }
  const cases = schemes.flatMap((scheme): Array<Case> =>
    scheme === "memory"
      ? [{ scheme, readWake: "turn" }]
      : [{ scheme, readWake: "turn" }, { scheme, readWake: "read" }]
  )
  for (const { readWake, scheme } of cases) {
    const pair = (address: Address.Address | string, options?: Transport.DialOptions & Transport.ListenOptions) =>
      connectedPair(address, { ...options, readWake })
    describe(`${scheme}, reader woken per ${readWake}`, () => {
      it.effect("carries a batch of arrays both ways, in order, through half-closes", () =>
        Effect.gen(function*() {
          const { client, server } = yield* pair(yield* freshAddress(scheme))
          const parts = [pseudoRandom(1), pseudoRandom(70_000, 1), pseudoRandom(3 * MiB, 2), pseudoRandom(12, 3)]
          const [, received] = yield* Effect.all([
            Effect.andThen(client.write(parts), client.end),
            readAll(server)
          ], { concurrency: 2 })
          assert.isTrue(equalBytes(received, concat(parts)))
          // The server can still answer after the client half-closed.
          const reply = pseudoRandom(100_000, 4)
          const [, back] = yield* Effect.all([Effect.andThen(server.write([reply]), server.end), readAll(client)], {
            concurrency: 2
          })
          assert.isTrue(equalBytes(back, reply))
        }).pipe(Effect.timeout("20 seconds")))

      it.effect("a writer facing a reader that does not read stalls at a bounded amount", () =>
        Effect.gen(function*() {
          const readBuffer = MiB
          const { client, server } = yield* pair(yield* freshAddress(scheme), { readBuffer })
          const chunk = new Uint8Array(MiB)
          let accepted = 0
          let maxQueued = 0
          const total = 256 * MiB
          const writer = yield* Effect.forkChild(Effect.gen(function*() {
            while (accepted < total) {
              yield* client.write([chunk])
              accepted += chunk.length
              maxQueued = Math.max(maxQueued, client.queuedBytes())
            }
            yield* client.end
          }))
          // Wait until the writer stops making progress.
          let last = -1
          while (accepted !== last) {
            last = accepted
            yield* Effect.sleep(150)
          }
          // Memory: the pipe holds at most the reader's buffer plus one write. Sockets: the kernel's buffers
          // add a few MiB on loopback.
          const bound = scheme === "memory" ? readBuffer + chunk.length : 64 * MiB
          assert.isTrue(accepted <= bound, `${accepted} bytes accepted without a reader`)
          assert.isTrue(maxQueued <= bound)
          // A slow reader then gets everything, and the writer finishes.
          const received = yield* countAll(server, 1)
          yield* Fiber.join(writer)
          assert.strictEqual(received, total)
        }).pipe(Effect.timeout("25 seconds")))

      it.effect("reads as a Stream", () =>
        Effect.gen(function*() {
          const { client, server } = yield* pair(yield* freshAddress(scheme))
          yield* Effect.andThen(client.write([new Uint8Array([1, 2]), new Uint8Array([3])]), client.end)
          const chunks = yield* Stream.runCollect(Transport.stream(server))
          assert.deepStrictEqual([...concat(chunks)], [1, 2, 3])
        }).pipe(Effect.timeout("10 seconds")))

      it.effect("closing one end: the peer reads to the end, local operations fail with Closed", () =>
        Effect.gen(function*() {
          const { client, server } = yield* pair(yield* freshAddress(scheme))
          yield* client.write([new Uint8Array([7, 7, 7])])
          yield* client.close
          assert.deepStrictEqual([...(yield* readAll(server))], [7, 7, 7])
          const readError = yield* Effect.flip(Pull.catchDone(client.read, () => Effect.die("end")))
          assert.strictEqual(readError.reason._tag, "Closed")
          const writeError = yield* Effect.flip(client.write([new Uint8Array(1)]))
          assert.strictEqual(writeError.reason._tag, "Closed")
        }).pipe(Effect.timeout("10 seconds")))

      it.effect("accept fails with Closed once the listener's scope is closed", () =>
        Effect.gen(function*() {
          const address = yield* freshAddress(scheme)
          const listener = yield* Effect.scoped(Transport.listen(address, { readWake }))
          const error = yield* Effect.flip(Effect.scoped(listener.accept))
          assert.strictEqual(error.reason._tag, "Closed")
        }).pipe(Effect.timeout("10 seconds")))
    })
  }

  describe("tcp", () => {
    it.effect("port 0 binds a real port", () =>
      Effect.gen(function*() {
        const listener = yield* Transport.listen("tcp://127.0.0.1:0")
        assert.strictEqual(listener.address._tag, "Tcp")
        if (listener.address._tag === "Tcp") assert.isTrue(listener.address.port > 0)
        const [client, server] = yield* Effect.all([Transport.dial(listener.address), listener.accept], {
          concurrency: 2
        })
        assert.strictEqual(client.remoteAddress, Address.format(listener.address))
        assert.strictEqual(server.localAddress, Address.format(listener.address))
      }).pipe(Effect.timeout("10 seconds")))

    it.effect("a refused connection is a ConnectFailed TransportError", () =>
      Effect.gen(function*() {
        // A port that was just free: bind it, then let the listener go.
        const address = yield* Effect.scoped(Effect.map(Transport.listen("tcp://127.0.0.1:0"), (l) => l.address))
        const error = yield* Effect.flip(Transport.dial(address))
        assert.strictEqual(error._tag, "TransportError")
        if (error._tag === "TransportError") {
          assert.strictEqual(error.reason._tag, "ConnectFailed")
          assert.strictEqual(error.address, Address.format(address))
          assert.include(error.message, "ECONNREFUSED")
        }
      }).pipe(Effect.timeout("10 seconds")))

    it.effect("listening on a port in use is a ListenFailed TransportError", () =>
      Effect.gen(function*() {
        const first = yield* Transport.listen("tcp://127.0.0.1:0")
        const error = yield* Effect.flip(Transport.listen(first.address))
        assert.strictEqual(error._tag === "TransportError" && error.reason._tag, "ListenFailed")
      }).pipe(Effect.timeout("10 seconds")))
  })

  for (const scheme of ["tcp", "unix"] as const) {
    it.effect(`${scheme}: receiveInto reads a stretch of the stream straight into the given memory`, () =>
      Effect.gen(function*() {
        const { client, server } = yield* connectedPair(yield* freshAddress(scheme))
        const sent = pseudoRandom(24 * MiB, 7)
        for (const [reader, writer] of [[server, client], [client, server]] as const) {
          const receiveInto = reader.receiveInto
          assert.isDefined(receiveInto)
          const target = new Uint8Array(sent.length - 1000)
          const chunks: Array<Uint8Array> = []
          let position = 0
          let asked = false
          const written = yield* Effect.forkChild(writer.write([sent]))
          while (position < sent.length) {
            const batch = yield* reader.read
            for (const chunk of batch) {
              chunks.push(chunk)
              position += chunk.length
            }
            if (!asked) {
              // From byte 1000 on; whatever already arrived past it is not in `target`.
              asked = true
              receiveInto!(target, 1000)
            }
          }
          yield* Fiber.join(written)
          assert.isTrue(equalBytes(concat(chunks), sent))
          // Chunks in `target` sit where their stream position says, and most of the stream went there.
          let at = 0
          let inTarget = 0
          for (const chunk of chunks) {
            if (chunk.buffer === target.buffer) {
              assert.strictEqual(chunk.byteOffset, at - 1000)
              inTarget += chunk.length
            }
            at += chunk.length
          }
          assert.isAbove(inTarget, sent.length / 2)
          assert.isTrue(equalBytes(target.subarray(sent.length - 1000 - 4096), sent.subarray(sent.length - 4096)))
        }
      }).pipe(Effect.timeout("20 seconds")))
  }

  for (const scheme of ["tcp", "unix"] as const) {
    it.effect(`${scheme}: written waits until the OS has copied every byte; the arrays may change after it`, () =>
      Effect.gen(function*() {
        const { client, server } = yield* connectedPair(yield* freshAddress(scheme))
        const written = client.written!
        // Nobody reads, so once the OS's buffers (whose size the machine decides) are full, `written` waits.
        const blocks: Array<Uint8Array> = []
        let done = yield* Effect.forkChild(written)
        while (done.pollUnsafe() !== undefined || blocks.length === 0) {
          assert.isBelow(blocks.length, 16, "the OS took 256 MiB nobody read")
          const block = pseudoRandom(16 * MiB, 9 + blocks.length)
          blocks.push(block)
          yield* Effect.forkChild(client.write([block]))
          done = yield* Effect.forkChild(written)
          yield* Effect.sleep(100)
        }
        const original = concat(blocks.map((block) => block.slice()))
        const received: Array<Uint8Array> = []
        let total = 0
        let changed = false
        while (total < original.length) {
          for (const chunk of yield* server.read) {
            received.push(chunk.slice())
            total += chunk.length
          }
          // Out of the arrays once written completes: changing them does not change what still arrives.
          if (!changed && done.pollUnsafe() !== undefined) {
            for (const block of blocks) block.fill(0)
            changed = true
          }
        }
        yield* Fiber.join(done)
        assert.isTrue(equalBytes(concat(received), original))
      }).pipe(Effect.timeout("30 seconds")))
  }
  it.effect("memory: connections have no written (the peer receives the arrays themselves)", () =>
    Effect.gen(function*() {
      const { client } = yield* connectedPair(yield* freshAddress("memory"))
      assert.isUndefined(client.written)
      assert.isUndefined(client.receiveInto)
    }))

  describe("unix", () => {
    it.effect("removes the socket file when the listener closes; a second listener on it fails", () =>
      Effect.gen(function*() {
        const path = `${yield* tempDir}/a.sock`
        yield* Effect.scoped(Effect.gen(function*() {
          yield* Transport.listen(`unix:${path}`)
          assert.isTrue(fs.existsSync(path))
          const error = yield* Effect.flip(Transport.listen(`unix:${path}`))
          assert.strictEqual(error._tag === "TransportError" && error.reason._tag, "ListenFailed")
        }))
        assert.isFalse(fs.existsSync(path))
      }).pipe(Effect.timeout("10 seconds")))

    it.effect("dialling a path nobody listens on is ConnectFailed", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(Transport.dial(`unix:${yield* tempDir}/none.sock`))
        assert.strictEqual(error._tag === "TransportError" && error.reason._tag, "ConnectFailed")
      }).pipe(Effect.timeout("10 seconds")))
  })

  describe("memory", () => {
    it.effect("no listener is ConnectFailed; a name in use is ListenFailed", () =>
      Effect.gen(function*() {
        const address = yield* freshAddress("memory")
        const refused = yield* Effect.flip(Transport.dial(address))
        assert.strictEqual(refused._tag === "TransportError" && refused.reason._tag, "ConnectFailed")
        yield* Transport.listen(address)
        const inUse = yield* Effect.flip(Transport.listen(address))
        assert.strictEqual(inUse._tag === "TransportError" && inUse.reason._tag, "ListenFailed")
      }))

    it.effect("connections beyond the backlog are refused, not queued", () =>
      Effect.gen(function*() {
        const address = yield* freshAddress("memory")
        yield* Transport.listen(address, { backlog: 2 })
        yield* Transport.dial(address)
        yield* Transport.dial(address)
        const error = yield* Effect.flip(Transport.dial(address))
        assert.strictEqual(error._tag === "TransportError" && error.reason._tag, "ConnectFailed")
      }))
  })

  it.effect("a malformed address is an AddressError", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Transport.dial("http://example.com"))
      assert.strictEqual(error._tag, "AddressError")
    }))
})

layer(Transport.Transport.layerMemory)("Transport.layerMemory", (it) => {
  it.effect("has no TCP: Unsupported", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Transport.dial("tcp://127.0.0.1:1"))
      assert.strictEqual(error._tag === "TransportError" && error.reason._tag, "Unsupported")
      assert.strictEqual(error.message, "tcp://127.0.0.1:1: no transport for tcp:// addresses in this program")
    }))
})
