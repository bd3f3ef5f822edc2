/**
 * Per-operation overhead of the WaitingCache and DirtyTracker modules over the Memory device they wrap, in the
 * same run: 4 KiB and 64 KiB reads and writes through each side of each module, against the bare device.
 * Prints a table (µs per operation and the overhead over the bare device) or, with --json, one JSON object.
 */
import { Effect, Exit, Scope } from "effect"
import { randomFillSync } from "node:crypto"
import { Bench } from "tinybench"
import { DirtyTracker, Memory, type Provider, WaitingCache } from "../src/index.ts"

const SIZE = 64 << 20
const BLOCK = 4096
const BATCH = 64
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
const TIME_MS = Number(process.env.BENCH_TIME_MS ?? 200)

const scope = Effect.runSync(Scope.make())
const inScope = <A>(effect: Effect.Effect<A, unknown, Scope.Scope>) => Effect.runPromise(Scope.provide(scope)(effect))

const memory = await inScope(Memory.make(SIZE))
const cache = await inScope(WaitingCache.make(memory, { blockSize: BLOCK }))
// Every block present, so local reads measure the bookkeeping, not a wait for data.
await Effect.runPromise(cache.remote.markAvailable(0, SIZE))
// Remote writes get a cache of their own: blocks written locally keep their local bytes, so on the first cache
// remote writes would be skipped rather than measured.
const arriving = await inScope(WaitingCache.make(memory, { blockSize: BLOCK }))
const tracker = await inScope(DirtyTracker.make(memory, BLOCK))
// Tracking armed on every block (as after a full migration pass), so local writes mark blocks dirty.
await Effect.runPromise(tracker.remote.trackAt(0, SIZE))

const targets: ReadonlyArray<readonly [string, Provider.BlockDevice]> = [
  ["memory", memory],
  ["waiting-cache local", cache.local],
  ["waiting-cache remote", arriving.remote],
  ["dirty-tracker local", tracker.local],
  ["dirty-tracker remote", tracker.remote]
]

const task = (device: Provider.BlockDevice, kind: "read" | "write", bytes: number) => {
  const buffer = randomFillSync(new Uint8Array(bytes))
  let at = 0
  const next = () => (at = (at + bytes) % SIZE)
  const loop = Effect.gen(function*() {
    for (let i = 0; i < BATCH; i++) {
      if (kind === "read") yield* device.readAt(buffer, next())
      else yield* device.writeAt(buffer, next())
    }
  })
  return () => Effect.runPromise(loop)
}

const cases = [4 << 10, 64 << 10].flatMap((bytes) =>
  (["read", "write"] as const).flatMap((kind) =>
    targets
      // The remote side of the waiting cache does not serve reads.
      .filter(([name]) => !(kind === "read" && name === "waiting-cache remote"))
      .map(([name, device]) => ({ name: `${kind} ${bytes >> 10} KiB: ${name}`, kind, bytes, target: name, device }))
  )
)

const samples = new Map<string, Array<number>>()
for (let round = 0; round < ROUNDS; round++) {
  const bench = new Bench({ time: TIME_MS, warmupTime: 50 })
  for (const c of cases) bench.add(c.name, task(c.device, c.kind, c.bytes))
  await bench.run()
  for (const c of cases) {
    const result = bench.getTask(c.name)?.result
    if (!result || !("latency" in result)) throw new Error(`no result for ${c.name}`)
    samples.set(c.name, [...(samples.get(c.name) ?? []), (result.latency.mean * 1000) / BATCH])
  }
}
await Effect.runPromise(Scope.close(scope, Exit.void))

const median = (values: ReadonlyArray<number>): number => {
  const sorted = values.toSorted((x, y) => x - y)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}
const rows = cases.map((c) => {
  const us = median(samples.get(c.name) ?? [])
  const bare = median(samples.get(`${c.kind} ${c.bytes >> 10} KiB: memory`) ?? [])
  return { case: c.name, us_per_op: +us.toFixed(2), overhead_us: +(us - bare).toFixed(2) }
})

if (process.argv.includes("--json")) {
  console.log(JSON.stringify({ runtime: `${process.release.name} ${process.version}`, rounds: ROUNDS, rows }))
} else {
  console.log(`module overhead over Memory, µs per operation, median of ${ROUNDS} rounds (${process.version})`)
  console.table(rows)
}
