import { assert, describe, it } from "@effect/vitest"
import { Result } from "effect"
import * as fc from "fast-check"
import * as CircuitFragment from "../src/CircuitFragment.ts"
import { split } from "./utils/chunks.ts"

const kinds = Object.values(CircuitFragment.Kind)
const text = fc.string({ unit: "grapheme", maxLength: 60 })
const safe = fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER })

const fragment: fc.Arbitrary<CircuitFragment.Fragment> = fc.record({
  kind: fc.constantFrom(...kinds),
  fromPeerId: text,
  fromPeerName: text,
  fromService: text,
  fromServiceVersion: text,
  toPeerId: text,
  toPeerName: text,
  toService: text,
  toServiceVersion: text,
  circuitId: text,
  serial: safe,
  fragOp: fc.integer({ min: -0x8000_0000, max: 0x7fff_ffff }),
  fragPart: safe,
  subject: text,
  err: text,
  args: fc.dictionary(text, text, { maxKeys: 6 }),
  payload: fc.uint8Array({ maxLength: 600 })
})

const reason = (bytes: Uint8Array) => {
  const decoded = CircuitFragment.decode(bytes)
  assert.isTrue(Result.isFailure(decoded))
  return Result.isFailure(decoded) ? decoded.failure : undefined
}

const plain = (f: CircuitFragment.Fragment) => ({ ...f, args: { ...f.args }, payload: Array.from(f.payload) })

/** The fragments encoded back to back, cut at `cuts`, pushed through one parser: what it gave, and the parser. */
const parseCut = (fragments: ReadonlyArray<CircuitFragment.Fragment>, cuts: ReadonlyArray<number>) => {
  const stream = Buffer.concat(fragments.map(CircuitFragment.encode))
  const parser = CircuitFragment.makeParser()
  const out: Array<CircuitFragment.Fragment> = []
  for (const part of split(stream, cuts)) out.push(...Result.getOrThrow(parser.push(part)))
  return { out, parser }
}

