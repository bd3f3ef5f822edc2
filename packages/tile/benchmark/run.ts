/**
 * Spread benchmark: how long a release takes to reach every tile of a simulated grid at the T2 link rate,
 * against the ideal computed in the same run. See README.md.
 *
 * Usage: node benchmark/run.ts [--quick]   (--quick: 4x4 and 8x8 only)
 */
import { Result } from "effect"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as CdmKeys from "../src/CdmKeys.ts"
import * as CdmRelease from "../src/CdmRelease.ts"
import * as Grid from "../src/Grid.ts"

const LINK_RATE = 65_000
const PAYLOAD = 1 << 20
const quick = process.argv.includes("--quick")

const key = Result.getOrThrow(CdmKeys.generate("tessera-benchmark"))
const keyring = CdmKeys.keyring([[0, key]])
// Incompressible payload, so the release is as big as the file.
const payload = new Uint8Array(PAYLOAD)
Crypto.randomFillSync(payload)
const release = Result.getOrThrow(CdmRelease.make({
  key,
  regnum: 0,
  slot: 0xa0,
  label: "benchmark",
  time: 1_700_000_000,
  files: [{ path: "payload.bin", bytes: payload, mtime: 1_700_000_000 }]
}))

interface Row {
  readonly grid: string
  readonly loss: number
  readonly corrupt: number
  readonly tiles: number
  readonly hops: number
  readonly bytes: number
  readonly spread: number | null
  readonly ideal: number
  readonly ratio: number | null
  readonly medianPerHop: number
  readonly minPerHop: number
  readonly perHopOfLink: number
  readonly linkBytesPerByte: number
  readonly wallSeconds: number
}

const runOne = (size: number, loss: number, corrupt: number, seed: number): Row => {
  const root = Fs.mkdtempSync(Path.join(Os.tmpdir(), "tessera-tile-bench-"))
  const started = performance.now()
  const sim = Grid.make({
    width: size,
    height: size,
    seed,
    directory: root,
    keyring,
    link: { bandwidth: LINK_RATE, loss, corrupt, latency: 1 }
  })
  try {
    sim.run(1_000)
    const publishedAt = sim.scheduler.now()
    sim.publish(0, release.bytes)
    sim.runUntilComplete(release.slotstamp, 3_600_000)
    const s = Grid.summarize(sim, {
      slotstamp: release.slotstamp,
      bytes: release.bytes.length,
      publisher: 0,
      publishedAt,
      linkRate: LINK_RATE
    })
    const rates = s.perHopRates.toSorted((a, b) => a - b)
    const median = rates[Math.floor(rates.length / 2)] ?? 0
    return {
      grid: `${size}x${size}`,
      loss,
      corrupt,
      tiles: s.tiles,
      hops: s.hops,
      bytes: s.bytes,
      spread: s.spread ?? null,
      ideal: s.ideal,
      ratio: s.spread === undefined ? null : s.spread / s.ideal,
      medianPerHop: median,
      minPerHop: rates[0] ?? 0,
      perHopOfLink: median / LINK_RATE,
      linkBytesPerByte: s.linkBytesPerByte,
      wallSeconds: (performance.now() - started) / 1000
    }
  } finally {
    sim.close()
    Fs.rmSync(root, { recursive: true, force: true })
  }
}

const cases: Array<[number, number, number]> = quick
  ? [[4, 0, 0], [8, 0, 0], [8, 0.01, 0.05]]
  : [[4, 0, 0], [8, 0, 0], [16, 0, 0], [4, 0.01, 0.05], [8, 0.01, 0.05], [16, 0.01, 0.05]]
const rows: Array<Row> = []
for (const [size, loss, corrupt] of cases) {
  const row = runOne(size, loss, corrupt, 1)
  rows.push(row)
  process.stderr.write(
    `${row.grid} loss ${loss} corrupt ${corrupt}: ${row.spread?.toFixed(2)} s (${row.wallSeconds.toFixed(1)} s wall)\n`
  )
}

const f = (n: number | null, d = 2) => (n === null ? "-" : n.toFixed(d))
console.log(`release ${release.bytes.length} bytes, link ${LINK_RATE} B/s per direction, 1 ms latency, seed 1\n`)
console.log(
  "| grid | loss / corrupt | hops | spread (s) | ideal (s) | spread / ideal | per-hop median (KB/s) | per-hop / link | per-hop min (KB/s) | link bytes per payload byte | wall (s) |"
)
console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for (const r of rows) {
  console.log(
    `| ${r.grid} | ${r.loss * 100}% / ${r.corrupt * 100}% | ${r.hops} | ${f(r.spread)} | ${f(r.ideal)} | ${
      f(r.ratio)
    } | ${f(r.medianPerHop / 1000, 1)} | ${f(r.perHopOfLink)} | ${f(r.minPerHop / 1000, 1)} | ${
      f(r.linkBytesPerByte)
    } | ${f(r.wallSeconds, 1)} |`
  )
}
Fs.mkdirSync(new URL("results", import.meta.url), { recursive: true })
Fs.writeFileSync(
  new URL("results/latest.json", import.meta.url),
  `${JSON.stringify({ linkRate: LINK_RATE, rows }, null, 2)}\n`
)
