#!/usr/bin/env bash
# Benchmarks the stall listener on loopback and prints, per run:
#   - userspace bytes per held connection (listener VmRSS delta / N),
#   - kernel memory per connection: the slab caches a socket uses (both ends of each connection:
#     TCP, TCPv6, sock_inode_cache, filp, eventpoll_epi, skbuff_head_cache, lsm_file_cache; not
#     dentry, which the kernel reclaims lazily and makes the figure noisy), the TCP and TCPv6
#     objects alone (client sockets are TCP, the listener's accepted sockets TCPv6 because it
#     listens on [::]), and TCP buffer memory from /proc/net/sockstat and `ss -m`,
#   - listener CPU (utime+stime) over CPU_SECONDS, as % of one core.
# Runs: `tarpitd --stall-only` holding 19,000 and 4,096 silent connections at the default 10 s
# interval; then, at 4,096 connections, the listener with and without the socket buffer tuning,
# with silent clients and with clients that each write SEND bytes (a client that talks anyway).
#
# Clients run in separate processes (examples/stall_bench.rs), from source addresses 127.1.0.x.
# Needs: root (for /proc/slabinfo), ss (iproute2), an open-file hard limit above 19,100.
# Usage: scripts/bench-stall.sh            (env: PORT=2626 CPU_SECONDS=60 SEND=65536 N_BIG=19000)
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${PORT:-2626}
CPU_SECONDS=${CPU_SECONDS:-60}
SEND=${SEND:-65536}
N_BIG=${N_BIG:-19000}
N_SMALL=${N_SMALL:-4096}
SETTLE=${SETTLE:-15}

cargo build --release --quiet --bin tarpitd --example stall_bench
TARPITD=target/release/tarpitd
HELPER=target/release/examples/stall_bench
ulimit -n "$(ulimit -Hn)"

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

cat > "$WORK/tarpit.yaml" <<EOF
stall:
  listen: ["[::]:$PORT"]
  interval: 10s
  message: example.org tarpits this host for sending unwanted mail; see https://example.org/tarpit
  max_per_ip: 20000
EOF

established() { ss -Htn state established "( sport = :$PORT )" | wc -l; }
slab_bytes() { awk -v n="$1" '$1 == n { print $2 * $4 }' /proc/slabinfo; }
SOCKET_CACHES=" TCP TCPv6 sock_inode_cache filp eventpoll_epi skbuff_head_cache lsm_file_cache "
socket_slab_bytes() { awk -v l="$SOCKET_CACHES" 'index(l, " " $1 " ") { s += $2 * $4 } END { print s + 0 }' /proc/slabinfo; }
sockstat_mem_pages() { awk '/^TCP:/ { for (i = 1; i < NF; i++) if ($i == "mem") print $(i + 1) }' /proc/net/sockstat; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
recvq_total() { ss -Htn state established "( sport = :$PORT )" | awk '{ s += $1 } END { print s + 0 }'; }
# Buffer memory charged to the listener's sockets: rmem_alloc + wmem_queued + forward_alloc.
listener_skmem() {
  ss -Htmn state established "( sport = :$PORT )" | grep -o 'skmem:([^)]*)' |
    awk -F'[(,)]' '{ for (i = 2; i < NF; i++) { v = substr($i, 2) + 0
      if ($i ~ /^r[0-9]/ || $i ~ /^w[0-9]/ || $i ~ /^f[0-9]/) s += v } } END { print s + 0 }'
}

# snapshot NAME PID: records the figures used below into $WORK/NAME.
snapshot() {
  {
    echo "rss_kb=$(rss_kb "$2")"
    echo "slab=$(socket_slab_bytes)"
    echo "tcp=$(slab_bytes TCP)"
    echo "tcpv6=$(slab_bytes TCPv6)"
    echo "mem_pages=$(sockstat_mem_pages)"
    echo "recvq=$(recvq_total)"
    echo "skmem=$(listener_skmem)"
  } > "$WORK/$1"
}
get() { awk -F= -v k="$2" '$1 == k { print $2 }' "$WORK/$1"; }

