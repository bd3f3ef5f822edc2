/**
 * Codec benchmark: our encoders and decoders against a bare DataView loop over the same slab, in one run.
 * Each task does BATCH round trips per call so the timer's own cost does not swamp nanosecond operations.
 * Prints a table and, with --json, one JSON object for the README.
 */
import { Result } from "effect"
import { Bench } from "tinybench"
import { DnetStructs, NbdTransmission, SiloFrame, SiloPacket } from "../src/index.ts"

const BATCH = 10_000
const SLAB = new Uint8Array(1 << 20)
const view = new DataView(SLAB.buffer)
const slots = 64 // frame positions spread over the slab so the work is not one cache line
const slotSize = SLAB.length / slots
let sink = 0

// --- Silo frame header: 12 bytes ---------------------------------------------------------------------------
const headers = new SiloFrame.HeaderSlab(SLAB)
const siloHeaderOurs = () => {
  for (let i = 0; i < BATCH; i++) {
    const at = (i % slots) * slotSize
    headers.encode(at, 1, i, 4096)
    const header = headers.decode(at)
    if (Result.isSuccess(header)) sink += header.success.id
  }
}
const siloHeaderShifts = () => {
  for (let i = 0; i < BATCH; i++) {
    const at = (i % slots) * slotSize
    SiloFrame.encodeHeaderInto(SLAB, at, 1, i, 4096)
    const header = SiloFrame.decodeHeader(SLAB, at)
    if (Result.isSuccess(header)) sink += header.success.id
  }
}
const siloHeaderBare = () => {
  for (let i = 0; i < BATCH; i++) {
    const at = (i % slots) * slotSize
    view.setUint32(at, 1, true)
    view.setUint32(at + 4, i, true)
    view.setUint32(at + 8, 4096, true)
    if (view.getUint32(at + 8, true) >= 1) sink += view.getUint32(at + 4, true) + view.getUint32(at, true) * 0
  }
}

// --- Silo WriteAt frame with a 64 KiB payload that stays where it is ----------------------------------------
const DATA = 64 * 1024
const HEAD = SiloFrame.HEADER_SIZE + SiloPacket.WRITE_AT_PREFIX_SIZE
const WRITE_SLOTS = Math.floor(SLAB.length / (HEAD + DATA))
const writeAtOurs = () => {
  for (let i = 0; i < BATCH; i++) {
    const at = (i % WRITE_SLOTS) * (HEAD + DATA)
    SiloFrame.encodeHeaderInto(SLAB, at, 1, i, SiloPacket.WRITE_AT_PREFIX_SIZE + DATA)
    SiloPacket.encodeWriteAtPrefixInto(SLAB, at + SiloFrame.HEADER_SIZE, i * DATA)
    const header = SiloFrame.decodeHeader(SLAB, at)
    if (Result.isFailure(header)) continue
    const payload = new Uint8Array(SLAB.buffer, at + SiloFrame.HEADER_SIZE, header.success.length)
    const packet = SiloPacket.decodeWriteAtData(payload)
    if (Result.isSuccess(packet)) sink += packet.success.data.length + packet.success.offset
  }
}
const writeAtBare = () => {
  for (let i = 0; i < BATCH; i++) {
    const at = (i % WRITE_SLOTS) * (HEAD + DATA)
    view.setUint32(at, 1, true)
    view.setUint32(at + 4, i, true)
    view.setUint32(at + 8, 10 + DATA, true)
    view.setUint8(at + 12, 2)
    view.setUint8(at + 13, 0)
    view.setBigInt64(at + 14, BigInt(i * DATA), true)
    const length = view.getUint32(at + 8, true)
    if (view.getUint8(at + 12) !== 2 || view.getUint8(at + 13) !== 0) continue
    const offset = Number(view.getBigInt64(at + 14, true))
    const data = new Uint8Array(SLAB.buffer, at + HEAD, length - 10)
    sink += data.length + offset + view.getUint32(at + 4, true) * 0
  }
}

