/**
 * Copy-on-write at block granularity (Silo's `CopyOnWrite`): a read-only base device under a writable overlay of
 * the same size. A block is read from the overlay once it has been written there, from the base before that;
 * the `exists` bitmap says which. The base is never written.
 *
 * - A write that covers only part of a block not yet in the overlay first copies that block from the base, so
 *   the overlay always holds whole blocks. First writes to blocks (the only ones that copy or change the bitmap)
 *   run one at a time, so two partial first writes to one block cannot copy the base over each other; writes to
 *   blocks already in the overlay go straight through, concurrently.
 * - The bitmap is persisted in a state file, as Silo does: its words as little-endian u32s, nothing else. It is
 *   loaded on open (a missing file means an empty overlay) and written on `flush` and when the scope closes,
 *   after the overlay has been flushed, through a temporary file renamed over the old one, so a crash leaves
 *   the old map or the new one, never a torn one. Without a `state` path the map lives in memory only.
 * - Shared base (`sharedBase`): the same base image also exists, byte for byte, at a migration's destination.
 *   Blocks never written to the overlay are then already there, and `unrequiredBlocks` lists them (Silo's
 *   `cow.get.blocks`) so the source can send YouAlreadyHave instead of their data. Without a shared base every
 *   block must be sent and the list is empty. (Silo also intersects the list with lower copy-on-write layers;
 *   a base that is itself a `CopyOnWrite` is answered for the top layer only here.)
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import type * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import * as fs from "node:fs/promises"
import * as Path from "node:path"
import { Bitfield } from "./Bitfield.ts"
import * as Blocks from "./Blocks.ts"
import { ioFailure } from "./internal/fileHandle.ts"
import * as Lifecycle from "./internal/lifecycle.ts"
import { type BlockDevice, clip } from "./Provider.ts"
import * as StorageError from "./StorageError.ts"

/**
 * The block size, where the bitmap is kept, and whether the base is shared with migration destinations.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly blockSize: number
  /** Path of the state file holding the `exists` bitmap. */
  readonly state?: string | undefined
  /** Whether migration destinations have the same base image (enables `unrequiredBlocks`). */
  readonly sharedBase?: boolean | undefined
}

/**
 * A copy-on-write device.
 *
 * @since 0.1.0
 * @category models
 */
export interface CopyOnWrite extends BlockDevice {
  /**
   * With a shared base, the blocks never written to the overlay (a destination holding the base has them
   * already), ascending; without one, none.
   */
  readonly unrequiredBlocks: Effect.Effect<ReadonlyArray<number>>
}

const isNotFound = (cause: unknown): boolean =>
  typeof cause === "object" && cause !== null && "code" in cause && cause.code === "ENOENT"

/** Reads the bitmap of `numBlocks` blocks from `path`; a missing file is an empty overlay. */
const loadState = (
  device: string,
  path: string,
  numBlocks: number
): Effect.Effect<Bitfield, StorageError.StorageError> =>
  Effect.tryPromise({
    try: () =>
      fs.readFile(path).then((bytes): Uint8Array | undefined => bytes, (cause) => {
        if (isNotFound(cause)) return undefined
        throw cause
      }),
    catch: ioFailure(device, "read state")
  }).pipe(Effect.flatMap((bytes) => {
    if (bytes === undefined) return Effect.succeed(new Bitfield(numBlocks))
    const loaded = Bitfield.fromBytes(numBlocks, bytes)
    return loaded === undefined
      ? Effect.fail(StorageError.make(
        device,
        new StorageError.Corrupt({
          detail: `state file ${path} has ${bytes.length} bytes; ${numBlocks} blocks need ${
            Math.ceil(numBlocks / 32) * 4
          }`
        })
      ))
      : Effect.succeed(loaded)
  }))

/** Replaces `path` with `bytes` through a synced temporary file and a rename, then syncs the directory. */
const saveState = (device: string, path: string, bytes: Uint8Array): Effect.Effect<void, StorageError.StorageError> =>
  Effect.tryPromise({
    try: async () => {
      const temporary = `${path}.tmp`
      const file = await fs.open(temporary, "w")
      try {
        await file.writeFile(bytes)
        await file.datasync()
      } finally {
        await file.close()
      }
      await fs.rename(temporary, path)
      const directory = await fs.open(Path.dirname(path), "r")
      try {
        await directory.sync()
      } finally {
        await directory.close()
      }
    },
    catch: ioFailure(device, "write state")
  })

