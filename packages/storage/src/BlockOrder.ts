/**
 * Block orders decide which block the migrator sends next. An order holds the set of blocks still to be sent
 * ("available"); `next` hands one out and removes it, and returns `Finish` when none is left.
 *
 * Orders chain: each may have a `next` order behind it, and `add`, `remove` and `addAll` go down the chain, so
 * every order in it agrees on what is still available. An order that hands a block out removes it downstream;
 * an order with nothing of its own to offer asks the next one. The usual chain is
 * `PriorityBlockOrder → VolatilityMonitor`: blocks the destination asked for first, then the least volatile.
 *
 * The state is synchronous and the API is plain functions, like `Bitfield`: an order is an in-memory structure
 * updated in single steps (JavaScript runs one fiber at a time), so callers use it from `Effect.sync` with no
 * locking. Block numbers outside `[0, blocks)` are ignored, because they come from peers (NeedAt, DontNeedAt).
 *
 * @since 0.1.0
 */
import { Bitfield } from "./Bitfield.ts"

/**
 * What kind of work a handed-out block is, which picks the migrator's concurrency limit for it (Silo's values).
 *
 * @since 0.1.0
 * @category models
 */
export const BlockType = {
  /** No particular kind: the limit that applies when a kind has none of its own. */
  Any: -1,
  /** A block sent in the bulk copy. */
  Standard: 0,
  /** A block re-sent because it was written after it was sent. */
  Dirty: 1,
  /** A block the destination is waiting for. */
  Priority: 2
} as const

/**
 * One of the `BlockType` values.
 *
 * @since 0.1.0
 * @category models
 */
export type BlockType = typeof BlockType[keyof typeof BlockType]

/**
 * A handed-out block and its kind; `block` is -1 for `Finish`.
 *
 * @since 0.1.0
 * @category models
 */
export interface BlockInfo {
  readonly block: number
  readonly type: BlockType
}

/**
 * What `next` returns when no block is left. Only `block` (-1) is meaningful; `type` is Silo's zero value.
 *
 * @since 0.1.0
 * @category constants
 */
export const Finish: BlockInfo = { block: -1, type: BlockType.Standard }

/**
 * An order over the blocks still to be sent.
 *
 * @since 0.1.0
 * @category models
 */
export interface BlockOrder {
  /** Makes every block available, here and down the chain. */
  readonly addAll: () => void
  /** Makes `block` available, here and down the chain. */
  readonly add: (block: number) => void
  /** Takes `block` out (it will not be handed out), here and down the chain. */
  readonly remove: (block: number) => void
  /** Hands out the next block and takes it out everywhere in the chain, or returns `Finish`. */
  readonly next: () => BlockInfo
}

/**
 * Creates an order over `blocks` blocks, all unavailable, that hands out the lowest available block (type
 * `Standard`) and asks `next` once it has none.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeAny = (blocks: number, next?: BlockOrder): BlockOrder => {
  const available = new Bitfield(blocks)
  // No block below `lowest` is available, so handing out every block costs one pass over the bits, not one
  // pass per block.
  let lowest = 0
  const inside = (block: number) => block >= 0 && block < blocks
  return {
    addAll: () => {
      available.setAll()
      lowest = 0
      next?.addAll()
    },
    add: (block) => {
      if (!inside(block)) return
      available.set(block)
      lowest = Math.min(lowest, block)
      next?.add(block)
    },
    remove: (block) => {
      if (!inside(block)) return
      available.clear(block)
      next?.remove(block)
    },
    next: () => {
      const block = available.next(lowest)
      if (block !== -1) {
        lowest = block + 1
        available.clear(block)
        next?.remove(block)
        return { block, type: BlockType.Standard }
      }
      return handOutFrom(next, available)
    }
  }
}

/**
 * An order that hands out the blocks the destination asked for first.
 *
 * @since 0.1.0
 * @category models
 */
export interface PriorityBlockOrder extends BlockOrder {
  /**
   * Asks for `block` to be sent soon. Only a block still available counts, and only its first request: blocks
   * come out in the order they were first asked for.
   */
  readonly prioritise: (block: number) => void
}

/**
 * Creates an order over `blocks` blocks, all unavailable, that hands out prioritised blocks (type `Priority`),
 * earliest request first, and otherwise whatever `next` hands out.
 *
 * A request is forgotten when its block is handed out or removed, so a block that is added again later (for
 * example to be re-sent) needs a new request to jump the queue.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makePriority = (blocks: number, next: BlockOrder): PriorityBlockOrder => {
  const available = new Bitfield(blocks)
  // A Map iterates in insertion order, so its first key is the earliest request; requests leave it as soon as
  // their block stops being available, so every key in it is available.
  const requested = new Map<number, true>()
  const inside = (block: number) => block >= 0 && block < blocks
  return {
    addAll: () => {
      available.setAll()
      next.addAll()
    },
    add: (block) => {
      if (!inside(block)) return
      available.set(block)
      next.add(block)
    },
    remove: (block) => {
      if (!inside(block)) return
      available.clear(block)
      requested.delete(block)
      next.remove(block)
    },
    prioritise: (block) => {
      if (inside(block) && available.has(block) && !requested.has(block)) requested.set(block, true)
    },
    next: () => {
      const earliest = requested.keys().next()
      if (earliest.done === true) return handOutFrom(next, available)
      const block = earliest.value
      requested.delete(block)
      available.clear(block)
      next.remove(block)
      return { block, type: BlockType.Priority }
    }
  }
}

/** Asks `next` for a block and takes the block out of this order's own set too. */
const handOutFrom = (next: BlockOrder | undefined, available: Bitfield): BlockInfo => {
  if (next === undefined) return Finish
  const info = next.next()
  if (info.block !== -1) available.clear(info.block)
  return info
}
