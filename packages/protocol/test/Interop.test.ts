// Interop with Silo's golden conversations (silo.md §9) over real sockets. The test plays Silo's side on a raw
// transport connection, writing and reading the vector's frames byte for byte: first the original source against
// our destination (PacketConnection + FromProtocol), then the original destination against our source
// (ToProtocol + Migrator).
import { assert, describe, it } from "@effect/vitest"
import * as SiloFrame from "@tessera/codec/SiloFrame"
import * as SiloPacket from "@tessera/codec/SiloPacket"
import * as BlockOrder from "@tessera/storage/BlockOrder"
import * as Blocks from "@tessera/storage/Blocks"
import * as DirtyTracker from "@tessera/storage/DirtyTracker"
import * as Lockable from "@tessera/storage/Lockable"
import * as Memory from "@tessera/storage/Memory"
import type { BlockDevice } from "@tessera/storage/Provider"
import type * as StorageError from "@tessera/storage/StorageError"
import { Deferred, Effect, Fiber, Pull, Queue, Result, type Scope } from "effect"
import { FromProtocol, Migrator, PacketConnection, ToProtocol, Transport } from "../src/index.ts"
import { type Conversation, type ConversationFrame, conversations, fromHex, toHex } from "./utils/packets.ts"
import { freshAddress } from "./utils/transport.ts"

const DEV = 1
const bs = 1024

const named = (name: string): Conversation => conversations.find((conversation) => conversation.name === name)!

/** One conversation of a replay, and the blocks the source changed before it (block, fill byte). */
interface Phase {
  readonly conversation: Conversation
  readonly changed: ReadonlyArray<readonly [block: number, fill: number]>
}

/** Conversations played one after another on one connection, over a device of `size` bytes. */
interface Scenario {
  readonly name: string
  readonly size: number
  readonly phases: ReadonlyArray<Phase>
}

const scenarios: ReadonlyArray<Scenario> = [
  {
    // The continuation runs on the connection of the "more complex" conversation (the source's ids go on at 7).
    name: "readme-more-complex-conversation, then dirty-sync-continuation",
    size: 4 * bs,
    phases: [
      { conversation: named("readme-more-complex-conversation"), changed: [[0, 1], [1, 2], [2, 3], [3, 4]] },
      { conversation: named("dirty-sync-continuation"), changed: [[0, 0x11], [3, 0x44]] }
    ]
  },
  {
    name: "readme-minimal-conversation",
    size: bs,
    phases: [{ conversation: named("readme-minimal-conversation"), changed: [[0, 1]] }]
  }
]

/** The device after the first `phases` phases: every block as last filled. */
const contentsAfter = (scenario: Scenario, phases: number): Uint8Array => {
  const bytes = new Uint8Array(scenario.size)
  for (const phase of scenario.phases.slice(0, phases)) {
    for (const [block, fill] of phase.changed) bytes.fill(fill, block * bs, (block + 1) * bs)
  }
  return bytes
}

const readAll = Effect.fnUntraced(function*(device: BlockDevice) {
  const bytes = new Uint8Array(device.size)
  yield* device.readAt(bytes, 0)
  return bytes
})

const isResponse = (frame: ConversationFrame): boolean => PacketConnection.isResponse(fromHex(frame.payload_hex)[0]!)

const fromSource = (frame: ConversationFrame): boolean => frame.direction === "src->dst"

/** A frame off the wire; `hex` is its exact bytes (the 12-byte header holds nothing but dev, id and length). */
interface Received {
  readonly dev: number
  readonly id: number
  readonly payload: Uint8Array
  readonly hex: string
}

/** Reads `connection` until the peer ends it, parsing frames with the codec and handing each to `onFrame`. */
const forEachFrame = <E>(connection: Transport.Connection, onFrame: (frame: Received) => Effect.Effect<void, E>) =>
  Effect.gen(function*() {
    const parser = SiloFrame.makeParser()
    const next = Pull.catchDone(connection.read, () => Effect.succeed(undefined))
    while (true) {
      const batch = yield* next
      if (batch === undefined) return Result.getOrThrow(parser.end())
      for (const chunk of batch) {
        for (const { dev, id, payload } of Result.getOrThrow(parser.push(chunk))) {
          yield* onFrame({ dev, id, payload: payload.slice(), hex: toHex(SiloFrame.encode(dev, id, payload)) })
        }
      }
    }
  })

/** A raw connection for Silo's side and the accepted one for ours, through a fresh listener of `scheme`. */
const socketPair = Effect.fnUntraced(function*(scheme: "tcp" | "unix") {
  const listener = yield* Transport.listen(yield* freshAddress(scheme))
  const [silo, ours] = yield* Effect.all([Transport.dial(listener.address), listener.accept], { concurrency: 2 })
  return { silo, ours }
})

/** Real sockets, and a bound on the whole test. */
const bounded = <A, E>(effect: Effect.Effect<A, E, Transport.Transport | Scope.Scope>) =>
  effect.pipe(Effect.timeout("5 seconds"), Effect.provide(Transport.Transport.layer))

