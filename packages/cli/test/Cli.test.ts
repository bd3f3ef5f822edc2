import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { readFileSync } from "node:fs"
import { jsonLines, tessera } from "./utils.ts"

interface ConversationFrame {
  readonly direction: string
  readonly dev: number
  readonly id: number
  readonly packet: string
  readonly fields: Record<string, unknown>
  readonly frame_hex: string
}
interface Conversation {
  readonly name: string
  readonly frames: ReadonlyArray<ConversationFrame>
  readonly stream_src_to_dst_hex: string
  readonly stream_dst_to_src_hex: string
}

const vectors = JSON.parse(
  readFileSync(new URL("../../codec/test/fixtures/silo-packets.json", import.meta.url), "utf8")
) as { readonly conversations: ReadonlyArray<Conversation> }
const conversation = vectors.conversations.find((c) => c.name === "readme-more-complex-conversation")!
const fromSource = conversation.frames.filter((f) => f.direction.startsWith("src"))

describe("tessera inspect / craft", () => {
  it.effect("inspect silo decodes a captured source stream into the listed frames", () =>
    Effect.gen(function*() {
      const run = yield* tessera(["inspect", "silo"], Buffer.from(conversation.stream_src_to_dst_hex, "hex"))
      assert.strictEqual(run.code, 0, run.stderr)
      const records = jsonLines(run.stdout)
      assert.strictEqual(records.length, fromSource.length)
      records.forEach((record, i) => {
        const frame = fromSource[i]!
        assert.deepStrictEqual([record.dev, record.id, record.packet], [frame.dev, frame.id, frame.packet])
        const fields = record.fields as Record<string, unknown>
        if (frame.packet === "WriteAt") {
          // The vector describes the data in words ("1024 x 0x01"); check the bytes it describes.
          const fill = (Number(frame.fields.offset) / 1024 + 1).toString(16).padStart(2, "0")
          assert.strictEqual(fields.data_hex, fill.repeat(1024))
          assert.strictEqual(fields.offset, frame.fields.offset)
        } else {
          assert.deepStrictEqual(fields, frame.fields)
        }
      })
    }))

  it.effect("craft silo is the inverse of inspect, byte for byte", () =>
    Effect.gen(function*() {
      const inspected = yield* tessera(["inspect", "silo", "--hex", conversation.stream_src_to_dst_hex])
      const run = yield* tessera(["craft", "silo", "-"], inspected.stdout)
      assert.strictEqual(run.code, 0, run.stderr)
      assert.strictEqual(run.stdout.toString("hex"), conversation.stream_src_to_dst_hex)
      const hex = yield* tessera(["craft", "silo", "--hex"], inspected.stdout)
      assert.strictEqual(hex.stdout.toString().replace(/\n/g, ""), conversation.stream_src_to_dst_hex)
    }))

  it.effect("inspect --hex reads the stream from the command line", () =>
    Effect.gen(function*() {
      const run = yield* tessera(["inspect", "silo", "--hex", conversation.stream_dst_to_src_hex])
      assert.strictEqual(run.code, 0, run.stderr)
      assert.strictEqual(jsonLines(run.stdout).length, conversation.frames.length - fromSource.length)
    }))

  it.effect("a truncated stream ends with a JSON error line and exit code 2", () =>
    Effect.gen(function*() {
      const bytes = Buffer.from(conversation.stream_src_to_dst_hex, "hex")
      const run = yield* tessera(["inspect", "silo"], bytes.subarray(0, bytes.length - 3))
      assert.strictEqual(run.code, 2)
      const records = jsonLines(run.stdout)
      const last = records.at(-1)!
      assert.isString(last.error)
      assert.isNumber(last.offset)
      assert.strictEqual(records.length, fromSource.length)
      assert.notInclude(run.stderr, "    at ")
    }))

  it.effect("a frame claiming 4 GiB is refused before anything is allocated", () =>
    Effect.gen(function*() {
      const run = yield* tessera(["inspect", "silo", "--hex", "01000000 01000000 ffffffff 02"])
      assert.strictEqual(run.code, 2)
      const [error] = jsonLines(run.stdout)
      assert.deepStrictEqual(error!.offset, 0)
      assert.match(String(error!.error), /exceeds/)
    }))

  it.effect("a malformed packet inside a valid frame is located in the stream", () =>
    Effect.gen(function*() {
      // A DirtyList claiming 2 blocks but carrying one, after a 12-byte frame header.
      const run = yield* tessera(["inspect", "silo", "--hex", "010000000100000009000000 050010000002000000"])
      assert.strictEqual(run.code, 2)
      const [error] = jsonLines(run.stdout)
      assert.isAtLeast(Number(error!.offset), 12)
    }))

  it.effect("craft reports the bad line with its byte offset and exit code 2", () =>
    Effect.gen(function*() {
      const good = JSON.stringify({ dev: 1, id: 1, packet: "RemoveDev", fields: {} })
      const run = yield* tessera(["craft", "silo", "--hex"], `${good}\n{"dev": 1, "id": 2, "packet": "Nope"}\n`)
      assert.strictEqual(run.code, 2)
      const lines = run.stdout.toString().trim().split("\n")
      assert.strictEqual(lines.length, 2)
      const error = JSON.parse(lines[1]!)
      assert.strictEqual(error.offset, good.length + 1)
      const notJson = yield* tessera(["craft", "dnet"], "{not json\n")
      assert.strictEqual(notJson.code, 2)
      assert.strictEqual(jsonLines(notJson.stdout)[0]!.offset, 0)
    }))

  it.effect("a missing file is one clear line and exit code 2", () =>
    Effect.gen(function*() {
      const run = yield* tessera(["inspect", "dnet", "/nonexistent/capture.bin"])
      assert.strictEqual(run.code, 2)
      assert.match(run.stderr, /^tessera: cannot read \/nonexistent\/capture.bin: no such file or directory\n$/)
    }))

  it.effect("bad usage exits with code 2", () =>
    Effect.gen(function*() {
      const run = yield* tessera(["inspect", "nope"])
      assert.strictEqual(run.code, 2)
      const badHex = yield* tessera(["inspect", "silo", "--hex", "xyz"])
      assert.strictEqual(badHex.code, 2)
      assert.match(badHex.stderr, /not valid hex/)
    }))

  it.effect("--help works on every level", () =>
    Effect.gen(function*() {
      for (const args of [["--help"], ["inspect", "--help"], ["craft", "--help"]]) {
        const run = yield* tessera(args)
        assert.strictEqual(run.code, 0, args.join(" "))
        assert.include(run.stdout.toString(), "USAGE")
      }
    }))

  it.effect("dnet: craft then inspect round-trips a WRITE with its data, byte for byte", () =>
    Effect.gen(function*() {
      const write = {
        packet: "WRITE",
        cmd: { id_hex: "ab".repeat(64), group_id: 2, flags: ["NEED_ACK"], trans: 7 },
        attrs: [{
          cmd: "WRITE",
          io: { parent_hex: "00".repeat(64), id_hex: "ab".repeat(64), flags: ["APPEND"], offset: 0, size: 5 },
          data_hex: Buffer.from("hello").toString("hex")
        }]
      }
      const crafted = yield* tessera(["craft", "dnet"], JSON.stringify(write) + "\n" + JSON.stringify(write) + "\n")
      assert.strictEqual(crafted.code, 0, crafted.stderr)
      assert.strictEqual(crafted.stdout.length, 2 * (96 + 24 + 168 + 5))
      const inspected = yield* tessera(["inspect", "dnet", "-"], crafted.stdout)
      assert.strictEqual(inspected.code, 0, inspected.stderr)
      const records = jsonLines(inspected.stdout)
      assert.strictEqual(records.length, 2)
      const record = records[0] as { packet: string; attrs: Array<{ data_hex: string }> }
      assert.strictEqual(record.packet, "WRITE")
      assert.strictEqual(record.attrs[0]!.data_hex, "68656c6c6f")
      const again = yield* tessera(["craft", "dnet"], inspected.stdout)
      assert.deepStrictEqual(again.stdout, crafted.stdout)
    }))

  it.effect("dnet: a packet whose attribute overruns cmd.size is refused at its offset", () =>
    Effect.gen(function*() {
      const crafted = yield* tessera(
        ["craft", "dnet"],
        JSON.stringify({ cmd: { id_hex: "00".repeat(64), group_id: 1, trans: 1 }, attrs: [{ cmd: "STAT" }] })
      )
      assert.strictEqual(crafted.code, 0, crafted.stderr)
      const bytes = Buffer.from(crafted.stdout)
      bytes.writeUInt32LE(24 + 1000, 96) // attr.size beyond what cmd.size holds
      const run = yield* tessera(["inspect", "dnet"], bytes)
      assert.strictEqual(run.code, 2)
      const [error] = jsonLines(run.stdout)
      assert.isAtLeast(Number(error!.offset), 96)
    }))

  it.effect("t2: one hex packet per line in, one JSON object per packet out, and back", () =>
    Effect.gen(function*() {
      const lines =
        "# a CDM chunk request and a data packet\n82 83 43 05 52 07 CA 00 00 04 00\n\n87834405520 7ca00000400 03414243f6f600\n"
      const inspected = yield* tessera(["inspect", "t2"], lines)
      assert.strictEqual(inspected.code, 0, inspected.stderr)
      const records = jsonLines(inspected.stdout)
      assert.deepStrictEqual(records.map((r) => r.packet), ["cdm_c", "cdm_d"])
      const crafted = yield* tessera(["craft", "t2"], inspected.stdout)
      assert.strictEqual(crafted.code, 0, crafted.stderr)
      assert.deepStrictEqual(crafted.stdout.toString().trim().split("\n"), [
        "828343055207ca00000400",
        "878344055207ca0000040003414243f6f600"
      ])
    }))

  it.effect("t2: --hex is one packet, spaces allowed", () =>
    Effect.gen(function*() {
      const run = yield* tessera(["inspect", "t2", "--hex", "82 83 43 05 52 07 ca 00 00 04 00"])
      assert.strictEqual(run.code, 0, run.stderr)
      assert.deepStrictEqual(jsonLines(run.stdout), [{
        packet: "cdm_c",
        fields: { dir: "ET", slotstamp: 0x055207ca, position: 1024 }
      }])
    }))

  it.effect("t2: a bad line is reported with its byte offset", () =>
    Effect.gen(function*() {
      const run = yield* tessera(["inspect", "t2"], "828343055207ca00000400\nzz\n")
      assert.strictEqual(run.code, 2)
      const records = jsonLines(run.stdout)
      assert.strictEqual(records.length, 2)
      assert.strictEqual(records[1]!.offset, 23)
    }))
})
