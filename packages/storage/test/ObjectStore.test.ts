import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import fc from "fast-check"
import { createHash } from "node:crypto"
import * as Fs from "node:fs/promises"
import * as Path from "node:path"
import * as BlobStore from "../src/BlobStore.ts"
import * as FileStore from "../src/FileStore.ts"
import * as MemoryStore from "../src/MemoryStore.ts"
import { compareKeys, KEY_SIZE, type Store } from "../src/ObjectStore.ts"
import type * as StorageError from "../src/StorageError.ts"
import { random } from "./utils/random.ts"
import { tempDir } from "./utils/tempDir.ts"

interface Backend {
  readonly name: string
  /** Whether objects survive closing and reopening the store in the same directory. */
  readonly persistent: boolean
  readonly open: (
    dir: string
  ) => Effect.Effect<
    Store & { readonly compact?: Effect.Effect<unknown, StorageError.StorageError> },
    StorageError.StorageError,
    Scope.Scope
  >
}

const backends: ReadonlyArray<Backend> = [
  { name: "MemoryStore", persistent: false, open: () => MemoryStore.make() },
  { name: "FileStore", persistent: true, open: (root) => FileStore.make({ root }) },
  { name: "FileStore (prefixChars 4)", persistent: true, open: (root) => FileStore.make({ root, prefixChars: 4 }) },
  { name: "BlobStore", persistent: true, open: (dir) => BlobStore.make({ dir }) }
]

const text = (s: string) => new TextEncoder().encode(s)
const str = (bytes: Uint8Array) => new TextDecoder().decode(bytes)
const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex")

/** A key with the given first and last bytes, zeros between. */
const key = (first: number, last = 0) => {
  const k = new Uint8Array(KEY_SIZE)
  k[0] = first
  k[KEY_SIZE - 1] = last
  return k
}

const bytesOf = (next: (bound: number) => number, length: number) => {
  const bytes = new Uint8Array(length)
  for (let i = 0; i < length; i++) bytes[i] = next(256)
  return bytes
}

/** Opens `backend` in a fresh directory removed with the test's scope. */
const fresh = (backend: Backend) => Effect.flatMap(tempDir, backend.open)

/** Opens a store in its own scope, so a test can close and reopen it. */
const openScoped = <A, E>(open: Effect.Effect<A, E, Scope.Scope>) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const store = yield* open.pipe(Scope.provide(scope))
    return { store, close: Scope.close(scope, Exit.void) }
  })

const reasonOf = <A>(effect: Effect.Effect<A, StorageError.StorageError>) =>
  Effect.map(Effect.flip(effect), (error) => error.reason._tag)

/** The reason of a returned (not raised) store error. */
const reason = (outcome: unknown) => (outcome as StorageError.StorageError).reason._tag

/** The model's write rule, restated independently of the stores: replace at 0, append, or patch and extend. */
const applyWrite = (old: Uint8Array | undefined, data: Uint8Array, offset: number, append: boolean) => {
  const before = old ?? new Uint8Array(0)
  const at = append ? before.length : offset
  if (!append && offset === 0) return data.slice()
  const out = new Uint8Array(Math.max(before.length, at + data.length))
  out.set(before)
  out.set(data, at)
  return out
}

/** The hex keys of listed objects. */
const hexes = (infos: ReadonlyArray<{ readonly key: Uint8Array }>) =>
  infos.map((info) => Buffer.from(info.key).toString("hex"))

/** The blob store's log file and helpers to damage it. */
const logOf = (dir: string) => Path.join(dir, BlobStore.LOG_NAME)
const fileSize = (path: string) => Effect.promise(() => Fs.stat(path).then((stat) => stat.size))
const patchFile = (path: string, f: (bytes: Buffer) => Buffer) =>
  Effect.promise(async () => Fs.writeFile(path, f(await Fs.readFile(path))))

/** Every object as [hex key, sha256], in key order. */
const contents = (store: Store) =>
  Effect.flatMap(
    store.list(),
    (infos) =>
      Effect.forEach(infos, (info) =>
        Effect.map(store.read(info.key), (bytes) => [Buffer.from(info.key).toString("hex"), sha256(bytes)]))
  )

