import { assert, describe, it } from "@effect/vitest"
import fc from "fast-check"
import * as Bytes from "../src/internal/bytes.ts"

describe("internal/bytes", () => {
  it("round-trips signed 64-bit safe integers", () => {
    fc.assert(fc.property(fc.maxSafeInteger(), fc.boolean(), (n, negative) => {
      const value = negative ? -n : n
      const buffer = new Uint8Array(8)
      Bytes.putI64le(buffer, 0, value)
      assert.strictEqual(Bytes.i64le(buffer, 0), value)
      assert.strictEqual(new DataView(buffer.buffer).getBigInt64(0, true), BigInt(value))
    }))
  })

  it("rejects 64-bit values outside the safe range", () => {
    const buffer = new Uint8Array(8).fill(0xff)
    assert.strictEqual(Bytes.u64le(buffer, 0), undefined)
    assert.strictEqual(Bytes.i64le(buffer, 0), -1)
    buffer[7] = 0x7f
    assert.strictEqual(Bytes.i64le(buffer, 0), undefined)
  })

  it("round-trips unsigned 32-bit in both byte orders", () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 0xffff_ffff }), (value) => {
      const buffer = new Uint8Array(4)
      Bytes.putU32le(buffer, 0, value)
      assert.strictEqual(Bytes.u32le(buffer, 0), value)
      Bytes.putU32be(buffer, 0, value)
      assert.strictEqual(Bytes.u32be(buffer, 0), value)
    }))
  })
})
