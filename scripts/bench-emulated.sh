#!/usr/bin/env bash
# Benchmark emulated Pi 3B boards (docs/bench-emulated.md):
#   - per board, seconds from the emulator's start to each boot phase
#     (kernel prints, systemd runs, node-agent answers /v1/health, config
#     applied, healthy), from `lab up --json`;
#   - seconds from `pi-lab lab up --boards emulated` to `pi-lab validate`
#     passing, for the two-board lab examples/two-router-boards.toml;
#   - the emulator's RSS on the host, and node-agent's RSS on the board
#     (over SSH with the lab's key).
# Usage: sudo scripts/bench-emulated.sh [RUNS] [IMAGE]
#   RUNS defaults to 3; IMAGE to out/pi-lab-pi3b-trixie.img (build it with
#   `sudo pi-lab image build --out out/`).
# Load matters: the machine's load average is printed with every run.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
IMAGE=${2:-out/pi-lab-pi3b-trixie.img}
LAB_FILE=examples/two-router-boards.toml
LAB=two-router-boards
WORK=$(mktemp -d /tmp/pi-lab-bench-emulated.XXXXXX)
export PI_LAB_STATE_DIR=$WORK/state

cargo build --release -q -p pi-lab
PI_LAB=$PWD/target/release/pi-lab

cleanup() { "$PI_LAB" lab down --name "$LAB" >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.1f\n", b - a}'; }

echo "run,load1,node,kernel_s,systemd_s,agent_s,provisioned_s,healthy_s,emulator_rss_mib,agent_rss_mib,up_to_validate_s"
for run in $(seq 1 "$RUNS"); do
    load=$(cut -d' ' -f1 /proc/loadavg)
    start=$(now)
    "$PI_LAB" lab up "$LAB_FILE" --boards emulated --image "$IMAGE" --json >"$WORK/up.json"
    until "$PI_LAB" validate "$LAB_FILE" --deadline 30s >/dev/null 2>&1; do
        if [ "$(since "$start" | cut -d. -f1)" -ge 900 ]; then
            echo "run $run: validate still failing 900 s after lab up started" >&2; exit 1
        fi
        sleep 1
    done
    total=$(since "$start")
    key=$PI_LAB_STATE_DIR/$LAB/ssh
    python3 - "$WORK/up.json" <<'PY' >"$WORK/rows"
import json, sys
up = json.load(open(sys.argv[1]))
for n in up["nodes"]:
    s = n["seconds"]
    print(n["node"], n["management"].split("/")[0], *(f'{s.get(p, 0):.1f}' for p in
          ["kernel", "systemd", "agent_up", "provisioned", "healthy"]), n["emulator_rss_mib"])
PY
    while read -r node addr kernel systemd agent provisioned healthy rss; do
        agent_rss=$(ssh -i "$key/id_ed25519" -o IdentitiesOnly=yes -o BatchMode=yes \
            -o UserKnownHostsFile="$key/known_hosts" -o StrictHostKeyChecking=accept-new -o LogLevel=ERROR \
            "root@$addr" 'ps -o rss= -C node-agent' </dev/null | awk '{printf "%.1f", $1 / 1024}')
        echo "$run,$load,$node,$kernel,$systemd,$agent,$provisioned,$healthy,$rss,$agent_rss,$total"
    done <"$WORK/rows"
    "$PI_LAB" lab down --name "$LAB" >/dev/null
done
