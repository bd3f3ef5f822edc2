/**
 * Peer circuits against `@chainsafe/libp2p-yamux` streams (see README.md, "Circuits benchmark"). Two processes
 * on 127.0.0.1: this one sends, a forked child receives (and echoes for the round trips). Each case uses a new
 * TCP connection and opens its circuits or streams on it:
 *
 * - throughput: 1 and 100 concurrent circuits / streams moving `BENCH_BYTES` (1 GiB) in total, in 1 MiB sends;
 *   timed from the first send to the child's 1-byte acknowledgement of the last stream's last byte;
 * - round trip: one 64-byte fragment / message echoed, `BENCH_PINGS` times on one circuit / stream; median
 *   and p99. The two systems take turns going first, each after a pause of `SETTLE_MS`.
 *
 * Plaintext on both sides (yamux has no encryption of its own). `node benchmark/circuits.ts [--json]`.
 */
import { Effect, Exit, Scope, Stream } from "effect"
import { fork } from "node:child_process"
import * as Net from "node:net"
import * as Circuit from "../src/Circuit.ts"
import * as PeerService from "../src/PeerService.ts"
import * as Transport from "../src/Transport.ts"
import { muxer, type YamuxMuxer } from "./circuitsYamux.ts"

const MiB = 1024 * 1024
const TOTAL = Number(process.env.BENCH_BYTES ?? 1024 * MiB)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
const PINGS = Number(process.env.BENCH_PINGS ?? 2000)
// Idle time before each round-trip series, for the garbage collection the throughput cases left pending (in
// either process) to finish rather than land in whichever series comes first.
const SETTLE_MS = 250
const CHUNK = MiB
const WINDOW = process.env.BENCH_WINDOW === undefined ? undefined : Number(process.env.BENCH_WINDOW)
const hostOptions: PeerService.Options = { security: { _tag: "Plaintext" }, window: WINDOW }

interface Addresses {
  readonly circuits: string
  readonly yamux: number
}

// --- child: the receiving side of both systems ------------------------------------------------------------------

const child = Effect.gen(function*() {
  const host = yield* PeerService.make(hostOptions)
  // sink: the opening fragment says how many bytes follow; acknowledge the last one.
  yield* host.register(
    "sink",
    (_peer, circuits) =>
      Stream.runForEach(circuits, (circuit) =>
        Effect.forkDetach(
          Effect.gen(function*() {
            const first = yield* circuit.read
            let left = first.fragPart
            while (left > 0) left -= (yield* circuit.read).payload.length
            yield* circuit.send({ subject: "done" })
          }).pipe(Effect.ignore)
        ))
  )
  yield* host.register("echo", (_peer, circuits) =>
    Stream.runForEach(circuits, (circuit) =>
      Effect.forkDetach(
        Stream.runForEach(
          circuit.reads,
          (f) => f.kind === Circuit.Kind.StartCircuit ? Effect.void : circuit.send({ payload: f.payload })
        ).pipe(
          Effect.ignore
        )
      )))
  const address = yield* host.listen("tcp://127.0.0.1:0")
  const yamuxServer = Net.createServer({ noDelay: true }, (socket) => {
    const m = muxer(socket, false)
    m.addEventListener("stream", (event) => {
      const stream = event.detail
      let expected = -1
      let received = 0
      stream.addEventListener("message", (message) => {
        const bytes = message.data.subarray()
        if (expected < 0) {
          // The first 8 bytes: how many follow (0: echo every message).
          expected = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0))
          received = bytes.length - 8
          if (expected === 0 && received > 0) stream.send(bytes.subarray(8))
        } else if (expected === 0) stream.send(bytes)
        else received += bytes.length
        if (expected > 0 && received >= expected) {
          stream.send(new Uint8Array(1))
          expected = -2
        }
      })
    })
  })
  const yamuxPort = yield* Effect.callback<number>((resume) => {
    yamuxServer.listen(0, "127.0.0.1", () => resume(Effect.succeed((yamuxServer.address() as Net.AddressInfo).port)))
  })
  process.send!({ circuits: address, yamux: yamuxPort } satisfies Addresses)
  yield* Effect.callback<void>((resume) => {
    process.on("disconnect", () => resume(Effect.void))
  })
  yamuxServer.close()
})

// --- parent: circuits -------------------------------------------------------------------------------------------

const payload = new Uint8Array(CHUNK).fill(7)

const circuitThroughput = (address: string, streams: number) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const host = yield* Scope.provide(PeerService.make(hostOptions), scope)
    yield* host.register("sender", () => Effect.never)
    const me = yield* host.startLocalPeer("sender")
    const { url } = yield* host.startRemotePeer("sink", address)
    const share = Math.floor(TOTAL / streams)
    const circuits = yield* Effect.forEach(
      Array.from({ length: streams }),
      () => me.openCircuit(url, { fragment: { fragPart: share } }),
      { concurrency: 16 }
    )
    const start = performance.now()
    yield* Effect.forEach(circuits, (circuit) =>
      Effect.gen(function*() {
        for (let left = share; left > 0; left -= CHUNK) {
          yield* circuit.send({ payload: left >= CHUNK ? payload : payload.subarray(0, left) })
        }
        yield* circuit.read
      }), { concurrency: "unbounded", discard: true })
    const seconds = (performance.now() - start) / 1000
    yield* Scope.close(scope, Exit.void)
    return (share * streams) / seconds / 1e6
  })

