#!/usr/bin/env bash
# The demo: a local meshd cluster in network namespaces with real clients (see the README).
# Pass --hold to keep it up until Ctrl-C. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
scripts/sweep-test-leftovers.sh

cargo build --workspace --bins --locked
exec target/debug/demo "$@"
