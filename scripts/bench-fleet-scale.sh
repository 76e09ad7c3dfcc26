#!/usr/bin/env bash
# Benchmark the virtual fleet as it grows (BENCHMARKS.md, "The fleet at scale"):
# for each size, a leaf-spine lab from scripts/scale-lab.py (4 spines, N-8
# leaves, 4 hosts, one EVPN segment), one after the other in one run:
#   - seconds from `pi-lab lab up` to converged (its own report), and from
#     there to `pi-lab validate` passing;
#   - peak 1-minute load average while it comes up, and the load and CPU
#     the idle fleet costs over STEADY seconds after validate;
#   - FRR programs (vtysh, frr-reload.py) the agents ran, per router per
#     minute, while coming up and while idle (the agents' /metrics);
#   - `pi-lab status` while the fleet converges (every agent started, not
#     all healthy yet): the median and slowest call, and how many agent
#     answers did not come within its 5 s deadline;
#   - memory per node: the proportional set size (PSS) of the lab's FRR
#     daemons and agents, / N (the kernel's own share per namespace is not
#     in it).
# Usage: sudo scripts/bench-fleet-scale.sh [SIZES...]   (default 32 64 128 256)
# Env: STEADY (seconds, default 60), TIMEOUT (lab up, default 600).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 0 ] && set -- 32 64 128 256
SIZES=("$@")
STEADY=${STEADY:-60}
TIMEOUT=${TIMEOUT:-600}
WORK=$(mktemp -d /tmp/pi-lab-bench-scale.XXXXXX)
export PI_LAB_STATE_DIR=$WORK/state

cargo build --release -q -p pi-lab -p node-agent
export PI_LAB_AGENT=$PWD/target/release/node-agent
PI_LAB=$PWD/target/release/pi-lab

LAB=
cleanup() {
    [ -n "$LAB" ] && "$PI_LAB" lab down --name "$LAB" >/dev/null 2>&1 || true
    [ -n "${SAMPLER:-}" ] && kill "$SAMPLER" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}'; }
load1() { cut -d' ' -f1 /proc/loadavg; }
# Busy CPU ticks (user+system+irq+softirq) and all ticks, from /proc/stat.
# Niced work (a build in the background) counts as neither.
cpu_ticks() { awk '/^cpu / {print $2+$4+$7+$8, $2+$4+$5+$6+$7+$8}' /proc/stat; }

# PSS (KiB) of every process of the lab: its agents (in its namespaces)
# and FRR daemons (pathspace LAB-NODE on their command line).
lab_pss_kib() {
    python3 - "$LAB" <<'PY'
import os, sys
lab = sys.argv[1]
ns = {os.stat(f"/run/netns/{n}").st_ino for n in os.listdir("/run/netns") if n.startswith(lab + "-")}
total = 0
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        mine = os.stat(f"/proc/{pid}/ns/net").st_ino in ns
        cmd = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        mine = mine or any(a.startswith(lab.encode() + b"-") for a in cmd[1:])
        if mine:
            for line in open(f"/proc/{pid}/smaps_rollup"):
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
    except OSError:
        pass
print(total)
PY
}

# Sum of the agents' FRR program counters (vtysh + frr-reload.py), and
# the number of agents that run FRR, from every node's /metrics.
frr_programs() {
    python3 - "$PI_LAB_STATE_DIR/$LAB/fleet/nodes" <<'PY'
import concurrent.futures, glob, re, sys, tomllib, urllib.request
def ask(path):
    listen = tomllib.load(open(path, "rb"))["health"]["listen"]
    try:
        text = urllib.request.urlopen(f"http://{listen}/metrics", timeout=10).read().decode()
    except OSError:
        return None
    runs = [float(m) for m in re.findall(r'^pilab_frr_programs_total\{[^}]*\} (\S+)$', text, re.M)]
    return sum(runs) if runs else None
with concurrent.futures.ThreadPoolExecutor(32) as pool:
    counts = [c for c in pool.map(ask, glob.glob(f"{sys.argv[1]}/*.toml")) if c is not None]
print(int(sum(counts)), len(counts))
PY
}

