/**
 * A small seeded generator (mulberry32) so simulations replay exactly from a seed.
 */

/** A source of uniform numbers in [0, 1). */
export type Random = () => number

/** A deterministic generator from a 32-bit seed. */
export const seeded = (seed: number): Random => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A uniform integer in [0, n). */
export const int = (random: Random, n: number): number => Math.floor(random() * n)

/** A uniform number in [lo, hi). */
export const between = (random: Random, lo: number, hi: number): number => lo + random() * (hi - lo)

/** A uniformly chosen element, or `undefined` for an empty array. */
export const pick = <A>(random: Random, items: ReadonlyArray<A>): A | undefined =>
  items.length === 0 ? undefined : items[int(random, items.length)]
