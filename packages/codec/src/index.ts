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
export * as StreamParser from "./StreamParser.ts"
