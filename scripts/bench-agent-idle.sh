#!/usr/bin/env bash
# Idle cost of node-agent on a leaf (two VNIs, one uplink): RSS and CPU of
# `node-agent run` over a window, without FRR and with FRR (one pass every
# --interval reads BGP state through vtysh).
#   sudo scripts/bench-agent-idle.sh [SECONDS]   (default 60)
# Uses the namespace prefix t3a-bench and removes everything it made.
set -euo pipefail
WINDOW=${1:-60}
cd "$(dirname "$0")/.."
cargo build -q --release -p node-agent
AGENT=$PWD/target/release/node-agent
NS=t3a-bench
DIR=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for f in /var/run/frr/$NS/*.pid; do [ -e "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  sleep 0.5
  ip netns del $NS 2>/dev/null || true
  rm -rf "$DIR" /etc/frr/$NS /var/run/frr/$NS
}
trap cleanup EXIT

ip netns add $NS
for p in eth1 eth3 eth4 mgmt0; do
  ip -n $NS link add $p type veth peer name ${p}p
done
cat > "$DIR/node.toml" <<'TOML'
schema = 1
lab = "bench"
hostname = "leaf1"
role = "leaf"
loopback = "10.0.0.3"
[management]
interface = "mgmt0"
address = "192.168.200.13/24"
controller = "192.168.200.1"
[[interfaces]]
name = "eth1"
kind = "port"
address = "10.1.0.1/31"
description = "to spine1:eth1"
[[interfaces]]
name = "eth3"
kind = "port"
[[interfaces]]
name = "eth4"
kind = "port"
[bgp]
asn = 65001
router_id = "10.0.0.3"
networks = ["10.0.0.3/32"]
multipath = 4
evpn = true
timers = { keepalive = 3, hold = 9, connect_retry = 5 }
neighbors = [{ address = "10.1.0.0", remote_asn = 65000, interface = "eth1", description = "spine1" }]
[[vxlan]]
vni = 10010
name = "blue"
device = "vxlan10010"
bridge = "br10010"
local_vtep = "10.0.0.3"
port = 4789
access_ports = ["eth3"]
flooding = { mode = "static", remote_vteps = ["10.0.0.4", "10.0.0.5"] }
[[vxlan]]
vni = 10020
name = "green"
device = "vxlan10020"
bridge = "br10020"
local_vtep = "10.0.0.3"
port = 4789
access_ports = ["eth4"]
flooding = { mode = "evpn" }
[sflow]
collectors = []
polling_interval = 20
sampling_rate = 0
agent_address = "10.0.0.3"
interfaces = []
[health]
listen = "192.168.200.13:9180"
[auth]
token_sha256 = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
TOML

# utime+stime+cutime+cstime: includes the vtysh runs the agent waits for.
ticks() { awk '{print $14 + $15 + $16 + $17}' "/proc/$1/stat"; }
measure() { # label, pid
  sleep 5
  local t0 t1 hz rss
  hz=$(getconf CLK_TCK)
  t0=$(ticks "$2"); sleep "$WINDOW"; t1=$(ticks "$2")
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$2/status")
  awk -v l="$1" -v r="$rss" -v d="$((t1 - t0))" -v hz="$hz" -v w="$WINDOW" \
    'BEGIN { printf "%-28s RSS %5.1f MiB   CPU %.3f %% over %d s\n", l, r/1024, 100*d/hz/w, w }'
}

ip netns exec $NS "$AGENT" run --config "$DIR/node.toml" --no-frr --state-dir "$DIR/s1" 2>/dev/null &
PIDS+=($!)
measure "idle, network only" $!
kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true

mkdir -p /etc/frr/$NS && chown frr:frr /etc/frr/$NS
for d in zebra bgpd; do ip netns exec $NS /usr/lib/frr/$d -d -N $NS -F datacenter 2>/dev/null; done
ip netns exec $NS "$AGENT" run --config "$DIR/node.toml" --frr-pathspace $NS --state-dir "$DIR/s2" 2>/dev/null &
PIDS+=($!)
measure "idle, with FRR (interval 10 s)" $!
