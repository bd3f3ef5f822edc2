/**
 * Transport benchmark, two processes on one machine (TCP loopback):
 *
 * - raw: 1 GiB in 1 MiB `net.Socket` writes (back-pressure by 'drain'), counted by a bare 'data' listener;
 * - ours: the same bytes through `Transport` (`TcpTransport`) on both sides: `write([chunk])` and `read`;
 * - packets: `PacketConnection` requests with WriteAt-shaped payloads (64 KiB and 1 MiB) answered by a handler
 *   on the other side, over 1 and 4 streams.
 *
 * This process receives; a forked child sends, on command, so process start-up is not timed. Each case is
 * timed from the command to the receiver's last byte (or last request handled), every round runs every case,
 * and each figure is the median over the rounds (the machine is shared and a single run swings).
 * Prints a table and, with --json, one JSON object.
 */
import { Effect, Exit, Pull, Scope } from "effect"
import { fork } from "node:child_process"
import * as Net from "node:net"
import { Bench } from "tinybench"
import { Address, PacketConnection, Transport } from "../src/index.ts"

const MiB = 1024 * 1024
const TOTAL = Number(process.env.BENCH_BYTES ?? 1024 * MiB)
const PACKET_TOTAL = Number(process.env.BENCH_PACKET_BYTES ?? 512 * MiB)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
const IN_FLIGHT = Number(process.env.BENCH_IN_FLIGHT ?? 32)
const WRITE_AT = 0x02
const WRITE_AT_RESPONSE = new Uint8Array([0x83, 0, 0, 0, 0])

type Command =
  | { readonly kind: "raw"; readonly port: number }
  | { readonly kind: "ours"; readonly address: string }
  | { readonly kind: "packets"; readonly address: string; readonly size: number; readonly streams: number }

// -----------------------------------------------------------------------------------------------------------
// sender (the child)
// -----------------------------------------------------------------------------------------------------------

const rawSend = (port: number) =>
  new Promise<void>((resolve, reject) => {
    const chunk = new Uint8Array(MiB)
    const socket = Net.connect({ port, host: "127.0.0.1" })
    socket.on("error", reject)
    socket.on("close", () => resolve())
    socket.on("connect", () => {
      let sent = 0
      const pump = () => {
        while (sent < TOTAL) {
          sent += chunk.length
          if (!socket.write(chunk)) return socket.once("drain", pump)
        }
        socket.end()
      }
      pump()
    })
  })

const oursSend = (address: string) =>
  Effect.gen(function*() {
    const chunk = new Uint8Array(MiB)
    const connection = yield* Transport.dial(address)
    for (let sent = 0; sent < TOTAL; sent += chunk.length) yield* connection.write([chunk])
    yield* connection.end
  }).pipe(Effect.scoped)

/** A WriteAt payload of `size` data bytes: command, subtype, offset, data. */
const writeAt = (size: number): Uint8Array => {
  const payload = new Uint8Array(10 + size)
  payload[0] = WRITE_AT
  return payload
}

const packetsSend = (address: string, size: number, streams: number) =>
  Effect.gen(function*() {
    const connections = yield* Effect.forEach(Array.from({ length: streams }), () => Transport.dial(address))
    const connection = yield* PacketConnection.make(
      connections as [Transport.Connection, ...Array<Transport.Connection>]
    )
    const payload = writeAt(size)
    const count = Math.ceil(PACKET_TOTAL / size)
    yield* Effect.forEach(Array.from({ length: count }), () => connection.request(1, payload), {
      concurrency: IN_FLIGHT,
      discard: true
    })
    yield* connection.close
  }).pipe(Effect.scoped)

const sender = () => {
  process.on("message", (command: Command) => {
    const started = process.cpuUsage()
    const run = command.kind === "raw"
      ? rawSend(command.port)
      : Effect.runPromise(
        (command.kind === "ours"
          ? oursSend(command.address)
          : packetsSend(command.address, command.size, command.streams)).pipe(
            Effect.provide(Transport.Transport.layer)
          )
      )
    run.then(() => {
      const cpu = process.cpuUsage(started)
      process.send!(cpu.user + cpu.system)
    }, (error) => {
      console.error(error)
      process.exit(1)
    })
  })
  process.on("disconnect", () => process.exit(0))
}

// -----------------------------------------------------------------------------------------------------------
// receiver (this process)
// -----------------------------------------------------------------------------------------------------------

