#!/usr/bin/env bash
# Benchmark of the agent's management plane (issue 5): node-agent's RSS and
# CPU while idle and while /metrics is scraped every second, side by side
# with Debian's prometheus-node-exporter measured in the same run.
#
#   sudo scripts/bench-health.sh            # 60 s per phase
#   PHASE_SECONDS=20 sudo scripts/bench-health.sh
#
# Then the slow-connection phase (issue 14): SLOW_CONNECTIONS (1000)
# connections that send nothing or half a request line and wait, reopened
# when the agent closes them, while /v1/health is fetched SLOW_REQUESTS
# (100) times. With BASELINE_BIN=/path/to/an/older/node-agent the same
# phase runs against that binary too, side by side.
#
# The agent runs for real (`node-agent run --no-frr`) in its own network
# namespace `t5-bench`, provisioned with a one-host config (no loopback, no
# BGP); FRR is left out so the numbers are the agent's own. Prints a
# Markdown table (medians of one-second samples); docs/bench-health.md keeps
# the last result.
set -euo pipefail

PHASE=${PHASE_SECONDS:-60}
NS=t5-bench
ROOT_IF=t5b-root
NS_IF=t5b-ns
ADDR=10.255.5.2
EXPORTER_ADDR=127.0.0.1:9191
WORK=$(mktemp -d /tmp/t5-bench.XXXXXX)
HERE=$(cd "$(dirname "$0")/.." && pwd)
PIDS=()

[ "$(id -u)" -eq 0 ] || { echo "bench-health: run as root (it makes a network namespace)" >&2; exit 2; }

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  ip netns del "$NS" 2>/dev/null || true
  ip link del "$ROOT_IF" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# The exporter is only for this comparison, so it is installed here, not by setup.sh.
if ! command -v prometheus-node-exporter >/dev/null; then
  echo "bench-health: installing prometheus-node-exporter" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus-node-exporter >/dev/null
  systemctl disable --now prometheus-node-exporter 2>/dev/null || true
fi
command -v curl >/dev/null || { echo "bench-health: needs curl" >&2; exit 2; }

echo "bench-health: building node-agent (release) and pi-lab" >&2
cargo build --release -q -p node-agent --manifest-path "$HERE/Cargo.toml"
cargo build -q -p pi-lab --manifest-path "$HERE/Cargo.toml"
AGENT="$HERE/target/release/node-agent"
PI_LAB="$HERE/target/debug/pi-lab"

ip netns add "$NS"
ip link add "$ROOT_IF" type veth peer name "$NS_IF" netns "$NS"
ip addr add 10.255.5.1/30 dev "$ROOT_IF"
ip link set "$ROOT_IF" up
ip -n "$NS" addr add "$ADDR/30" dev "$NS_IF"
ip -n "$NS" link set "$NS_IF" up
ip -n "$NS" link set lo up

# bench1 as pi-lab renders it, a host with nothing but its management
# address. A board's config finds its management port by type; a namespace
# has none, so it is named (and the version, a hash of the content, left
# to the agent).
cat > "$WORK/t5bench.toml" <<EOF
name = "t5bench"
[management]
subnet = "10.255.5.0/30"
controller = "10.255.5.1"
[sflow]
collectors = []
[nodes.bench1]
role = "host"
management = "$ADDR"
led = "none"
EOF
PI_LAB_TOKEN=bench PI_LAB_STATE_DIR="$WORK/pi-lab" "$PI_LAB" lab render "$WORK/t5bench.toml" bench1 |
  sed -e '/^version = /d' -e "/^\[management\]\$/a interface = \"$NS_IF\"" >"$WORK/node.toml"

start_agent() { # BINARY STATE_DIR; sets AGENT_PID
  ip netns exec "$NS" "$1" run --config "$WORK/node.toml" --no-frr \
    --state-dir "$2" >"$WORK/agent.log" 2>&1 &
  PIDS+=($!)
  AGENT_PID=$!
}
start_agent "$AGENT" "$WORK/state"
prometheus-node-exporter --web.listen-address="$EXPORTER_ADDR" >"$WORK/exporter.log" 2>&1 &
PIDS+=($!)
EXPORTER_PID=$!

AGENT_URL="http://$ADDR:9180/metrics"
EXPORTER_URL="http://$EXPORTER_ADDR/metrics"
for _ in $(seq 50); do
  curl -sf -o /dev/null "$AGENT_URL" && curl -sf -o /dev/null "$EXPORTER_URL" && break
  sleep 0.2
