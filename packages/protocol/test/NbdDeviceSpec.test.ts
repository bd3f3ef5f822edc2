import { assert, describe, it } from "@effect/vitest"
import * as Memory from "@tessera/storage/Memory"
import { Effect, Result } from "effect"
import * as Address from "../src/Address.ts"
import * as NbdDeviceSpec from "../src/NbdDeviceSpec.ts"
import * as NbdExport from "../src/NbdExport.ts"
import * as NbdServer from "../src/NbdServer.ts"
import * as Transport from "../src/Transport.ts"

const ok = (input: string) => {
  const parsed = NbdDeviceSpec.parse(input)
  if (Result.isFailure(parsed)) return assert.fail(`${input}: ${parsed.failure.message}`)
  return parsed.success
}

const bad = (input: string) => {
  const parsed = NbdDeviceSpec.parse(input)
  if (Result.isSuccess(parsed)) return assert.fail(`${input} parsed`)
  return parsed.failure.message
}

describe("NbdDeviceSpec", () => {
  it("parses nbd:// and nbd+unix:// URIs, and passes the other specs to DeviceSpec", () => {
    assert.deepInclude(ok("nbd://example.org/disk"), {
      _tag: "Nbd",
      address: Address.tcp("example.org", 10809),
      exportName: "disk"
    })
    assert.deepInclude(ok("nbd://127.0.0.1:10900/a%20b"), {
      address: Address.tcp("127.0.0.1", 10900),
      exportName: "a b"
    })
    assert.deepInclude(ok("nbd://[::1]:99/"), { address: Address.tcp("::1", 99), exportName: "" })
    assert.deepInclude(ok("nbd+unix:///vm?socket=/run/nbd.sock"), {
      address: Address.unix("/run/nbd.sock"),
      exportName: "vm"
    })
    assert.deepStrictEqual(ok("memory:1MiB"), { _tag: "Memory", size: 1024 * 1024 })
    assert.deepStrictEqual(ok("file:/tmp/x"), { _tag: "File", path: "/tmp/x" })
  })

  it("refuses malformed NBD URIs and unknown specs with a clear reason", () => {
    assert.include(bad("nbd://"), "host")
    assert.include(bad("nbd+unix:///vm"), "socket")
    assert.include(bad("nbd+unix://host/vm?socket=/s"), "no host")
    assert.include(bad("nbd://h/%zz"), "percent")
    assert.include(bad("disk.img"), "nbd://")
  })

  it.live("opens an export of a server, checks its size and reports a missing export as NotFound", () =>
    Effect.gen(function*() {
      const server = yield* NbdServer.make("tcp://127.0.0.1:0", {
        exports: [NbdExport.make("d", yield* Memory.make(65536))]
      })
      const uri = `nbd://${Address.format(server.address).slice("tcp://".length)}/`
      const device = yield* NbdDeviceSpec.open(ok(`${uri}d`), { size: 65536 })
      assert.strictEqual(device.size, 65536)
      const wrongSize = yield* Effect.flip(NbdDeviceSpec.open(ok(`${uri}d`), { size: 4096 }))
      assert.strictEqual(wrongSize.reason._tag, "Unsupported")
      const missing = yield* Effect.flip(NbdDeviceSpec.open(ok(`${uri}nope`)))
      assert.strictEqual(missing.reason._tag, "NotFound")
    }).pipe(Effect.scoped, Effect.timeout("30 seconds"), Effect.provide(Transport.Transport.layer)))
})
