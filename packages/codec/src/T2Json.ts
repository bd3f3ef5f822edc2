/**
 * The JSON view of T2 packets used by `tessera inspect t2` and `tessera craft t2`: `{ packet, fields }` with
 * snake_case field names, directions as two-letter codes, byte strings as lowercase `*_hex`, and text fields
 * (free-text diagnostics, KITC mfzid) as strings with one character per byte (Latin-1), so any byte survives.
 *
 * `fromJson(toJson(bytes))` gives back exactly `bytes` for every packet that decodes. Fields that hold their
 * default (`reserved: false`, empty `trailing_hex`, an absent `A` version, KITC `token`/`mfzid` in states
 * without them) are omitted by `toJson` and optional for `fromJson`.
 *
 * | packet | fields |
 * | --- | --- |
 * | `non_standard` | `command` (1 ASCII char), `body_hex` |
 * | `local_text` | `local_type` (1 or 2), `reserved?`, `text` |
 * | `control` | `code` (P/F/T/M), `pru` (0/1), `prudir` (0..3), `value`, `reserved?` |
 * | `tile_event` | `event` (connect/disconnect), `dir`, `cause` (disconnect only: unspecified/frame_error/timeout/monitor), `reserved?`, `trailing_hex?` |
 * | `local_other` | `local_type` (0, 5..31), `reserved?`, `body_hex` |
 * | `kitc` | `dir`, `state` (init..incompatible), `token?`, `mfzid?` |
 * | `mfm` | `dir`, `kind` (itc_command/ring/answer/busy/drop/talk/hang_up), `number` (0..31), `body_hex` |
 * | `returned` | `dir`, `mfm`, `overrun`, `error`, `body_hex` (bytes 1..) |
 * | `bulk` | `dir`, `code` (0..127), `body_hex` |
 * | `source_routed` | `dir`, `to`, `from` (arrays of direction codes), `command` (1 char), `body_hex` |
 * | `flash` | `dir`, `command` (name such as `"mfm:quit"`, or 0..127), `index`, `range`, `argument`, `ttl`, `origin_x`, `origin_y` |
 * | `cdm_a` | `dir`, `tag`, `version?`, `trailing_hex?` |
 * | `cdm_f` | `dir`, `slotstamp`, `available`, `trailing_hex?` |
 * | `cdm_c` | `dir`, `slotstamp`, `position`, `trailing_hex?` |
 * | `cdm_d` | `dir`, `slotstamp`, `position`, `data_hex`, `trailing_hex?` |
 * | `cdm_other` | `dir`, `command` (1 char), `body_hex` |
 *
 * @since 0.1.0
 */
import * as Hex from "effect/encoding/Hex"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import type * as CdmPacket from "./CdmPacket.ts"
import { type Decoded, fail } from "./DecodeError.ts"
import * as FlashPacket from "./FlashPacket.ts"
import { MAX_PACKET } from "./internal/t2.ts"
import * as T2Direction from "./T2Direction.ts"
import * as T2Packet from "./T2Packet.ts"

/**
 * The packet kind names used in the `packet` field.
 *
 * @since 0.1.0
 * @category constants
 */
export const packetNames = [
  "non_standard",
  "local_text",
  "control",
  "tile_event",
  "local_other",
  "kitc",
  "mfm",
  "returned",
  "bulk",
  "source_routed",
  "flash",
  "cdm_a",
  "cdm_f",
  "cdm_c",
  "cdm_d",
  "cdm_other"
] as const

/**
 * A packet kind name.
 *
 * @since 0.1.0
 * @category models
 */
export type PacketName = (typeof packetNames)[number]

/**
 * A JSON field value.
 *
 * @since 0.1.0
 * @category models
 */
export type FieldValue = string | number | boolean | ReadonlyArray<string>

/**
 * The JSON view of one packet.
 *
 * @since 0.1.0
 * @category models
 */
export interface T2Json {
  readonly packet: PacketName
  readonly fields: { readonly [name: string]: FieldValue }
}

const NAME_OF_TAG: Record<T2Packet.T2Packet["_tag"], PacketName> = {
  NonStandard: "non_standard",
  LocalText: "local_text",
  Control: "control",
  TileEvent: "tile_event",
  LocalOther: "local_other",
  Kitc: "kitc",
  Mfm: "mfm",
  Returned: "returned",
  Bulk: "bulk",
  SourceRouted: "source_routed",
  Flash: "flash",
  CdmA: "cdm_a",
  CdmF: "cdm_f",
  CdmC: "cdm_c",
  CdmD: "cdm_d",
  CdmOther: "cdm_other"
}

/**
 * The JSON kind name of a decoded packet.
 *
 * @since 0.1.0
 * @category getters
 */
export const packetName = (packet: T2Packet.T2Packet): PacketName => NAME_OF_TAG[packet._tag]