// --- dnet cmd + attr + io_attr: 288 bytes --------------------------------------------------------------------
const key = new Uint8Array(64).fill(7)
const cmd: DnetStructs.Cmd = { id: { id: key, groupId: 2, type: 0 }, flags: 1, status: 0, trans: 9n, size: 192 + 5 }
const attr: DnetStructs.Attr = { size: 168 + 5, cmd: 3, flags: 0 }
const io: DnetStructs.IoAttr = {
  parent: key,
  id: key,
  start: 0,
  num: 0,
  type: 0,
  flags: 0,
  offset: 4096,
  size: 5
}
const dnetOurs = () => {
  for (let i = 0; i < BATCH; i++) {
    const at = (i % slots) * slotSize
    DnetStructs.Cmd.write(SLAB, at, cmd)
    DnetStructs.Attr.write(SLAB, at + 96, attr)
    DnetStructs.IoAttr.write(SLAB, at + 120, io)
    const c = DnetStructs.Cmd.decode(SLAB, at)
    const a = DnetStructs.Attr.decode(SLAB, at + 96)
    const o = DnetStructs.IoAttr.decode(SLAB, at + 120)
    if (Result.isSuccess(c) && Result.isSuccess(a) && Result.isSuccess(o)) sink += c.success.size + o.success.offset
  }
}
const dnetBare = () => {
  for (let i = 0; i < BATCH; i++) {
    const at = (i % slots) * slotSize
    SLAB.set(key, at)
    view.setUint32(at + 64, 2, true)
    view.setInt32(at + 68, 0, true)
    view.setUint32(at + 72, 1, true)
    view.setInt32(at + 76, 0, true)
    view.setBigUint64(at + 80, 9n, true)
    view.setBigUint64(at + 88, 197n, true)
    view.setBigUint64(at + 96, 173n, true)
    view.setUint32(at + 104, 3, true)
    view.setUint32(at + 108, 0, true)
    view.setBigUint64(at + 112, 0n, true)
    SLAB.set(key, at + 120)
    SLAB.set(key, at + 184)
    view.setBigUint64(at + 248, 0n, true)
    view.setBigUint64(at + 256, 0n, true)
    view.setInt32(at + 264, 0, true)
    view.setUint32(at + 268, 0, true)
    view.setBigUint64(at + 272, 4096n, true)
    view.setBigUint64(at + 280, 5n, true)
    const id = SLAB.subarray(at, at + 64)
    const parent = SLAB.subarray(at + 120, at + 184)
    const ioId = SLAB.subarray(at + 184, at + 248)
    const decoded = {
      group: view.getUint32(at + 64, true),
      type: view.getInt32(at + 68, true),
      flags: view.getUint32(at + 72, true),
      status: view.getInt32(at + 76, true),
      trans: view.getBigUint64(at + 80, true),
      size: Number(view.getBigUint64(at + 88, true)),
      attrSize: Number(view.getBigUint64(at + 96, true)),
      attrCmd: view.getUint32(at + 104, true),
      attrFlags: view.getUint32(at + 108, true),
      start: Number(view.getBigUint64(at + 248, true)),
      num: Number(view.getBigUint64(at + 256, true)),
      ioType: view.getInt32(at + 264, true),
      ioFlags: view.getUint32(at + 268, true),
      offset: Number(view.getBigUint64(at + 272, true)),
      ioSize: Number(view.getBigUint64(at + 280, true))
    }
    sink += decoded.size + decoded.offset + id.length * 0 + parent.length * 0 + ioId.length * 0
  }
}

