import { assert, describe, it } from "@effect/vitest"
import { Result } from "effect"
import * as fc from "fast-check"
import * as SiloFrame from "../src/SiloFrame.ts"
import * as SiloPacket from "../src/SiloPacket.ts"
import { split } from "./utils/chunks.ts"
import { type Conversation, fromHex, toHex, u32, vectors } from "./utils/SiloArbitraries.ts"

const directions = ["src->dst", "dst->src"] as const

const streamOf = (c: Conversation, direction: (typeof directions)[number]): Uint8Array =>
  fromHex(direction === "src->dst" ? c.stream_src_to_dst_hex : c.stream_dst_to_src_hex)

const parseAll = (parts: ReadonlyArray<Uint8Array>, options?: SiloFrame.ParserOptions): Array<SiloFrame.Frame> => {
  const parser = SiloFrame.makeParser(options)
  const frames: Array<SiloFrame.Frame> = []
  for (const part of parts) frames.push(...Result.getOrThrow(parser.push(part)))
  assert.isTrue(Result.isSuccess(parser.end()))
  return frames
}

const plain = (frames: ReadonlyArray<SiloFrame.Frame>) =>
  frames.map((f) => ({ offset: f.offset, dev: f.dev, id: f.id, payload: Array.from(f.payload) }))

const frameBytes = fc.record({ dev: u32, id: u32, payload: fc.uint8Array({ minLength: 1, maxLength: 300 }) })