done
curl -sf -o /dev/null "$AGENT_URL" || { echo "bench-health: agent does not serve $AGENT_URL" >&2; cat "$WORK/agent.log" >&2; exit 1; }
curl -sf -o /dev/null "$EXPORTER_URL" || { echo "bench-health: exporter does not serve" >&2; cat "$WORK/exporter.log" >&2; exit 1; }
sleep 2

TICK=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) print "-"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# phase NAME SCRAPE(0|1): one line per process: name phase rss_median_kib cpu_percent scrape_ms_median bytes
phase() {
  local name=$1 scrape=$2
  local a0 e0 t0 t1
  : >"$WORK/a.rss"; : >"$WORK/e.rss"; : >"$WORK/a.ms"; : >"$WORK/e.ms"
  a0=$(ticks "$AGENT_PID"); e0=$(ticks "$EXPORTER_PID"); t0=$(date +%s.%N)
  for _ in $(seq "$PHASE"); do
    if [ "$scrape" = 1 ]; then
      curl -s -o "$WORK/a.body" -w '%{time_total}\n' "$AGENT_URL" >>"$WORK/a.ms"
      curl -s -o "$WORK/e.body" -w '%{time_total}\n' "$EXPORTER_URL" >>"$WORK/e.ms"
    fi
    rss_kib "$AGENT_PID" >>"$WORK/a.rss"
    rss_kib "$EXPORTER_PID" >>"$WORK/e.rss"
    sleep 1
  done
  t1=$(date +%s.%N)
  local a1 e1; a1=$(ticks "$AGENT_PID"); e1=$(ticks "$EXPORTER_PID")
  for who in a e; do
    local label d0 d1 ms bytes
    if [ $who = a ]; then label=node-agent; d0=$a0; d1=$a1; else label=node-exporter; d0=$e0; d1=$e1; fi
    ms=$(awk '{print $1*1000}' "$WORK/$who.ms" | median)
    bytes=$([ -f "$WORK/$who.body" ] && [ "$scrape" = 1 ] && wc -c <"$WORK/$who.body" || echo -)
    printf '%s %s %s %s %s %s\n' "$label" "$name" "$(median <"$WORK/$who.rss")" \
      "$(awk -v d="$((d1 - d0))" -v hz="$TICK" -v s="$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')" 'BEGIN {printf "%.2f", 100*d/hz/s}')" \
      "$ms" "$bytes"
  done
}

echo "bench-health: idle phase (${PHASE}s)" >&2
phase idle 0 >"$WORK/results"
echo "bench-health: scrape phase (${PHASE}s, both /metrics every second)" >&2
phase scraped 1 >>"$WORK/results"

echo
echo "Host: $(nproc) cores, $(uname -r); $PHASE s per phase, samples every second."
echo
echo "| process | phase | RSS median (MiB) | CPU (% of one core) | scrape median (ms) | /metrics size (bytes) |"
echo "|---|---|---|---|---|---|"
while read -r who name rss cpu ms bytes; do
  printf '| %s | %s | %.1f | %s | %s | %s |\n' "$who" "$name" "$(awk -v r="$rss" 'BEGIN {print r / 1024}')" "$cpu" "$ms" "$bytes"
done <"$WORK/results"
awk '
  $1=="node-agent" {a[$2]=$3; ac[$2]=$4}
  $1=="node-exporter" {e[$2]=$3; ec[$2]=$4}
  END {
    for (p in a) printf "\nRSS ratio exporter/agent (%s): %.1fx", p, e[p]/a[p];
    if (ac["scraped"] > 0) printf "\nCPU ratio exporter/agent (scraped): %.1fx", ec["scraped"]/ac["scraped"];
    print ""
  }' "$WORK/results"

# --- Slow connections ---------------------------------------------------
SLOW=${SLOW_CONNECTIONS:-1000}
SLOW_REQUESTS=${SLOW_REQUESTS:-100}
HEALTH_URL="http://$ADDR:9180/v1/health"
cat >"$WORK/hold.py" <<'EOF'
# Hold N connections to HOST:PORT: odd ones send half a request line, even
# ones nothing. One the server answers or closes is reopened a second
# later, as a slowloris client would. Writes how many are open to OUT.
import os, resource, selectors, socket, sys
host, port, n, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, n + 100)), hard))
sel = selectors.DefaultSelector()
closed = []
def open_one(i):
    try:
        s = socket.create_connection((host, port), timeout=5)
        if i % 2:
            s.sendall(b"GET /v1/health HT")
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, i)
    except OSError:
        closed.append(i)
