/**
 * T2 tile directions: the 3-bit `dir8` field of a routed packet's byte 0, the 6-slot `dir6` numbering used
 * for per-link arrays, the two-letter codes, opposites, PRU placement and the doubled-x hex offsets used by
 * flash traffic and CDM source routes (spec t2 §1.3).
 *
 * Tiles sit in a staggered layout with six neighbours; North and South exist in the numbering but have no
 * link on a T2 tile, so writes toward them fail on a real tile and `isLink` says false.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/**
 * A `dir8` direction number, as carried in the low 3 bits of byte 0.
 *
 * @since 0.1.0
 * @category models
 */
export type Dir8 = 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7

/**
 * A `dir6` link index (ET=0, SE=1, SW=2, WT=3, NW=4, NE=5), used for per-link arrays and devices.
 *
 * @since 0.1.0
 * @category models
 */
export type Dir6 = 0 | 1 | 2 | 3 | 4 | 5

/**
 * North (no link on a T2 tile).
 *
 * @since 0.1.0
 * @category constants
 */
export const NT = 0 as const
/**
 * Northeast.
 *
 * @since 0.1.0
 * @category constants
 */
export const NE = 1 as const
/**
 * East.
 *
 * @since 0.1.0
 * @category constants
 */
export const ET = 2 as const
/**
 * Southeast.
 *
 * @since 0.1.0
 * @category constants
 */
export const SE = 3 as const
/**
 * South (no link on a T2 tile).
 *
 * @since 0.1.0
 * @category constants
 */
export const ST = 4 as const
/**
 * Southwest.
 *
 * @since 0.1.0
 * @category constants
 */
export const SW = 5 as const
/**
 * West.
 *
 * @since 0.1.0
 * @category constants
 */
export const WT = 6 as const
/**
 * Northwest.
 *
 * @since 0.1.0
 * @category constants
 */
export const NW = 7 as const

/**
 * Two-letter direction codes indexed by `dir8`.
 *
 * @since 0.1.0
 * @category constants
 */
export const codes = ["NT", "NE", "ET", "SE", "ST", "SW", "WT", "NW"] as const

/**
 * Schema of a two-letter direction code, for JSON and configuration edges.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Code = Schema.Literals(codes)

/**
 * @since 0.1.0
 * @category models
 */
export type Code = typeof Code.Type

/**
 * Full direction names indexed by `dir8`.
 *
 * @since 0.1.0
 * @category constants
 */
export const names = ["North", "Northeast", "East", "Southeast", "South", "Southwest", "West", "Northwest"] as const

/**
 * The six directions that have a link on a T2 tile, in `dir6` order (index = `dir6`).
 *
 * @since 0.1.0
 * @category constants
 */
export const links: ReadonlyArray<Dir8> = [ET, SE, SW, WT, NW, NE]

// dir8 -> dir6; -1 for NT/ST, which have no link.
const DIR6: ReadonlyArray<number> = [-1, 5, 0, 1, -1, 2, 3, 4]

/**
 * True for a number that is a valid `dir8` (an integer 0..7).
 *
 * @since 0.1.0
 * @category guards
 */
export const isDir8 = (n: number): n is Dir8 => Number.isInteger(n) && n >= 0 && n <= 7

/**
 * True when the direction has a link on a T2 tile (everything but NT and ST).
 *
 * @since 0.1.0
 * @category guards
 */
export const isLink = (dir: Dir8): boolean => (dir & 3) !== 0

/**
 * The two-letter code of a direction.
 *
 * @since 0.1.0
 * @category getters
 */
export const code = (dir: Dir8): Code => codes[dir]

/**
 * The full name of a direction.
 *
 * @since 0.1.0
 * @category getters
 */
export const name = (dir: Dir8): (typeof names)[number] => names[dir]

/**
 * The `dir8` number of a two-letter code.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromCode = (c: Code): Dir8 => codes.indexOf(c) as Dir8

/**
 * The direction a cable from `dir` arrives from on the neighbour: `(dir + 4) mod 8`.
 *
 * @since 0.1.0
 * @category getters
 */
export const opposite = (dir: Dir8): Dir8 => ((dir + 4) & 7) as Dir8

/**
 * The `dir6` link index of a direction, or `undefined` for NT/ST.
 *
 * @since 0.1.0
 * @category getters
 */
export const toDir6 = (dir: Dir8): Dir6 | undefined => {
  const d6 = DIR6[dir]!
  return d6 < 0 ? undefined : d6 as Dir6
}

/**
 * The `dir8` direction of a `dir6` link index.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromDir6 = (dir6: Dir6): Dir8 => links[dir6]!

/**
 * A step in doubled-x hex coordinates: E/W move 2 in x, diagonals 1 in x and 1 in y; y grows northward.
 *
 * @since 0.1.0
 * @category models
 */
export interface Offset {
  readonly x: number
  readonly y: number
}

const OFFSETS: ReadonlyArray<Offset> = [
  { x: 0, y: 1 },
  { x: 1, y: 1 },
  { x: 2, y: 0 },
  { x: 1, y: -1 },
  { x: 0, y: -1 },
  { x: -1, y: -1 },
  { x: -2, y: 0 },
  { x: -1, y: 1 }
]

/**
 * The hex offset of the neighbour in a direction (NT/ST give (0,±1), which no T2 link uses).
 *
 * @since 0.1.0
 * @category getters
 */
export const offset = (dir: Dir8): Offset => OFFSETS[dir]!

/**
 * Which PRU bit-bangs a link and its index (`prudir`) on that PRU.
 *
 * @since 0.1.0
 * @category models
 */
export interface PruLink {
  readonly pru: 0 | 1
  readonly prudir: 0 | 1 | 2
}

// PRU0 serves ET/SE/SW, PRU1 serves WT/NW/NE, each in prudir order 0..2.
const PRU_DIRS: readonly [ReadonlyArray<Dir8>, ReadonlyArray<Dir8>] = [[ET, SE, SW], [WT, NW, NE]]

/**
 * The PRU and `prudir` serving a direction, or `undefined` for NT/ST.
 *
 * @since 0.1.0
 * @category getters
 */
export const pruLink = (dir: Dir8): PruLink | undefined => {
  const d6 = DIR6[dir]!
  return d6 < 0 ? undefined : { pru: d6 < 3 ? 0 : 1, prudir: (d6 % 3) as 0 | 1 | 2 }
}

/**
 * The direction a PRU's `prudir` serves; used to place the PRU's `'P'`/`'F'`/`'T'` link reports.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromPruLink = (pru: 0 | 1, prudir: 0 | 1 | 2): Dir8 => PRU_DIRS[pru][prudir]!
