/**
 * Storage benchmark: sequential and random reads and writes of 4 KiB, 64 KiB and 1 MiB on the Memory, File
 * and SparseFile devices, against raw `node:fs/promises` FileHandle `read`/`write` of the File device's file,
 * in the same run. Each task call does a batch of operations (one `Effect.runPromise` per batch for ours, one
 * `await` per operation for raw), so the figures are per operation, not per timer call.
 * Prints a table and, with --json, one JSON object for the README.
 */
import { Effect, Exit, Scope } from "effect"
import { randomFillSync } from "node:crypto"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { Bench } from "tinybench"
import * as File from "../src/File.ts"
import { Memory, type Provider } from "../src/index.ts"
import * as SparseFile from "../src/SparseFile.ts"

const SIZE = 64 << 20
const BLOCK = 4096
const SIZES = [
  { label: "4 KiB", bytes: 4 << 10, batch: 32 },
  { label: "64 KiB", bytes: 64 << 10, batch: 16 },
  { label: "1 MiB", bytes: 1 << 20, batch: 4 }
] as const
const PATTERNS = ["seq", "rand"] as const
const KINDS = ["read", "write"] as const
const TARGETS = ["raw", "file", "sparse", "memory"] as const
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7)
const TIME_MS = Number(process.env.BENCH_TIME_MS ?? 100)

type Pattern = (typeof PATTERNS)[number]
type Kind = (typeof KINDS)[number]
type Target = (typeof TARGETS)[number]

const cases = SIZES.flatMap((size) =>
  KINDS.flatMap((kind) =>
    PATTERNS.map((pattern) => ({ ...size, kind, pattern, name: `${kind} ${pattern} ${size.label}` }))
  )
)

/** A cursor over the device's offsets for one case, in order or in a fixed random order, aligned to the size. */
const offsets = (bytes: number, pattern: Pattern) => {
  const slots = SIZE / bytes
  const table = pattern === "seq"
    ? Array.from({ length: slots }, (_, i) => i * bytes)
    : Array.from({ length: Math.min(slots, 4096) }, () => Math.floor(Math.random() * slots) * bytes)
  let at = 0
  return () => {
    const offset = table[at]!
    at = (at + 1) % table.length
    return offset
  }
}

/** One task call: `batch` operations of `kind` on `device`, one Effect run for the whole batch. */
const ours = (device: Provider.BlockDevice, kind: Kind, bytes: number, batch: number, pattern: Pattern) => {
  const next = offsets(bytes, pattern)
  const buffer = randomFillSync(new Uint8Array(bytes))
  const loop = kind === "read"
    ? Effect.gen(function*() {
      for (let i = 0; i < batch; i++) yield* device.readAt(buffer, next())
    })
    : Effect.gen(function*() {
      for (let i = 0; i < batch; i++) yield* device.writeAt(buffer, next())
    })
  return () => Effect.runPromise(loop)
}

/** The same operations with the bare FileHandle calls. */
const bare = (handle: fs.FileHandle, kind: Kind, bytes: number, batch: number, pattern: Pattern) => {
  const next = offsets(bytes, pattern)
  const buffer = randomFillSync(new Uint8Array(bytes))
  return kind === "read"
    ? async () => {
      for (let i = 0; i < batch; i++) await handle.read(buffer, 0, bytes, next())
    }
    : async () => {
      for (let i = 0; i < batch; i++) await handle.write(buffer, 0, bytes, next())
    }
}

const inScope = <A>(effect: Effect.Effect<A, unknown, Scope.Scope>, scope: Scope.Scope) =>
  Effect.runPromise(Scope.provide(scope)(effect))

// Every device starts full of random bytes, so reads read data (a sparse file's unwritten blocks would be zeros
// without any I/O). Everything stays in the page cache: this measures the software path, not the disk.
const fill = randomFillSync(new Uint8Array(1 << 20))
const prefill = (device: Provider.BlockDevice) =>
  Effect.runPromise(Effect.gen(function*() {
    for (let offset = 0; offset < SIZE; offset += fill.length) yield* device.writeAt(fill, offset)
  }))

const dir = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-storage-bench-"))
const scope = Effect.runSync(Scope.make())
const samples = new Map<string, Array<number>>()
try {
  const filePath = path.join(dir, "disk.img")
  const sparsePath = path.join(dir, "disk.sparse")
  const file = await inScope(File.make({ path: filePath, create: true, size: SIZE }), scope)
  const memory = await inScope(Memory.make(SIZE), scope)
  const raw = await fs.open(filePath, "r+")
  await prefill(file)
  await prefill(memory)

  // Several short rounds, each running every case on every target side by side, then the median: on a shared
  // 2-core machine one long run per task is at the mercy of whatever else happens during it.
  for (let round = 0; round < ROUNDS; round++) {
    // A fresh sparse file each round: its log grows with every write, and deleting it drops the dirty pages
    // before the kernel writes them back, which would otherwise disturb the rounds that follow.
    const roundScope = Effect.runSync(Scope.make())
    const sparse = await inScope(SparseFile.make({ path: sparsePath, size: SIZE, blockSize: BLOCK }), roundScope)
    await prefill(sparse)
    const devices = { file, sparse, memory }
    const bench = new Bench({ time: TIME_MS, warmupTime: 50 })
    for (const c of cases) {
      for (const target of TARGETS) {
        bench.add(
          `${c.name}: ${target}`,
          target === "raw"
            ? bare(raw, c.kind, c.bytes, c.batch, c.pattern)
            : ours(devices[target], c.kind, c.bytes, c.batch, c.pattern)
        )
      }
    }
    await bench.run()
    await Effect.runPromise(Scope.close(roundScope, Exit.void))
    await fs.rm(sparsePath)
    for (const c of cases) {
      for (const target of TARGETS) {
        const result = bench.getTask(`${c.name}: ${target}`)?.result
        if (!result || !("throughput" in result)) throw new Error(`no result for ${c.name}: ${target}`)
        samples.set(`${c.name}: ${target}`, [
          ...(samples.get(`${c.name}: ${target}`) ?? []),
          result.throughput.mean * c.batch
        ])
      }
    }
  }
  await raw.close()
} finally {
  await Effect.runPromise(Scope.close(scope, Exit.void))
  await fs.rm(dir, { recursive: true, force: true })
}

const median = (values: ReadonlyArray<number>): number => {
  const sorted = values.toSorted((x, y) => x - y)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}
const rows = cases.map((c) => {
  const of = (target: Target) => samples.get(`${c.name}: ${target}`) ?? []
  const mibs = (target: Target) => Math.round(median(of(target)) * c.bytes / (1 << 20))
  // The ratio is taken within each round (ours and raw ran side by side) and then the median over rounds, so a
  // slow spell on the machine that hits one round does not skew it.
  const ratio = (target: Target) => +median(of(target).map((ops, round) => ops / of("raw")[round]!)).toFixed(2)
  return {
    case: c.name,
    raw_mibs: mibs("raw"),
    file_mibs: mibs("file"),
    file_ratio: ratio("file"),
    sparse_mibs: mibs("sparse"),
    sparse_ratio: ratio("sparse"),
    memory_mibs: mibs("memory")
  }
})

if (process.argv.includes("--json")) {
  console.log(JSON.stringify({ runtime: `${process.release.name} ${process.version}`, rounds: ROUNDS, rows }))
} else {
  console.log(
    `storage devices, MiB/s and ours/raw, median of ${ROUNDS} rounds (${process.release.name} ${process.version})`
  )
  console.table(rows)
}
