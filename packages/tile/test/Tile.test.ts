import { assert, describe, it } from "@effect/vitest"
import { T2Direction, T2Packet } from "@tessera/codec"
import { Effect, Fiber, Result, Stream } from "effect"
import { seeded } from "../src/internal/random.ts"
import * as MemoryLink from "../src/MemoryLink.ts"
import * as Scheduler from "../src/Scheduler.ts"
import * as Tile from "../src/Tile.ts"

const pair = (options: { mfzidA?: string; mfzidB?: string; model?: Partial<MemoryLink.Model> } = {}) => {
  const scheduler = Scheduler.makeVirtual()
  const random = seeded(7)
  const a = Tile.makeEngine({ scheduler, random, mfzid: options.mfzidA ?? "physics-1" })
  const b = Tile.makeEngine({ scheduler, random, mfzid: options.mfzidB ?? "physics-1" })
  const cable = MemoryLink.make({ scheduler, random, aToB: options.model, bToA: options.model })
  a.neighbor(T2Direction.ET)!.attach(cable.a)
  b.neighbor(T2Direction.WT)!.attach(cable.b)
  return { scheduler, a, b, cable }
}

const encode = (packet: T2Packet.T2Packet): Uint8Array => Result.getOrThrow(T2Packet.encode(packet))

describe("Tile", () => {
  it("reports connect and disconnect as Tile Event Packets on the neighbour's stream", () => {
    const { a, cable, scheduler } = pair()
    const seen: Array<string> = []
    a.neighbor(T2Direction.ET)!.onEvent((event, bytes) => {
      seen.push(`${event.event}:${Array.from(bytes, (x) => x.toString(16)).join(" ")}`)
    })
    cable.setUp(false)
    scheduler.runUntil(100)
    cable.setUp(true)
    assert.deepStrictEqual(seen, ["disconnect:c4 2 2 46", "connect:c4 1 2"])
    assert.strictEqual(a.neighbor(T2Direction.ET)!.stats.connects, 2)
  })

  it("KITC: equal mfzids become compatible (status 2), different ones stay up (status 1)", () => {
    const same = pair()
    same.scheduler.runUntil(5_000)
    assert.strictEqual(same.a.neighbor(T2Direction.ET)!.status, 2)
    assert.strictEqual(same.b.neighbor(T2Direction.WT)!.status, 2)
    same.scheduler.runUntil(60_000)
    assert.strictEqual(same.a.neighbor(T2Direction.ET)!.status, 2, "keepalives keep it compatible")
    const different = pair({ mfzidB: "physics-2" })
    different.scheduler.runUntil(5_000)
    assert.strictEqual(different.a.neighbor(T2Direction.ET)!.status, 1)
    assert.strictEqual(different.b.neighbor(T2Direction.WT)!.status, 1)
    different.b.setMfzid("physics-1")
    different.scheduler.runUntil(10_000)
    assert.strictEqual(different.a.neighbor(T2Direction.ET)!.status, 2)
  })

  it("demultiplexes by header bytes and rewrites the direction to the arrival direction", () => {
    const { a, b, scheduler } = pair()
    const got: Array<string> = []
    b.register({ kind: "bulk", code: 3 }, (p, from) => got.push(`cdm ${p[0]!.toString(16)} ${from}`))
    b.register({ kind: "flash" }, (p) => got.push(`flash ${p[1]}`))
    b.register({ kind: "bulk", code: 0x20 }, (p) => got.push(`svc32 ${p.length}`))
    b.register({ kind: "mfm" }, (p) => got.push(`mfm ${p[1]!.toString(16)}`))
    assert.isUndefined(b.register({ kind: "bulk", code: 3 }, () => {}), "a taken number is refused")
    const mfm = new Uint8Array([0xa2, 0x41, 1, 2])
    assert.strictEqual(a.send(mfm), "queued")
    scheduler.runUntil(10)
    assert.deepStrictEqual(got, [], "MFM traffic is dropped before the handshake says compatible")
    scheduler.runUntil(5_000)
    a.send(new Uint8Array([0x82, 0x83, 0x41, 7, 3]))
    a.send(new Uint8Array([0x82, 0x13, 1, 2]))
    a.send(new Uint8Array([0x82, 0xa0, 9]))
    a.send(new Uint8Array([0x82, 0x85, 9]))
    a.send(new Uint8Array([0xa2, 0x41, 1, 2]))
    a.send(new Uint8Array([0x92, 0x83, 1]))
    scheduler.runUntil(5_100)
    assert.deepStrictEqual(got, ["cdm 86 6", "flash 19", "svc32 3", "mfm 41"])
    assert.isAtLeast(b.neighbor(T2Direction.WT)!.stats.undelivered, 2)
    assert.strictEqual(a.send(new Uint8Array([0x92, 0x83, 1])), "invalid")
    assert.strictEqual(a.send(new Uint8Array([0x80, 0x83, 1])), "down", "no link north")
  })

  it("drains kernel before MFM before bulk when the link is busy", () => {
    const { a, b, scheduler } = pair({ model: { bandwidth: 10_000, bufferSize: 64 } })
    scheduler.runUntil(5_000)
    const order: Array<string> = []
    b.register({ kind: "bulk", code: 3 }, () => order.push("bulk"))
    b.register({ kind: "mfm" }, () => order.push("mfm"))
    const bulk = new Uint8Array(60).fill(0)
    bulk[0] = 0x82
    bulk[1] = 0x83
    for (let i = 0; i < 5; i++) a.send(bulk)
    const mfm = new Uint8Array(60).fill(0)
    mfm[0] = 0xa2
    mfm[1] = 0x41
    for (let i = 0; i < 2; i++) a.send(mfm)
    scheduler.runUntil(6_000)
    assert.deepStrictEqual(order, ["bulk", "mfm", "mfm", "bulk", "bulk", "bulk", "bulk"])
  })

  it("drops on a full priority queue", () => {
    const scheduler = Scheduler.makeVirtual()
    const random = seeded(1)
    const a = Tile.makeEngine({ scheduler, random, queueBytes: 100 })
    const cable = MemoryLink.make({ scheduler, random, aToB: { bandwidth: 1000, bufferSize: 50 } })
    a.neighbor(T2Direction.ET)!.attach(cable.a)
    const p = new Uint8Array(40).fill(0)
    p[0] = 0x82
    p[1] = 0x83
    const results = Array.from({ length: 5 }, () => a.send(p))
    assert.deepStrictEqual(results, ["queued", "queued", "queued", "full", "full"])
    assert.strictEqual(a.neighbor(T2Direction.ET)!.stats.queueDrops, 2)
  })

  it.effect("events stream", () =>
    Effect.gen(function*() {
      const { a, cable } = pair()
      const fiber = yield* Stream.runCollect(Stream.take(Tile.events(a, T2Direction.ET), 2)).pipe(Effect.forkChild)
      yield* Effect.yieldNow
      cable.setUp(false)
      cable.setUp(true)
      const events = yield* Fiber.join(fiber)
      assert.deepStrictEqual(events.map((e) => e.event), ["disconnect", "connect"])
      assert.deepStrictEqual(encode(T2Packet.connect(T2Direction.ET)), new Uint8Array([0xc4, 1, 2]))
    }))
})
