/**
 * How `tessera demo` runs its halves as processes of itself, and how a half notices that the demo which
 * started it is gone. The only place the demo touches the runtime's `process`.
 */
import * as Effect from "effect/Effect"

/** The part of Deno's global this module uses (absent on Node and Bun). */
interface DenoGlobal {
  readonly permissions: { readonly querySync: (descriptor: { readonly name: string }) => { readonly state: string } }
}

const DENO_PERMISSIONS = ["read", "write", "net", "env", "sys", "run", "ffi", "import"]

/**
 * Under Deno, `run` and the permissions this process was granted as a whole (Deno does not show its flags in
 * `execArgv`); nothing elsewhere. A permission granted only for some paths or hosts is not passed on: the
 * child then fails with Deno's own message instead of waiting for a prompt.
 */
const denoArgs = (): Array<string> => {
  const deno = (globalThis as { readonly Deno?: DenoGlobal }).Deno
  if (deno === undefined) return []
  const granted = DENO_PERMISSIONS.filter((name) => {
    try {
      return deno.permissions.querySync({ name }).state === "granted"
    } catch {
      return false
    }
  })
  return ["run", "--no-prompt", ...granted.map((name) => `--allow-${name}`)]
}

/**
 * The command line that runs this program again with `args` after `demo`: the same runtime, its options (less
 * a debugger's, whose port this process holds) and the same entry script, so it works from `npx tessera`,
 * `npm start` and `node .../bin.ts` alike, and under Bun and Deno.
 */
export const self = (args: ReadonlyArray<string>): { readonly command: string; readonly args: Array<string> } => {
  const process = globalThis.process
  const runtimeArgs = process.execArgv.filter((arg) => !arg.startsWith("--inspect"))
  return { command: process.execPath, args: [...denoArgs(), ...runtimeArgs, process.argv[1]!, "demo", ...args] }
}

/**
 * Completes when standard input ends or fails: the demo gives each half a pipe it never writes to, which the
 * operating system closes when the demo exits, however it exits. Interrupting this closes standard input, so it
 * does not keep the process alive afterwards.
 */
export const parentGone: Effect.Effect<void> = Effect.callback<void>((resume) => {
  const stdin = globalThis.process.stdin
  const done = () => resume(Effect.void)
  stdin.on("end", done)
  stdin.on("close", done)
  stdin.on("error", done)
  // Flowing, so the end is seen; whatever arrives is dropped.
  stdin.resume()
  return Effect.sync(() => {
    stdin.off("end", done)
    stdin.off("close", done)
    stdin.off("error", done)
    // Both: Deno keeps a destroyed but flowing stdin alive, and the process with it.
    stdin.pause()
    stdin.destroy()
  })
})
