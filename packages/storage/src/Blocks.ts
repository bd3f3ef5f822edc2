/**
 * Block arithmetic, in one place (Silo's rules): a device of `size` bytes in blocks of `blockSize`; the last
 * block may be short. A byte range `(offset, length)` covers blocks `[first, end)`, and a block counts as
 * complete for the range when the range covers all of it (the short last block included).
 *
 * @since 0.1.0
 */

/**
 * Number of blocks of a device: `ceil(size / blockSize)`.
 *
 * @since 0.1.0
 * @category arithmetic
 */
export const count = (size: number, blockSize: number): number => Math.ceil(size / blockSize)

/**
 * Blocks touched by a range, `[first, end)`, with the range clipped to the device; empty when nothing is left.
 *
 * @since 0.1.0
 * @category arithmetic
 */
export const touched = (
  offset: number,
  length: number,
  size: number,
  blockSize: number
): { readonly first: number; readonly end: number } => {
  const stop = Math.min(offset + length, size)
  const first = Math.floor(offset / blockSize)
  return { first, end: stop <= offset ? first : Math.floor((stop - 1) / blockSize) + 1 }
}

/**
 * Blocks wholly covered by a range, `[first, end)`: a partial first or last block is left out, except a last
 * block that is short because the device ends there.
 *
 * @since 0.1.0
 * @category arithmetic
 */
export const covered = (
  offset: number,
  length: number,
  size: number,
  blockSize: number
): { readonly first: number; readonly end: number } => {
  const stop = Math.min(offset + length, size)
  const first = Math.ceil(offset / blockSize)
  const end = stop === size ? count(size, blockSize) : Math.floor(stop / blockSize)
  return end > first ? { first, end } : { first, end: first }
}

/**
 * The byte range of block `block`: `[offset, offset + length)`, short for the last block.
 *
 * @since 0.1.0
 * @category arithmetic
 */
export const range = (
  block: number,
  size: number,
  blockSize: number
): { readonly offset: number; readonly length: number } => {
  const offset = block * blockSize
  return { offset, length: Math.max(0, Math.min(blockSize, size - offset)) }
}
