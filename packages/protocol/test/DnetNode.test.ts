import { assert, describe, it } from "@effect/vitest"
import {
  AttrFlags,
  CmdFlags,
  Command,
  Errno,
  IoFlags,
  NodeStatusFlags,
  TRANS_REPLY
} from "@tessera/codec/DnetConstants"
import * as DnetPacket from "@tessera/codec/DnetPacket"
import { AddrAttr, Auth, FileInfo, type Id, NodeStatus, Stat } from "@tessera/codec/DnetStructs"
import type { ObjectStore } from "@tessera/storage"
import * as MemoryStore from "@tessera/storage/MemoryStore"
import { Clock, Effect, Result, type Scope } from "effect"
import * as fc from "fast-check"
import { DnetNode, DnetRing, Transport } from "../src/index.ts"
import { addrAttrOf, encodeParts } from "../src/internal/dnetWire.ts"
import {
  bulkReadRequest,
  bytesOf,
  io,
  keyOf,
  openStore,
  raw,
  readRequest,
  type Reply,
  request,
  textOf,
  writeRequest
} from "./utils/dnet.ts"

const GROUP = 1
const IDS = [keyOf(0x00), keyOf(0x80)]
const EMPTY = new Uint8Array(0)

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex")

/** Asserts that a reply is exactly the bytes of `expected`. */
const exactly = (reply: Reply | undefined, expected: DnetPacket.Packet) => {
  assert.isDefined(reply)
  assert.strictEqual(hex(reply!.bytes), hex(DnetPacket.encodePacket(expected)))
}

/** The final ACK of a request, as §3.1 step 4 lays it out. */
const ackOf = (req: DnetPacket.Packet, status: number): DnetPacket.Packet => ({
  id: req.id,
  flags: req.flags & ~(CmdFlags.NEED_ACK | CmdFlags.MORE),
  status,
  trans: req.trans | TRANS_REPLY,
  attrs: []
})

/** A data reply header: request flags without NEED_ACK/MORE, MORE when `more`. */
const replyTo = (req: DnetPacket.Packet, more: boolean, id: Id = req.id) => ({
  id,
  flags: (req.flags & ~(CmdFlags.NEED_ACK | CmdFlags.MORE)) | (more ? CmdFlags.MORE : 0),
  status: 0,
  trans: req.trans | TRANS_REPLY
})

const concat = (...parts: ReadonlyArray<Uint8Array>) => new Uint8Array(Buffer.concat(parts))

const fileInfo = (info: ObjectStore.ObjectInfo) => {
  const time = {
    tsec: BigInt(Math.floor(info.modified / 1000)),
    tnsec: BigInt(Math.floor((info.modified % 1000) * 1_000_000))
  }
  return FileInfo.encode({
    flen: 0,
    checksum: new Uint8Array(64),
    nlink: 1,
    mode: 0o100644,
    dev: 0n,
    rdev: 0n,
    ino: 0n,
    uid: 0,
    gid: 0,
    blksize: 4096,
    blocks: Math.ceil(info.size / 512),
    size: info.size,
    offset: 0,
    atime: time,
    ctime: time,
    mtime: time
  })
}

const startNode = (kind: "memory" | "file" | "blob", options: Partial<DnetNode.Options> = {}) =>
  Effect.gen(function*() {
    const store = yield* openStore(kind)
    const node = yield* DnetNode.make({ store, listen: "tcp://127.0.0.1:0", group: GROUP, ids: IDS, ...options })
    const self = AddrAttr.encode(addrAttrOf(node.address)!)
    return { store, node, self }
  })

/** A STATUS request that changes the status flags (the other fields -1: unchanged). */
const statusChange = (statusFlags: number) =>
  request(Command.STATUS, {
    attrFlags: AttrFlags.STATUS_CHANGE,
    data: NodeStatus.encode({ nflags: -1, statusFlags, logMask: 0xffff_ffff })
  })

/** 3 MiB + 5 bytes of a pattern that differs per seed: bigger than the node's pooling threshold (1 MiB). */
const pattern = (seed: number) => new Uint8Array(3 * 1024 * 1024 + 5).map((_, i) => (i * seed + (i >> 12)) & 0xff)

const readId = (key: Uint8Array): Id => ({ id: key, groupId: GROUP, type: 0 })