describe("SiloFrame", () => {
  it("encodes the header little-endian: the spec's NeedAt example", () => {
    const payload = SiloPacket.encode({ _tag: "NeedAt", offset: 2048, length: 1024 })
    // 01000000 01000000 0d000000 | 03 0008000000000000 00040000
    assert.strictEqual(toHex(SiloFrame.encode(1, 1, payload)), "01000000010000000d00000003000800000000000000040000")
    assert.strictEqual(toHex(SiloFrame.encodeHeader(1, 1, 13)), "01000000010000000d000000")
  })

  it("writes headers into a slab at any offset", () => {
    const slab = new Uint8Array(30).fill(0xee)
    SiloFrame.encodeHeaderInto(slab, 5, 0xffff_ffff, 0x1234_5678, 0x0102_0304)
    assert.strictEqual(toHex(slab.subarray(5, 17)), "ffffffff7856341204030201")
    assert.strictEqual(slab[4], 0xee)
    assert.strictEqual(slab[17], 0xee)
  })

  it("decodes headers, and fails on a short one", () => {
    assert.deepStrictEqual(
      Result.getOrThrow(SiloFrame.decodeHeader(fromHex("aa010000000200000003000000"), 1)),
      { dev: 1, id: 2, length: 3 }
    )
    const short = SiloFrame.decodeHeader(new Uint8Array(11))
    assert.isTrue(Result.isFailure(short))
  })

  it("HeaderSlab writes the same bytes as encodeHeaderInto and reads them back", () => {
    fc.assert(fc.property(fc.nat({ max: 100 }), u32, u32, u32, (at, dev, id, length) => {
      const slab = new SiloFrame.HeaderSlab(new Uint8Array(128).subarray(3))
      slab.encode(at, dev, id, length)
      const expected = new Uint8Array(125)
      SiloFrame.encodeHeaderInto(expected, at, dev, id, length)
      assert.strictEqual(toHex(slab.bytes), toHex(expected))
      assert.deepStrictEqual(Result.getOrThrow(slab.decode(at)), { dev, id, length })
    }))
    const slab = new SiloFrame.HeaderSlab(new Uint8Array(20))
    assert.isTrue(Result.isFailure(slab.decode(9)))
    assert.isTrue(Result.isFailure(slab.decode(-1)))
  })

  it("refuses to encode an empty payload", () => {
    assert.throws(() => SiloFrame.encode(1, 1, new Uint8Array(0)), RangeError)
  })

  for (const conversation of vectors.conversations) {
    for (const direction of directions) {
      const expected = conversation.frames.filter((f) => f.direction === direction)

      it(`${conversation.name} ${direction}: parses into exactly the listed frames at any chunk boundaries`, () => {
        const stream = streamOf(conversation, direction)
        assert.strictEqual(toHex(stream), expected.map((f) => f.frame_hex).join(""))
        fc.assert(fc.property(fc.array(fc.nat(), { maxLength: 40 }), (cuts) => {
          const frames = parseAll(split(stream, cuts))
          assert.strictEqual(frames.length, expected.length)
          let offset = 0
          frames.forEach((frame, i) => {
            const want = expected[i]!
            assert.strictEqual(frame.offset, offset)
            assert.strictEqual(frame.dev, want.dev)
            assert.strictEqual(frame.id, want.id)
            assert.strictEqual(toHex(frame.payload), want.payload_hex)
            assert.strictEqual(SiloPacket.nameOf(Result.getOrThrow(SiloPacket.decode(frame.payload))), want.packet)
            assert.strictEqual(toHex(SiloFrame.encode(frame.dev, frame.id, frame.payload)), want.frame_hex)
            offset += want.frame_hex.length / 2
          })
        }))
      })
    }
  }

  it("yields the same frames chunked as whole", () => {
    fc.assert(
      fc.property(fc.array(frameBytes, { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 30 }), (fs, cuts) => {
        const stream = Uint8Array.from(fs.flatMap((f) => Array.from(SiloFrame.encode(f.dev, f.id, f.payload))))
        const whole = parseAll([stream])
        const chunked = parseAll(split(stream, cuts))
        assert.deepStrictEqual(plain(chunked), plain(whole))
        assert.deepStrictEqual(
          plain(whole).map(({ dev, id, payload }) => ({ dev, id, payload })),
          fs.map((f) => ({ ...f, payload: Array.from(f.payload) }))
        )
      })
    )
  })

  it("hands out payload views of the pushed chunk", () => {
    const chunk = SiloFrame.encode(7, 9, Uint8Array.of(0x85))
    const [frame] = Result.getOrThrow(SiloFrame.makeParser().push(chunk))
    assert.strictEqual(frame!.payload.buffer, chunk.buffer)
    assert.strictEqual(frame!.payload.byteOffset, chunk.byteOffset + 12)
  })

  it("fails on a zero-length payload (Go: invalid packet) and stays failed", () => {
    const parser = SiloFrame.makeParser()
    const good = SiloFrame.encode(1, 1, Uint8Array.of(0x85))
    assert.strictEqual(Result.getOrThrow(parser.push(good)).length, 1)
    const bad = parser.push(SiloFrame.encodeHeader(1, 2, 0))
    assert.isTrue(Result.isFailure(bad))
    if (Result.isFailure(bad)) {
      assert.strictEqual(bad.failure.offset, good.length)
      assert.match(bad.failure.reason, /^invalid packet/)
    }
    assert.isTrue(Result.isFailure(parser.push(good)))
    assert.isTrue(Result.isFailure(parser.end()))
  })

  it("refuses a payload above the cap from the header alone", () => {
    const parser = SiloFrame.makeParser({ maxFrameLength: 100 })
    assert.strictEqual(Result.getOrThrow(parser.push(SiloFrame.encode(1, 1, new Uint8Array(100)))).length, 1)
    const result = parser.push(SiloFrame.encodeHeader(1, 2, 101))
    assert.isTrue(Result.isFailure(result))
    if (Result.isFailure(result)) assert.include(result.failure.reason, "exceeds the maximum")
  })

  it("refuses a 4 GiB length by default without buffering", () => {
    const parser = SiloFrame.makeParser()
    assert.isTrue(Result.isFailure(parser.push(SiloFrame.encodeHeader(1, 1, 0xffff_ffff))))
  })

  it("reports a stream that ends inside a frame", () => {
    const parser = SiloFrame.makeParser()
    const frame = SiloFrame.encode(1, 1, Uint8Array.of(0x85, 0))
    assert.strictEqual(Result.getOrThrow(parser.push(frame.subarray(0, 13))).length, 0)
    assert.strictEqual(parser.buffered(), 13)
    assert.isTrue(Result.isFailure(parser.end()))
  })

  it("never throws on random streams", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), fc.array(fc.nat(), { maxLength: 10 }), (stream, cuts) => {
      try {
        const parser = SiloFrame.makeParser({ maxFrameLength: 256 })
        for (const part of split(stream, cuts)) parser.push(part)
        parser.end()
      } catch (error) {
        assert.fail(`threw ${String(error)}`)
      }
    }))
  })
})
