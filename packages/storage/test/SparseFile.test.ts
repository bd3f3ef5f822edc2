import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Result, Scope } from "effect"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { crc32 } from "node:zlib"
import { Device, Provider } from "../src/index.ts"
import * as SparseFile from "../src/SparseFile.ts"
import { stress } from "./utils/stress.ts"
import { tempDir } from "./utils/tempDir.ts"

const BLOCK = 4096
const RECORD = SparseFile.RECORD_HEADER_SIZE + BLOCK
const bytes = (length: number, seed: number) => Uint8Array.from({ length }, (_, i) => (i * 31 + seed) & 0xff)

/** Opens the device in its own scope, runs `use`, and closes it again. */
const withDevice = <A, E>(
  options: SparseFile.Options,
  use: (device: Provider.BlockDevice) => Effect.Effect<A, E>
) => Effect.scoped(Effect.flatMap(SparseFile.make(options), use))

const readBlock = (device: Provider.BlockDevice, block: number) =>
  Effect.gen(function*() {
    const buffer = new Uint8Array(BLOCK)
    yield* device.readAt(buffer, block * BLOCK)
    return buffer
  })

const fileSize = (file: string) => Effect.promise(() => fs.stat(file).then((stat) => stat.size))

describe("SparseFile", () => {
  it.effect("reads zeros where nothing was written, and merges partial writes into the block", () =>
    Effect.gen(function*() {
      const device = yield* SparseFile.make({
        path: path.join(yield* tempDir, "s"),
        size: 10 * BLOCK,
        blockSize: BLOCK
      })
      const buffer = new Uint8Array(3 * BLOCK).fill(9)
      assert.strictEqual(yield* device.readAt(buffer, 0), 3 * BLOCK)
      assert.isTrue(buffer.every((byte) => byte === 0))

      assert.strictEqual(yield* device.writeAt(new Uint8Array([1, 2, 3]), BLOCK + 10), 3)
      assert.strictEqual(yield* device.writeAt(new Uint8Array([4, 5]), BLOCK + 12), 2)
      const around = new Uint8Array(8)
      yield* device.readAt(around, BLOCK + 8)
      assert.deepStrictEqual([...around], [0, 0, 1, 2, 4, 5, 0, 0])
    }))

  it.effect("writes spanning blocks, with partial blocks at both ends, read back exactly", () =>
    Effect.gen(function*() {
      const device = yield* SparseFile.make({
        path: path.join(yield* tempDir, "s"),
        size: 10 * BLOCK,
        blockSize: BLOCK
      })
      yield* device.writeAt(new Uint8Array(10 * BLOCK).fill(0xee), 0)
      const data = bytes(3 * BLOCK + 100, 1)
      assert.strictEqual(yield* device.writeAt(data, BLOCK + 50), data.length)
      const buffer = new Uint8Array(10 * BLOCK)
      yield* device.readAt(buffer, 0)
      const expected = new Uint8Array(10 * BLOCK).fill(0xee)
      expected.set(data, BLOCK + 50)
      assert.deepStrictEqual(buffer, expected)
    }))

  it.effect("cuts reads and writes short at the end of the device, padding the short last block", () =>
    Effect.gen(function*() {
      const file = path.join(yield* tempDir, "s")
      const size = 2 * BLOCK + 100
      yield* withDevice({ path: file, size, blockSize: BLOCK }, (device) =>
        Effect.gen(function*() {
          assert.strictEqual(yield* device.writeAt(new Uint8Array(300).fill(7), size - 50), 50)
          assert.strictEqual(yield* device.writeAt(new Uint8Array(10), size), 0)
          assert.strictEqual(yield* device.readAt(new Uint8Array(10), size), 0)
          const tail = new Uint8Array(200)
          assert.strictEqual(yield* device.readAt(tail, size - 150), 150)
          assert.deepStrictEqual([...tail.subarray(0, 150)], [...new Uint8Array(100), ...new Uint8Array(50).fill(7)])
          // A whole short last block is written without reading it first.
          assert.strictEqual(yield* device.writeAt(new Uint8Array(100).fill(3), 2 * BLOCK), 100)
        }))
      assert.strictEqual(yield* fileSize(file), SparseFile.HEADER_SIZE + 2 * RECORD)
      const device = yield* SparseFile.make({ path: file, size, blockSize: BLOCK })
      const last = new Uint8Array(100)
      yield* device.readAt(last, 2 * BLOCK)
      assert.isTrue(last.every((byte) => byte === 3))
    }))

  it.effect("refuses offsets outside the device with OutOfRange", () =>
    Effect.gen(function*() {
      const device = yield* SparseFile.make({ path: path.join(yield* tempDir, "s"), size: 100, blockSize: 16 })
      for (const offset of [-1, 101, 0.5, Number.NaN]) {
        assert.strictEqual((yield* Effect.flip(device.readAt(new Uint8Array(1), offset))).reason._tag, "OutOfRange")
        assert.strictEqual((yield* Effect.flip(device.writeAt(new Uint8Array(1), offset))).reason._tag, "OutOfRange")
      }
    }))

  it.effect("fails with Closed once its scope is closed", () =>
    Effect.gen(function*() {
      const file = path.join(yield* tempDir, "s")
      const scope = yield* Scope.make()
      const device = yield* SparseFile.make({ path: file, size: 100, blockSize: 16 }).pipe(Scope.provide(scope))
      yield* Scope.close(scope, Exit.void)
      const error = yield* Effect.flip(device.writeAt(new Uint8Array(1), 0))
      assert.strictEqual(error.reason._tag, "Closed")
      assert.strictEqual(error.message, `sparse:${file}: closed`)
      assert.strictEqual((yield* Effect.flip(device.readAt(new Uint8Array(1), 0))).reason._tag, "Closed")
      assert.strictEqual((yield* Effect.flip(device.flush)).reason._tag, "Closed")
    }))

  it.effect("closing waits for writes in flight: each write either fails with Closed or is there on reopen", () =>
    Effect.gen(function*() {
      const file = path.join(yield* tempDir, "s")
      const options = { path: file, size: 64 * BLOCK, blockSize: BLOCK }
      const scope = yield* Scope.make()
      const device = yield* SparseFile.make(options).pipe(Scope.provide(scope))
      const writes = yield* Effect.forEach(
        Array.from({ length: 64 }, (_, i) => i),
        (i) => Effect.forkChild(Effect.result(device.writeAt(bytes(BLOCK - 100, i), i * BLOCK + 50)))
      )
      yield* Effect.yieldNow
      yield* Scope.close(scope, Exit.void)
      const results = yield* Effect.forEach(writes, Fiber.join)
      yield* withDevice(options, (reopened) =>
        Effect.gen(function*() {
          for (const [i, result] of results.entries()) {
            const expected = new Uint8Array(BLOCK)
            if (Result.isSuccess(result)) expected.set(bytes(BLOCK - 100, i), 50)
            else assert.strictEqual(result.failure.reason._tag, "Closed")
            assert.deepStrictEqual(yield* readBlock(reopened, i), expected)
          }
        }))
    }))

  it.effect("layer holds the device as the Provider", () =>
    Effect.gen(function*() {
      const file = path.join(yield* tempDir, "s")
      const size = yield* Provider.Provider.use((device) => Effect.succeed(device.size)).pipe(
        Effect.provide(SparseFile.layer({ path: file, size: 1234, blockSize: 512 }))
      )
      assert.strictEqual(size, 1234)
    }))

  it.effect("keeps the latest write of every block across reopen; rewrites append records", () =>
    Effect.gen(function*() {
      const file = path.join(yield* tempDir, "s")
      const options = { path: file, size: 64 * BLOCK, blockSize: BLOCK }
      yield* withDevice(options, (device) =>
        Effect.gen(function*() {
          yield* device.writeAt(bytes(BLOCK, 1), 5 * BLOCK)
          yield* device.writeAt(bytes(BLOCK, 2), 9 * BLOCK)
          yield* device.writeAt(bytes(BLOCK, 3), 5 * BLOCK)
          yield* device.flush
        }))
      assert.strictEqual(yield* fileSize(file), SparseFile.HEADER_SIZE + 3 * RECORD)
      yield* withDevice(options, (device) =>
        Effect.gen(function*() {
          assert.deepStrictEqual(yield* readBlock(device, 5), bytes(BLOCK, 3))
          assert.deepStrictEqual(yield* readBlock(device, 9), bytes(BLOCK, 2))
          assert.deepStrictEqual(yield* readBlock(device, 6), new Uint8Array(BLOCK))
        }))
    }))

  it.effect("writes the documented layout: header, then CRC-32, block number and data per record", () =>
    Effect.gen(function*() {
      const file = path.join(yield* tempDir, "s")
      yield* withDevice(
        { path: file, size: 8 * BLOCK + 1, blockSize: BLOCK },
        (device) => device.writeAt(bytes(BLOCK, 4), 7 * BLOCK)
      )
      const raw = new Uint8Array(yield* Effect.promise(() => fs.readFile(file)))
      const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength)
      assert.strictEqual(new TextDecoder().decode(raw.subarray(0, 8)), "TSSPARSE")
      assert.strictEqual(view.getUint32(8, true), SparseFile.VERSION)
      assert.strictEqual(view.getUint32(12, true), BLOCK)
      assert.strictEqual(view.getBigUint64(16, true), BigInt(8 * BLOCK + 1))
      assert.strictEqual(view.getUint32(24, true), crc32(raw.subarray(0, 24)))
      const record = SparseFile.HEADER_SIZE
      assert.strictEqual(view.getUint32(record, true), crc32(raw.subarray(record + 4)))
      assert.strictEqual(view.getBigUint64(record + 4, true), 7n)
      assert.deepStrictEqual(raw.subarray(record + 12), bytes(BLOCK, 4))
    }))

  it.effect("drops a torn tail record on reopen and keeps appending after the last whole one", () =>
    Effect.gen(function*() {
      const file = path.join(yield* tempDir, "s")
      const options = { path: file, size: 16 * BLOCK, blockSize: BLOCK }
      yield* withDevice(options, (device) =>
        Effect.gen(function*() {
          yield* device.writeAt(bytes(BLOCK, 1), 0)
          yield* device.writeAt(bytes(BLOCK, 2), BLOCK)
          yield* device.writeAt(bytes(BLOCK, 3), 0) // will be torn: block 0 must fall back to its first write
        }))
      const whole = SparseFile.HEADER_SIZE + 2 * RECORD
      yield* Effect.promise(() => fs.truncate(file, whole + RECORD / 2))
      yield* withDevice(options, (device) =>
        Effect.gen(function*() {
          assert.strictEqual(yield* fileSize(file), whole)
          assert.deepStrictEqual(yield* readBlock(device, 0), bytes(BLOCK, 1))
          assert.deepStrictEqual(yield* readBlock(device, 1), bytes(BLOCK, 2))
          yield* device.writeAt(bytes(BLOCK, 4), 2 * BLOCK)
        }))
      yield* withDevice(options, (device) =>
        Effect.gen(function*() {
          assert.strictEqual(yield* fileSize(file), whole + RECORD)
          assert.deepStrictEqual(yield* readBlock(device, 2), bytes(BLOCK, 4))
        }))
    }))

  it.effect("a tail of whole records that fail their checksum (a zeroed extent) is dropped too", () =>
    Effect.gen(function*() {
      const file = path.join(yield* tempDir, "s")
      const options = { path: file, size: 16 * BLOCK, blockSize: BLOCK }
      yield* withDevice(options, (device) => device.writeAt(bytes(BLOCK, 1), 3 * BLOCK))
      const whole = SparseFile.HEADER_SIZE + RECORD
      yield* Effect.promise(() => fs.truncate(file, whole + 3 * RECORD))
      yield* withDevice(options, (device) =>
        Effect.gen(function*() {
          assert.strictEqual(yield* fileSize(file), whole)
          assert.deepStrictEqual(yield* readBlock(device, 3), bytes(BLOCK, 1))
          assert.deepStrictEqual(yield* readBlock(device, 0), new Uint8Array(BLOCK))
        }))
    }))

  it.effect("never returns a record whose checksum fails: on reopen it is skipped, while open the read fails", () =>
    Effect.gen(function*() {
      const file = path.join(yield* tempDir, "s")
      const options = { path: file, size: 16 * BLOCK, blockSize: BLOCK }
      yield* withDevice(options, (device) =>
        Effect.gen(function*() {
          yield* device.writeAt(bytes(BLOCK, 1), 5 * BLOCK) // record 0
          yield* device.writeAt(bytes(BLOCK, 2), 6 * BLOCK) // record 1
          yield* device.writeAt(bytes(BLOCK, 3), 5 * BLOCK) // record 2, damaged below
          yield* device.writeAt(bytes(BLOCK, 4), 7 * BLOCK) // record 3
        }))
      const flip = (record: number, at: number) =>
        Effect.promise(async () => {
          const handle = await fs.open(file, "r+")
          const position = SparseFile.HEADER_SIZE + record * RECORD + at
          const byte = new Uint8Array(1)
          await handle.read(byte, 0, 1, position)
          byte[0] = byte[0]! ^ 0x10
          await handle.write(byte, 0, 1, position)
          await handle.close()
        })
      yield* flip(2, SparseFile.RECORD_HEADER_SIZE + 100)
      yield* flip(1, 6) // a byte of the block number
      yield* withDevice(options, (device) =>
        Effect.gen(function*() {
          assert.deepStrictEqual(yield* readBlock(device, 5), bytes(BLOCK, 1), "falls back to the older record")
          assert.deepStrictEqual(yield* readBlock(device, 6), new Uint8Array(BLOCK), "its only record is gone")
          assert.deepStrictEqual(yield* readBlock(device, 7), bytes(BLOCK, 4))
          // Damage while open: the read fails instead of returning the bytes.
          yield* flip(3, SparseFile.RECORD_HEADER_SIZE + 7)
          const error = yield* Effect.flip(device.readAt(new Uint8Array(10), 7 * BLOCK + 5))
          assert.strictEqual(error.reason._tag, "Corrupt")
          const whole = yield* Effect.flip(device.readAt(new Uint8Array(2 * BLOCK), 6 * BLOCK))
          assert.strictEqual(whole.reason._tag, "Corrupt")
        }))
    }))

  it.effect("refuses a file made for another geometry, and a file that is not a sparse file", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const file = path.join(dir, "s")
      yield* withDevice({ path: file, size: 100, blockSize: 16 }, () => Effect.void)
      const size = yield* Effect.flip(SparseFile.make({ path: file, size: 200, blockSize: 16 }))
      assert.strictEqual(size.reason._tag, "Unsupported")
      assert.include(size.message, "holds 100 bytes in blocks of 16")
      assert.strictEqual(
        (yield* Effect.flip(SparseFile.make({ path: file, size: 100, blockSize: 32 }))).reason._tag,
        "Unsupported"
      )
      const other = path.join(dir, "other")
      yield* Effect.promise(() => fs.writeFile(other, bytes(100, 0)))
      assert.strictEqual(
        (yield* Effect.flip(SparseFile.make({ path: other, size: 100, blockSize: 16 }))).reason._tag,
        "Corrupt"
      )
      for (const blockSize of [0, -1, 1.5]) {
        const error = yield* Effect.flip(SparseFile.make({ path: path.join(dir, "x"), size: 100, blockSize }))
        assert.strictEqual(error.reason._tag, "Unsupported")
      }
    }))

  it.effect("concurrent partial writes to one block keep every writer's bytes", () =>
    Effect.gen(function*() {
      const device = yield* SparseFile.make({ path: path.join(yield* tempDir, "s"), size: 4 * BLOCK, blockSize: BLOCK })
      yield* device.writeAt(new Uint8Array(BLOCK).fill(0xff), BLOCK)
      yield* Effect.forEach(
        Array.from({ length: 200 }, (_, i) => i),
        (i) => device.writeAt(new Uint8Array([i + 1]), BLOCK + i * 7),
        { concurrency: "unbounded", discard: true }
      )
      const block = yield* readBlock(device, 1)
      for (let i = 0; i < 200; i++) assert.strictEqual(block[i * 7], i + 1)
      assert.strictEqual(block[1], 0xff)
    }))

  it.effect("many concurrent writers and readers leave exactly the model's bytes, also after reopen", () =>
    Effect.gen(function*() {
      const file = path.join(yield* tempDir, "s")
      const options = { path: file, size: 2_000_003, blockSize: BLOCK }
      const scope = yield* Scope.make()
      const device = yield* SparseFile.make(options).pipe(Scope.provide(scope))
      const model = yield* stress(device, {
        writers: 8,
        readers: 4,
        writesPerWriter: 150,
        readsPerReader: 200,
        bandsPerWriter: 5
      })
      yield* Scope.close(scope, Exit.void)
      assert.isTrue(yield* withDevice(options, (reopened) => Device.equals(reopened, model)))
    }))
})
