import { assert, describe, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as CdmKeys from "../src/CdmKeys.ts"
import * as Grid from "../src/Grid.ts"
import { keyOf, release, tempDir, unverifiedFiles } from "./utils/release.ts"

const signer = keyOf("t2-keymaster-release-10")
const keyring = CdmKeys.keyring([[0, signer]])
const T0 = 1_700_000_000

describe("Cdm", () => {
  it("spreads a release over a small perfect grid", () => {
    const root = tempDir("cdm-small")
    const r = release(signer, { slot: 0xa1, time: T0, size: 40_000 })
    const grid = Grid.make({ width: 3, height: 3, seed: 1, directory: root, keyring, link: { bandwidth: 65_000 } })
    grid.run(3_000)
    assert.strictEqual(grid.publish(0, r.bytes)._tag, "Success")
    const ok = grid.runUntilComplete(r.slotstamp, 120_000)
    const times = [...(grid.completed.get(r.slotstamp)?.values() ?? [])]
    grid.close()
    assert.isTrue(ok, `completed: ${times.length}`)
    assert.deepStrictEqual(unverifiedFiles(root, [r]), [])
    for (let i = 0; i < 9; i++) {
      assert.isTrue(Fs.existsSync(Path.join(root, `tile-${i}`, "common", r.fileName)))
    }
  })
})
