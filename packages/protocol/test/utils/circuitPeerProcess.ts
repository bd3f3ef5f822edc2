/**
 * A peer host in its own process, for the cross-process circuit tests. argv[2] is a JSON `Config`. It registers
 * `echo` (answers every fragment with the same payload, subject "request" -> "reply"), `echo-client` (the same)
 * and `limited` (an echo limited to one instance), listens or dials, prints one JSON line
 * `{ "event": "ready", "address": ... }` and runs until its stdin closes or it is killed.
 */
import { Effect, Stream } from "effect"
import type * as Circuit from "../../src/Circuit.ts"
import type * as PeerIdentity from "../../src/PeerIdentity.ts"
import * as PeerService from "../../src/PeerService.ts"
import * as Transport from "../../src/Transport.ts"

export interface Config {
  readonly tls?: { readonly identity: PeerIdentity.Identity; readonly keys: ReadonlyArray<string> } | undefined
  readonly listen?: string | undefined
  readonly dial?: string | undefined
}

const config = JSON.parse(process.argv[2] ?? "{}") as Config

const echo = (_peer: unknown, circuits: Stream.Stream<Circuit.Circuit>) =>
  Stream.runForEach(circuits, (circuit) =>
    Effect.forkDetach(
      Stream.runForEach(circuit.reads, (f) =>
        circuit.send({ subject: f.subject.replace("request", "reply"), payload: f.payload, fragPart: f.fragPart }))
        .pipe(
          Effect.ignore
        )
    ))

const program = Effect.gen(function*() {
  const host = yield* PeerService.make({
    security: config.tls === undefined
      ? { _tag: "Plaintext" }
      : { _tag: "Tls", identity: config.tls.identity, trust: { _tag: "Keys", keys: config.tls.keys } }
  })
  yield* host.register("echo", echo)
  yield* host.register("echo-client", echo)
  yield* host.register("limited", echo, { max: 1 })
  let address = ""
  if (config.listen !== undefined) address = yield* host.listen(config.listen)
  if (config.dial !== undefined) {
    yield* host.connect(config.dial, { reconnect: true })
    address = host.address()
  }
  console.log(JSON.stringify({ event: "ready", address }))
  yield* Effect.callback<void>((resume) => {
    process.stdin.on("end", () => resume(Effect.void))
    process.stdin.on("close", () => resume(Effect.void))
    process.stdin.resume()
  })
})

await Effect.runPromise(Effect.scoped(program).pipe(Effect.provide(Transport.Transport.layer)))
