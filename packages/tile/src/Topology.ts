/**
 * Where tiles sit and how they are cabled: the six linked directions with their opposites and doubled-x hex
 * offsets (spec t2 §1.3, restated from `@tessera/codec`'s `T2Direction`), and rectangular grids of tiles in
 * the staggered layout T2 uses. Row `r` (y grows northward) holds tiles at x = 2c + (r mod 2), so East/West
 * neighbours are 2 apart in x and the four diagonals 1 in x and 1 in y.
 *
 * Hop distance between two positions is the hex distance in doubled-x coordinates:
 * |Δy| + max(0, (|Δx| − |Δy|) / 2).
 *
 * @since 0.1.0
 */
import * as T2Direction from "@tessera/codec/T2Direction"

/**
 * A tile position in doubled-x hex coordinates.
 *
 * @since 0.1.0
 * @category models
 */
export interface Position {
  readonly x: number
  readonly y: number
}

/**
 * One cable of a grid: tile `a`'s direction `dir` joins tile `b`'s opposite direction.
 *
 * @since 0.1.0
 * @category models
 */
export interface Edge {
  readonly a: number
  readonly b: number
  readonly dir: T2Direction.Dir8
}

/**
 * A rectangular grid of `width × height` tiles, indexed row-major from the south-west corner.
 *
 * @since 0.1.0
 * @category models
 */
export interface Grid {
  readonly width: number
  readonly height: number
  readonly positions: ReadonlyArray<Position>
  readonly edges: ReadonlyArray<Edge>
}

/**
 * The six linked directions in `dir6` order.
 *
 * @since 0.1.0
 * @category constants
 */
export const directions: ReadonlyArray<T2Direction.Dir8> = T2Direction.links

/**
 * The direction a cable from `dir` arrives from on the other tile.
 *
 * @since 0.1.0
 * @category getters
 */
export const opposite = T2Direction.opposite

/**
 * The doubled-x hex offset of the neighbour in a direction.
 *
 * @since 0.1.0
 * @category getters
 */
export const offset = T2Direction.offset

/**
 * The position one step from `p` toward `dir`.
 *
 * @since 0.1.0
 * @category combinators
 */
export const step = (p: Position, dir: T2Direction.Dir8): Position => {
  const o = offset(dir)
  return { x: p.x + o.x, y: p.y + o.y }
}

/**
 * Hops between two positions of the staggered layout.
 *
 * @since 0.1.0
 * @category getters
 */
export const distance = (a: Position, b: Position): number => {
  const dx = Math.abs(a.x - b.x)
  const dy = Math.abs(a.y - b.y)
  return dy + Math.max(0, (dx - dy) / 2)
}

/**
 * The position of tile `(column, row)`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const position = (column: number, row: number): Position => ({ x: 2 * column + (row & 1), y: row })

/**
 * A `width × height` grid with every neighbouring pair cabled once.
 *
 * @since 0.1.0
 * @category constructors
 */
export const grid = (width: number, height: number): Grid => {
  const positions: Array<Position> = []
  const index = new Map<string, number>()
  for (let row = 0; row < height; row++) {
    for (let column = 0; column < width; column++) {
      const p = position(column, row)
      index.set(`${p.x},${p.y}`, positions.length)
      positions.push(p)
    }
  }
  const edges: Array<Edge> = []
  // ET, NE and NW reach every neighbour pair exactly once.
  const forward: ReadonlyArray<T2Direction.Dir8> = [T2Direction.ET, T2Direction.NE, T2Direction.NW]
  positions.forEach((p, a) => {
    for (const dir of forward) {
      const q = step(p, dir)
      const b = index.get(`${q.x},${q.y}`)
      if (b !== undefined) edges.push({ a, b, dir })
    }
  })
  return { width, height, positions, edges }
}

/**
 * The most hops from tile `from` to any tile of the grid.
 *
 * @since 0.1.0
 * @category getters
 */
export const eccentricity = (g: Grid, from: number): number =>
  g.positions.reduce((m, p) => Math.max(m, distance(g.positions[from]!, p)), 0)

/**
 * The grid's diameter: the most hops between any two tiles.
 *
 * @since 0.1.0
 * @category getters
 */
export const diameter = (g: Grid): number => g.positions.reduce((m, _, i) => Math.max(m, eccentricity(g, i)), 0)

/**
 * Parses `WxH` (e.g. `6x6`), each side 1..64.
 *
 * @since 0.1.0
 * @category constructors
 */
export const parseSize = (text: string): { readonly width: number; readonly height: number } | undefined => {
  const m = /^(\d{1,2})x(\d{1,2})$/.exec(text.trim())
  if (m === null) return undefined
  const width = Number(m[1])
  const height = Number(m[2])
  return width >= 1 && height >= 1 && width <= 64 && height <= 64 ? { width, height } : undefined
}
