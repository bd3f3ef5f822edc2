import { assert, describe, it } from "@effect/vitest"
import fc from "fast-check"
import * as BlockOrder from "../src/BlockOrder.ts"

/** Hands out blocks until `Finish` (with a bound, so a broken order fails instead of looping). */
const drain = (order: BlockOrder.BlockOrder, limit: number): Array<BlockOrder.BlockInfo> => {
  const out: Array<BlockOrder.BlockInfo> = []
  for (let i = 0; i <= limit; i++) {
    const info = order.next()
    if (info.block === -1) return out
    out.push(info)
  }
  assert.fail(`more than ${limit} blocks handed out`)
}

/** Records what reaches the end of a chain. */
const recorder = (): BlockOrder.BlockOrder & { readonly calls: Array<string> } => {
  const calls: Array<string> = []
  return {
    calls,
    addAll: () => calls.push("addAll"),
    add: (block) => calls.push(`add ${block}`),
    remove: (block) => calls.push(`remove ${block}`),
    next: () => BlockOrder.Finish
  }
}

const scenario = fc.integer({ min: 1, max: 150 }).chain((blocks) =>
  fc.tuple(
    fc.constant(blocks),
    fc.boolean(),
    fc.array(
      fc.oneof(
        fc.record({ op: fc.constant("add" as const), block: fc.nat({ max: blocks - 1 }) }),
        fc.record({ op: fc.constant("remove" as const), block: fc.nat({ max: blocks - 1 }) }),
        fc.record({ op: fc.constant("prioritise" as const), block: fc.nat({ max: blocks - 1 }) }),
        fc.record({ op: fc.constant("next" as const) })
      ),
      { maxLength: 300 }
    )
  )
)

describe("BlockOrder", () => {
  it("AnyBlockOrder hands out every block once, lowest first, then Finish", () => {
    const order = BlockOrder.makeAny(10)
    order.addAll()
    assert.deepStrictEqual(drain(order, 10).map((info) => info.block), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    assert.isTrue(drain(order, 10).every((info) => info.type === BlockOrder.BlockType.Standard))
    assert.deepStrictEqual(order.next(), BlockOrder.Finish)
  })

  it("a removed block is never handed out", () => {
    const order = BlockOrder.makeAny(5)
    order.addAll()
    order.remove(0)
    order.remove(3)
    assert.deepStrictEqual(drain(order, 5).map((info) => info.block), [1, 2, 4])
  })

  it("add, remove and addAll go down the chain, and a handed-out block is removed downstream", () => {
    const end = recorder()
    const order = BlockOrder.makeAny(4, end)
    order.addAll()
    order.remove(2)
    order.add(2)
    assert.strictEqual(order.next().block, 0)
    assert.deepStrictEqual(end.calls, ["addAll", "remove 2", "add 2", "remove 0"])
  })

  it("an empty AnyBlockOrder asks the next order and forgets what it hands out", () => {
    const behind = BlockOrder.makeAny(4)
    const front = BlockOrder.makeAny(4, behind)
    behind.add(3)
    assert.deepStrictEqual(front.next(), { block: 3, type: BlockOrder.BlockType.Standard })
    assert.deepStrictEqual(front.next(), BlockOrder.Finish)
  })

  it("a prioritised block comes first, with type Priority, earliest request first", () => {
    const order = BlockOrder.makePriority(10, BlockOrder.makeAny(10))
    order.addAll()
    order.prioritise(7)
    order.prioritise(4)
    order.prioritise(7)
    assert.deepStrictEqual(order.next(), { block: 7, type: BlockOrder.BlockType.Priority })
    assert.deepStrictEqual(order.next(), { block: 4, type: BlockOrder.BlockType.Priority })
    assert.deepStrictEqual(order.next(), { block: 0, type: BlockOrder.BlockType.Standard })
    assert.deepStrictEqual(drain(order, 10).map((info) => info.block), [1, 2, 3, 5, 6, 8, 9])
  })

  it("prioritising a block that is no longer available does nothing", () => {
    const order = BlockOrder.makePriority(4, BlockOrder.makeAny(4))
    order.addAll()
    assert.strictEqual(order.next().block, 0)
    order.remove(2)
    order.prioritise(0)
    order.prioritise(2)
    order.prioritise(9)
    assert.deepStrictEqual(drain(order, 4), [
      { block: 1, type: BlockOrder.BlockType.Standard },
      { block: 3, type: BlockOrder.BlockType.Standard }
    ])
  })

  it("a removed request is forgotten, even if the block is added again", () => {
    const order = BlockOrder.makePriority(4, BlockOrder.makeAny(4))
    order.addAll()
    order.prioritise(3)
    order.remove(3)
    order.add(3)
    assert.deepStrictEqual(order.next(), { block: 0, type: BlockOrder.BlockType.Standard })
  })

  it("hands out exactly the available blocks, each once, prioritised ones in request order", () => {
    fc.assert(fc.property(scenario, ([blocks, startFull, ops]) => {
      const order = BlockOrder.makePriority(blocks, BlockOrder.makeAny(blocks))
      const available = new Set<number>()
      const requests: Array<number> = []
      if (startFull) {
        order.addAll()
        for (let block = 0; block < blocks; block++) available.add(block)
      }
      const forget = (block: number) => {
        const at = requests.indexOf(block)
        if (at !== -1) requests.splice(at, 1)
      }
      const handOut = (expected: number | undefined) => {
        const info = order.next()
        if (expected !== undefined) {
          assert.deepStrictEqual(info, { block: expected, type: BlockOrder.BlockType.Priority })
        } else if (available.size === 0) {
          assert.deepStrictEqual(info, BlockOrder.Finish)
        } else {
          assert.strictEqual(info.block, Math.min(...available))
        }
        available.delete(info.block)
        forget(info.block)
      }
      for (const step of ops) {
        switch (step.op) {
          case "add":
            order.add(step.block)
            available.add(step.block)
            break
          case "remove":
            order.remove(step.block)
            available.delete(step.block)
            forget(step.block)
            break
          case "prioritise":
            order.prioritise(step.block)
            if (available.has(step.block) && !requests.includes(step.block)) requests.push(step.block)
            break
          case "next":
            handOut(requests[0])
            break
        }
      }
      const rest = [...requests, ...[...available].filter((b) => !requests.includes(b)).toSorted((a, b) => a - b)]
      assert.deepStrictEqual(drain(order, blocks).map((info) => info.block), rest)
      assert.deepStrictEqual(order.next(), BlockOrder.Finish)
    }))
  })
})