describe("MemoryStore adoption", () => {
  it.effect("keeps adopted bytes as they are and lends the memory of the object they replace", () =>
    Effect.gen(function*() {
      const store = yield* MemoryStore.make()
      const k = key(20)
      assert.isUndefined(store.spare!(4))
      const first = new Uint8Array(new ArrayBuffer(16), 4, 8).fill(1)
      yield* store.write(k, first, { adopt: true })
      // Nothing to lend yet; replacing the adopted object makes its memory (all of it) spare.
      assert.isUndefined(store.spare!(4))
      yield* store.write(k, text("second!"), { adopt: true })
      const lent = store.spare!(12)!
      assert.strictEqual(lent.buffer, first.buffer)
      assert.strictEqual(lent.length, 12)
      assert.isUndefined(store.spare!(1))
      const checked = yield* store.read(k)
      assert.strictEqual(str(checked), "second!")
      store.release!(checked)
      // Bytes a read handed out are not lent while it holds them: the read's view stays as it was.
      const seen = yield* store.read(k)
      yield* store.write(k, text("third"), { adopt: true })
      assert.isUndefined(store.spare!(1))
      assert.strictEqual(str(seen), "second!")
      // Once the reader gives its view back, the memory it held is lent again, and only then.
      assert.isUndefined(store.spare!(1))
      const again = yield* store.read(k)
      store.release!(again)
      assert.strictEqual(str(again), "third")
      store.release!(seen)
      assert.strictEqual(store.spare!(7)?.buffer, seen.buffer)
      // Bytes given back are written in place again.
      yield* store.write(k, text("THIRD"))
      assert.strictEqual(str(again), "THIRD")
      // An adopting write that does not replace the whole object copies like any other.
      const patch = text("XY")
      yield* store.write(k, patch, { adopt: true, offset: 1 })
      patch.fill(0)
      assert.strictEqual(str(yield* store.read(k)), "TXYRD")
    }))
})

