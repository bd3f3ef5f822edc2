/**
 * A device that measures the operations passing through it, as Effect metrics: for reads, writes and flushes,
 * how many completed, how many failed, how many are running, and how long they took; for reads and writes also
 * the bytes moved and the requested sizes, in buckets from 4 KiB to 1 MiB. Every series carries the attributes
 * `device` (the device's name, unless another is given) and `operation` (`read`, `write`, `flush`), so any
 * exporter reading `Metric.snapshot` sees them, and `snapshot` gives one device's figures directly.
 *
 * The series live in the `MetricRegistry` and the times come from the `Clock` of the context the device was
 * made in, which is where they belong; tests give them a fresh registry and a `TestClock`. Two devices with the
 * same name share their series.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import type * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { constVoid } from "effect/Function"
import * as Metric from "effect/Metric"
import { type BlockDevice, wrap } from "./Provider.ts"
import type * as StorageError from "./StorageError.ts"

/**
 * The metric names, for exporters.
 *
 * @since 0.1.0
 * @category constants
 */
export const names = {
  /** Counter: operations completed, failed ones included. */
  operations: "tessera_storage_operations",
  /** Counter: operations that failed. */
  errors: "tessera_storage_errors",
  /** Gauge: operations running now. */
  inFlight: "tessera_storage_in_flight",
  /** Timer (milliseconds): time from start to completion. */
  latency: "tessera_storage_latency",
  /** Counter: bytes read or written. */
  bytes: "tessera_storage_bytes",
  /** Histogram (bytes): requested size of each read or write. */
  sizes: "tessera_storage_op_size"
} as const

/**
 * The upper bounds of the size buckets: 4 KiB, 8 KiB, ... 1 MiB, and a last bucket for everything larger.
 *
 * @since 0.1.0
 * @category constants
 */
export const sizeBoundaries: ReadonlyArray<number> = Metric.boundariesFromIterable(
  Array.from({ length: 9 }, (_, i) => 4096 * 2 ** i)
)

/**
 * One kind of operation's figures.
 *
 * @since 0.1.0
 * @category models
 */
export interface OperationStats {
  readonly operations: number
  readonly errors: number
  readonly inFlight: number
  /** Milliseconds per operation; `buckets` are cumulative. */
  readonly latency: Metric.HistogramState
}

/**
 * The figures of reads or writes.
 *
 * @since 0.1.0
 * @category models
 */
export interface TransferStats extends OperationStats {
  readonly bytes: number
  /** Requested sizes in bytes, in the `sizeBoundaries` buckets (cumulative). */
  readonly sizes: Metric.HistogramState
}

/**
 * One device's figures.
 *
 * @since 0.1.0
 * @category models
 */
export interface MetricsSnapshot {
  readonly read: TransferStats
  readonly write: TransferStats
  readonly flush: OperationStats
}

/**
 * A measured device.
 *
 * @since 0.1.0
 * @category models
 */
export interface MetricsDevice extends BlockDevice {
  /** This device's figures now. */
  readonly snapshot: Effect.Effect<MetricsSnapshot>
}

/**
 * Options for `make`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The `device` attribute of the series; the inner device's name by default. */
  readonly device?: string | undefined
}

/**
 * Measures `inner`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fn("Metrics.make")(function*(inner: BlockDevice, options?: Options) {
  const context = yield* Effect.context<never>()
  const clock = yield* Clock.Clock
  const device = options?.device ?? inner.name
  const reads = transferInstruments(device, "read")
  const writes = transferInstruments(device, "write")
  const flushes = instruments(device, "flush")

  // Updates go straight to the series (no Effect per update): this runs on every operation.
  const measure = <A>(
    target: Instruments,
    operation: Effect.Effect<A, StorageError.StorageError>,
    onStart: () => void,
    onSuccess: (value: A) => void
  ): Effect.Effect<A, StorageError.StorageError> =>
    Effect.suspend(() => {
      const started = clock.monotonicTimeNanosUnsafe()
      target.inFlight.modifyUnsafe(1, context)
      onStart()
      return Effect.onExit(operation, (exit) =>
        Effect.sync(() => {
          target.inFlight.modifyUnsafe(-1, context)
          // An interrupted operation neither completed nor failed.
          if (Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause)) return
          target.operations.updateUnsafe(1, context)
          target.latency.updateUnsafe(Duration.nanos(clock.monotonicTimeNanosUnsafe() - started), context)
          if (Exit.isSuccess(exit)) onSuccess(exit.value)
          else target.errors.updateUnsafe(1, context)
        }))
    })

  const metricsDevice: MetricsDevice = {
    ...wrap(inner, `metrics(${inner.name})`, {
      readAt: (buffer, offset) =>
        measure(
          reads,
          inner.readAt(buffer, offset),
          () => reads.sizes.updateUnsafe(buffer.length, context),
          (bytes) => reads.bytes.updateUnsafe(bytes, context)
        ),
      writeAt: (data, offset) =>
        measure(
          writes,
          inner.writeAt(data, offset),
          () => writes.sizes.updateUnsafe(data.length, context),
          (bytes) => writes.bytes.updateUnsafe(bytes, context)
        ),
      flush: measure(flushes, inner.flush, constVoid, constVoid)
    }),
    snapshot: Effect.sync(() => ({
      read: transferStats(reads, context),
      write: transferStats(writes, context),
      flush: operationStats(flushes, context)
    }))
  }
  return metricsDevice
})

interface Instruments {
  readonly operations: Metric.Counter<number>
  readonly errors: Metric.Counter<number>
  readonly inFlight: Metric.Gauge<number>
  readonly latency: Metric.Histogram<Duration.Duration>
}

interface TransferInstruments extends Instruments {
  readonly bytes: Metric.Counter<number>
  readonly sizes: Metric.Histogram<number>
}

const instruments = (device: string, operation: string): Instruments => {
  const attributes = { device, operation }
  return {
    operations: Metric.counter(names.operations, { description: "operations completed", attributes }),
    errors: Metric.counter(names.errors, { description: "operations that failed", attributes }),
    inFlight: Metric.gauge(names.inFlight, { description: "operations running", attributes }),
    latency: Metric.timer(names.latency, { description: "operation time", attributes })
  }
}

const transferInstruments = (device: string, operation: string): TransferInstruments => {
  const attributes = { device, operation }
  return {
    ...instruments(device, operation),
    bytes: Metric.counter(names.bytes, { description: "bytes moved", attributes }),
    sizes: Metric.histogram(names.sizes, {
      description: "requested operation size",
      attributes,
      boundaries: sizeBoundaries
    })
  }
}

const operationStats = (target: Instruments, context: Context.Context<never>) => ({
  operations: target.operations.valueUnsafe(context).count,
  errors: target.errors.valueUnsafe(context).count,
  inFlight: target.inFlight.valueUnsafe(context).value,
  latency: target.latency.valueUnsafe(context)
})

const transferStats = (target: TransferInstruments, context: Context.Context<never>) => ({
  ...operationStats(target, context),
  bytes: target.bytes.valueUnsafe(context).count,
  sizes: target.sizes.valueUnsafe(context)
})
