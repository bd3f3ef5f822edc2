import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Scope } from "effect"
import fc from "fast-check"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as Path from "node:path"
import { Bitfield } from "../src/Bitfield.ts"
import * as Blocks from "../src/Blocks.ts"
import * as CopyOnWrite from "../src/CopyOnWrite.ts"
import * as Memory from "../src/Memory.ts"
import * as Provider from "../src/Provider.ts"
import { bytes } from "./utils/random.ts"

const read = (device: Provider.BlockDevice, offset: number, length: number) =>
  Effect.gen(function*() {
    const buffer = new Uint8Array(length)
    const n = yield* device.readAt(buffer, offset)
    return buffer.subarray(0, n)
  })

/** A base filled with `seed` bytes that counts attempts to write it (there must be none). */
const readOnlyBase = (size: number, seed: number) =>
  Effect.gen(function*() {
    const memory = yield* Memory.make(size)
    yield* memory.writeAt(bytes(size, seed), 0)
    let writes = 0
    const device = Provider.wrap(memory, "base", {
      writeAt: (data, offset) => Effect.andThen(Effect.sync(() => writes++), memory.writeAt(data, offset))
    })
    return { device, writes: () => writes }
  })

const temporaryDirectory = Effect.acquireRelease(
  Effect.promise(() => fs.mkdtemp(Path.join(os.tmpdir(), "tessera-cow-"))),
  (directory) => Effect.promise(() => fs.rm(directory, { recursive: true, force: true }))
)

