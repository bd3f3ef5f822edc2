import { Effect, Stream } from "effect"
import * as Circuit from "../../src/Circuit.ts"
import type * as Peer from "../../src/Peer.ts"
import * as PeerIdentity from "../../src/PeerIdentity.ts"
import * as PeerService from "../../src/PeerService.ts"

/** The two ways every circuit test runs: plaintext TCP and TLS 1.3 with pinned keys. */
export const securities = ["tcp", "tls"] as const
export type Mode = (typeof securities)[number]

const identities = [PeerIdentity.generate(), PeerIdentity.generate(), PeerIdentity.generate()]

/** Security for host `index`: TLS hosts trust exactly the test identities. */
export const security = (mode: Mode, index = 0): PeerService.Security =>
  mode === "tcp"
    ? { _tag: "Plaintext" }
    : {
      _tag: "Tls",
      identity: identities[index % identities.length]!,
      trust: { _tag: "Keys", keys: identities.map((identity) => identity.publicKey) }
    }

/** A host in the test's scope. */
export const host = (mode: Mode, index = 0, options?: Partial<PeerService.Options>) =>
  PeerService.make({ security: security(mode, index), ...options })

/** A listening host and its bound address. */
export const listening = (mode: Mode, index = 0, options?: Partial<PeerService.Options>) =>
  Effect.gen(function*() {
    const service = yield* host(mode, index, options)
    const address = yield* service.listen("tcp://127.0.0.1:0")
    return { service, address }
  })

export const text = (s: string) => new TextEncoder().encode(s)
export const str = (b: Uint8Array) => new TextDecoder().decode(b)

/** A service that answers every fragment on every circuit with `reply` of it (first one included). */
export const echoService = (
  reply: (fragment: Circuit.Fragment) => Circuit.FragmentInit = (f) => ({
    subject: f.subject.replace("request", "reply"),
    payload: f.payload
  })
): Peer.PeerServiceFunc =>
(_peer, circuits) =>
  Stream.runForEach(circuits, (circuit) =>
    Effect.forkDetach(
      Stream.runForEach(circuit.reads, (fragment) => circuit.send(reply(fragment))).pipe(Effect.ignore)
    ))

/** Waits until `check` holds, polling; fails after `millis`. */
export const eventually = (check: () => boolean, millis = 5000) =>
  Effect.gen(function*() {
    const start = Date.now()
    while (!check()) {
      if (Date.now() - start > millis) return yield* Effect.die(new Error(`condition not met in ${millis} ms`))
      yield* Effect.sleep(10)
    }
  })

export { Circuit }