describe("CircuitFragment", () => {
  it("lays out the fixed header big-endian", () => {
    const bytes = CircuitFragment.encode({
      ...CircuitFragment.empty,
      kind: CircuitFragment.Kind.Traffic,
      fragOp: -2,
      fragPart: 0x0102_0304_0506,
      serial: 7,
      circuitId: "c",
      payload: new Uint8Array([9, 8])
    })
    const hex = Buffer.from(bytes).toString("hex")
    // magic c17c, version 1, kind 117 (0x75), length, fragOp -2, fragPart, serial
    assert.strictEqual(hex.slice(0, 8), "c17c0175")
    assert.strictEqual(bytes.length, CircuitFragment.frameLength(bytes))
    assert.strictEqual(hex.slice(16, 24), "fffffffe")
    assert.strictEqual(hex.slice(24, 40), "0000010203040506")
    assert.strictEqual(hex.slice(40, 56), "0000000000000007")
    // 8 empty strings, then circuitId "c", subject and err empty, no args, payload
    assert.strictEqual(hex.slice(56), `${"0000".repeat(8)}000163${"0000".repeat(3)}0908`)
  })

  it("round-trips every field", () =>
    fc.assert(fc.property(fragment, (f) => {
      const decoded = CircuitFragment.decode(CircuitFragment.encode(f))
      assert.isTrue(Result.isSuccess(decoded))
      assert.deepStrictEqual(plain(Result.getOrThrow(decoded)), plain(f))
    })))

  it("header plus payload by reference equals the whole frame", () =>
    fc.assert(fc.property(fragment, (f) => {
      const header = CircuitFragment.encodeHeader(f)
      assert.deepStrictEqual(
        Array.from(Buffer.concat([header, f.payload])),
        Array.from(CircuitFragment.encode(f))
      )
    })))

  it("parses a stream cut anywhere into the same fragments", () =>
    fc.assert(fc.property(
      fc.array(fragment, { minLength: 1, maxLength: 5 }),
      fc.array(fc.nat(), { maxLength: 12 }),
      (fragments, cuts) => {
        const { out, parser } = parseCut(fragments, cuts)
        assert.isTrue(Result.isSuccess(parser.end()))
        assert.deepStrictEqual(out.map(plain), fragments.map(plain))
      }
    )))

  it("a frame from an encoded address equals the frame, its payload inline or by reference, in given memory", () =>
    fc.assert(fc.property(fragment, fc.nat({ max: 64 }), (f, offset) => {
      const address = CircuitFragment.encodeAddress(f)
      const memory = new Uint8Array(offset + 2 * CircuitFragment.encode(f).length)
      let next = offset
      const allocate = (size: number) => {
        const bytes = memory.subarray(next, next + size).fill(0xee)
        next += size
        return bytes
      }
      const whole = Array.from(CircuitFragment.encode(f))
      assert.deepStrictEqual(Array.from(CircuitFragment.encodeWith(address, f, true, allocate)), whole)
      const header = CircuitFragment.encodeWith(address, f, false, allocate)
      assert.deepStrictEqual(Array.from(Buffer.concat([header, f.payload])), whole)
    })))

  it("parses frames of a few addresses, in any order and cut anywhere, as each decodes alone", () => {
    // Addresses that differ in one field only, or not at all, so a reused address would show.
    const address = fc.record({
      fromPeerId: fc.constantFrom("a", "b"),
      fromPeerName: fc.constantFrom("", "n"),
      fromService: fc.constant("s"),
      fromServiceVersion: fc.constantFrom("", "1"),
      toPeerId: fc.constantFrom("a", "b"),
      toPeerName: fc.constant(""),
      toService: fc.constantFrom("s", "t"),
      toServiceVersion: fc.constant(""),
      circuitId: fc.constantFrom("c", "d", "é")
    })
    const framed = fc.tuple(fragment, address).map(([f, a]) => ({ ...f, ...a }))
    return fc.assert(fc.property(
      fc.array(framed, { minLength: 1, maxLength: 12 }),
      fc.array(fc.nat(), { maxLength: 12 }),
      (fragments, cuts) => {
        const { out } = parseCut(fragments, cuts)
        assert.deepStrictEqual(out.map(plain), fragments.map(plain))
      }
    ))
  })

  it("never throws on arbitrary bytes, and refuses most of them", () =>
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
        const decoded = CircuitFragment.decode(bytes)
        if (Result.isSuccess(decoded)) assert.strictEqual(CircuitFragment.frameLength(bytes), bytes.length)
      }),
      { numRuns: 2000 }
    ))

  it("never throws on mutated frames", () =>
    fc.assert(
      fc.property(fragment, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }), (
        f,
        edits
      ) => {
        const bytes = CircuitFragment.encode(f)
        for (const [at, value] of edits) bytes[at % bytes.length] = value
        const decoded = CircuitFragment.decode(bytes)
        const parsed = CircuitFragment.makeParser().push(bytes)
        // The same bytes give the same verdict through the parser (when the length still matches).
        if (Result.isSuccess(decoded)) assert.isTrue(Result.isSuccess(parsed))
      }),
      { numRuns: 2000 }
    ))

  it("refuses bad magic, version, kind, length and UTF-8 with offsets", () => {
    const good = CircuitFragment.encode({ ...CircuitFragment.empty, subject: "é", payload: new Uint8Array(4) })
    const broken = (at: number, value: number) => {
      const copy = good.slice()
      copy[at] = value
      return copy
    }
    assert.include(reason(broken(0, 0))!.reason, "magic")
    assert.include(reason(broken(2, 2))!.reason, "version 2")
    assert.include(reason(broken(3, 99))!.reason, "unknown kind 99")
    assert.include(reason(good.subarray(0, good.length - 1))!.reason, "frame length")
    assert.include(reason(new Uint8Array(10))!.reason, "needs 28 bytes")
    // The subject's first UTF-8 byte (after 9 empty strings and its length) made a stray continuation byte.
    const at = CircuitFragment.FIXED_HEADER_SIZE + 9 * 2 + 2
    const bad = reason(broken(at, 0xa9))!
    assert.include(bad.reason, "UTF-8")
    assert.strictEqual(bad.offset, at)
    // A string length running past the frame.
    const long = reason(broken(CircuitFragment.FIXED_HEADER_SIZE, 0xff))!
    assert.include(long.reason, "past the header")
  })

  it("refuses a payload over the cap, in the parser before buffering it", () => {
    const frame = CircuitFragment.encode({ ...CircuitFragment.empty, payload: new Uint8Array(2000) })
    const decoded = CircuitFragment.decode(frame, { maxPayload: 1000 })
    assert.isTrue(Result.isFailure(decoded))
    const parser = CircuitFragment.makeParser({ maxPayload: 100, maxHeader: 200 })
    const pushed = parser.push(frame.subarray(0, 8))
    assert.isTrue(Result.isFailure(pushed))
    assert.strictEqual(parser.buffered(), 8)
  })

  it("keeps keys like __proto__ as plain args and refuses repeated keys", () => {
    const frame = CircuitFragment.encode({ ...CircuitFragment.empty, args: JSON.parse(`{"__proto__":"x","a":"b"}`) })
    const decoded = Result.getOrThrow(CircuitFragment.decode(frame))
    assert.deepStrictEqual(Object.keys(decoded.args), ["__proto__", "a"])
    assert.strictEqual(decoded.args["__proto__"], "x")
    // Turn key "b" into a second "a".
    const dup = CircuitFragment.encode({ ...CircuitFragment.empty, args: { a: "1", b: "2" } })
    const keyB = dup.lastIndexOf(0x62)
    dup[keyB] = 0x61
    const failed = CircuitFragment.decode(dup)
    assert.isTrue(Result.isFailure(failed) && failed.failure.reason.includes("repeated"))
  })

  it("refuses to encode values the format cannot hold", () => {
    assert.throws(() => CircuitFragment.encodeHeader({ ...CircuitFragment.empty, fragOp: 2 ** 31 }), RangeError)
    assert.throws(() => CircuitFragment.encodeHeader({ ...CircuitFragment.empty, serial: 0.5 }), RangeError)
    assert.throws(
      () => CircuitFragment.encodeHeader({ ...CircuitFragment.empty, subject: "x".repeat(70000) }),
      RangeError
    )
  })
})
