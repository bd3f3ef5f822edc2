/**
 * An object store: byte strings under 64-byte keys (elliptics ids), written at offsets, appended to, read in
 * ranges, listed in key order. The backends of a dnet node implement it; `ObjectStore` is the service tag for
 * "the store this node serves", chosen at run time from `--backend`.
 *
 * Semantics (the elliptics backend contract, `specs/dnet.md` §3.4):
 * - `write` with `append` adds at the end; at offset 0 (without `append`) it replaces the whole object; at a
 *   larger offset it writes in place and extends the object (a gap reads as zeros). It creates the object when
 *   it does not exist.
 * - `read(key, offset, size)` returns `size` bytes from `offset`, or the rest when `size` is 0, cut at the end;
 *   an offset at or past the end returns no bytes (not an error). The bytes it returns are the caller's to read,
 *   not to change: a store may hand out a view of what it holds (the memory store does), and then never changes
 *   those bytes itself.
 * - `remove` reports whether the object existed; removing a missing object is not an error.
 * - `list` walks keys in unsigned lexicographic order within an inclusive `[start, end]` range.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as StorageError from "./StorageError.ts"

/**
 * Bytes in an object key.
 *
 * @since 0.1.0
 * @category constants
 */
export const KEY_SIZE = 64

/**
 * What the store knows about one object.
 *
 * @since 0.1.0
 * @category models
 */
export interface ObjectInfo {
  readonly key: Uint8Array
  readonly size: number
  /** Last modification, milliseconds since the epoch. */
  readonly modified: number
}

/**
 * How a write places its bytes.
 *
 * @since 0.1.0
 * @category models
 */
export interface WriteOptions {
  /** Byte offset in the object (ignored with `append`); default 0, which replaces the object. */
  readonly offset?: number
  /** Add the bytes at the end of the object. */
  readonly append?: boolean
  /**
   * The caller gives `data` up: a store that keeps objects in memory may keep these very bytes as the object
   * instead of a copy (see `Store.spare`). The caller must not use `data`, or the memory it lies in, afterwards.
   */
  readonly adopt?: boolean
}

/**
 * Which keys `list` returns.
 *
 * @since 0.1.0
 * @category models
 */
export interface ListOptions {
  /** Smallest key, inclusive; default all zeros. */
  readonly start?: Uint8Array
  /** Largest key, inclusive; default all 0xff. */
  readonly end?: Uint8Array
  /** Skip this many matching keys first (the LIMIT start of READ_RANGE). */
  readonly skip?: number
  /** Return at most this many (the LIMIT count); default all. */
  readonly limit?: number
}

/**
 * Totals for the whole store.
 *
 * @since 0.1.0
 * @category models
 */
export interface StoreStats {
  readonly objects: number
  /** Bytes of object data (not counting on-disk overhead). */
  readonly bytes: number
}

/**
 * The operations of an object store.
 *
 * @since 0.1.0
 * @category models
 */
export interface Store {
  readonly name: string
  readonly write: (
    key: Uint8Array,
    data: Uint8Array,
    options?: WriteOptions
  ) => Effect.Effect<ObjectInfo, StorageError.StorageError>
  readonly read: (
    key: Uint8Array,
    offset?: number,
    size?: number
  ) => Effect.Effect<Uint8Array, StorageError.StorageError>
  readonly remove: (key: Uint8Array) => Effect.Effect<boolean, StorageError.StorageError>
  readonly stat: (key: Uint8Array) => Effect.Effect<ObjectInfo, StorageError.StorageError>
  readonly list: (options?: ListOptions) => Effect.Effect<ReadonlyArray<ObjectInfo>, StorageError.StorageError>
  readonly stats: Effect.Effect<StoreStats, StorageError.StorageError>
  /** Makes acknowledged writes durable (fsync for disk backends). */
  readonly flush: Effect.Effect<void, StorageError.StorageError>
  /**
   * Memory of at least `size` bytes that the store no longer needs (an object's old bytes, replaced by an
   * adopting write), for a caller to receive the next object into and write with `adopt`: big objects then
   * move without a copy and without fresh memory. `undefined` when there is none; only stores that keep
   * objects in memory have it.
   */
  readonly spare?: ((size: number) => Uint8Array | undefined) | undefined
  /**
   * Gives back a view `read` returned, once the caller no longer uses it: a store that hands out views of what
   * it holds may then change or reuse that memory again. Calling it is optional (an unreleased view only keeps
   * its memory from being reused); only stores that hand out views have it.
   */
  readonly release?: ((bytes: Uint8Array) => void) | undefined
  /**
   * `write` done at once, by a store that can finish small writes synchronously (in memory, or into the page
   * cache): the written object's info, the error `write` would fail with, or `undefined` when this write cannot
   * be done now (too big, or other work on the store in the way), in which case nothing was done and the caller
   * uses `write`. Lets a server answer a request inside the read that brought it, with no fiber or
   * Effect steps per request. Times come from the `Clock` the store was made with.
   */
  readonly writeNow?:
    | ((
      key: Uint8Array,
      data: Uint8Array,
      options?: WriteOptions
    ) => ObjectInfo | StorageError.StorageError | undefined)
    | undefined
  /** `read` done at once, as `writeNow` is `write`; the bytes are as `read` gives them (see `release`). */
  readonly readNow?:
    | ((key: Uint8Array, offset?: number, size?: number) => Uint8Array | StorageError.StorageError | undefined)
    | undefined
}

/**
 * The object store a node serves.
 *
 * @since 0.1.0
 * @category services
 */
export class ObjectStore extends Context.Service<ObjectStore, Store>()("@tessera/storage/ObjectStore") {}

/**
 * The byte count a read returns for an object of `stored` bytes (elliptics `dnet_backend_check_get_size`):
 * nothing at or past the end, the rest for size 0, otherwise at most `size`.
 *
 * @since 0.1.0
 * @category ranges
 */
export const readLength = (stored: number, offset: number, size: number): number =>
  offset >= stored ? 0 : size === 0 ? stored - offset : Math.min(size, stored - offset)

/**
 * Unsigned lexicographic order of keys, as elliptics compares ids.
 *
 * @since 0.1.0
 * @category ordering
 */
export const compareKeys = (a: Uint8Array, b: Uint8Array): number => {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i]! - b[i]!
  }
  return a.length - b.length
}
