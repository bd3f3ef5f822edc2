/**
 * Big, adjacent reads for `node:net` sockets, through Node's `onread` option.
 *
 * By default Node reads at most 64 KiB per syscall into a fresh buffer, so a 1 MiB frame arrives in 16 or more
 * pieces that a frame parser must copy together. With `onread` the socket reads into memory we hand it: here
 * the free tail of a 4 MiB slab, so one read returns as much as the kernel holds (hundreds of KiB to MiB on
 * loopback), and consecutive reads are adjacent in memory, so pieces of one frame can be joined by a view
 * instead of a copy. A region is never handed out twice, so the views stay valid for as long as anyone holds
 * them. Slabs are allocated uninitialised: only the bytes a read filled are ever exposed. A small read (a
 * request of a request/response protocol) is copied out instead, so the next read goes to the same memory,
 * still in the CPU's caches, rather than through fresh pages of the slab. A reader can ask for
 * a stretch of the stream to go into memory of its own instead (`receiveInto`): reads then target that memory
 * until it is full. Node asks for the next target right after each read, so the request takes effect from the
 * read after the one already armed.
 *
 * Node takes `onread` only when a socket is created (`net.connect`); a socket accepted by a server gets the
 * same fields set after the fact, before it starts reading. Other runtimes keep 'data' events: Bun has its own
 * `onread` that reuses one buffer (which would overwrite the views handed out), Deno's is untested, so
 * `supported` is false there and the callers fall back.
 */
import { Buffer } from "node:buffer"
import type * as Net from "node:net"

const SLAB_SIZE = 4 * 1024 * 1024
/** Reads of at most this many bytes are copied out of the slab rather than handed out as views of it. */
const COPY_UP_TO = 4096
/** A read target smaller than this starts a new slab rather than fragmenting reads. */
const MIN_REGION = 256 * 1024

type Sink = (chunk: Uint8Array) => void

export class ReadRegions {
  #slab = new Uint8Array(0)
  #next = 0
  #sink: Sink | undefined
  #early: Array<Uint8Array> = []
  /** Bytes read so far: the stream position of the next read. */
  #received = 0
  /** Where the stream from `position` on should go, until `target` is full. */
  #steer: { readonly target: Uint8Array; readonly position: number } | undefined

  readonly onread: Net.OnReadOpts = {
    buffer: () => this.#region(),
    callback: (length, region) => {
      this.#received += length
      let chunk: Uint8Array
      if (region.buffer !== this.#slab.buffer) chunk = new Uint8Array(region.buffer, region.byteOffset, length)
      else if (length <= COPY_UP_TO) {
        // A small read is copied out, so the next read lands in the same memory, still in the cache.
        chunk = Buffer.allocUnsafe(length)
        chunk.set(new Uint8Array(region.buffer, region.byteOffset, length))
      } else {
        this.#next = region.byteOffset - this.#slab.byteOffset + length
        chunk = new Uint8Array(region.buffer, region.byteOffset, length)
      }
      if (this.#sink === undefined) this.#early.push(chunk)
      else this.#sink(chunk)
      // Pausing is done with `socket.pause()`, which Node honours for `onread` sockets as well.
      return true
    }
  }

  /** Sends every chunk read so far, and from now on, to `sink`. */
  attach(sink: Sink): void {
    this.#sink = sink
    const early = this.#early
    this.#early = []
    for (const chunk of early) sink(chunk)
  }

  /** Reads the stream from `position` on into `target` (see `Transport.Connection.receiveInto`). */
  receiveInto(target: Uint8Array, position: number): void {
    this.#steer = { target, position }
  }

  #region(): Uint8Array {
    const steer = this.#steer
    if (steer !== undefined) {
      const at = this.#received - steer.position
      if (at >= 0 && at < steer.target.length) return steer.target.subarray(at)
      if (at >= steer.target.length) this.#steer = undefined
    }
    if (this.#slab.length - this.#next < MIN_REGION) {
      this.#slab = Buffer.allocUnsafeSlow(SLAB_SIZE)
      this.#next = 0
    }
    return new Uint8Array(this.#slab.buffer, this.#slab.byteOffset + this.#next, this.#slab.length - this.#next)
  }
}

/** Whether this runtime is Node itself, whose `onread` asks for a fresh target before every read. */
export const supported: boolean = typeof process === "object" && process.versions.node !== undefined &&
  process.versions.bun === undefined && process.versions.deno === undefined

const symbolOf = (socket: Net.Socket, description: string): symbol | undefined =>
  Object.getOwnPropertySymbols(socket).find((symbol) => symbol.description === description)

interface WithUserBuffer {
  readonly useUserBuffer?: (buffer: Uint8Array) => void
}

/** Whether `net.connect` honoured the `onread` option of `regions` (Node does; some runtimes ignore it). */
export const isActive = (socket: Net.Socket, regions: ReadRegions): boolean => {
  if (!supported) return false
  const callback = symbolOf(socket, "kBufferCb")
  return callback !== undefined && (socket as unknown as Record<symbol, unknown>)[callback] === regions.onread.callback
}

/**
 * Gives an accepted socket that has not started reading (`pauseOnConnect`) the `onread` behaviour, as
 * `net.connect({ onread })` would have. Returns `undefined` when the runtime does not have the fields.
 */
export const install = (socket: Net.Socket): ReadRegions | undefined => {
  if (!supported) return undefined
  const handle = (socket as unknown as { readonly _handle?: WithUserBuffer | null })._handle
  const buffer = symbolOf(socket, "kBuffer")
  const generate = symbolOf(socket, "kBufferGen")
  const callback = symbolOf(socket, "kBufferCb")
  if (
    typeof handle?.useUserBuffer !== "function" || buffer === undefined || generate === undefined ||
    callback === undefined
  ) return undefined
  const regions = new ReadRegions()
  const first = (regions.onread.buffer as () => Uint8Array)()
  const fields = socket as unknown as Record<symbol, unknown>
  fields[buffer] = first
  fields[generate] = regions.onread.buffer
  fields[callback] = regions.onread.callback
  handle.useUserBuffer(first)
  return regions
}
