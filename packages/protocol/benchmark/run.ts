/**
 * `npm run bench` entry point: the transport benchmark (see README.md).
 */
await import("./transport.ts")
