#!/usr/bin/env bash
# Fuzz every target in turn, one at a time and at low priority (the
# machine is shared):
#   scripts/fuzz.sh                       # all targets, 300 s each
#   scripts/fuzz.sh 3600                  # all targets, an hour each
#   scripts/fuzz.sh 600 http_request      # one target
# Targets (docs/fuzzing.md): lab_parse (fuzz/, the lab-file parser, planner
# and compiler), netlab_import (fuzz/, netlab topologies through the same),
# sflow_collector (fuzz-sflow/, `pi-lab sflow watch`), http_request
# (fuzz-agent/, node-agent's management API).
# Needs cargo-fuzz (`cargo install cargo-fuzz`); RUSTC_BOOTSTRAP lets the
# stable toolchain accept the sanitizer flags. Corpora grow in
# DIR/corpus/TARGET, crashes land in DIR/artifacts/TARGET.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-300}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(lab_parse netlab_import sflow_collector http_request)

for target in "${targets[@]}"; do
  case $target in
    lab_parse)
      dir=fuzz
      mkdir -p "$dir/corpus/$target"
      cp examples/*.toml "$dir/corpus/$target/"
      extra=(-dict=fuzz/lab.dict)
      ;;
    netlab_import)
      dir=fuzz
      mkdir -p "$dir/corpus/$target"
      cp examples/netlab/*.yml "$dir/corpus/$target/"
      extra=(-dict=fuzz/netlab.dict)
      ;;
    sflow_collector)
      dir=fuzz-sflow
      mkdir -p "$dir/corpus/$target"
      cargo run -q -p node-agent --example sflow_corpus -- "$dir/corpus/$target"
      extra=(-max_len=4096)
      ;;
    http_request)
      dir=fuzz-agent
      mkdir -p "$dir/corpus/$target"
      cp fuzz-agent/seeds/* "$dir/corpus/$target/"
      extra=(-dict=fuzz-agent/http.dict -max_len=8192)
      ;;
    *)
      echo "fuzz: unknown target $target (lab_parse, netlab_import, sflow_collector, http_request)" >&2
      exit 2
      ;;
  esac
  echo "fuzz: $target for $seconds s" >&2
  RUSTC_BOOTSTRAP=1 nice -n 19 cargo fuzz run --fuzz-dir "$dir" "$target" "$dir/corpus/$target" -- \
    "${extra[@]}" -max_total_time="$seconds" -print_final_stats=1
done