/**
 * Stacks `overlay` on `base` (same size), loading the bitmap from the state file when there is one; closed
 * with the current scope, which writes the bitmap back. Fails with `Unsupported` for a bad block size or
 * devices of different sizes, and with `Corrupt` for a state file of the wrong length.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fn("CopyOnWrite.make")(function*(
  base: BlockDevice,
  overlay: BlockDevice,
  options: Options
): Effect.fn.Return<CopyOnWrite, StorageError.StorageError, Scope.Scope> {
  const { blockSize, sharedBase = false, state } = options
  const name = `cow(${base.name})`
  const size = base.size
  if (!(Number.isSafeInteger(blockSize) && blockSize > 0) || overlay.size !== size) {
    return yield* StorageError.make(
      name,
      new StorageError.Unsupported({
        detail: overlay.size === size
          ? `block size must be a positive whole number, got ${blockSize}`
          : `the overlay has ${overlay.size} bytes, the base ${size}`
      })
    )
  }
  const numBlocks = Blocks.count(size, blockSize)
  const exists = state === undefined ? new Bitfield(numBlocks) : yield* loadState(name, state, numBlocks)
  // Whether the bitmap changed since it was last saved.
  let changed = false
  const saving = yield* Semaphore.make(1)
  const firstWrites = yield* Semaphore.make(1)

  const save: Effect.Effect<void, StorageError.StorageError> = state === undefined ? Effect.void : saving.withPermit(
    Effect.suspend(() => {
      if (!changed) return Effect.void
      changed = false
      return saveState(name, state, exists.toBytes()).pipe(
        Effect.tapError(() => Effect.sync(() => (changed = true)))
      )
    })
  )
  // The overlay's data is made durable before the map that points at it.
  const persist = Effect.andThen(overlay.flush, save)
  // A finalizer cannot fail: a map that could not be saved ends the scope with a defect rather than vanishing.
  const lifecycle = yield* Lifecycle.make(
    name,
    Effect.suspend(() => state === undefined || !changed ? Effect.void : Effect.orDie(persist))
  )

  const copyUp = Effect.fnUntraced(function*(block: number) {
    const { length, offset } = Blocks.range(block, size, blockSize)
    const buffer = new Uint8Array(length)
    yield* base.readAt(buffer, offset)
    yield* overlay.writeAt(buffer, offset)
  })

  const firstWrite = Effect.fnUntraced(function*(data: Uint8Array, offset: number, first: number, end: number) {
    const stop = Math.min(offset + data.length, size)
    // Checked under the lock: a first write that ran while this one waited may have copied these blocks.
    for (const block of end - 1 === first ? [first] : [first, end - 1]) {
      const range = Blocks.range(block, size, blockSize)
      const partial = offset > range.offset || stop < range.offset + range.length
      if (partial && !exists.has(block)) yield* copyUp(block)
    }
    const n = yield* overlay.writeAt(data, offset)
    // Marked only once the overlay holds the data, so a concurrent read never takes a block from it too early.
    exists.setRange(first, end)
    changed = true
    return n
  })

  /** Reads bytes `[offset, stop)`, blocks `[first, end)`, from whichever device holds each run of blocks. */
  const readRuns = (
    buffer: Uint8Array,
    offset: number,
    stop: number,
    first: number,
    end: number
  ): Effect.Effect<void, StorageError.StorageError> => {
    const reads: Array<Effect.Effect<number, StorageError.StorageError>> = []
    let runStart = first
    for (let block = first + 1; block <= end; block++) {
      if (block < end && exists.has(block) === exists.has(runStart)) continue
      const from = Math.max(offset, runStart * blockSize)
      const to = Math.min(stop, block * blockSize)
      const source = exists.has(runStart) ? overlay : base
      reads.push(source.readAt(buffer.subarray(from - offset, to - offset), from))
      runStart = block
    }
    return reads.length === 1 ? Effect.asVoid(reads[0]!) : Effect.forEach(reads, (read) => read, { discard: true })
  }

  return {
    name,
    size,
    readAt: (buffer, offset) =>
      lifecycle.guard(Effect.suspend((): Effect.Effect<number, StorageError.StorageError> => {
        const clipped = clip(name, size, offset, buffer.length)
        if (Result.isFailure(clipped)) return Effect.fail(clipped.failure)
        const n = clipped.success
        if (n === 0) return Effect.succeed(0)
        const { end, first } = Blocks.touched(offset, n, size, blockSize)
        return Effect.as(readRuns(buffer, offset, offset + n, first, end), n)
      })),
    writeAt: (data, offset) =>
      lifecycle.guard(Effect.suspend((): Effect.Effect<number, StorageError.StorageError> => {
        const clipped = clip(name, size, offset, data.length)
        if (Result.isFailure(clipped)) return Effect.fail(clipped.failure)
        if (clipped.success === 0) return Effect.succeed(0)
        const { end, first } = Blocks.touched(offset, clipped.success, size, blockSize)
        return exists.hasRange(first, end)
          ? overlay.writeAt(data, offset)
          : firstWrites.withPermit(firstWrite(data, offset, first, end))
      })),
    flush: lifecycle.guard(persist),
    cancelWrites: overlay.cancelWrites,
    unrequiredBlocks: Effect.sync(() => {
      const blocks: Array<number> = []
      if (sharedBase) { for (let block = 0; block < numBlocks; block++) if (!exists.has(block)) blocks.push(block) }
      return blocks
    })
  }
})
