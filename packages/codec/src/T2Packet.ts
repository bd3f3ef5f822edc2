/**
 * T2 intertile packets (spec t2 §1.2–§1.7, §2): classification of byte 0 and byte 1, the local standard
 * packets a PRU hands to Linux (including the `0xC3` link reports and our Tile Event Packet layout for
 * `0xC4`), KITC handshake packets, and decode/encode of any packet by dispatch to `CdmPacket` and
 * `FlashPacket`.
 *
 * Byte 0: `0aaaaaaa` non-standard (ASCII, LKM↔PRU only); `11rttttt` local standard (type `ttttt`, `r`
 * reserved); `10moeddd` routed (`m` MFM, `o` OVR, `e` ERR, `ddd` dir8). Routed packets with OVR or ERR set are
 * sends the PRU handed back, so they decode as `Returned`, never as neighbour traffic. Byte 1 of a service
 * packet selects flash (bit 7 clear), CDM (`0x83`), a CDM source route (`0xB0..0xB8`) or other bulk; of an
 * MFM packet, the XITC kind (top 3 bits; 0 = KITC) and a 5-bit number.
 *
 * Kinds the spec gives no payload layout for (non-standard, free text, reserved local types, MFM circuit
 * packets, other bulk codes, source-routed commands) keep their bytes as views, so every packet that
 * decodes re-encodes to the same bytes.
 *
 * ## Tile Event Packets (our layout)
 *
 * The 2019 intertile notes reserved local type 4 as `0xC4, EVENT_TYPE, OPT_ARGS…` with event 1 = connect,
 * 2 = disconnect, 0 illegal, 3..255 reserved, and meant TEPs to replace the PRU's `'P'`/`'F'` reports. T2
 * never built them; we use them for link events inside a tile and fix the optional arguments as:
 *
 * | Off | Size | connect | disconnect |
 * | --- | --- | --- | --- |
 * | 0 | 1 | `0xC4` | `0xC4` |
 * | 1 | 1 | `0x01` | `0x02` |
 * | 2 | 1 | dir8 of the link (a linked direction) | same |
 * | 3 | 1 | — | cause: `0x00` unspecified, `'F'` frame error, `'T'` clock timeout, `'M'` monitor |
 *
 * The direction is carried although the notes left it implicit in a per-neighbour channel, because our
 * tiles also report events on one per-tile stream. The cause mirrors the PRU report that dropped sync.
 * Following the notes' rule that packets are extended only by appending fields, trailing bytes are accepted
 * and kept in `trailing`.
 *
 * @since 0.1.0
 */
import * as Result from "effect/Result"
import * as CdmPacket from "./CdmPacket.ts"
import { type Decoded, fail } from "./DecodeError.ts"
import * as FlashPacket from "./FlashPacket.ts"
import { ByteWriter } from "./internal/bytes.ts"
import { isIntIn, isU32, isU8, MAX_PACKET } from "./internal/t2.ts"
import { type Dir8, fromPruLink, isLink } from "./T2Direction.ts"

/**
 * Largest packet, in bytes.
 *
 * @since 0.1.0
 * @category constants
 */
export const maxLength = MAX_PACKET

/**
 * Byte 0 bit: standard packet (clear = non-standard ASCII).
 *
 * @since 0.1.0
 * @category constants
 */
export const STANDARD = 0x80
/**
 * Byte 0 bit: local standard packet (PRU↔ARM only).
 *
 * @since 0.1.0
 * @category constants
 */
export const LOCAL = 0x40
/**
 * Byte 0 bit of routed packets: MFM traffic (clear = service traffic).
 *
 * @since 0.1.0
 * @category constants
 */
export const MFM = 0x20
/**
 * Byte 0 bit of routed packets: overrun, set by the PRU on a send it could not queue.
 *
 * @since 0.1.0
 * @category constants
 */
export const OVERRUN = 0x10
/**
 * Byte 0 bit of routed packets: error, set by the PRU on a send toward a direction it does not own.
 *
 * @since 0.1.0
 * @category constants
 */
export const ERROR = 0x08
/**
 * Byte 0 mask of routed packets: the dir8 field.
 *
 * @since 0.1.0
 * @category constants
 */
