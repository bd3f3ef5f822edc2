import { assert, describe, it } from "@effect/vitest"
import { Result } from "effect"
import fc from "fast-check"
import { DecodeError } from "../src/DecodeError.ts"
import * as StreamParser from "../src/StreamParser.ts"
import { split } from "./utils/chunks.ts"

// A toy format: a 2-byte big-endian total length, then the rest of the frame.
const format: StreamParser.FrameFormat<StreamParser.Frame> = {
  protocol: "silo",
  name: "frame",
  headerSize: 2,
  frameLength: (header) => (header[0]! << 8) | header[1]!,
  maxFrameLength: 1000,
  // A frame whose first body byte is 0xEE is malformed.
  decodeFrame: (frame) =>
    frame.bytes[2] === 0xee
      ? Result.fail(new DecodeError({ protocol: "silo", packet: "toy", offset: 2, reason: "bad body" }))
      : Result.succeed(frame)
}

const frameOf = (body: Uint8Array): Uint8Array => {
  const out = new Uint8Array(body.length + 2)
  out[0] = out.length >> 8
  out[1] = out.length & 0xff
  out.set(body, 2)
  return out
}

describe("StreamParser", () => {
  it("yields the same frames whatever the chunk boundaries", () => {
    fc.assert(fc.property(
      fc.array(fc.uint8Array({ maxLength: 300 }).filter((body) => body[0] !== 0xee), { maxLength: 20 }),
      fc.array(fc.nat(), { maxLength: 30 }),
      (bodies, cuts) => {
        const frames = bodies.map(frameOf)
        const stream = new Uint8Array(frames.reduce((n, f) => n + f.length, 0))
        let at = 0
        for (const f of frames) {
          stream.set(f, at)
          at += f.length
        }
        const parser = StreamParser.make(format)
        const got: Array<StreamParser.Frame> = []
        for (const part of split(stream, cuts)) got.push(...Result.getOrThrow(parser.push(part)))
        assert.isTrue(Result.isSuccess(parser.end()))
        assert.deepStrictEqual(got.map((f) => Array.from(f.bytes)), frames.map((f) => Array.from(f)))
        let offset = 0
        got.forEach((f, i) => {
          assert.strictEqual(f.offset, offset)
          offset += frames[i]!.length
        })
      }
    ))
  })

  it("returns views of the pushed chunk when a frame lies inside it", () => {
    const chunk = frameOf(new Uint8Array([1, 2, 3]))
    const [frame] = Result.getOrThrow(StreamParser.make(format).push(chunk))
    assert.strictEqual(frame!.bytes.buffer, chunk.buffer)
  })

  it("refuses an oversized length before buffering the frame", () => {
    const parser = StreamParser.make(format)
    const result = parser.push(new Uint8Array([0xff, 0xff]))
    assert.isTrue(Result.isFailure(result))
    if (Result.isFailure(result)) {
      assert.strictEqual(result.failure.offset, 0)
      assert.include(result.failure.reason, "exceeds the maximum")
    }
    assert.isTrue(Result.isFailure(parser.push(frameOf(new Uint8Array(1)))))
  })

  it("reports a truncated final frame at end of stream", () => {
    const parser = StreamParser.make(format)
    Result.getOrThrow(parser.push(frameOf(new Uint8Array(4)).subarray(0, 3)))
    const ended = parser.end()
    assert.isTrue(Result.isFailure(ended))
  })

  it("delivers the frames ahead of a bad one, then the error with its stream offset", () => {
    const good = frameOf(new Uint8Array([1, 2]))
    const bad = frameOf(new Uint8Array([0xee, 0]))
    const stream = new Uint8Array([...good, ...good, ...bad, ...good])
    const parser = StreamParser.make(format)
    const first = Result.getOrThrow(parser.push(stream))
    assert.strictEqual(first.length, 2)
    const next = parser.push(new Uint8Array(0))
    assert.isTrue(Result.isFailure(next))
    if (Result.isFailure(next)) {
      assert.strictEqual(next.failure.offset, 2 * good.length + 2)
      assert.strictEqual(next.failure.packet, "toy")
    }
    assert.isTrue(Result.isFailure(parser.end()))
  })
})