describe("CopyOnWrite", () => {
  it.effect("lists every block never written as unrequired (Silo's TestCowGetBlocks numbers)", () =>
    Effect.gen(function*() {
      const size = 50 * 1024 * 1024
      const blockSize = 64 * 1024
      const base = yield* Memory.make(size)
      const overlay = yield* Memory.make(size)
      const cow = yield* CopyOnWrite.make(base, overlay, { blockSize, sharedBase: true })
      for (const offset of [0, 10 * 1024, 400_000, 701_902]) {
        assert.strictEqual(yield* cow.writeAt(bytes(4096, offset + 1), offset), 4096)
      }
      const unrequired = yield* cow.unrequiredBlocks
      assert.strictEqual(unrequired.length, 797)
      assert.deepStrictEqual(
        unrequired,
        Array.from({ length: 800 }, (_, i) => i).filter((i) => i !== 0 && i !== 6 && i !== 10)
      )
    }))

  it.effect("without a shared base every block is required", () =>
    Effect.gen(function*() {
      const base = yield* Memory.make(4096)
      const overlay = yield* Memory.make(4096)
      const cow = yield* CopyOnWrite.make(base, overlay, { blockSize: 1024 })
      assert.deepStrictEqual(yield* cow.unrequiredBlocks, [])
    }))

  it.effect("reads merge base and overlay per block as a byte model says, and the base is never written", () =>
    Effect.promise(() =>
      fc.assert(
        fc.asyncProperty(
          fc.integer({ min: 1, max: 32 }).chain((blockSize) =>
            fc.integer({ min: 1, max: 10 * blockSize }).chain((size) =>
              fc.tuple(
                fc.constant(blockSize),
                fc.constant(size),
                fc.array(
                  fc.record({
                    write: fc.boolean(),
                    offset: fc.nat({ max: size }),
                    length: fc.nat({ max: size + blockSize }),
                    seed: fc.nat()
                  }),
                  { maxLength: 30 }
                )
              )
            )
          ),
          ([blockSize, size, ops]) =>
            Effect.runPromise(Effect.scoped(Effect.gen(function*() {
              const base = yield* readOnlyBase(size, 99)
              const overlay = yield* Memory.make(size)
              const cow = yield* CopyOnWrite.make(base.device, overlay, { blockSize, sharedBase: true })
              const model = bytes(size, 99)
              const written = new Set<number>()
              for (const op of ops) {
                const stop = Math.min(op.offset + op.length, size)
                if (op.write) {
                  const data = bytes(op.length, op.seed)
                  assert.strictEqual(yield* cow.writeAt(data, op.offset), stop - op.offset)
                  model.set(data.subarray(0, stop - op.offset), op.offset)
                  const { end, first } = Blocks.touched(op.offset, op.length, size, blockSize)
                  for (let block = first; block < end; block++) written.add(block)
                } else {
                  assert.deepStrictEqual(yield* read(cow, op.offset, op.length), model.subarray(op.offset, stop))
                }
              }
              assert.deepStrictEqual(yield* read(cow, 0, size), model)
              assert.deepStrictEqual(yield* read(base.device, 0, size), bytes(size, 99))
              assert.strictEqual(base.writes(), 0)
              const numBlocks = Blocks.count(size, blockSize)
              assert.deepStrictEqual(
                yield* cow.unrequiredBlocks,
                Array.from({ length: numBlocks }, (_, i) => i).filter((i) => !written.has(i))
              )
            })))
        ),
        { numRuns: 300 }
      )
    ))

  it.effect("concurrent partial first writes to one block keep each other's bytes", () =>
    Effect.gen(function*() {
      const blockSize = 256
      const blocks = 32
      const size = blocks * blockSize
      const base = yield* readOnlyBase(size, 7)
      const memory = yield* Memory.make(size)
      // Every overlay call yields a varying number of times first, so the two writes of a block interleave
      // in many orders.
      const delays = bytes(4 * blocks * 8, 11)
      let calls = 0
      const jitter = Effect.suspend(() => Effect.repeat(Effect.yieldNow, { times: delays[calls++]! % 4 }))
      const overlay = Provider.wrap(memory, "slow", {
        readAt: (buffer, offset) => Effect.andThen(jitter, memory.readAt(buffer, offset)),
        writeAt: (data, offset) => Effect.andThen(jitter, memory.writeAt(data, offset))
      })
      const cow = yield* CopyOnWrite.make(base.device, overlay, { blockSize })
      const model = bytes(size, 7)
      const writes: Array<[Uint8Array, number]> = []
      for (let block = 0; block < blocks; block++) {
        writes.push([bytes(10, 2 * block + 1), block * blockSize + 5])
        writes.push([bytes(10, 2 * block + 2), block * blockSize + 200])
      }
      for (const [data, offset] of writes) model.set(data, offset)
      const fibers = yield* Effect.forEach(writes, ([data, offset]) => Effect.forkChild(cow.writeAt(data, offset)))
      yield* Fiber.joinAll(fibers)
      assert.deepStrictEqual(yield* read(cow, 0, size), model)
      assert.strictEqual(base.writes(), 0)
    }))

  it.effect("persists the exists map as little-endian u32 words, atomically, and loads it on reopen", () =>
    Effect.gen(function*() {
      const directory = yield* temporaryDirectory
      const state = Path.join(directory, "cow.state")
      const blockSize = 512
      const size = 40 * blockSize + 100 // 41 blocks: two words
      const base = yield* readOnlyBase(size, 3)
      const overlay = yield* Memory.make(size)
      const model = bytes(size, 3)

      const first = yield* Scope.make()
      const cow = yield* CopyOnWrite.make(base.device, overlay, { blockSize, state, sharedBase: true }).pipe(
        Scope.provide(first)
      )
      yield* cow.writeAt(bytes(10, 1), 3 * blockSize + 7)
      model.set(bytes(10, 1), 3 * blockSize + 7)
      yield* cow.flush
      const flushed = Bitfield.fromBytes(41, new Uint8Array(yield* Effect.promise(() => fs.readFile(state))))
      assert.deepStrictEqual([...flushed!], [3])

      yield* cow.writeAt(bytes(blockSize + 50, 2), 39 * blockSize + 10)
      model.set(bytes(blockSize + 50, 2).subarray(0, size - 39 * blockSize - 10), 39 * blockSize + 10)
      yield* Scope.close(first, Exit.void)
      const saved = new Uint8Array(yield* Effect.promise(() => fs.readFile(state)))
      assert.strictEqual(saved.length, 8)
      assert.deepStrictEqual([...saved], [0b1000, 0, 0, 0, 0x80, 0x01, 0, 0])
      assert.deepStrictEqual(yield* Effect.promise(() => fs.readdir(directory)), ["cow.state"])

      const reopened = yield* CopyOnWrite.make(base.device, overlay, { blockSize, state, sharedBase: true })
      assert.deepStrictEqual(yield* read(reopened, 0, size), model)
      assert.deepStrictEqual(
        yield* reopened.unrequiredBlocks,
        Array.from({ length: 41 }, (_, i) => i).filter((i) => i !== 3 && i !== 39 && i !== 40)
      )
      assert.strictEqual(base.writes(), 0)
    }))

  it.effect("refuses a state file of the wrong length, and devices of different sizes", () =>
    Effect.gen(function*() {
      const directory = yield* temporaryDirectory
      const state = Path.join(directory, "bad.state")
      yield* Effect.promise(() => fs.writeFile(state, new Uint8Array(5)))
      const base = yield* Memory.make(4096)
      const overlay = yield* Memory.make(4096)
      const corrupt = yield* Effect.flip(CopyOnWrite.make(base, overlay, { blockSize: 512, state }))
      assert.strictEqual(corrupt.reason._tag, "Corrupt")
      const other = yield* Memory.make(4000)
      const mismatch = yield* Effect.flip(CopyOnWrite.make(base, other, { blockSize: 512 }))
      assert.strictEqual(mismatch.reason._tag, "Unsupported")
    }))
})