export const DIR = 0x07
/**
 * Byte 0 mask of local standard packets: the 5-bit type (bit 5 is reserved and ignored).
 *
 * @since 0.1.0
 * @category constants
 */
export const LOCAL_TYPE = 0x1f

/**
 * What byte 0 says a packet is.
 *
 * @since 0.1.0
 * @category models
 */
export type Byte0Class = "non_standard" | "local" | "routed"

/**
 * Classifies byte 0.
 *
 * @since 0.1.0
 * @category classification
 */
export const classifyByte0 = (b0: number): Byte0Class =>
  (b0 & STANDARD) === 0 ? "non_standard" : (b0 & LOCAL) !== 0 ? "local" : "routed"

/**
 * The fields of a routed packet's byte 0.
 *
 * @since 0.1.0
 * @category models
 */
export interface RoutedHeader {
  readonly dir: Dir8
  readonly mfm: boolean
  readonly overrun: boolean
  readonly error: boolean
}

/**
 * Reads the fields of a routed byte 0 (the caller has classified it as routed).
 *
 * @since 0.1.0
 * @category classification
 */
export const routedHeader = (b0: number): RoutedHeader => ({
  dir: (b0 & DIR) as Dir8,
  mfm: (b0 & MFM) !== 0,
  overrun: (b0 & OVERRUN) !== 0,
  error: (b0 & ERROR) !== 0
})

/**
 * Builds a routed byte 0.
 *
 * @since 0.1.0
 * @category classification
 */
export const routedByte0 = (header: RoutedHeader): number =>
  STANDARD | (header.mfm ? MFM : 0) | (header.overrun ? OVERRUN : 0) | (header.error ? ERROR : 0) | header.dir

/**
 * What byte 1 of a routed service packet selects.
 *
 * @since 0.1.0
 * @category models
 */
export type ServiceClass = "flash" | "cdm" | "source_routed" | "bulk"

/**
 * Classifies byte 1 of a routed service packet: bit 7 clear is flash; `0x83` CDM; `0xB0..0xB8` the first
 * character of a CDM source route; anything else other bulk.
 *
 * @since 0.1.0
 * @category classification
 */
export const serviceClass = (b1: number): ServiceClass =>
  (b1 & 0x80) === 0
    ? "flash"
    : b1 === CdmPacket.bulkCode
    ? "cdm"
    : b1 >= ROUTE_FIRST && b1 <= ROUTE_SEPARATOR
    ? "source_routed"
    : "bulk"

/**
 * Names of the XITC kinds of MFM packets (byte 1 bits 7..5), indexed by XITC.
 *
 * @since 0.1.0
 * @category constants
 */
export const xitcNames = ["kitc", "itc_command", "ring", "answer", "busy", "drop", "talk", "hang_up"] as const

/**
 * An MFM packet kind other than KITC.
 *
 * @since 0.1.0
 * @category models
 */
export type Xitc = 1 | 2 | 3 | 4 | 5 | 6 | 7

/**
 * Names of the KITC handshake states, indexed by state number.
 *
 * @since 0.1.0
 * @category constants
 */
export const kitcStateNames = [
  "init",
  "waitps",
  "lead",
  "wlead",
  "follow",
  "wfollow",
  "config",
  "wconfig",
  "check",
  "compatible",
  "incompatible"
] as const

/**
 * A KITC state number.
 *
 * @since 0.1.0
 * @category models
 */
export type KitcState = 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 | 10

/**
 * Longest physics identity (mfzid) the LKM compares.
 *
 * @since 0.1.0
 * @category constants
 */
export const maxMfzidLength = 100

/**
 * LKM↔PRU command or reply (byte 0 is 7-bit ASCII); never routed.
 *
 * @since 0.1.0
 * @category models
 */
export interface NonStandard {
  readonly _tag: "NonStandard"
  readonly command: number
  readonly body: Uint8Array
}

/**
 * Local types 1 and 2: free-text PRU diagnostics (the sources disagree on which is "debug" and which is
 * "value"; both are log-only).
 *
 * @since 0.1.0
 * @category models
 */
