/**
 * dnet benchmark (see README.md, "dnet benchmark"): 1 KiB put/get operations per second and 64 MiB object
 * MB/s against one node in another process, on the memory and blob backends, with raw TCP request/response
 * round trips of the same sizes as the baseline.
 *
 * This process is the client and does the timing; forked children serve: a raw `node:net` server (a request is
 * a 9-byte header `op u8 | length u64le`, then `length` bytes for a put; the reply is 1 byte for a put and
 * `length` bytes for a get), and one `DnetNode` per backend. Every operation waits for its reply before the next
 * starts (one request in flight), on both sides. Cases of one size and direction form a group, which is warmed
 * up and then runs all its rounds before the next group; in a round, small cases take turns of 250 operations,
 * so they see the machine in the same state, and big cases run one after another. Figures are medians over the
 * rounds, ratios the medians of per-round ratios to the raw case of the same size and direction.
 *
 * `node benchmark/dnet.ts [--json]`; knobs `BENCH_ROUNDS` (3), `BENCH_SMALL_OPS` (10000), `BENCH_BIG_OPS` (3),
 * `BENCH_BIG_BYTES` (64 MiB), `BENCH_CASES` (e.g. `raw,memory`: only those targets), `BENCH_EXEC_ARGV` (Node flags for
 * the servers, e.g. `--cpu-prof`), `BENCH_GET_INTO=0` (big gets into fresh memory instead of one reused buffer).
 */
import * as ObjectStoreSpec from "@tessera/storage/ObjectStoreSpec"
import { Effect, Exit, Layer, Result, Scope } from "effect"
import { fork } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import * as DnetClient from "../src/DnetClient.ts"
import * as DnetNode from "../src/DnetNode.ts"
import * as DnetRing from "../src/DnetRing.ts"
import * as Transport from "../src/Transport.ts"

const KiB = 1024
const MiB = 1024 * 1024
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
const SMALL_OPS = Number(process.env.BENCH_SMALL_OPS ?? 10_000)
const BIG_OPS = Number(process.env.BENCH_BIG_OPS ?? 3)
const BIG = Number(process.env.BENCH_BIG_BYTES ?? 64 * MiB)
/** Whether big gets read into a reused buffer (`ReadOptions.into`) rather than into fresh memory each time. */
const GET_INTO = process.env.BENCH_GET_INTO !== "0"
const PUT = 1
const GET = 2
/** Small operations a case runs before the next case of its group takes its turn. */
const SMALL_TURN = 250

// -----------------------------------------------------------------------------------------------------------
// servers (children)
// -----------------------------------------------------------------------------------------------------------

/** Children report their CPU time (user + system, µs) when asked, so each case can say what the server used. */
const answerCpu = () =>
  process.on("message", (message: unknown) => {
    if (message === "cpu") {
      const { system, user } = process.cpuUsage()
      process.send!({ cpu: user + system })
    }
  })

/** The raw baseline: header, payload, one reply per request; nothing stored. */
const rawServer = () => {
  answerCpu()
  const reply = Buffer.alloc(BIG)
  const ack = Buffer.from([1])
  const server = Net.createServer((socket) => {
    socket.setNoDelay(true)
    let header = Buffer.alloc(0)
    let remaining = 0 // payload bytes of the current put still to come
    socket.on("data", (chunk: Buffer) => {
      let at = 0
      while (at < chunk.length) {
        if (remaining > 0) {
          const n = Math.min(remaining, chunk.length - at)
          remaining -= n
          at += n
          if (remaining === 0) socket.write(ack)
          continue
        }
        const need = 9 - header.length
        header = Buffer.concat([header, chunk.subarray(at, at + need)])
        at += Math.min(need, chunk.length - at)
        if (header.length < 9) break
        const op = header[0]
        const length = Number(header.readBigUInt64LE(1))
        header = Buffer.alloc(0)
        if (op === PUT) {
          remaining = length
          if (length === 0) socket.write(ack)
        } else {
          socket.write(reply.subarray(0, length))
        }
      }
    })
    socket.on("error", () => {})
  })
  server.listen(0, "127.0.0.1", () => {
    process.send!({ address: `tcp://127.0.0.1:${(server.address() as Net.AddressInfo).port}` })
  })
  process.on("disconnect", () => process.exit(0))
}

