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
#
# With VETH=1 only the two tarpitd runs are made, with the listener and the clients in two
# private network namespaces joined by a veth pair (198.51.100.1 and .10-.41), the listener
# pinned to CPU 0 and receive processing steered to CPU 1 (RPS), as a NIC would keep the clients'
# side off the listener's CPU. On loopback the kernel delivers each trickled byte into the client
# socket in the listener's own context (softirq) and charges that work to the listener.
#
# Needs: root (for /proc/slabinfo and VETH=1), ss and ip (iproute2), an open-file hard limit
# above 19,100; VETH=1 needs 2 CPUs.
# Usage: scripts/bench-stall.sh   (env: PORT=2626 CPU_SECONDS=60 SEND=65536 N_BIG=19000 VETH=0)
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${PORT:-2626}
CPU_SECONDS=${CPU_SECONDS:-60}
SEND=${SEND:-65536}
N_BIG=${N_BIG:-19000}
N_SMALL=${N_SMALL:-4096}
SETTLE=${SETTLE:-15}
VETH=${VETH:-0}

cargo build --release --quiet --bin tarpitd --example stall_bench
TARPITD=target/release/tarpitd
HELPER=target/release/examples/stall_bench
ulimit -n "$(ulimit -Hn)"

WORK=$(mktemp -d)
PIDS=()
LNS=()      # command prefix that runs in the listener's namespace (none on loopback)
CNS=()      # same for the clients
LPIN=()     # CPU pinning of the listener
TARGET_IP=127.0.0.1
SOURCE_BASE=127.1.0.0
NETNS_L=tarpit-bench-l
NETNS_C=tarpit-bench-c
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$VETH" = 1 ]; then ip netns del "$NETNS_L" 2>/dev/null || true; ip netns del "$NETNS_C" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

if [ "$VETH" = 1 ]; then
  ip netns add "$NETNS_L"
  ip netns add "$NETNS_C"
  ip link add tpb-l netns "$NETNS_L" type veth peer name tpb-c netns "$NETNS_C"
  ip -n "$NETNS_L" addr add 198.51.100.1/24 dev tpb-l
  for i in $(seq 10 41); do ip -n "$NETNS_C" addr add "198.51.100.$i/24" dev tpb-c; done
  for ns in "$NETNS_L" "$NETNS_C"; do ip -n "$ns" link set lo up; done
  ip -n "$NETNS_L" link set tpb-l up
  ip -n "$NETNS_C" link set tpb-c up
  ip netns exec "$NETNS_L" sh -c 'echo 2 > /sys/class/net/tpb-l/queues/rx-0/rps_cpus'
  ip netns exec "$NETNS_C" sh -c 'echo 2 > /sys/class/net/tpb-c/queues/rx-0/rps_cpus'
  LNS=(ip netns exec "$NETNS_L")
  CNS=(ip netns exec "$NETNS_C")
  LPIN=(taskset -c 0)
  TARGET_IP=198.51.100.1
  SOURCE_BASE=198.51.100.9
fi

cat > "$WORK/tarpit.yaml" <<EOF
stall:
  listen: ["[::]:$PORT"]
  interval: 10s
  message: example.org tarpits this host for sending unwanted mail; see https://example.org/tarpit
  max_per_ip: 20000
EOF

established() { "${LNS[@]}" ss -Htn state established "( sport = :$PORT )" | wc -l; }
slab_bytes() { awk -v n="$1" '$1 == n { print $2 * $4 }' /proc/slabinfo; }
SOCKET_CACHES=" TCP TCPv6 sock_inode_cache filp eventpoll_epi skbuff_head_cache lsm_file_cache "
socket_slab_bytes() { awk -v l="$SOCKET_CACHES" 'index(l, " " $1 " ") { s += $2 * $4 } END { print s + 0 }' /proc/slabinfo; }
sockstat_mem_pages() {
  { "${LNS[@]}" cat /proc/net/sockstat; "${CNS[@]}" cat /proc/net/sockstat; } |
    awk '/^TCP:/ { for (i = 1; i < NF; i++) if ($i == "mem") s += $(i + 1) } END { print s + 0 }'
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
recvq_total() { "${LNS[@]}" ss -Htn state established "( sport = :$PORT )" | awk '{ s += $1 } END { print s + 0 }'; }
# Buffer memory charged to the listener's sockets: rmem_alloc + wmem_queued + forward_alloc.
listener_skmem() {
  "${LNS[@]}" ss -Htmn state established "( sport = :$PORT )" | grep -o 'skmem:([^)]*)' |
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
  for _ in $(seq 100); do "${LNS[@]}" ss -Hltn "( sport = :$PORT )" | grep -q . && break; sleep 0.1; done
  sleep 1
  snapshot before "$lp"
  local per=$(( (n + 1) / 2 )) cps=()
  for i in 0 1; do
    local count=$(( i == 0 ? per : n - per ))
    "${CNS[@]}" "$HELPER" clients --count "$count" --sources 16 --first-source $((i * 16)) \
      --source-base "$SOURCE_BASE" --target "$TARGET_IP:$PORT" --send "$send" > "$WORK/clients$i.log" 2>&1 &
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
LISTENER=("${LNS[@]}" "${LPIN[@]}" "$TARPITD" --stall-only --config "$WORK/tarpit.yaml")
run "tarpitd, silent, tuned" "$N_BIG" 0 "$CPU_SECONDS" "${LISTENER[@]}"
run "tarpitd, silent, tuned" "$N_SMALL" 0 "$CPU_SECONDS" "${LISTENER[@]}"
if [ "$VETH" = 1 ]; then
  echo "(veth between two private namespaces; listener on CPU 0, receive processing on CPU 1)"
  exit 0
fi
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
