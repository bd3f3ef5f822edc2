/**
 * `SiloFrame.makeParser` for one stream, without the copy when a frame's pieces are adjacent in memory.
 *
 * The parser hands out a frame as a view when it lies inside one pushed chunk and copies it together
 * otherwise. A frame cut by the end of a read batch arrives in two chunks, but with the transport's big reads
 * into one slab the second piece usually starts right where the first ended. So when the parser is holding
 * the start of a frame and the next chunk continues the same memory, the reader starts a fresh parser on one
 * view over both (the held bytes always begin at a frame boundary), and the frame comes out as a view. Error
 * offsets stay stream offsets.
 */
import * as DecodeError from "@tessera/codec/DecodeError"
import * as SiloFrame from "@tessera/codec/SiloFrame"
import * as Result from "effect/Result"

export class FrameReader {
  readonly #options: SiloFrame.ParserOptions
  #parser: SiloFrame.Parser
  /** Stream offset of the first byte given to the current parser, and bytes given to it since. */
  #base = 0
  #given = 0
  /** The memory span, ending with the last byte given, that the recent chunks cover without gaps. */
  #spanBuffer: ArrayBufferLike | undefined
  #spanStart = 0
  #spanEnd = 0

  constructor(options: SiloFrame.ParserOptions) {
    this.#options = options
    this.#parser = SiloFrame.makeParser(options)
  }

  push(chunk: Uint8Array): DecodeError.Decoded<ReadonlyArray<SiloFrame.Frame>> {
    // An empty push only asks the parser for an error it found; it must not break the span.
    if (chunk.length === 0) return this.#located(this.#parser.push(chunk))
    let input = chunk
    const held = this.#parser.buffered()
    const continues = chunk.buffer === this.#spanBuffer && chunk.byteOffset === this.#spanEnd
    if (continues) {
      this.#spanEnd += chunk.length
      if (held > 0 && this.#spanEnd - this.#spanStart >= held + chunk.length) {
        input = new Uint8Array(chunk.buffer, chunk.byteOffset - held, held + chunk.length)
        this.#base += this.#given - held
        this.#given = 0
        this.#parser = SiloFrame.makeParser(this.#options)
      }
    } else {
      this.#spanBuffer = chunk.buffer
      this.#spanStart = chunk.byteOffset
      this.#spanEnd = chunk.byteOffset + chunk.length
    }
    this.#given += input.length
    return this.#located(this.#parser.push(input))
  }

  end(): DecodeError.Decoded<void> {
    return this.#located(this.#parser.end())
  }

  /** Turns an error offset relative to the current parser into a stream offset. */
  #located<A>(result: DecodeError.Decoded<A>): DecodeError.Decoded<A> {
    if (Result.isSuccess(result) || this.#base === 0) return result
    const { offset, packet, protocol, reason } = result.failure
    return Result.fail(new DecodeError.DecodeError({ protocol, packet, offset: offset + this.#base, reason }))
  }
}
