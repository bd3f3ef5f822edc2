/**
 * A block device kept as an append-only log of blocks in one file (Silo's `FileStorageSparse`, made
 * crash-safe): only blocks that were written take space, blocks never written read as zeros, and every record
 * carries a checksum so a record torn by a crash or damaged later is never returned as data.
 *
 * On-disk layout (all integers little-endian), version 1:
 *
 * ```text
 * header, 28 bytes at offset 0
 *   0   8  magic "TSSPARSE" (ASCII)
 *   8   4  version, u32 = 1
 *   12  4  blockSize, u32
 *   16  8  device size in bytes, u64
 *   24  4  CRC-32 of bytes 0..24
 * records, each 12 + blockSize bytes, back to back from offset 28 (record i at 28 + i * (12 + blockSize))
 *   0   4  CRC-32 of bytes 4 .. 12 + blockSize of the record (block number and data)
 *   4   8  block number, u64
 *   12  blockSize  the block's bytes (the device's short last block is padded with zeros)
 * ```
 *
 * CRC-32 is the zlib / ISO-HDLC polynomial (`node:zlib` `crc32`). Bytes 4.. of a record are Silo's record
 * exactly (block number, then data); the checksum in front of it is the only addition, and covers it in one
 * pass.
 *
 * Writing never changes bytes already in the file: a write appends one record per block it touches, and the
 * latest record of a block wins. A crash can therefore only damage records still being appended, and a block
 * keeps its previous complete record until a newer one is whole. The cost is growth: every rewrite of a block
 * adds a record. A write that covers part of a block reads the block's current bytes (zeros if never written),
 * merges, and appends the whole block. Writes to the same block are ordered by the position of their records,
 * and a partial write re-reads and retries if another write to its block was placed while it was reading, so
 * concurrent writers never lose each other's bytes.
 *
 * Opening scans every record: the index (block → record offset) is rebuilt from the records whose checksum
 * holds, later records winning. Records that fail their checksum are skipped; those after the last good record
 * (a torn tail) and a partial record at the end are truncated away. A record with a good checksum whose block
 * lies outside the device means the file does not match its header, and opening fails with `Corrupt`. Reads
 * check each record's block number and checksum again, so damage after opening fails the read with `Corrupt`.
 *
 * A new file is created with its header under a temporary name, synced and renamed into place, so a crash while
 * creating never leaves a file without a whole header. `flush` is `fdatasync` (the appended records and the
 * file's length); a record acknowledged by `writeAt` and then flushed survives a crash. The device is closed
 * with its scope: later operations fail with `Closed`, and closing waits for operations in flight.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Result from "effect/Result"
import type * as Scope from "effect/Scope"
import { constants } from "node:fs"
import * as fs from "node:fs/promises"
import { crc32 } from "node:zlib"
import * as Blocks from "./Blocks.ts"
import * as FileHandle from "./internal/fileHandle.ts"
import * as Lifecycle from "./internal/lifecycle.ts"
import { type BlockDevice, clip, Provider } from "./Provider.ts"
import * as StorageError from "./StorageError.ts"

/**
 * The size and block size a sparse file records in its header.
 *
 * @since 0.1.0
 * @category models
 */
export interface Geometry {
  readonly size: number
  readonly blockSize: number
}

/**
 * The file, and the device it holds: `size` bytes in blocks of `blockSize`. An existing file must have been
 * created with the same `size` and `blockSize`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly path: string
  readonly size: number
  readonly blockSize: number
}

/**
 * Bytes before the first record.
 *
 * @since 0.1.0
 * @category layout
 */
export const HEADER_SIZE = 28

/**
 * Bytes of a record before the block's data: checksum and block number.
 *
 * @since 0.1.0
 * @category layout
 */
export const RECORD_HEADER_SIZE = 12

/**
 * The version this module writes and reads.
 *
 * @since 0.1.0
 * @category layout
 */
export const VERSION = 1

const MAGIC = new TextEncoder().encode("TSSPARSE")
/** Data bytes of the records moved by one call (a run of records read, a write's records, a scan step). */
const MAX_CALL = 1 << 20
/** Buffers of one call's records kept for reuse: a fresh megabyte costs page faults and GC on every call. */
const POOLED = 4
/** Record buffers up to this size are allocated exactly instead: small allocations are cheap. */
const SMALL = 64 << 10

