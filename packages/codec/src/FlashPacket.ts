/**
 * Flash packets (spec t2 §5.4): grid-wide commands flooded over the flash channel (routed service packets
 * whose byte 1 has bit 7 clear). Always 12 bytes:
 *
 * | Off | Size | Field |
 * | --- | --- | --- |
 * | 0 | 1 | `0x80 \| dir8` |
 * | 1 | 1 | command = category·16 + number (t2t 0, mfm 1, phy 2, dsp 3) |
 * | 2 | 1 | index (the launcher's per-launch counter) |
 * | 3 | 1 | range (original radius) |
 * | 4 | 4 | argument, little-endian |
 * | 8 | 1 | remaining TTL |
 * | 9 | 2 | origin x, y (signed bytes, relative to the receiving tile) |
 * | 11 | 1 | checksum over bytes 1..10 |
 *
 * @since 0.1.0
 */
import * as Result from "effect/Result"
import { type Decoded, fail } from "./DecodeError.ts"
import { ByteWriter, u32le } from "./internal/bytes.ts"
import { isIntIn, isServiceHeader, isU32, isU8, SERVICE } from "./internal/t2.ts"
import { type Dir8, offset } from "./T2Direction.ts"

/**
 * Length of every flash packet.
 *
 * @since 0.1.0
 * @category constants
 */
export const length = 12

/**
 * Largest |origin| coordinate a forwarded packet may carry; forwarding stops at the edge of this region.
 *
 * @since 0.1.0
 * @category constants
 */
export const maxOrigin = 120

/**
 * The named commands (category:name → command byte).
 *
 * @since 0.1.0
 * @category constants
 */
export const commands = {
  "t2t:boot": 0x00,
  "t2t:off": 0x01,
  "t2t:xcdm": 0x02,
  "mfm:run": 0x10,
  "mfm:pause": 0x11,
  "mfm:crash": 0x12,
  "mfm:quit": 0x13,
  "mfm:dump": 0x14,
  "mfm:getlog": 0x15,
  "phy:clear": 0x20,
  "phy:seed1": 0x21,
  "phy:seed2": 0x22,
  "phy:debugsetup": 0x23,
  "phy:card": 0x24,
  "dsp:sites": 0x30,
  "dsp:tile": 0x31,
  "dsp:cdm": 0x32,
  "dsp:tq": 0x33,
  "dsp:log": 0x34,
  "dsp:trace": 0x35,
  "dsp:draw": 0x36
} as const

/**
 * A named command.
 *
 * @since 0.1.0
 * @category models
 */
export type CommandName = keyof typeof commands

const NAME_OF = new Map<number, CommandName>(
  Object.entries(commands).map(([name, cmd]) => [cmd, name as CommandName])
)

/**
 * The name of a command byte, or `undefined` for an unnamed one.
 *
 * @since 0.1.0
 * @category getters
 */
export const commandName = (command: number): CommandName | undefined => NAME_OF.get(command)

/**
 * One flash packet. `command` is 0..127 (bit 7 of byte 1 selects bulk instead), `originX`/`originY` are
 * -128..127.
 *
 * @since 0.1.0
 * @category models
 */
export interface FlashPacket {
  readonly _tag: "Flash"
  readonly dir: Dir8
  readonly command: number
  readonly index: number
  readonly range: number
  readonly argument: number
  readonly ttl: number
  readonly originX: number
  readonly originY: number
}

/**
 * The checksum of a flash packet: over bytes 1..10, v = 0; per byte v = (2v XOR byte) (32-bit); the result
 * is the low byte of v XOR (v >> 8) XOR (v >> 16).
 *
 * @since 0.1.0
 * @category checksums
 */
export const checksum = (bytes: Uint8Array): number => {
  let v = 0
  for (let i = 1; i <= 10; i++) v = ((v << 1) ^ bytes[i]!) >>> 0
  return (v ^ (v >>> 8) ^ (v >>> 16)) & 0xff
}

/**
 * The packet a launcher sends toward `dir`: TTL = range, origin (0, 0).
 *
 * @since 0.1.0
 * @category constructors
 */
