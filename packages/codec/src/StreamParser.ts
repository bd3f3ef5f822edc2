/**
 * Incremental parsing of a byte stream made of self-delimiting frames (a fixed header that says how long the
 * whole frame is). Push chunks with arbitrary boundaries, get whole frames back.
 *
 * A frame that lies inside one pushed chunk comes back as a view of that chunk (no copy); only a frame that
 * spans chunks is assembled into a new buffer. The frame length is checked against the maximum before any
 * byte of the frame is buffered or allocated, so a hostile length field costs nothing.
 *
 * Errors are sticky: a stream that lost framing cannot be resynchronised. Frames completed before the bad
 * one in the same push are still returned, and the error comes with the next call (`push(new Uint8Array(0))`
 * asks for it at once), so every good frame ahead of the damage is delivered exactly once.
 *
 * @since 0.1.0
 */
import * as Result from "effect/Result"
import { type Decoded, DecodeError, type Protocol } from "./DecodeError.ts"
import { view } from "./internal/bytes.ts"

/**
 * One whole frame: its bytes (header included) and the stream offset of its first byte.
 *
 * @since 0.1.0
 * @category models
 */
export interface Frame {
  readonly offset: number
  readonly bytes: Uint8Array
}

/**
 * How to find frames in a stream and what to make of each one.
 *
 * Every field is read afresh before each frame, so a protocol with phases (NBD) may give a format whose
 * `name`, `headerSize`, `maxFrameLength` and `frameLength` follow state that `decodeFrame` changes; a
 * `headerSize` of `Infinity` holds all further bytes until the state changes again.
 *
 * @since 0.1.0
 * @category models
 */
export interface FrameFormat<A> {
  readonly protocol: Protocol
  /** The name used in errors, e.g. "frame" or "packet". */
  readonly name: string
  /** Bytes needed before the frame length is known. */
  readonly headerSize: number
  /** Total frame length (header included) from the header bytes; a value above the maximum is refused. */
  readonly frameLength: (header: Uint8Array) => number
  /** Largest accepted total frame length. */
  readonly maxFrameLength: number
  /** Decodes one whole frame; error offsets are relative to the frame and come back as stream offsets. */
  readonly decodeFrame: (frame: Frame) => Decoded<A>
}

/**
 * A stateful parser over one stream. After an error it stays failed.
 *
 * @since 0.1.0
 * @category models
 */
export interface StreamParser<A> {
  /** Adds bytes and returns every frame they complete, decoded. */
  readonly push: (chunk: Uint8Array) => Decoded<ReadonlyArray<A>>
  /** Declares the end of the stream: fails when a partial frame is left over. */
  readonly end: () => Decoded<void>
  /** Bytes held for an incomplete frame. */
  readonly buffered: () => number
}

/**
 * Creates a parser for the given frame format.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <A>(format: FrameFormat<A>): StreamParser<A> => {
  const chunks: Array<Uint8Array> = []
  let first = 0 // index of the first live chunk
  let firstOffset = 0 // bytes of chunks[first] already consumed
  let buffered = 0
  let streamOffset = 0 // stream offset of the first buffered byte
  let failure: Decoded<never> | undefined

  const take = (size: number): Uint8Array => {
    const head = chunks[first]!
    const available = head.length - firstOffset
    if (available >= size) {
      const frame = view(head, firstOffset, size)
      firstOffset += size
      if (firstOffset === head.length) {
        chunks[first++] = EMPTY
        firstOffset = 0
      }
      buffered -= size
      return frame
    }
    const out = new Uint8Array(size)
    let filled = 0
    while (filled < size) {
      const chunk = chunks[first]!
      const n = Math.min(size - filled, chunk.length - firstOffset)
      out.set(chunk.subarray(firstOffset, firstOffset + n), filled)
      filled += n
      firstOffset += n
      if (firstOffset === chunk.length) {
        chunks[first++] = EMPTY
        firstOffset = 0
      }
    }
    buffered -= size
    return out
  }

  const peekHeader = (): Uint8Array => {
    const head = chunks[first]!
    if (head.length - firstOffset >= format.headerSize) {
      return head.subarray(firstOffset, firstOffset + format.headerSize)
    }
    const out = new Uint8Array(format.headerSize)
    let filled = 0
    for (let i = first, skip = firstOffset; filled < format.headerSize; i++, skip = 0) {
      const chunk = chunks[i]!
      const n = Math.min(format.headerSize - filled, chunk.length - skip)
      out.set(chunk.subarray(skip, skip + n), filled)
      filled += n
    }
    return out
  }

  const compact = () => {
    if (first === chunks.length) {
      chunks.length = 0
      first = 0
    } else if (first > 64) {
      chunks.splice(0, first)
      first = 0
    }
  }

  const failAt = (
    offset: number,
    reason: string,
    packet = format.name
  ): Decoded<never> => (failure = Result.fail(new DecodeError({ protocol: format.protocol, packet, offset, reason })))

  const push = (chunk: Uint8Array): Decoded<ReadonlyArray<A>> => {
    if (failure) return failure
    if (chunk.length > 0) {
      chunks.push(chunk)
      buffered += chunk.length
    }
    const frames: Array<A> = []
    while (buffered >= format.headerSize) {
      const length = format.frameLength(peekHeader())
      if (!(length >= format.headerSize) || length > format.maxFrameLength) {
        failAt(
          streamOffset,
          length >= format.headerSize
            ? `${format.name} length ${length} exceeds the maximum of ${format.maxFrameLength}`
            : `${format.name} length ${length} is invalid`
        )
        break
      }
      if (buffered < length) break
      const frame: Frame = { offset: streamOffset, bytes: take(length) }
      const decoded = format.decodeFrame(frame)
      if (Result.isFailure(decoded)) {
        const { offset, packet, reason } = decoded.failure
        failAt(streamOffset + offset, reason, packet)
        break
      }
      frames.push(decoded.success)
      streamOffset += length
    }
    compact()
    return failure && frames.length === 0 ? failure : Result.succeed(frames)
  }

  const end = (): Decoded<void> => {
    if (failure) return failure
    if (buffered === 0) return Result.void
    return failAt(streamOffset, `stream ended inside a ${format.name} (${buffered} bytes of it received)`)
  }

  return { push, end, buffered: () => buffered }
}

const EMPTY = new Uint8Array(0)
