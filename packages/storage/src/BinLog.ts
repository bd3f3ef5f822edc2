/**
 * An operation log of a block device (Silo's `BinLog` and `BinLogReplay`): `make` wraps a device and appends a
 * record for every write (and, on request, every read) to a file; `replay` applies a log to a device again, as
 * fast as it can or with the recorded timing.
 *
 * File layout, a sequence of records with nothing before, between or after them:
 *
 * ```
 * offset 0   u64 LE  nanoseconds since the first record (0 for the first)
 * offset 8   u32 LE  length of the packet that follows
 * offset 12  packet  an encoded Silo packet: ReadAt (0x01, offset and length) or WriteAt (0x02/0, offset and data)
 * ```
 *
 * - An operation is recorded when it is issued, before it reaches the device, so the log holds what was asked
 *   in the order it was asked (an operation the device then fails is in the log too). The range is cut to the
 *   device first, as the device would; a request outside the device fails without a record.
 * - Records of concurrent operations are appended in one write per batch, and an operation returns only once
 *   its record is in the file. After a failed log write every later operation fails, so the log never has
 *   gaps. `flush` syncs the device, then the log.
 * - `replay` reads the file as a stream (through gunzip when the name ends in `.gz`). A last record cut short
 *   (a crash while appending) is left out and its bytes reported; anything else that does not parse is
 *   `Corrupt`. Timed replay waits, on the Effect `Clock`, until each record's time since the replay started.
 *
 * @since 0.1.0
 */
import * as DecodeError from "@tessera/codec/DecodeError"
import * as SiloPacket from "@tessera/codec/SiloPacket"
import * as StreamParser from "@tessera/codec/StreamParser"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import type * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import * as Stream from "effect/Stream"
import { createReadStream } from "node:fs"
import * as fs from "node:fs/promises"
import { pipeline } from "node:stream"
import * as Zlib from "node:zlib"
import { ioFailure } from "./internal/fileHandle.ts"
import * as Lifecycle from "./internal/lifecycle.ts"
import { type BlockDevice, clip } from "./Provider.ts"
import * as StorageError from "./StorageError.ts"

/**
 * Bytes in front of each record's packet: the u64 time and the u32 packet length.
 *
 * @since 0.1.0
 * @category constants
 */
export const HEADER_SIZE = 12

/**
 * The largest write a record may carry (1 GiB). Replay refuses a longer record rather than buffer it.
 *
 * @since 0.1.0
 * @category constants
 */
export const MAX_DATA = 1 << 30

/**
 * Where to log, and whether reads are logged too (Silo logs writes only by default).
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly path: string
  readonly reads?: boolean | undefined
}

/**
 * How to replay: `timed` waits out the recorded gaps between records.
 *
 * @since 0.1.0
 * @category models
 */
export interface ReplayOptions {
  readonly timed?: boolean | undefined
}

/**
 * What a replay did: records applied (reads and writes), and the bytes of a cut-short last record left out.
 *
 * @since 0.1.0
 * @category models
 */
export interface ReplayResult {
  readonly applied: number
  readonly reads: number
  readonly writes: number
  readonly tornBytes: number
}

/** One record: its time in nanoseconds since the first record, and the operation. */
interface LogRecord {
  readonly at: number
  readonly packet: SiloPacket.ReadAt | SiloPacket.WriteAt
}

const putHeader = (target: Uint8Array, at: bigint, packetLength: number): void => {
  const low = Number(at & 0xffff_ffffn)
  const high = Number(at >> 32n)
  for (let i = 0; i < 4; i++) {
    target[i] = low >>> (8 * i)
    target[4 + i] = high >>> (8 * i)
    target[8 + i] = packetLength >>> (8 * i)
  }
}

const u32At = (bytes: Uint8Array, at: number): number =>
  (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) >>> 0

/** Writes every byte of `parts` at the file's current position. */
const appendAll = async (file: fs.FileHandle, parts: Array<Uint8Array>): Promise<void> => {
  let total = 0
  for (const part of parts) total += part.length
  const { bytesWritten } = await file.writev(parts)
  if (bytesWritten === total) return
  // A regular file takes the whole batch unless the disk is full; finish a short write the slow way.
  const rest = Buffer.concat(parts).subarray(bytesWritten)
  for (let done = 0; done < rest.length;) {
    const { bytesWritten: n } = await file.write(rest, done, rest.length - done)
    if (n === 0) throw new Error("no progress appending to the log")
    done += n
  }
}