export interface LocalText {
  readonly _tag: "LocalText"
  readonly localType: 1 | 2
  readonly reserved: boolean
  readonly text: Uint8Array
}

/**
 * Control report codes: packet sync acquired, frame error, clock timeout, monitor.
 *
 * @since 0.1.0
 * @category models
 */
export type ControlCode = "P" | "F" | "T" | "M"

/**
 * Local type 3: a PRU link report, all ASCII after byte 0:
 * `0xC3, code, pru '0'|'1', prudir '0'..'2' ('3' = the PRU's Linux thread, for M), low hex digit of value,
 * ':'`, then the full value as 8 hex digits only when it exceeds 15. For `M`, value bit i set means prudir i
 * is not clocking.
 *
 * @since 0.1.0
 * @category models
 */
export interface Control {
  readonly _tag: "Control"
  readonly reserved: boolean
  readonly code: ControlCode
  readonly pru: 0 | 1
  readonly prudir: 0 | 1 | 2 | 3
  readonly value: number
}

/**
 * Why a link went down, in a disconnect Tile Event Packet.
 *
 * @since 0.1.0
 * @category models
 */
export type DisconnectCause = "unspecified" | "frame_error" | "timeout" | "monitor"

/**
 * Local type 4, our Tile Event Packet layout (see the module docs): a link to `dir` came up.
 *
 * @since 0.1.0
 * @category models
 */
export interface TileConnect {
  readonly _tag: "TileEvent"
  readonly event: "connect"
  readonly reserved: boolean
  readonly dir: Dir8
  readonly trailing: Uint8Array
}

/**
 * Local type 4, our Tile Event Packet layout (see the module docs): the link to `dir` went down.
 *
 * @since 0.1.0
 * @category models
 */
export interface TileDisconnect {
  readonly _tag: "TileEvent"
  readonly event: "disconnect"
  readonly reserved: boolean
  readonly dir: Dir8
  readonly cause: DisconnectCause
  readonly trailing: Uint8Array
}

/**
 * A Tile Event Packet.
 *
 * @since 0.1.0
 * @category models
 */
export type TileEvent = TileConnect | TileDisconnect

/**
 * Local types 0 (illegal) and 5..31 (reserved), kept whole.
 *
 * @since 0.1.0
 * @category models
 */
export interface LocalOther {
  readonly _tag: "LocalOther"
  readonly localType: number
  readonly reserved: boolean
  readonly body: Uint8Array
}

/**
 * A KITC handshake packet (`0xA0 | dir8`, byte 1 = the sender's state). CONFIG and CHECK carry the sender's
 * token and NUL-terminated mfzid; COMPATIBLE and INCOMPATIBLE keepalives carry the token; the rest carry
 * nothing. `token`/`mfzid` are `undefined` where the state carries none.
 *
 * @since 0.1.0
 * @category models
 */
export interface Kitc {
  readonly _tag: "Kitc"
  readonly dir: Dir8
  readonly state: KitcState
  readonly token: number | undefined
  readonly mfzid: Uint8Array | undefined
}

/**
 * An MFM packet other than KITC (ITC command or circuit traffic), kept whole: `number` is the state or
 * circuit number in byte 1's low 5 bits.
 *
 * @since 0.1.0
 * @category models
 */
export interface Mfm {
  readonly _tag: "Mfm"
  readonly dir: Dir8
  readonly xitc: Xitc
  readonly number: number
  readonly body: Uint8Array
}

/**
 * A routed packet the PRU handed back with OVR and/or ERR set: a failed send, not neighbour traffic. `dir`
 * is the original destination; `body` is bytes 1.. as sent.
 *
 * @since 0.1.0
 * @category models
 */
export interface Returned {
  readonly _tag: "Returned"
  readonly dir: Dir8
  readonly mfm: boolean
  readonly overrun: boolean
  readonly error: boolean
  readonly body: Uint8Array
}

/**
 * A bulk packet with a code this package has no layout for, kept whole (`code` = byte 1 & 0x7F).
 *
 * @since 0.1.0
 * @category models
 */
