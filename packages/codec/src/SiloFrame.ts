/**
 * Silo's wire framing: a 12-byte little-endian header `dev u32 | id u32 | payload length u32`, then the payload,
 * whose first byte is the command. No magic, version or checksum.
 *
 * Go reads any length the peer announces; the parser here caps it (32 MiB of payload by default) before
 * buffering anything, and refuses an empty payload as Go does (`invalid packet`).
 *
 * @since 0.1.0
 */
import * as Result from "effect/Result"
import { type Decoded, fail } from "./DecodeError.ts"
import { putU32le, u32le, view } from "./internal/bytes.ts"
import * as StreamParser from "./StreamParser.ts"

/**
 * Size of the frame header in bytes.
 *
 * @since 0.1.0
 * @category constants
 */
export const HEADER_SIZE = 12

/**
 * Default cap on a frame's payload length (32 MiB: a few times the largest block size Silo migrates).
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_MAX_FRAME_LENGTH = 32 * 1024 * 1024

/**
 * A decoded frame header.
 *
 * @since 0.1.0
 * @category models
 */
export interface Header {
  /** Device id, the multiplexing key. */
  readonly dev: number
  /** Transaction id; a response carries its request's id. */
  readonly id: number
  /** Payload length, header excluded. */
  readonly length: number
}

/**
 * One frame from a stream: where it starts in the stream, its header ids and its payload (a view, not a copy,
 * whenever the frame arrived inside one chunk).
 *
 * @since 0.1.0
 * @category models
 */
export interface Frame {
  readonly offset: number
  readonly dev: number
  readonly id: number
  readonly payload: Uint8Array
}

/**
 * Writes a header into `target` at `offset`, for writers that lay several frames out in one slab.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeHeaderInto = (target: Uint8Array, offset: number, dev: number, id: number, length: number): void => {
  putU32le(target, offset, dev)
  putU32le(target, offset + 4, id)
  putU32le(target, offset + 8, length)
}

/**
 * A header as a new 12-byte array (for writev-style sends of header and payload).
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeHeader = (dev: number, id: number, length: number): Uint8Array => {
  const out = new Uint8Array(HEADER_SIZE)
  encodeHeaderInto(out, 0, dev, id, length)
  return out
}

/**
 * A whole frame in one buffer. Throws a `RangeError` for an empty payload, which no Silo peer accepts.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encode = (dev: number, id: number, payload: Uint8Array): Uint8Array => {
  if (payload.length === 0) throw new RangeError("a Silo frame needs a non-empty payload (the command byte)")
  const out = new Uint8Array(HEADER_SIZE + payload.length)
  encodeHeaderInto(out, 0, dev, id, payload.length)
  out.set(payload, HEADER_SIZE)
  return out
}

/**
 * Reads the header at `offset` of `bytes`.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeHeader = (bytes: Uint8Array, offset = 0): Decoded<Header> =>
  bytes.length - offset < HEADER_SIZE
    ? fail("silo", "frame", offset, `frame header needs ${HEADER_SIZE} bytes, ${bytes.length - offset} available`)
    : Result.succeed({ dev: u32le(bytes, offset), id: u32le(bytes, offset + 4), length: u32le(bytes, offset + 8) })

/**
 * Frame headers read and written in one long-lived buffer through one persistent `DataView`: the fastest way
 * to lay out many headers, e.g. a sender's header slab whose 12-byte views go out next to payload views.
 *
 * @since 0.1.0
 * @category encoding
 */
export class HeaderSlab {
  readonly bytes: Uint8Array
  readonly #view: DataView
  constructor(bytes: Uint8Array) {
    this.bytes = bytes
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  }
  /** Writes a header at `at`; the caller keeps `at + 12` within the slab. */
  encode(at: number, dev: number, id: number, length: number): void {
    this.#view.setUint32(at, dev, true)
    this.#view.setUint32(at + 4, id, true)
    this.#view.setUint32(at + 8, length, true)
  }
  /** Reads the header at `at`. */
  decode(at: number): Decoded<Header> {
    return at >= 0 && at + HEADER_SIZE <= this.bytes.length
      ? Result.succeed({
        dev: this.#view.getUint32(at, true),
        id: this.#view.getUint32(at + 4, true),
        length: this.#view.getUint32(at + 8, true)
      })
      : fail(
        "silo",
        "frame",
        at,
        `frame header needs ${HEADER_SIZE} bytes, ${Math.max(0, this.bytes.length - at)} available`
      )
  }
}

/**
 * An incremental frame parser over one directional stream. After an error it stays failed; frames completed
 * before the error are still delivered (see `StreamParser`).
 *
 * @since 0.1.0
 * @category models
 */
export type Parser = StreamParser.StreamParser<Frame>

/**
 * Parser options.
 *
 * @since 0.1.0
 * @category models
 */
export interface ParserOptions {
  /** Largest accepted payload length in bytes; default {@link DEFAULT_MAX_FRAME_LENGTH}. */
  readonly maxFrameLength?: number | undefined
}

/**
 * Creates a frame parser. A length above the cap fails as soon as its header is complete, before any of the
 * payload is buffered.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeParser = (options?: ParserOptions): Parser =>
  StreamParser.make({
    protocol: "silo",
    name: "frame",
    headerSize: HEADER_SIZE,
    frameLength: (header) => HEADER_SIZE + u32le(header, 8),
    maxFrameLength: HEADER_SIZE + (options?.maxFrameLength ?? DEFAULT_MAX_FRAME_LENGTH),
    decodeFrame: ({ bytes, offset }) =>
      bytes.length === HEADER_SIZE
        ? fail("silo", "frame", 0, "invalid packet: empty payload (a frame needs its command byte)")
        : Result.succeed({
          offset,
          dev: u32le(bytes, 0),
          id: u32le(bytes, 4),
          payload: view(bytes, HEADER_SIZE, bytes.length - HEADER_SIZE)
        })
  })
