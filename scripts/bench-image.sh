#!/usr/bin/env bash
# Benchmark of `pi-lab image build` (issues 6 and 11). In one run, one after
# the other on the same machine:
#
#   plain    mmdebstrap of the same packages, by hand (the pipeline pi-lab
#            replaces): minbase + every package of every layer, one call
#   cold     pi-lab image build --no-cache (every layer and file system)
#   addpkg   rebuild after adding one package to the profile (only the
#            profile layer and the file systems are made again; the layer is
#            removed from the cache before each run)
#   warm     rebuild after changing one overlay file (everything cached)
#   boot     the emulated Pi 3B (qemu raspi3b) from start to its root file
#            system mounted from SD, and the initrd's size
#
#   sudo scripts/bench-image.sh
#   PLAIN_RUNS=0 COLD_RUNS=0 sudo scripts/bench-image.sh     # rebuilds only
#   BASELINE_IMG=/path/old.img sudo scripts/bench-image.sh   # boot it too
#
# The network is not measured: every run syncs apt's .debs in from
# BENCH_CACHE/apt (seeded from /var/cache/pi-lab/apt when present). The load
# average is recorded before and after every run, and so is the CPU time
# (user + system) of each run's whole process tree, which other work on the
# machine changes far less than the wall-clock time: on a shared machine
# compare CPU-time ratios from one run. Results:
# target/bench-image/results.json, and a table on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
PLAIN_RUNS=${PLAIN_RUNS:-1}
COLD_RUNS=${COLD_RUNS:-1}
ADDPKG_RUNS=${ADDPKG_RUNS:-3}
WARM_RUNS=${WARM_RUNS:-5}
BOOT_RUNS=${BOOT_RUNS:-1}
ADD_PACKAGE=${ADD_PACKAGE:-tree}
CACHE=${BENCH_CACHE:-/var/cache/pi-lab-bench}
BASELINE_IMG=${BASELINE_IMG:-}
WORK=target/bench-image
rm -rf "$WORK"; mkdir -p "$WORK"
mkdir -p "$CACHE/apt"
if [ -d /var/cache/pi-lab/apt ] && [ "$CACHE" != /var/cache/pi-lab ]; then
  cp -n /var/cache/pi-lab/apt/*.deb "$CACHE/apt/" 2>/dev/null || true
fi

cargo build --release -q -p pi-lab
cargo build --release -q -p node-agent --target aarch64-unknown-linux-musl
PI_LAB=target/release/pi-lab
AGENT=target/aarch64-unknown-linux-musl/release/node-agent

# Project copies: one whose overlays change, one with one more package.
for p in proj addpkg; do
  mkdir -p "$WORK/$p/images"
  cp -a overlays "$WORK/$p/"
  cp images/pi3b-trixie.toml "$WORK/$p/images/"
done
sed -i "s/^packages = \[/packages = [\n  \"$ADD_PACKAGE\",/" "$WORK/addpkg/images/pi3b-trixie.toml"
PROFILE="$WORK/proj/images/pi3b-trixie.toml"

load() { cut -d' ' -f1 /proc/loadavg; }
timed() { # timed TIMEFILE CMD...: runs CMD; TIMEFILE gets "real user sys" of
  # CMD and every process below it (bash's time: getrusage of the children),
  # TIMEFILE.load the load average every 10 s while it ran
  local tf=$1; shift
  local TIMEFORMAT='%3R %3U %3S'
  (while :; do load; sleep 10; done) > "$tf.load" &
  local watch=$!
  { time "$@" 2>&3 3>&-; } 3>&2 2>"$tf"
  kill "$watch"; wait "$watch" 2>/dev/null || true
}
# cpu TIMEFILE: user + system seconds, and the mean load while it ran
cpu() { jq -nc --argjson cpu "$(awk '{print $2 + $3}' "$1")" \
  --argjson load "$(awk '{s += $1} END {print NR ? s / NR : 0}' "$1.load")" \
  '{cpu_s: $cpu, load_mean: ($load * 100 | round / 100)}'; }
record() { # record KIND N SECONDS LOAD_BEFORE [JSON]
  local extra=${5:-'{}'}
  jq -nc --arg kind "$1" --argjson n "$2" --argjson s "$3" --argjson lb "$4" \
    --argjson la "$(load)" --argjson x "$extra" \
    '{kind: $kind, n: $n, seconds: $s, load_before: $lb, load_after: $la} + $x' >> "$WORK/runs.jsonl"
  tail -1 "$WORK/runs.jsonl"
}

build() { # build KIND N PROFILE EXTRA...
  local kind=$1 n=$2 profile=$3; shift 3
  local lb; lb=$(load)
  timed "$WORK/$kind-$n.time" "$PI_LAB" image build --json --profile "$profile" \
    --out "$WORK/out-$kind" --cache-dir "$CACHE" --agent "$AGENT" "$@" \
    > "$WORK/$kind-$n.json" 2> "$WORK/$kind-$n.err"
  record "$kind" "$n" "$(jq .seconds "$WORK/$kind-$n.json")" "$lb" \
    "$(jq -c --argjson cpu "$(cpu "$WORK/$kind-$n.time")" '$cpu + {rootfs_cached, filesystems_cached, compressed_size, mapped_size,
               layers: [.layers[] | {name, cached}],
               steps: [.steps[] | {name, outcome, seconds}]}' "$WORK/$kind-$n.json")"
}

# 1. The hand pipeline: one mmdebstrap with every package.
PACKAGES=$("$PI_LAB" image packages --profile "$PROFILE" | cut -d' ' -f2 | paste -sd,)
for n in $(seq "$PLAIN_RUNS"); do
  lb=$(load)
  timed "$WORK/plain-$n.time" mmdebstrap --mode=auto --variant=minbase --arch=arm64 \
    --components=main,non-free-firmware --include="$PACKAGES" --skip=essential/unlink \
    --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
    --setup-hook="sync-in '$CACHE/apt' /var/cache/apt/archives/" \
    --customize-hook="sync-out /var/cache/apt/archives '$CACHE/apt'" \
    trixie "$WORK/plain.tar" > "$WORK/plain-$n.log" 2>&1
  record plain "$n" "$(cut -d' ' -f1 "$WORK/plain-$n.time")" "$lb" \
    "$(cpu "$WORK/plain-$n.time")"
  rm -f "$WORK/plain.tar"
done

# 2. pi-lab, cold: every layer and the file systems made again.
for n in $(seq "$COLD_RUNS"); do build cold "$n" "$PROFILE" --no-cache; done
rm -rf "$WORK/out-cold" # disk space: the warm build's image is the one booted

# 3. One package added: the cached base and lab layers are reused. The
# profile layer is removed from the cache before every run and the file
# systems are made again, so every run costs what the first one would.
ADD_PROFILE="$WORK/addpkg/images/pi3b-trixie.toml"
ADD_KEY=$("$PI_LAB" image packages --json --profile "$ADD_PROFILE" | jq -r '.[] | select(.name == "profile") | .key')
for n in $(seq "$ADDPKG_RUNS"); do
  rm -f "$CACHE/rootfs/profile-$ADD_KEY".tar*
  build addpkg "$n" "$ADD_PROFILE" --no-cache=filesystems
done
rm -f "$CACHE/rootfs/profile-$ADD_KEY".tar*
fskey=$(jq -r .filesystems_key "$WORK/addpkg-$ADDPKG_RUNS.json" 2>/dev/null || true)
[ -n "$fskey" ] && rm -f "$CACHE/fs/$fskey".*
rm -rf "$WORK/out-addpkg"

# 4. Warm: one overlay file changed.
for n in $(seq "$WARM_RUNS"); do
  echo "bench run $n $(date +%s%N)" > "$WORK/proj/overlays/base/etc/pi-lab-bench-marker"
  build warm "$n" "$PROFILE"
done

# 5. The emulated board: start to root file system, and the initrd.
boot() { # boot KIND N IMG
  local kind=$1 n=$2 img=$3 dir="$WORK/boot-$1"
  mkdir -p "$dir"
  local fat="$img@@4194304" kernel initrd
  kernel=$(mdir -i "$fat" -b :: | sed 's|::/||' | grep '^vmlinuz-' | head -1)
  initrd=$(mdir -i "$fat" -b :: | sed 's|::/||' | grep '^initrd.img-' | head -1)
  for f in "$kernel" "$initrd" bcm2837-rpi-3-b.dtb cmdline.txt; do
    mcopy -o -i "$fat" "::$f" "$dir/$f"
  done
  cp --sparse=always "$img" "$dir/sd.img"
  local lb; lb=$(load)
  local t0; t0=$(date +%s.%N)
  # As `pi-lab lab up` runs a board: one host thread for its four cores.
  qemu-system-aarch64 -M raspi3b -m 1G -display none -monitor none \
    -accel tcg,thread=single,tb-size=256 \
    -kernel "$dir/$kernel" -initrd "$dir/$initrd" -dtb "$dir/bcm2837-rpi-3-b.dtb" \
    -drive "if=sd,format=raw,file=$dir/sd.img" -append "$(cat "$dir/cmdline.txt")" \
    -device usb-net,netdev=n0 -netdev user,id=n0,restrict=on \
    -serial null -serial "file:$dir/serial-$n.log" &
  local qemu=$! root=null
  for _ in $(seq 1800); do
    if grep -q 'EXT4-fs (mmcblk.*mounted filesystem' "$dir/serial-$n.log" 2>/dev/null; then
      root=$(awk "BEGIN{print $(date +%s.%N) - $t0}"); break
    fi
    sleep 0.5
  done
  kill "$qemu"; wait "$qemu" 2>/dev/null || true
  record "boot-$kind" "$n" "$root" "$lb" \
    "$(jq -nc --argjson b "$(stat -c %s "$dir/$initrd")" '{initrd_bytes: $b}')"
}
IMG="$WORK/out-warm/pi-lab-pi3b-trixie.img"
[ -f "$IMG" ] || IMG="$WORK/out-cold/pi-lab-pi3b-trixie.img"
for n in $(seq "$BOOT_RUNS"); do
  boot new "$n" "$IMG"
  if [ -n "$BASELINE_IMG" ]; then boot baseline "$n" "$BASELINE_IMG"; fi
done

jq -s '
  def median: sort | if length == 0 then null elif length % 2 == 1 then .[length/2|floor] else (.[length/2-1] + .[length/2]) / 2 end;
  def m(k): map(select(.kind == k) | .seconds | select(. != null)) | median;
  def c(k): map(select(.kind == k) | .cpu_s | select(. != null)) | median;
  def ratio(a; b): if a == null or b == null then null else (a / b * 1000 | round / 1000) end;
  (m("plain")) as $plain | (m("cold")) as $cold | (m("addpkg")) as $add | (m("warm")) as $warm
  | (c("plain")) as $plain_cpu | (c("cold")) as $cold_cpu | (c("addpkg")) as $add_cpu | (c("warm")) as $warm_cpu
  | {plain_mmdebstrap_s: $plain, cold_s: $cold, add_package_s: $add, warm_s: $warm,
     cold_over_plain: ratio($cold; $plain), add_package_over_cold: ratio($add; $cold),
     plain_cpu_s: $plain_cpu, cold_cpu_s: $cold_cpu, add_package_cpu_s: $add_cpu, warm_cpu_s: $warm_cpu,
     cold_over_plain_cpu: ratio($cold_cpu; $plain_cpu), add_package_over_cold_cpu: ratio($add_cpu; $cold_cpu),
     boot_to_root_s: m("boot-new"), baseline_boot_to_root_s: m("boot-baseline"),
     initrd_mib: (map(select(.kind == "boot-new") | .initrd_bytes) | first | if . == null then null else . / 1048576 end),
     baseline_initrd_mib: (map(select(.kind == "boot-baseline") | .initrd_bytes) | first | if . == null then null else . / 1048576 end),
     compressed_mib: (map(select(.kind == "warm") | .compressed_size) | first | if . == null then null else . / 1048576 end),
     mapped_mib: (map(select(.kind == "warm") | .mapped_size) | first | if . == null then null else . / 1048576 end),
     load: (map({kind, n, load_before, load_mean, load_after})), runs: length}' \
  "$WORK/runs.jsonl" | tee "$WORK/results.json.tmp"
mv "$WORK/results.json.tmp" "$WORK/results.json"
echo "Steps of the last cold, add-package and warm builds:"
for k in cold addpkg warm; do
  f=$(ls "$WORK/$k"-*.json 2>/dev/null | sort -V | tail -1) || true
  [ -n "$f" ] && jq -r --arg k "$k" '.steps[] | "\($k)\t\(.name)\t\(.outcome)\t\(.seconds * 10 | round / 10)s"' "$f"
done