# `pi-lab status` over and over from when every agent has been started
# until the lab is up: per call, its seconds and how many nodes did not
# answer, one line each in $WORK/status.
status_while_up() {
    : >"$WORK/status"
    local nodes=$PI_LAB_STATE_DIR/$LAB/fleet/nodes
    until [ -s "$WORK/up.json" ] || [ "$(ls "$nodes" 2>/dev/null | wc -l)" -ge "$n" ]; do sleep 0.5; done
    sleep 1
    while [ ! -s "$WORK/up.json" ]; do
        local t
        t=$(now)
        "$PI_LAB" status --json --timeout 5s "$WORK/$LAB.toml" >"$WORK/status.json" 2>/dev/null || true
        python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(sys.argv[2], sum(1 for n in d if not n["reachable"]))' \
            "$WORK/status.json" "$(since "$t")" >>"$WORK/status" 2>/dev/null || true
        sleep 1
    done
}

printf '%-6s %10s %10s %9s %10s %11s %12s %12s %15s %9s\n' nodes converged validate peak_load steady_load steady_cpu% \
    up_vtysh/r/m idle_vtysh/r/m status_med/max/lost MiB/node
for n in "${SIZES[@]}"; do
    LAB="scale$n"
    python3 scripts/scale-lab.py "$n" "$LAB" 172.29 >"$WORK/$LAB.toml"
    : >"$WORK/load"
    (while :; do load1 >>"$WORK/load"; sleep 1; done) &
    SAMPLER=$!
    : >"$WORK/up.json"
    t0=$(now)
    status_while_up &
    WATCHER=$!
    "$PI_LAB" lab up --json --timeout "$TIMEOUT" "$WORK/$LAB.toml" >"$WORK/up.json.tmp"
    mv "$WORK/up.json.tmp" "$WORK/up.json"
    wait "$WATCHER"
    read -r status_med status_max status_lost < <(awk '{print $1, $2}' "$WORK/status" | sort -g | awk '
        {t[NR] = $1; lost += $2; if ($1 > max) max = $1}
        END {if (NR == 0) print "- - -"; else printf "%.1f %.1f %d\n", t[int((NR + 1) / 2)], max, lost}')
    converged=$(python3 -c 'import json,sys; print("%.1f" % json.load(open(sys.argv[1]))["seconds"])' "$WORK/up.json")
    t1=$(now)
    "$PI_LAB" validate "$WORK/$LAB.toml" >"$WORK/validate.txt" 2>&1 \
        || { tail -20 "$WORK/validate.txt" >&2; echo "validate failed at $n nodes" >&2; exit 1; }
    validate=$(since "$t1")
    kill "$SAMPLER"; SAMPLER=
    peak=$(sort -g "$WORK/load" | tail -1)
    read -r up_runs routers < <(frr_programs)
    up_minutes=$(since "$t0")
    pss=$(lab_pss_kib)
    read -r busy0 all0 < <(cpu_ticks)
    sleep "$STEADY"
    read -r busy1 all1 < <(cpu_ticks)
    read -r idle_runs _ < <(frr_programs)
    steady_load=$(load1)
    awk -v n="$n" -v c="$converged" -v v="$validate" -v p="$peak" -v sl="$steady_load" \
        -v b0="$busy0" -v a0="$all0" -v b1="$busy1" -v a1="$all1" \
        -v ur="$up_runs" -v ir="$idle_runs" -v r="$routers" -v um="$up_minutes" -v s="$STEADY" \
        -v pss="$pss" -v st="$status_med/$status_max/$status_lost" 'BEGIN {
            cores = 0; while (("nproc" | getline x) > 0) cores = x
            printf "%-6d %10s %10s %9s %10s %11.0f %12.2f %12.2f %15s %9.1f\n", n, c, v, p, sl,
                (b1 - b0) / (a1 - a0) * 100 * cores,
                ur / r / (um / 60), (ir - ur) / r / (s / 60), st, pss / 1024 / n
        }'
    "$PI_LAB" lab down --name "$LAB" >/dev/null 2>&1
    LAB=
done
echo "(converged, validate: seconds; steady_cpu%: of one core; vtysh/r/m: vtysh and frr-reload.py runs per router per minute;"
echo " status_med/max/lost: pi-lab status while the lab came up, median and slowest call in seconds, node answers missing over all calls)"
