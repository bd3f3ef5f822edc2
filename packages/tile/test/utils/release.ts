import { Result } from "effect"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as CdmKeys from "../../src/CdmKeys.ts"
import * as CdmRelease from "../../src/CdmRelease.ts"

export const keyOf = (handle: string, type: CdmKeys.KeyType = "rsa"): CdmKeys.Key =>
  Result.getOrThrow(CdmKeys.generate(handle, type))

/** Deterministic incompressible payload bytes. */
export const payload = (size: number, seed: number): Uint8Array => {
  const out = new Uint8Array(size)
  let block = Crypto.createHash("sha512").update(`seed-${seed}`).digest()
  for (let i = 0; i < size; i += 64) {
    out.set(block.subarray(0, Math.min(64, size - i)), i)
    block = Crypto.createHash("sha512").update(block).digest()
  }
  return out
}

export const release = (
  key: CdmKeys.Key,
  options: { slot: number; time: number; size: number; seed?: number; regnum?: number; label?: string }
): CdmRelease.Release =>
  Result.getOrThrow(CdmRelease.make({
    key,
    regnum: options.regnum ?? 0,
    slot: options.slot,
    label: options.label ?? "test",
    time: options.time,
    files: [{ path: "/home/t2/payload.bin", bytes: payload(options.size, options.seed ?? 1), mtime: options.time }]
  }))

export const tempDir = (prefix: string): string => Fs.mkdtempSync(Path.join(Os.tmpdir(), `tessera-${prefix}-`))

/**
 * Every cdmss file under `root` (any tile, any state) must be a prefix of one of `releases` (by name); returns
 * the offending paths.
 */
export const unverifiedFiles = (root: string, releases: ReadonlyArray<CdmRelease.Release>): Array<string> => {
  const bad: Array<string> = []
  const walk = (dir: string): void => {
    for (const entry of Fs.readdirSync(dir, { withFileTypes: true })) {
      const path = Path.join(dir, entry.name)
      if (entry.isDirectory()) walk(path)
      else if (/^cdmss-.*\.mfz$/.test(entry.name)) {
        const bytes = Fs.readFileSync(path)
        const r = releases.find((x) => x.fileName === entry.name)
        const complete = Path.basename(dir) === "common"
        if (
          r === undefined || bytes.length > r.bytes.length ||
          !bytes.equals(Buffer.from(r.bytes.subarray(0, bytes.length))) ||
          (complete && bytes.length !== r.bytes.length)
        ) bad.push(path)
      }
    }
  }
  walk(root)
  return bad
}