// --- Silo's source, our destination --------------------------------------------------------------------------

/** An application read through the waiting cache of the range a NeedAt of the vector names, in the background. */
const readFor = Effect.fnUntraced(function*(from: FromProtocol.FromProtocol, needAt: ConversationFrame) {
  const { length, offset } = Result.getOrThrow(SiloPacket.decodeNeedAt(fromHex(needAt.payload_hex)))
  const bytes = new Uint8Array(length)
  const read = yield* Effect.forkChild(Effect.as(from.local.readAt(bytes, offset), bytes))
  return { offset, read }
})

/**
 * Replays the source's frames of each phase to our destination, paced as the vector is: before each source frame,
 * every destination frame the vector shows before it must have arrived. The frames of such a window may come in
 * any order (they answer requests in flight together, or are the destination's own hint), so each window is
 * compared as a multiset of exact frames; the EventResponse to Completed is always a window of its own, last.
 * The NeedAt of the "more complex" conversation comes, as in the original, from an application read of its block,
 * started as soon as the device exists (after DevInfo) and before any data arrives.
 */
const replayToDestination = Effect.fnUntraced(function*(scheme: "tcp" | "unix", scenario: Scenario) {
  const { ours, silo } = yield* socketPair(scheme)
  const connection = yield* PacketConnection.make([ours])
  const opening = yield* Effect.forkChild(
    FromProtocol.make(connection, DEV, { device: (info) => Memory.make(info.size, "destination") })
  )
  const arrived = yield* Queue.unbounded<Received>()
  const receiving = yield* Effect.forkChild(forEachFrame(silo, (frame) => Queue.offer(arrived, frame)))
  const expectWindow = Effect.fnUntraced(function*(window: ReadonlyArray<ConversationFrame>) {
    const got: Array<string> = []
    for (const _ of window) got.push((yield* Queue.take(arrived)).hex)
    assert.deepStrictEqual(got.toSorted(), window.map((frame) => frame.frame_hex).toSorted())
  })

  let from: FromProtocol.FromProtocol | undefined
  for (const [index, { conversation }] of scenario.phases.entries()) {
    const needAts = conversation.frames.filter((frame) => !fromSource(frame) && !isResponse(frame))
    let reads:
      | ReadonlyArray<{ readonly offset: number; readonly read: Fiber.Fiber<Uint8Array, StorageError.StorageError> }>
      | undefined
    let window: Array<ConversationFrame> = []
    for (const frame of conversation.frames) {
      if (!fromSource(frame)) {
        window.push(frame)
        continue
      }
      yield* expectWindow(window)
      window = []
      yield* silo.write([fromHex(frame.frame_hex)])
      const device = from ??= yield* Fiber.join(opening)
      // The phase's application reads start once, as soon as the device exists: before the data they wait for.
      reads ??= yield* Effect.forEach(needAts, (needAt) => readFor(device, needAt))
    }
    yield* expectWindow(window)
    assert.isDefined(from)
    const expected = contentsAfter(scenario, index + 1)
    assert.deepStrictEqual(yield* readAll(from.device), expected)
    for (const { offset, read } of reads ?? []) {
      const bytes = yield* Fiber.join(read)
      assert.deepStrictEqual(bytes, expected.subarray(offset, offset + bytes.length))
    }
    assert.isTrue(yield* Deferred.isDone(from.completed))
    const total = Blocks.count(scenario.size, bs)
    assert.deepStrictEqual(yield* from.local.availability, { available: total, total })
  }
  // Nothing more: once Silo's side ends its stream, ours closes, with every frame it sent accounted for.
  yield* silo.end
  yield* Fiber.join(receiving)
  assert.strictEqual(yield* Queue.size(arrived), 0)
})

describe("Interop: Silo's source, our destination", () => {
  for (const scheme of ["tcp", "unix"] as const) {
    for (const scenario of scenarios) {
      it.live(`${scenario.name} over ${scheme}: the responses, the NeedAt and the device are the vector's`, () =>
        bounded(replayToDestination(scheme, scenario)))
    }
  }
})

// --- our source, Silo's destination --------------------------------------------------------------------------

/**
 * What the vector's destination sends on receiving each request of `conversation`, by request id: its hints
 * (NeedAt) since its previous answer, then the answer.
 */
const answersOf = (conversation: Conversation): ReadonlyMap<number, ReadonlyArray<ConversationFrame>> => {
  const answers = new Map<number, ReadonlyArray<ConversationFrame>>()
  let hints: Array<ConversationFrame> = []
  for (const frame of conversation.frames) {
    if (fromSource(frame)) continue
    if (!isResponse(frame)) {
      hints.push(frame)
      continue
    }
    answers.set(frame.id, [...hints, frame])
    hints = []
  }
  return answers
}

