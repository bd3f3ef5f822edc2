/**
 * `tessera cdm`: the tools for CDM-managed releases (spec t2 §4).
 *
 * - `keygen --handle H [--type rsa|ed25519] [--out DIR]` writes `<escaped handle>.priv` and `.pub` key files as
 *   mfzmake lays them out (RSA-1024 by default; Ed25519 signs headers of minor version 1).
 * - `make --key PRIV --slot N --label L [--regnum R] [--time UNIX] [--out DIR] FILE...` builds a signed
 *   `cdmss-SS-TTTTTT.mfz` from payload files (stored by absolute path without the leading `/`).
 * - `verify FILE --trust R=PUB...` checks the map signature, every block checksum, the final SHA-512 and the
 *   inner MFZ's signature and signer.
 * - `inspect FILE` shows the header and the MFZ's contents without trusting anything.
 *
 * Every subcommand takes `--json` for one JSON object on stdout. Bad input exits 2, a failed verification 1.
 *
 * @since 0.1.0
 */
import * as CdmMapHeader from "@tessera/codec/CdmMapHeader"
import * as CdmSlotstamp from "@tessera/codec/CdmSlotstamp"
import * as CdmKeys from "@tessera/tile/CdmKeys"
import * as CdmRelease from "@tessera/tile/CdmRelease"
import * as Mfz from "@tessera/tile/Mfz"
import * as Argument from "effect/cli/Argument"
import * as Command from "effect/cli/Command"
import * as Flag from "effect/cli/Flag"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import * as fs from "node:fs"
import * as path from "node:path"
import { BadInput, OperationFailed } from "./CliFailure.ts"

const jsonFlag = Flag.Boolean("json").pipe(
  Flag.withDescription("Print one JSON object on stdout"),
  Flag.withDefault(false)
)

const readFile = (file: string): Effect.Effect<Uint8Array, BadInput> =>
  Effect.try({
    try: () => new Uint8Array(fs.readFileSync(file)),
    catch: (cause) => new BadInput({ message: `${file}: ${cause instanceof Error ? cause.message : String(cause)}` })
  })

const readKey = (file: string): Effect.Effect<CdmKeys.Key, BadInput> =>
  Effect.flatMap(readFile(file), (bytes) =>
    Effect.fromResult(
      Result.mapError(CdmKeys.parse(new TextDecoder().decode(bytes), file), (e) => new BadInput({ message: e.message }))
    ))

/** `R=FILE` pairs into a keyring. */
export const keyringOf = (trust: ReadonlyArray<string>): Effect.Effect<CdmKeys.Keyring, BadInput> =>
  Effect.map(
    Effect.forEach(trust, (entry) => {
      const m = /^(\d{1,3})=(.+)$/.exec(entry)
      if (m === null || Number(m[1]) > 255) {
        return Effect.fail(new BadInput({ message: `--trust ${entry}: expected REGNUM=PUBKEYFILE with REGNUM 0..255` }))
      }
      return Effect.map(readKey(m[2]!), (key) => [Number(m[1]), key] as const)
    }),
    CdmKeys.keyring
  )