/**
 * Wraps `device` so its writes (and with `reads`, its reads) are appended to a new log file at `path`
 * (replacing any file there); the file is closed with the current scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fn("BinLog.make")(function*(
  device: BlockDevice,
  options: Options
): Effect.fn.Return<BlockDevice, StorageError.StorageError, Scope.Scope> {
  const name = `binlog(${device.name})`
  const size = device.size
  const file = yield* Effect.acquireRelease(
    Effect.tryPromise({ try: () => fs.open(options.path, "w"), catch: ioFailure(name, "open log") }),
    // A finalizer cannot fail: a log that cannot be closed ends the scope with a defect rather than vanishing.
    (opened) => Effect.orDie(Effect.tryPromise({ try: () => opened.close(), catch: ioFailure(name, "close log") }))
  )
  // Made after the file, so its finalizer runs first: operations drain, with their records, before the close.
  const lifecycle = yield* Lifecycle.make<never>(name)
  const appending = yield* Semaphore.make(1)
  const appendFailure = ioFailure(name, "append to log")
  let pending: Array<Uint8Array> = []
  let origin: bigint | undefined
  let latest = 0n
  let broken: StorageError.StorageError | undefined

  // Whoever holds the permit writes every record queued so far, its own included (or its own was in an
  // earlier batch), so each operation's record is in the file once this returns.
  const appendPending = Effect.uninterruptible(appending.withPermit(Effect.suspend(() => {
    if (broken !== undefined) return Effect.fail(broken)
    if (pending.length === 0) return Effect.void
    const batch = pending
    pending = []
    return Effect.tryPromise({ try: () => appendAll(file, batch), catch: appendFailure }).pipe(
      Effect.tapError((error) => Effect.sync(() => (broken = error)))
    )
  })))

  /** Queues a record made from the current time, writes it, then runs the operation. */
  const logged = <A>(
    record: (at: bigint) => Array<Uint8Array>,
    operation: Effect.Effect<A, StorageError.StorageError>
  ): Effect.Effect<A, StorageError.StorageError> =>
    Effect.clockWith((clock) => {
      const now = clock.currentTimeNanosUnsafe()
      origin ??= now
      // Times never go backwards in the file, even if the wall clock does.
      if (now - origin > latest) latest = now - origin
      pending.push(...record(latest))
      return Effect.andThen(appendPending, operation)
    })

  const readAt = (buffer: Uint8Array, offset: number) =>
    lifecycle.guard(Effect.suspend((): Effect.Effect<number, StorageError.StorageError> => {
      const clipped = clip(name, size, offset, buffer.length)
      if (Result.isFailure(clipped)) return Effect.fail(clipped.failure)
      const packet = SiloPacket.encode({ _tag: "ReadAt", offset, length: clipped.success })
      return logged((at) => {
        const bytes = new Uint8Array(HEADER_SIZE + packet.length)
        putHeader(bytes, at, packet.length)
        bytes.set(packet, HEADER_SIZE)
        return [bytes]
      }, device.readAt(buffer, offset))
    }))

  return {
    name,
    size,
    readAt: options.reads === true ? readAt : (buffer, offset) => lifecycle.guard(device.readAt(buffer, offset)),
    writeAt: (data, offset) =>
      lifecycle.guard(Effect.suspend((): Effect.Effect<number, StorageError.StorageError> => {
        const clipped = clip(name, size, offset, data.length)
        if (Result.isFailure(clipped)) return Effect.fail(clipped.failure)
        const view = clipped.success === data.length ? data : data.subarray(0, clipped.success)
        return logged((at) => {
          // Header and WriteAt prefix in one small buffer; the data goes to the file as the caller's view,
          // which stays untouched until the operation returns, after its record is written.
          const head = new Uint8Array(HEADER_SIZE + SiloPacket.WRITE_AT_PREFIX_SIZE)
          putHeader(head, at, SiloPacket.WRITE_AT_PREFIX_SIZE + view.length)
          SiloPacket.encodeWriteAtPrefixInto(head, HEADER_SIZE, offset)
          return [head, view]
        }, device.writeAt(view, offset))
      })),
    flush: lifecycle.guard(
      Effect.andThen(
        device.flush,
        Effect.tryPromise({ try: () => file.datasync(), catch: ioFailure(name, "sync log") })
      )
    ),
    cancelWrites: device.cancelWrites
  }
})

