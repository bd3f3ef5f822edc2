/**
 * CDM protocol v3 packets (spec t2 §3.3): the managed-file-update service's four packets on the bulk channel.
 *
 * Every CDM packet starts `0x80 | dir8`, `0x83` (bulk code 3), an ASCII command byte. Integers are 32-bit
 * big-endian. Byte 0 is never covered by a check because its direction bits are rewritten in transit.
 *
 * - `A` version/aliveness: rolling tag, optional protocol version (absent means 1).
 * - `F` file announcement: slotstamp, available length, check word = slotstamp XOR available.
 * - `C` chunk request: slotstamp, file position.
 * - `D` data chunk: slotstamp, position, length byte, up to 180 data bytes, `hack16` of the data.
 *
 * v3 ignores anything after the last defined field (the design rule is to extend packets only by appending
 * fields), so decoders accept trailing bytes and keep them in `trailing` so re-encoding is byte-exact.
 * Other command bytes (e.g. the v2 `P`) decode as `CdmOther` with their body kept whole.
 *
 * @since 0.1.0
 */
import * as Result from "effect/Result"
import { type Decoded, fail } from "./DecodeError.ts"
import { ByteWriter, u16be, u32be } from "./internal/bytes.ts"
import { isIntIn, isServiceHeader, isU32, isU8, MAX_PACKET, SERVICE } from "./internal/t2.ts"
import type { Dir8 } from "./T2Direction.ts"

/**
 * Byte 1 of every CDM packet: bulk flag plus bulk code 3 ("^C for CDM").
 *
 * @since 0.1.0
 * @category constants
 */
export const bulkCode = 0x83

/**
 * The protocol version v3 announces in `A` packets.
 *
 * @since 0.1.0
 * @category constants
 */
export const protocolVersion = 3

/**
 * Largest `D` payload.
 *
 * @since 0.1.0
 * @category constants
 */
export const maxDataLength = 180

/**
 * Bytes a receiver may have requested but not yet received (12 chunks of 180).
 *
 * @since 0.1.0
 * @category constants
 */
export const maxDataInFlight = 12 * maxDataLength

/**
 * Version/aliveness. `version` is `undefined` when the byte is absent (a v1 sender).
 *
 * @since 0.1.0
 * @category models
 */
export interface CdmA {
  readonly _tag: "CdmA"
  readonly dir: Dir8
  readonly tag: number
  readonly version: number | undefined
  readonly trailing: Uint8Array
}

/**
 * File announcement: the sender can serve `available` bytes of the file `slotstamp` now.
 *
 * @since 0.1.0
 * @category models
 */
export interface CdmF {
  readonly _tag: "CdmF"
  readonly dir: Dir8
  readonly slotstamp: number
  readonly available: number
  readonly trailing: Uint8Array
}

/**
 * Chunk request for the bytes of `slotstamp` starting at `position` (header included).
 *
 * @since 0.1.0
 * @category models
 */
export interface CdmC {
  readonly _tag: "CdmC"
  readonly dir: Dir8
  readonly slotstamp: number
  readonly position: number
  readonly trailing: Uint8Array
}

/**
 * Data chunk: file bytes `[position, position + data.length)`; `data` is a view into the packet.
 *
 * @since 0.1.0
 * @category models
 */
export interface CdmD {
  readonly _tag: "CdmD"
  readonly dir: Dir8
  readonly slotstamp: number
  readonly position: number
  readonly data: Uint8Array
  readonly trailing: Uint8Array
}

/**
 * A CDM packet whose command byte is not one of v3's `A`, `F`, `C`, `D`; kept whole (v3 ignores these).
 *
 * @since 0.1.0
 * @category models
 */
export interface CdmOther {
  readonly _tag: "CdmOther"
  readonly dir: Dir8
  readonly command: number
  readonly body: Uint8Array
}

/**
 * Any CDM packet.
 *
 * @since 0.1.0
 * @category models
 */
export type CdmPacket = CdmA | CdmF | CdmC | CdmD | CdmOther

const A = 0x41
const C = 0x43
const D = 0x44
const F = 0x46
const EMPTY = new Uint8Array(0)

/**
 * True for the command bytes v3 decodes (`A`, `F`, `C`, `D`).
 *
 * @since 0.1.0
 * @category guards
 */
export const isV3Command = (command: number): boolean =>
  command === A || command === F || command === C || command === D

