/**
 * @since 0.1.0
 */
// @barrel: exports every public module of @tessera/codec as a namespace.

/**
 * @since 0.1.0
 */
export * as DecodeError from "./DecodeError.ts"

/**
 * @since 0.1.0
 */
export * as DnetConstants from "./DnetConstants.ts"

/**
 * @since 0.1.0
 */
export * as DnetJson from "./DnetJson.ts"

/**
 * @since 0.1.0
 */
export * as DnetPacket from "./DnetPacket.ts"

/**
 * @since 0.1.0
 */
export * as DnetStructs from "./DnetStructs.ts"

/**
 * @since 0.1.0
 */
export * as SiloCompression from "./SiloCompression.ts"

/**
 * @since 0.1.0
 */
export * as SiloFrame from "./SiloFrame.ts"

/**
 * @since 0.1.0
 */
export * as SiloJson from "./SiloJson.ts"

/**
 * @since 0.1.0
 */
export * as SiloPacket from "./SiloPacket.ts"

/**
 * @since 0.1.0
 */
export * as StreamParser from "./StreamParser.ts"
