/** Deterministic pseudo-random integers in `[0, bound)` (xorshift32), one independent stream per seed. */
export const random = (seed: number) => {
  let state = (seed * 2654435761) >>> 0 || 1
  return (bound: number): number => {
    state ^= state << 13
    state ^= state >>> 17
    state ^= state << 5
    state >>>= 0
    return state % bound
  }
}

/** `length` deterministic pseudo-random bytes for `seed`. */
export const bytes = (length: number, seed: number): Uint8Array => {
  const next = random(seed)
  const out = new Uint8Array(length)
  for (let i = 0; i < length; i++) out[i] = next(256)
  return out
}
