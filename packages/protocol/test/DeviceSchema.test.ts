import { assert, describe, it } from "@effect/vitest"
import { Effect, Result } from "effect"
import fc from "fast-check"
import * as DeviceSchema from "../src/DeviceSchema.ts"

const GOLDEN = `device "disk0" {
  size      = "256m"
  system    = "memory"
  blocksize = "1m"
  expose    = false
  location  = ""
}
`

describe("DeviceSchema", () => {
  it("encodes as one aligned HCL block with every attribute", () => {
    assert.strictEqual(
      DeviceSchema.encode({ name: "disk0", size: 256 * 1024 ** 2, system: "memory", blockSize: 1024 ** 2 }),
      GOLDEN
    )
  })

  it.effect("parses what it encodes, and Silo-style blocks with other attributes and layout", () =>
    Effect.gen(function*() {
      const parsed = yield* DeviceSchema.parse(GOLDEN)
      assert.deepStrictEqual(parsed, {
        name: "disk0",
        size: 256 * 1024 ** 2,
        system: "memory",
        blockSize: 1024 ** 2,
        location: undefined,
        expose: false,
        attributes: {}
      })
      const silo = yield* DeviceSchema.parse(`# a comment
device memory {
  system = "file"
  size = "1G"
  location = "./disk.img"
  pid = 0
  migration {
    anyorder = true
  }
}`)
      assert.strictEqual(silo.name, "memory")
      assert.strictEqual(silo.size, 1024 ** 3)
      assert.strictEqual(silo.location, "./disk.img")
      assert.isUndefined(silo.blockSize)
      assert.deepStrictEqual(silo.attributes, { pid: 0, migration: [{ anyorder: true }] })
    }))

  it.effect("round-trips any device through encode and parse", () =>
    Effect.promise(() =>
      fc.assert(
        fc.asyncProperty(
          fc.record({
            name: fc.string({ minLength: 1, maxLength: 20 }),
            size: fc.nat({ max: 2 ** 40 }),
            system: fc.constantFrom("memory" as const, "file" as const, "sparsefile" as const),
            blockSize: fc.option(fc.integer({ min: 1, max: 2 ** 30 }), { nil: undefined }),
            location: fc.option(fc.string({ minLength: 1, maxLength: 30 }), { nil: undefined }),
            expose: fc.boolean()
          }),
          async (schema) => {
            const parsed = await Effect.runPromise(DeviceSchema.parse(DeviceSchema.encode(schema)))
            assert.deepStrictEqual(parsed, { ...schema, attributes: {} })
          }
        ),
        { numRuns: 60 }
      )
    ))

  it.effect("refuses text that is not exactly one usable device block", () =>
    Effect.gen(function*() {
      for (
        const [text, detail] of [
          [`device "a" { size = `, "Missing expression"],
          [``, "exactly one device block, found 0"],
          [
            `device "a" {\n size = "1m"\n system = "memory"\n}\ndevice "b" {\n size = "1m"\n system = "memory"\n}`,
            "found 2"
          ],
          [`device "a" {\n size = "1m"\n}`, "no system"],
          [`device "a" {\n size = "1m"\n system = "s3"\n}`, "not supported"],
          [`device "a" {\n size = "lots"\n system = "memory"\n}`, "not a size"],
          [`device "a" {\n system = "memory"\n}`, "no size"],
          [`device "a" {\n size = 5\n system = "memory"\n}`, "size must be a string"],
          [`other "a" {\n}`, "unexpected other"]
        ] as const
      ) {
        const error = yield* Effect.flip(DeviceSchema.parse(text))
        assert.strictEqual(error._tag, "DeviceSchemaError")
        assert.include(error.message, detail)
      }
    }))

  it.effect("keeps template openers literal in names and locations", () =>
    Effect.gen(function*() {
      const schema = { name: "a${x}%{y}", size: 0, system: "file" as const, location: "${ %{ $${ %%{" }
      const parsed = yield* DeviceSchema.parse(DeviceSchema.encode(schema))
      assert.strictEqual(parsed.name, schema.name)
      assert.strictEqual(parsed.location, schema.location)
    }))

  it("parses Silo's byte syntax", () => {
    assert.deepStrictEqual(Result.getOrThrow(DeviceSchema.parseSize(" 4K ")), 4096)
    assert.deepStrictEqual(Result.getOrThrow(DeviceSchema.parseSize("")), 0)
    assert.deepStrictEqual(Result.getOrThrow(DeviceSchema.parseSize("3b")), 3)
    assert.isTrue(Result.isFailure(DeviceSchema.parseSize("1.5m")))
    assert.strictEqual(DeviceSchema.formatSize(1536), "1536")
    assert.strictEqual(DeviceSchema.formatSize(0), "0")
  })
})
