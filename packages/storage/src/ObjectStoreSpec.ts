/**
 * Object store specs: how a user names the backend of a dnet node on the command line (`--backend`).
 * `memory` (objects in this process), `file:DIR` (one file per object, `FileStore`), `blob:DIR` (one append-only
 * log with an index in memory, `BlobStore`).
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import type * as Scope from "effect/Scope"
import * as BlobStore from "./BlobStore.ts"
import { InvalidSpec } from "./DeviceSpec.ts"
import * as FileStore from "./FileStore.ts"
import * as MemoryStore from "./MemoryStore.ts"
import type { Store } from "./ObjectStore.ts"
import type * as StorageError from "./StorageError.ts"

/**
 * A parsed object store spec.
 *
 * @since 0.1.0
 * @category models
 */
export type ObjectStoreSpec =
  | { readonly _tag: "Memory" }
  | { readonly _tag: "File"; readonly dir: string }
  | { readonly _tag: "Blob"; readonly dir: string }

/**
 * Parses `memory`, `file:DIR` or `blob:DIR`; a spec that does not parse is an `InvalidSpec` (the error of
 * device specs).
 *
 * @since 0.1.0
 * @category parsing
 */
export const parse = (input: string): Result.Result<ObjectStoreSpec, InvalidSpec> => {
  if (input === "memory" || input === "memory:") return Result.succeed({ _tag: "Memory" })
  const colon = input.indexOf(":")
  const scheme = colon === -1 ? input : input.slice(0, colon)
  const dir = colon === -1 ? "" : input.slice(colon + 1)
  if (scheme !== "file" && scheme !== "blob") {
    return Result.fail(new InvalidSpec({ input, detail: "expected memory, file:DIR or blob:DIR" }))
  }
  if (dir === "") return Result.fail(new InvalidSpec({ input, detail: `${scheme}: needs a directory` }))
  return Result.succeed(scheme === "file" ? { _tag: "File", dir } : { _tag: "Blob", dir })
}

/**
 * The canonical string of a spec; `parse(format(s))` gives `s` back.
 *
 * @since 0.1.0
 * @category formatting
 */
export const format = (spec: ObjectStoreSpec): string =>
  spec._tag === "Memory" ? "memory" : `${spec._tag === "File" ? "file" : "blob"}:${spec.dir}`

/**
 * The directory a spec keeps its objects in, if any (a node keeps its ring ids next to them).
 *
 * @since 0.1.0
 * @category getters
 */
export const directory = (spec: ObjectStoreSpec): string | undefined => spec._tag === "Memory" ? undefined : spec.dir

/**
 * Opens (creating the directory if needed) the store a spec names, closed with the current scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const open = (spec: ObjectStoreSpec): Effect.Effect<Store, StorageError.StorageError, Scope.Scope> => {
  switch (spec._tag) {
    case "Memory":
      return MemoryStore.make()
    case "File":
      return FileStore.make({ root: spec.dir })
    case "Blob":
      return Effect.map(BlobStore.make({ dir: spec.dir }), (store): Store => store)
  }
}
