import { assert, describe, it } from "@effect/vitest"
import { Effect, Result } from "effect"
import { Address } from "../src/index.ts"

describe("Address", () => {
  it("parses each scheme", () => {
    assert.deepStrictEqual(Result.getOrThrow(Address.parse("tcp://127.0.0.1:5170")), Address.tcp("127.0.0.1", 5170))
    assert.deepStrictEqual(Result.getOrThrow(Address.parse("tcp://[::1]:0")), Address.tcp("::1", 0))
    assert.deepStrictEqual(
      Result.getOrThrow(Address.parse("tcp://host.example:65535")),
      Address.tcp("host.example", 65535)
    )
    assert.deepStrictEqual(Result.getOrThrow(Address.parse("unix:/run/a.sock")), Address.unix("/run/a.sock"))
    assert.deepStrictEqual(Result.getOrThrow(Address.parse("unix:///run/a.sock")), Address.unix("/run/a.sock"))
    assert.deepStrictEqual(Result.getOrThrow(Address.parse("unix:rel.sock")), Address.unix("rel.sock"))
    assert.deepStrictEqual(Result.getOrThrow(Address.parse("memory:pipe-1")), Address.memory("pipe-1"))
  })

  it("formats back to a string that parses to the same address", () => {
    for (const text of ["tcp://127.0.0.1:5170", "tcp://[::1]:80", "unix:/run/a.sock", "memory:x"]) {
      const address = Result.getOrThrow(Address.parse(text))
      assert.strictEqual(Address.format(address), text)
    }
  })

  it("refuses malformed addresses with an AddressError saying why", () => {
    const cases: ReadonlyArray<readonly [string, string]> = [
      ["http://example.com", "unknown scheme"],
      ["tcp://127.0.0.1", "expected tcp://host:port"],
      ["tcp://:80", "the host is empty"],
      ["tcp://127.0.0.1:65536", "the port must be an integer from 0 to 65535"],
      ["tcp://127.0.0.1:-1", "the port must be an integer"],
      ["tcp://127.0.0.1:8o", "the port must be an integer"],
      ["tcp://::1:80", "an IPv6 host must be written in brackets"],
      ["tcp://[::1:80", "unclosed '['"],
      ["tcp://user@host:80", "not allowed in a host"],
      ["unix:", "the socket path is empty"],
      ["unix:/a\0b", "NUL byte"],
      ["memory:", "the pipe name is empty"]
    ]
    for (const [input, reason] of cases) {
      const result = Address.parse(input)
      assert.isTrue(Result.isFailure(result), input)
      if (Result.isFailure(result)) {
        assert.include(result.failure.reason, reason)
        assert.include(result.failure.message, JSON.stringify(input))
      }
    }
  })

  it.effect("parseEffect fails in the error channel", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Address.parseEffect("nope"))
      assert.strictEqual(error._tag, "AddressError")
    }))
})
