// Helpers shared by the transport and packet connection tests: temp dirs for Unix sockets, connected pairs,
// reading a connection to its end, deterministic bytes.
import { Effect, Pull } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import type { Address } from "../../src/index.ts"
import { Transport } from "../../src/index.ts"

/** A fresh temp directory, removed with the scope. */
export const tempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "tessera-protocol-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

let names = 0

/** A fresh listening address of each scheme (TCP on port 0, Unix in a temp dir). */
export const freshAddress = (scheme: "tcp" | "unix" | "memory") =>
  Effect.gen(function*() {
    switch (scheme) {
      case "tcp":
        return "tcp://127.0.0.1:0"
      case "unix":
        return `unix:${path.join(yield* tempDir, "s.sock")}`
      case "memory":
        return `memory:test-${process.pid}-${++names}`
    }
  })

/** `count` connected (client, server) pairs through one listener. */
export const connectedPairs = (
  address: Address.Address | string,
  count: number,
  options?: Transport.DialOptions & Transport.ListenOptions
) =>
  Effect.gen(function*() {
    const listener = yield* Transport.listen(address, options)
    const clients: Array<Transport.Connection> = []
    const servers: Array<Transport.Connection> = []
    for (let i = 0; i < count; i++) {
      const [client, server] = yield* Effect.all([Transport.dial(listener.address, options), listener.accept], {
        concurrency: 2
      })
      clients.push(client)
      servers.push(server)
    }
    return { listener, clients, servers }
  })

/** One connected pair. */
export const connectedPair = (
  address: Address.Address | string,
  options?: Transport.DialOptions & Transport.ListenOptions
) =>
  Effect.map(connectedPairs(address, 1, options), ({ clients, listener, servers }) => ({
    listener,
    client: clients[0]!,
    server: servers[0]!
  }))

/** Everything a connection receives until the peer ends its stream, in one array. */
export const readAll = (connection: Transport.Connection) =>
  Effect.gen(function*() {
    const chunks: Array<Uint8Array> = []
    const next = Pull.catchDone(connection.read, () => Effect.succeed(undefined))
    while (true) {
      const batch = yield* next
      if (batch === undefined) return concat(chunks)
      chunks.push(...batch)
    }
  })

/** Counts what a connection receives until the peer ends its stream, pausing `delayMs` between pulls. */
export const countAll = (connection: Transport.Connection, delayMs = 0) =>
  Effect.gen(function*() {
    let total = 0
    const next = Pull.catchDone(connection.read, () => Effect.succeed(undefined))
    while (true) {
      const batch = yield* next
      if (batch === undefined) return total
      for (const chunk of batch) total += chunk.length
      if (delayMs > 0) yield* Effect.sleep(delayMs)
    }
  })

/** One array of all the parts' bytes, in order. */
export const concat = (parts: ReadonlyArray<Uint8Array>): Uint8Array => new Uint8Array(Buffer.concat(parts))

/** Deterministic pseudo-random bytes (xorshift32), so failures reproduce. */
export const pseudoRandom = (length: number, seed = 0x9e3779b9): Uint8Array => {
  const out = new Uint8Array(length)
  let x = seed >>> 0 || 1
  for (let i = 0; i < length; i++) {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    out[i] = x & 0xff
  }
  return out
}

export const equalBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && Buffer.compare(a, b) === 0