const code = T2Direction.code
const char = (b: number): string => String.fromCharCode(b)
const latin1 = (bytes: Uint8Array): string => String.fromCharCode(...bytes)
const latin1Bytes = (text: string): Uint8Array => Uint8Array.from(text, (c) => c.charCodeAt(0))

// Fields that hold their default are left out, so the usual packet reads without noise.
const withReserved = (reserved: boolean, fields: Record<string, FieldValue>) =>
  reserved ? { ...fields, reserved } : fields
const withTrailing = (trailing: Uint8Array, fields: Record<string, FieldValue>) =>
  trailing.length > 0 ? { ...fields, trailing_hex: Hex.encode(trailing) } : fields

const fieldsOf = (p: T2Packet.T2Packet): Record<string, FieldValue> => {
  switch (p._tag) {
    case "NonStandard":
      return { command: char(p.command), body_hex: Hex.encode(p.body) }
    case "LocalText":
      return withReserved(p.reserved, { local_type: p.localType, text: latin1(p.text) })
    case "Control":
      return withReserved(p.reserved, { code: p.code, pru: p.pru, prudir: p.prudir, value: p.value })
    case "TileEvent": {
      const base = { event: p.event, dir: code(p.dir) }
      return withTrailing(
        p.trailing,
        withReserved(p.reserved, p.event === "connect" ? base : { ...base, cause: p.cause })
      )
    }
    case "LocalOther":
      return withReserved(p.reserved, { local_type: p.localType, body_hex: Hex.encode(p.body) })
    case "Kitc": {
      const fields: Record<string, FieldValue> = { dir: code(p.dir), state: T2Packet.kitcStateNames[p.state] }
      if (p.token !== undefined) fields.token = p.token
      if (p.mfzid !== undefined) fields.mfzid = latin1(p.mfzid)
      return fields
    }
    case "Mfm":
      return { dir: code(p.dir), kind: T2Packet.xitcNames[p.xitc], number: p.number, body_hex: Hex.encode(p.body) }
    case "Returned":
      return { dir: code(p.dir), mfm: p.mfm, overrun: p.overrun, error: p.error, body_hex: Hex.encode(p.body) }
    case "Bulk":
      return { dir: code(p.dir), code: p.code, body_hex: Hex.encode(p.body) }
    case "SourceRouted":
      return {
        dir: code(p.dir),
        to: p.to.map(code),
        from: p.from.map(code),
        command: char(p.command),
        body_hex: Hex.encode(p.body)
      }
    case "Flash":
      return {
        dir: code(p.dir),
        command: FlashPacket.commandName(p.command) ?? p.command,
        index: p.index,
        range: p.range,
        argument: p.argument,
        ttl: p.ttl,
        origin_x: p.originX,
        origin_y: p.originY
      }
    case "CdmA":
      return withTrailing(
        p.trailing,
        p.version === undefined ? { dir: code(p.dir), tag: p.tag } : {
          dir: code(p.dir),
          tag: p.tag,
          version: p.version
        }
      )
    case "CdmF":
      return withTrailing(p.trailing, { dir: code(p.dir), slotstamp: p.slotstamp, available: p.available })
    case "CdmC":
      return withTrailing(p.trailing, { dir: code(p.dir), slotstamp: p.slotstamp, position: p.position })
    case "CdmD":
      return withTrailing(p.trailing, {
        dir: code(p.dir),
        slotstamp: p.slotstamp,
        position: p.position,
        data_hex: Hex.encode(p.data)
      })
    case "CdmOther":
      return { dir: code(p.dir), command: char(p.command), body_hex: Hex.encode(p.body) }
  }
}

/**
 * Decodes one packet and gives its JSON view.
 *
 * @since 0.1.0
 * @category encoding
 */
export const toJson = (bytes: Uint8Array): Decoded<T2Json> =>
  Result.map(T2Packet.decode(bytes), (packet) => ({ packet: packetName(packet), fields: fieldsOf(packet) }))

// ---------------------------------------------------------------------------------------------------------
// fromJson: the shape of each kind's fields, checked by Schema before anything is allocated for the packet.

const intIn = (minimum: number, maximum: number) => Schema.Int.check(Schema.isBetween({ minimum, maximum }))
const U8 = intIn(0, 0xff)
const U32 = intIn(0, 0xffff_ffff)
const Dir = T2Direction.Code
// Hex strings are capped at one whole packet before they are decoded, so hostile input costs nothing.
const HexBytes = Schema.String.check(Schema.isMaxLength(2 * MAX_PACKET)).pipe(Schema.decodeTo(Schema.Uint8ArrayFromHex))
const Reserved = Schema.optionalKey(Schema.Boolean)
const Trailing = Schema.optionalKey(HexBytes)
const byteChars = (max: number) =>
  Schema.makeFilter<string>((s) => {
    for (let i = 0; i < s.length; i++) {
      if (s.charCodeAt(i) > max) return `character ${i} is not in U+0000..U+${max.toString(16).padStart(4, "0")}`
    }
    return true
  })
