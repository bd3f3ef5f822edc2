/**
 * CDM slotstamps (spec t2 §3.2): the 32-bit identity of one managed file, `slot << 24 | stamp`, where `slot`
 * is 1..255 and `stamp` is the creation time in 5-minute units. The newest stamp within a slot wins; different
 * slots are independent. Files are named `cdmss-SS-TTTTTT.mfz` after it.
 *
 * @since 0.1.0
 */
import * as Result from "effect/Result"
import { type Decoded, fail } from "./DecodeError.ts"

/**
 * Seconds per stamp unit: stamps have 5-minute granularity.
 *
 * @since 0.1.0
 * @category constants
 */
export const stampSeconds = 300

/**
 * Largest stamp value (24 bits).
 *
 * @since 0.1.0
 * @category constants
 */
export const maxStamp = 0xff_ffff

/**
 * Builds a slotstamp. `slot` must be 1..255 and `stamp` 0..0xFFFFFF; callers validate at the edge.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (slot: number, stamp: number): number => ((slot << 24) | (stamp & maxStamp)) >>> 0

/**
 * The slot (top 8 bits).
 *
 * @since 0.1.0
 * @category getters
 */
export const slot = (slotstamp: number): number => slotstamp >>> 24

/**
 * The stamp (low 24 bits).
 *
 * @since 0.1.0
 * @category getters
 */
export const stamp = (slotstamp: number): number => slotstamp & maxStamp

/**
 * True for a usable slotstamp: a 32-bit unsigned integer whose slot is not 0 (slot 0 is illegal).
 *
 * @since 0.1.0
 * @category guards
 */
export const isValid = (slotstamp: number): boolean =>
  Number.isInteger(slotstamp) && slotstamp >= 0x0100_0000 && slotstamp <= 0xffff_ffff

/**
 * The stamp for a creation time. The sources round the time down to even seconds first (ZIP time
 * resolution); since 300 is even that never changes the quotient, so plain division is exact.
 *
 * @since 0.1.0
 * @category constructors
 */
export const stampOf = (unixSeconds: number): number => Math.floor(unixSeconds / stampSeconds)

/**
 * True when `a` makes `b` obsolete: same slot, larger stamp.
 *
 * @since 0.1.0
 * @category predicates
 */
export const dominates = (a: number, b: number): boolean => slot(a) === slot(b) && stamp(a) > stamp(b)

/**
 * The file name of a managed file: `cdmss-SS-TTTTTT.mfz`, lowercase hex.
 *
 * @since 0.1.0
 * @category encoding
 */
export const fileName = (slotstamp: number): string =>
  `cdmss-${slot(slotstamp).toString(16).padStart(2, "0")}-${stamp(slotstamp).toString(16).padStart(6, "0")}.mfz`

const FILE_NAME = /^cdmss-([0-9a-f]{2})-([0-9a-f]{6})\.mfz$/

/**
 * The slotstamp named by a `cdmss-SS-TTTTTT.mfz` file name (lowercase hex only, so each slotstamp has one
 * name); slot 00 is refused.
 *
 * @since 0.1.0
 * @category decoding
 */
export const parseFileName = (name: string): Decoded<number> => {
  const match = FILE_NAME.exec(name)
  if (match === null) return fail("t2", "cdmss_name", 0, `"${name}" is not of the form cdmss-SS-TTTTTT.mfz`)
  const s = Number.parseInt(match[1]!, 16)
  if (s === 0) return fail("t2", "cdmss_name", 6, "slot 00 is illegal")
  return Result.succeed(make(s, Number.parseInt(match[2]!, 16)))
}
