/**
 * Memory a store no longer needs, kept (up to a byte limit) for the next big buffer it or its caller would
 * otherwise allocate: reused memory is already mapped and warm, while fresh memory costs a page fault per page
 * on first touch, which for tens of MiB takes longer than copying the bytes.
 */
export interface SparePool {
  /** Keeps `memory` unless that would exceed the limit. */
  readonly keep: (memory: ArrayBufferLike) => void
  /** A view of `size` bytes of kept memory at least that big, taken out of the pool; `undefined` if none. */
  readonly take: (size: number) => Uint8Array | undefined
  readonly clear: () => void
}

export const make = (maxBytes: number): SparePool => {
  let spares: Array<ArrayBufferLike> = []
  let bytes = 0
  return {
    keep: (memory) => {
      if (bytes + memory.byteLength > maxBytes) return
      spares.push(memory)
      bytes += memory.byteLength
    },
    take: (size) => {
      const at = spares.findIndex((memory) => memory.byteLength >= size)
      if (at < 0) return undefined
      const [memory] = spares.splice(at, 1)
      bytes -= memory!.byteLength
      return new Uint8Array(memory!, 0, size)
    },
    clear: () => {
      spares = []
      bytes = 0
    }
  }
}
