#!/usr/bin/env bash
# Parse throughput: tarpit against fail2ban-regex (Debian's fail2ban, stock postfix filter) on the
# same generated 1,000,000-line Postfix log (~10% rejections), plus an Exim log, one thread.
# Prints lines/s and MB/s for tarpit's parser (in memory, best of 3), for the whole
# `tarpitctl replay --events` command (file in, JSON out), and for fail2ban-regex, and the ratio.
# Usage: scripts/bench-parse.sh [LINES]   (needs python3; fail2ban for the comparison)
set -euo pipefail
cd "$(dirname "$0")/.."
lines=${1:-1000000}
dir=${TARPIT_BENCH_DIR:-/tmp/tarpit-bench}
mkdir -p "$dir"
for mta in postfix exim; do
  f="$dir/$mta-$lines.log"
  [ -s "$f" ] || python3 scripts/gen_maillog.py --mta "$mta" --lines "$lines" --seed 42 "$f"
done
cargo build --release --quiet --bins --example parse_file

secs() { /usr/bin/time -f '%e %M' "$@" 2>&1 >/dev/null | tail -n1; }
rate() { python3 -c "import sys; l,b,s=map(float,sys.argv[1:]); print(f'{l/s/1e6:.2f} M lines/s, {b/s/1e6:.0f} MB/s')" "$@"; }

for mta in postfix exim; do
  f="$dir/$mta-$lines.log"
  bytes=$(stat -c %s "$f")
  echo "== $mta: $f ($lines lines, $bytes bytes)"
  ./target/release/examples/parse_file "$f" 3
  read -r t rss < <(secs ./target/release/tarpitctl replay --events --mta "$mta" "$f")
  echo "tarpitctl replay --events: ${t} s ($(rate "$lines" "$bytes" "$t")), peak RSS ${rss} KiB"
done

f="$dir/postfix-$lines.log"
bytes=$(stat -c %s "$f")
if command -v fail2ban-regex >/dev/null && [ -f /etc/fail2ban/filter.d/postfix.conf ]; then
  read -r f2b rss < <(secs fail2ban-regex -r --usedns=no "$f" /etc/fail2ban/filter.d/postfix.conf)
  echo "fail2ban-regex postfix: ${f2b} s ($(rate "$lines" "$bytes" "$f2b")), peak RSS ${rss} KiB"
  read -r ours _ < <(secs ./target/release/tarpitctl replay --events --mta postfix "$f")
  parse=$(./target/release/examples/parse_file "$f" 3 | sed -n 's/.*best of 3: \([0-9.]*\) s.*/\1/p')
  python3 -c "import sys; a,b,c=map(float,sys.argv[1:]); print(f'ratio to fail2ban-regex (same file, same run): whole process {a/b:.0f}x (tarpitctl replay --events, all cores); parser alone, one thread {a/c:.0f}x')" "$f2b" "$ours" "$parse"
else
  echo "fail2ban-regex not installed (apt-get install fail2ban): no comparison"
fi
