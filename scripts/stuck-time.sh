#!/usr/bin/env bash
# Measures how long one delivery attempt of a real sender MTA with its DEFAULT timers stays
# connected to tarpit's stall listener (default trickle interval), in the end-to-end lab of
# tests/e2e_postfix.rs or tests/e2e_exim.rs (network namespaces, the MX, tarpitd, the sender MTA in
# `spammer`).
# Not part of CI: a default Postfix may be held for its 5 h daemon_timeout.
#
#   scripts/stuck-time.sh [--sender postfix|exim] [--limit SECONDS]
#
# Prints the figure as a `stuck-time:` line: either how long the attempt stayed connected before
# the sender's own limit ended it (with the sender's log lines saying which limit), or "still
# connected after N s" when --limit (default 21600) is reached first. Needs root.
set -euo pipefail

sender=postfix
limit=21600
while [ $# -gt 0 ]; do
  case "$1" in
    --sender) sender="${2:?--sender needs postfix or exim}"; shift 2 ;;
    --limit) limit="${2:?--limit needs seconds}"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$sender" in
  postfix|exim) ;;
  *) echo "--sender must be postfix or exim, not $sender" >&2; exit 2 ;;
esac
if ! [[ "$limit" =~ ^[0-9]+$ ]] || [ "$limit" -lt 1 ]; then
  echo "--limit must be a positive number of seconds, not $limit" >&2
  exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "needs root (network namespaces, nftables, the MTAs)" >&2
  exit 1
fi

cd "$(dirname "$0")/.."
# Build, then run the test binary itself rather than through `cargo test`, which would hold the
# build directory's lock for hours.
exe=$(cargo test --test "e2e_${sender}" --no-run 2>&1 | tee /dev/stderr | sed -n 's/.*Executable .*(\(.*\))$/\1/p')
if [ ! -x "$exe" ]; then
  echo "could not build the e2e_${sender} test binary" >&2
  exit 1
fi
export TARPIT_STUCK_LIMIT="$limit"
# The test prints its progress and figure on standard error as `stuck-time:` lines.
"$exe" --ignored --exact --nocapture "stuck_time_of_a_default_${sender}_sender" 2>&1 |
  grep --line-buffered -E '^stuck-time:|panicked|^test result|skipped'
