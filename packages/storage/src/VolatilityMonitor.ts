/**
 * The volatility monitor watches the writer path of a device and orders blocks for migration by how often they
 * were written lately: a block written many times in the last `expiry` is likely to be written again, so
 * sending it early would only mean sending it twice. It is both a device (wrapping the writer path) and a
 * `BlockOrder` (usually the last one in the chain, behind a `PriorityBlockOrder`).
 *
 * For every successful write, each covered block that is still available gets the write's time added to its
 * history, and a device-wide count goes up by one per covered block. A block's volatility is the number of
 * writes in its history that are younger than `expiry`. `next` hands out the lowest available block with
 * volatility 0, otherwise the least volatile block (the highest such block on a tie), and forgets its history.
 *
 * Histories are kept only for available blocks, in time order, and expired entries are dropped from the front
 * when the block is next written; Silo instead reuses an expired slot, which counts the same. Time comes from
 * the `Clock` of the context the monitor was made in, so tests drive it with `TestClock`.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { Bitfield } from "./Bitfield.ts"
import * as BlockOrder from "./BlockOrder.ts"
import * as Blocks from "./Blocks.ts"
import * as BitRange from "./internal/bitRange.ts"
import { type BlockDevice, wrap } from "./Provider.ts"

/**
 * A device that records how volatile its blocks are, and the block order that follows from it.
 *
 * @since 0.1.0
 * @category models
 */
export interface VolatilityMonitor extends BlockDevice, BlockOrder.BlockOrder {
  /** Writes to `block` younger than `expiry` since it became available; 0 for an unavailable block. */
  readonly volatility: (block: number) => number
  /** Block writes seen since the monitor was made: each write counts every block it covers. */
  readonly blockWrites: () => number
}

/**
 * Wraps `inner`, tracking blocks of `blockSize` bytes over a window of `expiry`. Every block starts unavailable;
 * call `addAll` before migrating.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fn("VolatilityMonitor.make")(
  function*(inner: BlockDevice, blockSize: number, expiry: Duration.Input) {
    const clock = yield* Clock.Clock
    const expiryMillis = Duration.toMillis(expiry)
    const blocks = Blocks.count(inner.size, blockSize)
    const available = new Bitfield(blocks)
    // Write times per available block, oldest first.
    const histories = new Map<number, Array<number>>()
    let blockWrites = 0

    /** How many entries at the front of `history` are at least `expiry` old. */
    const expiredCount = (history: ReadonlyArray<number>, now: number): number => {
      let expired = 0
      while (expired < history.length && now - history[expired]! >= expiryMillis) expired++
      return expired
    }

    const volatilityAt = (block: number, now: number): number => {
      const history = histories.get(block)
      return history === undefined ? 0 : history.length - expiredCount(history, now)
    }

    const record = (offset: number, written: number) => {
      const { first, end } = Blocks.touched(offset, written, inner.size, blockSize)
      blockWrites += end - first
      const now = clock.currentTimeMillisUnsafe()
      BitRange.forEachSet(available, first, end, (block) => {
        const history = histories.get(block)
        if (history === undefined) {
          histories.set(block, [now])
        } else {
          const expired = expiredCount(history, now)
          if (expired > 0) history.splice(0, expired)
          history.push(now)
        }
      })
    }

    const inside = (block: number) => block >= 0 && block < blocks
    // No block below `lowest` is available: the scan for a quiet block starts there, not at 0.
    let lowest = 0

    const takeOut = (block: number) => {
      available.clear(block)
      histories.delete(block)
    }

    const monitor: VolatilityMonitor = {
      ...wrap(inner, `volatility-monitor(${inner.name})`, {
        writeAt: (data, offset) =>
          Effect.map(inner.writeAt(data, offset), (written) => {
            record(offset, written)
            return written
          })
      }),
      volatility: (block) => volatilityAt(block, clock.currentTimeMillisUnsafe()),
      blockWrites: () => blockWrites,
      addAll: () => {
        available.setAll()
        lowest = 0
      },
      add: (block) => {
        if (!inside(block)) return
        available.set(block)
        lowest = Math.min(lowest, block)
      },
      remove: (block) => {
        if (inside(block)) takeOut(block)
      },
      next: () => {
        const now = clock.currentTimeMillisUnsafe()
        let chosen = -1
        let least = Number.POSITIVE_INFINITY
        const first = available.next(lowest)
        lowest = first === -1 ? blocks : first
        for (let block = first; block !== -1; block = available.next(block + 1)) {
          const volatility = volatilityAt(block, now)
          if (volatility === 0) {
            chosen = block
            break
          }
          // `<=` so that, among equally volatile blocks, the highest one wins (as in Silo).
          if (volatility <= least) {
            least = volatility
            chosen = block
          }
        }
        if (chosen === -1) return BlockOrder.Finish
        takeOut(chosen)
        return { block: chosen, type: BlockOrder.BlockType.Standard }
      }
    }
    return monitor
  }
)