/**
 * Silo's destination on a raw connection: `serve` records every frame our source sends and answers it as the
 * vector does. A frame is matched to the first unanswered request of the vector with the same dev and payload,
 * and answered under the id it came with, so that an id of ours that differs shows up in the comparison of the
 * frames rather than as a hang. A frame the vector does not have ends `serve` with a defect at once.
 */
const vectorDestination = (connection: Transport.Connection, scenario: Scenario) => {
  const requests = scenario.phases.flatMap(({ conversation }) => {
    const answers = answersOf(conversation)
    return conversation.frames.filter(fromSource).map((frame) => ({ frame, answers: answers.get(frame.id) ?? [] }))
  })
  const received: Array<Received> = []
  let hintsSent = 0
  const serve = forEachFrame(connection, (frame) => {
    received.push(frame)
    const at = requests.findIndex((request) =>
      request.frame.dev === frame.dev && request.frame.payload_hex === toHex(frame.payload)
    )
    if (at === -1) return Effect.die(new Error(`our source sent a frame the conversations do not have: ${frame.hex}`))
    const [{ answers }] = requests.splice(at, 1)
    const out = answers.map((answer) => {
      if (isResponse(answer)) return SiloFrame.encode(answer.dev, frame.id, fromHex(answer.payload_hex))
      hintsSent++
      return fromHex(answer.frame_hex)
    })
    return out.length === 0 ? Effect.void : connection.write(out)
  })
  return { serve, received, hintsSent: () => hintsSent }
}

/** What a frame says, for comparison: dev, id and the decoded packet. */
const decoded = (dev: number, id: number, payload: Uint8Array) => ({
  dev,
  id,
  packet: Result.getOrThrow(SiloPacket.decode(payload))
})

/**
 * Runs our source over a device filled as the phases say against the vector's destination, and compares what it
 * sent in each phase with the conversation's src->dst frames, decoded and byte for byte. Blocks move one at a
 * time, so the order of the frames, and with it their ids, is fixed; the hints that came with a block's answer
 * are in the order before the next block is picked. A later phase is a dirty round: the source (left locked by
 * the previous `Migrator.run`) is unlocked and written, and `Migrator.run` sends the DirtyList and the blocks.
 */
const migrateToVector = Effect.fnUntraced(function*(scheme: "tcp" | "unix", scenario: Scenario) {
  const { ours, silo } = yield* socketPair(scheme)
  const destination = vectorDestination(silo, scenario)
  const migration = Effect.gen(function*() {
    const connection = yield* PacketConnection.make([ours])
    const tracker = yield* DirtyTracker.make(yield* Memory.make(scenario.size, "source"), bs)
    const lockable = yield* Lockable.make(tracker.local)
    const to = ToProtocol.make(connection, DEV, scenario.size)
    const total = Blocks.count(scenario.size, bs)
    const order = BlockOrder.makePriority(total, BlockOrder.makeAny(total))
    order.addAll()
    const hinted = yield* Queue.unbounded<number>()
    yield* Effect.forkChild(to.handleNeedAt(bs, (block) => {
      order.prioritise(block)
      return Queue.offer(hinted, block)
    }))
    const migrator = yield* Migrator.make({
      source: tracker.remote,
      destination: to,
      order,
      blockSize: bs,
      lock: lockable.lock,
      unlock: lockable.unlock,
      concurrency: { Any: 1, Standard: 1, Priority: 1, Dirty: 1 }
    })
    yield* to.sendDevInfo("test", bs, "")
    let hintsTaken = 0
    let seen = 0
    for (const { changed, conversation } of scenario.phases) {
      yield* migrator.unlock
      for (const [block, fill] of changed) yield* lockable.writeAt(new Uint8Array(bs).fill(fill), block * bs)
      for (let moved = (yield* migrator.progress).migratedBlocks; moved < total; moved++) {
        yield* migrator.migrate(1)
        yield* migrator.waitForCompletion
        for (; hintsTaken < destination.hintsSent(); hintsTaken++) yield* Queue.take(hinted)
      }
      yield* Migrator.run(migrator, { onDirty: (blocks) => to.sendDirtyList(bs, blocks) })
      yield* to.sendEvent(SiloPacket.EventType.Completed)

      const sent = destination.received.slice(seen)
      seen = destination.received.length
      assert.deepStrictEqual(
        sent.map((frame) => decoded(frame.dev, frame.id, frame.payload)),
        conversation.frames.filter(fromSource).map((frame) => decoded(frame.dev, frame.id, fromHex(frame.payload_hex)))
      )
      assert.strictEqual(sent.map((frame) => frame.hex).join(""), conversation.stream_src_to_dst_hex)
    }
  })
  // The destination serves until the connection ends, so it wins the race only by failing.
  yield* Effect.raceFirst(migration, Effect.andThen(destination.serve, Effect.never))
})

describe("Interop: our source, Silo's destination", () => {
  for (const scheme of ["tcp", "unix"] as const) {
    for (const scenario of scenarios) {
      it.live(`${scenario.name} over ${scheme}: our frames decode to the conversation's sequence`, () =>
        bounded(migrateToVector(scheme, scenario)))
    }
  }
})
