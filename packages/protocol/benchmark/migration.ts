/**
 * Migration benchmark (issue 4), every transfer between two child processes over TCP on 127.0.0.1 (this
 * process only orchestrates; the roles are `rawSender.ts`, `rawReceiver.ts`, `migrationSource.ts` and
 * `migrationDestination.ts`):
 *
 * 1. raw: 1 GiB as 1 MiB `socket.write`s, the receiver counts bytes (the baseline); and raw-store, the same with
 *    the receiver copying every chunk into a fresh 1 GiB buffer (what storing into a new memory device costs);
 * 2. migration of a 1 GiB memory device with pseudo-random content, compression None, 1 MiB and 64 KiB blocks,
 *    to a memory device; timed from the destination's dial to `receive` succeeding; sha256 of both devices
 *    compared afterwards;
 *    every round runs raw, raw-store, 1 MiB and 64 KiB in turn (fresh processes each time), figures are medians
 *    over the rounds and the ratio to raw is the median of per-round ratios;
 * 3. the destination's peak RSS (VmHWM) for the memory device runs, against size + 128 MiB, and one migration of
 *    a 4 GiB device (pseudo-random, generated on read at the source) to a file device in a temp dir, against
 *    256 MiB;
 * 4. the final locked round: migrations of a 1 GiB memory device (1 MiB blocks) while a writer in the source
 *    writes 1 % of the blocks per second; the final round's duration, dirty rounds and blocks re-sent.
 *
 * Prints tables and writes the JSON result (`BENCH_MIGRATION_OUT`, default `benchmark/results/migration.json`).
 * Exits with 1 when a device did not verify. Knobs: see README.md.
 */
import { type ChildProcess, fork } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import type { ChildConfig, ChildMessage, ParentMessage, Received, Served, Usage } from "./child.ts"

const KiB = 1024
const MiB = 1024 * KiB
const GiB = 1024 * MiB
const env = process.env
const ROUNDS = Number(env.BENCH_MIGRATION_ROUNDS ?? 3)
const SIZE = Number(env.BENCH_MIGRATION_BYTES ?? GiB)
const FILE_SIZE = Number(env.BENCH_FILE_BYTES ?? 4 * GiB)
const FINAL_SIZE = Number(env.BENCH_FINAL_BYTES ?? GiB)
const FINAL_ROUNDS = Number(env.BENCH_FINAL_ROUNDS ?? ROUNDS)
const WRITE_RATE = Number(env.BENCH_WRITE_RATE ?? 0.01)
const CONCURRENCY = env.BENCH_CONCURRENCY === undefined ? undefined : Number(env.BENCH_CONCURRENCY)
/** How long to wait for any one message of a child (a hung run fails rather than hanging the benchmark). */
const CHILD_TIMEOUT = Number(env.BENCH_CHILD_TIMEOUT_SECONDS ?? 600) * 1000
/** BENCH_MIGRATION_CASES=raw,rawStore,1MiB,64KiB,file,final (default all). */
const CASES = (env.BENCH_MIGRATION_CASES ?? "raw,rawStore,1MiB,64KiB,file,final").split(",")
/** BENCH_CPU_PROF=source,destination writes CPU profiles of those roles' timed parts into BENCH_CPU_PROF_DIR. */
const PROFILE = (env.BENCH_CPU_PROF ?? "").split(",").filter((role) => role !== "")
const PROFILE_DIR = Path.resolve(env.BENCH_CPU_PROF_DIR ?? "migration-profiles")
const OUT = env.BENCH_MIGRATION_OUT ?? fileURLToPath(new URL("./results/migration.json", import.meta.url))
const SCRIPTS: Record<ChildConfig["role"], URL> = {
  "raw-sender": new URL("./rawSender.ts", import.meta.url),
  "raw-receiver": new URL("./rawReceiver.ts", import.meta.url),
  source: new URL("./migrationSource.ts", import.meta.url),
  destination: new URL("./migrationDestination.ts", import.meta.url)
}

const TARGETS = {
  ratio1MiB: 0.8,
  ratio64KiB: 0.5,
  memoryRssOverSize: 128 * MiB,
  fileRss: 256 * MiB
}

