/**
 * How far a migration has got (Silo's `MigrationProgress`): what a progress line, a dashboard or a test reads.
 *
 * @since 0.1.0
 */

/**
 * A snapshot of a migration's counters. Block counts are in units of the migration block size.
 *
 * @since 0.1.0
 * @category models
 */
export interface MigrationProgress {
  /** The migration block size in bytes. */
  readonly blockSize: number
  /** Blocks of the device. */
  readonly totalBlocks: number
  /** Blocks sent at least once (or marked with `setMigratedBlock`); never goes down. */
  readonly migratedBlocks: number
  /** `migratedBlocks` as a percentage of `totalBlocks` (100 for an empty device). */
  readonly migratedBlocksPerc: number
  /**
   * Blocks whose latest copy is at the destination: sent, and not handed to `migrateDirty` since. Goes down
   * when dirty blocks are handed over and back up as they are re-sent.
   */
  readonly readyBlocks: number
  /** `readyBlocks` as a percentage of `totalBlocks` (100 for an empty device). */
  readonly readyBlocksPerc: number
  /** Blocks being read or written right now. */
  readonly activeBlocks: number
  /** Blocks whose recent write the destination was asked to cancel before a re-send (`cancelWrites`). */
  readonly totalCanceledBlocks: number
  /** Block writes to the destination that succeeded, re-sends included. */
  readonly totalMigratedBlocks: number
  /** Dirty blocks skipped because a re-send of the same block was still waiting to start (`dedupeWrites`). */
  readonly totalDuplicatedBlocks: number
}

/**
 * A percentage of `total`, 100 when there is nothing to count.
 *
 * @since 0.1.0
 * @category constructors
 */
export const percent = (count: number, total: number): number => total === 0 ? 100 : (count * 100) / total