export const launch = (dir: Dir8, command: number, index: number, range: number, argument: number): FlashPacket => ({
  _tag: "Flash",
  dir,
  command,
  index,
  range,
  argument,
  ttl: range,
  originX: 0,
  originY: 0
})

/**
 * The form of an accepted packet to write toward `toward`: TTL - 1 and the origin moved by the hex offset of
 * that direction (it is now relative to the neighbour). `undefined` when the TTL is spent or the origin would
 * leave the ±120 region, in which case nothing is forwarded that way.
 *
 * @since 0.1.0
 * @category combinators
 */
export const forward = (packet: FlashPacket, toward: Dir8): FlashPacket | undefined => {
  if (packet.ttl <= 0) return undefined
  const step = offset(toward)
  const originX = packet.originX - step.x
  const originY = packet.originY - step.y
  if (Math.abs(originX) > maxOrigin || Math.abs(originY) > maxOrigin) return undefined
  return { ...packet, dir: toward, ttl: packet.ttl - 1, originX, originY }
}

/**
 * Decodes a flash packet: exactly 12 bytes, byte 0 in `0x80..0x87`, byte 1 bit 7 clear, good checksum.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decode = (bytes: Uint8Array): Decoded<FlashPacket> => {
  if (bytes.length !== length) {
    return fail("t2", "flash", Math.min(bytes.length, length), `flash packet is ${bytes.length} bytes, expected 12`)
  }
  const b0 = bytes[0]!
  if (!isServiceHeader(b0)) return fail("t2", "flash", 0, `header byte 0x${b0.toString(16)} is not 0x80..0x87`)
  const command = bytes[1]!
  if (command & 0x80) return fail("t2", "flash", 1, `byte 1 0x${command.toString(16)} has the bulk bit set`)
  const sum = checksum(bytes)
  if (bytes[11] !== sum) {
    return fail("t2", "flash", 11, `checksum 0x${bytes[11]!.toString(16)} does not match 0x${sum.toString(16)}`)
  }
  return Result.succeed({
    _tag: "Flash",
    dir: (b0 & 7) as Dir8,
    command,
    index: bytes[2]!,
    range: bytes[3]!,
    argument: u32le(bytes, 4),
    ttl: bytes[8]!,
    // Sign-extend the origin bytes.
    originX: (bytes[9]! << 24) >> 24,
    originY: (bytes[10]! << 24) >> 24
  })
}

/**
 * Encodes a flash packet, computing its checksum; refuses fields that do not fit their bytes.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encode = (packet: FlashPacket): Decoded<Uint8Array> => {
  if (!isIntIn(packet.dir, 0, 7)) return fail("t2", "flash", 0, `direction ${packet.dir} is not 0..7`)
  if (!isIntIn(packet.command, 0, 0x7f)) return fail("t2", "flash", 1, `command ${packet.command} is not 0..127`)
  if (!isU8(packet.index)) return fail("t2", "flash", 2, `index ${packet.index} is not a byte`)
  if (!isU8(packet.range)) return fail("t2", "flash", 3, `range ${packet.range} is not a byte`)
  if (!isU32(packet.argument)) return fail("t2", "flash", 4, `argument ${packet.argument} is not 32-bit`)
  if (!isU8(packet.ttl)) return fail("t2", "flash", 8, `ttl ${packet.ttl} is not a byte`)
  if (!isIntIn(packet.originX, -128, 127)) return fail("t2", "flash", 9, `origin x ${packet.originX} is not -128..127`)
  if (!isIntIn(packet.originY, -128, 127)) return fail("t2", "flash", 10, `origin y ${packet.originY} is not -128..127`)
  const w = new ByteWriter(length).u8(SERVICE | packet.dir).u8(packet.command).u8(packet.index).u8(packet.range)
    .u32le(packet.argument).u8(packet.ttl).u8(packet.originX & 0xff).u8(packet.originY & 0xff)
  w.u8(checksum(w.bytes))
  return Result.succeed(w.bytes)
}
