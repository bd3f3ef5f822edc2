/**
 * `tessera inspect silo|dnet|t2 [FILE|-] [--hex HEX]`: decodes captured traffic into one JSON object per
 * packet. The first malformed byte ends the run with a JSON error line and exit code 2.
 *
 * @since 0.1.0
 */
import * as Command from "effect/cli/Command"
import * as Flag from "effect/cli/Flag"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stdio from "effect/Stdio"
import * as Stream from "effect/Stream"
import type { BadInput } from "./CliFailure.ts"
import * as Dissector from "./Dissector.ts"
import * as JsonLine from "./JsonLine.ts"
import * as Source from "./Source.ts"

/** The records as JSON lines; a failure adds its error line after them and ends the stream with exit code 2. */
const toLines = ({ failure, records }: Dissector.Inspected): Stream.Stream<string, BadInput> => {
  const lines = Stream.fromIterable(records.map(JsonLine.stringify))
  return failure === undefined ? lines : Stream.concat(lines, JsonLine.failWith(failure.message, failure.offset))
}

/**
 * The `inspect` command.
 *
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make(
  "inspect",
  {
    protocol: Dissector.protocolArgument("Wire format of the input"),
    file: Source.fileArgument("Input"),
    hex: Flag.String("hex").pipe(
      Flag.withDescription("Decode this hex string instead of reading a file"),
      Flag.optional
    )
  },
  Effect.fn("inspect")(function*({ file, hex, protocol }) {
    const stdio = yield* Stdio.Stdio
    const dissector = Dissector.forProtocol(protocol)
    const inspector = dissector.inspector()
    // For a packet-per-line format the hex given on the command line is itself the text to read.
    const input = dissector.packetPerLine && Option.isSome(hex)
      ? Stream.make(new TextEncoder().encode(hex.value))
      : Source.read(file, hex)
    yield* input.pipe(
      Stream.flatMap((chunk) => toLines(inspector.push(chunk))),
      Stream.concat(Stream.suspend(() => toLines(inspector.end()))),
      Stream.run(stdio.stdout({ endOnDone: false }))
    )
  })
).pipe(
  Command.withDescription("Decode Silo, dnet or T2 packets and print one JSON object per packet"),
  Command.withExamples([
    { command: "tessera inspect silo capture.bin", description: "Decode a captured Silo stream" },
    { command: "tessera inspect t2 --hex 8383410102", description: "Decode one T2 packet given as hex" }
  ])
)
