import { assert, describe, it } from "@effect/vitest"
import { Result } from "effect"
import * as fc from "fast-check"
import { gzipSync } from "node:zlib"
import * as SiloCompression from "../src/SiloCompression.ts"
import { blockData, compression, fromHex, toHex, vectors } from "./utils/SiloArbitraries.ts"

const vectorsOf = (name: string) => vectors.packets.filter((v) => v.packet === name)

const dataOf = (fields: { readonly [key: string]: unknown }): Uint8Array => fromHex(fields["data_hex"] as string)

const failure = <A>(result: Result.Result<A, { readonly reason: string }>): string => {
  assert.isTrue(Result.isFailure(result), "expected a failure")
  return Result.isFailure(result) ? result.failure.reason : ""
}

/** A uvarint, for hand-built bodies. */
const uvarint = (value: bigint): Array<number> => {
  const out: Array<number> = []
  while (value >= 0x80n) {
    out.push(Number(value & 0x7fn) | 0x80)
    value >>= 7n
  }
  out.push(Number(value))
  return out
}

/** A straight transcription of the spec's RLE encoder (walk `p`, look the run up by start), as a reference. */
const referenceRle = (data: Uint8Array): Array<number> => {
  const runs = new Map<number, number>()
  let prev = 0
  let run = 0
  for (let i = 0; i < data.length; i++) {
    if (data[i] !== prev) {
      if (run >= 4) runs.set(i - run, run)
      run = 1
      prev = data[i]!
    } else run++
  }
  if (run > 4) runs.set(data.length - run, run)
  const out: Array<number> = []
  const literal = (from: number, to: number) => {
    if (to > from) out.push(...uvarint(BigInt(2 * (to - from))), ...data.subarray(from, to))
  }
  let start = 0
  let p = 0
  while (p < data.length) {
    const length = runs.get(p)
    if (length === undefined) {
      p++
      continue
    }
    literal(start, p)
    out.push(...uvarint(BigInt(2 * length + 1)), data[p]!)
    p += length
    start = p
  }
  literal(start, data.length)
  return out
}

/** A straight transcription of the spec's zeroes encoder (check the next 12 bytes at every zero). */
const referenceZeroes = (data: Uint8Array): Array<number> => {
  const out = Array.from(new Uint8Array(new BigUint64Array([BigInt(data.length)]).buffer))
  let p = 0
  while (true) {
    while (p < data.length && data[p] === 0) p++
    if (p === data.length) return out
    const start = p
    while (p < data.length) {
      if (data[p] === 0 && data.subarray(p, p + 12).every((b) => b === 0)) break
      p++
    }
    out.push(...uvarint(BigInt(2 * start)), ...uvarint(BigInt(2 * (p - start))), ...data.subarray(start, p))
  }
}