const u32 = (bytes: Uint8Array, at: number): number =>
  (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) >>> 0

const putU32 = (bytes: Uint8Array, at: number, value: number): void => {
  bytes[at] = value & 0xff
  bytes[at + 1] = (value >>> 8) & 0xff
  bytes[at + 2] = (value >>> 16) & 0xff
  bytes[at + 3] = (value >>> 24) & 0xff
}

// u64 fields hold safe integers only (block numbers, byte sizes), so two u32 halves are enough and no BigInt
// is made per record.
const u64 = (bytes: Uint8Array, at: number): number => u32(bytes, at) + u32(bytes, at + 4) * 0x1_0000_0000

const putU64 = (bytes: Uint8Array, at: number, value: number): void => {
  putU32(bytes, at, value >>> 0)
  putU32(bytes, at + 4, Math.floor(value / 0x1_0000_0000))
}

/** The checksum of the record at `at` in `bytes`: of its block number and data, which follow the checksum. */
const recordCrc = (bytes: Uint8Array, at: number, blockSize: number): number =>
  crc32(bytes.subarray(at + 4, at + RECORD_HEADER_SIZE + blockSize))

const encodeHeader = (size: number, blockSize: number): Uint8Array => {
  const header = new Uint8Array(HEADER_SIZE)
  header.set(MAGIC, 0)
  putU32(header, 8, VERSION)
  putU32(header, 12, blockSize)
  putU64(header, 16, size)
  putU32(header, 24, crc32(header.subarray(0, 24)))
  return header
}

/** A record placed in the file whose write has not finished; reads of its block are served from `data`. */
interface Pending {
  readonly offset: number
  /** The block's bytes from its start, at least as many as the device holds of the block. */
  readonly data: Uint8Array
  /** The record this one replaced: its offset, and its entry while that write was still running. */
  readonly previous: number | undefined
  previousPending: Pending | undefined
  state: "running" | "written" | "failed"
}

/**
 * Consecutive records read with one call. Record `i` is block `blocks[i]`; once checked, its bytes from
 * `starts[i]` are copied into `targets[i]`.
 */
interface Run {
  readonly offset: number
  readonly blocks: Array<number>
  readonly starts: Array<number>
  readonly targets: Array<Uint8Array>
}

const invalid = (device: string, detail: string) => StorageError.make(device, new StorageError.Unsupported({ detail }))

const corrupt = (device: string, detail: string) => StorageError.make(device, new StorageError.Corrupt({ detail }))

/** Writes the header of a new file under a temporary name and renames it into place. */
const create = Effect.fnUntraced(function*(name: string, path: string, size: number, blockSize: number) {
  const temporary = `${path}.creating`
  yield* Effect.tryPromise({
    try: async () => {
      const handle = await fs.open(temporary, "w")
      try {
        await handle.write(encodeHeader(size, blockSize), 0, HEADER_SIZE, 0)
        await handle.datasync()
      } finally {
        await handle.close()
      }
      await fs.rename(temporary, path)
    },
    catch: FileHandle.ioFailure(name, "create")
  })
  yield* FileHandle.syncDirectory(name, path)
})

const exists = (name: string, path: string): Effect.Effect<boolean, StorageError.StorageError> =>
  Effect.tryPromise({
    try: () =>
      fs.stat(path).then(
        () => true,
        (cause: unknown) => {
          if (FileHandle.isNotFound(cause)) return false
          throw cause
        }
      ),
    catch: FileHandle.ioFailure(name, "stat")
  })

/** Reads the geometry a header records, checking magic, checksum and version. */
const parseHeader = (name: string, header: Uint8Array): Effect.Effect<Geometry, StorageError.StorageError> => {
  if (header.length < HEADER_SIZE) {
    return Effect.fail(corrupt(name, `${header.length} bytes is too short for a sparse file header`))
  }
  if (MAGIC.some((byte, i) => header[i] !== byte) || u32(header, 24) !== crc32(header.subarray(0, 24))) {
    return Effect.fail(corrupt(name, "not a sparse file (bad magic or header checksum)"))
  }
  if (u32(header, 8) !== VERSION) {
    return Effect.fail(invalid(name, `sparse file version ${u32(header, 8)} is not ${VERSION}`))
  }
  return Effect.succeed({ size: u64(header, 16), blockSize: u32(header, 12) })
}