// -----------------------------------------------------------------------------------------------------------
// children
// -----------------------------------------------------------------------------------------------------------

interface Child {
  readonly next: <T extends ChildMessage["type"]>(type: T) => Promise<Extract<ChildMessage, { type: T }>>
  readonly send: (message: ParentMessage) => void
  readonly stop: () => Promise<void>
}

const start = (config: ChildConfig): Child => {
  const profileDir = PROFILE.includes(config.role) ? PROFILE_DIR : undefined
  if (profileDir !== undefined) Fs.mkdirSync(profileDir, { recursive: true })
  // BENCH_EXEC_ARGV (every child) and BENCH_EXEC_ARGV_SOURCE, _DESTINATION, _RAW_SENDER, _RAW_RECEIVER: Node flags.
  const execArgv = [env.BENCH_EXEC_ARGV, env[`BENCH_EXEC_ARGV_${config.role.toUpperCase().replace("-", "_")}`]]
    .flatMap((flags) => flags?.split(" ").filter((flag) => flag !== "") ?? [])
  const child: ChildProcess = fork(SCRIPTS[config.role], [JSON.stringify({ ...config, profileDir })], {
    stdio: "inherit",
    execArgv: [...process.execArgv, ...execArgv]
  })
  const queue: Array<ChildMessage> = []
  let waiting: { resolve: (message: ChildMessage) => void; reject: (error: Error) => void } | undefined
  let exited: Error | undefined
  child.on("message", (message: ChildMessage) => {
    if (waiting === undefined) return void queue.push(message)
    const { resolve } = waiting
    waiting = undefined
    resolve(message)
  })
  child.on("exit", (code, signal) => {
    exited = new Error(`${config.role} exited (${code ?? signal})`)
    waiting?.reject(exited)
  })
  const receive = () =>
    queue.length > 0
      ? Promise.resolve(queue.shift()!)
      : exited !== undefined
      ? Promise.reject(exited)
      : new Promise<ChildMessage>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiting = undefined
          reject(new Error(`${config.role}: no message within ${CHILD_TIMEOUT / 1000} s`))
        }, CHILD_TIMEOUT)
        const settle = <A>(f: (a: A) => void) => (a: A) => {
          clearTimeout(timer)
          f(a)
        }
        waiting = { resolve: settle(resolve), reject: settle(reject) }
      })
  return {
    next: async (type) => {
      const message = await receive()
      if (message.type !== type) throw new Error(`${config.role}: expected ${type}, got ${message.type}`)
      return message as Extract<ChildMessage, { type: typeof type }>
    },
    send: (message) => void child.send(message),
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve()
        child.once("exit", () => resolve())
        if (child.connected) child.disconnect()
        // A child that does not leave on disconnect (a hung run) is killed.
        setTimeout(() => child.kill("SIGKILL"), 10_000).unref()
      })
  }
}

interface Run {
  /** The 1-minute load average just before the run (other work on the machine skews the figures). */
  readonly load: number
  readonly received: Received
  readonly served?: Served | undefined
  readonly verified?: boolean | undefined
}

/** One transfer: the sending role listens, the receiving role dials on `go`; migrations are verified after. */
const transfer = async (sending: ChildConfig, receiving: ChildConfig): Promise<Run> => {
  const load = round(Os.loadavg()[0]!, 2)
  const sender = start(sending)
  const receiver = start(receiving)
  try {
    const { address } = await sender.next("ready")
    await receiver.next("ready")
    receiver.send({ type: "go", address })
    const received = await receiver.next("received")
    if (sending.role !== "source") return { load, received }
    const served = await sender.next("served")
    sender.send({ type: "hash" })
    receiver.send({ type: "hash" })
    const [a, b] = await Promise.all([sender.next("hash"), receiver.next("hash")])
    if (a.sha256 !== b.sha256) console.error(`MISMATCH: source ${a.sha256}, destination ${b.sha256}`)
    return { load, received, served, verified: a.sha256 === b.sha256 }
  } finally {
    await Promise.all([sender.stop(), receiver.stop()])
  }
}