export interface Bulk {
  readonly _tag: "Bulk"
  readonly dir: Dir8
  readonly code: number
  readonly body: Uint8Array
}

/**
 * A CDM source-routed packet (spec §3.12): route `to` digits, separator `8`, `from` digits (each sent as
 * `0xB0 + digit`), `0x00`, an ASCII command and its fields (kept whole in `body`).
 *
 * @since 0.1.0
 * @category models
 */
export interface SourceRouted {
  readonly _tag: "SourceRouted"
  readonly dir: Dir8
  readonly to: ReadonlyArray<Dir8>
  readonly from: ReadonlyArray<Dir8>
  readonly command: number
  readonly body: Uint8Array
}

/**
 * Any T2 packet.
 *
 * @since 0.1.0
 * @category models
 */
export type T2Packet =
  | NonStandard
  | LocalText
  | Control
  | TileEvent
  | LocalOther
  | Kitc
  | Mfm
  | Returned
  | Bulk
  | SourceRouted
  | FlashPacket.FlashPacket
  | CdmPacket.CdmPacket

const ROUTE_FIRST = 0xb0
const ROUTE_SEPARATOR = 0xb8
const CONTROL_CODES: ReadonlyArray<ControlCode> = ["P", "F", "T", "M"]
const HEX = "0123456789ABCDEF"
const CAUSE_BYTES: Record<DisconnectCause, number> = { unspecified: 0, frame_error: 0x46, timeout: 0x54, monitor: 0x4d }
const CAUSES = new Map<number, DisconnectCause>(
  Object.entries(CAUSE_BYTES).map(([cause, b]) => [b, cause as DisconnectCause])
)
const EMPTY = new Uint8Array(0)

/**
 * The direction a `'P'`/`'F'`/`'T'` report is about; `undefined` for prudir 3 (the PRU's own thread).
 *
 * @since 0.1.0
 * @category getters
 */
export const controlDirection = (control: Control): Dir8 | undefined =>
  control.prudir === 3 ? undefined : fromPruLink(control.pru, control.prudir)

/**
 * A connect Tile Event Packet.
 *
 * @since 0.1.0
 * @category constructors
 */
export const connect = (dir: Dir8): TileConnect => ({
  _tag: "TileEvent",
  event: "connect",
  reserved: false,
  dir,
  trailing: EMPTY
})

/**
 * A disconnect Tile Event Packet.
 *
 * @since 0.1.0
 * @category constructors
 */
export const disconnect = (dir: Dir8, cause: DisconnectCause): TileDisconnect => ({
  _tag: "TileEvent",
  event: "disconnect",
  reserved: false,
  dir,
  cause,
  trailing: EMPTY
})

