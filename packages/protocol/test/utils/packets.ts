// Helpers for the packet connection tests: connection pairs over any transport, a connection that records
// what is written to it, echo handlers, the golden conversations.
import { Cause, Effect } from "effect"
import * as fs from "node:fs"
import type { Address } from "../../src/index.ts"
import { PacketConnection, type Transport } from "../../src/index.ts"
import { connectedPairs } from "./transport.ts"

/** Two packet connections over `streams` connected streams of one transport. */
export const packetPair = (
  address: Address.Address | string,
  streams: number,
  options: { readonly client?: PacketConnection.Options; readonly server?: PacketConnection.Options } = {}
) =>
  Effect.gen(function*() {
    const { clients, servers } = yield* connectedPairs(address, streams)
    const client = yield* PacketConnection.make(
      clients as [Transport.Connection, ...Array<Transport.Connection>],
      options.client
    )
    const server = yield* PacketConnection.make(
      servers as [Transport.Connection, ...Array<Transport.Connection>],
      options.server
    )
    return { client, server, clientStreams: clients, serverStreams: servers }
  })

/** A request payload: command, then the given bytes. */
export const payloadOf = (command: number, ...bytes: ReadonlyArray<number>): Uint8Array =>
  Uint8Array.from([command, ...bytes])

/** Answers every request with `command` on `dev` with its own bytes under command | 0x80, forever. */
export const echo = (connection: PacketConnection.PacketConnection, dev: number, command: number) =>
  Effect.forever(
    Effect.flatMap(connection.waitForCommand(dev, command), (request) => {
      const response = request.payload.slice()
      response[0] = command | 0x80
      return connection.respond(dev, request.id, response)
    })
  )

/** A connection that never receives and records every write (for tests of what the writer produces). */
export const recordingConnection = () => {
  const writes: Array<ReadonlyArray<Uint8Array>> = []
  const connection: Transport.Connection = {
    remoteAddress: "test:peer",
    localAddress: "test:local",
    read: Effect.never,
    write: (chunks) =>
      Effect.sync(() => {
        writes.push([...chunks])
      }),
    queuedBytes: () => 0,
    end: Effect.void,
    close: Effect.void
  }
  return { connection, writes }
}

/** A connection whose peer ended at once: reads are done, writes vanish. */
export const endedConnection: Transport.Connection = {
  remoteAddress: "test:peer",
  localAddress: "test:local",
  read: Cause.done(),
  write: () => Effect.void,
  queuedBytes: () => 0,
  end: Effect.void,
  close: Effect.void
}

export interface ConversationFrame {
  readonly seq: number
  readonly direction: "src->dst" | "dst->src"
  readonly dev: number
  readonly id: number
  readonly packet: string
  readonly payload_hex: string
  readonly frame_hex: string
}

export interface Conversation {
  readonly name: string
  readonly frames: ReadonlyArray<ConversationFrame>
  readonly stream_src_to_dst_hex: string
  readonly stream_dst_to_src_hex: string
}

/** The golden conversations of the codec package's Silo vectors. */
export const conversations: ReadonlyArray<Conversation> = JSON.parse(
  fs.readFileSync(new URL("../../../codec/test/fixtures/silo-packets.json", import.meta.url), "utf8")
).conversations

export const fromHex = (hex: string): Uint8Array => Uint8Array.from(Buffer.from(hex, "hex"))
export const toHex = (bytes: Uint8Array): string =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("hex")
