/**
 * The JSON view of elliptics `dnet` packets, for `tessera inspect dnet` (bytes to JSON) and
 * `tessera craft dnet` (JSON to bytes). One plain object per packet, snake_case keys:
 *
 * ```json
 * {
 *   "packet": "WRITE",
 *   "cmd": {
 *     "id_hex": "<128 hex digits>", "group_id": 2, "type": 0,
 *     "flags": ["NEED_ACK"], "status": 0, "trans": 7, "reply": false, "size": 197
 *   },
 *   "attrs": [{
 *     "cmd": "WRITE", "size": 173, "flags": [],
 *     "io": { "parent_hex": "<hex>", "id_hex": "<hex>", "start": 0, "num": 0, "type": 0,
 *             "flags": ["APPEND"], "offset": 0, "size": 5 },
 *     "data_hex": "68656c6c6f"
 *   }]
 * }
 * ```
 *
 * - `packet` is the first attribute's command, or `"ACK"` / `"EMPTY"` for a bare header.
 * - `trans` is the transaction number without the reply bit (that is `reply`): a JSON number, or a decimal
 *   string when above 2^53 - 1.
 * - Flags are lists of names, with `"0x.."` for a bit that has no name; names follow the command where a bit is
 *   overloaded (attribute bit 0, IO bit 9). Commands unknown to Era B are `"CMD_<n>"`.
 * - Byte strings are lowercase hex in `*_hex` keys. `unused_hex` appears only when `dnet_attr.unused` is not zero; `io` exactly for IO commands.
 *
 * `fromJson` accepts what `toJson` writes and reproduces the bytes exactly. For hand-written input it also
 * accepts numbers for flags and commands and any flag name of the family; `packet` and the `size` fields of `cmd`
 * and attributes may be left out (they are derived; when present they must agree with the contents), and so may
 * `type`, `flags`, `status`, `reply`, `unused_hex`, `data_hex` and, in `io`, everything but `parent_hex`, `id_hex`
 * and `size` (zero, false or empty). Unknown keys inside `cmd`, `attrs` and `io` are refused, so a misspelt
 * field is an error rather than silently lost; keys beside `packet`, `cmd` and `attrs` are ignored, so an
 * annotated line (say, with a stream offset) can be fed back as is.
 *
 * @since 0.1.0
 */
import * as Hex from "effect/encoding/Hex"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as SchemaIssue from "effect/SchemaIssue"
import { type Decoded, DecodeError } from "./DecodeError.ts"
import { AttrFlags, CmdFlags, Command, commandFromName, commandName, IoFlags, TRANS_REPLY } from "./DnetConstants.ts"
import {
  type Attribute,
  attributeSize,
  carriesIoAttr,
  encodePacket,
  isReply,
  name,
  type Packet,
  payloadSize,
  transaction
} from "./DnetPacket.ts"
import type { IoAttr } from "./DnetStructs.ts"

const U32 = Schema.Int.check(Schema.isUint32())
const I32 = Schema.Int.check(Schema.isInt32())
const Size = Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }))
const hexOf = (digits: string, expected: string) =>
  Schema.String.check(Schema.isPattern(new RegExp(`^(?:[0-9a-fA-F]{2})${digits}$`), { expected }))
const HexId = hexOf("{64}", "128 hex digits (64 bytes)")
const Flags = Schema.Union([U32, Schema.Array(Schema.String)])

const IoJson = Schema.Struct({
  parent_hex: HexId,
  id_hex: HexId,
  start: Schema.optionalKey(Size),
  num: Schema.optionalKey(Size),
  type: Schema.optionalKey(I32),
  flags: Schema.optionalKey(Flags),
  offset: Schema.optionalKey(Size),
  size: Size
})

const AttrJson = Schema.Struct({
  cmd: Schema.Union([U32, Schema.String]),
  size: Schema.optionalKey(Size),
  flags: Schema.optionalKey(Flags),
  unused_hex: Schema.optionalKey(hexOf("{8}", "16 hex digits (8 bytes)")),
  io: Schema.optionalKey(IoJson),
  data_hex: Schema.optionalKey(hexOf("*", "hex digits, two per byte"))
})

const CmdJson = Schema.Struct({
  id_hex: HexId,
  group_id: U32,
  type: Schema.optionalKey(I32),
  flags: Schema.optionalKey(Flags),
  status: Schema.optionalKey(I32),
  trans: Schema.Union([Size, Schema.String.check(Schema.isPattern(/^\d{1,19}$/, { expected: "a decimal number" }))]),
  reply: Schema.optionalKey(Schema.Boolean),
  size: Schema.optionalKey(Size)
})

/**
 * The accepted JSON shape of one packet (see the module documentation).
 *
 * @since 0.1.0
 * @category schemas
 */
