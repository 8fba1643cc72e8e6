#!/usr/bin/env bash
# Runs the parser's property tests for many cases (default 10,000,000 per property) in a release
# build and prints how many cases ran, how many yielded events, and how long it took.
# Usage: scripts/proptest-10m.sh [CASES]
set -euo pipefail
cd "$(dirname "$0")/.."
cases=${1:-10000000}
cargo build --release --tests --quiet
start=$(date +%s)
TARPIT_PROPTEST_CASES=$cases cargo test --release --quiet --test parser_properties -- --nocapture 2>&1 |
  grep -E 'cases=|test result|panicked|is in no|line:'
echo "elapsed: $(( $(date +%s) - start )) s for $cases cases per property"