describe.each(backends)("$name", (backend) => {
  it.effect("writes at an offset patch the object: 55555 then 43210 at 1 is 543210", () =>
    Effect.gen(function*() {
      const store = yield* fresh(backend)
      const k = key(1)
      yield* store.write(k, text("55555"))
      const written = yield* store.write(k, text("43210"), { offset: 1 })
      assert.strictEqual(written.size, 6)
      assert.strictEqual(str(yield* store.read(k)), "543210")
      assert.strictEqual(str(yield* store.read(k, 3)), "210")
      assert.strictEqual(str(yield* store.read(k, 2, 1)), "3")
    }))

  it.effect("bytes a read returned stay as they were when the object is written, shrunk or removed", () =>
    Effect.gen(function*() {
      const store = yield* fresh(backend)
      const k = key(9)
      yield* store.write(k, text("abcdefgh"))
      yield* store.write(k, text("ABCDEFGH"))
      const first = yield* store.read(k)
      const middle = yield* store.read(k, 2, 3)
      yield* store.write(k, text("xy"), { offset: 2 })
      yield* store.write(k, text("12"), { append: true })
      const second = yield* store.read(k)
      yield* store.write(k, text("short"))
      yield* store.remove(k)
      assert.strictEqual(str(first), "ABCDEFGH")
      assert.strictEqual(str(middle), "CDE")
      assert.strictEqual(str(second), "ABxyEFGH12")
      yield* store.write(k, text("new"))
      assert.strictEqual(str(yield* store.read(k)), "new")
      assert.strictEqual(str(yield* store.read(k, 0, 8)), "new")
    }))

  it.effect("a replacing write that shrinks an object in place leaves nothing of the old bytes", () =>
    Effect.gen(function*() {
      const store = yield* fresh(backend)
      const k = key(10)
      yield* store.write(k, new Uint8Array(1000).fill(0xaa))
      yield* store.write(k, text("tiny"))
      yield* store.write(k, text("!"), { offset: 10 })
      const bytes = yield* store.read(k)
      assert.deepStrictEqual([...bytes], [...text("tiny"), 0, 0, 0, 0, 0, 0, ...text("!")])
    }))

  it.effect("append accumulates, offset 0 replaces, a write past the end leaves zeros", () =>
    Effect.gen(function*() {
      const store = yield* fresh(backend)
      const k = key(2)
      yield* store.write(k, text("ab"), { append: true })
      yield* store.write(k, text("cd"), { append: true })
      yield* store.write(k, text("ef"), { append: true, offset: 1 })
      assert.strictEqual(str(yield* store.read(k)), "abcdef")
      yield* store.write(k, text("xy"))
      assert.strictEqual(str(yield* store.read(k)), "xy")
      yield* store.write(k, text("z"), { offset: 4 })
      assert.deepStrictEqual([...(yield* store.read(k))], [120, 121, 0, 0, 122])
      const empty = yield* store.write(key(3), new Uint8Array(0))
      assert.strictEqual(empty.size, 0)
      assert.strictEqual((yield* store.read(key(3))).length, 0)
    }))

  it.effect("read sizes follow dnet_backend_check_get_size (R = 100)", () =>
    Effect.gen(function*() {
      const store = yield* fresh(backend)
      const k = key(4)
      const data = bytesOf(random(4), 100)
      yield* store.write(k, data)
      const cases: ReadonlyArray<readonly [number, number, number]> = [
        [0, 0, 100],
        [10, 0, 90],
        [10, 50, 50],
        [90, 50, 10],
        [100, 0, 0],
        [100, 7, 0],
        [300, 10, 0]
      ]
      for (const [offset, size, expected] of cases) {
        const got = yield* store.read(k, offset, size)
        assert.strictEqual(got.length, expected, `read(${offset}, ${size})`)
        assert.deepStrictEqual(got, data.slice(offset, offset + expected))
      }
    }))

  it.effect("missing objects: read and stat fail with NotFound, remove reports false", () =>
    Effect.gen(function*() {
      const store = yield* fresh(backend)
      const k = key(5)
      assert.strictEqual(yield* reasonOf(store.read(k)), "NotFound")
      assert.strictEqual(yield* reasonOf(store.stat(k)), "NotFound")
      assert.isFalse(yield* store.remove(k))
      yield* store.write(k, text("here"))
      assert.isTrue(yield* store.remove(k))
      assert.strictEqual(yield* reasonOf(store.read(k)), "NotFound")
      assert.isFalse(yield* store.remove(k))
      assert.deepStrictEqual(yield* store.list(), [])
    }))

  it.effect("refuses malformed keys and ranges", () =>
    Effect.gen(function*() {
      const store = yield* fresh(backend)
      assert.strictEqual(yield* reasonOf(store.write(new Uint8Array(63), text("x"))), "Unsupported")
      assert.strictEqual(yield* reasonOf(store.read(new Uint8Array(65))), "Unsupported")
      assert.strictEqual(yield* reasonOf(store.write(key(6), text("x"), { offset: -1 })), "OutOfRange")
      assert.strictEqual(yield* reasonOf(store.write(key(6), text("x"), { offset: 0.5 })), "OutOfRange")
      assert.strictEqual(yield* reasonOf(store.read(key(6), -1)), "OutOfRange")
      assert.strictEqual(yield* reasonOf(store.list({ skip: -1 })), "OutOfRange")
    }))

  it.effect("lists keys in order within inclusive ranges, with skip and limit (READ_RANGE LIMIT)", () =>
    Effect.gen(function*() {
      const store = yield* fresh(backend)
      // 16 keys differing in one byte (as elliptics' range test), written out of order, plus keys outside.
      const keys = Array.from({ length: 16 }, (_, i) => key(0x40, i * 16))
      for (const i of [5, 0, 15, 9, 3, 12, 1, 7, 14, 2, 10, 6, 13, 4, 11, 8]) {
        yield* store.write(keys[i]!, text(`v${i}`))
      }
      yield* store.write(key(0x00, 1), text("low"))
      yield* store.write(key(0xff, 0xff), text("high"))
      const expected = (from: number, count: number) => hexes(keys.slice(from, from + count).map((k) => ({ key: k })))

      const all = yield* store.list()
      assert.strictEqual(all.length, 18)
      for (let i = 1; i < all.length; i++) assert.isBelow(compareKeys(all[i - 1]!.key, all[i]!.key), 0)

      const range = { start: keys[0]!, end: keys[15]! }
      for (const [skip, limit] of [[0, 255], [3, 14], [7, 3], [16, 5], [2, 0]] as const) {
        const got = yield* store.list({ ...range, skip, limit })
        assert.deepStrictEqual(hexes(got), expected(skip, Math.min(limit, 16 - skip)), `LIMIT ${skip}/${limit}`)
      }
      assert.deepStrictEqual(hexes(yield* store.list({ start: keys[3]!, end: keys[5]! })), expected(3, 3))
      assert.deepStrictEqual(yield* store.list({ start: keys[5]!, end: keys[3]! }), [])
      // Short bounds compare as prefixes: [0x40] is below every key starting 0x40, [0x41] above them all.
      const short = yield* store.list({ start: new Uint8Array([0x40]), end: new Uint8Array([0x41]) })
      assert.deepStrictEqual(hexes(short), expected(0, 16))
      const v7 = (yield* store.list({ start: keys[7]!, end: keys[7]! }))[0]!
      assert.strictEqual(v7.size, 2)
    }))

  it.effect("stat and stats report sizes", () =>
    Effect.gen(function*() {
      const store = yield* fresh(backend)
      assert.deepStrictEqual(yield* store.stats, { objects: 0, bytes: 0 })
      yield* store.write(key(7), new Uint8Array(1000))
      yield* store.write(key(8), new Uint8Array(10))
      yield* store.write(key(8), new Uint8Array(5), { append: true })
      const info = yield* store.stat(key(8))
      assert.strictEqual(info.size, 15)
      assert.deepStrictEqual(info.key, key(8))
      assert.isTrue(Number.isFinite(info.modified))
      assert.deepStrictEqual(yield* store.stats, { objects: 2, bytes: 1015 })
      yield* store.remove(key(7))
      assert.deepStrictEqual(yield* store.stats, { objects: 1, bytes: 15 })
    }))

  it.effect("fails with Closed once its scope is closed", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const { close, store } = yield* openScoped(backend.open(dir))
      yield* store.write(key(9), text("x"))
      yield* close
      assert.strictEqual(yield* reasonOf(store.read(key(9))), "Closed")
      assert.strictEqual(yield* reasonOf(store.write(key(9), text("y"))), "Closed")
    }))

  it.effect("writeNow and readNow, where a store has them, do what write and read do, or nothing", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const { close, store } = yield* openScoped(backend.open(dir))
      const { readNow, writeNow } = store
      if (writeNow === undefined || readNow === undefined) return yield* close
      const done = writeNow(key(13), text("55555"))
      assert.isFalse(done === undefined || done instanceof Error)
      assert.deepStrictEqual(writeNow(key(13), text("43210"), { offset: 1 }), yield* store.stat(key(13)))
      assert.strictEqual(str(yield* store.read(key(13))), "543210")
      assert.strictEqual(str(readNow(key(13), 1, 3) as Uint8Array), "432")
      // The errors are those of write and read, returned rather than raised.
      assert.strictEqual(reason(readNow(key(14))), "NotFound")
      assert.strictEqual(reason(writeNow(new Uint8Array(3), text("x"))), "Unsupported")
      assert.strictEqual(reason(readNow(key(13), -1)), "OutOfRange")
      // What cannot be done at once (a big object in a disk store) is left undone for write and read.
      const big = bytesOf(random(14), 3 * 1024 * 1024)
      const bigWrite = writeNow(key(15), big)
      if (bigWrite === undefined) {
        assert.strictEqual(yield* reasonOf(store.stat(key(15))), "NotFound")
        yield* store.write(key(15), big)
      }
      const bigRead = readNow(key(15))
      assert.notInstanceOf(bigRead, Error)
      assert.strictEqual(sha256((bigRead as Uint8Array | undefined) ?? (yield* store.read(key(15)))), sha256(big))
      yield* close
      assert.strictEqual(reason(readNow(key(13))), "Closed")
      assert.strictEqual(reason(writeNow(key(13), text("y"))), "Closed")
    }))

  // Registered for the disk backends only: a memory store starts empty by design.
  if (backend.persistent) {
    it.effect("keeps objects across close and reopen", () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        const big = bytesOf(random(10), 3 * 1024 * 1024 + 17)
        const first = yield* openScoped(backend.open(dir))
        yield* first.store.write(key(10), text("kept"))
        yield* first.store.write(key(11), big)
        yield* first.store.write(key(11), text("!"), { offset: 2 * 1024 * 1024 })
        yield* first.store.write(key(12), text("gone"))
        yield* first.store.remove(key(12))
        yield* first.store.flush
        yield* first.close

        const second = yield* openScoped(backend.open(dir))
        assert.strictEqual(str(yield* second.store.read(key(10))), "kept")
        const expected = big.slice()
        expected[2 * 1024 * 1024] = 33
        assert.strictEqual(sha256(yield* second.store.read(key(11))), sha256(expected))
        const around = 2 * 1024 * 1024 - 1
        assert.deepStrictEqual(yield* second.store.read(key(11), around, 3), expected.slice(around, around + 3))
        assert.strictEqual(yield* reasonOf(second.store.read(key(12))), "NotFound")
        assert.deepStrictEqual(yield* second.store.stats, { objects: 2, bytes: 4 + expected.length })
        yield* second.close
      }))
  }

  it.effect("matches a Map model under random operations (fast-check)", () =>
    Effect.promise(() => {
      const pool = [key(0x00), key(0x00, 1), key(0x7f, 0xff), key(0x80), key(0xff, 0xfe), key(0xff, 0xff)]
      const slot = fc.nat({ max: pool.length - 1 })
      const anyCommand = fc.oneof(
        {
          weight: 6,
          arbitrary: fc.record({
            op: fc.constant("write" as const),
            slot,
            data: fc.uint8Array({ maxLength: 300 }),
            mode: fc.constantFrom("replace", "append", "offset"),
            offset: fc.nat({ max: 400 })
          })
        },
        { weight: 2, arbitrary: fc.record({ op: fc.constant("remove" as const), slot }) },
        {
          weight: 3,
          arbitrary: fc.record({
            op: fc.constant("read" as const),
            slot,
            offset: fc.nat({ max: 500 }),
            size: fc.nat({ max: 200 })
          })
        },
        {
          weight: 2,
          arbitrary: fc.record({
            op: fc.constant("list" as const),
            start: slot,
            end: slot,
            skip: fc.nat({ max: 3 }),
            limit: fc.option(fc.nat({ max: 4 }), { nil: undefined })
          })
        },
        { weight: 1, arbitrary: fc.record({ op: fc.constantFrom("reopen" as const, "compact" as const) }) }
      )
      type Command = typeof anyCommand extends fc.Arbitrary<infer C> ? C : never

      const run = (commands: ReadonlyArray<Command>) =>
        Effect.gen(function*() {
          const dir = yield* tempDir
          let open = yield* openScoped(backend.open(dir))
          const model = new Map<number, Uint8Array>()
          for (const command of commands) {
            const { store } = open
            switch (command.op) {
              case "write": {
                const k = pool[command.slot]!
                const offset = command.mode === "offset" ? command.offset : 0
                const append = command.mode === "append"
                const next = applyWrite(model.get(command.slot), command.data, offset, append)
                model.set(command.slot, next)
                const info = yield* store.write(k, command.data, append ? { append } : { offset })
                assert.strictEqual(info.size, next.length)
                break
              }
              case "remove": {
                assert.strictEqual(yield* store.remove(pool[command.slot]!), model.delete(command.slot))
                break
              }
              case "read": {
                const expected = model.get(command.slot)
                const got = yield* Effect.result(store.read(pool[command.slot]!, command.offset, command.size))
                if (expected === undefined) {
                  assert.isTrue(got._tag === "Failure" && got.failure.reason._tag === "NotFound")
                } else {
                  const end = command.size === 0 ? expected.length : command.offset + command.size
                  assert.deepStrictEqual(
                    got._tag === "Success" ? got.success : got,
                    expected.slice(command.offset, end)
                  )
                }
                break
              }
              case "list": {
                const got = yield* store.list({
                  start: pool[command.start]!,
                  end: pool[command.end]!,
                  skip: command.skip,
                  ...(command.limit !== undefined && { limit: command.limit })
                })
                const expected = [...model.keys()].filter((i) => i >= command.start && i <= command.end).toSorted((
                  a,
                  b
                ) => a - b).slice(command.skip, command.limit === undefined ? undefined : command.skip + command.limit)
                assert.deepStrictEqual(
                  got.map((info) => [info.key, info.size]),
                  expected.map((i) => [pool[i], model.get(i)!.length])
                )
                break
              }
              case "reopen": {
                if (!backend.persistent) break
                yield* store.flush
                yield* open.close
                open = yield* openScoped(backend.open(dir))
                break
              }
              case "compact": {
                if (store.compact) yield* store.compact
                break
              }
            }
          }
          const stats = yield* open.store.stats
          assert.deepStrictEqual(stats, {
            objects: model.size,
            bytes: [...model.values()].reduce((n, bytes) => n + bytes.length, 0)
          })
          yield* open.close
        })

      return fc.assert(
        fc.asyncProperty(
          fc.array(anyCommand, { maxLength: 40 }),
          (commands) => Effect.runPromise(Effect.scoped(run(commands)))
        ),
        { numRuns: backend.persistent ? 25 : 100 }
      )
    }), 60_000)

  it.effect(
    "keeps every object intact under concurrent writers, readers and shared keys",
    () =>
      Effect.gen(function*() {
        const store = yield* fresh(backend)
        const fibers = 10
        const rounds = 24
        const slotSize = 700
        const piece = 16
        const slotted = key(0xaa, 1)
        const appended = key(0xaa, 2)
        const own = (f: number) => key(0x10 + f, f)
        const finalSlots: Array<Uint8Array> = []
        // A chunk of the shared append object: fiber, sequence number, then a pattern derived from both.
        const chunk = (f: number, seq: number) =>
          Uint8Array.from({ length: piece }, (_, i) => i < 2 ? [f, seq][i]! : f ^ seq ^ i)
        // Compared by hand: one assertion per read, not per chunk, keeps the check cheap.
        const checkChunks = (bytes: Uint8Array) => {
          let whole = bytes.length % piece === 0
          for (let at = 0; whole && at < bytes.length; at += piece) {
            const expected = chunk(bytes[at]!, bytes[at + 1]!)
            for (let i = 2; i < piece; i++) whole &&= bytes[at + i] === expected[i]
          }
          assert.isTrue(whole, "the shared append object is a sequence of whole chunks")
        }

        const worker = (f: number) =>
          Effect.gen(function*() {
            const next = random(1000 + f)
            let mine: Uint8Array | undefined
            let slot = bytesOf(next, slotSize)
            yield* store.write(slotted, slot, { offset: (f + 1) * slotSize })
            for (let seq = 0; seq < rounds; seq++) {
              const data = bytesOf(next, next(6) === 0 ? 70_000 : next(2000))
              const mode = next(3)
              const offset = mode === 2 ? next(3000) : 0
              mine = applyWrite(mine, data, offset, mode === 1)
              yield* store.write(own(f), data, mode === 1 ? { append: true } : { offset })
              assert.strictEqual(sha256(yield* store.read(own(f))), sha256(mine))
              if (next(2) === 0) {
                slot = bytesOf(next, slotSize)
                yield* store.write(slotted, slot, { offset: (f + 1) * slotSize })
              }
              yield* store.write(appended, chunk(f, seq), { append: true })
              checkChunks(yield* store.read(appended))
              const slots = yield* store.read(slotted)
              assert.deepStrictEqual(slots.subarray((f + 1) * slotSize, (f + 2) * slotSize), slot)
              if (next(20) === 0 && store.compact) yield* store.compact
            }
            finalSlots[f] = slot
            return mine!
          })

        const expected = yield* Effect.forEach(Array.from({ length: fibers }, (_, f) => f), worker, {
          concurrency: "unbounded"
        })
        for (let f = 0; f < fibers; f++) assert.strictEqual(sha256(yield* store.read(own(f))), sha256(expected[f]!))
        // Slot writes start at slotSize: a write at offset 0 would replace the whole object.
        const slots = new Uint8Array((fibers + 1) * slotSize)
        finalSlots.forEach((bytes, f) => slots.set(bytes, (f + 1) * slotSize))
        assert.strictEqual(sha256(yield* store.read(slotted)), sha256(slots))
        const chunks = yield* store.read(appended)
        checkChunks(chunks)
        assert.strictEqual(chunks.length, fibers * rounds * piece)
        // Each fiber's appends appear in the order it made them.
        for (let f = 0; f < fibers; f++) {
          const seqs: Array<number> = []
          for (let at = 0; at < chunks.length; at += piece) if (chunks[at] === f) seqs.push(chunks[at + 1]!)
          assert.deepStrictEqual(seqs, Array.from({ length: rounds }, (_, i) => i))
        }
        assert.strictEqual((yield* store.stats).objects, fibers + 2)
      }),
    60_000
  )
})