describe("SiloCompression", () => {
  describe("RLE", () => {
    it("encodes every RLE vector byte-exact", () => {
      const rle = vectorsOf("WriteAtCompRLE")
      assert.isAbove(rle.length, 5)
      for (const v of rle) {
        assert.strictEqual(toHex(SiloCompression.compress("RLE", dataOf(v.fields))), v.hex.slice(20), v.name)
      }
    })

    it("decodes every RLE vector", () => {
      for (const v of vectorsOf("WriteAtCompRLE")) {
        const data = Result.getOrThrow(SiloCompression.decompress("RLE", fromHex(v.hex), 10))
        assert.strictEqual(toHex(data), v.fields["data_hex"], v.name)
      }
    })

    it("keeps the final-run quirk: 4 equal bytes at the end stay literal, 4 in the middle are a run", () => {
      assert.deepStrictEqual(Array.from(SiloCompression.compress("RLE", Uint8Array.of(1, 7, 7, 7, 7))), [
        10,
        1,
        7,
        7,
        7,
        7
      ])
      assert.deepStrictEqual(Array.from(SiloCompression.compress("RLE", Uint8Array.of(7, 7, 7, 7, 1))), [9, 7, 2, 1])
    })

    it("matches a transcription of the spec's encoder on any data", () => {
      fc.assert(fc.property(blockData, (data) => {
        assert.deepStrictEqual(Array.from(SiloCompression.compress("RLE", data)), referenceRle(data))
      }))
    })

    it("fails on a literal or a run value that overruns the body (Go panics)", () => {
      assert.match(failure(SiloCompression.decompress("RLE", Uint8Array.of(0x0a, 1))), /^invalid packet/)
      assert.match(failure(SiloCompression.decompress("RLE", Uint8Array.of(0x09))), /^invalid packet/)
      assert.match(failure(SiloCompression.decompress("RLE", Uint8Array.of(0x80, 0x80))), /^invalid packet/)
      assert.match(failure(SiloCompression.decompress("RLE", new Uint8Array(11).fill(0x81))), /^invalid packet/)
    })

    it("refuses a run of 2^40 bytes before allocating it", () => {
      const body = Uint8Array.from([...uvarint(2n * (1n << 40n) + 1n), 0x41])
      assert.include(failure(SiloCompression.decompress("RLE", body)), "exceeds the maximum of 33554432")
    })

    it("caps the sum of many small chunks at maxDecompressedLength", () => {
      const body = Uint8Array.from([...uvarint(2n * 600n + 1n), 1, ...uvarint(2n * 600n + 1n), 2])
      assert.isTrue(Result.isSuccess(SiloCompression.decompress("RLE", body, 0, { maxDecompressedLength: 1200 })))
      assert.include(
        failure(SiloCompression.decompress("RLE", body, 0, { maxDecompressedLength: 1199 })),
        "exceeds the maximum of 1199"
      )
    })
  })

  describe("Zeroes", () => {
    it("encodes every zeroes vector byte-exact", () => {
      const zeroes = vectorsOf("WriteAtCompZeroes")
      assert.isAbove(zeroes.length, 4)
      for (const v of zeroes) {
        assert.strictEqual(toHex(SiloCompression.compress("Zeroes", dataOf(v.fields))), v.hex.slice(20), v.name)
      }
    })

    it("decodes every zeroes vector", () => {
      for (const v of vectorsOf("WriteAtCompZeroes")) {
        const data = Result.getOrThrow(SiloCompression.decompress("Zeroes", fromHex(v.hex), 10))
        assert.strictEqual(toHex(data), v.fields["data_hex"], v.name)
      }
    })

    it("matches a transcription of the spec's encoder on any data", () => {
      fc.assert(fc.property(blockData, (data) => {
        assert.deepStrictEqual(Array.from(SiloCompression.compress("Zeroes", data)), referenceZeroes(data))
      }))
    })

    it("refuses a total length of 2^40 before allocating it", () => {
      const body = new Uint8Array(8)
      body[5] = 1 // 2^40 little-endian
      const started = performance.now()
      assert.include(failure(SiloCompression.decompress("Zeroes", body)), "exceeds the maximum of 33554432")
      assert.isBelow(performance.now() - started, 1000)
    })

    it("refuses a total length beyond 2^53", () => {
      assert.include(failure(SiloCompression.decompress("Zeroes", new Uint8Array(8).fill(0xff))), "2^53")
    })

    it("fails with Go's text on bad ranges", () => {
      const total4 = [4, 0, 0, 0, 0, 0, 0, 0]
      for (
        const records of [
          [2, 6, 1, 2, 3], // start 1, length 3: ends at 4, fine
          [2, 8, 1, 2, 3, 4], // start 1, length 4: past the total of 4
          [1, 2, 0], // negative start
          [2, 3], // negative length
          [2, 4, 1], // one data byte of two
          [0x80] // truncated varint
        ]
      ) {
        const result = SiloCompression.decompress("Zeroes", Uint8Array.from([...total4, ...records]))
        if (records.length === 5) assert.deepStrictEqual(Array.from(Result.getOrThrow(result)), [0, 1, 2, 3])
        else assert.strictEqual(failure(result), "invalid range in compressed data")
      }
    })

    it("fails on a body shorter than its 8-byte length", () => {
      assert.match(failure(SiloCompression.decompress("Zeroes", new Uint8Array(7))), /^invalid packet/)
    })
  })

  describe("Gzip", () => {
    it("decodes Go's bytes", () => {
      const gzip = vectorsOf("WriteAtCompGzip")
      assert.isAbove(gzip.length, 1)
      for (const v of gzip) {
        const data = Result.getOrThrow(SiloCompression.decompress("Gzip", fromHex(v.hex), 10))
        assert.strictEqual(toHex(data), v.fields["data_hex"], v.name)
      }
    })

    it("writes Go's member header (level 1, OS 255)", () => {
      assert.strictEqual(
        toHex(SiloCompression.compress("Gzip", new Uint8Array(100)).subarray(0, 10)),
        "1f8b08000000000004ff"
      )
    })

    it("accepts concatenated members (Go's followed by ours)", () => {
      const go = fromHex(vectorsOf("WriteAtCompGzip")[0]!.hex).subarray(10)
      const ours = SiloCompression.compress("Gzip", Uint8Array.of(1, 2, 3))
      const both = Result.getOrThrow(SiloCompression.decompress("Gzip", Uint8Array.from([...go, ...ours])))
      assert.strictEqual(toHex(both), vectorsOf("WriteAtCompGzip")[0]!.fields["data_hex"] + "010203")
    })

    it("fails on truncated, corrupted or empty streams", () => {
      const good = SiloCompression.compress("Gzip", Uint8Array.of(1, 2, 3, 4, 5))
      const corrupt = good.slice()
      corrupt[good.length - 6]! ^= 0xff // CRC32
      for (const bad of [good.subarray(0, good.length - 3), corrupt, new Uint8Array(0), Uint8Array.of(1, 2, 3)]) {
        assert.match(failure(SiloCompression.decompress("Gzip", bad)), /^gzip: /)
      }
    })

    it("stops inflating at the cap", () => {
      const bomb = gzipSync(new Uint8Array(4 * 1024 * 1024), { level: 9 })
      assert.isBelow(bomb.length, 8192)
      assert.include(
        failure(SiloCompression.decompress("Gzip", bomb, 0, { maxDecompressedLength: 1024 * 1024 })),
        "exceeds the maximum of 1048576"
      )
      assert.strictEqual(
        Result.getOrThrow(SiloCompression.decompress("Gzip", bomb, 0, { maxDecompressedLength: 4 * 1024 * 1024 }))
          .length,
        4 * 1024 * 1024
      )
    })
  })

  it("round-trips any data through every compression, after a reserved prefix", () => {
    fc.assert(fc.property(compression, blockData, fc.nat({ max: 16 }), (c, data, reserve) => {
      const out = SiloCompression.compress(c, data, reserve)
      assert.isTrue(out.subarray(0, reserve).every((b) => b === 0))
      assert.deepStrictEqual(
        Array.from(Result.getOrThrow(SiloCompression.decompress(c, out, reserve))),
        Array.from(data)
      )
    }))
  })

  it("maps subtype bytes to compressions and back", () => {
    for (const c of ["RLE", "Gzip", "Zeroes"] as const) {
      assert.strictEqual(SiloCompression.fromType(SiloCompression.CompressionType[c]), c)
    }
    for (const t of [0, 1, 3, 6, 255]) assert.isUndefined(SiloCompression.fromType(t))
  })

  it("never throws on random bodies and never returns more than the cap", () => {
    fc.assert(
      fc.property(compression, fc.uint8Array({ maxLength: 200 }), (c, body) => {
        let result: Result.Result<Uint8Array, unknown> | undefined
        try {
          result = SiloCompression.decompress(c, body, 0, { maxDecompressedLength: 4096 })
        } catch (error) {
          assert.fail(`threw ${String(error)}`)
        }
        if (result && Result.isSuccess(result)) assert.isAtMost(result.success.length, 4096)
      }),
      { numRuns: 2000 }
    )
  })
})
