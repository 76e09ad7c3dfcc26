#!/usr/bin/env bash
# The whole node-agent with sFlow in the virtual fleet: RSS and CPU of each
# router's `node-agent run` (release build) in the two-router lab, sFlow off
# (no collectors) against on (collector = controller:6343, default 20 s
# polling, sampling 1-in-100), each idle and under `ping -f` r1 -> r2.
#   sudo scripts/bench-sflow-agent.sh [SECONDS]   (default 60 per window)
# Lab names t4wbof / t4wbon, management 172.31.205.0/24; removed on exit.
set -euo pipefail
WINDOW=${1:-60}
cd "$(dirname "$0")/.."
cargo build -q --release -p node-agent
cargo build -q -p pi-lab
export PI_LAB_AGENT=$PWD/target/release/node-agent
PI_LAB=$PWD/target/debug/pi-lab
DIR=$(mktemp -d)
export PI_LAB_STATE_DIR=$DIR/state
LABS=()
cleanup() {
  for lab in "${LABS[@]}"; do "$PI_LAB" lab down --name "$lab" >/dev/null 2>&1 || true; done
  rm -rf "$DIR"
}
trap cleanup EXIT

# CPU time of all of a process's threads, in ns (schedstat: finer than ticks).
cpu_ns() { cat /proc/"$1"/task/*/schedstat | awk '{s += $1} END {printf "%d", s}'; }
kib() { awk -v k="$2:" '$1 == k {print $2}' /proc/"$1"/status; }
agent_pid() { # lab node
  local cfg="$PI_LAB_STATE_DIR/$1/fleet/nodes/$2.toml" p
  for p in /proc/[0-9]*; do
    if tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q "node-agent run --config $cfg "; then
      echo "${p#/proc/}"; return
    fi
  done
}

# One window: print a row per router.
measure() { # lab label traffic(0/1)
  local lab=$1 label=$2 traffic=$3 pids=() before=() node pid i target ping_pid=""
  for node in r1 r2; do pids+=("$(agent_pid "$lab" "$node")"); done
  if [ "$traffic" = 1 ]; then
    target=$(ip -n "$lab-r2" -j addr show dev eth1 | python3 -c 'import json,sys; print(next(a["local"] for a in json.load(sys.stdin)[0]["addr_info"] if a["family"]=="inet"))')
    ip netns exec "$lab-r1" ping -f -q -w "$WINDOW" "$target" >"$DIR/ping.out" 2>&1 &
    ping_pid=$!
  fi
  for pid in "${pids[@]}"; do before+=("$(cpu_ns "$pid")"); done
  local rx0; rx0=$(ip netns exec "$lab-r2" cat /sys/class/net/eth1/statistics/rx_packets)
  sleep "$WINDOW"
  local rx1; rx1=$(ip netns exec "$lab-r2" cat /sys/class/net/eth1/statistics/rx_packets)
  [ -n "$ping_pid" ] && wait "$ping_pid" || true
  i=0
  for node in r1 r2; do
    pid=${pids[$i]}
    awk -v l="$label" -v n="$node" -v c0="${before[$i]}" -v c1="$(cpu_ns "$pid")" -v w="$WINDOW" \
        -v rss="$(kib "$pid" VmRSS)" -v hwm="$(kib "$pid" VmHWM)" -v pps="$(( (rx1 - rx0) / WINDOW ))" \
        'BEGIN {printf "| %s | %s | %d pkt/s | %.3f %% | %d KiB (%d) |\n", l, n, pps, (c1-c0)/(w*1e7), rss, hwm}'
    i=$((i + 1))
  done
}

run() { # lab collectors sampling label
  local lab=$1
  python3 - "$lab" "$2" "$3" >"$DIR/$lab.toml" <<'PY'
import sys
lab, collectors, rate = sys.argv[1:]
print(f'name = "{lab}"')
print(open("examples/two-router.toml").read().split('name = "two-router"', 1)[1])
print('[management]\nsubnet = "172.31.205.0/24"\ncontroller = "172.31.205.1"')
print(f'[sflow]\ncollectors = [{collectors}]\nsampling_rate = {rate}')
PY
  LABS+=("$lab")
  "$PI_LAB" lab up "$DIR/$lab.toml" >/dev/null
  sleep 5 # let the first passes settle
  measure "$lab" "$4, idle" 0
  measure "$lab" "$4, ping -f r1 -> r2" 1
  "$PI_LAB" lab down --name "$lab" >/dev/null 2>&1
}

echo "| sFlow | node | traffic into r2:eth1 | CPU (all threads) | RSS (peak) |"
echo "|---|---|---|---|---|"
run t4wbof "" 0 "off (no collectors)"
run t4wbon '"172.31.205.1:6343"' 100 "on, 20 s polling, 1-in-100"
