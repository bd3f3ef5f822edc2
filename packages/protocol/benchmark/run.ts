/**
 * `npm run bench` entry point (see README.md): the transport benchmark, the migration benchmark, the NBD
 * benchmark, then the dnet benchmark. `BENCH_SUITES=transport`, `BENCH_SUITES=migration`, `BENCH_SUITES=nbd` or
 * `BENCH_SUITES=dnet` runs one of them.
 */
const suites = (process.env.BENCH_SUITES ?? "transport,migration,nbd,dnet").split(",")
if (suites.includes("transport")) await import("./transport.ts")
if (suites.includes("migration")) await import("./migration.ts")
if (suites.includes("nbd")) await import("./nbd.ts")
if (suites.includes("dnet")) await import("./dnet.ts")