export const PacketJson = Schema.Struct({
  packet: Schema.optionalKey(Schema.String),
  cmd: CmdJson,
  attrs: Schema.Array(AttrJson)
})

/**
 * One packet as JSON.
 *
 * @since 0.1.0
 * @category models
 */
export type PacketJson = typeof PacketJson.Type

type FlagNames = (bit: number) => string | undefined

const byBit = (table: Readonly<Record<string, number>>): ReadonlyArray<string> => {
  const names: Array<string> = []
  for (const [flag, value] of Object.entries(table)) names[Math.log2(value)] ??= flag
  return names
}

const cmdFlagNames = byBit(CmdFlags)
const attrFlagNames = byBit(AttrFlags)
const ioFlagNames = byBit(IoFlags)

/** Attribute bit 0 has a name only for the commands that define it. */
const attrBit0: ReadonlyMap<number, string> = new Map([
  [Command.DEL, "DELETE_HISTORY"],
  [Command.STAT_COUNT, "CNTR_GLOBAL"],
  [Command.LIST, "BULK_CHECK"],
  [Command.STATUS, "STATUS_CHANGE"]
])

const attrNamesFor = (cmd: number): FlagNames => (bit) => bit === 0 ? attrBit0.get(cmd) : attrFlagNames[bit]

const ioNamesFor = (cmd: number): FlagNames => (bit) =>
  bit === 9 ? (cmd === Command.WRITE ? "PLAIN_WRITE" : "NODATA") : ioFlagNames[bit]

const renderFlags = (value: number, names: FlagNames): Array<string> => {
  const out: Array<string> = []
  for (let bit = 0; bit < 32; bit++) {
    if ((value >>> bit) & 1) out.push(names(bit) ?? `0x${(2 ** bit).toString(16)}`)
  }
  return out
}

const transJson = (trans: bigint): number | string =>
  trans <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(trans) : trans.toString()

const ioJson = (io: IoAttr, cmd: number) => ({
  parent_hex: Hex.encode(io.parent),
  id_hex: Hex.encode(io.id),
  start: io.start,
  num: io.num,
  type: io.type,
  flags: renderFlags(io.flags, ioNamesFor(cmd)),
  offset: io.offset,
  size: io.size
})

const attrJson = (attribute: Attribute) => ({
  cmd: commandName(attribute.cmd),
  size: attributeSize(attribute),
  flags: renderFlags(attribute.flags, attrNamesFor(attribute.cmd)),
  ...(attribute.unused && { unused_hex: Hex.encode(attribute.unused) }),
  ...(attribute.io && { io: ioJson(attribute.io, attribute.cmd) }),
  data_hex: Hex.encode(attribute.data)
})

/**
 * The JSON view of a packet.
 *
 * @since 0.1.0
 * @category encoding
 */
export const toJson = (packet: Packet): PacketJson => ({
  packet: name(packet),
  cmd: {
    id_hex: Hex.encode(packet.id.id),
    group_id: packet.id.groupId,
    type: packet.id.type,
    flags: renderFlags(packet.flags, (bit) => cmdFlagNames[bit]),
    status: packet.status,
    trans: transJson(transaction(packet)),
    reply: isReply(packet),
    size: payloadSize(packet)
  },
  attrs: packet.attrs.map(attrJson)
})

const invalid = (reason: string): DecodeError =>
  new DecodeError({ protocol: "dnet", packet: "json", offset: 0, reason })

/**
 * Collects the first problem of a conversion; the converters keep going with a placeholder so each reads as one
 * expression, and `fromJson` reports the first problem at the end.
 */
class Problems {
  first: DecodeError | undefined = undefined
  report(path: string, reason: string): void {
    this.first ??= invalid(`${path}: ${reason}`)
  }
  /** Reports a derived field given in the input that disagrees with the value computed from the contents. */
  check(given: unknown, computed: unknown, path: string, source: string): void {
    if (given !== undefined && given !== computed) {
      this.report(path, `is ${JSON.stringify(given)} but the ${source} make it ${JSON.stringify(computed)}`)
    }
  }
}

const parseFlags = (
  problems: Problems,
  input: number | ReadonlyArray<string> | undefined,
  table: Readonly<Record<string, number>>,
  path: string
): number => {
  if (typeof input !== "object") return input ?? 0
  let value = 0
  for (const flag of input) {
    if (Object.hasOwn(table, flag)) value |= table[flag]!
    else if (/^0x[0-9a-fA-F]{1,8}$/.test(flag)) value |= Number(flag)
    else problems.report(path, `unknown flag ${JSON.stringify(flag)}`)
  }
  return value >>> 0
}

/** The schema's pattern already checked the hex, so decoding cannot fail. */
const bytesOf = (text: string): Uint8Array => Result.getOrElse(Hex.decode(text), () => new Uint8Array(0))

