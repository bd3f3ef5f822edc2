#!/usr/bin/env node
import * as Module from "node:module"

// Node keeps the type-stripped and compiled modules in its compile cache between runs, which takes about a
// third off every start of the command. The program is imported after, so its modules go through the cache;
// runtimes without the cache (Bun, Deno) just start.
Module.enableCompileCache?.()
await import("./internal/launch.ts")
