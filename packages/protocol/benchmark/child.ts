/**
 * What every child process of the migration benchmark shares (`migration.ts` forks one file per role and run,
 * passing its `ChildConfig` as JSON in argv[2]): the messages to and from the parent, and the measurements.
 * It imports nothing but Node, so the raw roles stay free of Effect and of the library.
 *
 * A receiving role times from just before its dial to the last byte (raw) or to `receive` succeeding
 * (migration), samples its RSS every 50 ms, and reads its VmHWM (the kernel's peak RSS of the process) from
 * /proc/self/status. Process start-up and device set-up (filling the source) are never timed.
 */
import * as Fs from "node:fs"
import { Session } from "node:inspector/promises"
import * as Path from "node:path"

/** What the parent tells a child to do. */
export interface ChildConfig {
  readonly role: "raw-sender" | "raw-receiver" | "source" | "destination"
  /** Bytes to move: the device size, or the raw transfer. */
  readonly size: number
  readonly blockSize: number
  /** source: `memory` (filled with pseudo-random bytes up front) or `generated` (pseudo-random, made on read). */
  readonly sourceDevice: "memory" | "generated"
  /** destination: a memory device, or a file device in a fresh temp dir (deleted at exit). */
  readonly destinationDevice: "memory" | "file"
  readonly seed: string
  /** source: blocks written per second by the writer, as a fraction of the device's blocks; 0 for none. */
  readonly writeRate: number
  readonly concurrency?: number | undefined
  readonly finalRoundBlocks?: number | undefined
  readonly maxDirtyRounds?: number | undefined
  /** raw-receiver: copy every chunk into a fresh buffer of `size` bytes (what storing into a new memory device costs). */
  readonly store?: boolean | undefined
  /** Write a CPU profile of the timed part (source: from ready to served) into this directory. */
  readonly profileDir?: string | undefined
}

/** CPU (user + system, all threads, and the system part alone: page faults, TCP) and minor page faults. */
export interface Usage {
  readonly cpuMs: number
  readonly cpuSystemMs: number
  /** Each first touch of a fresh 4 KiB page (a new device, a new buffer) is one. */
  readonly minorPageFaults: number
}

/** What a receiving role measured. */
export interface Received extends Usage {
  readonly type: "received"
  readonly bytes: number
  /** From just before the dial to the last byte / `receive` succeeding. */
  readonly seconds: number
  /** RSS just before the dial (the process with its modules loaded and its device not yet made). */
  readonly rssBefore: number
  /** Highest sampled RSS and `process.memoryUsage().arrayBuffers` over the timed part (every 50 ms). */
  readonly rssPeakSampled: number
  readonly arrayBuffersPeak: number
  /** VmHWM: the kernel's peak RSS of the process, over its whole life (0 when not on Linux). */
  readonly vmHWM: number
  /** Time spent in the destination device's writes, ms (migration only). */
  readonly deviceWriteMs?: number | undefined
  /** Packet connection counters (migration only). */
  readonly packets?: unknown
}

/** What the source did. */
export interface Served extends Usage {
  readonly type: "served"
  // Usage: from the destination's connection to the end of `serve`.
  readonly blocksSent: number
  readonly blocksResent: number
  readonly dirtyRounds: number
  readonly finalRoundMs: number
  /** Writes the writer completed while the migration ran. */
  readonly writes: number
  readonly rssPeak: number
  /** Packet connection counters. */
  readonly packets?: unknown
}

export type ChildMessage =
  | { readonly type: "ready"; readonly address: string; readonly rss: number }
  | Received
  | Served
  | { readonly type: "hash"; readonly sha256: string }

export type ParentMessage = { readonly type: "go"; readonly address: string } | { readonly type: "hash" }

export const MiB = 1024 * 1024

export const config = JSON.parse(process.argv[2] ?? "{}") as ChildConfig

export const send = (message: ChildMessage): void => void process.send!(message)

const inbox: Array<ParentMessage> = []
let wake: (() => void) | undefined
process.on("message", (message: ParentMessage) => {
  inbox.push(message)
  wake?.()
})

/** The parent's next message. */
export const nextMessage = async (): Promise<ParentMessage> => {
  while (inbox.length === 0) await new Promise<void>((resolve) => (wake = resolve))
  return inbox.shift()!
}

/** Waits for `go` and returns the address to dial. */
export const waitForGo = async (): Promise<string> => {
  const message = await nextMessage()
  if (message.type !== "go") throw new Error(`${config.role}: expected go, got ${message.type}`)
  return message.address
}

/** Run at exit (temp files). The child exits when the parent disconnects. */
export const atExit: Array<() => void> = []
process.on("exit", () => {
  for (const cleanup of atExit) cleanup()
})
process.on("disconnect", () => process.exit(0))

/** Runs the role; any failure is printed and exits with 1. */
export const runRole = (role: () => Promise<void>): void => {
  role().catch((error: unknown) => {
    console.error(`${config.role}:`, error)
    process.exit(1)
  })
}

/** CPU and page faults from now until the returned function is called. */
export const usage = () => {
  const cpu = process.cpuUsage()
  const faults = process.resourceUsage().minorPageFault
  return (): Usage => {
    const used = process.cpuUsage(cpu)
    return {
      cpuMs: (used.user + used.system) / 1e3,
      cpuSystemMs: used.system / 1e3,
      minorPageFaults: process.resourceUsage().minorPageFault - faults
    }
  }
}

/** The kernel's peak RSS of this process (VmHWM), in bytes; 0 where /proc is missing. */
export const vmHWM = (): number => {
  try {
    const match = /^VmHWM:\s+(\d+) kB$/m.exec(Fs.readFileSync("/proc/self/status", "utf8"))
    return match === null ? 0 : Number(match[1]) * 1024
  } catch {
    return 0
  }
}

/**
 * Samples RSS and ArrayBuffer memory (`process.memoryUsage()`) every 50 ms until `stop`; a sample costs a
 * fraction of a millisecond, so they are kept sparse. VmHWM is the exact peak.
 */
export const sampler = () => {
  let rss = 0
  let arrayBuffers = 0
  const sample = () => {
    const memory = process.memoryUsage()
    rss = Math.max(rss, memory.rss)
    arrayBuffers = Math.max(arrayBuffers, memory.arrayBuffers)
  }
  sample()
  const timer = setInterval(sample, 50)
  return {
    stop: () => {
      clearInterval(timer)
      sample()
      return { rssPeakSampled: rss, arrayBuffersPeak: arrayBuffers }
    }
  }
}

/** Starts the V8 sampling profiler when `config.profileDir` is set; the returned function stops it and saves. */
export const profile = async (name: string): Promise<() => Promise<void>> => {
  const dir = config.profileDir
  if (dir === undefined) return async () => {}
  const session = new Session()
  session.connect()
  await session.post("Profiler.enable")
  await session.post("Profiler.start")
  return async () => {
    const stopped = await session.post("Profiler.stop")
    Fs.writeFileSync(Path.join(dir, `${name}-${process.pid}.cpuprofile`), JSON.stringify(stopped.profile))
    session.disconnect()
  }
}
