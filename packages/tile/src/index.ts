/**
 * @since 0.1.0
 */
// @barrel: exports every public module of @tessera/tile as a namespace.

/**
 * @since 0.1.0
 */
export * as Link from "./Link.ts"

/**
 * @since 0.1.0
 */
export * as MemoryLink from "./MemoryLink.ts"

/**
 * @since 0.1.0
 */
export * as Scheduler from "./Scheduler.ts"

/**
 * @since 0.1.0
 */
export * as Tile from "./Tile.ts"

/**
 * @since 0.1.0
 */
export * as Topology from "./Topology.ts"