/** Checks the header against the device asked for; returns the file's length. */
const checkHeader = Effect.fnUntraced(function*(
  file: FileHandle.FileHandle,
  name: string,
  size: number,
  blockSize: number
) {
  const length = yield* file.length
  const header = new Uint8Array(Math.min(HEADER_SIZE, length))
  if (header.length > 0) yield* file.read(header, header.length, 0)
  const geometry = yield* parseHeader(name, header)
  if (geometry.blockSize !== blockSize || geometry.size !== size) {
    return yield* invalid(
      name,
      `the file holds ${geometry.size} bytes in blocks of ${geometry.blockSize}, not ${size} in blocks of ${blockSize}`
    )
  }
  return length
})

/**
 * The size and block size an existing sparse file was made with, read from its header without opening the
 * device (so a caller can reopen it without being told them).
 *
 * @since 0.1.0
 * @category constructors
 */
export const describe = Effect.fn("SparseFile.describe")(function*(path: string) {
  const name = `sparse:${path}`
  const header = yield* Effect.tryPromise({
    try: async () => {
      const handle = await fs.open(path, "r")
      try {
        const bytes = new Uint8Array(HEADER_SIZE)
        const { bytesRead } = await handle.read(bytes, 0, HEADER_SIZE, 0)
        return bytes.subarray(0, bytesRead)
      } finally {
        await handle.close()
      }
    },
    catch: FileHandle.openFailure(name, path)
  })
  return yield* parseHeader(name, header)
})

/**
 * Rebuilds the index (block → offset of its latest good record) from the records of a file of `length`
 * bytes, truncating a torn tail; returns the index and where the next record goes.
 */
const scan = Effect.fnUntraced(function*(
  file: FileHandle.FileHandle,
  name: string,
  length: number,
  size: number,
  blockSize: number
) {
  const recordSize = RECORD_HEADER_SIZE + blockSize
  const blocks = Blocks.count(size, blockSize)
  const index = new Map<number, number>()
  const slots = Math.floor((length - HEADER_SIZE) / recordSize)
  const chunkRecords = Math.max(1, Math.floor((4 * MAX_CALL) / blockSize))
  const chunk = new Uint8Array(Math.min(slots, chunkRecords) * recordSize)
  let end = HEADER_SIZE
  let skipped = 0
  for (let slot = 0; slot < slots; slot += chunkRecords) {
    const records = Math.min(chunkRecords, slots - slot)
    const base = HEADER_SIZE + slot * recordSize
    yield* file.read(chunk, records * recordSize, base)
    for (let i = 0; i < records; i++) {
      const at = i * recordSize
      if (u32(chunk, at) !== recordCrc(chunk, at, blockSize)) {
        skipped++
        continue
      }
      const block = u64(chunk, at + 4)
      if (block >= blocks) {
        return yield* corrupt(name, `record at ${base + at} is for block ${block}, past the device's ${blocks}`)
      }
      index.set(block, base + at)
      end = base + at + recordSize
    }
  }
  if (end < length) {
    // Everything after the last good record is a torn tail: drop it so appends continue from whole records.
    skipped -= (HEADER_SIZE + slots * recordSize - end) / recordSize
    yield* file.truncate(end)
    yield* file.datasync
    yield* Effect.logWarning(`${name}: dropped ${length - end} bytes of torn records at the end`)
  }
  if (skipped > 0) yield* Effect.logWarning(`${name}: skipped ${skipped} records that fail their checksum`)
  return { index, end }
})

