/**
 * An SVG picture of a grid: one hexagon per tile at its staggered position (north up), coloured from green
 * (completed first) to red (completed last), grey for tiles that never completed, each labelled with its
 * completion time in seconds; the publishing tile is blue and outlined.
 *
 * @since 0.1.0
 */
import type * as Topology from "./Topology.ts"

/**
 * What to draw.
 *
 * @since 0.1.0
 * @category models
 */
export interface Picture {
  readonly grid: Topology.Grid
  /** Completion time per tile in seconds, `undefined` for tiles that did not complete. */
  readonly seconds: ReadonlyArray<number | undefined>
  readonly publisher: number
  readonly title: string
}

const R = 28
const W = Math.sqrt(3) * R

const escape = (s: string): string => s.replace(/[<>&"]/g, (c) => `&#${c.charCodeAt(0)};`)

const colour = (t: number | undefined, lo: number, hi: number): string => {
  if (t === undefined) return "#bbbbbb"
  const f = hi > lo ? (t - lo) / (hi - lo) : 0
  return `hsl(${Math.round(120 * (1 - f))}, 70%, 55%)`
}

/**
 * The SVG document.
 *
 * @since 0.1.0
 * @category rendering
 */
export const render = (picture: Picture): string => {
  const { grid, seconds } = picture
  // The publisher (time 0) gets its own colour, so the scale spans the other tiles.
  const done = seconds.filter((s, i): s is number => s !== undefined && i !== picture.publisher)
  const lo = done.length === 0 ? 0 : Math.min(...done)
  const hi = done.length === 0 ? 0 : Math.max(...done)
  const maxY = Math.max(...grid.positions.map((p) => p.y))
  const width = Math.max(Math.ceil((grid.width + 0.5) * W + W), 16 + Math.ceil(picture.title.length * 7.5))
  const height = Math.ceil((maxY + 1) * 1.5 * R + R + 40)
  const cells = grid.positions.map((p, i) => {
    const cx = W / 2 + (p.x / 2) * W + W / 2
    // y grows northward: draw north at the top.
    const cy = 40 + R + (maxY - p.y) * 1.5 * R
    const points = Array.from({ length: 6 }, (_, k) => {
      const a = (Math.PI / 180) * (60 * k - 30)
      return `${(cx + R * Math.cos(a)).toFixed(1)},${(cy + R * Math.sin(a)).toFixed(1)}`
    }).join(" ")
    const t = seconds[i]
    const stroke = i === picture.publisher ? ` stroke="#000" stroke-width="3"` : ` stroke="#fff" stroke-width="1"`
    const fill = i === picture.publisher ? "#5b8def" : colour(t, lo, hi)
    return `<polygon points="${points}" fill="${fill}"${stroke}/>` +
      `<text x="${cx.toFixed(1)}" y="${(cy + 4).toFixed(1)}" text-anchor="middle" font-size="11">${
        t === undefined ? "-" : t.toFixed(1)
      }</text>`
  })
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="#fafafa"/>`,
    `<text x="8" y="22" font-size="14">${escape(picture.title)}</text>`,
    ...cells,
    `</svg>`,
    ""
  ].join("\n")
}
