/**
 * The client's reader of transmission replies: simple replies and structured reply chunks, incrementally, with
 * any chunk boundaries. READ data (a successful simple reply's, an OFFSET_DATA chunk's) is copied from the
 * received bytes straight into the buffer of the READ it answers, as it arrives: no frame is assembled first,
 * so each byte is copied once. Every other chunk is decoded whole by `NbdTransmission` (its length checked
 * against its type and a cap before anything is buffered).
 */
import * as NbdConstants from "@tessera/codec/NbdConstants"
import * as NbdTransmission from "@tessera/codec/NbdTransmission"
import * as Result from "effect/Result"

/** What the reader needs to know of a request in flight. */
export interface InFlight {
  readonly type: number
  readonly offset: number
  readonly length: number
  /** A READ's buffer (`length` bytes). */
  readonly target: Uint8Array
}

/** A reply event, after any READ data it carried has been copied. */
export type Reply =
  | { readonly _tag: "Simple"; readonly cookie: bigint; readonly error: number }
  /** An OFFSET_DATA chunk whose data is in the target now. */
  | { readonly _tag: "Data"; readonly cookie: bigint; readonly flags: number }
  | { readonly _tag: "Chunk"; readonly chunk: NbdTransmission.Chunk }

type Stage = "Header" | "SimpleData" | "Offset" | "ChunkData" | "Payload"

const S = NbdTransmission.SIMPLE_REPLY_HEADER_SIZE
const H = NbdTransmission.CHUNK_HEADER_SIZE

/** Incremental reply reader; `push` returns a violation's text, after which the reader must not be used. */
export class ReplyReader {
  readonly #lookup: (cookie: bigint) => InFlight | undefined
  readonly #maxPayload: number
  readonly #head = new Uint8Array(NbdTransmission.OFFSET_DATA_HEADER_SIZE)
  #have = 0
  #stage: Stage = "Header"
  #cookie = 0n
  #flags = 0
  #type = 0
  #length = 0
  /** Where READ data goes, and how much of it is still to come. */
  #target: Uint8Array = new Uint8Array(0)
  #at = 0
  #payload: Uint8Array = new Uint8Array(0)

  constructor(lookup: (cookie: bigint) => InFlight | undefined, maxRead: number) {
    this.#lookup = lookup
    this.#maxPayload = maxRead + 8
  }

