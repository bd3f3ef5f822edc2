/**
 * NBD benchmark (issue 5), over TCP on 127.0.0.1, against the real peers (`nbdkit`, `nbdcopy`):
 *
 * 1. server: `nbdcopy nbd://… null:` reading a 1 GiB memory export of pseudo-random bytes from our `NbdServer`
 *    (in a forked child process: this file with the argument `serve`) and from `nbdkit memory 1G` holding the
 *    same bytes, in the same round; the ratio ours / nbdkit (target: at least 0.7);
 * 2. client: our `NbdClient` reading the whole `nbdkit memory` export (one connection, 1 MiB requests, 64 in
 *    flight, into reused buffers) against `nbdcopy` doing the same copy to `null:`.
 *
 * Every round runs the three copies in turn (the two servers in alternating order); figures are medians over
 * the rounds (`BENCH_NBD_ROUNDS`, default 5), ratios the medians of the per-round ratios. Set-up (filling both exports: nbdcopy from ours into nbdkit)
 * is not timed. Prints a table and writes `BENCH_NBD_OUT` (default `benchmark/results/nbd.json`). Knobs:
 * `BENCH_NBD_BYTES` (default 1 GiB).
 */
import { NodeRuntime } from "@effect/platform-node"
import * as Memory from "@tessera/storage/Memory"
import { Effect } from "effect"
import { type ChildProcess, execFileSync, fork, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import { fileURLToPath } from "node:url"
import * as Address from "../src/Address.ts"
import * as NbdClient from "../src/NbdClient.ts"
import * as NbdExport from "../src/NbdExport.ts"
import * as NbdServer from "../src/NbdServer.ts"
import * as Transport from "../src/Transport.ts"

const MiB = 1024 * 1024
const GiB = 1024 * MiB
const env = process.env
const SIZE = Number(env.BENCH_NBD_BYTES ?? GiB)
const ROUNDS = Number(env.BENCH_NBD_ROUNDS ?? 5)
const OUT = env.BENCH_NBD_OUT ?? fileURLToPath(new URL("./results/nbd.json", import.meta.url))
const TARGET_SERVER_RATIO = 0.7

/** The child: a memory export of pseudo-random bytes; sends its address, then serves until killed. */
const serveChild = Effect.gen(function*() {
  const device = yield* Memory.make(SIZE, "bench")
  const chunk = new Uint8Array(MiB)
  let x = 0x9e3779b9
  for (let offset = 0; offset < SIZE; offset += MiB) {
    for (let i = 0; i < chunk.length; i += 4) {
      x ^= x << 13
      x ^= x >>> 17
      x ^= x << 5
      chunk[i] = x
      chunk[i + 1] = x >>> 8
      chunk[i + 2] = x >>> 16
      chunk[i + 3] = x >>> 24
    }
    yield* device.writeAt(chunk, offset)
  }
  const server = yield* NbdServer.make("tcp://127.0.0.1:0", { exports: [NbdExport.make("bench", device)] })
  process.send!({ address: Address.format(server.address) })
  // The parent asks for this process's CPU time (user + system, µs) around each timed copy.
  process.on("message", () => {
    const usage = process.cpuUsage()
    process.send!({ cpu: usage.user + usage.system })
  })
  return yield* Effect.never
}).pipe(Effect.scoped, Effect.provide(Transport.Transport.layer))

const requireBinary = (name: string, pkg: string): void => {
  try {
    execFileSync("sh", ["-c", `command -v ${name}`], { stdio: "ignore" })
  } catch {
    throw new Error(`${name} is not installed; install it with: apt-get install -y ${pkg}`)
  }
}

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = Net.createServer()
    server.on("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as Net.AddressInfo
      server.close(() => resolve(port))
    })
  })

