// Fuzzing a live node over a real TCP socket: random bytes and mutated valid packets, each on its own
// connection. The node must stay up, keep answering a well-behaved client, and keep its data: the only packets
// that may change stored objects are valid requests that address them, and the generator never sends those
// for the well-behaved client's keys (see `touchesKept`).
import { assert, describe, it } from "@effect/vitest"
import { AttrFlags, CmdFlags, Command, IoFlags, NodeStatusFlags } from "@tessera/codec/DnetConstants"
import * as DnetPacket from "@tessera/codec/DnetPacket"
import { AddrAttr, Auth, NodeStatus } from "@tessera/codec/DnetStructs"
import { Effect, Pull, Result } from "effect"
import * as fc from "fast-check"
import { DnetClient, DnetNode, Transport } from "../src/index.ts"
import { addrAttrOf } from "../src/internal/dnetWire.ts"
import { bulkReadRequest, io, keyOf, openStore, request } from "./utils/dnet.ts"

const GROUP = 1
/** The well-behaved client's keys: first byte 0xa0..0xa7. Fuzzed requests aim at 0x10.. and 0x20... */
const KEPT = Array.from({ length: 8 }, (_, i) => keyOf(0xa0 + i))
const isKept = (key: Uint8Array) => key[0]! >= 0xa0 && key[0]! <= 0xa7

/**
 * Whether a packet, as the spec reads it, could legitimately change a kept object: a well-formed WRITE, DEL or
 * DEL_RANGE of this group whose target is (or whose range covers) a kept key. Everything else the node must
 * refuse or apply elsewhere.
 */
const touchesKept = (bytes: Uint8Array): boolean => {
  let at = 0
  while (at + DnetPacket.HEADER_SIZE <= bytes.length) {
    const size = Number(new DataView(bytes.buffer, bytes.byteOffset + at + 88, 8).getBigUint64(0, true))
    // An incomplete packet never runs, and the node stops reading the stream at one it cannot frame.
    if (size > bytes.length - at - DnetPacket.HEADER_SIZE) return false
    const decoded = DnetPacket.decodePacket(bytes.subarray(at, at + DnetPacket.HEADER_SIZE + size))
    // A packet with bad attributes is refused as a whole, and a reply is dropped; the stream goes on after them.
    const packet = Result.isSuccess(decoded) ? decoded.success : undefined
    if (packet !== undefined && !DnetPacket.isReply(packet) && packet.id.groupId === GROUP) {
      for (const attr of packet.attrs) {
        if (attr.cmd === Command.WRITE && isKept(attr.io!.id)) return true
        if (attr.cmd === Command.DEL && isKept(packet.id.id)) return true
        if (attr.cmd === Command.DEL_RANGE) {
          const range = attr.io!
          if (KEPT.some((key) => Buffer.compare(range.id, key) <= 0 && Buffer.compare(key, range.parent) <= 0)) {
            return true
          }
        }
      }
    }
    at += DnetPacket.HEADER_SIZE + size
  }
  return false
}

const fuzzKey = keyOf(0x10)
const templates: ReadonlyArray<Uint8Array> = [
  request(Command.WRITE, { key: fuzzKey, io: io(fuzzKey, { size: 4 }), data: new Uint8Array([1, 2, 3, 4]) }),
  request(Command.WRITE, {
    key: fuzzKey,
    io: io(fuzzKey, { size: 2, offset: 3, flags: IoFlags.APPEND | IoFlags.COMMIT, num: 9 }),
    data: new Uint8Array([5, 6])
  }),
  request(Command.READ, { key: fuzzKey, io: io(fuzzKey, { offset: 1, size: 2 }) }),
  request(Command.READ, { key: KEPT[0]!, io: io(KEPT[0]!) }),
  request(Command.LOOKUP, { key: KEPT[1]! }),
  request(Command.DEL, { key: fuzzKey }),
  request(Command.READ_RANGE, { key: keyOf(0), io: io(keyOf(0), { parent: keyOf(0xff), num: 3 }) }),
  request(Command.DEL_RANGE, { key: keyOf(0x10), io: io(keyOf(0x10), { parent: keyOf(0x20) }) }),
  bulkReadRequest(fuzzKey, [io(KEPT[2]!), io(fuzzKey)]),
  request(Command.STATUS, {
    attrFlags: AttrFlags.STATUS_CHANGE,
    data: NodeStatus.encode({ nflags: -1, statusFlags: NodeStatusFlags.RO, logMask: 0 })
  }),
  request(Command.AUTH, { data: Auth.encode({ cookie: new Uint8Array(32), flags: 0n }) }),
  request(Command.JOIN, {
    flags: CmdFlags.DIRECT,
    data: new Uint8Array(Buffer.concat([AddrAttr.encode(addrAttrOf("tcp://127.0.0.1:9")!), keyOf(0x55)]))
  }),
  request(Command.NOTIFY, { key: fuzzKey }),
  request(Command.STAT_COUNT, { attrFlags: AttrFlags.CNTR_GLOBAL }),
  request(Command.LIST),
  request(Command.ROUTE_LIST),
  request(Command.EXEC, { data: new Uint8Array([0x6c, 0x73]) })
].map(DnetPacket.encodePacket)

const boundary = fc.constantFrom(
  0n,
  1n,
  0xffn,
  0xffff_ffffn,
  2n ** 32n,
  2n ** 53n,
  2n ** 63n,
  2n ** 64n - 1n,
  168n,
  192n
)
/** Field offsets worth hitting: cmd (group, type, flags, status, trans, size), attr (size, cmd, flags), io. */
const FIELDS = [64, 68, 72, 76, 80, 88, 96, 104, 108, 120 + 128, 120 + 136, 120 + 144, 120 + 148, 120 + 152, 120 + 160]