/**
 * Decodes one packet (1..255 bytes) by classifying bytes 0 and 1. Payload fields are views into `bytes`.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decode = (bytes: Uint8Array): Decoded<T2Packet> => {
  const len = bytes.length
  if (len === 0) return fail("t2", "packet", 0, "empty packet; packets are 1..255 bytes")
  if (len > MAX_PACKET) return fail("t2", "packet", MAX_PACKET, `packet is ${len} bytes, at most ${MAX_PACKET}`)
  const b0 = bytes[0]!
  if ((b0 & STANDARD) === 0) return Result.succeed({ _tag: "NonStandard", command: b0, body: bytes.subarray(1) })
  if ((b0 & LOCAL) !== 0) return decodeLocal(bytes)
  if (len < 2) return fail("t2", "packet", 1, "a routed packet needs byte 1")
  const dir = (b0 & DIR) as Dir8
  if ((b0 & (OVERRUN | ERROR)) !== 0) {
    return Result.succeed({
      _tag: "Returned",
      dir,
      mfm: (b0 & MFM) !== 0,
      overrun: (b0 & OVERRUN) !== 0,
      error: (b0 & ERROR) !== 0,
      body: bytes.subarray(1)
    })
  }
  const b1 = bytes[1]!
  if ((b0 & MFM) !== 0) {
    const xitc = b1 >>> 5
    if (xitc === 0) return decodeKitc(bytes, dir)
    return Result.succeed({ _tag: "Mfm", dir, xitc: xitc as Xitc, number: b1 & 0x1f, body: bytes.subarray(2) })
  }
  switch (serviceClass(b1)) {
    case "flash":
      return FlashPacket.decode(bytes)
    case "cdm":
      return CdmPacket.decode(bytes)
    case "source_routed":
      return decodeSourceRouted(bytes, dir)
    case "bulk":
      return Result.succeed({ _tag: "Bulk", dir, code: b1 & 0x7f, body: bytes.subarray(2) })
  }
}

const decodeLocal = (bytes: Uint8Array): Decoded<T2Packet> => {
  const b0 = bytes[0]!
  const localType = b0 & LOCAL_TYPE
  const reserved = (b0 & 0x20) !== 0
  switch (localType) {
    case 1:
    case 2:
      return Result.succeed({ _tag: "LocalText", localType, reserved, text: bytes.subarray(1) })
    case 3:
      return decodeControl(bytes, reserved)
    case 4:
      return decodeTileEvent(bytes, reserved)
    default:
      return Result.succeed({ _tag: "LocalOther", localType, reserved, body: bytes.subarray(1) })
  }
}

const hexValue = (c: number): number => (c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x41 && c <= 0x46 ? c - 0x37 : -1)

const decodeControl = (bytes: Uint8Array, reserved: boolean): Decoded<Control> => {
  const len = bytes.length
  if (len < 6) return fail("t2", "control", len, `control packet needs 6 bytes, got ${len}`)
  const code = CONTROL_CODES.find((c) => c.charCodeAt(0) === bytes[1])
  if (code === undefined) return fail("t2", "control", 1, `code 0x${bytes[1]!.toString(16)} is not P, F, T or M`)
  const pru = bytes[2]! - 0x30
  if (pru !== 0 && pru !== 1) return fail("t2", "control", 2, "PRU number is not '0' or '1'")
  const prudir = bytes[3]! - 0x30
  if (!isIntIn(prudir, 0, code === "M" ? 3 : 2)) {
    return fail("t2", "control", 3, `prudir is not '0'..'${code === "M" ? 3 : 2}'`)
  }
  const low = hexValue(bytes[4]!)
  if (low < 0) return fail("t2", "control", 4, "value digit is not 0-9 or A-F")
  if (bytes[5] !== 0x3a) return fail("t2", "control", 5, "byte 5 is not ':'")
  let value = low
  if (len !== 6) {
    if (len !== 14) {
      return fail("t2", "control", 6, `control packet is ${len} bytes; expected 6, or 14 with a full value`)
    }
    value = 0
    for (let i = 6; i < 14; i++) {
      const digit = hexValue(bytes[i]!)
      if (digit < 0) return fail("t2", "control", i, "full value digit is not 0-9 or A-F")
      value = value * 16 + digit
    }
    // The full value is only sent when the single digit cannot hold it; anything else would not re-encode.
    if (value <= 15) return fail("t2", "control", 6, "full value is only present for values above 15")
    if ((value & 15) !== low) return fail("t2", "control", 4, "value digit disagrees with the full value")
  }
  return Result.succeed({ _tag: "Control", reserved, code, pru, prudir: prudir as 0 | 1 | 2 | 3, value })
}

const decodeTileEvent = (bytes: Uint8Array, reserved: boolean): Decoded<TileEvent> => {
  const len = bytes.length
  if (len < 2) return fail("t2", "tile_event", 1, "tile event needs an event type")
  const event = bytes[1]!
  if (event === 0) return fail("t2", "tile_event", 1, "event type 0x00 is illegal")
  if (event > 2) return fail("t2", "tile_event", 1, `event type 0x${event.toString(16)} is reserved`)
  if (len < 3) return fail("t2", "tile_event", 2, "tile event needs a direction")
  const dir = bytes[2]!
  if (dir > 7 || !isLink(dir as Dir8)) return fail("t2", "tile_event", 2, `direction ${dir} is not a linked direction`)
  if (event === 1) {
    return Result.succeed({
      _tag: "TileEvent",
      event: "connect",
      reserved,
      dir: dir as Dir8,
      trailing: bytes.subarray(3)
    })
  }
  if (len < 4) return fail("t2", "tile_event", 3, "disconnect needs a cause")
  const cause = CAUSES.get(bytes[3]!)
  if (cause === undefined) {
    return fail("t2", "tile_event", 3, `cause 0x${bytes[3]!.toString(16)} is not 0x00, F, T or M`)
  }
  return Result.succeed({
    _tag: "TileEvent",
    event: "disconnect",
    reserved,
    dir: dir as Dir8,
    cause,
    trailing: bytes.subarray(4)
  })
}

const decodeKitc = (bytes: Uint8Array, dir: Dir8): Decoded<Kitc> => {
  const len = bytes.length
  const state = bytes[1]!
  if (state > 10) return fail("t2", "kitc", 1, `state ${state} is not a KITC state (0..10)`)
  switch (state) {
    case 6:
    case 8: {
      if (len < 4) return fail("t2", "kitc", len, "CONFIG/CHECK needs a token and a NUL-terminated mfzid")
      const nul = bytes.indexOf(0, 3)
      if (nul < 0) return fail("t2", "kitc", len, "mfzid is not NUL-terminated")
      if (nul !== len - 1) return fail("t2", "kitc", nul + 1, "bytes after the mfzid terminator")
      if (nul - 3 > maxMfzidLength) return fail("t2", "kitc", 3, `mfzid is ${nul - 3} bytes, at most ${maxMfzidLength}`)
      return Result.succeed({ _tag: "Kitc", dir, state, token: bytes[2]!, mfzid: bytes.subarray(3, nul) })
    }
    case 9:
    case 10:
      if (len !== 3) return fail("t2", "kitc", Math.min(len, 3), `keepalive is 3 bytes, got ${len}`)
      return Result.succeed({ _tag: "Kitc", dir, state, token: bytes[2]!, mfzid: undefined })
    default:
      if (len !== 2) return fail("t2", "kitc", 2, `state ${state} packet carries no payload, got ${len - 2} bytes`)
      return Result.succeed({ _tag: "Kitc", dir, state: state as KitcState, token: undefined, mfzid: undefined })
  }
}

const decodeSourceRouted = (bytes: Uint8Array, dir: Dir8): Decoded<SourceRouted> => {
  const len = bytes.length
  const to: Array<Dir8> = []
  const from: Array<Dir8> = []
  let separated = false
  let i = 1
  for (; i < len && bytes[i] !== 0; i++) {
    const c = bytes[i]!
    if (c < ROUTE_FIRST || c > ROUTE_SEPARATOR) {
      return fail("t2", "source_routed", i, `route character 0x${c.toString(16)} is not 0xB0..0xB8`)
    }
    if (c === ROUTE_SEPARATOR) {
      if (separated) return fail("t2", "source_routed", i, "route has a second separator")
      separated = true
    } else {
      ;(separated ? from : to).push((c - ROUTE_FIRST) as Dir8)
    }
  }
  if (i === len) return fail("t2", "source_routed", len, "route is not terminated by 0x00")
  if (!separated) return fail("t2", "source_routed", i, "route has no separator")
  if (i + 1 === len) return fail("t2", "source_routed", len, "source-routed packet needs a command byte")
  return Result.succeed({ _tag: "SourceRouted", dir, to, from, command: bytes[i + 1]!, body: bytes.subarray(i + 2) })
}

const tooLong = (packet: string, size: number): Decoded<never> =>
  fail("t2", packet, MAX_PACKET, `packet would be ${size} bytes, at most ${MAX_PACKET}`)

const localByte0 = (localType: number, reserved: boolean): number => 0xc0 | (reserved ? 0x20 : 0) | localType

/**
 * Encodes any packet, refusing fields that do not fit, packets over 255 bytes, and opaque kinds whose
 * bytes would decode as a different kind (so `decode(encode(p))` gives `p` back).
 *
 * @since 0.1.0
 * @category encoding
 */
