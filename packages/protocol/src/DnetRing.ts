/**
 * Id rings per replica group (`specs/dnet.md` §4): every node owns some 64-byte ids on the ring of its group,
 * and a key belongs to the node whose id is the greatest id at or below the key; a key below every id wraps to
 * the node with the greatest id. Each group is a full copy of the key space, so a key has one owner per group.
 *
 * Keys are SHA-512 of the object's name (`idOf`), compared as unsigned bytes. A `Ring` is an immutable value
 * built from route entries (what ROUTE_LIST and JOIN carry); a node or client rebuilds it when its routes change.
 *
 * @since 0.1.0
 */
import { ID_SIZE } from "@tessera/codec/DnetConstants"
import { createHash, randomBytes } from "node:crypto"

/**
 * One node as a route table knows it: where to dial it, its group and its ring ids.
 *
 * @since 0.1.0
 * @category models
 */
export interface Route {
  /** A transport address string (`tcp://127.0.0.1:1025`). */
  readonly address: string
  readonly group: number
  readonly ids: ReadonlyArray<Uint8Array>
}

/**
 * One id on a ring and the node that owns it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Point {
  readonly id: Uint8Array
  readonly address: string
}

/**
 * The rings of every group, each sorted by id.
 *
 * @since 0.1.0
 * @category models
 */
export interface Ring {
  readonly groups: ReadonlyMap<number, ReadonlyArray<Point>>
}

/**
 * Unsigned lexicographic order of ids (`dnet_id_cmp_str`).
 *
 * @since 0.1.0
 * @category ordering
 */
export const compareIds = (a: Uint8Array, b: Uint8Array): number => Buffer.compare(a, b)

/**
 * Builds the rings of a set of routes. A route without ids is never routed to (a client, an "empty state").
 * When two nodes claim the same id in a group, the one with the smaller address keeps it, so every holder of
 * the same routes builds the same ring.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (routes: Iterable<Route>): Ring => {
  const groups = new Map<number, Array<Point>>()
  for (const route of routes) {
    let points = groups.get(route.group)
    if (points === undefined) groups.set(route.group, points = [])
    for (const id of route.ids) points.push({ id, address: route.address })
  }
  for (const [group, points] of groups) {
    points.sort((a, b) => compareIds(a.id, b.id) || (a.address < b.address ? -1 : a.address > b.address ? 1 : 0))
    const unique = points.filter((point, i) => i === 0 || compareIds(points[i - 1]!.id, point.id) !== 0)
    if (unique.length === 0) groups.delete(group)
    else groups.set(group, unique)
  }
  return { groups }
}

/**
 * The address of the node that owns `key` in `group`, or `undefined` when no node serves the group.
 *
 * @since 0.1.0
 * @category routing
 */
export const owner = (ring: Ring, group: number, key: Uint8Array): string | undefined => {
  const points = ring.groups.get(group)
  if (points === undefined || points.length === 0) return undefined
  // Binary search for the last point whose id is <= key.
  let lo = 0
  let hi = points.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (compareIds(points[mid]!.id, key) <= 0) lo = mid + 1
    else hi = mid
  }
  return (lo === 0 ? points[points.length - 1]! : points[lo - 1]!).address
}

/**
 * The groups that have at least one node, in ascending order.
 *
 * @since 0.1.0
 * @category getters
 */
export const groups = (ring: Ring): ReadonlyArray<number> => [...ring.groups.keys()].toSorted((a, b) => a - b)

/**
 * The distinct node addresses of a group, in ring order of their first id.
 *
 * @since 0.1.0
 * @category getters
 */
export const nodes = (ring: Ring, group: number): ReadonlyArray<string> => [
  ...new Set((ring.groups.get(group) ?? []).map((point) => point.address))
]

/**
 * The id of an object name: SHA-512 of its UTF-8 bytes (elliptics without a namespace).
 *
 * @since 0.1.0
 * @category constructors
 */
export const idOf = (name: string | Uint8Array): Uint8Array =>
  new Uint8Array(createHash("sha512").update(name).digest())

/**
 * `count` random ring ids for a new node.
 *
 * @since 0.1.0
 * @category constructors
 */
export const randomIds = (count: number): ReadonlyArray<Uint8Array> =>
  Array.from({ length: count }, () => new Uint8Array(randomBytes(ID_SIZE)))