# run LABEL N SEND CPU_SECONDS LISTENER_CMD...
run() {
  local label=$1 n=$2 send=$3 cpu=$4; shift 4
  "$@" > "$WORK/listener.log" 2>&1 &
  local lp=$!; PIDS+=("$lp")
  for _ in $(seq 100); do ss -Hltn "( sport = :$PORT )" | grep -q . && break; sleep 0.1; done
  sleep 1
  snapshot before "$lp"
  local per=$(( (n + 1) / 2 )) cps=()
  for i in 0 1; do
    local count=$(( i == 0 ? per : n - per ))
    "$HELPER" clients --count "$count" --sources 16 --first-source $((i * 16)) \
      --target "127.0.0.1:$PORT" --send "$send" > "$WORK/clients$i.log" 2>&1 &
    cps+=($!); PIDS+=($!)
  done
  for _ in $(seq 600); do [ "$(established)" -ge "$n" ] && break; sleep 0.5; done
  local held; held=$(established)
  sleep "$SETTLE"
  snapshot after "$lp"
  local pct="-"
  if [ "$cpu" -gt 0 ]; then
    local t1 t2; t1=$(cpu_ticks "$lp"); sleep "$cpu"; t2=$(cpu_ticks "$lp")
    pct=$(awk -v d=$((t2 - t1)) -v hz="$(getconf CLK_TCK)" -v s="$cpu" 'BEGIN { printf "%.2f", 100 * d / hz / s }')
  fi
  kill "${cps[@]}" 2>/dev/null || true; wait "${cps[@]}" 2>/dev/null || true
  sleep 1
  kill -TERM "$lp"; wait "$lp" 2>/dev/null || true
  awk -v label="$label" -v n="$held" -v pct="$pct" \
    -v r0="$(get before rss_kb)" -v r1="$(get after rss_kb)" \
    -v s0="$(get before slab)" -v s1="$(get after slab)" \
    -v c0="$(get before tcp)" -v c1="$(get after tcp)" \
    -v l0="$(get before tcpv6)" -v l1="$(get after tcpv6)" \
    -v m0="$(get before mem_pages)" -v m1="$(get after mem_pages)" \
    -v q="$(get after recvq)" -v k="$(get after skmem)" 'BEGIN {
      printf "%-36s %6d %7.0f %9.0f %8.0f %8.0f %9.0f %8.0f %8.0f %6s\n", label, n,
        (r1 - r0) * 1024 / n, (s1 - s0) / n, (l1 - l0) / n, (c1 - c0) / n,
        (m1 - m0) * 4096 / n, k / n, q / n, pct
    }'
  sleep 10
}

printf "%-36s %6s %7s %9s %8s %8s %9s %8s %8s %6s\n" "run" "held" "user" "slab" "TCPv6" "TCP" \
  "sockmem" "lsn buf" "recvq" "cpu %"
printf "%-36s %6s %7s %9s %8s %8s %9s %8s %8s %6s\n" "" "" "B/conn" "B/conn" "B/conn" "B/conn" \
  "B/conn" "B/conn" "B/conn" "1 core"
run "tarpitd, silent, tuned" "$N_BIG" 0 "$CPU_SECONDS" "$TARPITD" --stall-only --config "$WORK/tarpit.yaml"
run "tarpitd, silent, tuned" "$N_SMALL" 0 "$CPU_SECONDS" "$TARPITD" --stall-only --config "$WORK/tarpit.yaml"
run "silent, kernel-default buffers" "$N_SMALL" 0 0 "$HELPER" listen --config "$WORK/tarpit.yaml" --kernel-default-buffers
run "silent, tuned" "$N_SMALL" 0 0 "$HELPER" listen --config "$WORK/tarpit.yaml"
run "send ${SEND}B, kernel-default buffers" "$N_SMALL" "$SEND" 0 "$HELPER" listen --config "$WORK/tarpit.yaml" --kernel-default-buffers
run "send ${SEND}B, tuned" "$N_SMALL" "$SEND" 0 "$HELPER" listen --config "$WORK/tarpit.yaml"
echo "user: listener VmRSS delta / held; slab: socket slab caches (both ends, see the top of this"
echo "script) delta / held; TCPv6: listener-side socket objects; TCP: client-side socket objects;"
echo "sockmem: /proc/net/sockstat TCP mem delta (both ends); lsn buf: buffer memory charged to the"
echo "listener's sockets (ss skmem r+w+f); recvq: bytes the clients sent that sit unread at the listener."
echo "cpu: whole-process utime+stime. On loopback the kernel delivers each byte into the client socket"
echo "(softirq) in the listener's context and charges it to the listener; perf put that at about half."
