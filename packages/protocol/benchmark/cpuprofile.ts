/**
 * Summarises a V8 `.cpuprofile` (from `BENCH_CPU_PROF`, or `node --cpu-prof`): where the time went, as self
 * time per function and per file, and total (inclusive) time per function, each the top `--top` (default 25).
 *
 *   node benchmark/cpuprofile.ts PROFILE.cpuprofile [--top 40]
 */
import * as Fs from "node:fs"

interface ProfileNode {
  readonly id: number
  readonly callFrame: {
    readonly functionName: string
    readonly url: string
    readonly lineNumber: number
  }
  readonly children?: ReadonlyArray<number>
}

interface Profile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly startTime: number
  readonly endTime: number
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

const [path] = process.argv.slice(2).filter((arg) => arg.endsWith(".cpuprofile"))
if (path === undefined) {
  console.error("usage: node benchmark/cpuprofile.ts PROFILE.cpuprofile [--top N]")
  process.exit(2)
}
const topIndex = process.argv.indexOf("--top")
const top = topIndex === -1 ? 25 : Number(process.argv[topIndex + 1])
const profile = JSON.parse(Fs.readFileSync(path, "utf8")) as Profile

const byId = new Map(profile.nodes.map((node) => [node.id, node]))
const parent = new Map<number, number>()
for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)

const file = (url: string) => {
  if (url === "") return "(native / VM)"
  const packages = url.indexOf("/packages/")
  if (packages !== -1) return url.slice(packages + 1)
  const modules = url.lastIndexOf("/node_modules/")
  return modules !== -1 ? url.slice(modules + 14) : url.replace(/^file:\/\//, "")
}
const label = (node: ProfileNode) => {
  const { functionName, lineNumber, url } = node.callFrame
  return url === ""
    ? `${functionName || "(anonymous)"}`
    : `${functionName || "(anonymous)"} ${file(url)}:${lineNumber + 1}`
}

const self = new Map<string, number>()
const selfByFile = new Map<string, number>()
const total = new Map<string, number>()
let sampled = 0
for (let i = 0; i < profile.samples.length; i++) {
  // A sample's time is the delta to the next sample (the last one gets none).
  const micros = profile.timeDeltas[i + 1] ?? 0
  const node = byId.get(profile.samples[i]!)!
  sampled += micros
  self.set(label(node), (self.get(label(node)) ?? 0) + micros)
  const where = file(node.callFrame.url)
  selfByFile.set(where, (selfByFile.get(where) ?? 0) + micros)
  const seen = new Set<string>()
  for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
    const key = label(byId.get(id)!)
    if (seen.has(key)) continue
    seen.add(key)
    total.set(key, (total.get(key) ?? 0) + micros)
  }
}

const print = (title: string, entries: Map<string, number>) => {
  console.log(`\n${title}`)
  const rows = [...entries].toSorted((a, b) => b[1] - a[1]).slice(0, top)
  for (const [name, micros] of rows) {
    console.log(
      `${(micros / 1e3).toFixed(0).padStart(8)} ms ${(100 * micros / sampled).toFixed(1).padStart(5)} %  ${name}`
    )
  }
}

console.log(`${path}: ${(sampled / 1e3).toFixed(0)} ms sampled`)
print("self time by function", self)
print("self time by file", selfByFile)
print("total (inclusive) time by function", total)
