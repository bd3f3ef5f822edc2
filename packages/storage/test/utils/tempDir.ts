/**
 * A temporary directory for device files, removed when the test's scope closes (after the devices made in it
 * have closed, since those were made later in the same scope).
 */
import { Effect } from "effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"

export const tempDir = Effect.acquireRelease(
  Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "tessera-storage-"))),
  (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
)