const base: Omit<ChildConfig, "role"> = {
  size: SIZE,
  blockSize: MiB,
  sourceDevice: "memory",
  destinationDevice: "memory",
  seed: "migration-benchmark",
  writeRate: 0,
  concurrency: CONCURRENCY
}

const raw = (store: boolean) => transfer({ ...base, role: "raw-sender" }, { ...base, role: "raw-receiver", store })

const migrate = (config: Omit<ChildConfig, "role">) =>
  transfer({ ...config, role: "source" }, { ...config, role: "destination" })

// -----------------------------------------------------------------------------------------------------------
// figures
// -----------------------------------------------------------------------------------------------------------

const median = (values: ReadonlyArray<number>): number => {
  const sorted = values.toSorted((x, y) => x - y)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}
const round = (value: number, digits = 0) => +value.toFixed(digits)
const mib = (bytes: number) => round(bytes / MiB)
const progress = (line: string) => console.error(`[migration bench] ${line}`)
const usageText = (used: Usage) =>
  `CPU ${round(used.cpuMs)} ms (sys ${round(used.cpuSystemMs)}, ${round(used.minorPageFaults / 1000)}k faults)`
const describe = (run: Run) =>
  `${round(run.received.seconds, 3)} s, ${round(run.received.bytes / 1e6 / run.received.seconds)} MB/s, ` +
  `dst ${usageText(run.received)}${run.served === undefined ? "" : `, src ${usageText(run.served)}`}${
    run.received.deviceWriteMs === undefined ? "" : `, device writes ${round(run.received.deviceWriteMs)} ms`
  }, VmHWM ${mib(run.received.vmHWM)} MiB${
    run.verified === undefined ? "" : run.verified ? ", sha256 equal" : ", SHA256 DIFFERS"
  }; load ${run.load}`

