/**
 * What `tessera inspect` and `tessera craft` need from each wire format: a stateful decoder from input bytes
 * to JSON records, and an encoder from one JSON record to bytes. One adapter per protocol over the codec's
 * JSON views, so the commands themselves know nothing about any protocol.
 *
 * @since 0.1.0
 */
import { DnetJson, DnetPacket, SiloFrame, SiloJson, T2Json } from "@tessera/codec"
import type { Decoded, DecodeError } from "@tessera/codec/DecodeError"
import * as Argument from "effect/cli/Argument"
import * as Hex from "effect/encoding/Hex"
import * as Result from "effect/Result"
import * as Lines from "./Lines.ts"

/**
 * A decoding failure located in the input stream.
 *
 * @since 0.1.0
 * @category models
 */
export interface Failure {
  readonly message: string
  readonly offset: number
}

/**
 * What one step of decoding produced: the records decoded before any failure, then the failure if one came.
 *
 * @since 0.1.0
 * @category models
 */
export interface Inspected {
  readonly records: ReadonlyArray<unknown>
  readonly failure?: Failure
}

/**
 * Decodes pushed input into JSON records.
 *
 * @since 0.1.0
 * @category models
 */
export interface Inspector {
  readonly push: (chunk: Uint8Array) => Inspected
  readonly end: () => Inspected
}

/**
 * One protocol's inspect and craft behaviour.
 *
 * @since 0.1.0
 * @category models
 */
export interface Dissector {
  readonly inspector: () => Inspector
  readonly craft: (record: unknown) => Decoded<Uint8Array>
  /** True when the format's natural text form is one hex packet per line (a link delivers whole packets). */
  readonly packetPerLine: boolean
}

/**
 * The protocols `inspect` and `craft` accept.
 *
 * @since 0.1.0
 * @category models
 */
export const protocols = ["silo", "dnet", "t2"] as const

/**
 * The protocol argument of `inspect` and `craft`.
 *
 * @since 0.1.0
 * @category arguments
 */
export const protocolArgument = (description: string) =>
  Argument.Literals("protocol", protocols).pipe(Argument.withDescription(description))

/**
 * @since 0.1.0
 * @category models
 */
export type ProtocolName = (typeof protocols)[number]

const located = (error: { readonly message: string }, offset: number): Failure => ({ message: error.message, offset })

/** A stream parser's error already carries its stream offset. */
const atItsOffset = (error: DecodeError): Failure => located(error, error.offset)

/** Decodes every frame a stream parser yields, stopping at the first failure. */
const streamInspector = <F extends { readonly offset: number }>(
  parser: {
    readonly push: (chunk: Uint8Array) => Decoded<ReadonlyArray<F>>
    readonly end: () => Decoded<void>
  },
  toJson: (frame: F) => Result.Result<unknown, Failure>
): Inspector => {
  const decode = (frames: Decoded<ReadonlyArray<F>>): Inspected => {
    if (Result.isFailure(frames)) return { records: [], failure: atItsOffset(frames.failure) }
    const records: Array<unknown> = []
    for (const frame of frames.success) {
      const record = toJson(frame)
      if (Result.isFailure(record)) return { records, failure: record.failure }
      records.push(record.success)
    }
    return { records }
  }
  return {
    push: (chunk) => {
      const inspected = decode(parser.push(chunk))
      if (inspected.failure) return inspected
      // The parser delivers the frames ahead of a bad one first; an empty push surfaces the error at once.
      const pending = parser.push(EMPTY)
      return Result.isFailure(pending)
        ? { records: inspected.records, failure: atItsOffset(pending.failure) }
        : inspected
    },
    end: () => {
      const ended = parser.end()
      return Result.isFailure(ended) ? { records: [], failure: atItsOffset(ended.failure) } : { records: [] }
    }
  }
}

const EMPTY = new Uint8Array(0)

const silo: Dissector = {
  inspector: () =>
    streamInspector(SiloFrame.makeParser(), (frame) =>
      Result.mapError(
        SiloJson.frameToJson(frame),
        (error) => located(error, frame.offset + SiloFrame.HEADER_SIZE + error.offset)
      )),
  craft: SiloJson.frameFromJson,
  packetPerLine: false
}

const dnet: Dissector = {
  inspector: () => streamInspector(DnetPacket.makeParser(), (parsed) => Result.succeed(DnetJson.toJson(parsed.packet))),
  craft: DnetJson.fromJson,
  packetPerLine: false
}

/** Decodes T2 text input: one packet of hex per line; blank lines and `#` comments are skipped. */
const decodeT2Lines = (lines: ReadonlyArray<Lines.Line>): Inspected => {
  const records: Array<unknown> = []
  for (const line of lines) {
    const text = line.text.trim()
    if (text === "" || text.startsWith("#")) continue
    const bytes = Hex.decode(text.replace(/\s+/g, ""))
    if (Result.isFailure(bytes)) {
      return { records, failure: { message: `line is not hex: ${bytes.failure.message}`, offset: line.offset } }
    }
    const record = T2Json.toJson(bytes.success)
    if (Result.isFailure(record)) return { records, failure: located(record.failure, line.offset) }
    records.push(record.success)
  }
  return { records }
}

const t2Inspector = (): Inspector => {
  const splitter = Lines.makeSplitter()
  return { push: (chunk) => decodeT2Lines(splitter.push(chunk)), end: () => decodeT2Lines(splitter.end()) }
}

const t2: Dissector = { inspector: t2Inspector, craft: T2Json.fromJson, packetPerLine: true }

/**
 * The dissector of each protocol.
 *
 * @since 0.1.0
 * @category constructors
 */
export const forProtocol = (name: ProtocolName): Dissector => ({ silo, dnet, t2 })[name]
