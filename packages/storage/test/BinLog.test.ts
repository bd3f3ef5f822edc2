import { assert, describe, it } from "@effect/vitest"
import * as SiloPacket from "@tessera/codec/SiloPacket"
import { Effect, Exit, Fiber, Result, Scope } from "effect"
import { TestClock } from "effect/testing"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as Path from "node:path"
import * as Zlib from "node:zlib"
import * as BinLog from "../src/BinLog.ts"
import * as Device from "../src/Device.ts"
import * as Memory from "../src/Memory.ts"
import type * as Provider from "../src/Provider.ts"
import { bytes } from "./utils/random.ts"

const temporaryDirectory = Effect.acquireRelease(
  Effect.promise(() => fs.mkdtemp(Path.join(os.tmpdir(), "tessera-binlog-"))),
  (directory) => Effect.promise(() => fs.rm(directory, { recursive: true, force: true }))
)

const readFile = (path: string) => Effect.promise(() => fs.readFile(path).then((buffer) => new Uint8Array(buffer)))

/** The records of a log file, parsed by hand from the documented layout. */
const records = (file: Uint8Array) => {
  const out: Array<{ at: number; packet: SiloPacket.Packet; length: number }> = []
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength)
  for (let at = 0; at < file.length;) {
    const length = view.getUint32(at + 8, true)
    const packet = SiloPacket.decode(file.subarray(at + 12, at + 12 + length))
    assert.isTrue(Result.isSuccess(packet))
    out.push({ at: Number(view.getBigUint64(at, true)), packet: Result.getOrThrow(packet), length: 12 + length })
    at += 12 + length
  }
  return out
}

const size = (1 << 20) + 77

/** Writes spread over the device, unaligned, some cut short at its end. */
const writes = Array.from({ length: 60 }, (_, i): [Uint8Array, number] => {
  const offset = (i * 104_729) % size
  return [bytes(1 + ((i * 7919) % 20_000), i + 1), offset]
})

/** Records `writes` (and reads of each written range) through a log at `path`; returns the source device. */
const record = (path: string, reads = false) =>
  Effect.gen(function*() {
    const source = yield* Memory.make(size)
    const scope = yield* Scope.make()
    const logged = yield* BinLog.make(source, { path, reads }).pipe(Scope.provide(scope))
    for (const [data, offset] of writes) {
      yield* logged.writeAt(data, offset)
      yield* logged.readAt(new Uint8Array(100), offset)
    }
    yield* Scope.close(scope, Exit.void)
    return source
  })

/** Polls `check` on the live clock until it holds. */
const eventually = (check: Effect.Effect<boolean, unknown>) =>
  Effect.gen(function*() {
    for (let i = 0; i < 500 && !(yield* check); i++) yield* TestClock.withLive(Effect.sleep(5))
    assert.isTrue(yield* check)
  })