/**
 * Opens the sparse file at `path`, creating it if it does not exist, and rebuilds its index; closed with the
 * current scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fn("SparseFile.make")(
  function*(options: Options): Effect.fn.Return<BlockDevice, StorageError.StorageError, Scope.Scope> {
    const { blockSize, path, size } = options
    const name = `sparse:${path}`
    if (!(Number.isSafeInteger(size) && size >= 0)) {
      return yield* invalid(name, `size must be a whole number of bytes, got ${size}`)
    }
    if (!(Number.isSafeInteger(blockSize) && blockSize > 0 && blockSize <= 0xffff_ffff)) {
      return yield* invalid(name, `blockSize must be a whole number of bytes from 1 to 2^32-1, got ${blockSize}`)
    }
    if (!(yield* exists(name, path))) yield* create(name, path, size, blockSize)

    const file = yield* FileHandle.open(name, path, constants.O_RDWR)
    const scanned = yield* scan(file, name, yield* checkHeader(file, name, size, blockSize), size, blockSize)
    const index = scanned.index
    const recordSize = RECORD_HEADER_SIZE + blockSize

    // Made after the handle, so its finalizer runs first: operations drain before the handle's calls do.
    const lifecycle = yield* Lifecycle.make<never>(name)
    const pending = new Map<number, Pending>()
    let appendAt = scanned.end

    // --- reading records ------------------------------------------------------------------------------------
    const runRecords = Math.max(1, Math.floor(MAX_CALL / blockSize))
    const pooledBytes = runRecords * recordSize
    const pool: Array<Uint8Array> = []
    /** A buffer for `bytes` bytes of records (contents undefined): pooled when large, exact when small. */
    const take = (bytes: number): Uint8Array => {
      if (bytes > pooledBytes) return new Uint8Array(bytes)
      const buffer = pool.pop() ?? new Uint8Array(bytes > SMALL ? pooledBytes : bytes)
      return buffer.subarray(0, bytes)
    }
    /** Returns a buffer once no call uses it any more. */
    const give = (buffer: Uint8Array): void => {
      if (buffer.buffer.byteLength === pooledBytes && pool.length < POOLED) pool.push(new Uint8Array(buffer.buffer))
    }

    /**
     * Reads the runs (all at once when there are several) into one buffer, checks them, copies them out. One
     * contiguous call per run and a copy: vectored calls that scatter straight into the targets cost more main
     * thread time in Node (about 0.4 µs per buffer) than the copy does.
     */
    const readRuns = (runs: ReadonlyArray<Run>): Effect.Effect<void, StorageError.StorageError> => {
      let total = 0
      for (const run of runs) total += run.blocks.length * recordSize
      const records = take(total)
      const parts: Array<Uint8Array> = []
      for (let start = 0, r = 0; r < runs.length; r++) {
        const length = runs[r]!.blocks.length * recordSize
        parts.push(records.subarray(start, start + length))
        start += length
      }
      const read = runs.length === 1
        ? file.read(records, total, runs[0]!.offset)
        : file.readAll(parts, runs.map((run) => run.offset))
      // Uninterruptible, so the buffer goes back to the pool only once the system calls have finished with it.
      return Effect.uninterruptible(Effect.ensuring(
        Effect.flatMap(read, () => {
          for (let r = 0; r < runs.length; r++) {
            const run = runs[r]!
            const bytes = parts[r]!
            for (let i = 0; i < run.blocks.length; i++) {
              const at = i * recordSize
              // Bytes past the end of the file read as zeros, which fail the checksum like any other damage.
              if (u64(bytes, at + 4) !== run.blocks[i] || u32(bytes, at) !== recordCrc(bytes, at, blockSize)) {
                return Effect.fail(
                  corrupt(name, `record of block ${run.blocks[i]} at ${run.offset + at} fails its checksum`)
                )
              }
              const from = at + RECORD_HEADER_SIZE + run.starts[i]!
              run.targets[i]!.set(bytes.subarray(from, from + run.targets[i]!.length))
            }
          }
          return Effect.void
        }),
        Effect.sync(() => give(records))
      ))
    }

    /** Adds block `block`, read from the record at `offset` (its bytes from `start` into `target`), to the runs. */
    const plan = (runs: Array<Run>, block: number, offset: number, start: number, target: Uint8Array): void => {
      const last = runs.at(-1)
      if (
        last !== undefined && last.blocks.at(-1) === block - 1 &&
        last.offset + last.blocks.length * recordSize === offset && last.blocks.length < runRecords
      ) {
        last.blocks.push(block)
        last.starts.push(start)
        last.targets.push(target)
      } else {
        runs.push({ offset, blocks: [block], starts: [start], targets: [target] })
      }
    }

    // --- placing records ------------------------------------------------------------------------------------
    /** Settles the records of one write; a failed record gives its block back to the newest earlier good one. */
    const settle = (first: number, entries: ReadonlyArray<Pending>, written: boolean): void => {
      for (let i = 0; i < entries.length; i++) {
        const entry = entries[i]!
        const block = first + i
        const current = pending.get(block) === entry
        if (written) {
          entry.state = "written"
          entry.previousPending = undefined // nothing falls back past a written record
          if (current) pending.delete(block)
          continue
        }
        entry.state = "failed"
        // A newer record of the block was placed since; if it fails too, it falls back through this one.
        if (!current) continue
        let failed = entry
        while (failed.previousPending?.state === "failed") failed = failed.previousPending
        const fallback = failed.previousPending
        if (fallback !== undefined) {
          index.set(block, fallback.offset)
          if (fallback.state === "running") pending.set(block, fallback)
          else pending.delete(block)
        } else {
          if (failed.previous === undefined) index.delete(block)
          else index.set(block, failed.previous)
          pending.delete(block)
        }
      }
    }

    /**
     * Places one record per block of `contents` (block `first` onwards) at the end of the file and serves the
     * blocks from memory until the returned effect has written them. Placing happens when this is called, in
     * one synchronous step: the records' order in the file is the order of the writes.
     */
    const place = (
      first: number,
      contents: ReadonlyArray<Uint8Array>,
      n: number
    ): Effect.Effect<number, StorageError.StorageError> => {
      const position = appendAt
      appendAt += contents.length * recordSize
      // One contiguous buffer and one call (see readRuns). Its records serve reads of their blocks until written.
      const records = take(contents.length * recordSize)
      const entries: Array<Pending> = []
      for (let i = 0; i < contents.length; i++) {
        const block = first + i
        const at = i * recordSize
        putU64(records, at + 4, block)
        records.set(contents[i]!, at + RECORD_HEADER_SIZE)
        records.fill(0, at + RECORD_HEADER_SIZE + contents[i]!.length, at + recordSize) // a short last block's padding
        putU32(records, at, recordCrc(records, at, blockSize))
        const entry: Pending = {
          offset: position + at,
          data: records.subarray(at + RECORD_HEADER_SIZE, at + recordSize),
          previous: index.get(block),
          previousPending: pending.get(block),
          state: "running"
        }
        index.set(block, entry.offset)
        pending.set(block, entry)
        entries.push(entry)
      }
      return file.write(records, records.length, position).pipe(
        Effect.onExit((exit) =>
          Effect.sync(() => {
            settle(first, entries, exit._tag === "Success")
            // Settled records are out of `pending`, so nothing reads this buffer any more.
            give(records)
          })
        ),
        Effect.as(n)
      )
    }

    /** Whether the write `[offset, stop)` covers only part of block `block`. */
    const isPartial = (block: number, offset: number, stop: number): boolean => {
      const { length, offset: start } = Blocks.range(block, size, blockSize)
      return offset > start || stop < start + length
    }

    /** The bytes of `data` (written at `offset`) that fall in block `block`. */
    const slice = (data: Uint8Array, offset: number, stop: number, block: number): Uint8Array => {
      const { length, offset: start } = Blocks.range(block, size, blockSize)
      return data.subarray(Math.max(start, offset) - offset, Math.min(start + length, stop) - offset)
    }

    /**
     * A partial write: read the current bytes of its partial blocks, merge, and place the records, all from one
     * view of the index. If another write to a partial block was placed while reading, read again.
     */
    const writeMerged = Effect.fnUntraced(function*(
      data: Uint8Array,
      offset: number,
      n: number,
      first: number,
      end: number,
      partial: ReadonlyArray<number>
    ) {
      const stop = offset + n
      while (true) {
        const seen = partial.map((block) => index.get(block))
        const merged = partial.map(() => new Uint8Array(blockSize))
        const runs: Array<Run> = []
        for (let i = 0; i < partial.length; i++) {
          const block = partial[i]!
          const running = pending.get(block)
          if (running !== undefined) merged[i]!.set(running.data)
          else if (seen[i] !== undefined) plan(runs, block, seen[i]!, 0, merged[i]!)
        }
        if (runs.length > 0) yield* readRuns(runs)
        // No yield between this check and `place`: nothing else can place a record in between.
        if (partial.some((block, i) => index.get(block) !== seen[i])) continue
        const contents: Array<Uint8Array> = []
        for (let block = first; block < end; block++) {
          const i = partial.indexOf(block)
          if (i === -1) {
            contents.push(slice(data, offset, stop, block))
          } else {
            merged[i]!.set(slice(data, offset, stop, block), Math.max(offset - block * blockSize, 0))
            contents.push(merged[i]!)
          }
        }
        return yield* place(first, contents, n)
      }
    })

    return {
      name,
      size,
      readAt: (buffer, offset) =>
        lifecycle.guard(Effect.suspend(() => {
          const clipped = clip(name, size, offset, buffer.length)
          if (Result.isFailure(clipped)) return Effect.fail(clipped.failure)
          const stop = offset + clipped.success
          const { end, first } = Blocks.touched(offset, clipped.success, size, blockSize)
          const runs: Array<Run> = []
          for (let block = first; block < end; block++) {
            const start = block * blockSize
            const from = Math.max(offset, start)
            const to = buffer.subarray(from - offset, Math.min(start + blockSize, stop) - offset)
            const running = pending.get(block)
            const at = index.get(block)
            if (running !== undefined) to.set(running.data.subarray(from - start, from - start + to.length))
            else if (at === undefined) to.fill(0)
            else plan(runs, block, at, from - start, to)
          }
          if (runs.length === 0) return Effect.succeed(clipped.success)
          return Effect.as(readRuns(runs), clipped.success)
        })),
      // Uninterruptible: a write placed in the index must reach its settle step, or its block would be served
      // from memory forever.
      writeAt: (data, offset) =>
        lifecycle.guard(Effect.uninterruptible(Effect.suspend(() => {
          const clipped = clip(name, size, offset, data.length)
          if (Result.isFailure(clipped)) return Effect.fail(clipped.failure)
          const n = clipped.success
          if (n === 0) return Effect.succeed(0)
          const stop = offset + n
          const { end, first } = Blocks.touched(offset, n, size, blockSize)
          const partial = [first, end - 1].filter((block, i) =>
            (i === 0 || block !== first) && isPartial(block, offset, stop)
          )
          if (partial.length > 0) return writeMerged(data, offset, n, first, end, partial)
          const contents: Array<Uint8Array> = []
          for (let block = first; block < end; block++) contents.push(slice(data, offset, stop, block))
          return place(first, contents, n)
        }))),
      flush: lifecycle.guard(file.datasync),
      cancelWrites: () => Effect.void,
      // A block is allocated once a record of it is placed; blocks never written read as zeros.
      allocation: (offset, length) =>
        lifecycle.guard(Effect.suspend(() => {
          const clipped = clip(name, size, offset, length)
          if (Result.isFailure(clipped)) return Effect.fail(clipped.failure)
          const stop = offset + clipped.success
          const runs: Array<{ length: number; allocated: boolean }> = []
          if (clipped.success === 0) return Effect.succeed(runs)
          const { end, first } = Blocks.touched(offset, clipped.success, size, blockSize)
          for (let block = first; block < end; block++) {
            const allocated = index.has(block) || pending.has(block)
            const bytes = Math.min(stop, (block + 1) * blockSize) - Math.max(offset, block * blockSize)
            const last = runs.at(-1)
            if (last !== undefined && last.allocated === allocated) last.length += bytes
            else runs.push({ length: bytes, allocated })
          }
          return Effect.succeed(runs)
        }))
    }
  }
)

/**
 * A `Provider` layer holding the sparse file device.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<Provider, StorageError.StorageError> =>
  Layer.effect(Provider, make(options))