describe("FileStore layout", () => {
  it.effect("puts each object at <root>/<first N hex chars>/<128 hex chars>", () =>
    Effect.gen(function*() {
      const root = yield* tempDir
      const k = key(0xab, 0xcd)
      k[1] = 0x12
      const hex = Buffer.from(k).toString("hex")
      for (const prefixChars of [undefined, 4]) {
        const store = yield* FileStore.make({
          root: Path.join(root, String(prefixChars)),
          ...(prefixChars && { prefixChars })
        })
        yield* store.write(k, text("object"))
        const prefix = hex.slice(0, prefixChars ?? FileStore.DEFAULT_PREFIX_CHARS)
        const path = Path.join(root, String(prefixChars), prefix, hex)
        assert.strictEqual(yield* Effect.promise(() => Fs.readFile(path, "utf8")), "object")
      }
    }))

  it.effect("removes temporary files an interrupted write left, and nothing else", () =>
    Effect.gen(function*() {
      const root = yield* tempDir
      const hex = "ab".repeat(KEY_SIZE)
      const temp = `.${hex}.0123456789abcdef.tmp`
      yield* Effect.promise(async () => {
        await Fs.mkdir(Path.join(root, "ab"))
        await Fs.writeFile(Path.join(root, "ab", temp), "half an object")
        await Fs.writeFile(Path.join(root, "ab", hex), "whole object")
        await Fs.writeFile(Path.join(root, "ab", "notes.txt"), "not ours")
      })
      const store = yield* FileStore.make({ root })
      assert.deepStrictEqual(
        (yield* Effect.promise(() => Fs.readdir(Path.join(root, "ab")))).toSorted(),
        [hex, "notes.txt"].toSorted()
      )
      assert.strictEqual(str(yield* store.read(new Uint8Array(KEY_SIZE).fill(0xab))), "whole object")
      assert.strictEqual((yield* store.list()).length, 1)
    }))

  it.effect("refuses a fan-out outside 1..8", () =>
    Effect.gen(function*() {
      const root = yield* tempDir
      for (const prefixChars of [0, 9, 1.5]) {
        assert.strictEqual(yield* reasonOf(Effect.scoped(FileStore.make({ root, prefixChars }))), "Unsupported")
      }
    }))
})