for i in range(n):
    open_one(i)
while True:
    for key, _ in sel.select(timeout=1):
        sel.unregister(key.fileobj)
        key.fileobj.close()
        closed.append(key.data)
    again, closed = closed, []
    for i in again:
        open_one(i)
    with open(out + ".tmp", "w") as f:
        f.write(str(len(sel.get_map())))
    os.replace(out + ".tmp", out)
EOF

# health_times N: N x GET /v1/health, 0.1 s apart; codes to slow.codes, ms to slow.ms
health_times() {
  : >"$WORK/slow.ms"
  : >"$WORK/slow.codes"
  for _ in $(seq "$1"); do
    # A refused or reset connection is a result (code 000), not the end.
    { curl -s -o /dev/null --max-time 15 -w '%{http_code} %{time_total}\n' "$HEALTH_URL" || true; } |
      while read -r code t; do
        echo "$code" >>"$WORK/slow.codes"
        awk -v t="$t" 'BEGIN {print t * 1000}' >>"$WORK/slow.ms"
      done
    sleep 0.1
  done
}

# slow_phase LABEL: one line: label held ok median_ms max_ms rss_before_kib
# rss_during_kib threads quiet_median_ms
slow_phase() {
  local label=$1 before during threads held hold ok quiet
  before=$(rss_kib "$AGENT_PID")
  # The same requests without the slow connections, for the ratio.
  health_times "$SLOW_REQUESTS"
  quiet=$(median <"$WORK/slow.ms")
  rm -f "$WORK/held"
  python3 "$WORK/hold.py" "$ADDR" 9180 "$SLOW" "$WORK/held" &
  hold=$!
  PIDS+=("$hold")
  for _ in $(seq 60); do
    [ "$(cat "$WORK/held" 2>/dev/null || echo 0)" -ge "$SLOW" ] && break
    sleep 0.5
  done
  sleep 1
  health_times "$SLOW_REQUESTS"
  during=$(rss_kib "$AGENT_PID")
  threads=$(awk '/^Threads:/ {print $2}' "/proc/$AGENT_PID/status")
  held=$(cat "$WORK/held" 2>/dev/null || echo 0)
  kill "$hold" 2>/dev/null || true
  sleep 0.5
  kill -9 "$hold" 2>/dev/null || true
  wait "$hold" 2>/dev/null || true
  ok=$(grep -c '^200$' "$WORK/slow.codes" || true)
  printf '%s %s %s %s %s %s %s %s %s\n' "$label" "$held" "$ok" "$(median <"$WORK/slow.ms")" \
    "$(sort -n "$WORK/slow.ms" | tail -1)" "$before" "$during" "$threads" "$quiet"
}

echo "bench-health: slow-connection phase ($SLOW connections, $SLOW_REQUESTS health requests)" >&2
sleep 2
slow_phase node-agent >"$WORK/slow.results"
if [ -n "${BASELINE_BIN:-}" ]; then
  kill "$AGENT_PID"
  wait "$AGENT_PID" 2>/dev/null || true
  start_agent "$BASELINE_BIN" "$WORK/state-baseline"
  for _ in $(seq 50); do
    curl -sf -o /dev/null "$HEALTH_URL" && break
    sleep 0.2
  done
  sleep 2
  slow_phase baseline >>"$WORK/slow.results"
fi
echo
echo "Slow connections: $SLOW held open (half send nothing, half half a request line), $SLOW_REQUESTS x GET /v1/health."
echo
echo "| agent | connections held | /v1/health 200 | median (ms) | max (ms) | median without them (ms) | RSS before (MiB) | RSS with them (MiB) | threads |"
echo "|---|---|---|---|---|---|---|---|---|"
while read -r label held ok med max before during threads quiet; do
  printf '| %s | %s | %s of %s | %s | %s | %s | %.1f | %.1f | %s |\n' "$label" "$held" "$ok" "$SLOW_REQUESTS" \
    "$med" "$max" "$quiet" "$(awk -v r="$before" 'BEGIN {print r / 1024}')" \
    "$(awk -v r="$during" 'BEGIN {print r / 1024}')" "$threads"
done <"$WORK/slow.results"