export const encode = (packet: T2Packet): Decoded<Uint8Array> => {
  switch (packet._tag) {
    case "Flash":
      return FlashPacket.encode(packet)
    case "CdmA":
    case "CdmF":
    case "CdmC":
    case "CdmD":
    case "CdmOther":
      return CdmPacket.encode(packet)
    case "NonStandard":
      if (!isIntIn(packet.command, 0, 0x7f)) {
        return fail("t2", "non_standard", 0, `command ${packet.command} is not 0..127`)
      }
      return withBody("non_standard", [packet.command], packet.body)
    case "LocalText":
      if (packet.localType !== 1 && packet.localType !== 2) {
        return fail("t2", "local_text", 0, `local type ${packet.localType} is not 1 or 2`)
      }
      return withBody("local_text", [localByte0(packet.localType, packet.reserved)], packet.text)
    case "LocalOther":
      if (!isIntIn(packet.localType, 0, 31) || (packet.localType >= 1 && packet.localType <= 4)) {
        return fail("t2", "local_other", 0, `local type ${packet.localType} is not 0 or 5..31`)
      }
      return withBody("local_other", [localByte0(packet.localType, packet.reserved)], packet.body)
    case "Control":
      return encodeControl(packet)
    case "TileEvent":
      return encodeTileEvent(packet)
    case "Kitc":
      return encodeKitc(packet)
    case "Mfm":
      if (!isIntIn(packet.dir, 0, 7)) return fail("t2", "mfm", 0, `direction ${packet.dir} is not 0..7`)
      if (!isIntIn(packet.xitc, 1, 7)) return fail("t2", "mfm", 1, `XITC ${packet.xitc} is not 1..7`)
      if (!isIntIn(packet.number, 0, 31)) return fail("t2", "mfm", 1, `number ${packet.number} is not 0..31`)
      return withBody("mfm", [STANDARD | MFM | packet.dir, (packet.xitc << 5) | packet.number], packet.body)
    case "Returned":
      if (!isIntIn(packet.dir, 0, 7)) return fail("t2", "returned", 0, `direction ${packet.dir} is not 0..7`)
      if (!packet.overrun && !packet.error) return fail("t2", "returned", 0, "a returned packet has OVR or ERR set")
      if (packet.body.length === 0) return fail("t2", "returned", 1, "a routed packet needs byte 1")
      return withBody("returned", [routedByte0(packet)], packet.body)
    case "Bulk":
      if (!isIntIn(packet.dir, 0, 7)) return fail("t2", "bulk", 0, `direction ${packet.dir} is not 0..7`)
      if (!isIntIn(packet.code, 0, 0x7f) || serviceClass(0x80 | packet.code) !== "bulk") {
        return fail("t2", "bulk", 1, `code ${packet.code} is not 0..127 outside CDM (3) and source routes (0x30..0x38)`)
      }
      return withBody("bulk", [STANDARD | packet.dir, 0x80 | packet.code], packet.body)
    case "SourceRouted":
      return encodeSourceRouted(packet)
  }
}

