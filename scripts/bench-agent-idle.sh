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
cargo build -q -p pi-lab
AGENT=$PWD/target/release/node-agent
PI_LAB=$PWD/target/debug/pi-lab
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
# leaf1 as pi-lab renders it: uplink eth1 to spine1, access ports eth3 and
# eth4, VNI 10010 flooding statically to two VTEPs and VNI 10020 over EVPN.
cat > "$DIR/bench.toml" <<'TOML'
name = "bench"
management = { subnet = "192.168.200.0/24", controller = "192.168.200.1" }
sflow = { collectors = [] }
nodes.spine1 = { role = "spine", asn = 65000 }
nodes.leaf1 = { role = "leaf", asn = 65001, management = "192.168.200.13", loopback = "10.0.0.3", led = "none" }
nodes.leaf2 = { role = "leaf", asn = 65002 }
nodes.leaf3 = { role = "leaf", asn = 65003 }
nodes.h1 = { role = "host" }
links = [
  { a = "spine1:eth1", b = "leaf1:eth1" },
  { a = "spine1:eth2", b = "leaf2:eth1" },
  { a = "spine1:eth3", b = "leaf3:eth1" },
  { a = "h1:eth1", b = "leaf1:eth3" },
  { a = "h1:eth2", b = "leaf1:eth4" },
]
segments = [
  { name = "blue", vni = 10010, flooding = "static", leaves = ["leaf1", "leaf2", "leaf3"], access = ["leaf1:eth3"] },
  { name = "green", vni = 10020, flooding = "evpn", leaves = ["leaf1", "leaf2", "leaf3"], access = ["leaf1:eth4"] },
]
TOML
# A board's config finds its management port by type; a namespace has
# none, so it is named (and the version, a hash of the content, left to
# the agent).
PI_LAB_TOKEN=bench PI_LAB_STATE_DIR="$DIR/state" "$PI_LAB" lab render "$DIR/bench.toml" leaf1 |
  sed -e '/^version = /d' -e '/^\[management\]$/a interface = "mgmt0"' >"$DIR/node.toml"

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
