/**
 * The JSON lines the two halves of `tessera demo` print with `--json`, which the parent demo reads from their
 * standard output. One schema per event; `decode` validates a line at this edge.
 */
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"

/** The source is listening and has started nothing yet. */
export const SourceListening = Schema.Struct({
  event: Schema.Literal("listening"),
  address: Schema.String,
  size: Schema.Number,
  blockSize: Schema.Number,
  compression: Schema.String,
  writeRate: Schema.Number
})

/** Where the source's migration is (at most every progress interval). */
export const SourceProgress = Schema.Struct({
  event: Schema.Literal("progress"),
  phase: Schema.String,
  /** Blocks whose latest copy is at the destination. */
  ready: Schema.Number,
  /** Blocks sent at least once. */
  migrated: Schema.Number,
  total: Schema.Number,
  /** Block writes to the destination so far, re-sends included. */
  sent: Schema.Number,
  /** Application writes at the source so far. */
  writes: Schema.Number
})

/** The migration is complete; the hash is of the source device, writers held. */
export const SourceCompleted = Schema.Struct({
  event: Schema.Literal("completed"),
  sha256: Schema.String,
  size: Schema.Number,
  blockSize: Schema.Number,
  /** From the destination's connection to Completed. */
  seconds: Schema.Number,
  writes: Schema.Number,
  blocksSent: Schema.Number,
  blocksResent: Schema.Number,
  dirtyRounds: Schema.Number,
  finalRoundMillis: Schema.Number,
  connections: Schema.Number
})

/** The destination knows the device. */
export const DestinationDevice = Schema.Struct({
  event: Schema.Literal("device"),
  name: Schema.String,
  size: Schema.Number,
  blockSize: Schema.Number
})

/** How many blocks are at the destination. */
export const DestinationProgress = Schema.Struct({
  event: Schema.Literal("progress"),
  present: Schema.Number,
  total: Schema.Number,
  reads: Schema.Number
})

/** One read through the destination's local view; `needAt` when it waited for a block (a NeedAt). */
export const DestinationRead = Schema.Struct({
  event: Schema.Literal("read"),
  offset: Schema.Number,
  length: Schema.Number,
  millis: Schema.Number,
  needAt: Schema.Boolean
})

/** Every block arrived and was flushed; the hash is of the destination device. */
export const DestinationCompleted = Schema.Struct({
  event: Schema.Literal("completed"),
  sha256: Schema.String,
  size: Schema.Number,
  seconds: Schema.Number,
  reads: Schema.Number,
  needAtReads: Schema.Number
})

/** Any line of the source. */
export const SourceEvent = Schema.Union([SourceListening, SourceProgress, SourceCompleted])
/** Any line of the source. */
export type SourceEvent = typeof SourceEvent.Type

/** Any line of the destination. */
export const DestinationEvent = Schema.Union([
  DestinationDevice,
  DestinationProgress,
  DestinationRead,
  DestinationCompleted
])
/** Any line of the destination. */
export type DestinationEvent = typeof DestinationEvent.Type

/** One event as one line (without the line break). */
export const encode = (event: SourceEvent | DestinationEvent): string => JSON.stringify(event)

const decodeSource = Schema.decodeUnknownOption(Schema.fromJsonString(SourceEvent))
const decodeDestination = Schema.decodeUnknownOption(Schema.fromJsonString(DestinationEvent))

/** Parses a line of the source; `undefined` for anything else (a stray log line). */
export const decodeSourceLine = (line: string): SourceEvent | undefined => Option.getOrUndefined(decodeSource(line))

/** Parses a line of the destination; `undefined` for anything else (a stray log line). */
export const decodeDestinationLine = (line: string): DestinationEvent | undefined =>
  Option.getOrUndefined(decodeDestination(line))

/** The text after the source's progress bar. */
export const sourceDetail = (phase: string, resent: number, writes: number): string => {
  const name = phase === "dirty" ? "dirty rounds" : phase === "final" ? "final round, writes held" : phase
  return `${name}, ${resent} re-sent, ${writes} writes`
}

/** The text after the destination's progress bar. */
export const destinationDetail = (reads: number, needAt: number): string => `${reads} reads, ${needAt} waited (NeedAt)`