/** Runs a command to its end; resolves with the wall time in ms, rejects unless it exits 0. */
const timed = (command: string, args: ReadonlyArray<string>): Promise<number> =>
  new Promise((resolve, reject) => {
    const start = performance.now()
    const child = spawn(command, args, { stdio: ["ignore", "ignore", "pipe"] })
    let stderr = ""
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
    child.on("error", reject)
    child.on("close", (code) =>
      code === 0
        ? resolve(performance.now() - start)
        : reject(new Error(`${command} ${args.join(" ")} exited ${code}: ${stderr}`)))
  })

/** Waits until something accepts connections on the port (nbdkit started). */
const waitForPort = async (port: number): Promise<void> => {
  for (let i = 0; i < 400; i++) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = Net.connect(port, "127.0.0.1", () => {
        socket.destroy()
        resolve(true)
      })
      socket.on("error", () => resolve(false))
    })
    if (open) return
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  throw new Error(`nothing listens on port ${port}`)
}

/** Our client reading the whole export: 16 stripes, each reading 4 MiB at a time (64 requests of 1 MiB in flight). */
const clientCopy = (uri: string) =>
  Effect.gen(function*() {
    const client = yield* NbdClient.connect(uri, { exportName: "", maxInFlight: 64, requestSize: MiB })
    const stripes = 16
    const chunk = 4 * MiB
    const start = performance.now()
    yield* Effect.forEach(Array.from({ length: stripes }, (_, i) => i), (stripe) =>
      Effect.gen(function*() {
        const buffer = new Uint8Array(chunk)
        for (let offset = stripe * chunk; offset < client.size; offset += stripes * chunk) {
          yield* client.readAt(buffer.subarray(0, Math.min(chunk, client.size - offset)), offset)
        }
      }), { concurrency: "unbounded", discard: true })
    return performance.now() - start
  }).pipe(Effect.scoped, Effect.provide(Transport.Transport.layer))

/** CPU time (user + system) of a process in ms, from /proc (Linux). */
const procCpuMs = (pid: number): number => {
  const fields = Fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS
}

const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100
  } catch {
    return 100
  }
})()

/** A copy's wall time and the CPU time `cpu` counted meanwhile. */
const measured = async (run: () => Promise<number>, cpu: () => number | Promise<number>) => {
  const before = await cpu()
  const ms = await run()
  return { ms, cpuMs: (await cpu()) - before }
}

/** This process's CPU time (user + system) in ms. */
const ownCpuMs = (): number => {
  const usage = process.cpuUsage()
  return (usage.user + usage.system) / 1000
}

