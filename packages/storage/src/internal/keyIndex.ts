/**
 * An in-memory map from object keys to values that can also walk a key range in order: a hash map for point
 * lookups plus an array kept sorted by `compareKeys` for `list`. Insertions and removals of new keys shift the
 * array (a memmove of one pointer per key), which stays cheap up to millions of keys and keeps range walks a
 * binary search plus a slice.
 */
import { Buffer } from "node:buffer"
import { compareKeys } from "../ObjectStore.ts"
import type { ListRange } from "./objectStore.ts"

interface Slot<V> {
  readonly key: Uint8Array
  value: V
}

/** The index operations; keys are compared with `compareKeys`. */
export interface KeyIndex<V> {
  readonly size: () => number
  readonly get: (key: Uint8Array) => V | undefined
  /** Inserts or replaces; returns the value it replaced. */
  readonly set: (key: Uint8Array, value: V) => V | undefined
  /** Removes; returns the value it removed. */
  readonly remove: (key: Uint8Array) => V | undefined
  /** The values whose keys lie in `[start, end]`, in key order, after skipping `skip`, at most `limit`. */
  readonly range: (range: ListRange) => Array<V>
  /** A snapshot of every value, in no particular order. */
  readonly values: () => Array<V>
}

/** The map key of an object key: its bytes as a one-byte string, several times cheaper to make than hex. */
const mapKey = (key: Uint8Array): string => Buffer.from(key.buffer, key.byteOffset, key.length).toString("latin1")

/** Creates an empty index. */
export const make = <V>(): KeyIndex<V> => {
  const slots = new Map<string, Slot<V>>()
  const sorted: Array<Slot<V>> = []

  // The first position whose key is not below `key`.
  const lowerBound = (key: Uint8Array): number => {
    let low = 0
    let high = sorted.length
    while (low < high) {
      const middle = (low + high) >>> 1
      if (compareKeys(sorted[middle]!.key, key) < 0) low = middle + 1
      else high = middle
    }
    return low
  }

  return {
    size: () => slots.size,
    get: (key) => slots.get(mapKey(key))?.value,
    set: (key, value) => {
      const name = mapKey(key)
      const slot = slots.get(name)
      if (slot) {
        const previous = slot.value
        slot.value = value
        return previous
      }
      const fresh = { key: key.slice(), value }
      slots.set(name, fresh)
      sorted.splice(lowerBound(key), 0, fresh)
      return undefined
    },
    remove: (key) => {
      const name = mapKey(key)
      const slot = slots.get(name)
      if (!slot) return undefined
      slots.delete(name)
      sorted.splice(lowerBound(key), 1)
      return slot.value
    },
    range: ({ end, limit, skip, start }) => {
      const out: Array<V> = []
      for (let i = lowerBound(start) + skip; i < sorted.length && out.length < limit; i++) {
        const slot = sorted[i]!
        if (compareKeys(slot.key, end) > 0) break
        out.push(slot.value)
      }
      return out
    },
    values: () => Array.from(slots.values(), (slot) => slot.value)
  }
}
