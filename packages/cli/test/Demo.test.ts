import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as net from "node:net"
import { type Run, start, tessera } from "./utils.ts"

/** A whole demo is three processes on 2 cores: it may take longer than one command. */
const DEMO_MILLIS = 90_000

/** A TCP port nobody listens on (bound, then closed). */
const closedPort = Effect.callback<number>((resume) => {
  const server = net.createServer()
  server.listen(0, "127.0.0.1", () => {
    const { port } = server.address() as net.AddressInfo
    server.close(() => resume(Effect.succeed(port)))
  })
})

const sha256 = /^[0-9a-f]{64}$/

/** The last JSON line a process printed. */
const last = (run: Run) => JSON.parse(run.stdout.toString().trim().split("\n").at(-1)!)

interface DemoResult {
  readonly verified: boolean
  readonly size: number
  readonly seconds: number
  readonly throughputMiBps: number
  readonly writes: number
  readonly dirtyRounds: number
  readonly finalRoundMillis: number
  readonly resentBytes: number
  readonly reads: { readonly count: number; readonly needAt: number; readonly needAtMaxMillis: number }
  readonly sourceSha256: string
  readonly destinationSha256: string
}

describe("tessera demo", () => {
  it.live(
    "migrates between two processes while both ends use the device, and verifies it",
    () =>
      Effect.gen(function*() {
        const run = yield* tessera(["demo", "--size", "32MiB", "--json"], undefined, DEMO_MILLIS)
        assert.strictEqual(run.code, 0, run.stderr)
        // --json: one object on stdout, nothing on stderr.
        assert.strictEqual(run.stderr, "")
        const lines = run.stdout.toString().trim().split("\n")
        assert.strictEqual(lines.length, 1)
        const result = JSON.parse(lines[0]!) as DemoResult
        assert.isTrue(result.verified)
        assert.strictEqual(result.size, 32 << 20)
        assert.match(result.sourceSha256, sha256)
        assert.strictEqual(result.destinationSha256, result.sourceSha256)
        assert.isAbove(result.seconds, 0)
        assert.isAbove(result.throughputMiBps, 0)
        assert.isAbove(result.writes, 0)
        assert.isAtLeast(result.finalRoundMillis, 0)
        assert.isAtLeast(result.resentBytes, 0)
        // The first read comes before the data: at least one read waited for its block (NeedAt).
        assert.isAtLeast(result.reads.needAt, 1)
        assert.isAbove(result.reads.needAtMaxMillis, 0)
      }),
    120_000
  )

  it.live("prints progress lines and a verified report as text", () =>
    Effect.gen(function*() {
      const run = yield* tessera(
        ["demo", "--size", "16MiB", "--block-size", "256KiB", "--compress", "rle"],
        undefined,
        DEMO_MILLIS
      )
      assert.strictEqual(run.code, 0, run.stderr)
      const text = run.stdout.toString()
      assert.match(text, /size\s+16\.0 MiB in blocks of 256\.0 KiB/)
      assert.match(text, /MiB\/s \(compression rle\)/)
      assert.match(text, /NeedAt reads\s+\d+ of \d+ reads/)
      assert.match(text, /verified: the destination holds exactly the source's bytes\n$/)
      const [source, destination] = [/source\s+sha256 ([0-9a-f]{64})/, /destination\s+sha256 ([0-9a-f]{64})/].map(
        (pattern) => text.match(pattern)?.[1]
      )
      assert.isDefined(source)
      assert.strictEqual(destination, source)
      // Not a terminal: plain progress lines on stderr, no cursor movement.
      assert.match(run.stderr, /source: listening on tcp:\/\/127\.0\.0\.1:\d+/)
      assert.match(run.stderr, /destination: 100% 16\.0\/16\.0 MiB/)
      assert.notInclude(run.stderr, "\x1b[")
    }), 120_000)

  it.effect("bad flags are one line and exit code 2", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [ReadonlyArray<string>, RegExp]> = [
        [["demo", "--size", "lots"], /not a size/],
        [["demo", "--block-size", "100"], /--block-size must be between 512 bytes and 16MiB/],
        [["demo", "--write-rate", "-5"], /--write-rate must be a whole number from 0 to 10000/],
        [["demo", "--timeout", "0"], /--timeout must be a positive number of seconds/],
        [["demo", "source", "--listen", "http://x"], /unknown scheme/],
        [["demo", "destination", "--from", "127.0.0.1:5170"], /unknown scheme/]
      ]
      const runs = yield* Effect.forEach(cases, ([args]) => tessera(args), { concurrency: 3 })
      for (const [i, [args, message]] of cases.entries()) {
        const run = runs[i]!
        assert.strictEqual(run.code, 2, args.join(" "))
        assert.match(run.stderr, message)
        assert.strictEqual(run.stderr.trim().split("\n").length, 1, run.stderr)
        assert.strictEqual(run.stdout.length, 0)
      }
    }), 90_000)

  it.live("the two halves run by hand also end identical", () =>
    Effect.gen(function*() {
      const source = yield* start(["demo", "source", "--listen", "tcp://127.0.0.1:0", "--size", "8MiB", "--json"])
      const listening = yield* source.waitFor((line) => line.event === "listening", 60_000)
      assert.strictEqual(listening.size, 8 << 20)
      const destination = yield* start(["demo", "destination", "--from", String(listening.address), "--json"])
      const [served, received] = yield* Effect.all([source.exit, destination.exit], { concurrency: 2 })
      assert.strictEqual(served.code, 0, served.stderr)
      assert.strictEqual(received.code, 0, received.stderr)
      const sent = last(served)
      const arrived = last(received)
      assert.strictEqual(sent.event, "completed")
      assert.strictEqual(arrived.event, "completed")
      assert.match(sent.sha256, sha256)
      assert.strictEqual(arrived.sha256, sent.sha256)
      assert.strictEqual(sent.connections, 1)
      const reads = received.stdout.toString().trim().split("\n").map((line) => JSON.parse(line))
        .filter((event) => event.event === "read")
      assert.strictEqual(reads.length, arrived.reads)
    }), 120_000)

  it.effect(
    "a destination that cannot reach its source fails with one line and exit code 1",
    () =>
      Effect.gen(function*() {
        const port = yield* closedPort
        const run = yield* tessera(["demo", "destination", "--from", `tcp://127.0.0.1:${port}`])
        assert.strictEqual(run.code, 1, run.stderr)
        assert.match(run.stderr, /ECONNREFUSED/)
        assert.strictEqual(run.stderr.trim().split("\n").length, 1, run.stderr)
      }),
    90_000
  )

  it.live("a half started by the demo stops when the demo is gone", () =>
    Effect.gen(function*() {
      // --with-parent watches standard input; `start` gives it none (closed at once), like a dead parent.
      const source = yield* start([
        "demo",
        "source",
        "--listen",
        "tcp://127.0.0.1:0",
        "--size",
        "1MiB",
        "--with-parent"
      ])
      const ended = yield* source.exit
      assert.strictEqual(ended.code, 1)
      assert.match(ended.stderr, /the parent demo went away/)
    }), 90_000)
})