const Text = Schema.String.check(Schema.isMaxLength(MAX_PACKET), byteChars(0xff))
const Char = (max: number) => Schema.String.check(Schema.isBetweenLength(1, 1), byteChars(max))

// Unknown keys are refused so a misspelt field in a crafted packet is reported, not silently dropped.
const PARSE = { onExcessProperty: "error", errors: "all" } as const

// One decoder per kind, built once: the fields' Schema, then the model built from the decoded fields.
const kind = <S extends Schema.ConstraintDecoder<unknown>>(
  schema: S,
  build: (fields: S["Type"]) => T2Packet.T2Packet
) => {
  const decodeFields = Schema.decodeUnknownResult(schema, PARSE)
  return (fields: unknown): Result.Result<T2Packet.T2Packet, Schema.SchemaError> =>
    Result.map(decodeFields(fields), build)
}

const EMPTY = new Uint8Array(0)
const orEmpty = (bytes: Uint8Array | undefined): Uint8Array => bytes ?? EMPTY
const dir = T2Direction.fromCode

const builders: {
  readonly [K in PacketName]: (fields: unknown) => Result.Result<T2Packet.T2Packet, Schema.SchemaError>
} = {
  non_standard: kind(
    Schema.Struct({ command: Char(0x7f), body_hex: HexBytes }),
    (f) => ({ _tag: "NonStandard", command: f.command.charCodeAt(0), body: f.body_hex })
  ),
  local_text: kind(
    Schema.Struct({ local_type: Schema.Literals([1, 2]), reserved: Reserved, text: Text }),
    (f) => ({ _tag: "LocalText", localType: f.local_type, reserved: f.reserved ?? false, text: latin1Bytes(f.text) })
  ),
  control: kind(
    Schema.Struct({
      code: Schema.Literals(["P", "F", "T", "M"]),
      pru: Schema.Literals([0, 1]),
      prudir: Schema.Literals([0, 1, 2, 3]),
      value: U32,
      reserved: Reserved
    }),
    (f) => ({
      _tag: "Control",
      code: f.code,
      pru: f.pru,
      prudir: f.prudir,
      value: f.value,
      reserved: f.reserved ?? false
    })
  ),
  tile_event: kind(
    Schema.Union([
      Schema.Struct({ event: Schema.Literal("connect"), dir: Dir, reserved: Reserved, trailing_hex: Trailing }),
      Schema.Struct({
        event: Schema.Literal("disconnect"),
        dir: Dir,
        cause: Schema.Literals(["unspecified", "frame_error", "timeout", "monitor"]),
        reserved: Reserved,
        trailing_hex: Trailing
      })
    ]),
    (f): T2Packet.TileEvent => {
      const common = { reserved: f.reserved ?? false, dir: dir(f.dir), trailing: orEmpty(f.trailing_hex) }
      return f.event === "connect"
        ? { _tag: "TileEvent", event: "connect", ...common }
        : { _tag: "TileEvent", event: "disconnect", cause: f.cause, ...common }
    }
  ),
  local_other: kind(
    Schema.Struct({ local_type: intIn(0, 31), reserved: Reserved, body_hex: HexBytes }),
    (f) => ({ _tag: "LocalOther", localType: f.local_type, reserved: f.reserved ?? false, body: f.body_hex })
  ),
  kitc: kind(
    Schema.Struct({
      dir: Dir,
      state: Schema.Literals(T2Packet.kitcStateNames),
      token: Schema.optionalKey(U8),
      mfzid: Schema.optionalKey(Text)
    }),
    (f) => ({
      _tag: "Kitc",
      dir: dir(f.dir),
      state: T2Packet.kitcStateNames.indexOf(f.state) as T2Packet.KitcState,
      token: f.token,
      mfzid: f.mfzid === undefined ? undefined : latin1Bytes(f.mfzid)
    })
  ),
  mfm: kind(
    Schema.Struct({
      dir: Dir,
      kind: Schema.Literals(T2Packet.xitcNames.slice(1) as Array<(typeof T2Packet.xitcNames)[T2Packet.Xitc]>),
      number: intIn(0, 31),
      body_hex: HexBytes
    }),
    (f) => ({
      _tag: "Mfm",
      dir: dir(f.dir),
      xitc: T2Packet.xitcNames.indexOf(f.kind) as T2Packet.Xitc,
      number: f.number,
      body: f.body_hex
    })
  ),
  returned: kind(
    Schema.Struct({
      dir: Dir,
      mfm: Schema.Boolean,
      overrun: Schema.Boolean,
      error: Schema.Boolean,
      body_hex: HexBytes
    }),
    (f) => ({ _tag: "Returned", dir: dir(f.dir), mfm: f.mfm, overrun: f.overrun, error: f.error, body: f.body_hex })
  ),
  bulk: kind(
    Schema.Struct({ dir: Dir, code: intIn(0, 0x7f), body_hex: HexBytes }),
    (f) => ({ _tag: "Bulk", dir: dir(f.dir), code: f.code, body: f.body_hex })
  ),
  source_routed: kind(
    Schema.Struct({
      dir: Dir,
      to: Schema.Array(Dir).check(Schema.isMaxLength(MAX_PACKET)),
      from: Schema.Array(Dir).check(Schema.isMaxLength(MAX_PACKET)),
      command: Char(0xff),
      body_hex: HexBytes
    }),
    (f) => ({
      _tag: "SourceRouted",
      dir: dir(f.dir),
      to: f.to.map(dir),
      from: f.from.map(dir),
      command: f.command.charCodeAt(0),
      body: f.body_hex
    })
  ),
  flash: kind(
    Schema.Struct({
      dir: Dir,
      command: Schema.Union([
        Schema.Literals(Object.keys(FlashPacket.commands) as Array<FlashPacket.CommandName>),
        intIn(0, 0x7f)
      ]),
      index: U8,
      range: U8,
      argument: U32,
      ttl: U8,
      origin_x: intIn(-128, 127),
      origin_y: intIn(-128, 127)
    }),
    (f) => ({
      _tag: "Flash",
      dir: dir(f.dir),
      command: typeof f.command === "number" ? f.command : FlashPacket.commands[f.command],
      index: f.index,
      range: f.range,
      argument: f.argument,
      ttl: f.ttl,
      originX: f.origin_x,
      originY: f.origin_y
    })
  ),
  cdm_a: kind(
    Schema.Struct({ dir: Dir, tag: U8, version: Schema.optionalKey(U8), trailing_hex: Trailing }),
    (f): CdmPacket.CdmA => ({
      _tag: "CdmA",
      dir: dir(f.dir),
      tag: f.tag,
      version: f.version,
      trailing: orEmpty(f.trailing_hex)
    })
  ),
  cdm_f: kind(Schema.Struct({ dir: Dir, slotstamp: U32, available: U32, trailing_hex: Trailing }), (f) => ({
    _tag: "CdmF",
    dir: dir(f.dir),
    slotstamp: f.slotstamp,
    available: f.available,
    trailing: orEmpty(f.trailing_hex)
  })),
  cdm_c: kind(Schema.Struct({ dir: Dir, slotstamp: U32, position: U32, trailing_hex: Trailing }), (f) => ({
    _tag: "CdmC",
    dir: dir(f.dir),
    slotstamp: f.slotstamp,
    position: f.position,
    trailing: orEmpty(f.trailing_hex)
  })),
  cdm_d: kind(
    Schema.Struct({ dir: Dir, slotstamp: U32, position: U32, data_hex: HexBytes, trailing_hex: Trailing }),
    (f) => ({
      _tag: "CdmD",
      dir: dir(f.dir),
      slotstamp: f.slotstamp,
      position: f.position,
      data: f.data_hex,
      trailing: orEmpty(f.trailing_hex)
    })
  ),
  cdm_other: kind(
    Schema.Struct({ dir: Dir, command: Char(0xff), body_hex: HexBytes }),
    (f) => ({ _tag: "CdmOther", dir: dir(f.dir), command: f.command.charCodeAt(0), body: f.body_hex })
  )
}

const Envelope = Schema.Struct({ packet: Schema.Literals(packetNames), fields: Schema.Unknown })
const decodeEnvelope = Schema.decodeUnknownResult(Envelope, PARSE)

// One line: Schema reports each issue as "message\n  at path".
const reasonOf = (error: Schema.SchemaError): string => error.message.replace(/\n\s*/g, " ")

/**
 * Builds a packet's bytes from its JSON view. A value of the wrong shape fails with offset 0 and the
 * Schema issue as the reason; a well-shaped value the packet cannot hold (e.g. 200 bytes of `D` data)
 * fails with the offending byte offset.
 *
 * @since 0.1.0
 * @category decoding
 */
export const fromJson = (value: unknown): Decoded<Uint8Array> => {
  const envelope = decodeEnvelope(value)
  if (Result.isFailure(envelope)) return fail("t2", "json", 0, reasonOf(envelope.failure))
  const { packet: name, fields } = envelope.success
  const packet = builders[name](fields)
  if (Result.isFailure(packet)) return fail("t2", name, 0, `fields: ${reasonOf(packet.failure)}`)
  return T2Packet.encode(packet.success)
}
