/**
 * What the migration roles share: an Effect runner whose scope lives as long as the process, and the answer to
 * the parent's `hash` requests (the sha256 of the device, after the timed part).
 */
import * as Device from "@tessera/storage/Device"
import type { BlockDevice } from "@tessera/storage/Provider"
import * as Effect from "effect/Effect"
import * as Scope from "effect/Scope"
import * as Transport from "../src/Transport.ts"
import { nextMessage, send } from "./child.ts"

const scope = Scope.makeUnsafe()

/** Runs `effect` with the TCP transport, in the process's scope (what it opens stays open). */
export const run = <A, E>(effect: Effect.Effect<A, E, Transport.Transport | Scope.Scope>): Promise<A> =>
  Effect.runPromise(effect.pipe(Scope.provide(scope), Effect.provide(Transport.Transport.layer)))

/** Answers `hash` requests with the device's sha256 until the parent disconnects. */
export const answerHashes = async (device: BlockDevice): Promise<void> => {
  for (;;) {
    const message = await nextMessage()
    if (message.type !== "hash") continue
    const digest = await run(Device.sha256(device))
    send({ type: "hash", sha256: Buffer.from(digest).toString("hex") })
  }
}
