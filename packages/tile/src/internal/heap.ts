/**
 * A binary min-heap of timed entries, ordered by time then insertion order, for the virtual scheduler.
 */

/** One scheduled entry. */
export interface Entry {
  readonly at: number
  readonly seq: number
  run: (() => void) | undefined
}

const less = (a: Entry, b: Entry): boolean => a.at < b.at || (a.at === b.at && a.seq < b.seq)

/** A min-heap of entries. */
export class Heap {
  private readonly items: Array<Entry> = []

  get size(): number {
    return this.items.length
  }

  peek(): Entry | undefined {
    return this.items[0]
  }

  push(entry: Entry): void {
    const items = this.items
    items.push(entry)
    let i = items.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!less(items[i]!, items[parent]!)) break
      ;[items[i], items[parent]] = [items[parent]!, items[i]!]
      i = parent
    }
  }

  pop(): Entry | undefined {
    const items = this.items
    const top = items[0]
    const last = items.pop()
    if (top === undefined || last === undefined || items.length === 0) return top
    items[0] = last
    let i = 0
    for (;;) {
      const l = 2 * i + 1
      const r = l + 1
      let m = i
      if (l < items.length && less(items[l]!, items[m]!)) m = l
      if (r < items.length && less(items[r]!, items[m]!)) m = r
      if (m === i) break
      ;[items[i], items[m]] = [items[m]!, items[i]!]
      i = m
    }
    return top
  }
}