  /** Consumes `chunk`, calling `emit` for every reply event it completes; a string is a protocol violation. */
  push(chunk: Uint8Array, emit: (reply: Reply) => string | undefined): string | undefined {
    let at = 0
    while (at < chunk.length) {
      const left = chunk.length - at
      switch (this.#stage) {
        case "Header": {
          const need = this.#have < 4 ? 4 : this.#headerSize()
          if (need === 0) return "bad magic: expected a simple (0x67446698) or structured (0x668e33ef) reply"
          const n = Math.min(need - this.#have, left)
          this.#head.set(chunk.subarray(at, at + n), this.#have)
          this.#have += n
          at += n
          if (this.#have < 4) break
          const size = this.#headerSize()
          if (size === 0) return "bad magic: expected a simple (0x67446698) or structured (0x668e33ef) reply"
          if (this.#have < size) break
          const problem = size === S ? this.#simpleHeader(emit) : this.#chunkHeader(emit)
          if (problem !== undefined) return problem
          break
        }
        case "SimpleData":
        case "ChunkData": {
          const n = Math.min(this.#target.length - this.#at, left)
          this.#target.set(chunk.subarray(at, at + n), this.#at)
          this.#at += n
          at += n
          if (this.#at < this.#target.length) break
          const problem = emit(
            this.#stage === "SimpleData"
              ? { _tag: "Simple", cookie: this.#cookie, error: 0 }
              : { _tag: "Data", cookie: this.#cookie, flags: this.#flags }
          )
          this.#reset()
          if (problem !== undefined) return problem
          break
        }
        case "Offset": {
          const n = Math.min(NbdTransmission.OFFSET_DATA_HEADER_SIZE - this.#have, left)
          this.#head.set(chunk.subarray(at, at + n), this.#have)
          this.#have += n
          at += n
          if (this.#have < NbdTransmission.OFFSET_DATA_HEADER_SIZE) break
          const problem = this.#offsetData()
          if (problem !== undefined) return problem
          break
        }
        case "Payload": {
          const n = Math.min(this.#payload.length - this.#at, left)
          this.#payload.set(chunk.subarray(at, at + n), this.#at)
          this.#at += n
          at += n
          if (this.#at < this.#payload.length) break
          const problem = this.#decodePayload(this.#payload, emit)
          if (problem !== undefined) return problem
          break
        }
      }
    }
    return undefined
  }

  /** Whether the stream may end here (between replies). */
  get atBoundary(): boolean {
    return this.#stage === "Header" && this.#have === 0
  }

  #headerSize(): number {
    const magic = ((this.#head[0]! << 24) | (this.#head[1]! << 16) | (this.#head[2]! << 8) | this.#head[3]!) >>> 0
    return magic === NbdConstants.SIMPLE_REPLY_MAGIC ? S : magic === NbdConstants.STRUCTURED_REPLY_MAGIC ? H : 0
  }

  #reset(): void {
    this.#stage = "Header"
    this.#have = 0
    this.#at = 0
    this.#target = new Uint8Array(0)
    this.#payload = new Uint8Array(0)
  }

  #simpleHeader(emit: (reply: Reply) => string | undefined): string | undefined {
    const decoded = NbdTransmission.decodeSimpleReplyHeader(this.#head.subarray(0, S))
    if (Result.isFailure(decoded)) return decoded.failure.message
    const { cookie, error } = decoded.success
    const request = this.#lookup(cookie)
    if (request === undefined) return `a reply for cookie ${cookie}, which is not in flight`
    if (error !== 0 || request.type !== NbdConstants.Command.READ || request.length === 0) {
      this.#reset()
      return emit({ _tag: "Simple", cookie, error })
    }
    this.#cookie = cookie
    this.#target = request.target
    this.#at = 0
    this.#stage = "SimpleData"
    return undefined
  }

  #chunkHeader(emit: (reply: Reply) => string | undefined): string | undefined {
    const decoded = NbdTransmission.decodeChunkHeader(this.#head.subarray(0, H))
    if (Result.isFailure(decoded)) return decoded.failure.message
    const { cookie, flags, length, type } = decoded.success
    if (length > this.#maxPayload) return `chunk length ${length} exceeds the maximum of ${this.#maxPayload}`
    this.#cookie = cookie
    this.#flags = flags
    this.#type = type
    this.#length = length
    if (type === NbdConstants.ChunkType.OFFSET_DATA) {
      this.#stage = "Offset"
      return undefined
    }
    if (length === 0) return this.#decodePayload(new Uint8Array(0), emit)
    this.#payload = new Uint8Array(length)
    this.#at = 0
    this.#stage = "Payload"
    return undefined
  }

  /** The offset of an OFFSET_DATA chunk is in: check it against its READ and copy the data straight in. */
  #offsetData(): string | undefined {
    const high = this.#head[20]! * 2 ** 24 + ((this.#head[21]! << 16) | (this.#head[22]! << 8) | this.#head[23]!)
    const low = ((this.#head[24]! << 24) | (this.#head[25]! << 16) | (this.#head[26]! << 8) | this.#head[27]!) >>> 0
    const offset = high * 2 ** 32 + low
    const request = this.#lookup(this.#cookie)
    if (request === undefined) return `a reply for cookie ${this.#cookie}, which is not in flight`
    if (request.type !== NbdConstants.Command.READ) return "OFFSET_DATA chunk in reply to a non-READ"
    const dataLength = this.#length - 8
    const start = offset - request.offset
    if (!(Number.isSafeInteger(offset) && start >= 0 && start + dataLength <= request.length)) {
      return `OFFSET_DATA chunk at ${offset} (${dataLength} bytes) lies outside its READ`
    }
    this.#target = request.target.subarray(start, start + dataLength)
    this.#at = 0
    this.#stage = "ChunkData"
    return undefined
  }

  #decodePayload(payload: Uint8Array, emit: (reply: Reply) => string | undefined): string | undefined {
    const header: NbdTransmission.ChunkHeader = {
      cookie: this.#cookie,
      flags: this.#flags,
      type: this.#type,
      length: this.#length
    }
    const decoded = NbdTransmission.decodeChunkPayload(header, payload)
    this.#reset()
    if (Result.isFailure(decoded)) return decoded.failure.message
    return emit({ _tag: "Chunk", chunk: decoded.success })
  }
}
