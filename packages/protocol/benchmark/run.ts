/**
 * `npm run bench` entry point (see README.md): the transport benchmark, then the migration benchmark.
 * `BENCH_SUITES=transport` or `BENCH_SUITES=migration` runs one of them.
 */
const suites = (process.env.BENCH_SUITES ?? "transport,migration").split(",")
if (suites.includes("transport")) await import("./transport.ts")
if (suites.includes("migration")) await import("./migration.ts")
