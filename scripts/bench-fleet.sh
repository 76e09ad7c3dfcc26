#!/usr/bin/env bash
# Benchmark the virtual fleet on the fabric example (docs/bench-fleet.md):
#   - seconds from `pi-lab lab up` to every BGP session Established
#     (pi-lab's own convergence report) and to host-to-host ping working
#     through both VNIs (blue: static flooding, green: EVPN);
#   - per node, node-agent's RSS and CPU use while idle (from /proc).
# Usage: sudo scripts/bench-fleet.sh [RUNS] [IDLE_SECONDS]   (defaults 5, 30)
# Root: namespaces and FRR. Runs the lab as `benchfab` on 172.31.250.0/24.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
IDLE=${2:-30}
LAB=benchfab
WORK=$(mktemp -d /tmp/pi-lab-bench.XXXXXX)
export PI_LAB_STATE_DIR=$WORK/state

# PI_LAB_AGENT picks another agent binary; by default both are release builds.
if [ -n "${PI_LAB_AGENT:-}" ]; then
    cargo build --release -q -p pi-lab
else
    cargo build --release -q -p pi-lab -p node-agent
    export PI_LAB_AGENT=$PWD/target/release/node-agent
fi
PI_LAB=$PWD/target/release/pi-lab

# The fabric example under its own name and management subnet.
python3 - "$WORK/lab.toml" <<'PY'
import sys, re
text = open("examples/fabric.toml").read()
text = re.sub(r'(?m)^name = .*$', 'name = "benchfab"', text, count=1)
text = text.replace("192.168.200.", "172.31.250.")
open(sys.argv[1], "w").write(text)
PY

cleanup() { "$PI_LAB" lab down --name "$LAB" >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.3f\n", b - a}'; }

# h2's address in each segment, and h1's port in the same subnet.
ping_targets() {
    python3 - "$PI_LAB_STATE_DIR/$LAB/fleet/nodes" <<'PY'
import sys, tomllib, ipaddress
d = sys.argv[1]
h1 = tomllib.load(open(f"{d}/h1.toml", "rb"))
h2 = tomllib.load(open(f"{d}/h2.toml", "rb"))
for b in h2.get("interfaces", []):
    if "address" not in b:
        continue
    nb = ipaddress.ip_interface(b["address"]).network
    for a in h1.get("interfaces", []):
        if "address" in a and ipaddress.ip_interface(a["address"]).network == nb:
            print(a["name"], b["address"].split("/")[0])
PY
}

agent_pids() {
    python3 - "$PI_LAB_STATE_DIR/$LAB/fleet/journal.jsonl" <<'PY'
import sys, json
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e.get("kind") == "process":
        print(e["netns"], e["pid"])
PY
}

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

: >"$WORK/built"; : >"$WORK/bgp"; : >"$WORK/overlay"; : >"$WORK/down"; : >"$WORK/rss"; : >"$WORK/cpu"
HZ=$(getconf CLK_TCK)
for run in $(seq 1 "$RUNS"); do
    t0=$(now)
    "$PI_LAB" lab up --json "$WORK/lab.toml" >"$WORK/up.json"
    since "$t0" >>"$WORK/bgp"
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["built_seconds"])' "$WORK/up.json" >>"$WORK/built"
    while read -r port addr; do
        until ip netns exec "$LAB-h1" ping -c1 -W1 -I "$port" "$addr" >/dev/null 2>&1; do
            if awk -v s="$(since "$t0")" 'BEGIN {exit !(s > 120)}'; then
                echo "no overlay ping to $addr after 120 s" >&2; exit 1
            fi
            sleep 0.1
        done
    done < <(ping_targets)
    since "$t0" >>"$WORK/overlay"
    if [ "$run" = 1 ]; then
        # Idle cost: CPU ticks over IDLE seconds, RSS at the end, per agent.
        declare -A start
        while read -r ns pid; do start[$pid]=$(ticks "$pid"); done < <(agent_pids)
        sleep "$IDLE"
        while read -r ns pid; do
            node=${ns#"$LAB-"}
            cpu=$(awk -v t="$(ticks "$pid")" -v s="${start[$pid]}" -v hz="$HZ" -v idle="$IDLE" \
                'BEGIN {printf "%.3f", (t - s) * 100 / (hz * idle)}')
            rss=$(rss_kib "$pid")
            printf '%-8s rss %6d KiB  cpu %6.2f %%\n' "$node" "$rss" "$cpu"
            echo "$rss" >>"$WORK/rss"; echo "$cpu" >>"$WORK/cpu"
        done < <(agent_pids)
    fi
    t1=$(now)
    "$PI_LAB" lab down --name "$LAB" 2>/dev/null
    since "$t1" >>"$WORK/down"
    printf 'run %d: bgp %.2f s  overlay ping %.2f s\n' "$run" "$(tail -1 "$WORK/bgp")" "$(tail -1 "$WORK/overlay")"
done

echo
printf 'median over %d runs: lab up -> fleet built %.2f s; -> all BGP Established %.2f s; -> overlay ping both VNIs %.2f s; lab down %.2f s\n' \
    "$RUNS" "$(median <"$WORK/built")" "$(median <"$WORK/bgp")" "$(median <"$WORK/overlay")" "$(median <"$WORK/down")"
printf 'idle agent (median of %d nodes, %d s): RSS %d KiB, CPU %.2f %%\n' \
    "$(wc -l <"$WORK/rss")" "$IDLE" "$(median <"$WORK/rss")" "$(median <"$WORK/cpu")"
