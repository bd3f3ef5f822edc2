import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import { createHash } from "node:crypto"
import { DnetRing } from "../src/index.ts"
import { addrAttrOf, addressOf } from "../src/internal/dnetWire.ts"

const id = (...bytes: ReadonlyArray<number>) => {
  const out = new Uint8Array(64)
  out.set(bytes)
  return out
}

describe("DnetRing", () => {
  const ring = DnetRing.make([
    { address: "tcp://127.0.0.1:1", group: 1, ids: [id(0x20), id(0x80)] },
    { address: "tcp://127.0.0.1:2", group: 1, ids: [id(0x50)] },
    { address: "tcp://127.0.0.1:3", group: 2, ids: [id(0x00)] },
    { address: "tcp://127.0.0.1:4", group: 3, ids: [] }
  ])

  it("a key belongs to the greatest id at or below it, and wraps to the greatest id", () => {
    assert.strictEqual(DnetRing.owner(ring, 1, id(0x20)), "tcp://127.0.0.1:1")
    assert.strictEqual(DnetRing.owner(ring, 1, id(0x4f, 0xff)), "tcp://127.0.0.1:1")
    assert.strictEqual(DnetRing.owner(ring, 1, id(0x50)), "tcp://127.0.0.1:2")
    assert.strictEqual(DnetRing.owner(ring, 1, id(0x7f)), "tcp://127.0.0.1:2")
    assert.strictEqual(DnetRing.owner(ring, 1, id(0xff)), "tcp://127.0.0.1:1")
    // Below every id: the node with the greatest id (0x80).
    assert.strictEqual(DnetRing.owner(ring, 1, id(0x10)), "tcp://127.0.0.1:1")
    assert.strictEqual(DnetRing.owner(ring, 2, id(0x10)), "tcp://127.0.0.1:3")
    // A group without ids, or unknown, has no owner.
    assert.isUndefined(DnetRing.owner(ring, 3, id(0x10)))
    assert.isUndefined(DnetRing.owner(ring, 9, id(0x10)))
    assert.deepStrictEqual(DnetRing.groups(ring), [1, 2])
    assert.deepStrictEqual(DnetRing.nodes(ring, 1), ["tcp://127.0.0.1:1", "tcp://127.0.0.1:2"])
  })

  it("owner agrees with a linear scan for any ids and key", () =>
    fc.assert(fc.property(
      fc.array(fc.tuple(fc.uint8Array({ minLength: 64, maxLength: 64 }), fc.integer({ min: 1, max: 4 })), {
        minLength: 1,
        maxLength: 20
      }),
      fc.uint8Array({ minLength: 64, maxLength: 64 }),
      (points, key) => {
        const r = DnetRing.make(points.map(([ids, node]) => ({ address: `n${node}`, group: 7, ids: [ids] })))
        const sorted = [...r.groups.get(7)!]
        const below = sorted.filter((p) => Buffer.compare(p.id, key) <= 0)
        const expected = (below.length > 0 ? below[below.length - 1]! : sorted[sorted.length - 1]!).address
        return DnetRing.owner(r, 7, key) === expected
      }
    )))

  it("ids are SHA-512 of the name", () => {
    assert.strictEqual(
      Buffer.from(DnetRing.idOf("hello")).toString("hex"),
      createHash("sha512").update("hello").digest("hex")
    )
    assert.strictEqual(DnetRing.randomIds(3).length, 3)
  })

  it("addresses round trip through dnet_addr_attr", () => {
    for (
      const address of ["tcp://127.0.0.1:5170", "tcp://[::1]:80", "tcp://[2001:db8:0:0:0:0:0:1]:1", "unix:/tmp/x.sock"]
    ) {
      const attr = addrAttrOf(address)
      assert.isDefined(attr, address)
      const back = addressOf(attr!)
      assert.isDefined(back)
      assert.deepStrictEqual(addrAttrOf(back!), attr)
    }
    const v4 = addrAttrOf("tcp://10.1.2.3:258")!
    assert.strictEqual(v4.family, 2)
    assert.strictEqual(v4.addr.addrLen, 16)
    // sockaddr_in: family LE, port big-endian, then the address bytes.
    assert.deepStrictEqual([...v4.addr.addr.subarray(0, 8)], [2, 0, 1, 2, 10, 1, 2, 3])
    assert.isUndefined(addrAttrOf("tcp://localhost:1"))
    assert.isUndefined(addrAttrOf("memory:x"))
    assert.isUndefined(addrAttrOf(`unix:/${"x".repeat(30)}`))
  })
})
