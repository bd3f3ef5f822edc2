/**
 * A fixed-size set of block numbers as bits: the state behind dirty tracking, waiting caches, block orders and
 * copy-on-write maps. Persisted as a list of little-endian u32 words (Silo's copy-on-write state file layout).
 *
 * @since 0.1.0
 */

/**
 * A bitfield of `size` bits.
 *
 * @since 0.1.0
 * @category models
 */
export class Bitfield {
  readonly size: number
  readonly words: Uint32Array
  constructor(size: number, words?: Uint32Array) {
    this.size = size
    this.words = words ?? new Uint32Array(Math.ceil(size / 32))
  }
  /** Whether bit `i` is set. */
  has(i: number): boolean {
    return (this.words[i >>> 5]! & (1 << (i & 31))) !== 0
  }
  set(i: number): void {
    this.words[i >>> 5]! |= 1 << (i & 31)
  }
  clear(i: number): void {
    this.words[i >>> 5]! &= ~(1 << (i & 31))
  }
  /** Sets bits `[from, to)`, a word at a time. */
  setRange(from: number, to: number): void {
    this.#applyRange(from, to, true)
  }
  /** Clears bits `[from, to)`, a word at a time. */
  clearRange(from: number, to: number): void {
    this.#applyRange(from, to, false)
  }
  #applyRange(from: number, to: number, value: boolean): void {
    if (to <= from) return
    const firstWord = from >>> 5
    const lastWord = (to - 1) >>> 5
    for (let word = firstWord; word <= lastWord; word++) {
      const low = word === firstWord ? from & 31 : 0
      const high = word === lastWord ? ((to - 1) & 31) + 1 : 32
      // Bits [low, high) of this word; a full word is all ones.
      const mask = high - low === 32 ? 0xffff_ffff : ((1 << (high - low)) - 1) << low
      this.words[word] = value ? this.words[word]! | mask : this.words[word]! & ~mask
    }
  }
  /** Whether every bit of `[from, to)` is set. */
  hasRange(from: number, to: number): boolean {
    for (let i = from; i < to; i++) if (!this.has(i)) return false
    return true
  }
  setAll(): void {
    this.words.fill(0xffff_ffff)
    const tail = this.size & 31
    if (tail !== 0) this.words[this.words.length - 1] = (1 << tail) - 1
  }
  clearAll(): void {
    this.words.fill(0)
  }
  /** Number of set bits. */
  count(): number {
    let total = 0
    for (let w of this.words) {
      w = w - ((w >>> 1) & 0x5555_5555)
      w = (w & 0x3333_3333) + ((w >>> 2) & 0x3333_3333)
      total += (((w + (w >>> 4)) & 0x0f0f_0f0f) * 0x0101_0101) >>> 24
    }
    return total
  }
  /** The lowest set bit at or after `from`, or -1. */
  next(from = 0): number {
    for (let word = from >>> 5; word < this.words.length; word++) {
      let bits = this.words[word]!
      if (word === from >>> 5) bits &= ~((1 << (from & 31)) - 1)
      if (bits !== 0) {
        const i = (word << 5) + (31 - Math.clz32(bits & -bits))
        return i < this.size ? i : -1
      }
    }
    return -1
  }
  /** Every set bit, ascending. */
  *[Symbol.iterator](): IterableIterator<number> {
    for (let i = this.next(0); i !== -1; i = this.next(i + 1)) yield i
  }
  /** A copy. */
  clone(): Bitfield {
    return new Bitfield(this.size, this.words.slice())
  }
  /** The words as little-endian u32 bytes. */
  toBytes(): Uint8Array {
    const out = new Uint8Array(this.words.length * 4)
    for (let i = 0; i < this.words.length; i++) {
      const w = this.words[i]!
      out[i * 4] = w
      out[i * 4 + 1] = w >>> 8
      out[i * 4 + 2] = w >>> 16
      out[i * 4 + 3] = w >>> 24
    }
    return out
  }
  /** Reads words written by `toBytes`; `undefined` when the byte count does not match `size`. */
  static fromBytes(size: number, bytes: Uint8Array): Bitfield | undefined {
    const words = Math.ceil(size / 32)
    if (bytes.length !== words * 4) return undefined
    const field = new Bitfield(size)
    for (let i = 0; i < words; i++) {
      field.words[i] =
        (bytes[i * 4]! | (bytes[i * 4 + 1]! << 8) | (bytes[i * 4 + 2]! << 16) | (bytes[i * 4 + 3]! << 24)) >>> 0
    }
    return field
  }
}