const dnetServer = (backend: string) => {
  answerCpu()
  const dir = backend === "blob" ? Fs.mkdtempSync(Path.join(Os.tmpdir(), "tessera-dnet-bench-")) : undefined
  const spec: ObjectStoreSpec.ObjectStoreSpec = dir === undefined ? { _tag: "Memory" } : { _tag: "Blob", dir }
  const cleanUp = () => {
    if (dir !== undefined) Fs.rmSync(dir, { recursive: true, force: true })
  }
  process.on("disconnect", () => {
    cleanUp()
    process.exit(0)
  })
  const program = Effect.gen(function*() {
    const store = yield* ObjectStoreSpec.open(spec)
    const node = yield* DnetNode.make({ store, listen: "tcp://127.0.0.1:0" })
    process.send!({ address: node.address })
    return yield* Effect.never
  })
  Effect.runPromise(Effect.scoped(program).pipe(Effect.provide(Transport.Transport.layer))).catch((error) => {
    console.error(error)
    cleanUp()
    process.exit(1)
  })
}

// -----------------------------------------------------------------------------------------------------------
// client (this process)
// -----------------------------------------------------------------------------------------------------------

interface Server {
  readonly address: string
  /** The child's CPU time so far, µs. */
  readonly cpu: () => Promise<number>
  readonly stop: () => void
}

const start = (args: ReadonlyArray<string>) =>
  new Promise<Server>((resolve, reject) => {
    const child = fork(new URL(import.meta.url), ["--server", ...args], {
      stdio: "inherit",
      execArgv: [...process.execArgv, ...(process.env.BENCH_EXEC_ARGV ?? "").split(" ").filter((a) => a !== "")]
    })
    child.once("message", (message: { address: string }) =>
      resolve({
        address: message.address,
        cpu: () =>
          new Promise<number>((answer) => {
            const listener = (reply: unknown) => {
              if (typeof reply === "object" && reply !== null && "cpu" in reply) {
                child.off("message", listener)
                answer(Number(reply.cpu))
              }
            }
            child.on("message", listener)
            child.send("cpu")
          }),
        stop: () => child.disconnect()
      }))
    child.once("exit", (code) => reject(new Error(`server ${args.join(" ")} exited with ${code}`)))
  })

/** A raw client: one request at a time, each resolved when its whole reply has arrived. */
const rawClient = (address: string) =>
  new Promise<
    { readonly call: (op: number, payload: Uint8Array, length: number) => Promise<void>; readonly close: () => void }
  >(
    (resolve, reject) => {
      const { host, port } = /^tcp:\/\/(?<host>[^:]+):(?<port>\d+)$/.exec(address)!.groups!
      const socket = Net.connect({ host: host!, port: Number(port) })
      socket.setNoDelay(true)
      let waiting = 0
      let done: (() => void) | undefined
      socket.on("data", (chunk: Buffer) => {
        waiting -= chunk.length
        if (waiting <= 0 && done !== undefined) {
          const resume = done
          done = undefined
          resume()
        }
      })
      socket.on("error", reject)
      socket.on("connect", () =>
        resolve({
          call: (op, payload, length) =>
            new Promise<void>((resume) => {
              const header = Buffer.alloc(9)
              header[0] = op
              header.writeBigUInt64LE(BigInt(length), 1)
              waiting = op === PUT ? 1 : length
              done = resume
              socket.cork()
              socket.write(header)
              if (payload.length > 0) socket.write(payload)
              socket.uncork()
            }),
          close: () => socket.destroy()
        }))
    }
  )

