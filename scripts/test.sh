#!/usr/bin/env bash
# The test command: installs what the tests need, builds everything (eBPF objects included) and
# runs every test: unit tests and the integration tests that start real meshd processes in
# network namespaces. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
scripts/sweep-test-leftovers.sh

cargo build --workspace --bins --locked
cargo test --workspace --locked
