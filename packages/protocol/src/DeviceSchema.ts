/**
 * A device's schema as it travels in a device group (Silo's `DevInfo.Schema` inside DeviceGroupInfo): one HCL
 * `device "<name>" { … }` block. `encode` writes it the way Silo's encoder lays it out (every attribute, zero
 * values included, `=` signs aligned, two-space indent) so Silo's decoder takes it; `parse` reads any HCL with
 * an HCL parser (`@cdktf/hcl2json`, loaded on first use), so layout, comments and attribute order do not
 * matter, and insists on exactly one device block.
 *
 * Sizes are Silo's byte syntax: an optional suffix `b`, `k`, `m` or `g` (powers of 1024) after a whole number,
 * case-insensitive; `""` is 0. Attributes this port does not use (sync, source, writecache…) are kept in
 * `attributes` as parsed, so nothing a peer sent is lost.
 *
 * @since 0.1.0
 */
import type * as Hcl from "@cdktf/hcl2json"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"

/**
 * The storage system a device schema names.
 *
 * @since 0.1.0
 * @category models
 */
export type System = "memory" | "file" | "sparsefile"

/**
 * One device of a group.
 *
 * @since 0.1.0
 * @category models
 */
export interface DeviceSchema {
  readonly name: string
  readonly size: number
  readonly system: System
  /** The migration block size; `undefined` when the schema leaves it empty (device groups then use 1 MiB). */
  readonly blockSize?: number | undefined
  /** A file or sparse file path, when the system has one. */
  readonly location?: string | undefined
  /** Whether the device is exported (as an NBD device in Silo). */
  readonly expose?: boolean | undefined
  /** Every other attribute and block of the device, as parsed. */
  readonly attributes?: Readonly<Record<string, unknown>> | undefined
}

/**
 * A schema that does not parse, or does not describe exactly one usable device.
 *
 * @since 0.1.0
 * @category errors
 */
export class DeviceSchemaError extends Schema.TaggedError<DeviceSchemaError>()("DeviceSchemaError", {
  detail: Schema.String
}) {
  override get message(): string {
    return `bad device schema: ${this.detail}`
  }
}

const systems: ReadonlyArray<System> = ["memory", "file", "sparsefile"]
const units: Readonly<Record<string, number>> = { b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }
const known = new Set(["size", "system", "blocksize", "location", "expose"])

/**
 * Parses Silo's byte syntax (`"256m"`, `"4096"`, `"1g"`, `""`).
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseSize = (input: string): Result.Result<number, DeviceSchemaError> => {
  const text = input.trim().toLowerCase()
  if (text === "") return Result.succeed(0)
  const match = /^(\d+)([bkmg]?)$/.exec(text)
  const value = match === null ? Number.NaN : Number(match[1]) * (units[match[2]!] ?? 1)
  return Number.isSafeInteger(value)
    ? Result.succeed(value)
    : Result.fail(new DeviceSchemaError({ detail: `${JSON.stringify(input)} is not a size (e.g. "4096", "256m")` }))
}

/**
 * Writes a size in the largest unit that divides it.
 *
 * @since 0.1.0
 * @category encoding
 */
export const formatSize = (bytes: number): string => {
  for (const [suffix, unit] of [["g", 1024 ** 3], ["m", 1024 ** 2], ["k", 1024]] as const) {
    if (bytes > 0 && bytes % unit === 0) return `${bytes / unit}${suffix}`
  }
  return String(bytes)
}

/** A quoted HCL string: JSON escapes, and template openers doubled so they stay literal. */
const quote = (text: string): string =>
  JSON.stringify(text).replace(/([$%])\{/g, (_, sign: string) => `${sign}${sign}{`)

/** hcl2json gives attribute values as template source, with literal openers still doubled. */
const literal = (template: string): string => template.replace(/([$%])\1\{/g, (_, sign: string) => `${sign}{`)

/**
 * The schema as one HCL device block, laid out as Silo's encoder lays it out.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encode = (schema: DeviceSchema): string => {
  const attributes: ReadonlyArray<readonly [string, string]> = [
    ["size", quote(formatSize(schema.size))],
    ["system", quote(schema.system)],
    ["blocksize", quote(schema.blockSize === undefined ? "" : formatSize(schema.blockSize))],
    ["expose", String(schema.expose ?? false)],
    ["location", quote(schema.location ?? "")]
  ]
  const width = Math.max(...attributes.map(([key]) => key.length))
  const lines = attributes.map(([key, value]) => `  ${key.padEnd(width)} = ${value}`)
  return `device ${quote(schema.name)} {\n${lines.join("\n")}\n}\n`
}

const fail = (detail: string) => Effect.fail(new DeviceSchemaError({ detail }))

/**
 * The HCL parser, loaded on first use: it is a Go WebAssembly instance that costs about 0.1-0.2 s of start-up
 * and 58 MiB of memory, which every process importing this module (a migration source, the CLI) would pay
 * for nothing; only a destination parses schemas.
 */
let hclParser: Promise<typeof Hcl> | undefined
const parseHcl = (name: string, text: string): Promise<Record<string, unknown>> =>
  (hclParser ??= import("@cdktf/hcl2json")).then((hcl) => hcl.parse(name, text))

/**
 * Parses HCL text holding exactly one `device` block.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parse = Effect.fn("DeviceSchema.parse")(function*(text: string) {
  const document = yield* Effect.tryPromise({
    try: () => parseHcl("schema.hcl", text),
    catch: (cause) => new DeviceSchemaError({ detail: String(cause).replace(/^Error: /, "") })
  })
  const keys = Object.keys(document)
  if (keys.some((key) => key !== "device")) return yield* fail(`unexpected ${keys.filter((k) => k !== "device")}`)
  const devices = Object.entries((document.device ?? {}) as Record<string, ReadonlyArray<Record<string, unknown>>>)
    .flatMap(([name, bodies]) => bodies.map((body) => [name, body] as const))
  if (devices.length !== 1) return yield* fail(`expected exactly one device block, found ${devices.length}`)
  const [name, body] = devices[0]!
  const stringOf = (key: string): string | undefined => {
    const value = body[key]
    return typeof value === "string" ? literal(value) : undefined
  }
  for (const key of ["size", "system", "blocksize", "location"]) {
    if (body[key] !== undefined && stringOf(key) === undefined) return yield* fail(`${key} must be a string`)
  }
  if (body.expose !== undefined && typeof body.expose !== "boolean") return yield* fail("expose must be a boolean")
  const system = stringOf("system")
  if (system === undefined) return yield* fail(`device ${JSON.stringify(name)} has no system`)
  if (!systems.includes(system as System)) {
    return yield* fail(`system ${JSON.stringify(system)} is not supported (use ${systems.join(", ")})`)
  }
  if (stringOf("size") === undefined) return yield* fail(`device ${JSON.stringify(name)} has no size`)
  const size = yield* Effect.fromResult(parseSize(stringOf("size")!))
  const blockSize = yield* Effect.fromResult(parseSize(stringOf("blocksize") ?? ""))
  const location = stringOf("location")
  const attributes = Object.fromEntries(Object.entries(body).filter(([key]) => !known.has(key)))
  const schema: DeviceSchema = {
    name,
    size,
    system: system as System,
    blockSize: blockSize === 0 ? undefined : blockSize,
    location: location === undefined || location === "" ? undefined : location,
    expose: body.expose === true,
    attributes
  }
  return schema
})
