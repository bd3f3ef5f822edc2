/**
 * `npm run bench` entry point (see README.md): the transport benchmark, the migration benchmark, the NBD
 * benchmark, the dnet benchmark, then the circuits benchmark. `BENCH_SUITES=transport`, `BENCH_SUITES=migration`,
 * `BENCH_SUITES=nbd`, `BENCH_SUITES=dnet` or `BENCH_SUITES=circuits` runs one of them.
 */
const suites = (process.env.BENCH_SUITES ?? "transport,migration,nbd,dnet,circuits").split(",")
if (suites.includes("transport")) await import("./transport.ts")
if (suites.includes("migration")) await import("./migration.ts")
if (suites.includes("nbd")) await import("./nbd.ts")
if (suites.includes("dnet")) await import("./dnet.ts")
if (suites.includes("circuits")) await import("./circuits.ts")
