import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { tempDir, tessera } from "./utils.ts"

describe("tessera cdm", () => {
  it.live(
    "keygen, make, inspect and verify a release; tampering and untrusted keys fail",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir("tessera-cdm-")
        const keys = yield* tessera(["cdm", "keygen", "--handle", "t2-keymaster-release-10", "--out", dir, "--json"])
        assert.strictEqual(keys.code, 0, keys.stderr)
        const key = JSON.parse(keys.stdout.toString())
        assert.strictEqual(key.private, path.join(dir, "t2%2dkeymaster%2drelease%2d10.priv"))
        assert.match(
          fs.readFileSync(key.public, "utf8"),
          /^\[MFM-Handle:t2-keymaster-release-10\]\n-----BEGIN RSA PUBLIC KEY-----/
        )
        const payload = path.join(dir, "payload.bin")
        fs.writeFileSync(payload, Buffer.alloc(50_000, 7))
        const made = yield* tessera([
          "cdm",
          "make",
          "--key",
          key.private,
          "--slot",
          "0xa1",
          "--label",
          "Physics-a1",
          "--time",
          "1700000000",
          "--out",
          dir,
          "--json",
          payload
        ])
        assert.strictEqual(made.code, 0, made.stderr)
        const file = JSON.parse(made.stdout.toString()).file as string
        assert.strictEqual(path.basename(file), "cdmss-a1-56776a.mfz")

        const inspected = yield* tessera(["cdm", "inspect", "--json", file])
        assert.strictEqual(inspected.code, 0, inspected.stderr)
        const info = JSON.parse(inspected.stdout.toString())
        assert.strictEqual(info.magic, "CDM10")
        assert.strictEqual(info.label, "Physics-a1")
        assert.strictEqual(info.slot, 0xa1)
        assert.strictEqual(info.mfz.signer, "t2-keymaster-release-10")
        assert.isTrue(info.mfz.signatureOk)
        assert.deepStrictEqual(info.mfz.files, [{ path: payload.slice(1), bytes: 50_000 }])

        const ok = yield* tessera(["cdm", "verify", "--trust", `0=${key.public}`, file])
        assert.strictEqual(ok.code, 0, ok.stderr)
        assert.match(ok.stdout.toString(), /MAP_SIGNATURE \[OK\] regnum 0/)
        assert.match(ok.stdout.toString(), /SIGNING_HANDLE \[t2-keymaster-release-10\]/)

        const bytes = fs.readFileSync(file)
        bytes[1024 + 100] ^= 1
        const tampered = path.join(dir, "tampered.mfz")
        fs.writeFileSync(tampered, bytes)
        const bad = yield* tessera(["cdm", "verify", "--trust", `0=${key.public}`, tampered])
        assert.strictEqual(bad.code, 1)
        assert.match(bad.stderr, /checksum does not match/)

        const other = yield* tessera([
          "cdm",
          "keygen",
          "--handle",
          "someone",
          "--type",
          "ed25519",
          "--out",
          dir,
          "--json"
        ])
        const otherKey = JSON.parse(other.stdout.toString())
        const untrusted = yield* tessera(["cdm", "verify", "--trust", `0=${otherKey.public}`, file])
        assert.strictEqual(untrusted.code, 1)
        assert.match(untrusted.stderr, /needs an rsa key/)

        const ed = yield* tessera([
          "cdm",
          "make",
          "--key",
          otherKey.private,
          "--slot",
          "7",
          "--regnum",
          "3",
          "--out",
          dir,
          "--json",
          payload
        ])
        assert.strictEqual(ed.code, 0, ed.stderr)
        const edFile = JSON.parse(ed.stdout.toString()).file as string
        const edOk = yield* tessera(["cdm", "verify", "--json", "--trust", `3=${otherKey.public}`, edFile])
        assert.strictEqual(edOk.code, 0, edOk.stderr)
        assert.strictEqual(JSON.parse(edOk.stdout.toString()).signer, "someone")
      }),
    { timeout: 120_000 }
  )

  it.live("bad input exits 2 with one clear line", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("tessera-cdm-")
      const noFile = yield* tessera(["cdm", "inspect", path.join(dir, "missing.mfz")])
      assert.strictEqual(noFile.code, 2)
      assert.match(noFile.stderr, /ENOENT/)
      fs.writeFileSync(path.join(dir, "junk.mfz"), "not a release")
      const junk = yield* tessera(["cdm", "inspect", path.join(dir, "junk.mfz")])
      assert.strictEqual(junk.code, 2)
      assert.match(junk.stderr, /header needs 1024 bytes/)
      const badHandle = yield* tessera(["cdm", "keygen", "--handle", "-bad", "--out", dir])
      assert.strictEqual(badHandle.code, 2)
      const badSlot = yield* tessera(["cdm", "make", "--key", "x", "--slot", "0", path.join(dir, "junk.mfz")])
      assert.strictEqual(badSlot.code, 2)
      const badTrust = yield* tessera(["cdm", "verify", "--trust", "zero", path.join(dir, "junk.mfz")])
      assert.strictEqual(badTrust.code, 2)
      assert.match(badTrust.stderr, /REGNUM=PUBKEYFILE/)
    }), { timeout: 120_000 })
})