describe("BlobStore recovery and compaction", () => {
  it.effect("cuts a torn last record and keeps the key's previous version", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const first = yield* openScoped(BlobStore.make({ dir }))
      yield* first.store.write(key(1), text("one"))
      yield* first.store.write(key(2), text("two, first version"))
      yield* first.close
      const complete = yield* fileSize(logOf(dir))
      const second = yield* openScoped(BlobStore.make({ dir }))
      yield* second.store.write(key(2), bytesOf(random(2), 5000))
      yield* second.close
      // The last record loses its end, as if the process died during the write.
      yield* Effect.promise(() => Fs.truncate(logOf(dir), complete + 1000))

      const third = yield* openScoped(BlobStore.make({ dir }))
      assert.deepStrictEqual(third.store.recovered, { records: 2, skipped: 0, skippedBytes: 0, truncatedBytes: 1000 })
      assert.strictEqual(yield* fileSize(logOf(dir)), complete)
      assert.strictEqual(str(yield* third.store.read(key(1))), "one")
      assert.strictEqual(str(yield* third.store.read(key(2))), "two, first version")
      // New records go after the last complete one.
      yield* third.store.write(key(3), text("three"))
      yield* third.close
      const again = yield* BlobStore.make({ dir })
      assert.deepStrictEqual(again.recovered, { records: 3, skipped: 0, skippedBytes: 0, truncatedBytes: 0 })
      assert.strictEqual(str(yield* again.read(key(3))), "three")
    }))

  it.effect("cuts garbage after the last record", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const first = yield* openScoped(BlobStore.make({ dir }))
      yield* first.store.write(key(1), text("one"))
      yield* first.close
      yield* patchFile(logOf(dir), (bytes) => Buffer.concat([bytes, Buffer.from(bytesOf(random(3), 777))]))
      const store = yield* BlobStore.make({ dir })
      assert.strictEqual(store.recovered.truncatedBytes, 777)
      assert.strictEqual(str(yield* store.read(key(1))), "one")
    }))

  const damages: ReadonlyArray<readonly [string, (record: number) => number]> = [
    ["a data byte", (record) => record + 136 + 10],
    ["the magic", (record) => record],
    ["the size field", (record) => record + 80 + 6],
    ["a key byte", (record) => record + 8 + 63],
    ["the checksum", (record) => record + 104]
  ]
  for (const [what, at] of damages) {
    it.effect(`loses only a record whose ${what} is damaged, keeping the records after it`, () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        const first = yield* openScoped(BlobStore.make({ dir }))
        yield* first.store.write(key(1), text("one"))
        yield* first.store.write(key(2), text("two, first version"))
        const marker = text("two, the version that gets damaged")
        yield* first.store.write(key(2), marker)
        yield* first.store.write(key(3), bytesOf(random(5), 2_500_000))
        yield* first.store.write(key(4), text("four"))
        yield* first.close
        yield* patchFile(logOf(dir), (bytes) => {
          const record = bytes.indexOf(Buffer.from(marker)) - 136
          bytes[at(record)] ^= 0x40
          return bytes
        })

        const store = yield* BlobStore.make({ dir })
        assert.strictEqual(store.recovered.skipped, 1)
        assert.strictEqual(store.recovered.skippedBytes, 136 + marker.length)
        assert.strictEqual(store.recovered.truncatedBytes, 0)
        assert.strictEqual(str(yield* store.read(key(1))), "one")
        assert.strictEqual(str(yield* store.read(key(2))), "two, first version")
        assert.strictEqual(sha256(yield* store.read(key(3))), sha256(bytesOf(random(5), 2_500_000)))
        assert.strictEqual(str(yield* store.read(key(4))), "four")
      }))
  }

  it.effect("a damaged tombstone brings back the object it removed", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const first = yield* openScoped(BlobStore.make({ dir }))
      yield* first.store.write(key(1), text("removed, then restored"))
      yield* first.store.remove(key(1))
      yield* first.store.write(key(2), text("after"))
      yield* first.close
      yield* patchFile(logOf(dir), (bytes) => {
        const tombstone = bytes.indexOf(Buffer.from("removed, then restored")) + 22
        bytes[tombstone + 100] ^= 1
        return bytes
      })
      const store = yield* BlobStore.make({ dir })
      assert.strictEqual(store.recovered.skipped, 1)
      assert.strictEqual(str(yield* store.read(key(1))), "removed, then restored")
      assert.strictEqual(str(yield* store.read(key(2))), "after")
    }))

  it.effect("refuses a log whose header is damaged, and removes stray temporary logs", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const first = yield* openScoped(BlobStore.make({ dir }))
      yield* first.store.write(key(1), text("one"))
      yield* first.close
      const temp = Path.join(dir, "data.log.0123456789abcdef.tmp")
      yield* Effect.promise(() => Fs.writeFile(temp, "half a compaction"))
      yield* Effect.scoped(BlobStore.make({ dir }))
      assert.isFalse(yield* Effect.promise(() => Fs.access(temp).then(() => true, () => false)))
      yield* patchFile(logOf(dir), (bytes) => {
        bytes[20] ^= 1
        return bytes
      })
      assert.strictEqual(yield* reasonOf(Effect.scoped(BlobStore.make({ dir }))), "Corrupt")
    }))

  it.effect("compaction reclaims overwritten and removed space and keeps every object", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const first = yield* openScoped(BlobStore.make({ dir }))
      const next = random(7)
      for (let round = 0; round < 3; round++) {
        for (let i = 0; i < 40; i++) yield* first.store.write(key(i, round + 1), bytesOf(next, 500 + next(3000)))
        for (let i = 0; i < 40; i++) {
          yield* first.store.write(key(i), bytesOf(next, 100 + next(1000)), { append: round > 0 })
        }
      }
      for (let i = 0; i < 40; i += 4) yield* first.store.remove(key(i))
      yield* first.store.write(key(200), bytesOf(next, 1_500_000))
      const snapshot = yield* contents(first.store)
      const before = yield* fileSize(logOf(dir))
      const blob = first.store
      const result = yield* blob.compact
      const after = yield* fileSize(logOf(dir))
      assert.strictEqual(result.before, before)
      assert.strictEqual(result.after, after)
      assert.isBelow(after, before)
      const stats = yield* blob.stats
      assert.strictEqual(after, 64 + stats.objects * 136 + stats.bytes)
      assert.deepStrictEqual(yield* contents(blob), snapshot)
      // Writes after a compaction land in the new log, and everything survives a reopen.
      yield* blob.write(key(201), text("after compaction"))
      yield* first.close
      const reopened = yield* BlobStore.make({ dir })
      assert.deepStrictEqual(reopened.recovered, {
        records: snapshot.length + 1,
        skipped: 0,
        skippedBytes: 0,
        truncatedBytes: 0
      })
      assert.deepStrictEqual(
        (yield* contents(reopened)).filter(([hex]) => hex !== Buffer.from(key(201)).toString("hex")),
        snapshot
      )
      assert.strictEqual(str(yield* reopened.read(key(201))), "after compaction")
    }))

  it.effect("memory of a big read given back serves the next big read; memory kept is never reused", () =>
    Effect.gen(function*() {
      const store = yield* BlobStore.make({ dir: yield* tempDir })
      const next = random(11)
      const objects = [bytesOf(next, 300_000), bytesOf(next, 300_000), bytesOf(next, 200_000)]
      for (const [i, bytes] of objects.entries()) yield* store.write(key(i), bytes)
      const kept = yield* store.read(key(0))
      const given = yield* store.read(key(1))
      assert.notStrictEqual(given.buffer, kept.buffer)
      store.release!(given)
      // Released twice, or memory the store never lent: nothing happens.
      store.release!(given)
      store.release!(new Uint8Array(400_000))
      const reused = yield* store.read(key(2))
      assert.strictEqual(reused.buffer, given.buffer)
      assert.strictEqual(sha256(reused), sha256(objects[2]!))
      const again = yield* store.read(key(1))
      assert.notStrictEqual(again.buffer, given.buffer)
      assert.strictEqual(sha256(again), sha256(objects[1]!))
      assert.strictEqual(sha256(kept), sha256(objects[0]!))
    }))

  it.effect("compaction refuses to copy a record damaged since the store was opened", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const store = yield* BlobStore.make({ dir })
      yield* store.write(key(1), text("soon damaged"))
      yield* store.write(key(2), text("fine"))
      yield* patchFile(logOf(dir), (bytes) => {
        bytes[bytes.indexOf(Buffer.from("soon damaged"))] ^= 1
        return bytes
      })
      assert.strictEqual(yield* reasonOf(store.compact), "Corrupt")
      // The old log is still the store's log, and no temporary log is left.
      assert.strictEqual(str(yield* store.read(key(2))), "fine")
      assert.deepStrictEqual(yield* Effect.promise(() => Fs.readdir(dir)), [BlobStore.LOG_NAME])
    }))
})