const main = async () => {
  const runtime = `${process.release.name} ${process.version}`
  const machine = `${Os.cpus().length} × ${Os.cpus()[0]?.model ?? "?"}, ${round(Os.totalmem() / GiB, 1)} GiB RAM`
  progress(`${runtime}, ${machine}; ${ROUNDS} rounds of raw / raw-store / 1 MiB / 64 KiB over ${SIZE / MiB} MiB`)
  const names = ["raw", "rawStore", "1MiB", "64KiB"] as const
  const runs = {
    raw: [] as Array<Run>,
    rawStore: [] as Array<Run>,
    "1MiB": [] as Array<Run>,
    "64KiB": [] as Array<Run>
  }
  const blockSizes = { "1MiB": MiB, "64KiB": 64 * KiB } as const
  for (let r = 0; r < ROUNDS; r++) {
    for (const name of names) {
      if (!CASES.includes(name)) continue
      const run = name === "raw" || name === "rawStore"
        ? await raw(name === "rawStore")
        : await migrate({ ...base, blockSize: blockSizes[name] })
      runs[name].push(run)
      progress(`round ${r + 1} ${name}: ${describe(run)}`)
    }
  }

  let file: Run | undefined
  let fileNote: string | undefined
  if (CASES.includes("file")) {
    const { bavail, bsize } = Fs.statfsSync(Os.tmpdir())
    const free = bavail * bsize
    if (free < FILE_SIZE + GiB) {
      fileNote = `skipped: ${mib(free)} MiB free in ${Os.tmpdir()}, need ${mib(FILE_SIZE + GiB)}`
      progress(fileNote)
    } else {
      progress(`file: ${FILE_SIZE / MiB} MiB to a file in ${Os.tmpdir()} (${mib(free)} MiB free)`)
      file = await migrate({
        ...base,
        size: FILE_SIZE,
        sourceDevice: "generated",
        destinationDevice: "file"
      })
      progress(`file: ${describe(file)}`)
    }
  }

  const finals: Array<Run> = []
  if (CASES.includes("final")) {
    for (let r = 0; r < FINAL_ROUNDS; r++) {
      const run = await migrate({ ...base, size: FINAL_SIZE, writeRate: WRITE_RATE })
      finals.push(run)
      progress(
        `final ${r + 1}: ${describe(run)}, final round ${run.served!.finalRoundMs} ms, ` +
          `${run.served!.dirtyRounds} dirty rounds, ${run.served!.blocksResent} blocks re-sent, ` +
          `${run.served!.writes} writes`
      )
    }
  }

  // --- tables ------------------------------------------------------------------------------------------------

  const throughput = (run: Run) => run.received.bytes / run.received.seconds
  /** The median of the per-round ratios of `name`'s throughput to `reference`'s (same round), if both ran. */
  const ratioTo = (name: typeof names[number], reference: "raw" | "rawStore") => {
    const list = runs[name]
    if (name === reference || list.length === 0 || runs[reference].length !== list.length) return []
    return list.map((run, i) => throughput(run) / throughput(runs[reference][i]!))
  }
  /** One table row over the runs of a case: medians, and for RSS the highest peak. */
  const row = (label: string, list: ReadonlyArray<Run>, size: number, options: {
    readonly ratios?: ReadonlyArray<number>
    readonly toStore?: ReadonlyArray<number>
    readonly target?: number | undefined
    readonly rssLimit?: number | undefined
  }) => {
    const migration = list[0]!.served !== undefined
    const ratio = options.ratios === undefined || options.ratios.length === 0 ? undefined : median(options.ratios)
    const peak = Math.max(...list.map((run) => run.received.vmHWM))
    const perGiB = (values: ReadonlyArray<number>, unit = 1) => round(median(values) / unit / (size / GiB))
    const { rssLimit, target } = options
    return {
      case: label,
      seconds: round(median(list.map((run) => run.received.seconds)), 3),
      MB_per_s: round(median(list.map(throughput)) / 1e6),
      ratio_to_raw: ratio === undefined ? undefined : round(ratio, 2),
      ratio_target: target,
      ratio_met: ratio === undefined || target === undefined ? undefined : ratio >= target,
      per_round_ratios: options.ratios?.map((value) => round(value, 2)).join(" "),
      ratio_to_raw_store: options.toStore === undefined || options.toStore.length === 0
        ? undefined
        : round(median(options.toStore), 2),
      dst_RSS_before_MiB: mib(median(list.map((run) => run.received.rssBefore))),
      dst_peak_RSS_MiB: mib(peak),
      dst_RSS_limit_MiB: rssLimit === undefined ? undefined : mib(rssLimit),
      rss_met: rssLimit === undefined ? undefined : peak <= rssLimit,
      dst_array_buffers_peak_MiB: mib(median(list.map((run) => run.received.arrayBuffersPeak))),
      dst_cpu_ms_per_GiB: perGiB(list.map((run) => run.received.cpuMs)),
      dst_sys_ms_per_GiB: perGiB(list.map((run) => run.received.cpuSystemMs)),
      dst_kfaults_per_GiB: perGiB(list.map((run) => run.received.minorPageFaults), 1000),
      dst_device_write_ms_per_GiB: list[0]!.received.deviceWriteMs === undefined
        ? undefined
        : perGiB(list.map((run) => run.received.deviceWriteMs!)),
      src_cpu_ms_per_GiB: migration ? perGiB(list.map((run) => run.served!.cpuMs)) : undefined,
      src_sys_ms_per_GiB: migration ? perGiB(list.map((run) => run.served!.cpuSystemMs)) : undefined,
      src_kfaults_per_GiB: migration ? perGiB(list.map((run) => run.served!.minorPageFaults), 1000) : undefined,
      verified: migration ? list.every((run) => run.verified === true) : undefined
    }
  }
  const labels = {
    raw: "raw net.Socket, 1 MiB writes (baseline)",
    rawStore: "raw, receiver copies into a fresh buffer",
    "1MiB": "migration, 1 MiB blocks, memory → memory",
    "64KiB": "migration, 64 KiB blocks, memory → memory"
  }
  const rows = names.filter((name) => runs[name].length > 0).map((name) =>
    row(labels[name], runs[name], SIZE, {
      ratios: ratioTo(name, "raw"),
      toStore: name === "raw" ? [] : ratioTo(name, "rawStore"),
      target: name === "1MiB" ? TARGETS.ratio1MiB : name === "64KiB" ? TARGETS.ratio64KiB : undefined,
      rssLimit: name === "1MiB" || name === "64KiB" ? SIZE + TARGETS.memoryRssOverSize : undefined
    })
  )
  const fileRow = file === undefined
    ? undefined
    : row(`migration, 1 MiB blocks, ${FILE_SIZE / GiB} GiB generated → file`, [file], FILE_SIZE, {
      rssLimit: TARGETS.fileRss
    })
  const finalRow = finals.length === 0 ? undefined : {
    case: `migration, 1 MiB blocks, ${FINAL_SIZE / MiB} MiB, ${WRITE_RATE * 100} % of blocks written per second`,
    final_round_ms: median(finals.map((run) => run.served!.finalRoundMs)),
    final_round_ms_all: finals.map((run) => run.served!.finalRoundMs).join(" "),
    dirty_rounds: finals.map((run) => run.served!.dirtyRounds).join(" "),
    blocks_resent: finals.map((run) => run.served!.blocksResent).join(" "),
    writes: finals.map((run) => run.served!.writes).join(" "),
    seconds: round(median(finals.map((run) => run.received.seconds)), 3),
    verified: finals.every((run) => run.verified === true)
  }

  console.log(
    `\nMigration benchmark, TCP 127.0.0.1, two processes, ${runtime}, ${machine}; ` +
      `median of ${ROUNDS} rounds (MB = 10^6 bytes, RSS = VmHWM of the destination process)`
  )
  const all = fileRow === undefined ? rows : [...rows, fileRow]
  const table = (title: string, columns: ReadonlyArray<string>) => {
    if (all.length === 0) return
    console.log(`\n${title}`)
    console.table(all, [...columns])
  }
  table("Throughput (targets: 1 MiB blocks >= 0.8 of raw, 64 KiB blocks >= 0.5)", [
    "case",
    "seconds",
    "MB_per_s",
    "ratio_to_raw",
    "ratio_target",
    "ratio_met",
    "per_round_ratios",
    "ratio_to_raw_store",
    "verified"
  ])
  table("Destination memory (targets: memory device <= size + 128 MiB, file device <= 256 MiB)", [
    "case",
    "dst_RSS_before_MiB",
    "dst_peak_RSS_MiB",
    "dst_RSS_limit_MiB",
    "rss_met",
    "dst_array_buffers_peak_MiB"
  ])
  table("Where the time goes (per GiB moved; CPU = user + system of all threads)", [
    "case",
    "dst_cpu_ms_per_GiB",
    "dst_sys_ms_per_GiB",
    "dst_kfaults_per_GiB",
    "dst_device_write_ms_per_GiB",
    "src_cpu_ms_per_GiB",
    "src_sys_ms_per_GiB",
    "src_kfaults_per_GiB"
  ])
  if (fileNote !== undefined) console.log(`file device: ${fileNote}`)
  if (finalRow !== undefined) {
    console.log("\nFinal locked round while the source is written")
    console.table([finalRow])
  }

  const result = {
    runtime,
    machine,
    date: new Date().toISOString(),
    settings: {
      rounds: ROUNDS,
      bytes: SIZE,
      fileBytes: FILE_SIZE,
      finalBytes: FINAL_SIZE,
      finalRounds: FINAL_ROUNDS,
      writeRate: WRITE_RATE,
      concurrency: CONCURRENCY ?? "default",
      compression: "None"
    },
    targets: TARGETS,
    rows,
    file: fileRow ?? fileNote,
    final: finalRow,
    runs: { ...runs, file, final: finals }
  }
  Fs.mkdirSync(Path.dirname(OUT), { recursive: true })
  Fs.writeFileSync(OUT, `${JSON.stringify(result, undefined, 2)}\n`)
  console.log(`results: ${OUT}`)
  const everyRun = [...runs["1MiB"], ...runs["64KiB"], ...finals, ...(file === undefined ? [] : [file])]
  if (everyRun.some((run) => run.verified !== true)) {
    console.error("a migrated device differs from its source")
    process.exitCode = 1
  }
}

await main()
