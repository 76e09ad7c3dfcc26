#!/usr/bin/env bash
# Benchmark of `pi-lab image build` (issue 6): cold build, warm rebuild after
# changing only an overlay, image size, compressed size and mapped size.
#
#   sudo scripts/bench-image.sh            # 1 cold build, 3 warm rebuilds
#   COLD_RUNS=2 WARM_RUNS=5 sudo scripts/bench-image.sh
#   COLD_RUNS=0 sudo scripts/bench-image.sh      # warm rebuilds only
#
# "Cold" is `--no-cache`: the root file system is made again by mmdebstrap
# (apt's downloaded .debs in CACHE/apt are reused: the network is not what
# we measure; delete CACHE/apt for a first-ever build). Results go to
# target/bench-image/results.json and a table on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
COLD_RUNS=${COLD_RUNS:-1}
WARM_RUNS=${WARM_RUNS:-3}
CACHE=${PI_LAB_CACHE_DIR:-/var/cache/pi-lab}
WORK=target/bench-image
rm -rf "$WORK"; mkdir -p "$WORK"

cargo build --release -q -p pi-lab
cargo build --release -q -p node-agent --target aarch64-unknown-linux-musl
PI_LAB=target/release/pi-lab
AGENT=target/aarch64-unknown-linux-musl/release/node-agent

# A project copy whose overlays we may change between warm rebuilds.
mkdir -p "$WORK/proj/images"
cp -a overlays "$WORK/proj/"
cp images/pi3b-trixie.toml "$WORK/proj/images/"
PROFILE="$WORK/proj/images/pi3b-trixie.toml"

build() { # build KIND N EXTRA...
  local kind=$1 n=$2; shift 2
  "$PI_LAB" image build --json --profile "$PROFILE" --out "$WORK/out" \
    --cache-dir "$CACHE" --agent "$AGENT" "$@" > "$WORK/$kind-$n.json"
  jq -c "{kind: \"$kind\", seconds, rootfs_cached, image_size, compressed_size, mapped_size}" "$WORK/$kind-$n.json"
}

for n in $(seq "$COLD_RUNS"); do build cold "$n" --no-cache; done
for n in $(seq "$WARM_RUNS"); do
  echo "bench run $n $(date +%s%N)" > "$WORK/proj/overlays/base/etc/pi-lab-bench-marker"
  build warm "$n"
done

jq -s '
  def median: sort | if length == 0 then null elif length % 2 == 1 then .[length/2|floor] else (.[length/2-1] + .[length/2]) / 2 end;
  (map(select(.rootfs_cached == false) | .seconds) | median) as $cold
  | (map(select(.rootfs_cached == true) | .seconds) | median) as $warm
  | {cold_seconds_median: $cold, warm_seconds_median: $warm, cold_over_warm: (if $cold == null then null else $cold / $warm end),
     image_mib: (.[0].image_size / 1048576), compressed_mib: (.[0].compressed_size / 1048576),
     mapped_mib: (.[0].mapped_size / 1048576), runs: length}' \
  "$WORK"/*.json | tee "$WORK/results.json.tmp"
mv "$WORK/results.json.tmp" "$WORK/results.json"
# Per-step times of the last warm rebuild.
jq -r '.steps[] | "\(.name)\t\(.outcome)\t\(.seconds * 10 | round / 10)s"' "$WORK/warm-$WARM_RUNS.json"
