#!/usr/bin/env bash
# Benchmark `pi-lab flash` against `dd bs=4M conv=fsync` and `bmaptool copy`.
#
# One image, one kind of target: a 4 GiB image laid out like a pi-lab
# image (MBR, FAT32 p1 at 4 MiB..512 MiB, ext4 p2 after it) holding about
# 1 GiB of real files (copied from this machine's /usr),
# written to loop devices. Give IMAGE=path/to/pi-lab.img to use a real one
# (its .bmap must sit beside it).
#
# The loop devices use --direct-io=on, so their writes go to the backing
# file with O_DIRECT instead of piling up in the page cache, and the page
# cache is dropped before every run: otherwise `dd` and bmaptool would
# "finish" into RAM and only the final fsync would tell.
#
# Needs root, hyperfine, bmap-tools, mtools, dosfstools, e2fsprogs, fdisk,
# zstd. Results: $WORK/*.json (hyperfine) and a summary on stdout.
set -euo pipefail

WORK=${WORK:-/var/tmp/pi-lab-bench}
RUNS=${RUNS:-5}
ROOT_MIB=${ROOT_MIB:-1000}
PI_LAB=${PI_LAB:-$(cd "$(dirname "$0")/.." && pwd)/target/release/pi-lab}
[ "$(id -u)" -eq 0 ] || { echo "bench-flash: needs root (loop devices, drop_caches)" >&2; exit 1; }
[ -x "$PI_LAB" ] || { echo "bench-flash: build first: cargo build --release -p pi-lab" >&2; exit 1; }
mkdir -p "$WORK"

make_image() {
  local img=$1 root=$WORK/rootfs
  echo "bench-flash: making a 4 GiB image with ~${ROOT_MIB} MiB of files in $img" >&2
  rm -rf "$root" && mkdir -p "$root/usr"
  cp -a /usr/share /usr/include /usr/libexec /usr/sbin "$root/usr/"
  # Top up with programs from /usr/bin until about ROOT_MIB.
  mkdir -p "$root/usr/bin"
  local budget=$(( (ROOT_MIB - $(du -sm "$root" | cut -f1)) << 20 ))
  find /usr/bin -maxdepth 1 -type f -printf '%s %p\n' | sort -k2 |
    awk -v b="$budget" '{ t += $1; if (t < b) print $2 }' | xargs -r cp -a -t "$root/usr/bin"
  rm -f "$img" && truncate -s 4G "$img"
  printf 'label: dos\nstart=8192, size=1040384, type=c\nstart=1048576, type=83\n' | sfdisk -q "$img"
  mkfs.vfat -F 32 -n RASPIFIRM --offset 8192 "$img" $((1040384 / 2)) >/dev/null 2>&1
  # Firmware-sized files on the FAT (kernel, initrd, device trees).
  head -c 40M /dev/urandom >"$WORK/vmlinuz" && mcopy -i "$img@@4M" "$WORK/vmlinuz" ::vmlinuz
  mkfs.ext4 -q -F -L RASPIROOT -d "$root" -E offset=$((512 << 20)) "$img" $(((4096 - 512) << 10))k
  bmaptool -q create "$img" -o "$img.bmap"
  rm -rf "$root" "$WORK/vmlinuz"
}

IMAGE=${IMAGE:-$WORK/bench.img}
[ -f "$IMAGE" ] && [ -f "$IMAGE.bmap" ] || make_image "$IMAGE"
[ -f "$IMAGE.zst" ] || zstd -q -T0 -6 -k "$IMAGE" -o "$IMAGE.zst"
size=$(stat -c %s "$IMAGE")
mapped=$(sed -n 's:.*<MappedBlocksCount> *\([0-9]*\).*:\1:p' "$IMAGE.bmap")
bs=$(sed -n 's:.*<BlockSize> *\([0-9]*\).*:\1:p' "$IMAGE.bmap")
echo "image: $IMAGE, $((size >> 20)) MiB, mapped $((mapped * bs >> 20)) MiB ($((100 * mapped * bs / size))%)"

LOOPS=()
cleanup() { for l in "${LOOPS[@]}"; do losetup -d "$l" 2>/dev/null || true; done; }
trap cleanup EXIT
for i in 1 2 3; do
  truncate -s "$size" "$WORK/card$i.bin"
  LOOPS+=("$(losetup --direct-io=on -f --show "$WORK/card$i.bin")")
done
L1=${LOOPS[0]} L2=${LOOPS[1]} L3=${LOOPS[2]}
PREP='sync; echo 3 > /proc/sys/vm/drop_caches'
OV="--allow-non-removable --yes"

bench() {
  local name=$1
  shift
  hyperfine --style basic --runs "$RUNS" --prepare "$PREP" --export-json "$WORK/$name.json" "$@"
}

bench one \
  -n dd "dd if=$IMAGE of=$L1 bs=4M conv=fsync status=none" \
  -n bmaptool "bmaptool -q copy $IMAGE $L1" \
  -n "pi-lab --no-verify" "$PI_LAB flash $IMAGE --to $L1 $OV --no-verify" \
  -n "pi-lab (verify)" "$PI_LAB flash $IMAGE --to $L1 $OV"

bench zst \
  -n "bmaptool .zst" "bmaptool -q copy $IMAGE.zst --bmap $IMAGE.bmap $L1" \
  -n "pi-lab .zst --no-verify" "$PI_LAB flash $IMAGE.zst --bmap $IMAGE.bmap --to $L1 $OV --no-verify" \
  -n "pi-lab .zst (verify)" "$PI_LAB flash $IMAGE.zst --bmap $IMAGE.bmap --to $L1 $OV"

bench three \
  -n "bmaptool x3 sequential" "bmaptool -q copy $IMAGE.zst --bmap $IMAGE.bmap $L1 && bmaptool -q copy $IMAGE.zst --bmap $IMAGE.bmap $L2 && bmaptool -q copy $IMAGE.zst --bmap $IMAGE.bmap $L3" \
  -n "pi-lab x3 --no-verify" "$PI_LAB flash $IMAGE.zst --bmap $IMAGE.bmap --to $L1 $L2 $L3 $OV --no-verify" \
  -n "pi-lab x3 (verify)" "$PI_LAB flash $IMAGE.zst --bmap $IMAGE.bmap --to $L1 $L2 $L3 $OV"

echo
echo "medians (s):"
for f in one zst three; do
  python3 - "$WORK/$f.json" <<'EOF'
import json, sys
rows = json.load(open(sys.argv[1]))["results"]
base = {r["command"]: r["median"] for r in rows}
for r in rows:
    print(f"  {r['command']:28} {r['median']:7.2f}  (min {r['min']:.2f}, max {r['max']:.2f})")
EOF
done