const recordFormat: StreamParser.FrameFormat<LogRecord> = {
  protocol: "silo",
  name: "binlog record",
  headerSize: HEADER_SIZE,
  frameLength: (header) => HEADER_SIZE + u32At(header, 8),
  maxFrameLength: HEADER_SIZE + SiloPacket.WRITE_AT_PREFIX_SIZE + MAX_DATA,
  decodeFrame: ({ bytes }) => {
    const at = u32At(bytes, 4) * 2 ** 32 + u32At(bytes, 0)
    const decoded = SiloPacket.decode(bytes.subarray(HEADER_SIZE))
    if (Result.isFailure(decoded)) {
      const { offset, packet, reason } = decoded.failure
      return DecodeError.fail("silo", packet, HEADER_SIZE + offset, reason)
    }
    const packet = decoded.success
    if (packet._tag !== "ReadAt" && packet._tag !== "WriteAt") {
      return DecodeError.fail("silo", "binlog record", HEADER_SIZE, `a ${packet._tag} packet is not an operation`)
    }
    return Result.succeed({ at, packet })
  }
}

/**
 * Applies the records of the log at `path` to `device`, in order. Fails with `Corrupt` for a record that does
 * not parse (other than a cut-short last one), and with the device's error for an operation that fails.
 *
 * @since 0.1.0
 * @category replay
 */
export const replay = Effect.fn("BinLog.replay")(function*(
  path: string,
  device: BlockDevice,
  options: ReplayOptions = {}
): Effect.fn.Return<ReplayResult, StorageError.StorageError> {
  const name = `binlog:${path}`
  const parser = StreamParser.make(recordFormat)
  const corrupt = (error: DecodeError.DecodeError) =>
    StorageError.make(name, new StorageError.Corrupt({ detail: error.message }))
  const start = yield* Clock.currentTimeNanos
  let scratch = new Uint8Array(0)
  let reads = 0
  let writes = 0

  const apply = Effect.fnUntraced(function*({ at, packet }: LogRecord) {
    if (options.timed === true) {
      const wait = start + BigInt(at) - (yield* Clock.currentTimeNanos)
      if (wait > 0n) yield* Effect.sleep(Duration.nanos(wait))
    }
    if (packet._tag === "WriteAt") {
      yield* device.writeAt(packet.data, packet.offset)
      writes++
    } else {
      if (scratch.length < packet.length) scratch = new Uint8Array(packet.length)
      yield* device.readAt(scratch.subarray(0, packet.length), packet.offset)
      reads++
    }
  })

  const source = createReadStream(path, { highWaterMark: 1 << 20 })
  // A gzip stream cut short (the log was being written) yields what it has instead of an error.
  const bytes = path.endsWith(".gz")
    ? pipeline(source, Zlib.createGunzip({ finishFlush: Zlib.constants.Z_SYNC_FLUSH }), () => {
      // Errors reach the reader through the stream's iterator.
    })
    : source
  yield* Stream.fromAsyncIterable<Uint8Array, StorageError.StorageError>(bytes, ioFailure(name, "read log")).pipe(
    Stream.runForEach((chunk) => {
      const parsed = parser.push(chunk)
      return Result.isFailure(parsed)
        ? Effect.fail(corrupt(parsed.failure))
        : Effect.forEach(parsed.success, apply, { discard: true })
    })
  )
  // A failure found after the last whole record comes with an empty push; what is left is the torn tail.
  const rest = parser.push(new Uint8Array(0))
  if (Result.isFailure(rest)) return yield* corrupt(rest.failure)
  return { applied: reads + writes, reads, writes, tornBytes: parser.buffered() }
})