describe("BinLog", () => {
  it.effect("recording writes and replaying them into a fresh device gives an equal device", () =>
    Effect.gen(function*() {
      const directory = yield* temporaryDirectory
      const path = Path.join(directory, "ops.binlog")
      const source = yield* record(path)
      const logged = records(yield* readFile(path))
      assert.strictEqual(logged.length, writes.length)
      for (const [i, { packet }] of logged.entries()) {
        const [data, offset] = writes[i]!
        assert.strictEqual(packet._tag, "WriteAt")
        if (packet._tag !== "WriteAt") continue
        assert.strictEqual(packet.offset, offset)
        // Cut to the device end, as the device cuts the write.
        assert.deepStrictEqual(packet.data, data.subarray(0, Math.min(data.length, size - offset)))
      }

      const target = yield* Memory.make(size)
      const result = yield* BinLog.replay(path, target)
      assert.deepStrictEqual(result, { applied: writes.length, reads: 0, writes: writes.length, tornBytes: 0 })
      assert.isTrue(yield* Device.equals(source, target))

      const gz = Path.join(directory, "ops.binlog.gz")
      const raw = yield* readFile(path)
      yield* Effect.promise(() => fs.writeFile(gz, Zlib.gzipSync(raw)))
      const fromGz = yield* Memory.make(size)
      assert.strictEqual((yield* BinLog.replay(gz, fromGz)).applied, writes.length)
      assert.isTrue(yield* Device.equals(source, fromGz))
    }))

  it.effect("records reads too when asked, as ReadAt packets", () =>
    Effect.gen(function*() {
      const directory = yield* temporaryDirectory
      const path = Path.join(directory, "ops.binlog")
      yield* record(path, true)
      const logged = records(yield* readFile(path))
      assert.strictEqual(logged.length, 2 * writes.length)
      const [, offset] = writes[writes.length - 1]!
      assert.deepStrictEqual(logged[logged.length - 1]!.packet, {
        _tag: "ReadAt",
        offset,
        length: Math.min(100, size - offset)
      })
      assert.strictEqual(logged[logged.length - 2]!.packet._tag, "WriteAt")
      const result = yield* BinLog.replay(path, yield* Memory.make(size))
      assert.deepStrictEqual(result, {
        applied: 2 * writes.length,
        reads: writes.length,
        writes: writes.length,
        tornBytes: 0
      })
    }))

  it.effect("stamps records with Clock time since the first one, and timed replay keeps the gaps", () =>
    Effect.gen(function*() {
      const directory = yield* temporaryDirectory
      const path = Path.join(directory, "timed.binlog")
      const scope = yield* Scope.make()
      const logged = yield* BinLog.make(yield* Memory.make(4096), { path }).pipe(Scope.provide(scope))
      yield* TestClock.adjust(5000)
      yield* logged.writeAt(new Uint8Array([1]), 0)
      yield* TestClock.adjust(1000)
      yield* logged.writeAt(new Uint8Array([2]), 1)
      yield* TestClock.adjust(2000)
      yield* logged.writeAt(new Uint8Array([3]), 2)
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(records(yield* readFile(path)).map((r) => r.at), [0, 1e9, 3e9])

      const target = yield* Memory.make(4096)
      const seen = Effect.gen(function*() {
        const buffer = new Uint8Array(3)
        yield* target.readAt(buffer, 0)
        return [...buffer]
      })
      const replaying = yield* Effect.forkChild(BinLog.replay(path, target, { timed: true }))
      yield* eventually(Effect.map(seen, (now) => now[0] === 1))
      yield* TestClock.withLive(Effect.sleep(20))
      assert.deepStrictEqual(yield* seen, [1, 0, 0])
      yield* TestClock.adjust(999)
      yield* TestClock.withLive(Effect.sleep(20))
      assert.deepStrictEqual(yield* seen, [1, 0, 0])
      yield* TestClock.adjust(1)
      yield* eventually(Effect.map(seen, (now) => now[1] === 2))
      assert.deepStrictEqual(yield* seen, [1, 2, 0])
      yield* TestClock.adjust(2000)
      assert.strictEqual((yield* Fiber.join(replaying)).applied, 3)
      assert.deepStrictEqual(yield* seen, [1, 2, 3])

      // Untimed, the same log replays without waiting on the clock at all.
      assert.strictEqual((yield* BinLog.replay(path, yield* Memory.make(4096))).applied, 3)
    }))

  it.effect("a torn last record is left out and reported", () =>
    Effect.gen(function*() {
      const directory = yield* temporaryDirectory
      const path = Path.join(directory, "ops.binlog")
      yield* record(path)
      const whole = yield* readFile(path)
      const logged = records(whole)
      const last = logged[logged.length - 1]!

      // Everything but 10 bytes of the last record.
      const cut = Path.join(directory, "cut.binlog")
      yield* Effect.promise(() => fs.writeFile(cut, whole.subarray(0, whole.length - 10)))
      const expected = yield* Memory.make(size)
      for (const [data, offset] of writes.slice(0, -1)) yield* expected.writeAt(data, offset)
      const target = yield* Memory.make(size)
      assert.deepStrictEqual(yield* BinLog.replay(cut, target), {
        applied: writes.length - 1,
        reads: 0,
        writes: writes.length - 1,
        tornBytes: last.length - 10
      })
      assert.isTrue(yield* Device.equals(expected, target))

      // Only 5 bytes of the last record's header.
      yield* Effect.promise(() => fs.writeFile(cut, whole.subarray(0, whole.length - last.length + 5)))
      assert.strictEqual((yield* BinLog.replay(cut, yield* Memory.make(size))).tornBytes, 5)

      // A gzip stream cut short applies the records it still holds.
      const gz = Zlib.gzipSync(whole)
      const cutGz = Path.join(directory, "cut.binlog.gz")
      yield* Effect.promise(() => fs.writeFile(cutGz, gz.subarray(0, Math.floor(gz.length / 2))))
      const partial = yield* Memory.make(size)
      const result = yield* BinLog.replay(cutGz, partial)
      assert.isAbove(result.applied, 0)
      assert.isBelow(result.applied, writes.length)
      const prefix = yield* Memory.make(size)
      for (const [data, offset] of writes.slice(0, result.applied)) yield* prefix.writeAt(data, offset)
      assert.isTrue(yield* Device.equals(prefix, partial))
    }))

  it.effect("a record that is not an operation, or a missing file, fails the replay", () =>
    Effect.gen(function*() {
      const directory = yield* temporaryDirectory
      const path = Path.join(directory, "bad.binlog")
      const packet = SiloPacket.encode({ _tag: "NeedAt", offset: 0, length: 10 })
      const file = new Uint8Array(12 + packet.length)
      file[8] = packet.length
      file.set(packet, 12)
      yield* Effect.promise(() => fs.writeFile(path, file))
      const notAnOperation = yield* Effect.flip(BinLog.replay(path, yield* Memory.make(100)))
      assert.strictEqual(notAnOperation.reason._tag, "Corrupt")
      const missing = yield* Effect.flip(BinLog.replay(Path.join(directory, "none"), yield* Memory.make(100)))
      assert.strictEqual(missing.reason._tag, "IoFailure")
    }))

  it.effect("a request outside the device fails without a record; a closed log refuses operations", () =>
    Effect.gen(function*() {
      const directory = yield* temporaryDirectory
      const path = Path.join(directory, "ops.binlog")
      const scope = yield* Scope.make()
      const logged: Provider.BlockDevice = yield* BinLog.make(yield* Memory.make(100), { path }).pipe(
        Scope.provide(scope)
      )
      const error = yield* Effect.flip(logged.writeAt(new Uint8Array(1), 101))
      assert.strictEqual(error.reason._tag, "OutOfRange")
      yield* logged.writeAt(new Uint8Array([7]), 99)
      yield* logged.flush
      assert.strictEqual(records(yield* readFile(path)).length, 1)
      yield* Scope.close(scope, Exit.void)
      const closed = yield* Effect.flip(logged.writeAt(new Uint8Array(1), 0))
      assert.strictEqual(closed.reason._tag, "Closed")
    }))
})
