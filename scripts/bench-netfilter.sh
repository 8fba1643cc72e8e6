#!/usr/bin/env bash
# Benchmarks the netfilter driver against the nft CLI inside a private network namespace
# (never the host's ruleset). Needs root and the nft command. Usage:
#   scripts/bench-netfilter.sh [ELEMENTS_IN_BIG_BATCH]   (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "bench-netfilter: needs root (network namespaces and nftables)" >&2
  exit 1
fi
cargo build --release --example bench_netfilter
bin=target/release/examples/bench_netfilter
echo "kernel $(uname -r), $(nft --version)"
# /usr/bin/time reports the whole process (peak RSS includes the 1M batch).
if [ -x /usr/bin/time ]; then
  unshare -n /usr/bin/time -f "whole process: %e s wall, %M KiB max RSS" "$bin" "$@"
else
  unshare -n "$bin" "$@"
fi