const median = (values: ReadonlyArray<number>): number => {
  const sorted = values.toSorted((x, y) => x - y)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

const pseudoRandom = (length: number): Uint8Array => {
  const out = new Uint8Array(length)
  let x = 0x9e3779b9
  for (let i = 0; i < length; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    out[i] = x & 0xff
  }
  return out
}

interface Case {
  /** `file`: 64 MiB appended to a plain file next to the blob store's log, the disk's own rate for big puts. */
  readonly target: "raw" | "memory" | "blob" | "file"
  readonly op: "put" | "get"
  readonly size: number
  readonly ops: number
}

const main = async () => {
  const json = process.argv.includes("--json")
  const [raw, memory, blob] = await Promise.all([start(["raw"]), start(["dnet", "memory"]), start(["dnet", "blob"])])
  const small = pseudoRandom(KiB)
  const big = pseudoRandom(BIG)
  // Big gets read into one reused buffer, as a caller that processes objects one at a time would.
  const getBuffer = new Uint8Array(BIG)
  const rawConnection = await rawClient(raw.address)
  const scope = Scope.makeUnsafe()
  const run = <A, E>(effect: Effect.Effect<A, E, Transport.Transport | Scope.Scope>) =>
    Effect.runPromise(effect.pipe(Scope.provide(scope), Effect.provide(Layer.orDie(Transport.Transport.layer))))
  const clients = {
    memory: await run(DnetClient.make({ nodes: [memory.address], timeout: "120 seconds" })),
    blob: await run(DnetClient.make({ nodes: [blob.address], timeout: "120 seconds" }))
  }
  // Same file system as the blob store's log (the children make their directories in the same temp dir).
  const fileDir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "tessera-dnet-bench-file-"))
  const appended = Fs.openSync(Path.join(fileDir, "appended"), "w")
  let appendedEnd = 0
  const smallKey = DnetRing.idOf("bench-1KiB")
  const bigKey = DnetRing.idOf("bench-64MiB")

  const servers = { raw, memory, blob }
  const serverOf = (c: Case) => (c.target === "file" ? undefined : servers[c.target])
  const operations = async (c: Case): Promise<void> => {
    const data = c.size === KiB ? small : big
    if (c.target === "file") {
      // As the blob store writes a big record: pieces of 1 MiB, each with one synchronous call.
      for (let i = 0; i < c.ops; i++) {
        for (let at = 0; at < data.length; at += MiB) {
          Fs.writeSync(appended, data, at, Math.min(MiB, data.length - at), appendedEnd + at)
        }
        appendedEnd += data.length
      }
      return
    }
    if (c.target === "raw") {
      for (let i = 0; i < c.ops; i++) {
        await rawConnection.call(c.op === "put" ? PUT : GET, c.op === "put" ? data : new Uint8Array(0), c.size)
      }
      return
    }
    const client = clients[c.target]
    const key = c.size === KiB ? smallKey : bigKey
    const into = c.size === KiB || !GET_INTO ? undefined : getBuffer
    const body = c.op === "put"
      ? Effect.gen(function*() {
        for (let i = 0; i < c.ops; i++) {
          const outcomes = yield* client.write(key, data)
          if (!Result.isSuccess(outcomes[0]!.result)) return yield* Effect.die(outcomes[0]!.result)
        }
      })
      : Effect.gen(function*() {
        for (let i = 0; i < c.ops; i++) {
          const read = yield* client.read(key, into === undefined ? undefined : { into })
          if (read.data.length !== c.size) return yield* Effect.die(new Error("short read"))
        }
      })
    await run(body)
  }

  const wanted = (process.env.BENCH_CASES ?? "raw,memory,blob").split(",")
  // The raw case is the baseline of every ratio: always run.
  const targets = (["raw", "memory", "blob"] as const).filter((t) => t === "raw" || wanted.includes(t))
  // Cases compared with each other form a group: the same size and direction.
  const groups: Array<Array<Case>> = []
  for (const size of [KiB, BIG]) {
    for (const op of ["put", "get"] as const) {
      const group: Array<Case> = targets.map((target) => ({
        target,
        op,
        size,
        ops: size === KiB ? SMALL_OPS : BIG_OPS
      }))
      if (size === BIG && op === "put" && targets.includes("blob")) {
        group.push({ target: "file", op, size, ops: BIG_OPS })
      }
      groups.push(group)
    }
  }
  const cases = groups.flat()
  const seconds = new Map<Case, Array<number>>(cases.map((c) => [c, []]))
  const cpu = new Map<Case, { client: Array<number>; server: Array<number> }>(
    cases.map((c) => [c, { client: [], server: [] }])
  )
  const ratios = new Map<Case, Array<number>>(cases.map((c) => [c, []]))
  // A group runs all its rounds before the next starts: what big puts leave behind (hundreds of MiB of dirty
  // page cache being written out) must not slow the small cases of the next round.
  for (const group of groups) {
    // Warm up every case until its code is optimised, as in a server that has been running (the puts also make
    // the objects the gets read): ten thousand small operations, one big one.
    for (const c of group) await operations({ ...c, ops: c.size === KiB ? 10_000 : 1 })
    for (let round = 0; round < ROUNDS; round++) {
      // Small cases take turns of a few operations each, so they all see the machine in the same state: its speed
      // swings by 2-3x within seconds, which would otherwise land on one case and not another. Big cases run
      // whole, one after another: the blob store's and the file's appends take fresh memory for the page cache,
      // which slows the transfers that follow them for a while.
      const turn = group[0]!.size === KiB ? SMALL_TURN : group[0]!.ops
      const spent = new Map<Case, { seconds: number; clientCpu: number }>(
        group.map((c) => [c, { seconds: 0, clientCpu: 0 }])
      )
      const serverBefore = await Promise.all(group.map(async (c) => (await serverOf(c)?.cpu()) ?? 0))
      for (let done = 0; done < group[0]!.ops; done += turn) {
        for (const c of group) {
          const ops = Math.min(turn, c.ops - done)
          const clientBefore = process.cpuUsage()
          const started = performance.now()
          await operations({ ...c, ops })
          const total = spent.get(c)!
          total.seconds += (performance.now() - started) / 1000
          const client = process.cpuUsage(clientBefore)
          total.clientCpu += client.user + client.system
        }
      }
      const serverAfter = await Promise.all(group.map(async (c) => (await serverOf(c)?.cpu()) ?? 0))
      const base = spent.get(group.find((c) => c.target === "raw")!)!.seconds
      group.forEach((c, i) => {
        const total = spent.get(c)!
        seconds.get(c)!.push(total.seconds)
        cpu.get(c)!.client.push(total.clientCpu / c.ops)
        cpu.get(c)!.server.push((serverAfter[i]! - serverBefore[i]!) / c.ops)
        if (c.target !== "raw") ratios.get(c)!.push(base / total.seconds)
      })
    }
  }

  const rows = cases.map((c) => {
    const s = median(seconds.get(c)!)
    const rate = c.size === KiB ? c.ops / s : (c.ops * c.size) / s / 1e6
    return {
      case: `${c.size === KiB ? "1 KiB" : `${c.size / MiB} MiB`} ${c.op}, ${
        c.target === "raw" ? "raw TCP" : c.target === "file" ? "plain file append (disk)" : `dnet ${c.target}`
      }`,
      unit: c.size === KiB ? "ops/s" : "MB/s",
      rate: Math.round(rate),
      ratio: c.target === "raw" ? 1 : Number(median(ratios.get(c)!).toFixed(2)),
      target: c.target === "raw" || c.target === "file" ? undefined : c.size === KiB ? 0.5 : 0.8,
      clientCpuMicrosPerOp: Math.round(median(cpu.get(c)!.client)),
      serverCpuMicrosPerOp: Math.round(median(cpu.get(c)!.server)),
      rounds: seconds.get(c)!.map((x) => Number((c.size === KiB ? c.ops / x : (c.ops * c.size) / x / 1e6).toFixed(0)))
    }
  })
  if (json) console.log(JSON.stringify({ rounds: ROUNDS, smallOps: SMALL_OPS, bigOps: BIG_OPS, bigBytes: BIG, rows }))
  else {
    console.log(`dnet benchmark: ${ROUNDS} rounds, ${SMALL_OPS} x 1 KiB and ${BIG_OPS} x ${BIG / MiB} MiB per case`)
    console.log("| Case | rate | ratio to raw | target | CPU µs/op client | CPU µs/op server | per round |")
    console.log("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for (const row of rows) {
      console.log(
        `| ${row.case} | ${row.rate} ${row.unit} | ${row.ratio} | ${
          row.target ?? ""
        } | ${row.clientCpuMicrosPerOp} | ${row.serverCpuMicrosPerOp} | ${row.rounds.join(" ")} |`
      )
    }
  }
  Fs.closeSync(appended)
  Fs.rmSync(fileDir, { recursive: true, force: true })
  rawConnection.close()
  await Effect.runPromise(Scope.close(scope, Exit.void))
  raw.stop()
  memory.stop()
  blob.stop()
}

if (process.argv[2] === "--server") {
  if (process.argv[3] === "raw") rawServer()
  else dnetServer(process.argv[4]!)
} else {
  await main()
}
