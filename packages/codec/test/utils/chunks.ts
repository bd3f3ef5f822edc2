/** Cuts `bytes` at the given points (taken modulo its length + 1), as views: the chunk boundaries of a stream. */
export const split = (bytes: Uint8Array, cuts: ReadonlyArray<number>): Array<Uint8Array> => {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].toSorted((a, b) => a - b)
  const parts: Array<Uint8Array> = []
  let last = 0
  for (const p of points) {
    parts.push(bytes.subarray(last, p))
    last = p
  }
  parts.push(bytes.subarray(last))
  return parts
}