const withBody = (name: string, head: ReadonlyArray<number>, body: Uint8Array): Decoded<Uint8Array> => {
  const size = head.length + body.length
  if (size > MAX_PACKET) return tooLong(name, size)
  const w = new ByteWriter(size)
  for (const b of head) w.u8(b)
  return Result.succeed(w.raw(body).bytes)
}

const encodeControl = (packet: Control): Decoded<Uint8Array> => {
  if (!CONTROL_CODES.includes(packet.code)) return fail("t2", "control", 1, `code ${packet.code} is not P, F, T or M`)
  if (packet.pru !== 0 && packet.pru !== 1) return fail("t2", "control", 2, `PRU ${packet.pru} is not 0 or 1`)
  if (!isIntIn(packet.prudir, 0, packet.code === "M" ? 3 : 2)) {
    return fail("t2", "control", 3, `prudir ${packet.prudir} is not 0..${packet.code === "M" ? 3 : 2}`)
  }
  if (!isU32(packet.value)) return fail("t2", "control", 4, `value ${packet.value} is not 32-bit`)
  const wide = packet.value > 15
  const w = new ByteWriter(wide ? 14 : 6)
    .u8(localByte0(3, packet.reserved))
    .u8(packet.code.charCodeAt(0))
    .u8(0x30 + packet.pru)
    .u8(0x30 + packet.prudir)
    .u8(HEX.charCodeAt(packet.value & 15))
    .u8(0x3a)
  if (wide) { for (let shift = 28; shift >= 0; shift -= 4) w.u8(HEX.charCodeAt((packet.value >>> shift) & 15)) }
  return Result.succeed(w.bytes)
}

