/**
 * Word-at-a-time walks over a range of a `Bitfield`: the per-write paths only look at the words a write covers,
 * where `Bitfield.next` would scan on to the end of a mostly empty field.
 */
import type { Bitfield } from "../Bitfield.ts"

/** Calls `visit` with every set bit of `field` in `[from, to)`, ascending, skipping empty words. */
export const forEachSet = (field: Bitfield, from: number, to: number, visit: (bit: number) => void): void => {
  if (from >= to) return
  const words = field.words
  const firstWord = from >>> 5
  const lastWord = (to - 1) >>> 5
  for (let word = firstWord; word <= lastWord; word++) {
    let bits = words[word]!
    if (word === firstWord) bits &= ~0 << (from & 31)
    if (word === lastWord && (to & 31) !== 0) bits &= (1 << (to & 31)) - 1
    while (bits !== 0) {
      const lowest = bits & -bits
      visit((word << 5) + 31 - Math.clz32(lowest))
      bits ^= lowest
    }
  }
}
