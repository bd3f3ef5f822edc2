/**
 * What every object store backend checks and computes the same way: key and range validation, where a write puts
 * its bytes (the elliptics WRITE rules of `specs/dnet.md` §3.4), and the errors for a missing object.
 */
import * as Effect from "effect/Effect"
import * as Hex from "effect/encoding/Hex"
import * as Result from "effect/Result"
import { KEY_SIZE, type ListOptions, type ObjectInfo, type Store, type WriteOptions } from "../ObjectStore.ts"
import * as StorageError from "../StorageError.ts"
import type { Lifecycle } from "./lifecycle.ts"

/** Lowercase hex of a key: the file backend's file name and the map key of the in-memory indexes. */
export const keyHex = (key: Uint8Array): string => Hex.encode(key)

/** Lowercase hex names of whole keys, as the file backend names its objects. */
export const KEY_HEX = new RegExp(`^[0-9a-f]{${2 * KEY_SIZE}}$`)

/** The key a hex name stands for; only called on names that matched `KEY_HEX`, so decoding cannot fail. */
export const keyFromHex = (hex: string): Uint8Array => Result.getOrThrow(Hex.decode(hex))

const isCount = (n: number): boolean => Number.isSafeInteger(n) && n >= 0

/** Why `key` is not a full elliptics id, if it is not. */
export const keyProblem = (store: string, key: Uint8Array): StorageError.StorageError | undefined =>
  key.length === KEY_SIZE ? undefined : StorageError.make(
    store,
    new StorageError.Unsupported({ detail: `object keys are ${KEY_SIZE} bytes, got ${key.length}` })
  )

/**
 * Why a write cannot be done, if it cannot: the key is not valid, or (without `append`) the offset is not a count
 * whose end stays a safe integer.
 */
export const writeProblem = (
  store: string,
  key: Uint8Array,
  data: Uint8Array,
  options: WriteOptions | undefined
): StorageError.StorageError | undefined => {
  const offset = options?.offset ?? 0
  if (options?.append || (isCount(offset) && isCount(offset + data.length))) return keyProblem(store, key)
  return StorageError.make(
    store,
    new StorageError.OutOfRange({ offset, length: data.length, size: Number.MAX_SAFE_INTEGER })
  )
}

/** Why a read cannot be done, if it cannot: the key is not valid, or offset or size is not a count. */
export const readProblem = (
  store: string,
  key: Uint8Array,
  offset: number,
  size: number
): StorageError.StorageError | undefined =>
  isCount(offset) && isCount(size)
    ? keyProblem(store, key)
    : StorageError.make(store, new StorageError.OutOfRange({ offset, length: size, size: 0 }))

/** The outcome of a synchronous operation as an effect. */
export const fromOutcome = <A>(outcome: A | StorageError.StorageError): Effect.Effect<A, StorageError.StorageError> =>
  outcome instanceof StorageError.StorageError ? Effect.fail(outcome) : Effect.succeed(outcome)

/** Fails unless `key` is a full elliptics id. */
export const checkKey = (store: string, key: Uint8Array): Effect.Effect<void, StorageError.StorageError> =>
  fromOutcome(keyProblem(store, key))

/** `writeProblem` as an effect. */
export const checkWrite = (
  store: string,
  key: Uint8Array,
  data: Uint8Array,
  options: WriteOptions | undefined
): Effect.Effect<void, StorageError.StorageError> => fromOutcome(writeProblem(store, key, data, options))

/** `readProblem` as an effect (any count: reads past the end return nothing). */
export const checkRead = (
  store: string,
  key: Uint8Array,
  offset: number,
  size: number
): Effect.Effect<void, StorageError.StorageError> => fromOutcome(readProblem(store, key, offset, size))

/** Where a write lands in an object of `stored` bytes: its offset, the size afterwards, and whether old bytes stay. */
export interface Placement {
  readonly at: number
  readonly size: number
  /** False for a replacing write (offset 0 without `append`): nothing of the old object survives. */
  readonly keep: boolean
}

/** Places a write of `length` bytes into an object of `stored` bytes (0 for a missing object). */
export const place = (stored: number, length: number, options: WriteOptions | undefined): Placement => {
  if (options?.append) return { at: stored, size: stored + length, keep: true }
  const at = options?.offset ?? 0
  return at === 0 ? { at: 0, size: length, keep: false } : { at, size: Math.max(stored, at + length), keep: true }
}

/** A validated `ListOptions`: the inclusive key range and the LIMIT window. */
export interface ListRange {
  readonly start: Uint8Array
  readonly end: Uint8Array
  readonly skip: number
  readonly limit: number
}

const lowest = new Uint8Array(KEY_SIZE)
const highest = new Uint8Array(KEY_SIZE).fill(0xff)

/** Fills in the defaults of `options`; a negative or fractional skip or limit is `OutOfRange`. */
export const checkList = (
  store: string,
  options: ListOptions | undefined
): Effect.Effect<ListRange, StorageError.StorageError> => {
  const skip = options?.skip ?? 0
  const limit = options?.limit ?? Number.MAX_SAFE_INTEGER
  return isCount(skip) && isCount(limit)
    ? Effect.succeed({ start: options?.start ?? lowest, end: options?.end ?? highest, skip, limit })
    : Effect.fail(StorageError.make(store, new StorageError.OutOfRange({ offset: skip, length: limit, size: 0 })))
}

/** The error for a read or stat of a key that holds no object. */
export const notFound = (store: string, key: Uint8Array): StorageError.StorageError =>
  StorageError.make(store, new StorageError.NotFound({ key: keyHex(key) }))

/** An `ObjectInfo` with its own copy of the key, so callers cannot change a key held by an index. */
export const info = (key: Uint8Array, size: number, modified: number): ObjectInfo => ({
  key: key.slice(),
  size,
  modified
})

/** The operations of a store without its name, each to be run behind the store's lifecycle guard. */
export type Operations = Omit<Store, "name">

/** Wraps every operation of a store in its lifecycle guard: calls after the scope closed fail with Closed. */
export const guarded = (name: string, lifecycle: Lifecycle, operations: Operations): Store => ({
  name,
  write: (key, data, options) => lifecycle.guard(operations.write(key, data, options)),
  read: (key, offset, size) => lifecycle.guard(operations.read(key, offset, size)),
  remove: (key) => lifecycle.guard(operations.remove(key)),
  stat: (key) => lifecycle.guard(operations.stat(key)),
  list: (options) => lifecycle.guard(operations.list(options)),
  stats: lifecycle.guard(operations.stats),
  flush: lifecycle.guard(operations.flush)
})
