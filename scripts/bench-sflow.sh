#!/usr/bin/env bash
# sFlow benchmarks (issue 4), see docs/bench-sflow.md:
#   1. encoding cost per datagram (median of 2001 runs);
#   2. exporter CPU and RSS with 20 interfaces at the default 20 s polling
#      interval, sampling off, no traffic;
#   3. the same under ping floods on two interfaces, sampling off and then
#      1-in-100.
# Needs root (network namespaces t4-bench-PID / t4-bpeer-PID), nft, ping.
# IDLE_SECS and TRAFFIC_SECS set how long each phase runs.
set -euo pipefail

IDLE_SECS=${IDLE_SECS:-120}
TRAFFIC_SECS=${TRAFFIC_SECS:-60}
cd "$(dirname "$0")/.."

cargo build --release -q -p node-agent --example sflow_export --example sflow_encode_bench
BIN=$PWD/target/release/examples

echo "== 1. encoding cost"
"$BIN/sflow_encode_bench"

NS=t4-bench-$$
PEER=t4-bpeer-$$
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    ip netns del "$NS" 2>/dev/null || true
    ip netns del "$PEER" 2>/dev/null || true
}
trap cleanup EXIT

ip netns add "$NS"
ip netns add "$PEER"
ip -n "$NS" link set lo up
# 20 interfaces in the agent's namespace: 9 local veth pairs and two links
# to the peer namespace that carry the traffic.
for i in $(seq 0 8); do
    ip -n "$NS" link add "v${i}a" type veth peer name "v${i}b"
    ip -n "$NS" link set "v${i}a" up
    ip -n "$NS" link set "v${i}b" up
done
for i in 0 1; do
    ip -n "$NS" link add "lab$i" type veth peer name "lab$i" netns "$PEER"
    ip -n "$NS" addr add "10.45.$i.1/24" dev "lab$i"
    ip -n "$PEER" addr add "10.45.$i.2/24" dev "lab$i"
    ip -n "$NS" link set "lab$i" up
    ip -n "$PEER" link set "lab$i" up
done
echo "interfaces in $NS (without lo): $(ip -n "$NS" -o link show | grep -vc ': lo:')"

# CPU time of all the exporter's threads, in ns (schedstat: finer than ticks).
cpu_ns() { cat /proc/"$1"/task/*/schedstat | awk '{s += $1} END {printf "%d", s}'; }
kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }

# run_phase NAME RATE SECS TRAFFIC(0/1)
run_phase() {
    local name=$1 rate=$2 secs=$3 traffic=$4
    ip netns exec "$NS" "$BIN/sflow_export" --collector 127.0.0.1:6343 --agent 10.45.0.1 \
        --interval 20 --rate "$rate" --seconds $((secs + 3)) > "/tmp/$NS-$name.json" &
    local pid=$!
    PIDS+=("$pid")
    sleep 1
    local rx0 t0
    rx0=$(ip netns exec "$NS" cat /sys/class/net/lab0/statistics/rx_packets)
    t0=$(cpu_ns "$pid")
    if [ "$traffic" = 1 ]; then
        ip netns exec "$PEER" ping -q -f -w "$secs" 10.45.0.1 > /dev/null &
        PIDS+=("$!")
        ip netns exec "$PEER" ping -q -f -w "$secs" 10.45.1.1 > /dev/null &
        PIDS+=("$!")
    fi
    sleep "$secs"
    local t1 rx1 rss hwm
    t1=$(cpu_ns "$pid")
    rx1=$(ip netns exec "$NS" cat /sys/class/net/lab0/statistics/rx_packets)
    rss=$(kib "$pid" VmRSS)
    hwm=$(kib "$pid" VmHWM)
    wait "$pid"
    awk -v n="$name" -v r="$rate" -v s="$secs" -v t=$((t1 - t0)) -v rss="$rss" -v hwm="$hwm" \
        -v pps=$(((rx1 - rx0) / secs)) -v stats="$(cat "/tmp/$NS-$name.json")" 'BEGIN {
        printf "%-26s rate 1-in-%-4s %4ss  cpu %7.4f%%  rss %5d KiB (peak %5d)  lab0 rx %7d pkt/s  %s\n",
            n, r, s, 100 * t / 1e9 / s, rss, hwm, pps, stats }'
    rm -f "/tmp/$NS-$name.json"
}

echo "== 2. exporter, 20 interfaces, 20 s polling"
run_phase idle 0 "$IDLE_SECS" 0
echo "== 3. under traffic"
run_phase traffic-sampling-off 0 "$TRAFFIC_SECS" 1
run_phase traffic-1-in-100 100 "$TRAFFIC_SECS" 1