const circuitRoundTrips = (address: string) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const host = yield* Scope.provide(PeerService.make(hostOptions), scope)
    yield* host.register("pinger", () => Effect.never)
    const me = yield* host.startLocalPeer("pinger")
    const circuit = yield* me.openCircuit(`${address}/echo/`)
    const ping = new Uint8Array(64)
    const times: Array<number> = []
    for (let i = 0; i < PINGS + 100; i++) {
      const start = performance.now()
      yield* circuit.send({ payload: ping })
      yield* circuit.read
      if (i >= 100) times.push(performance.now() - start)
    }
    yield* Scope.close(scope, Exit.void)
    return times
  })

// --- parent: yamux ----------------------------------------------------------------------------------------------

const connectYamux = (port: number) =>
  new Promise<{ readonly socket: Net.Socket; readonly muxer: YamuxMuxer }>((resolve, reject) => {
    const socket = Net.connect(
      { port, host: "127.0.0.1", noDelay: true },
      () => resolve({ socket, muxer: muxer(socket, true) })
    )
    socket.once("error", reject)
  })

const header = (count: number) => {
  const bytes = new Uint8Array(8)
  new DataView(bytes.buffer).setBigUint64(0, BigInt(count))
  return bytes
}

const yamuxThroughput = async (port: number, streams: number) => {
  const { socket, muxer: m } = await connectYamux(port)
  const share = Math.floor(TOTAL / streams)
  const opened = await Promise.all(Array.from({ length: streams }, () => m.createStream()))
  const start = performance.now()
  await Promise.all(opened.map(async (stream) => {
    const acked = new Promise<void>((resolve) => stream.addEventListener("message", () => resolve(), { once: true }))
    if (!stream.send(header(share))) await stream.onDrain()
    for (let left = share; left > 0; left -= CHUNK) {
      if (!stream.send(left >= CHUNK ? payload : payload.subarray(0, left))) await stream.onDrain()
    }
    await acked
  }))
  const seconds = (performance.now() - start) / 1000
  socket.destroy()
  return (share * streams) / seconds / 1e6
}

const yamuxRoundTrips = async (port: number) => {
  const { socket, muxer: m } = await connectYamux(port)
  const stream = await m.createStream()
  stream.send(header(0))
  let waiting: (() => void) | undefined
  stream.addEventListener("message", () => waiting?.())
  const ping = new Uint8Array(64)
  const times: Array<number> = []
  for (let i = 0; i < PINGS + 100; i++) {
    const start = performance.now()
    const back = new Promise<void>((resolve) => {
      waiting = resolve
    })
    stream.send(ping)
    await back
    if (i >= 100) times.push(performance.now() - start)
  }
  socket.destroy()
  return times
}

// --- report -----------------------------------------------------------------------------------------------------

const median = (values: ReadonlyArray<number>) => {
  const sorted = values.toSorted((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}
const percentile = (values: ReadonlyArray<number>, p: number) => {
  const sorted = values.toSorted((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!
}

const parent = Effect.gen(function*() {
  const worker = fork(new URL(import.meta.url), ["--child"], { stdio: "inherit" })
  const addresses = yield* Effect.callback<Addresses>((resume) => {
    worker.once("message", (message) => resume(Effect.succeed(message as Addresses)))
  })
  const results: Record<string, Array<number>> = {}
  const add = (name: string, value: number) => (results[name] ??= []).push(value)
  const pings: Record<string, Array<number>> = { circuit: [], yamux: [] }
  for (let round = 0; round < ROUNDS; round++) {
    for (const streams of [1, 100]) {
      add(`circuits, ${streams} circuit(s)`, yield* circuitThroughput(addresses.circuits, streams))
      add(`yamux, ${streams} stream(s)`, yield* Effect.promise(() => yamuxThroughput(addresses.yamux, streams)))
    }
    for (const system of round % 2 === 0 ? ["circuit", "yamux"] : ["yamux", "circuit"]) {
      yield* Effect.sleep(SETTLE_MS)
      pings[system]!.push(
        ...(system === "circuit"
          ? yield* circuitRoundTrips(addresses.circuits)
          : yield* Effect.promise(() => yamuxRoundTrips(addresses.yamux)))
      )
    }
  }
  worker.disconnect()
  const table = {
    throughputMBps: Object.fromEntries(Object.entries(results).map(([name, values]) => [name, median(values)])),
    roundTripMicros: Object.fromEntries(
      Object.entries(pings).map((
        [name, values]
      ) => [name, { median: median(values) * 1000, p99: percentile(values, 0.99) * 1000 }])
    ),
    rounds: ROUNDS,
    bytes: TOTAL,
    pingsPerRound: PINGS
  }
  if (process.argv.includes("--json")) console.log(JSON.stringify(table))
  else {
    console.log(`circuits vs yamux, ${TOTAL / MiB} MiB per case, median of ${ROUNDS} rounds (MB = 10^6 B)`)
    for (const [name, value] of Object.entries(table.throughputMBps)) console.log(`  ${name}: ${value.toFixed(0)} MB/s`)
    for (const [name, value] of Object.entries(table.roundTripMicros)) {
      console.log(`  round trip, ${name}: median ${value.median.toFixed(0)} µs, p99 ${value.p99.toFixed(0)} µs`)
    }
  }
})

const program = process.argv.includes("--child") ? child : parent
await Effect.runPromise(Effect.scoped(program.pipe(Effect.provide(Transport.Transport.layer))))
