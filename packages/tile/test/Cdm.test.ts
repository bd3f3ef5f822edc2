import { assert, describe, it } from "@effect/vitest"
import { CdmPacket, CdmSlotstamp, T2Direction } from "@tessera/codec"
import { Result } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as CdmKeys from "../src/CdmKeys.ts"
import * as CdmRelease from "../src/CdmRelease.ts"
import * as Grid from "../src/Grid.ts"
import * as Topology from "../src/Topology.ts"
import { keyOf, release, tempDir, unverifiedFiles } from "./utils/release.ts"

const signer = keyOf("t2-keymaster-release-10")
const keyring = CdmKeys.keyring([[0, signer]])
const T0 = 1_700_000_000
const fast = { bandwidth: 65_000 }

const holders = (root: string, fileName: string): Array<string> => {
  const found: Array<string> = []
  for (const tile of Fs.readdirSync(root)) {
    for (const sub of ["common", "pending"]) {
      if (Fs.existsSync(Path.join(root, tile, sub, fileName))) found.push(`${tile}/${sub}`)
    }
  }
  return found
}

describe("Cdm", () => {
  it(
    "6x6 grid, 1% loss, 5% corruption: a 1 MiB release reaches every tile verified, never an unverified byte on disk",
    () => {
      const root = tempDir("cdm-6x6")
      const r = release(signer, { slot: 0xa1, time: T0, size: 1 << 20 })
      const grid = Grid.make({
        width: 6,
        height: 6,
        seed: 11,
        directory: root,
        keyring,
        link: { ...fast, loss: 0.01, corrupt: 0.05 }
      })
      grid.run(2_000)
      assert.isTrue(Result.isSuccess(grid.publish(0, r.bytes)))
      const start = grid.scheduler.now()
      let done = false
      const bad: Array<string> = []
      // Look at every tile's directories every 3 virtual seconds while the release spreads.
      for (let i = 0; i < 200 && !done; i++) {
        done = grid.runUntilComplete(r.slotstamp, 3_000)
        bad.push(...unverifiedFiles(root, [r]))
      }
      const stats = grid.linkStats()
      const elapsed = (grid.scheduler.now() - start) / 1000
      grid.close()
      assert.isTrue(done, "every tile completed")
      assert.deepStrictEqual(bad, [])
      assert.isAbove(stats.corrupted, 1000, "corruption really happened")
      assert.isAbove(stats.lost, 1000, "loss really happened")
      assert.strictEqual(holders(root, r.fileName).filter((h) => h.endsWith("common")).length, 36)
      for (let i = 0; i < 36; i++) {
        assert.isTrue(Buffer.from(r.bytes).equals(Fs.readFileSync(Path.join(root, `tile-${i}`, "common", r.fileName))))
      }
      // 1 MiB at 65 KB/s is 16 s on one link; the farthest tile is 8 hops away.
      assert.isBelow(elapsed, 60, `spread took ${elapsed} s`)
    },
    120_000
  )

  it("a release with a bad signature is accepted nowhere, and the service goes on", () => {
    const root = tempDir("cdm-rogue")
    const rogue = keyOf("t2-keymaster-release-10")
    // Tile 0 trusts the rogue key under regnum 0, so it serves a release everyone else finds badly signed.
    const bogus = release(rogue, { slot: 0xa4, time: T0, size: 30_000, seed: 9 })
    const good = release(signer, { slot: 0xa5, time: T0, size: 30_000, seed: 10 })
    const grid = Grid.make({
      width: 3,
      height: 3,
      seed: 5,
      directory: root,
      keyring,
      keyringOf: (tile) => (tile === 0 ? CdmKeys.keyring([[0, rogue]]) : undefined),
      link: fast
    })
    grid.run(2_000)
    assert.isTrue(Result.isSuccess(grid.publish(0, bogus.bytes)))
    assert.isTrue(Result.isFailure(grid.publish(8, bogus.bytes)), "a tile trusting the real key refuses it")
    assert.isTrue(Result.isSuccess(grid.publish(8, good.bytes)))
    grid.run(60_000)
    const rejections = grid.tiles.reduce((n, t) => n + t.cdm.stats.rejections, 0)
    const goodCount = grid.tiles.filter((t) => t.cdm.isComplete(good.slotstamp)).length
    grid.close()
    assert.deepStrictEqual(holders(root, bogus.fileName), ["tile-0/common"])
    assert.isAbove(rejections, 0)
    assert.strictEqual(goodCount, 8, "every tile but the rogue one has the good release")
  })

  it("a newer release replaces an older one everywhere", () => {
    const root = tempDir("cdm-newer")
    const v1 = release(signer, { slot: 0xa2, time: T0, size: 50_000, seed: 1 })
    const v2 = release(signer, { slot: 0xa2, time: T0 + 900, size: 60_000, seed: 2 })
    assert.isTrue(CdmSlotstamp.dominates(v2.slotstamp, v1.slotstamp))
    const grid = Grid.make({ width: 4, height: 4, seed: 2, directory: root, keyring, link: { ...fast, loss: 0.01 } })
    grid.run(2_000)
    grid.publish(0, v1.bytes)
    assert.isTrue(grid.runUntilComplete(v1.slotstamp, 120_000))
    grid.publish(15, v2.bytes)
    assert.isTrue(grid.runUntilComplete(v2.slotstamp, 120_000))
    grid.run(1_000)
    grid.close()
    assert.deepStrictEqual(holders(root, v1.fileName), [])
    assert.strictEqual(holders(root, v2.fileName).length, 16)
    assert.deepStrictEqual(unverifiedFiles(root, [v1, v2]), [])
  })

  it("an older release arriving later is refused where the newer one is", () => {
    const root = tempDir("cdm-older")
    const v1 = release(signer, { slot: 0xa2, time: T0, size: 20_000, seed: 1 })
    const v2 = release(signer, { slot: 0xa2, time: T0 + 900, size: 20_000, seed: 2 })
    const grid = Grid.make({ width: 3, height: 1, seed: 4, directory: root, keyring, link: fast })
    grid.run(2_000)
    grid.publish(0, v2.bytes)
    assert.isTrue(grid.runUntilComplete(v2.slotstamp, 60_000))
    grid.publish(2, v1.bytes)
    grid.run(30_000)
    grid.close()
    assert.deepStrictEqual(holders(root, v1.fileName), [], "the newer stamp collects the old one at once")
    assert.strictEqual(holders(root, v2.fileName).length, 3)
  })

  it("tiles restarted mid-transfer resume from their verified prefix and finish", () => {
    const root = tempDir("cdm-restart")
    const r = release(signer, { slot: 0xa6, time: T0, size: 300_000, seed: 3 })
    const grid = Grid.make({ width: 3, height: 3, seed: 8, directory: root, keyring, link: fast })
    const loaded: Array<number> = []
    grid.run(2_000)
    grid.publish(0, r.bytes)
    const far = 8
    const verifiedAt = () => grid.tiles[far]!.cdm.files().find((f) => f.slotstamp === r.slotstamp)?.verified ?? 0
    assert.isTrue(grid.scheduler.runWhile(() => verifiedAt() > 120_000, grid.scheduler.now() + 60_000))
    const before = verifiedAt()
    grid.stop(far)
    grid.stop(4)
    assert.deepStrictEqual(unverifiedFiles(root, [r]), [])
    const onDisk = Fs.statSync(Path.join(root, `tile-${far}`, "pending", r.fileName)).size
    assert.strictEqual(onDisk, before, "exactly the verified prefix is on disk")
    grid.run(5_000)
    grid.start(far)
    grid.start(4)
    const resumed = grid.tiles[far]!.cdm.files().find((f) => f.slotstamp === r.slotstamp)?.verified ?? 0
    loaded.push(resumed)
    assert.isTrue(grid.runUntilComplete(r.slotstamp, 120_000))
    grid.close()
    assert.strictEqual(loaded[0], before, "resumed from the verified prefix")
    assert.deepStrictEqual(unverifiedFiles(root, [r]), [])
  })

  it("a deletion spreads: the slot 01 map removes the deleted release everywhere", () => {
    const root = tempDir("cdm-delete")
    const doomed = release(signer, { slot: 0xa3, time: T0, size: 20_000, seed: 4 })
    const map = Result.getOrThrow(CdmRelease.makeDeletions({
      key: signer,
      regnum: 0,
      time: T0 + 600,
      deletions: [{ slot: 0xa3, through: CdmSlotstamp.stamp(doomed.slotstamp) }]
    }))
    const s01 = Result.getOrThrow(CdmRelease.make({
      key: signer,
      regnum: 0,
      slot: 1,
      label: "deletions",
      time: T0 + 600,
      files: [{ path: "/cdm/cdmss-deleted.map", bytes: map, mtime: T0 + 600 }]
    }))
    const grid = Grid.make({ width: 4, height: 3, seed: 6, directory: root, keyring, link: fast })
    grid.run(2_000)
    grid.publish(0, doomed.bytes)
    assert.isTrue(grid.runUntilComplete(doomed.slotstamp, 60_000))
    grid.publish(11, s01.bytes)
    assert.isTrue(grid.runUntilComplete(s01.slotstamp, 60_000))
    grid.run(1_000)
    grid.close()
    assert.deepStrictEqual(holders(root, doomed.fileName), [])
    assert.strictEqual(holders(root, s01.fileName).length, 12)
  })

  it("a cable cut mid-transfer stalls the tiles behind it; they resume when it comes back", () => {
    const root = tempDir("cdm-cut")
    const r = release(signer, { slot: 0xa7, time: T0, size: 200_000, seed: 12 })
    const grid = Grid.make({ width: 3, height: 1, seed: 13, directory: root, keyring, link: fast })
    grid.run(2_000)
    grid.publish(0, r.bytes)
    const verifiedAt = (i: number) => grid.tiles[i]!.cdm.files().find((f) => f.slotstamp === r.slotstamp)?.verified ?? 0
    assert.isTrue(grid.scheduler.runWhile(() => verifiedAt(2) > 50_000, grid.scheduler.now() + 30_000))
    assert.isTrue(grid.setCable(0, 1, false))
    grid.run(20_000)
    const stalled = [verifiedAt(1), verifiedAt(2)]
    assert.isBelow(stalled[0]!, r.bytes.length)
    assert.isAtMost(stalled[1]!, stalled[0]!, "tile 2 can only have what tile 1 verified")
    grid.setCable(0, 1, true)
    assert.isTrue(grid.runUntilComplete(r.slotstamp, 60_000))
    const resets = grid.tiles[1]!.cdm.stats.staleResets + grid.tiles[1]!.cdm.stats.reRequests
    grid.close()
    assert.isAbove(resets, 0)
    assert.deepStrictEqual(unverifiedFiles(root, [r]), [])
  })

  it("announcements nobody serves are forgotten, so they cannot fill the model table", () => {
    const root = tempDir("cdm-flood")
    const r = release(signer, { slot: 0xa8, time: T0, size: 5_000, seed: 14 })
    const grid = Grid.make({ width: 2, height: 1, seed: 15, directory: root, keyring, link: fast })
    grid.run(2_000)
    // Tile 1 claims 64 files it will never serve (the default table size), then really publishes one.
    for (let i = 0; i < 64; i++) {
      const f = Result.getOrThrow(
        CdmPacket.encode(CdmPacket.announce(T2Direction.WT, CdmSlotstamp.make(0x30, i), 5000))
      )
      grid.tiles[1]!.tile.send(f)
    }
    grid.run(100)
    grid.publish(1, r.bytes)
    grid.run(5_000)
    assert.isFalse(grid.tiles[0]!.cdm.isComplete(r.slotstamp), "the table was full")
    assert.isTrue(grid.runUntilComplete(r.slotstamp, 200_000))
    grid.close()
  })

  it("grid topology: hex distances and diameters", () => {
    const g = Topology.grid(4, 4)
    assert.strictEqual(g.positions.length, 16)
    assert.strictEqual(g.edges.length, 3 * 3 + 4 * 3 + 3 * 3 + 3)
    assert.strictEqual(Topology.eccentricity(g, 0), 4 + 1)
    assert.strictEqual(Topology.diameter(Topology.grid(6, 6)), 8)
  })
})
