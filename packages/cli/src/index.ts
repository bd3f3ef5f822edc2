/**
 * @since 0.1.0
 */
// @barrel: exports every public module of @tessera/cli as a namespace.

/**
 * @since 0.1.0
 */
export * as CircuitSecurity from "./CircuitSecurity.ts"

/**
 * @since 0.1.0
 */
export * as CliFailure from "./CliFailure.ts"

/**
 * @since 0.1.0
 */
export * as Craft from "./Craft.ts"

/**
 * @since 0.1.0
 */
export * as Demo from "./Demo.ts"

/**
 * @since 0.1.0
 */
export * as DeviceCommand from "./DeviceCommand.ts"

/**
 * @since 0.1.0
 */
export * as Dissector from "./Dissector.ts"

/**
 * @since 0.1.0
 */
export * as Inspect from "./Inspect.ts"

/**
 * @since 0.1.0
 */
export * as JsonLine from "./JsonLine.ts"

/**
 * @since 0.1.0
 */
export * as Lines from "./Lines.ts"

/**
 * @since 0.1.0
 */
export * as Main from "./Main.ts"

/**
 * @since 0.1.0
 */
export * as Migrate from "./Migrate.ts"

/**
 * @since 0.1.0
 */
export * as Progress from "./Progress.ts"

/**
 * @since 0.1.0
 */
export * as Source from "./Source.ts"

/**
 * @since 0.1.0
 */
export * as Tessera from "./Tessera.ts"
