/**
 * Splits a byte stream into lines while keeping each line's byte offset in the input, so an error can say
 * exactly where the bad line starts.
 *
 * @since 0.1.0
 */

/**
 * One line of input without its line break.
 *
 * @since 0.1.0
 * @category models
 */
export interface Line {
  readonly offset: number
  readonly text: string
}

/**
 * A stateful splitter: push chunks, get the lines they complete; `end` returns the unterminated last line.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeSplitter = () => {
  const decoder = new TextDecoder()
  let pending: Array<Uint8Array> = []
  let pendingLength = 0
  let offset = 0

  const lineOf = (tail: Uint8Array): Line => {
    const parts = pending.length === 0 ? tail : joinWith(pending, pendingLength, tail)
    const line: Line = { offset, text: decoder.decode(parts).replace(/\r$/, "") }
    offset += parts.length + 1
    pending = []
    pendingLength = 0
    return line
  }

  return {
    push: (chunk: Uint8Array): Array<Line> => {
      const lines: Array<Line> = []
      let start = 0
      for (let newline = chunk.indexOf(10); newline !== -1; newline = chunk.indexOf(10, start)) {
        lines.push(lineOf(chunk.subarray(start, newline)))
        start = newline + 1
      }
      if (start < chunk.length) {
        pending.push(chunk.subarray(start))
        pendingLength += chunk.length - start
      }
      return lines
    },
    end: (): Array<Line> => (pendingLength > 0 ? [lineOf(new Uint8Array(0))] : [])
  }
}

const joinWith = (parts: ReadonlyArray<Uint8Array>, length: number, tail: Uint8Array): Uint8Array => {
  const out = new Uint8Array(length + tail.length)
  let at = 0
  for (const part of parts) {
    out.set(part, at)
    at += part.length
  }
  out.set(tail, at)
  return out
}