/** `it.live` (real time: the node and the helpers have timeouts) with the real transports. */
const test = <A, E>(name: string, body: () => Effect.Effect<A, E, Transport.Transport | Scope.Scope>) =>
  it.live(name, () => Effect.provide(body(), Transport.Transport.layer))

describe("DnetNode", () => {
  for (const kind of ["memory", "file", "blob"] as const) {
    test(`every command round trips against the ${kind} backend, byte by byte`, () =>
      Effect.gen(function*() {
        const { node, self, store } = yield* startNode(kind)
        const c = yield* raw(node.address)
        const key = keyOf(0x41)

        // WRITE with NEED_ACK: NEED_ACK is cleared, the file-info reply is the final one.
        const w = writeRequest(key, bytesOf("55555"))
        let replies = yield* c.exchange(w)
        assert.strictEqual(replies.length, 1)
        let info = yield* Effect.orDie(store.stat(key))
        exactly(replies[0], {
          ...replyTo(w, false),
          attrs: [{ cmd: Command.WRITE, flags: AttrFlags.NOCSUM, data: concat(self, fileInfo(info)) }]
        })

        // A write at offset 1 extends in place: "5" + "43210".
        const w2 = writeRequest(key, bytesOf("43210"), { offset: 1 })
        replies = yield* c.exchange(w2)
        info = yield* Effect.orDie(store.stat(key))
        assert.strictEqual(info.size, 6)
        exactly(replies[0], {
          ...replyTo(w2, false),
          attrs: [{ cmd: Command.WRITE, flags: AttrFlags.NOCSUM, data: concat(self, fileInfo(info)) }]
        })

        // READ with NEED_ACK: [READ reply, MORE] then the ACK; the reply uses io.id and echoes io with the size sent.
        const r = readRequest(key, { offset: 3 })
        replies = yield* c.exchange(r)
        assert.strictEqual(replies.length, 2)
        exactly(replies[0], {
          ...replyTo(r, true, readId(key)),
          attrs: [{ cmd: Command.READ, flags: 0, io: io(key, { offset: 3, size: 3 }), data: bytesOf("210") }]
        })
        exactly(replies[1], ackOf(r, 0))

        // check_get_size: (2, 1) -> "3"; past the end -> no data reply, ACK 0.
        const r2 = readRequest(key, { offset: 2, size: 1 })
        replies = yield* c.exchange(r2)
        assert.strictEqual(textOf(replies[0]!.packet.attrs[0]!.data), "3")
        const r3 = readRequest(key, { offset: 6, size: 10 })
        replies = yield* c.exchange(r3)
        assert.strictEqual(replies.length, 1)
        exactly(replies[0], ackOf(r3, 0))

        // READ without NEED_ACK: one reply without MORE ends the transaction.
        const r4 = readRequest(key, {}, 0)
        replies = yield* c.exchange(r4)
        assert.strictEqual(replies.length, 1)
        exactly(replies[0], {
          ...replyTo(r4, false, readId(key)),
          attrs: [{ cmd: Command.READ, flags: 0, io: io(key, { size: 6 }), data: bytesOf("543210") }]
        })

        // APPEND.
        const a = writeRequest(key, bytesOf("!"), { flags: IoFlags.APPEND })
        replies = yield* c.exchange(a)
        assert.strictEqual(replies[0]!.packet.attrs[0]!.cmd, Command.WRITE)
        assert.strictEqual(textOf(yield* Effect.orDie(store.read(key))), "543210!")

        // PREPARE + PLAIN_WRITE + COMMIT: the record is exactly what was written.
        const p = keyOf(0x42)
        yield* c.exchange(writeRequest(p, bytesOf("abc"), { flags: IoFlags.PREPARE, num: 1024 }))
        yield* c.exchange(writeRequest(p, bytesOf("def"), { flags: IoFlags.PLAIN_WRITE, offset: 3 }))
        yield* c.exchange(writeRequest(p, bytesOf("ABC"), { flags: IoFlags.PLAIN_WRITE }))
        yield* c.exchange(
          writeRequest(p, bytesOf("gh"), { flags: IoFlags.PLAIN_WRITE | IoFlags.COMMIT, offset: 6, num: 8 })
        )
        assert.strictEqual(textOf(yield* Effect.orDie(store.read(p))), "ABCdefgh")
        yield* c.exchange(writeRequest(p, bytesOf("xy"), { flags: IoFlags.COMMIT, offset: 0, num: 4 }))
        assert.strictEqual(textOf(yield* Effect.orDie(store.read(p))), "xyCd")

        // LOOKUP: [LOOKUP reply, MORE] + ACK; a missing key is -ENOENT.
        const l = request(Command.LOOKUP, { key })
        replies = yield* c.exchange(l)
        info = yield* Effect.orDie(store.stat(key))
        exactly(replies[0], {
          ...replyTo(l, true),
          attrs: [{ cmd: Command.LOOKUP, flags: 0, data: concat(self, fileInfo(info)) }]
        })
        exactly(replies[1], ackOf(l, 0))
        const l2 = request(Command.LOOKUP, { key: keyOf(0x99) })
        replies = yield* c.exchange(l2)
        exactly(replies[0], ackOf(l2, -Errno.ENOENT))

        // READ_RANGE over [0x41.., 0x42..]: a record reply per key, the trailer with the count, the ACK.
        const range = request(Command.READ_RANGE, {
          key,
          io: io(key, { parent: keyOf(0x42) })
        })
        replies = yield* c.exchange(range)
        assert.strictEqual(replies.length, 4)
        exactly(replies[0], {
          ...replyTo(range, true, readId(key)),
          attrs: [{
            cmd: Command.READ,
            flags: 0,
            io: io(key, { parent: keyOf(0x42), size: 7 }),
            data: bytesOf("543210!")
          }]
        })
        assert.strictEqual(textOf(replies[1]!.packet.attrs[0]!.data), "xyCd")
        exactly(replies[2], {
          ...replyTo(range, true),
          attrs: [{ cmd: Command.READ, flags: 0, io: io(key, { parent: keyOf(0x42), num: 2 }), data: EMPTY }]
        })
        exactly(replies[3], ackOf(range, 0))
        // LIMIT (start 1, num 1) and NODATA: one record without bytes, its size in io.size.
        const limited = request(Command.READ_RANGE, {
          key: keyOf(0),
          io: io(keyOf(0), { parent: keyOf(0xff), start: 1, num: 1, flags: IoFlags.NODATA })
        })
        replies = yield* c.exchange(limited)
        assert.strictEqual(replies.length, 3)
        assert.deepStrictEqual([...replies[0]!.packet.attrs[0]!.io!.id], [...keyOf(0x42)])
        assert.strictEqual(replies[0]!.packet.attrs[0]!.io!.size, 4)
        assert.strictEqual(replies[0]!.packet.attrs[0]!.data.length, 0)

        // BULK_READ: one READ reply per key found; the missing one is skipped.
        const bulk = bulkReadRequest(key, [io(key, { offset: 6 }), io(keyOf(0x77)), io(p)])
        replies = yield* c.exchange(bulk)
        assert.deepStrictEqual(replies.map((reply) => textOf(reply.packet.attrs[0]?.data ?? EMPTY)), ["!", "xyCd", ""])
        exactly(replies[2], ackOf(bulk, 0))

        // LIST: the ids held, concatenated, with MORE, then the ACK.
        const list = request(Command.LIST)
        replies = yield* c.exchange(list)
        exactly(replies[0], { ...replyTo(list, true), attrs: [{ cmd: Command.LIST, flags: 0, data: concat(key, p) }] })
        exactly(replies[1], ackOf(list, 0))

        // STAT: a 392-byte dnet_stat.
        const stat = request(Command.STAT)
        replies = yield* c.exchange(stat)
        assert.strictEqual(replies[0]!.packet.attrs[0]!.data.length, Stat.size)
        assert.isTrue(Result.isSuccess(Stat.decode(replies[0]!.packet.attrs[0]!.data)))
        assert.strictEqual(replies[0]!.packet.flags, CmdFlags.MORE)
        exactly(replies[1], ackOf(stat, 0))

        // STAT_COUNT: dnet_addr_stat with 2 x 19 counters; WRITE from a client counted in the client half.
        const counts = request(Command.STAT_COUNT)
        replies = yield* c.exchange(counts)
        const countData = replies[0]!.packet.attrs[0]!.data
        const view = new DataView(countData.buffer, countData.byteOffset, countData.length)
        assert.strictEqual(view.getInt32(32, true), 38)
        assert.strictEqual(view.getInt32(36, true), 19)
        assert.strictEqual(countData.length, 40 + 16 * 38)
        assert.strictEqual(Number(view.getBigUint64(40 + 16 * (19 + Command.WRITE), true)), 8)
        exactly(replies[1], ackOf(counts, 0))
        const global = request(Command.STAT_COUNT, { attrFlags: AttrFlags.CNTR_GLOBAL })
        replies = yield* c.exchange(global)
        assert.strictEqual(replies[0]!.packet.attrs[0]!.data.length, 40 + 16 * 65)

        // STATUS: read, then RO (writes and deletes refused with -EROFS), then back.
        const ro = statusChange(NodeStatusFlags.RO)
        replies = yield* c.exchange(ro)
        exactly(replies[0], {
          ...replyTo(ro, true),
          attrs: [{
            cmd: Command.STATUS,
            flags: AttrFlags.STATUS_CHANGE,
            data: NodeStatus.encode({ nflags: 0, statusFlags: NodeStatusFlags.RO, logMask: 0 })
          }]
        })
        const refused = writeRequest(key, bytesOf("no"))
        exactly((yield* c.exchange(refused))[0], ackOf(refused, -Errno.EROFS))
        const exit = statusChange(NodeStatusFlags.EXIT)
        exactly((yield* c.exchange(exit))[0], ackOf(exit, -Errno.EPERM))
        yield* c.exchange(statusChange(0))
        assert.isFalse(node.readOnly())

        // AUTH: the payload must be a 64-byte dnet_auth; a wrong cookie is -EPERM, the node's (none: zeros) passes.
        const badAuth = request(Command.AUTH, { data: new Uint8Array(10) })
        exactly((yield* c.exchange(badAuth))[0], ackOf(badAuth, -Errno.EINVAL))
        const wrong = request(Command.AUTH, { data: Auth.encode({ cookie: bytesOf("nope"), flags: 0n }) })
        exactly((yield* c.exchange(wrong))[0], ackOf(wrong, -Errno.EPERM))
        const right = request(Command.AUTH, { data: Auth.encode({ cookie: new Uint8Array(32), flags: 0n }) })
        exactly((yield* c.exchange(right))[0], ackOf(right, 0))

        // REVERSE_LOOKUP: the node's address and ids; ROUTE_LIST: one dnet_addr_cmd per node, then the ACK.
        const reverse = request(Command.REVERSE_LOOKUP)
        replies = yield* c.exchange(reverse)
        exactly(replies[0], {
          ...replyTo(reverse, true, { id: IDS[0]!, groupId: GROUP, type: 0 }),
          attrs: [{ cmd: Command.REVERSE_LOOKUP, flags: 0, data: concat(self, ...IDS) }]
        })
        const routes = request(Command.ROUTE_LIST)
        replies = yield* c.exchange(routes)
        exactly(replies[0], {
          ...replyTo(routes, true, { id: IDS[0]!, groupId: GROUP, type: 0 }),
          attrs: [{ cmd: Command.ROUTE_LIST, flags: 0, data: concat(self, ...IDS) }]
        })
        exactly(replies[1], ackOf(routes, 0))

        // EXEC is refused; an unknown command is -EINVAL; another group is -ENXIO.
        const exec = request(Command.EXEC, { data: bytesOf("rm -rf /") })
        exactly((yield* c.exchange(exec))[0], ackOf(exec, -Errno.ENOTSUP))
        const unknown = request(99)
        exactly((yield* c.exchange(unknown))[0], ackOf(unknown, -Errno.EINVAL))
        const elsewhere = request(Command.LOOKUP, { key, group: 7 })
        exactly((yield* c.exchange(elsewhere))[0], ackOf(elsewhere, -Errno.ENXIO))

        // DEL: ACK 0, then the key is gone (-ENOENT on read and on a second DEL).
        const d = request(Command.DEL, { key })
        exactly((yield* c.exchange(d))[0], ackOf(d, 0))
        const gone = readRequest(key)
        exactly((yield* c.exchange(gone))[0], ackOf(gone, -Errno.ENOENT))
        const again = request(Command.DEL, { key })
        exactly((yield* c.exchange(again))[0], ackOf(again, -Errno.ENOENT))

        // DEL_RANGE: the trailer counts what was removed; a second one removes nothing.
        const delRange = request(Command.DEL_RANGE, { key: keyOf(0), io: io(keyOf(0), { parent: keyOf(0xff) }) })
        replies = yield* c.exchange(delRange)
        exactly(replies[0], {
          ...replyTo(delRange, true),
          attrs: [{ cmd: Command.READ, flags: 0, io: io(keyOf(0), { parent: keyOf(0xff), num: 1 }), data: EMPTY }]
        })
        exactly(replies[1], ackOf(delRange, 0))
        const delAgain = request(Command.DEL_RANGE, { key: keyOf(0), io: io(keyOf(0), { parent: keyOf(0xff) }) })
        assert.strictEqual((yield* c.exchange(delAgain))[0]!.packet.attrs[0]!.io!.num, 0)
        assert.strictEqual((yield* Effect.orDie(store.stats)).objects, 0)
      }))
  }

  it("the parts a node writes are exactly the codec's encoding, large data by reference", () =>
    fc.assert(fc.property(
      fc.array(
        fc.record({
          cmd: fc.constantFrom(Command.WRITE, Command.LOOKUP, Command.READ, Command.STAT),
          size: fc.constantFrom(0, 1, 100, 4095, 4096, 9000)
        }),
        { maxLength: 4 }
      ),
      (attrs) => {
        const packet: DnetPacket.Packet = {
          id: readId(keyOf(1)),
          flags: 3,
          status: -2,
          trans: 7n,
          attrs: attrs.map(({ cmd, size }) => {
            const data = new Uint8Array(size).fill(size & 0xff)
            return DnetPacket.isIoCommand(cmd)
              ? { cmd, flags: 1, io: io(keyOf(2), { size }), data }
              : { cmd, flags: 1, data }
          })
        }
        const parts = encodeParts(packet)
        // Data of 4 KiB and more is not copied: the very array goes out.
        const large = packet.attrs.filter((a) => a.data.length >= 4096).map((a) => a.data)
        return hex(concat(...parts)) === hex(DnetPacket.encodePacket(packet)) &&
          large.every((data) => parts.includes(data))
      }
    )))

  test("a READ larger than one reply is split into replies with MORE", () =>
    Effect.gen(function*() {
      const { node, store } = yield* startNode("memory", { maxReplyData: 4 })
      const key = keyOf(3)
      yield* Effect.orDie(store.write(key, bytesOf("0123456789")))
      const c = yield* raw(node.address)
      const r = readRequest(key)
      const replies = yield* c.exchange(r)
      assert.deepStrictEqual(replies.map((reply) => textOf(reply.packet.attrs[0]?.data ?? EMPTY)), [
        "0123",
        "4567",
        "89",
        ""
      ])
      assert.deepStrictEqual(replies.map((reply) => reply.packet.attrs[0]?.io?.offset), [0, 4, 8, undefined])
      assert.isTrue(replies.slice(0, 3).every((reply) => (reply.packet.flags & CmdFlags.MORE) !== 0))
      exactly(replies[3], ackOf(r, 0))
      // Without NEED_ACK the last piece is the final reply.
      const r2 = readRequest(key, {}, 0)
      const plain = yield* c.exchange(r2)
      assert.deepStrictEqual(plain.map((reply) => reply.packet.flags), [CmdFlags.MORE, CmdFlags.MORE, 0])
    }))

  test("big WRITEs that arrive in pieces are stored exactly, one after another; one cut short writes nothing", () =>
    Effect.gen(function*() {
      const { node, store } = yield* startNode("memory")
      const c = yield* raw(node.address)
      const objects = [[keyOf(0x61), pattern(3)], [keyOf(0x62), pattern(7)], [keyOf(0x61), pattern(11)]] as const
      for (const [key, data] of objects) {
        const replies = yield* c.exchange(writeRequest(key, data))
        assert.strictEqual(replies[0]!.packet.status, 0)
      }
      for (const [key, data] of objects.slice(1)) {
        assert.isTrue(Buffer.from(yield* Effect.orDie(store.read(key))).equals(Buffer.from(data)))
      }
      // The same again, pipelined: two big packets back to back in one stream.
      const both = concat(
        DnetPacket.encodePacket(writeRequest(keyOf(0x63), pattern(13), {}, 0)),
        DnetPacket.encodePacket(writeRequest(keyOf(0x64), pattern(17), {}, 0))
      )
      yield* c.sendBytes(both)
      yield* c.next
      yield* c.next
      assert.isTrue(Buffer.from(yield* Effect.orDie(store.read(keyOf(0x63)))).equals(Buffer.from(pattern(13))))
      assert.isTrue(Buffer.from(yield* Effect.orDie(store.read(keyOf(0x64)))).equals(Buffer.from(pattern(17))))
      // A big packet whose stream ends half way: the connection closes and nothing is stored.
      const cut = DnetPacket.encodePacket(writeRequest(keyOf(0x65), pattern(19)))
      const d = yield* raw(node.address)
      yield* d.sendBytes(cut.subarray(0, 2 * 1024 * 1024))
      yield* Effect.orDie(d.connection.end)
      assert.isTrue(yield* d.isClosed())
      assert.isTrue(Result.isFailure(yield* Effect.result(store.stat(keyOf(0x65)))))
    }))

  test("NOTIFY: changes of a key reach its subscribers until they unsubscribe", () =>
    Effect.gen(function*() {
      const { node, self } = yield* startNode("memory")
      const watcher = yield* raw(node.address)
      const writer = yield* raw(node.address)
      const key = keyOf(9)
      const subscribe = request(Command.NOTIFY, { key })
      yield* watcher.send(subscribe)
      // A barrier: the subscription is in place once a later request on the same connection is answered.
      yield* watcher.exchange(request(Command.STAT_COUNT))
      yield* writer.exchange(writeRequest(key, bytesOf("hi"), { flags: IoFlags.APPEND }))
      const event = yield* watcher.next
      exactly(event, {
        ...replyTo(subscribe, true),
        attrs: [{
          cmd: Command.NOTIFY,
          flags: 0,
          data: concat(
            self,
            DnetPacket.encodePacket({
              id: subscribe.id,
              flags: 0,
              status: 0,
              trans: 0n,
              attrs: [{ cmd: Command.READ, flags: 0, io: io(key, { flags: IoFlags.APPEND, size: 2 }), data: EMPTY }]
            }).subarray(DnetPacket.HEADER_SIZE + DnetPacket.ATTR_SIZE)
          )
        }]
      })
      yield* writer.exchange(request(Command.DEL, { key }))
      assert.strictEqual((yield* watcher.next).packet.attrs[0]!.data.length, 40 + 168)
      // Unsubscribing ends the subscription's transaction with its ACK, then answers the request itself.
      const unsubscribe = request(Command.NOTIFY, { key, attrFlags: 1 })
      yield* watcher.send(unsubscribe)
      exactly(yield* watcher.next, ackOf(subscribe, 0))
      exactly(yield* watcher.next, ackOf(unsubscribe, 0))
    }))

  test("bad packets get -EINVAL or a closed connection, and write nothing", () =>
    Effect.gen(function*() {
      const { node, store } = yield* startNode("memory", { maxPacketSize: 1024 * 1024 })
      const c = yield* raw(node.address)
      const key = keyOf(5)

      // io.size disagrees with the data: -EINVAL even without NEED_ACK, nothing stored.
      const lying = writeRequest(key, bytesOf("data"), { size: 3 }, 0)
      exactly((yield* c.exchange(lying))[0], ackOf(lying, -Errno.EINVAL))
      // An attribute that overruns the packet (§1.1): -EINVAL.
      const good = DnetPacket.encodePacket(writeRequest(key, bytesOf("data")))
      const overrun = good.slice()
      new DataView(overrun.buffer).setUint32(DnetPacket.HEADER_SIZE, 10_000, true)
      yield* c.sendBytes(overrun)
      const reply = (yield* c.finalReplies)[0]!
      assert.strictEqual(reply.packet.status, -Errno.EINVAL)
      assert.strictEqual(
        reply.packet.trans & ~TRANS_REPLY,
        DnetPacket.transaction(DnetPacket.decodePacket(good).pipe(Result.getOrThrow))
      )
      // A second attribute that is malformed voids the whole packet: the first (valid) WRITE does not run either.
      const two = writeRequest(key, bytesOf("data"))
      const twoAttrs: DnetPacket.Packet = {
        ...two,
        attrs: [two.attrs[0]!, { cmd: Command.WRITE, flags: 0, io: io(key, { size: 1 }), data: EMPTY }]
      }
      const truncated = DnetPacket.encodePacket(twoAttrs)
      const cut = truncated.slice(0, truncated.length - 100)
      new DataView(cut.buffer).setUint32(88, cut.length - DnetPacket.HEADER_SIZE, true)
      yield* c.sendBytes(cut)
      assert.strictEqual((yield* c.finalReplies)[0]!.packet.status, -Errno.EINVAL)
      // A JOIN or STATUS of the wrong size.
      const join = request(Command.JOIN, { data: new Uint8Array(41), flags: 0 })
      exactly((yield* c.exchange(join))[0], ackOf(join, -Errno.EINVAL))
      const status = request(Command.STATUS, { data: new Uint8Array(11) })
      exactly((yield* c.exchange(status))[0], ackOf(status, -Errno.EINVAL))
      assert.strictEqual((yield* Effect.orDie(store.stats)).objects, 0)

      // The connection still works.
      const ok = writeRequest(key, bytesOf("fine"))
      assert.strictEqual((yield* c.exchange(ok))[0]!.packet.status, 0)

      // A header announcing more than the node accepts closes the connection before anything is buffered.
      const huge = DnetPacket.encodePacket(writeRequest(keyOf(6), bytesOf("x")))
      new DataView(huge.buffer).setUint32(92, 1, true)
      yield* c.sendBytes(huge)
      assert.isTrue(yield* c.isClosed())
      assert.strictEqual(textOf(yield* Effect.orDie(store.read(key))), "fine")
      // ... and the node goes on serving others.
      const other = yield* raw(node.address)
      assert.strictEqual((yield* other.exchange(readRequest(key)))[0]!.packet.attrs[0]!.data.length, 4)
    }))

  test("JOIN adds the joiner's ids to the ring after checking it can connect back", () =>
    Effect.gen(function*() {
      const { node } = yield* startNode("memory")
      const joiner = yield* startNode("memory", { ids: [keyOf(0x40)] })
      const c = yield* raw(node.address)
      const announce = concat(AddrAttr.encode(addrAttrOf(joiner.node.address)!), keyOf(0x40))
      yield* c.send(request(Command.JOIN, { data: announce, flags: CmdFlags.DIRECT | CmdFlags.NOLOCK }))
      // JOIN without NEED_ACK has no reply, and the node routes to the joiner only once it has connected back to
      // it, while it goes on serving the connection's later requests: wait for the route.
      yield* Effect.gen(function*() {
        while (node.routes().length !== 2) yield* Effect.sleep(5)
      }).pipe(Effect.timeout("5 seconds"))
      assert.strictEqual(DnetRing.owner(node.ring(), GROUP, keyOf(0x41)), joiner.node.address)
      assert.strictEqual(DnetRing.owner(node.ring(), GROUP, keyOf(0x81)), node.address)
      // An address nobody listens on is refused (-ENXIO) and not routed to.
      const nowhere = concat(AddrAttr.encode(addrAttrOf("tcp://127.0.0.1:1")!), keyOf(0x50))
      const refused = request(Command.JOIN, { data: nowhere })
      exactly((yield* c.exchange(refused))[0], ackOf(refused, -Errno.ENXIO))
      assert.strictEqual(node.routes().length, 2)
      // The route lives as long as the connection that announced it.
      yield* c.connection.close
      yield* Effect.gen(function*() {
        while (node.routes().length !== 1) yield* Effect.sleep(10)
      }).pipe(Effect.timeout("5 seconds"))
    }))

  test("requests answered at once (writeNow, readNow) get the same bytes as those a handler answers", () =>
    Effect.gen(function*() {
      // A store whose synchronous forms can be hidden, with a clock that stands still so file infos match.
      const real = yield* Clock.Clock
      const stopped: Clock.Clock = {
        currentTimeMillisUnsafe: () => 1_700_000_000_123,
        currentTimeMillis: Effect.succeed(1_700_000_000_123),
        currentTimeNanosUnsafe: () => 1_700_000_000_123_000_000n,
        currentTimeNanos: Effect.succeed(1_700_000_000_123_000_000n),
        monotonicTimeNanosUnsafe: () => real.monotonicTimeNanosUnsafe(),
        monotonicTimeNanos: real.monotonicTimeNanos,
        sleep: (duration) => real.sleep(duration)
      }
      const memory = yield* MemoryStore.make().pipe(Effect.provideService(Clock.Clock, stopped))
      let synchronous = true
      const store: ObjectStore.Store = {
        ...memory,
        get writeNow() {
          return synchronous ? memory.writeNow : undefined
        },
        get readNow() {
          return synchronous ? memory.readNow : undefined
        }
      }
      const node = yield* DnetNode.make({ store, listen: "tcp://127.0.0.1:0", group: GROUP, ids: IDS })
      const c = yield* raw(node.address)
      const [k1, k2, k3] = [keyOf(0x11), keyOf(0x12), keyOf(0x13)]
      const requests = [
        writeRequest(k1, bytesOf("hello world")),
        writeRequest(k1, bytesOf("J"), { offset: 4 }),
        writeRequest(k2, bytesOf("no ack"), {}, 0),
        writeRequest(k2, bytesOf("no lock"), {}, CmdFlags.NEED_ACK | CmdFlags.NOLOCK),
        writeRequest(k3, bytesOf("far"), { offset: Number.MAX_SAFE_INTEGER }),
        readRequest(k1),
        readRequest(k1, { offset: 2, size: 3 }),
        readRequest(k1, {}, 0),
        readRequest(k1, { flags: IoFlags.SKIP_SENDING }),
        readRequest(k1, { offset: 100 }),
        readRequest(k3),
        request(Command.READ, { key: k1, group: GROUP + 1, io: io(k1) })
      ]
      const answers = Effect.forEach(
        requests,
        (packet) => Effect.map(c.exchange(packet), (rs) => rs.map((r) => hex(r.bytes)))
      )
      const atOnce = yield* answers
      for (const key of [k1, k2]) yield* Effect.orDie(memory.remove(key))
      synchronous = false
      const byHandler = yield* answers
      assert.deepStrictEqual(atOnce, byHandler)
      // And they are the replies §3 asks for: the write's file info is final, the read's ACK follows its data.
      assert.strictEqual(atOnce[0]!.length, 1)
      assert.strictEqual(textOf(yield* Effect.orDie(memory.read(k1))), "hellJ world")
      assert.strictEqual(atOnce[5]!.length, 2)
      assert.strictEqual(atOnce[10]!.length, 1)
    }))

  test("every view the store lends is given back once its replies have left (READ, READ_RANGE, BULK_READ, writes)", () =>
    Effect.gen(function*() {
      const memory = yield* MemoryStore.make()
      // Counted where the store lends and takes back (a loop condition must read fields, not locals).
      const views = { lent: 0, returned: 0 }
      const store: ObjectStore.Store = {
        ...memory,
        read: (key, offset, size) =>
          Effect.map(memory.read(key, offset, size), (bytes) => {
            views.lent++
            return bytes
          }),
        readNow: (key, offset, size) => {
          const bytes = memory.readNow!(key, offset, size)
          if (bytes instanceof Uint8Array) views.lent++
          return bytes
        },
        release: (bytes) => {
          views.returned++
          memory.release!(bytes)
        }
      }
      const node = yield* DnetNode.make({ store, listen: "tcp://127.0.0.1:0", group: GROUP, ids: IDS })
      const c = yield* raw(node.address)
      const [small, big] = [keyOf(0x21), keyOf(0x22)]
      yield* c.exchange(writeRequest(small, bytesOf("hello world")))
      yield* c.exchange(writeRequest(big, pattern(3)))
      yield* c.exchange(readRequest(small))
      yield* c.exchange(readRequest(big))
      yield* c.exchange(request(Command.READ_RANGE, { key: small, io: io(small, { parent: big }) }))
      yield* c.exchange(bulkReadRequest(small, [io(small), io(big, { offset: 5, size: 100_000 })]))
      // A write in place at 0 that keeps the tail reads it first.
      yield* c.exchange(writeRequest(small, bytesOf("J"), { flags: IoFlags.PLAIN_WRITE }))
      assert.strictEqual(textOf(yield* Effect.orDie(memory.read(small))), "Jello world")
      assert.isAtLeast(views.lent, 7)
      yield* Effect.gen(function*() {
        while (views.returned < views.lent) yield* Effect.sleep(5)
      }).pipe(Effect.timeout("5 seconds"))
      assert.strictEqual(views.returned, views.lent)
    }))

  test("an auth cookie guards JOIN and STATUS changes", () =>
    Effect.gen(function*() {
      const cookie = bytesOf("secret")
      const { node } = yield* startNode("memory", { authCookie: cookie })
      const c = yield* raw(node.address)
      const before = statusChange(NodeStatusFlags.RO)
      exactly((yield* c.exchange(before))[0], ackOf(before, -Errno.EPERM))
      yield* c.exchange(request(Command.AUTH, { data: Auth.encode({ cookie, flags: 0n }) }))
      assert.strictEqual((yield* c.exchange(statusChange(NodeStatusFlags.RO))).at(-1)!.packet.status, 0)
      assert.isTrue(node.readOnly())
    }))
})