const toIo = (problems: Problems, json: typeof IoJson.Type, path: string): IoAttr => ({
  parent: bytesOf(json.parent_hex),
  id: bytesOf(json.id_hex),
  start: json.start ?? 0,
  num: json.num ?? 0,
  type: json.type ?? 0,
  flags: parseFlags(problems, json.flags, IoFlags, `${path}.flags`),
  offset: json.offset ?? 0,
  size: json.size
})

const toAttribute = (problems: Problems, json: typeof AttrJson.Type, index: number, reply: boolean): Attribute => {
  const path = `attrs[${index}]`
  let cmd = typeof json.cmd === "number" ? json.cmd : commandFromName(json.cmd)
  if (cmd === undefined) {
    problems.report(`${path}.cmd`, `unknown command ${JSON.stringify(json.cmd)}`)
    cmd = 0
  } else if (carriesIoAttr(cmd, reply) !== (json.io !== undefined)) {
    problems.report(path, `${commandName(cmd)} ${json.io === undefined ? "needs" : "takes no"} "io"`)
  }
  // All-zero unused bytes are the canonical absent field, as the decoder reports them.
  const unused = json.unused_hex === undefined ? undefined : bytesOf(json.unused_hex)
  const attribute: Attribute = {
    cmd,
    flags: parseFlags(problems, json.flags, AttrFlags, `${path}.flags`),
    ...(unused?.some((byte) => byte !== 0) && { unused }),
    ...(json.io && { io: toIo(problems, json.io, `${path}.io`) }),
    data: bytesOf(json.data_hex ?? "")
  }
  problems.check(json.size, attributeSize(attribute), `${path}.size`, "io header and data")
  return attribute
}

const toTrans = (problems: Problems, json: typeof CmdJson.Type): bigint => {
  const trans = BigInt(json.trans)
  if (trans >= TRANS_REPLY) problems.report("cmd.trans", "must be below 2^63 (the reply bit is \"reply\")")
  return json.reply === true ? trans | TRANS_REPLY : trans
}

const toPacket = (problems: Problems, json: PacketJson): Packet => {
  const packet: Packet = {
    id: { id: bytesOf(json.cmd.id_hex), groupId: json.cmd.group_id, type: json.cmd.type ?? 0 },
    flags: parseFlags(problems, json.cmd.flags, CmdFlags, "cmd.flags"),
    status: json.cmd.status ?? 0,
    trans: toTrans(problems, json.cmd),
    attrs: json.attrs.map((attr, index) => toAttribute(problems, attr, index, json.cmd.reply === true))
  }
  problems.check(json.cmd.size, payloadSize(packet), "cmd.size", "attributes")
  problems.check(json.packet, name(packet), "packet", "attributes")
  return packet
}

const decodeJson = Schema.decodeUnknownResult(PacketJson)

const packetKeyNames = ["packet", "cmd", "attrs"] as const

/** Only the keys of a packet, so annotations beside them pass while unknown keys inside them are refused. */
const packetKeys = (value: unknown): unknown => {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return value
  const picked: { [key: string]: unknown } = {}
  for (const key of packetKeyNames) {
    if (Object.hasOwn(value, key)) picked[key] = (value as { readonly [key: string]: unknown })[key]
  }
  return picked
}

const formatIssue = SchemaIssue.makeFormatterStandardSchemaV1()

/** The first schema issue on one line, its path written like the other reasons (`attrs[0].data_hex: ...`). */
const schemaReason = (issue: SchemaIssue.Issue): string => {
  const first = formatIssue(issue).issues[0]
  if (first === undefined) return "invalid packet JSON"
  let path = ""
  for (const segment of first.path ?? []) {
    const key = typeof segment === "object" ? segment.key : segment
    path += typeof key === "number" ? `[${key}]` : `${path === "" ? "" : "."}${String(key)}`
  }
  return path === "" ? first.message : `${path}: ${first.message}`
}

/**
 * The bytes of a packet described in JSON: validates the shape with `PacketJson`, then names, the reply bit and
 * the optional derived fields. Failures are `DecodeError`s of protocol `"dnet"`, packet `"json"`, offset 0.
 *
 * @since 0.1.0
 * @category decoding
 */
export const fromJson = (value: unknown): Decoded<Uint8Array> => {
  const shaped = decodeJson(packetKeys(value), { onExcessProperty: "error" })
  if (Result.isFailure(shaped)) return Result.fail(invalid(schemaReason(shaped.failure.issue)))
  const problems = new Problems()
  const packet = toPacket(problems, shaped.success)
  return problems.first === undefined ? Result.succeed(encodePacket(packet)) : Result.fail(problems.first)
}
