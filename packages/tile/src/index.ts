/**
 * @since 0.1.0
 */
// @barrel: exports every public module of @tessera/tile as a namespace.

/**
 * @since 0.1.0
 */
export * as Cdm from "./Cdm.ts"

/**
 * @since 0.1.0
 */
export * as CdmError from "./CdmError.ts"

/**
 * @since 0.1.0
 */
export * as CdmKeys from "./CdmKeys.ts"

/**
 * @since 0.1.0
 */
export * as CdmRelease from "./CdmRelease.ts"

/**
 * @since 0.1.0
 */
export * as Flash from "./Flash.ts"

/**
 * @since 0.1.0
 */
export * as Grid from "./Grid.ts"

/**
 * @since 0.1.0
 */
export * as GridSvg from "./GridSvg.ts"

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
export * as Mfz from "./Mfz.ts"

/**
 * @since 0.1.0
 */
export * as Scheduler from "./Scheduler.ts"

/**
 * @since 0.1.0
 */
export * as SocketLink from "./SocketLink.ts"

/**
 * @since 0.1.0
 */
export * as Tile from "./Tile.ts"

/**
 * @since 0.1.0
 */
export * as TileDaemon from "./TileDaemon.ts"

/**
 * @since 0.1.0
 */
export * as Topology from "./Topology.ts"