// --- NBD request (28 B) and simple reply header (16 B), big-endian with a 64-bit cookie ----------------------
const nbdRequestOurs = () => {
  for (let i = 0; i < BATCH; i++) {
    const at = (i % slots) * slotSize
    NbdTransmission.encodeRequestHeaderInto(SLAB, at, {
      flags: 0,
      type: 0,
      cookie: 0x1234_0000_0000n + BigInt(i),
      offset: i * 4096,
      length: 4096
    })
    const request = NbdTransmission.decodeRequest(new Uint8Array(SLAB.buffer, at, NbdTransmission.REQUEST_HEADER_SIZE))
    if (Result.isFailure(request)) continue
    NbdTransmission.encodeSimpleReplyHeaderInto(SLAB, at + 32, 0, request.success.cookie)
    const reply = NbdTransmission.decodeSimpleReplyHeader(SLAB, at + 32)
    if (Result.isSuccess(reply)) sink += request.success.offset + reply.success.error + 1
  }
}
const nbdRequestBare = () => {
  for (let i = 0; i < BATCH; i++) {
    const at = (i % slots) * slotSize
    view.setUint32(at, 0x2560_9513)
    view.setUint16(at + 4, 0)
    view.setUint16(at + 6, 0)
    view.setBigUint64(at + 8, 0x1234_0000_0000n + BigInt(i))
    view.setBigUint64(at + 16, BigInt(i * 4096))
    view.setUint32(at + 24, 4096)
    if (view.getUint32(at) !== 0x2560_9513) continue
    const request = {
      flags: view.getUint16(at + 4),
      type: view.getUint16(at + 6),
      cookie: view.getBigUint64(at + 8),
      offset: Number(view.getBigUint64(at + 16)),
      length: view.getUint32(at + 24)
    }
    view.setUint32(at + 32, 0x6744_6698)
    view.setUint32(at + 36, 0)
    view.setBigUint64(at + 40, request.cookie)
    if (view.getUint32(at + 32) !== 0x6744_6698) continue
    const reply = { error: view.getUint32(at + 36), cookie: view.getBigUint64(at + 40) }
    sink += request.offset + reply.error + 1
  }
}

const cases = [
  { name: "silo frame header (12 B), HeaderSlab", ours: siloHeaderOurs, bare: siloHeaderBare },
  { name: "silo frame header (12 B), any Uint8Array", ours: siloHeaderShifts, bare: siloHeaderBare },
  { name: "silo WriteAt frame (64 KiB view)", ours: writeAtOurs, bare: writeAtBare },
  { name: "dnet cmd+attr+io_attr (288 B)", ours: dnetOurs, bare: dnetBare },
  { name: "nbd request (28 B) + simple reply header (16 B)", ours: nbdRequestOurs, bare: nbdRequestBare }
] as const

// Zero-copy check: the decoded WriteAt data must be a view of the slab, not a copy.
SiloPacket.encodeWriteAtPrefixInto(SLAB, SiloFrame.HEADER_SIZE, 0)
const probe = SiloPacket.decodeWriteAtData(SLAB.subarray(SiloFrame.HEADER_SIZE, SiloFrame.HEADER_SIZE + 10 + DATA))
if (Result.isFailure(probe) || probe.success.data.buffer !== SLAB.buffer) throw new Error("WriteAt data was copied")

// Several short rounds, each running every task, then the median: on a shared 2-core machine one long run per
// task is at the mercy of whatever else happens during it.
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
const samples = new Map<string, Array<number>>()
for (let round = 0; round < ROUNDS; round++) {
  const bench = new Bench({ time: Number(process.env.BENCH_TIME_MS ?? 400), warmupTime: 100 })
  for (const c of cases) {
    bench.add(`${c.name}: ours`, c.ours)
    bench.add(`${c.name}: bare DataView`, c.bare)
  }
  await bench.run()
  for (const task of bench.tasks) {
    const result = task.result
    if (!result || !("throughput" in result)) throw new Error(`no result for ${task.name}`)
    samples.set(task.name, [...(samples.get(task.name) ?? []), result.throughput.mean * BATCH])
  }
}

const median = (values: ReadonlyArray<number>): number => {
  const sorted = values.toSorted((x, y) => x - y)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}
const opsPerSecond = (name: string): number => median(samples.get(name) ?? [])
const rows = cases.map((c) => {
  const ours = opsPerSecond(`${c.name}: ours`)
  const bare = opsPerSecond(`${c.name}: bare DataView`)
  return {
    case: c.name,
    ours_mops: +(ours / 1e6).toFixed(2),
    bare_mops: +(bare / 1e6).toFixed(2),
    ratio: +(ours / bare).toFixed(2)
  }
})

if (process.argv.includes("--json")) {
  console.log(JSON.stringify({ runtime: `${process.release.name} ${process.version}`, rounds: ROUNDS, rows }))
} else {
  console.log(
    `codec round trips, million per second, median of ${ROUNDS} rounds (${process.release.name} ${process.version})`
  )
  console.table(rows)
}
if (sink === 0) throw new Error("the benchmark loops did no work")