const median = (values: ReadonlyArray<number>): number => {
  const sorted = values.toSorted((x, y) => x - y)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

const receiver = async () => {
  const child = fork(new URL(import.meta.url), ["--sender"], { stdio: "inherit" })
  // Resolves with the CPU time (µs) the sender used for the case.
  const childDone = () => new Promise<number>((resolve) => child.once("message", (cpu: number) => resolve(cpu)))
  // CPU µs per case per round, of this process and of the child.
  const cpu = new Map<string, { receiver: Array<number>; sender: Array<number> }>()
  let senderCpu = 0
  const scope = Scope.makeUnsafe()
  const run = <A, E>(effect: Effect.Effect<A, E, Transport.Transport | Scope.Scope>) =>
    Effect.runPromise(effect.pipe(Scope.provide(scope), Effect.provide(Transport.Transport.layer)))

  const rawServer = Net.createServer()
  await new Promise<void>((resolve) => rawServer.listen(0, "127.0.0.1", resolve))
  const rawPort = (rawServer.address() as Net.AddressInfo).port
  const listener = await run(Transport.listen("tcp://127.0.0.1:0"))
  const address = Address.format(listener.address)

  const raw = async () => {
    const received = new Promise<number>((resolve) =>
      rawServer.once("connection", (socket) => {
        let bytes = 0
        socket.on("data", (chunk: Buffer) => {
          bytes += chunk.length
        })
        socket.on("end", () => {
          socket.end()
          resolve(bytes)
        })
      })
    )
    const done = childDone()
    child.send({ kind: "raw", port: rawPort } satisfies Command)
    if ((await received) !== TOTAL) throw new Error("raw: short transfer")
    senderCpu = await done
  }

  const ours = async () => {
    const received = run(Effect.scoped(Effect.gen(function*() {
      const connection = yield* listener.accept
      const next = Pull.catchDone(connection.read, () => Effect.succeed(undefined))
      let bytes = 0
      while (true) {
        const batch = yield* next
        if (batch === undefined) return bytes
        for (const chunk of batch) bytes += chunk.length
      }
    })))
    const done = childDone()
    child.send({ kind: "ours", address } satisfies Command)
    if ((await received) !== TOTAL) throw new Error("ours: short transfer")
    senderCpu = await done
  }

  const packets = (size: number, streams: number) => async () => {
    const count = Math.ceil(PACKET_TOTAL / size)
    const handled = run(Effect.scoped(Effect.gen(function*() {
      const connections = yield* Effect.forEach(Array.from({ length: streams }), () => listener.accept)
      const connection = yield* PacketConnection.make(
        connections as [Transport.Connection, ...Array<Transport.Connection>]
      )
      for (let i = 0; i < count; i++) {
        const request = yield* connection.waitForCommand(1, WRITE_AT)
        yield* connection.respond(1, request.id, WRITE_AT_RESPONSE)
      }
      // The last responses may still be queued for the end-of-task write: close flushes them.
      yield* connection.close
      return count
    })))
    const done = childDone()
    child.send({ kind: "packets", address, size, streams } satisfies Command)
    await handled
    senderCpu = await done
  }

  const cases = [
    { name: "raw net.Socket, 1 MiB writes", bytes: TOTAL, frames: 0, fn: raw },
    { name: "Transport (TCP), 1 MiB writes", bytes: TOTAL, frames: 0, fn: ours },
    ...[64 * 1024, MiB].flatMap((size) =>
      [1, 4].map((streams) => ({
        name: `PacketConnection ${size / 1024} KiB WriteAt, ${streams} stream${streams > 1 ? "s" : ""}`,
        bytes: Math.ceil(PACKET_TOTAL / size) * (size + 10 + 12),
        frames: Math.ceil(PACKET_TOTAL / size),
        fn: packets(size, streams)
      }))
    )
  ]

  // BENCH_CASES=raw,Transport runs only the cases whose names contain one of the words.
  const only = process.env.BENCH_CASES?.split(",")
  const selected = only === undefined ? cases : cases.filter((c) => only.some((word) => c.name.includes(word)))
  const samples = new Map<string, Array<number>>()
  for (let round = 0; round < ROUNDS; round++) {
    const bench = new Bench({ iterations: 1, time: 0, warmup: round === 0, warmupIterations: 1, warmupTime: 0 })
    for (const c of selected) {
      bench.add(c.name, async () => {
        const started = process.cpuUsage()
        await c.fn()
        const used = process.cpuUsage(started)
        const entry = cpu.get(c.name) ?? { receiver: [], sender: [] }
        entry.receiver.push(used.user + used.system)
        entry.sender.push(senderCpu)
        cpu.set(c.name, entry)
      })
    }
    await bench.run()
    for (const task of bench.tasks) {
      const result = task.result
      if (!result || !("latency" in result)) throw new Error(`no result for ${task.name}`)
      samples.set(task.name, [...(samples.get(task.name) ?? []), result.latency.mean])
    }
  }

  // Ratios are taken within each round (this case against the raw case of the same round), then the median:
  // on a shared machine the load drifts between rounds, and a ratio of neighbours cancels most of it.
  const rawSamples = samples.get(cases[0]!.name)
  const rows = selected.map((c) => {
    const times = samples.get(c.name)!
    const seconds = median(times) / 1e3
    const ratios = rawSamples === undefined
      ? []
      : times.map((time, round) => (rawSamples[round]! / TOTAL) / (time / c.bytes))
    const used = cpu.get(c.name)!
    const perGiB = (micros: ReadonlyArray<number>) => Math.round(median(micros) / 1e3 / (c.bytes / 2 ** 30))
    return {
      case: c.name,
      MB_per_s: Math.round(c.bytes / 1e6 / seconds),
      frames_per_s: c.frames === 0 ? undefined : Math.round(c.frames / seconds),
      ratio_to_raw: ratios.length === 0 ? undefined : +median(ratios).toFixed(2),
      cpu_ms_per_GiB_receiver: perGiB(used.receiver),
      cpu_ms_per_GiB_sender: perGiB(used.sender)
    }
  })

  child.disconnect()
  rawServer.close()
  await Effect.runPromise(Scope.close(scope, Exit.void))
  const runtime = `${process.release.name} ${process.version}`
  if (process.argv.includes("--json")) {
    console.log(JSON.stringify({ runtime, rounds: ROUNDS, bytes: TOTAL, packetBytes: PACKET_TOTAL, rows }))
  } else {
    console.log(
      `TCP loopback, two processes, ${TOTAL / MiB} MiB per transfer (${PACKET_TOTAL / MiB} MiB for packets), ` +
        `median of ${ROUNDS} rounds (${runtime}); MB = 10^6 bytes`
    )
    console.table(rows)
  }
}

if (process.argv.includes("--sender")) sender()
else await receiver()
