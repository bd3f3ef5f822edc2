/**
 * `tessera craft silo|dnet|t2 [FILE|-] [--hex]`: the inverse of `inspect`. Reads JSON lines of the shape
 * `inspect` prints and writes the encoded bytes. The first bad line ends the run with a JSON error line
 * (offset = the line's byte offset in the input) and exit code 2; nothing after it is written.
 *
 * @since 0.1.0
 */
import * as Command from "effect/cli/Command"
import * as Flag from "effect/cli/Flag"
import * as Effect from "effect/Effect"
import * as Hex from "effect/encoding/Hex"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import * as Stdio from "effect/Stdio"
import * as Stream from "effect/Stream"
import type { BadInput } from "./CliFailure.ts"
import * as Dissector from "./Dissector.ts"
import * as JsonLine from "./JsonLine.ts"
import * as Lines from "./Lines.ts"
import * as Source from "./Source.ts"

const parseJson = (text: string): Result.Result<unknown, string> => {
  try {
    return Result.succeed(JSON.parse(text))
  } catch (error) {
    return Result.fail(`not JSON: ${(error as Error).message}`)
  }
}

/**
 * The `craft` command.
 *
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make(
  "craft",
  {
    protocol: Dissector.protocolArgument("Wire format to produce"),
    file: Source.fileArgument("JSON lines"),
    hex: Flag.Boolean("hex").pipe(
      Flag.withDescription("Print one hex line per packet instead of raw bytes"),
      Flag.withDefault(false)
    )
  },
  Effect.fn("craft")(function*({ file, hex, protocol }) {
    const stdio = yield* Stdio.Stdio
    const dissector = Dissector.forProtocol(protocol)
    const asHex = hex || dissector.packetPerLine
    const splitter = Lines.makeSplitter()
    const encodeLines = (lines: ReadonlyArray<Lines.Line>): Stream.Stream<string | Uint8Array, BadInput> => {
      const out: Array<string | Uint8Array> = []
      for (const line of lines) {
        if (line.text.trim() === "") continue
        const bytes = Result.flatMap(
          parseJson(line.text),
          (record) => Result.mapError(dissector.craft(record), (error) => error.message)
        )
        if (Result.isFailure(bytes)) {
          return Stream.concat(Stream.fromIterable(out), JsonLine.failWith(bytes.failure, line.offset))
        }
        out.push(asHex ? `${Hex.encode(bytes.success)}\n` : bytes.success)
      }
      return Stream.fromIterable(out)
    }
    yield* Source.read(file, Option.none()).pipe(
      Stream.flatMap((chunk) => encodeLines(splitter.push(chunk))),
      Stream.concat(Stream.suspend(() => encodeLines(splitter.end()))),
      Stream.run(stdio.stdout({ endOnDone: false }))
    )
  })
).pipe(
  Command.withDescription("Encode JSON lines (the shape inspect prints) into Silo, dnet or T2 packets"),
  Command.withExamples([
    { command: "tessera craft silo frames.jsonl > capture.bin", description: "Forge a Silo stream" },
    { command: "tessera craft t2 packets.jsonl", description: "Print T2 packets as hex lines" }
  ])
)