type Mutation =
  | { readonly kind: "byte"; readonly at: number; readonly value: number }
  | { readonly kind: "field"; readonly at: number; readonly width: 4 | 8; readonly value: bigint }
  | { readonly kind: "cut"; readonly at: number }
  | { readonly kind: "append"; readonly bytes: Uint8Array }
  | { readonly kind: "twice" }

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("byte" as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({
    kind: fc.constant("field" as const),
    at: fc.constantFrom(...FIELDS),
    width: fc.constantFrom(4 as const, 8 as const),
    value: fc.oneof(boundary, fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }))
  }),
  fc.record({ kind: fc.constant("cut" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("append" as const), bytes: fc.uint8Array({ maxLength: 64 }) }),
  fc.record({ kind: fc.constant("twice" as const) })
)

const mutate = (template: Uint8Array, mutations: ReadonlyArray<Mutation>): Uint8Array => {
  let bytes = template.slice()
  for (const m of mutations) {
    switch (m.kind) {
      case "byte":
        if (bytes.length > 0) bytes[m.at % bytes.length] = m.value
        break
      case "field": {
        if (m.at + m.width > bytes.length) break
        const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length)
        if (m.width === 4) view.setUint32(m.at, Number(m.value & 0xffff_ffffn), true)
        else view.setBigUint64(m.at, m.value & (2n ** 64n - 1n), true)
        break
      }
      case "cut":
        bytes = bytes.slice(0, m.at % (bytes.length + 1))
        break
      case "append":
        bytes = new Uint8Array(Buffer.concat([bytes, m.bytes]))
        break
      case "twice":
        bytes = new Uint8Array(Buffer.concat([bytes, bytes]))
        break
    }
  }
  return bytes
}

const mutated = fc.tuple(fc.constantFrom(...templates), fc.array(mutation, { minLength: 1, maxLength: 3 })).map((
  [template, mutations]
) => mutate(template, mutations))

/** Sends `bytes` on a fresh connection, half-closes, and drains what comes back until the node closes (2 s at most). */
const hit = (address: string, bytes: Uint8Array) =>
  Effect.gen(function*() {
    const connection = yield* Transport.dial(address)
    yield* Effect.ignore(connection.write([bytes]))
    yield* Effect.ignore(connection.end)
    const next = Pull.catchDone(connection.read, () => Effect.succeed(undefined))
    yield* Effect.gen(function*() {
      while ((yield* next) !== undefined) {
        // drained
      }
    }).pipe(Effect.ignore, Effect.timeoutOption("2 seconds"))
  }).pipe(Effect.scoped, Effect.orDie)

describe("DnetNode fuzzing", () => {
  it.live(
    "random and mutated packets over TCP: the node stays up, serves a good client, keeps its data",
    () =>
      Effect.gen(function*() {
        const store = yield* openStore("memory")
        const node = yield* DnetNode.make({
          store,
          listen: "tcp://127.0.0.1:0",
          group: GROUP,
          ids: [keyOf(0)],
          // With a cookie, a fuzzed STATUS cannot make the node read-only and a fuzzed JOIN cannot add routes.
          authCookie: new TextEncoder().encode("fuzz-guard"),
          maxPacketSize: 1024 * 1024,
          peerTimeout: "500 millis"
        })
        const context = yield* Effect.context<Transport.Transport>()
        const good = yield* DnetClient.make({ nodes: [node.address], timeout: "10 seconds" })
        const values = KEPT.map((_, i) => new Uint8Array(100 + i).fill(i + 1))
        for (const [i, key] of KEPT.entries()) {
          const outcomes = yield* good.write(key, values[i]!)
          assert.isTrue(Result.isSuccess(outcomes[0]!.result))
        }
        const check = Effect.gen(function*() {
          const i = Math.floor(Math.random() * KEPT.length)
          const read = yield* Effect.orDie(good.read(KEPT[i]!))
          assert.isTrue(Buffer.from(read.data).equals(Buffer.from(values[i]!)))
        })

        const runs = (arbitrary: fc.Arbitrary<Uint8Array>, numRuns: number) =>
          Effect.promise(() =>
            fc.assert(
              fc.asyncProperty(arbitrary, async (bytes) => {
                fc.pre(!touchesKept(bytes))
                await Effect.runPromise(Effect.provideContext(Effect.andThen(hit(node.address, bytes), check), context))
              }),
              { numRuns }
            )
          )
        yield* runs(fc.uint8Array({ minLength: 1, maxLength: 2048 }), 60)
        yield* runs(mutated, 250)
        // Valid packets sent back to back with garbage in one stream, too.
        yield* runs(
          fc.array(fc.oneof(mutated, fc.constantFrom(...templates)), { minLength: 2, maxLength: 6 }).map((parts) =>
            new Uint8Array(Buffer.concat(parts))
          ),
          100
        )

        // Every kept object is exactly as written, and the node still has no peers and is writable.
        for (const [i, key] of KEPT.entries()) {
          const stored = yield* Effect.orDie(store.read(key))
          assert.isTrue(Buffer.from(stored).equals(Buffer.from(values[i]!)), `object ${i}`)
        }
        assert.isFalse(node.readOnly())
        assert.strictEqual(node.routes().length, 1)
        const after = yield* good.write(keyOf(0xa9), new Uint8Array([9]))
        assert.isTrue(Result.isSuccess(after[0]!.result))
      }).pipe(Effect.provide(Transport.Transport.layer)),
    { timeout: 180_000 }
  )
})