/**
 * The version an `A` packet states: its version byte, or 1 when the byte is absent.
 *
 * @since 0.1.0
 * @category getters
 */
export const versionOf = (packet: CdmA): number => packet.version ?? 1

/**
 * The `D` packet data check: h = 0xFEED; per byte h = (2h XOR b XOR h >> 11) AND 0xFFFF. Sent big-endian.
 *
 * @since 0.1.0
 * @category checksums
 */
export const hack16 = (data: Uint8Array): number => {
  let h = 0xfeed
  for (let i = 0; i < data.length; i++) h = ((h << 1) ^ data[i]! ^ (h >>> 11)) & 0xffff
  return h
}

/**
 * A v3 aliveness packet toward `dir`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const alive = (dir: Dir8, tag: number): CdmA => ({
  _tag: "CdmA",
  dir,
  tag,
  version: protocolVersion,
  trailing: EMPTY
})

/**
 * An announcement toward `dir`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const announce = (dir: Dir8, slotstamp: number, available: number): CdmF => ({
  _tag: "CdmF",
  dir,
  slotstamp,
  available,
  trailing: EMPTY
})

/**
 * A chunk request toward `dir`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const request = (dir: Dir8, slotstamp: number, position: number): CdmC => ({
  _tag: "CdmC",
  dir,
  slotstamp,
  position,
  trailing: EMPTY
})

/**
 * A data chunk toward `dir`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const chunk = (dir: Dir8, slotstamp: number, position: number, data: Uint8Array): CdmD => ({
  _tag: "CdmD",
  dir,
  slotstamp,
  position,
  data,
  trailing: EMPTY
})

const NAMES = { [A]: "cdm_a", [F]: "cdm_f", [C]: "cdm_c", [D]: "cdm_d" } as Record<number, string>

/**
 * Decodes one CDM packet. Byte 0 must be `0x80..0x87` (CDM does not accept OVR/ERR-marked bounces) and
 * byte 1 `0x83`. Zero slotstamps, a wrong `F` check word, a `D` longer than 180 bytes or with a wrong
 * `hack16` fail, as v3 discards them.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decode = (bytes: Uint8Array): Decoded<CdmPacket> => {
  const len = bytes.length
  if (len > MAX_PACKET) return fail("t2", "cdm", MAX_PACKET, `packet is ${len} bytes, at most ${MAX_PACKET}`)
  if (len < 3) return fail("t2", "cdm", len, "CDM packet needs a header, bulk code and command byte")
  const b0 = bytes[0]!
  if (!isServiceHeader(b0)) return fail("t2", "cdm", 0, `header byte 0x${hex2(b0)} is not 0x80..0x87`)
  if (bytes[1] !== bulkCode) return fail("t2", "cdm", 1, `bulk code 0x${hex2(bytes[1]!)} is not 0x83`)
  const dir = (b0 & 7) as Dir8
  const command = bytes[2]!
  const packet = NAMES[command]
  if (packet === undefined) return Result.succeed({ _tag: "CdmOther", dir, command, body: bytes.subarray(3) })
  if (command === A) {
    if (len < 4) return fail("t2", packet, len, "A packet needs a tag byte")
    return Result.succeed({
      _tag: "CdmA",
      dir,
      tag: bytes[3]!,
      version: len >= 5 ? bytes[4]! : undefined,
      trailing: bytes.subarray(Math.min(5, len))
    })
  }
  const need = command === F ? 15 : command === C ? 11 : 12
  if (len < need) return fail("t2", packet, len, `${packet} packet needs at least ${need} bytes, got ${len}`)
  const slotstamp = u32be(bytes, 3)
  if (slotstamp === 0) return fail("t2", packet, 3, "slotstamp is zero")
  const word = u32be(bytes, 7)
  if (command === F) {
    const check = u32be(bytes, 11)
    if (check !== ((slotstamp ^ word) >>> 0)) {
      return fail("t2", packet, 11, `check word 0x${check.toString(16)} is not slotstamp XOR available`)
    }
    return Result.succeed({ _tag: "CdmF", dir, slotstamp, available: word, trailing: bytes.subarray(15) })
  }
  if (command === C) {
    return Result.succeed({ _tag: "CdmC", dir, slotstamp, position: word, trailing: bytes.subarray(11) })
  }
  const n = bytes[11]!
  if (n > maxDataLength) return fail("t2", packet, 11, `data length ${n} exceeds ${maxDataLength}`)
  if (len < 14 + n) return fail("t2", packet, len, `D packet with ${n} data bytes needs ${14 + n} bytes, got ${len}`)
  const data = bytes.subarray(12, 12 + n)
  const sent = u16be(bytes, 12 + n)
  const computed = hack16(data)
  if (sent !== computed) {
    return fail(
      "t2",
      packet,
      12 + n,
      `hack16 0x${sent.toString(16)} does not match the data (0x${computed.toString(16)})`
    )
  }
  return Result.succeed({ _tag: "CdmD", dir, slotstamp, position: word, data, trailing: bytes.subarray(14 + n) })
}

/**
 * Encodes one CDM packet, refusing field values that do not fit their bytes or a packet over 255 bytes.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encode = (packet: CdmPacket): Decoded<Uint8Array> => {
  const name = packet._tag === "CdmOther" ? "cdm_other" : `cdm_${packet._tag.slice(3).toLowerCase()}`
  if (!isIntIn(packet.dir, 0, 7)) return fail("t2", name, 0, `direction ${packet.dir} is not 0..7`)
  let size: number
  switch (packet._tag) {
    case "CdmA":
      if (!isU8(packet.tag)) return fail("t2", name, 3, `tag ${packet.tag} is not a byte`)
      if (packet.version === undefined) {
        // Without the version byte, the first trailing byte would be read back as the version.
        if (packet.trailing.length > 0) return fail("t2", name, 4, "trailing bytes need a version byte before them")
        size = 4
      } else {
        if (!isU8(packet.version)) return fail("t2", name, 4, `version ${packet.version} is not a byte`)
        size = 5 + packet.trailing.length
      }
      break
    case "CdmF":
    case "CdmC": {
      if (!isU32(packet.slotstamp) || packet.slotstamp === 0) {
        return fail("t2", name, 3, `slotstamp ${packet.slotstamp} is not a non-zero 32-bit value`)
      }
      const word = packet._tag === "CdmF" ? packet.available : packet.position
      if (!isU32(word)) {
        return fail("t2", name, 7, `${packet._tag === "CdmF" ? "available" : "position"} ${word} is not 32-bit`)
      }
      size = (packet._tag === "CdmF" ? 15 : 11) + packet.trailing.length
      break
    }
    case "CdmD":
      if (!isU32(packet.slotstamp) || packet.slotstamp === 0) {
        return fail("t2", name, 3, `slotstamp ${packet.slotstamp} is not a non-zero 32-bit value`)
      }
      if (!isU32(packet.position)) return fail("t2", name, 7, `position ${packet.position} is not 32-bit`)
      if (packet.data.length > maxDataLength) {
        return fail("t2", name, 11, `data length ${packet.data.length} exceeds ${maxDataLength}`)
      }
      size = 14 + packet.data.length + packet.trailing.length
      break
    case "CdmOther":
      if (!isU8(packet.command) || isV3Command(packet.command)) {
        return fail("t2", name, 2, `command ${packet.command} is not a byte outside A/F/C/D`)
      }
      size = 3 + packet.body.length
      break
  }
  if (size > MAX_PACKET) return fail("t2", name, MAX_PACKET, `packet would be ${size} bytes, at most ${MAX_PACKET}`)
  const w = new ByteWriter(size).u8(SERVICE | packet.dir).u8(bulkCode)
  switch (packet._tag) {
    case "CdmA":
      w.u8(A).u8(packet.tag)
      if (packet.version !== undefined) w.u8(packet.version).raw(packet.trailing)
      break
    case "CdmF":
      w.u8(F).u32be(packet.slotstamp).u32be(packet.available).u32be((packet.slotstamp ^ packet.available) >>> 0)
        .raw(packet.trailing)
      break
    case "CdmC":
      w.u8(C).u32be(packet.slotstamp).u32be(packet.position).raw(packet.trailing)
      break
    case "CdmD":
      w.u8(D).u32be(packet.slotstamp).u32be(packet.position).u8(packet.data.length).raw(packet.data)
        .u16be(hack16(packet.data)).raw(packet.trailing)
      break
    case "CdmOther":
      w.u8(packet.command).raw(packet.body)
      break
  }
  return Result.succeed(w.bytes)
}

const hex2 = (b: number): string => b.toString(16).padStart(2, "0")
