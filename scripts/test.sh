#!/usr/bin/env bash
# The test command: installs what the tests need, builds everything (eBPF objects included) and
# runs every test: unit tests and the integration tests that start real meshd processes in
# network namespaces. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
scripts/sweep-test-leftovers.sh

cargo build --workspace --bins --locked
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log" || status=$?

# One closing line over every test binary cargo ran.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
     END { printf "all tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
