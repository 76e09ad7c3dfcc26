#!/usr/bin/env bash
# The README's test command as a fresh machine runs it: a fresh clone of
# this checkout's HEAD, an empty cargo target, an empty crate cache
# (CARGO_HOME) and an empty image cache (PI_LAB_TEST_IMAGE_CACHE), as CI
# runs it (`CI=true .ci/run`). Debian packages already installed stay.
#
#   sudo scripts/bench-fresh-test.sh [RUNS]
#
# Every line of output is stamped with the time; test.sh prints how long
# each stage took. Logs: $TMPDIR/pi-lab-fresh-test.XXXX/run-N.log.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-1}
here=$(pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/pi-lab-fresh-test.XXXX")
echo "bench-fresh-test: $runs run(s) of $(git rev-parse --short HEAD) in $work"
for n in $(seq 1 "$runs"); do
  clone="$work/clone-$n"
  git clone -q "$here" "$clone"
  mkdir -p "$work/image-cache-$n" "$work/cargo-home-$n"
  start=$SECONDS
  rc=0
  (
    cd "$clone"
    export CI=true PI_LAB_TEST_IMAGE_CACHE="$work/image-cache-$n"
    # rustup's toolchains stay; the crate registry starts empty.
    export CARGO_HOME="$work/cargo-home-$n" PATH="${HOME}/.cargo/bin:$PATH"
    bash .ci/run 2>&1 | while IFS= read -r line; do printf '%s %s\n' "$(date +%T)" "$line"; done
    exit "${PIPESTATUS[0]}"
  ) > "$work/run-$n.log" || rc=$?
  echo "run $n: exit $rc after $((SECONDS - start)) s"
  grep 'test.sh: ' "$work/run-$n.log" | sed 's/^/  /'
  grep -E 'image build took|test result: .*[0-9]+ failed' "$work/run-$n.log" | cut -c1-160 | sed 's/^/  /' || true
  # The image cache and target are gigabytes: keep only the log.
  rm -rf "$clone" "$work/image-cache-$n" "$work/cargo-home-$n"
done
