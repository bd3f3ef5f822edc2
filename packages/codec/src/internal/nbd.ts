/**
 * Helpers shared by the NBD modules: 64-bit magics compared as two 32-bit halves, and UTF-8 decoding that
 * keeps a leading byte-order mark (the default decoder drops it, which would change a name).
 */
import { putU32be, u32be } from "./bytes.ts"

export const EMPTY = new Uint8Array(0)

/** A 64-bit magic split into its big-endian halves, so matching it needs no BigInt. */
export interface Magic64 {
  readonly high: number
  readonly low: number
}

export const magic64 = (value: bigint): Magic64 => ({
  high: Number(value >> 32n),
  low: Number(value & 0xffff_ffffn)
})

export const hasMagic64 = (b: Uint8Array, o: number, magic: Magic64): boolean =>
  u32be(b, o) === magic.high && u32be(b, o + 4) === magic.low

export const putMagic64 = (b: Uint8Array, o: number, magic: Magic64): void => {
  putU32be(b, o, magic.high)
  putU32be(b, o + 4, magic.low)
}

const strictDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })
const lenientDecoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true })

/** UTF-8 to string, or `undefined` for bytes that are not UTF-8 (names must survive a round trip exactly). */
export const strictUtf8 = (bytes: Uint8Array): string | undefined => {
  try {
    return strictDecoder.decode(bytes)
  } catch {
    return undefined
  }
}

/** UTF-8 to string with U+FFFD for bad sequences (messages meant for a human). */
export const lenientUtf8 = (bytes: Uint8Array): string => lenientDecoder.decode(bytes)
