import { assert, describe, it } from "@effect/vitest"
import { seeded } from "../src/internal/random.ts"
import * as MemoryLink from "../src/MemoryLink.ts"
import * as Scheduler from "../src/Scheduler.ts"

const listen = (link: { attach: MemoryLink.Cable["a"]["attach"] }, scheduler: Scheduler.Virtual) => {
  const got: Array<{ at: number; bytes: Uint8Array }> = []
  const status: Array<boolean> = []
  link.attach({
    packet: (bytes) => got.push({ at: scheduler.now(), bytes }),
    status: (up) => status.push(up),
    drain: () => {}
  })
  return { got, status }
}

describe("MemoryLink", () => {
  it("serialises packets at the bandwidth, adds latency, keeps order", () => {
    const scheduler = Scheduler.makeVirtual()
    const cable = MemoryLink.make({
      scheduler,
      random: seeded(1),
      aToB: { bandwidth: 10_000, latency: 5, bufferSize: 2000, frameOverhead: 1 }
    })
    const b = listen(cable.b, scheduler)
    for (let i = 0; i < 10; i++) assert.strictEqual(cable.a.send(new Uint8Array(99).fill(i)), "queued")
    assert.strictEqual(cable.a.room(), 2000 - 990)
    scheduler.runUntil(1_000)
    assert.deepStrictEqual(b.got.map((g) => g.bytes[0]), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    assert.deepStrictEqual(b.got.map((g) => Math.round(g.at)), [15, 25, 35, 45, 55, 65, 75, 85, 95, 105])
    assert.strictEqual(cable.a.room(), 2000)
  })

  it("drops what does not fit the transmit buffer", () => {
    const scheduler = Scheduler.makeVirtual()
    const cable = MemoryLink.make({ scheduler, random: seeded(1), aToB: { bandwidth: 1000, bufferSize: 300 } })
    const results = Array.from({ length: 4 }, () => cable.a.send(new Uint8Array(100)))
    assert.deepStrictEqual(results, ["queued", "queued", "queued", "dropped"])
    assert.strictEqual(cable.a.stats.overflows, 1)
    assert.strictEqual(cable.a.send(new Uint8Array(256)), "invalid")
  })

  it("loses and corrupts at the configured rates, corrupting exactly one byte", () => {
    const scheduler = Scheduler.makeVirtual()
    const cable = MemoryLink.make({
      scheduler,
      random: seeded(9),
      aToB: { loss: 0.1, corrupt: 0.2, bufferSize: 1 << 20 }
    })
    const b = listen(cable.b, scheduler)
    const sent = new Uint8Array(50).fill(0x55)
    for (let i = 0; i < 5000; i++) cable.a.send(sent)
    scheduler.runUntil(10_000)
    assert.approximately(b.got.length, 4500, 100)
    const changed = b.got.filter((g) => !g.bytes.every((x) => x === 0x55))
    assert.approximately(changed.length, 900, 90)
    for (const g of changed) assert.strictEqual(g.bytes.filter((x) => x !== 0x55).length, 1)
    assert.strictEqual(cable.a.stats.lost + b.got.length, 5000)
  })

  it("a cut reports down on both ends and loses what was in flight", () => {
    const scheduler = Scheduler.makeVirtual()
    const cable = MemoryLink.make({ scheduler, random: seeded(1), aToB: { bandwidth: 1000, latency: 10 } })
    const a = listen(cable.a, scheduler)
    const b = listen(cable.b, scheduler)
    cable.a.send(new Uint8Array(10))
    scheduler.runUntil(5)
    cable.setUp(false)
    assert.strictEqual(cable.a.send(new Uint8Array(10)), "down")
    scheduler.runUntil(1_000)
    assert.deepStrictEqual(b.got, [])
    cable.setUp(true)
    cable.a.send(new Uint8Array(10))
    scheduler.runUntil(2_000)
    assert.strictEqual(b.got.length, 1)
    assert.deepStrictEqual(a.status, [true, false, true])
    assert.deepStrictEqual(b.status, [true, false, true])
  })
})
