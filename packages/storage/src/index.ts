/**
 * @since 0.1.0
 */
// @barrel: exports every public module of @tessera/storage as a namespace.

/**
 * @since 0.1.0
 */
export * as Bitfield from "./Bitfield.ts"

/**
 * @since 0.1.0
 */
export * as Blocks from "./Blocks.ts"

/**
 * @since 0.1.0
 */
export * as Device from "./Device.ts"

/**
 * @since 0.1.0
 */
export * as Memory from "./Memory.ts"

/**
 * @since 0.1.0
 */
export * as Provider from "./Provider.ts"

/**
 * @since 0.1.0
 */
export * as StorageError from "./StorageError.ts"