const encodeTileEvent = (packet: TileEvent): Decoded<Uint8Array> => {
  if (!isIntIn(packet.dir, 0, 7) || !isLink(packet.dir)) {
    return fail("t2", "tile_event", 2, `direction ${packet.dir} is not a linked direction`)
  }
  if (packet.event === "connect") {
    return withBody("tile_event", [localByte0(4, packet.reserved), 1, packet.dir], packet.trailing)
  }
  const cause = CAUSE_BYTES[packet.cause]
  if (cause === undefined) return fail("t2", "tile_event", 3, `cause ${packet.cause} is not known`)
  return withBody("tile_event", [localByte0(4, packet.reserved), 2, packet.dir, cause], packet.trailing)
}

const encodeKitc = (packet: Kitc): Decoded<Uint8Array> => {
  if (!isIntIn(packet.dir, 0, 7)) return fail("t2", "kitc", 0, `direction ${packet.dir} is not 0..7`)
  if (!isIntIn(packet.state, 0, 10)) return fail("t2", "kitc", 1, `state ${packet.state} is not 0..10`)
  const head = [STANDARD | MFM | packet.dir, packet.state]
  const carriesToken = packet.state >= 8 || packet.state === 6
  const carriesMfzid = packet.state === 6 || packet.state === 8
  if (!carriesToken) {
    if (packet.token !== undefined || packet.mfzid !== undefined) {
      return fail("t2", "kitc", 2, `state ${kitcStateNames[packet.state]} carries no token or mfzid`)
    }
    return withBody("kitc", head, EMPTY)
  }
  if (packet.token === undefined || !isU8(packet.token)) {
    return fail("t2", "kitc", 2, `state ${kitcStateNames[packet.state]} needs a token byte`)
  }
  if (!carriesMfzid) {
    if (packet.mfzid !== undefined) return fail("t2", "kitc", 3, "keepalives carry no mfzid")
    return withBody("kitc", [...head, packet.token], EMPTY)
  }
  const mfzid = packet.mfzid
  if (mfzid === undefined) return fail("t2", "kitc", 3, `state ${kitcStateNames[packet.state]} needs an mfzid`)
  if (mfzid.length > maxMfzidLength) {
    return fail("t2", "kitc", 3, `mfzid is ${mfzid.length} bytes, at most ${maxMfzidLength}`)
  }
  const nul = mfzid.indexOf(0)
  if (nul >= 0) return fail("t2", "kitc", 3 + nul, "mfzid contains a NUL byte")
  const w = new ByteWriter(4 + mfzid.length).u8(head[0]!).u8(head[1]!).u8(packet.token).raw(mfzid).u8(0)
  return Result.succeed(w.bytes)
}

const encodeSourceRouted = (packet: SourceRouted): Decoded<Uint8Array> => {
  if (!isIntIn(packet.dir, 0, 7)) return fail("t2", "source_routed", 0, `direction ${packet.dir} is not 0..7`)
  const hops = [...packet.to, ...packet.from]
  const bad = hops.findIndex((d) => !isIntIn(d, 0, 7))
  if (bad >= 0) return fail("t2", "source_routed", 1 + bad, `route digit ${hops[bad]} is not 0..7`)
  if (!isU8(packet.command)) {
    return fail("t2", "source_routed", 2 + hops.length, `command ${packet.command} is not a byte`)
  }
  const size = 4 + hops.length + packet.body.length
  if (size > MAX_PACKET) return tooLong("source_routed", size)
  const w = new ByteWriter(size).u8(STANDARD | packet.dir)
  for (const d of packet.to) w.u8(ROUTE_FIRST + d)
  w.u8(ROUTE_SEPARATOR)
  for (const d of packet.from) w.u8(ROUTE_FIRST + d)
  return Result.succeed(w.u8(0).u8(packet.command).raw(packet.body).bytes)
}