const median = (values: ReadonlyArray<number>): number => {
  const sorted = values.toSorted((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

const main = async (): Promise<void> => {
  requireBinary("nbdkit", "nbdkit")
  requireBinary("nbdcopy", "libnbd-bin")
  const children: Array<ChildProcess> = []
  const stop = () => {
    for (const child of children) child.kill("SIGTERM")
  }
  process.on("exit", stop)
  try {
    const server = fork(fileURLToPath(import.meta.url), ["serve"], { stdio: ["ignore", "inherit", "inherit", "ipc"] })
    children.push(server)
    const oursAddress = await new Promise<string>((resolve, reject) => {
      server.once("message", (message: { readonly address: string }) => resolve(message.address))
      server.once("exit", (code) => reject(new Error(`the NBD server child exited ${code}`)))
    })
    const oursUri = `nbd://${oursAddress.slice("tcp://".length)}/bench`
    const port = await freePort()
    const kit = spawn("nbdkit", ["-f", "-i", "127.0.0.1", "-p", String(port), "memory", String(SIZE)], {
      stdio: "ignore"
    })
    children.push(kit)
    await waitForPort(port)
    const kitUri = `nbd://127.0.0.1:${port}/`
    // Set-up: the same bytes into nbdkit (and a warm-up of both).
    await timed("nbdcopy", [oursUri, kitUri])

    const serverCpuMs = () =>
      new Promise<number>((resolve) => {
        server.once("message", (message: { readonly cpu: number }) => resolve(message.cpu / 1000))
        server.send("cpu")
      })
    const rounds: Array<{
      ours: number
      nbdkit: number
      client: number
      oursCpu: number
      nbdkitCpu: number
      clientCpu: number
    }> = []
    for (let round = 0; round < ROUNDS; round++) {
      // Alternate which server goes first, so drift in the machine's load does not favour either.
      const fromOurs = () => measured(() => timed("nbdcopy", [oursUri, "null:"]), serverCpuMs)
      const fromKit = () => measured(() => timed("nbdcopy", [kitUri, "null:"]), () => procCpuMs(kit.pid!))
      const ours = round % 2 === 0 ? await fromOurs() : undefined
      const fromNbdkit = await fromKit()
      const oursRun = ours ?? await fromOurs()
      const client = await measured(() => Effect.runPromise(clientCopy(`tcp://127.0.0.1:${port}`)), ownCpuMs)
      const [oursMs, kitMs, clientMs] = [oursRun.ms, fromNbdkit.ms, client.ms]
      rounds.push({
        ours: oursMs,
        nbdkit: kitMs,
        client: clientMs,
        oursCpu: oursRun.cpuMs,
        nbdkitCpu: fromNbdkit.cpuMs,
        clientCpu: client.cpuMs
      })
      console.error(
        `round ${round + 1}: nbdcopy from ours ${oursMs.toFixed(0)} ms, from nbdkit ${
          kitMs.toFixed(0)
        } ms; our client from nbdkit ${clientMs.toFixed(0)} ms`
      )
    }
    const mbs = (ms: number) => SIZE / 1e6 / (ms / 1000)
    const result = {
      bytes: SIZE,
      rounds: ROUNDS,
      node: process.version,
      server: {
        oursMBs: median(rounds.map((r) => mbs(r.ours))),
        nbdkitMBs: median(rounds.map((r) => mbs(r.nbdkit))),
        ratio: median(rounds.map((r) => r.nbdkit / r.ours)),
        target: TARGET_SERVER_RATIO,
        oursCpuMsPerGiB: median(rounds.map((r) => r.oursCpu * GiB / SIZE)),
        nbdkitCpuMsPerGiB: median(rounds.map((r) => r.nbdkitCpu * GiB / SIZE))
      },
      client: {
        oursMBs: median(rounds.map((r) => mbs(r.client))),
        nbdcopyMBs: median(rounds.map((r) => mbs(r.nbdkit))),
        ratio: median(rounds.map((r) => r.nbdkit / r.client)),
        oursCpuMsPerGiB: median(rounds.map((r) => r.clientCpu * GiB / SIZE))
      },
      perRound: rounds
    }
    console.log("\nNBD (MB = 10^6 bytes, medians)")
    console.table({
      "nbdcopy <- our NbdServer (memory)": {
        "MB/s": Math.round(result.server.oursMBs),
        "server CPU ms/GiB": Math.round(result.server.oursCpuMsPerGiB)
      },
      "nbdcopy <- nbdkit memory": {
        "MB/s": Math.round(result.server.nbdkitMBs),
        "server CPU ms/GiB": Math.round(result.server.nbdkitCpuMsPerGiB)
      },
      "our NbdClient <- nbdkit memory": {
        "MB/s": Math.round(result.client.oursMBs),
        "client CPU ms/GiB": Math.round(result.client.oursCpuMsPerGiB)
      }
    })
    console.log(
      `server ratio ours/nbdkit (median of per-round ratios) ${
        result.server.ratio.toFixed(2)
      } (target >= ${TARGET_SERVER_RATIO}); client ratio ours/nbdcopy ${result.client.ratio.toFixed(2)}`
    )
    Fs.mkdirSync(new URL("./results/", import.meta.url), { recursive: true })
    Fs.writeFileSync(OUT, JSON.stringify(result, null, 2) + "\n")
  } finally {
    stop()
  }
}

if (process.argv[2] === "serve") NodeRuntime.runMain(serveChild)
else await main()
