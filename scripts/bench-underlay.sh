#!/usr/bin/env bash
# Benchmark the three underlays side by side (BENCHMARKS.md): the fabric
# example with eBGP (examples/fabric.toml), OSPF (fabric-ospf.toml) and
# IS-IS (fabric-isis.toml), run in turn, RUNS rounds:
#   - seconds from `pi-lab lab up` to converged (every BGP session
#     Established, every OSPF neighbour Full / IS-IS adjacency Up, every
#     address and VXLAN device in place: pi-lab's own convergence check);
#   - seconds from `pi-lab lab up` to `pi-lab validate` passing: the
#     checks derived from the lab (sessions, adjacencies, VTEPs, host pings
#     through both segments). The examples' own [[validate]] tests are cut
#     from the copies so the three runs check the same things; --no-sflow,
#     since the first sFlow counter sample comes after the polling
#     interval, whatever the underlay.
# With SET=unnumbered (issue 21): the fabric numbered (fabric.toml) against
# dual-stack on an unnumbered underlay (fabric-unnumbered.toml: sessions on
# interfaces over IPv6 link-local addresses; validate pings the hosts in
# both families), as v6bench-num/-unn on 172.31.117-118.0/24.
# Usage: sudo scripts/bench-underlay.sh [RUNS] [SET]   (default 5, igp)
# Root: namespaces and FRR. Labs run as benchu-ebgp/-ospf/-isis on
# 172.31.251-253.0/24. Prints medians (and min-max) as a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
SET=${2:-igp}
WORK=$(mktemp -d /tmp/pi-lab-bench-underlay.XXXXXX)
export PI_LAB_STATE_DIR=$WORK/state

cargo build --release -q -p pi-lab -p node-agent
export PI_LAB_AGENT=$PWD/target/release/node-agent
PI_LAB=$PWD/target/release/pi-lab

if [ "$SET" = unnumbered ]; then
    PREFIX=v6bench
    UNDERLAYS=(num unn)
    declare -A EXAMPLE=([num]=fabric.toml [unn]=fabric-unnumbered.toml)
    declare -A SUBNET=([num]=117 [unn]=118)
else
    PREFIX=benchu
    UNDERLAYS=(ebgp ospf isis)
    declare -A EXAMPLE=([ebgp]=fabric.toml [ospf]=fabric-ospf.toml [isis]=fabric-isis.toml)
    declare -A SUBNET=([ebgp]=251 [ospf]=252 [isis]=253)
fi

# Each example under its own name and management subnet.
for u in "${UNDERLAYS[@]}"; do
    python3 - "examples/${EXAMPLE[$u]}" "$WORK/$u.toml" "$PREFIX-$u" "${SUBNET[$u]}" <<'PY'
import re, sys
src, dst, name, subnet = sys.argv[1:]
text = open(src).read()
text = re.sub(r'(?m)^name = .*$', f'name = "{name}"', text, count=1)
text = re.sub(r'192\.168\.\d+\.', f'172.31.{subnet}.', text)
text = text.split("\n[[validate]]")[0].split("\n# The lab's own tests")[0] + "\n"
open(dst, "w").write(text)
PY
done

cleanup() {
    for u in "${UNDERLAYS[@]}"; do "$PI_LAB" lab down --name "$PREFIX-$u" >/dev/null 2>&1 || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.3f\n", b - a}'; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
range() { sort -g | awk 'NR==1 {lo=$1} {hi=$1} END {printf "%s-%s", lo, hi}'; }

for u in "${UNDERLAYS[@]}"; do : >"$WORK/$u.converged"; : >"$WORK/$u.validated"; done
for run in $(seq 1 "$RUNS"); do
    for u in "${UNDERLAYS[@]}"; do
        t0=$(now)
        "$PI_LAB" lab up --json "$WORK/$u.toml" >"$WORK/up.json"
        since "$t0" >>"$WORK/$u.converged"
        if ! "$PI_LAB" validate --no-sflow --deadline 120s "$WORK/$u.toml" >"$WORK/validate.txt"; then
            echo "validate failed on $u (run $run):" >&2
            cat "$WORK/validate.txt" >&2
            exit 1
        fi
        since "$t0" >>"$WORK/$u.validated"
        "$PI_LAB" lab down --name "$PREFIX-$u" >/dev/null
        echo "run $run $u: converged $(tail -1 "$WORK/$u.converged") s, validated $(tail -1 "$WORK/$u.validated") s" >&2
    done
done

echo "| underlay | lab up -> converged (s) | lab up -> validate passed (s) |"
echo "|----------|-------------------------|-------------------------------|"
for u in "${UNDERLAYS[@]}"; do
    c=$(median <"$WORK/$u.converged"); cr=$(range <"$WORK/$u.converged")
    v=$(median <"$WORK/$u.validated"); vr=$(range <"$WORK/$u.validated")
    echo "| $u | $c ($cr) | $v ($vr) |"
done
echo
echo "medians of $RUNS runs each, interleaved; $(nproc) cores; $(date -u +%Y-%m-%d)"
