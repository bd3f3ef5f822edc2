import { assert, describe, it } from "@effect/vitest"
import { FlashPacket } from "@tessera/codec"
import * as CdmKeys from "../src/CdmKeys.ts"
import * as Flash from "../src/Flash.ts"
import * as Grid from "../src/Grid.ts"
import * as Topology from "../src/Topology.ts"
import { keyOf, tempDir } from "./utils/release.ts"

const keyring = CdmKeys.keyring([[0, keyOf("k")]])

describe("Flash", () => {
  it("reaches exactly the tiles within range, once each, after 666 ms per remaining TTL", () => {
    const executed: Array<{ tile: number; at: number; command: Flash.Command }> = []
    const grid = Grid.make({
      width: 7,
      height: 7,
      seed: 3,
      directory: tempDir("flash"),
      keyring,
      onFlash: (tile, command) => executed.push({ tile, at: grid.scheduler.now(), command })
    })
    grid.run(1_000)
    const center = 3 * 7 + 3
    const launchedAt = grid.scheduler.now()
    grid.tiles[center]!.flash.launch(FlashPacket.commands["mfm:quit"], 2, 0x1234_5678)
    grid.run(5_000)
    grid.close()
    const within = grid.topology.positions
      .map((p, i) => ({ i, d: Topology.distance(p, grid.topology.positions[center]!) }))
      .filter((x) => x.d <= 2)
      .map((x) => x.i)
      .toSorted((a, b) => a - b)
    assert.deepStrictEqual(executed.map((e) => e.tile).toSorted((a, b) => a - b), within)
    for (const e of executed) {
      const d = Topology.distance(grid.topology.positions[e.tile]!, grid.topology.positions[center]!)
      assert.strictEqual(e.command.ttl, 2 - d)
      assert.strictEqual(e.command.name, "mfm:quit")
      assert.strictEqual(e.command.argument, 0x1234_5678)
      const origin = grid.topology.positions[center]!
      const here = grid.topology.positions[e.tile]!
      assert.deepStrictEqual(e.command.origin, { x: origin.x - here.x, y: origin.y - here.y })
      // Delivery takes a few 1-ms hops; execution waits 666 ms per TTL left.
      assert.approximately(e.at - launchedAt, Flash.delayPerTtl * e.command.ttl, 10)
    }
  })

  it("a second launch with a new index runs again; a replayed packet does not", () => {
    const executed: Array<number> = []
    const grid = Grid.make({
      width: 3,
      height: 1,
      seed: 1,
      directory: tempDir("flash2"),
      keyring,
      onFlash: (t) => executed.push(t)
    })
    grid.run(1_000)
    grid.tiles[0]!.flash.launch(FlashPacket.commands["phy:clear"], 3, 1)
    grid.run(3_000)
    grid.tiles[0]!.flash.launch(FlashPacket.commands["phy:clear"], 3, 1)
    grid.run(3_000)
    grid.close()
    assert.deepStrictEqual(executed.toSorted(), [0, 0, 1, 1, 2, 2])
    assert.isAbove(grid.tiles[1]!.flash.stats.duplicates, 0)
  })
})
