#!/usr/bin/env bash
# Runs every test on Node, and the runtime-neutral packages' tests again under Bun and Deno, then prints one
# closing line that sums the three vitest JSON reports: "N passed, N failed". Exits non-zero if any run failed.
set -uo pipefail
cd "$(dirname "$0")/.."
export TURBO_TELEMETRY_DISABLED=1 DO_NOT_TRACK=1 DENO_NO_UPDATE_CHECK=1
PATH="$PWD/node_modules/.bin:$PATH"
reports=.vitest-reports
rm -rf "$reports" && mkdir -p "$reports"
status=0

# Packages whose tests must pass on every runtime (no peers such as nbdkit that only the Node run sets up).
portable=(--project codec --project storage)

echo "== node $(node --version)"
vitest run --reporter=default --reporter=json --outputFile.json="$reports/node.json" || status=1
echo "== bun $(bun --version)"
bunx --bun vitest run "${portable[@]}" --reporter=default --reporter=json --outputFile.json="$reports/bun.json" || status=1
echo "== deno $(deno --version | head -n 1)"
deno run -A node_modules/vitest/vitest.mjs run "${portable[@]}" --reporter=default --reporter=json \
  --outputFile.json="$reports/deno.json" || status=1

node -e '
const fs = require("node:fs")
let passed = 0, failed = 0
for (const runtime of ["node", "bun", "deno"]) {
  const file = `${process.argv[1]}/${runtime}.json`
  if (!fs.existsSync(file)) { console.error(`no report from ${runtime}`); failed += 1; continue }
  const report = JSON.parse(fs.readFileSync(file, "utf8"))
  passed += report.numPassedTests
  failed += report.numFailedTests + (report.success || report.numFailedTests ? 0 : 1)
}
console.log(`${passed} passed, ${failed} failed`)
process.exit(failed === 0 ? 0 : 1)
' "$reports" || status=1
exit $status
