/**
 * @since 0.1.0
 */
// @barrel: exports every public module of @tessera/storage as a namespace.

/**
 * @since 0.1.0
 */
export * as BinLog from "./BinLog.ts"

/**
 * @since 0.1.0
 */
export * as Bitfield from "./Bitfield.ts"

/**
 * @since 0.1.0
 */
export * as BlobStore from "./BlobStore.ts"

/**
 * @since 0.1.0
 */
export * as BlockOrder from "./BlockOrder.ts"

/**
 * @since 0.1.0
 */
export * as Blocks from "./Blocks.ts"

/**
 * @since 0.1.0
 */
export * as CopyOnWrite from "./CopyOnWrite.ts"

/**
 * @since 0.1.0
 */
export * as Device from "./Device.ts"

/**
 * @since 0.1.0
 */
export * as DeviceSpec from "./DeviceSpec.ts"

/**
 * @since 0.1.0
 */
export * as DirtyTracker from "./DirtyTracker.ts"

/**
 * @since 0.1.0
 */
export * as File from "./File.ts"

/**
 * @since 0.1.0
 */
export * as FileStore from "./FileStore.ts"

/**
 * @since 0.1.0
 */
export * as Lockable from "./Lockable.ts"

/**
 * @since 0.1.0
 */
export * as Memory from "./Memory.ts"

/**
 * @since 0.1.0
 */
export * as MemoryStore from "./MemoryStore.ts"

/**
 * @since 0.1.0
 */
export * as Metrics from "./Metrics.ts"

/**
 * @since 0.1.0
 */
export * as ObjectStore from "./ObjectStore.ts"

/**
 * @since 0.1.0
 */
export * as ObjectStoreSpec from "./ObjectStoreSpec.ts"

/**
 * @since 0.1.0
 */
export * as Provider from "./Provider.ts"

/**
 * @since 0.1.0
 */
export * as ReadOnlyGate from "./ReadOnlyGate.ts"

/**
 * @since 0.1.0
 */
export * as Sharded from "./Sharded.ts"

/**
 * @since 0.1.0
 */
export * as SparseFile from "./SparseFile.ts"

/**
 * @since 0.1.0
 */
export * as StorageError from "./StorageError.ts"

/**
 * @since 0.1.0
 */
export * as VolatilityMonitor from "./VolatilityMonitor.ts"

/**
 * @since 0.1.0
 */
export * as WaitingCache from "./WaitingCache.ts"

/**
 * @since 0.1.0
 */
export * as WriteCombinator from "./WriteCombinator.ts"