/** A slot number in decimal or 0x hex, 1..255. */
export const parseSlot = (text: string): Effect.Effect<number, BadInput> => {
  const n = /^0x[0-9a-f]{1,2}$/i.test(text) ? Number.parseInt(text, 16) : /^\d{1,3}$/.test(text) ? Number(text) : NaN
  return n >= 1 && n <= 255
    ? Effect.succeed(n)
    : Effect.fail(new BadInput({ message: `--slot ${text}: expected 1..255 (decimal or 0x hex)` }))
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex")

const writeNew = (file: string, data: Uint8Array | string, mode?: number) =>
  Effect.try({
    try: () => fs.writeFileSync(file, data, { flag: "wx", ...(mode === undefined ? {} : { mode }) }),
    catch: (cause) =>
      new OperationFailed({ message: `${file}: ${cause instanceof Error ? cause.message : String(cause)}` })
  })

const keygen = Command.make(
  "keygen",
  {
    handle: Flag.String("handle").pipe(Flag.withDescription("The signer's handle, e.g. t2-keymaster-release-10")),
    type: Flag.Literals("type", ["rsa", "ed25519"]).pipe(
      Flag.withDescription("rsa: RSA-1024 as mfzmake (CDM10); ed25519: modern (CDM11)"),
      Flag.withDefault("rsa")
    ),
    out: Flag.String("out").pipe(Flag.withDescription("Directory for the key files"), Flag.withDefault(".")),
    json: jsonFlag
  },
  Effect.fn("cdm.keygen")(function*(flags) {
    const key = yield* Effect.fromResult(
      Result.mapError(CdmKeys.generate(flags.handle, flags.type), (e) => new BadInput({ message: e.message }))
    )
    const stem = path.join(flags.out, CdmKeys.escapeHandle(key.handle))
    yield* writeNew(`${stem}.priv`, CdmKeys.privateText(key)!, 0o600)
    yield* writeNew(`${stem}.pub`, key.publicText)
    const fingerprint = CdmKeys.fingerprint(key.publicText)
    yield* flags.json
      ? Console.log(
        JSON.stringify({
          handle: key.handle,
          type: key.type,
          private: `${stem}.priv`,
          public: `${stem}.pub`,
          fingerprint
        })
      )
      : Console.log(`${key.type} key for ${key.handle} (${fingerprint}): ${stem}.priv, ${stem}.pub`)
  })
).pipe(Command.withDescription("Make a signing key pair"))

const make = Command.make(
  "make",
  {
    key: Flag.String("key").pipe(Flag.withDescription("The signer's private key file")),
    slot: Flag.String("slot").pipe(Flag.withDescription("Content slot 1..255 (decimal or 0x hex)")),
    label: Flag.String("label").pipe(Flag.withDescription("Up to 16 printable characters"), Flag.withDefault("")),
    regnum: Flag.Int("regnum").pipe(
      Flag.withDescription("Registration number of the key (0..255)"),
      Flag.withDefault(0)
    ),
    time: Flag.Int("time").pipe(Flag.withDescription("Release time, unix seconds (default: now)"), Flag.optional),
    out: Flag.String("out").pipe(Flag.withDescription("Output directory"), Flag.withDefault(".")),
    json: jsonFlag,
    files: Argument.String("file").pipe(Argument.withDescription("Payload files"), Argument.atLeast(1))
  },
  Effect.fn("cdm.make")(function*(flags) {
    const key = yield* readKey(flags.key)
    const slot = yield* parseSlot(flags.slot)
    const time = Option.getOrElse(flags.time, () => Math.floor(Date.now() / 1000))
    const files = yield* Effect.forEach(flags.files, (file) =>
      Effect.map(readFile(file), (bytes) => ({
        path: path.resolve(file),
        bytes,
        mtime: Math.floor(fs.statSync(file).mtimeMs / 1000)
      })))
    const release = yield* Effect.fromResult(
      Result.mapError(
        CdmRelease.make({ key, regnum: flags.regnum, slot, label: flags.label, time, files }),
        (e) => new BadInput({ message: e.message })
      )
    )
    const file = path.join(flags.out, release.fileName)
    yield* writeNew(file, release.bytes)
    yield* flags.json
      ? Console.log(JSON.stringify({ file, slotstamp: release.slotstamp, bytes: release.bytes.length }))
      : Console.log(`${file}: ${release.bytes.length} bytes, slot 0x${slot.toString(16).padStart(2, "0")}`)
  })
).pipe(Command.withDescription("Build a signed cdmss-SS-TTTTTT.mfz from payload files"))

const trustFlag = Flag.String("trust").pipe(
  Flag.withDescription("A trusted key: REGNUM=PUBKEYFILE (repeatable)"),
  Flag.atLeast(1)
)

const verify = Command.make(
  "verify",
  { trust: trustFlag, json: jsonFlag, file: Argument.String("file").pipe(Argument.withDescription("A cdmss file")) },
  Effect.fn("cdm.verify")(function*(flags) {
    const keyring = yield* keyringOf(flags.trust)
    const bytes = yield* readFile(flags.file)
    const result = CdmRelease.verify(bytes, keyring, flags.file)
    if (Result.isFailure(result)) {
      if (flags.json) yield* Console.log(JSON.stringify({ ok: false, error: result.failure.message }))
      return yield* new OperationFailed({ message: result.failure.message })
    }
    const { header, mfz } = result.success
    const facts = {
      ok: true,
      file: CdmSlotstamp.fileName(header.slotstamp),
      slot: CdmSlotstamp.slot(header.slotstamp),
      stamp: CdmSlotstamp.stamp(header.slotstamp),
      label: header.label,
      regnum: header.regnum,
      signer: mfz.handle,
      fingerprint: CdmKeys.fingerprint(mfz.keyText),
      innerTimestamp: mfz.innerTimestamp,
      blocks: header.checksums.length
    }
    yield* flags.json ? Console.log(JSON.stringify(facts)) : Console.log(
      [
        `MAP_SIGNATURE [OK] regnum ${header.regnum}`,
        `BLOCK_CHECKSUMS [OK] ${header.checksums.length}`,
        `CONTENT_SHA512 [OK]`,
        `SIGNATURE_CHECK [OK]`,
        `SIGNING_HANDLE [${mfz.handle}]`,
        `HANDLE_FINGERPRINT [${facts.fingerprint}]`,
        `INNER_TIMESTAMP [${mfz.innerTimestamp}]`
      ].join("\n")
    )
  })
).pipe(Command.withDescription("Verify a release: map signature, block checksums, SHA-512, inner MFZ signer"))

const inspect = Command.make(
  "inspect",
  { json: jsonFlag, file: Argument.String("file").pipe(Argument.withDescription("A cdmss file")) },
  Effect.fn("cdm.inspect")(function*(flags) {
    const bytes = yield* readFile(flags.file)
    const decoded = CdmMapHeader.decode(bytes)
    if (Result.isFailure(decoded)) return yield* new BadInput({ message: `${flags.file}: ${decoded.failure.message}` })
    const h = decoded.success
    const mfz = Mfz.parse(bytes, flags.file)
    const info = {
      magic: `CDM1${h.minor}`,
      signature: CdmKeys.typeForMinor(h.minor) ?? "unknown",
      file: CdmSlotstamp.fileName(h.slotstamp),
      slotstamp: h.slotstamp,
      slot: CdmSlotstamp.slot(h.slotstamp),
      stamp: CdmSlotstamp.stamp(h.slotstamp),
      time: CdmSlotstamp.stamp(h.slotstamp) * CdmSlotstamp.stampSeconds,
      regnum: h.regnum,
      label: h.label,
      mappedLength: h.mappedLength,
      length: bytes.length,
      blockSize: CdmMapHeader.blockSize(h),
      blocks: h.checksums.length,
      sha512: hex(h.sha512),
      mfz: Result.isSuccess(mfz)
        ? {
          name: mfz.success.name,
          signer: mfz.success.handle,
          fingerprint: CdmKeys.fingerprint(mfz.success.keyText),
          innerTimestamp: mfz.success.innerTimestamp,
          signatureOk: mfz.success.signatureOk,
          files: mfz.success.files.map((f) => ({ path: f.path, bytes: f.bytes.length }))
        }
        : { error: mfz.failure.message }
    }
    if (flags.json) return yield* Console.log(JSON.stringify(info))
    const lines = [
      `${info.file}  ${info.magic} (${info.signature})  ${info.length} bytes`,
      `slot 0x${info.slot.toString(16).padStart(2, "0")}  stamp 0x${info.stamp.toString(16).padStart(6, "0")} (${
        new Date(info.time * 1000).toISOString()
      })  regnum ${info.regnum}  label "${info.label}"`,
      `mapped ${info.mappedLength} bytes in ${info.blocks} block(s) of ${info.blockSize}`,
      `sha512 ${info.sha512}`
    ]
    if ("error" in info.mfz) lines.push(`mfz: ${info.mfz.error}`)
    else {
      lines.push(
        `mfz ${info.mfz.name}  signer ${info.mfz.signer} (${info.mfz.fingerprint})  signature ${
          info.mfz.signatureOk ? "ok" : "BAD"
        }  inner time ${info.mfz.innerTimestamp}`
      )
      for (const f of info.mfz.files) lines.push(`  ${f.path}  ${f.bytes} bytes`)
    }
    yield* Console.log(lines.join("\n"))
  })
).pipe(Command.withDescription("Show a release's map header and MFZ contents (nothing is trusted)"))

/**
 * The `cdm` command and its subcommands.
 *
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make("cdm").pipe(
  Command.withDescription("Managed file update releases: keys, make, verify, inspect"),
  Command.withSubcommands([keygen, make, verify, inspect])
)
